"""Figures of the report (matplotlib, Agg backend), written as PNGs into the assets folder.

Run-level figures follow Figure 7 of Li et al. 2020 (good fractions, particles per micrograph,
the most populated good class averages per condition); per condition there is a CTF panel (fit
resolution coloured by verdict, as their Fig. 3C; defocus; the mask-diameter search), a strip of
example good and bad micrographs, and the rejected classes by label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from screen.processing.fourier import fourier_crop
from screen.report.context import SessionResults, all_verdicts, ranked_summaries

DPI = 170
"""Resolution of every PNG: crisp at A4 width in the PDF."""

DISPLAY_PX = 384
"""Micrographs in the example strip are Fourier-binned to at most this many pixels."""

N_TOP_CLASSES = 5
N_EXAMPLES = 3
N_REJECTED_PER_LABEL = 8
REJECTED_LABELS = ("clip", "edge", "noise")
VERDICT_COLOURS = {"good": "#2e7d32", "bad": "#c62828", "": "#9e9e9e"}
PNG_METADATA = {"Software": None}  # no version stamp: same data, same bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def display_image(image: np.ndarray, display_px: int = DISPLAY_PX) -> np.ndarray:
    """Micrograph for display in [0, 1]: Fourier-binned, low-passed, clipped at 1st/99th percentile."""
    from scipy.ndimage import gaussian_filter

    image = np.asarray(image, dtype=np.float32)
    factor = max(image.shape) / display_px
    if factor > 1:
        shape = (int(image.shape[0] / factor) // 2 * 2, int(image.shape[1] / factor) // 2 * 2)
        image = fourier_crop(image, shape)
    image = gaussian_filter(image, 1.0)
    low, high = np.percentile(image, [1, 99])
    return np.clip((image - low) / max(float(high - low), 1e-9), 0, 1)


def _display_average(average: np.ndarray) -> np.ndarray:
    low, high = np.percentile(average, [0.5, 99.5])
    return np.clip((average - low) / max(float(high - low), 1e-9), 0, 1)


def _save(fig, path: Path, tight: bool = True) -> Path:
    """Write a figure; image grids keep their full width (``tight=False``) so rows line up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, metadata=PNG_METADATA, bbox_inches="tight" if tight else None)
    _pyplot().close(fig)
    return path


def _ranked(sessions: list[SessionResults], order: list[str] | None = None) -> list[SessionResults]:
    """Finished sessions in the report's order (go before no-go, by good particles).

    ``order`` is that order by name when the caller has it (the report's context); otherwise
    the verdicts are derived here.
    """
    if order is None:
        verdicts = all_verdicts(sessions)
        order = [s["session"] for s in ranked_summaries([x.summary for x in sessions], verdicts)]
    position = {name: i for i, name in enumerate(order)}
    return sorted((s for s in sessions if s.ok), key=lambda s: position[s.name])


def _grouped_bars(sessions, keys, labels, ylabel, path, percent=False) -> Path:
    plt = _pyplot()
    names = [s.name for s in sessions]
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    x = np.arange(len(names))
    width = 0.8 / len(keys)
    for k, (key, label) in enumerate(zip(keys, labels, strict=True)):
        values = [float(s.summary.get(key) or 0.0) * (100 if percent else 1) for s in sessions]
        bars = ax.bar(x + (k - (len(keys) - 1) / 2) * width, values, width, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    ax.set_xticks(
        x,
        names,
        rotation=20 if len(names) > 4 else 0,
        ha="right" if len(names) > 4 else "center",
        fontsize=8,
    )
    ax.set_ylabel(ylabel)
    if percent:
        ax.set_ylim(0, 110)
    ax.margins(y=0.15)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def fractions_figure(sessions: list[SessionResults], path: Path) -> Path:
    """Bars of good-micrograph and good-particle fraction (%) per condition (Fig. 7B).

    Conditions are drawn in the order given (`write_figures` gives the report's, `_ranked`).
    """
    return _grouped_bars(
        [s for s in sessions if s.ok],
        ("good_micrograph_fraction", "good_particle_fraction"),
        ("good micrographs", "good particles"),
        "fraction (%)",
        path,
        percent=True,
    )


def per_micrograph_figure(sessions: list[SessionResults], path: Path) -> Path:
    """Bars of picked and good particles per micrograph per condition (Fig. 7C), in order given."""
    return _grouped_bars(
        [s for s in sessions if s.ok],
        ("particles_per_micrograph", "good_particles_per_micrograph"),
        ("picked", "good"),
        "particles per micrograph",
        path,
    )


def _top_averages(session: SessionResults) -> list[tuple[np.ndarray, str]]:
    out = []
    for entry in (session.summary.get("top_good_classes") or [])[:N_TOP_CLASSES]:
        diameter = float(entry["mask_diameter_A"])
        classes = next((c for d, c in session.classes.items() if abs(d - diameter) < 0.5), None)
        index = int(entry["class_index"])
        if classes is not None and 0 <= index < len(classes.averages):
            out.append((classes.averages[index], f"{int(entry['n_particles']):,}"))
    return out


def top_classes_figure(sessions: list[SessionResults], path: Path) -> Path:
    """The most populated good class averages of each condition, one row each (Fig. 7A), in order."""
    plt = _pyplot()
    ranked = [s for s in sessions if s.ok]
    rows = max(len(ranked), 1)
    fig, axes = plt.subplots(
        rows,
        N_TOP_CLASSES + 1,
        figsize=(7.5, 1.45 * rows),
        squeeze=False,
        gridspec_kw={"width_ratios": [1.6] + [1] * N_TOP_CLASSES},
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, session in enumerate(ranked):
        name = session.name if len(session.name) <= 22 else session.name[:21] + "…"
        axes[r, 0].text(0.0, 0.5, name, ha="left", va="center", fontsize=8)
        tops = _top_averages(session)
        if not tops:
            axes[r, 1].text(0.0, 0.5, "no good classes", fontsize=8, va="center")
        for c, (average, caption) in enumerate(tops):
            axes[r, c + 1].imshow(_display_average(average), cmap="gray")
            axes[r, c + 1].set_title(caption, fontsize=7, pad=2)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.02, wspace=0.05, hspace=0.25)
    return _save(fig, path, tight=False)


def _numeric(table: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(table.get(column, pd.Series(dtype=float)), errors="coerce")


def ctf_figure(session: SessionResults, path: Path) -> Path:
    """CTF fit resolution by verdict (Fig. 3C), defocus histogram and the mask-diameter search."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.2))
    table = session.micrographs if session.micrographs is not None else pd.DataFrame()
    resolution = _numeric(table, "ctf_fit_resolution_A")
    verdict = table.get("verdict", pd.Series([""] * len(table))).astype(str)
    finite = resolution[np.isfinite(resolution)]
    if len(finite):
        bins = np.linspace(finite.min(), finite.max() + 1e-6, 21)
        groups = [
            (v, resolution[(verdict == v) & np.isfinite(resolution)]) for v in ("good", "bad")
        ]
        groups = [(v, g) for v, g in groups if len(g)]
        axes[0].hist(
            [g for _, g in groups],
            bins=bins,
            stacked=True,
            color=[VERDICT_COLOURS[v] for v, _ in groups],
            label=[v for v, _ in groups],
        )
        axes[0].legend(fontsize=7, frameon=False)
    axes[0].set_xlabel("CTF fit resolution (Å)", fontsize=8)
    axes[0].set_ylabel("micrographs", fontsize=8)
    defocus = 0.5 * (_numeric(table, "defocus_u_um") + _numeric(table, "defocus_v_um"))
    if "ctf_rings_fitted" in table:  # a fit that followed no Thon ring measured no defocus
        rings = table["ctf_rings_fitted"].astype(str).str.lower() == "true"
        defocus = defocus[rings.to_numpy()]
    defocus = defocus[np.isfinite(defocus)]
    if len(defocus):
        axes[1].hist(defocus, bins=20, color="#546e7a")
    elif len(table):
        axes[1].text(
            0.5,
            0.5,
            "no fit followed Thon rings:\ndefocus not measured\n(denoised or filtered data?)",
            ha="center",
            va="center",
            fontsize=7,
            transform=axes[1].transAxes,
        )
    axes[1].set_xlabel("mean defocus (µm), fits with Thon rings", fontsize=8)
    search = session.summary.get("diameter_search") or []
    if search:
        d = [float(r["mask_diameter_A"]) for r in search]
        g = [int(r.get("good_particles") or 0) for r in search]
        axes[2].plot(d, g, "o-", color="#1565c0")
        best = session.summary.get("best_mask_diameter_A")
        if best is not None:
            k = int(np.argmin(np.abs(np.asarray(d) - float(best))))
            axes[2].plot(
                d[k], g[k], "*", color="#f9a825", markersize=14, label=f"best {d[k]:.0f} Å"
            )
            axes[2].legend(fontsize=7, frameon=False)
    axes[2].set_xlabel("mask diameter (Å)", fontsize=8)
    axes[2].set_ylabel("good particles", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def _example_rows(table: pd.DataFrame) -> list[pd.Series]:
    readable = table[table.get("status", "ok").astype(str) == "ok"] if "status" in table else table
    good = readable[readable["verdict"] == "good"].head(N_EXAMPLES)
    bad = readable[readable["verdict"] == "bad"]
    # One bad example per reason first, so the strip shows why micrographs were rejected.
    bad = (
        pd.concat([bad.drop_duplicates("reason"), bad])
        .drop_duplicates("micrograph")
        .head(N_EXAMPLES)
    )
    return [row for _, row in good.iterrows()] + [row for _, row in bad.iterrows()]


def examples_figure(session: SessionResults, path: Path) -> Path | None:
    """A strip of example good and bad micrographs captioned with verdict and reason."""
    from screen.errors import ScreenError
    from screen.io.images import read_image, summed_frames

    table = session.micrographs
    if table is None or not len(table) or "verdict" not in table:
        return None
    panels = []
    for row in _example_rows(table):
        try:
            data = read_image(Path(str(row["path"]))).data
        except (ScreenError, OSError, ValueError):
            continue
        data = summed_frames(data)
        reason = str(row.get("reason") or "")
        caption = f"{row['verdict']}{': ' + reason if reason and row['verdict'] == 'bad' else ''}"
        panels.append((display_image(data), caption, str(row["micrograph"])))
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(7.5, 7.5 / max(len(panels), 4) + 0.5), squeeze=False
    )
    for ax, (image, caption, name) in zip(axes[0], panels, strict=True):
        ax.imshow(image, cmap="gray")
        colour = VERDICT_COLOURS["good" if caption.startswith("good") else "bad"]
        ax.set_title(caption, fontsize=7, color=colour, pad=2)
        ax.set_xlabel(name if len(name) <= 30 else "…" + name[-29:], fontsize=5)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(wspace=0.05)
    return _save(fig, path)


def rejected_figure(session: SessionResults, path: Path) -> Path | None:
    """Rejected class averages at the best mask diameter, one row per label (clip/edge/noise)."""
    best = session.best_classes()
    if best is None:
        return None
    rows = []
    for label in REJECTED_LABELS:
        chosen = best.table[best.table["label"] == label].sort_values(
            "n_particles", ascending=False
        )
        items = [
            (best.averages[int(i)], f"{int(n):,}")
            for i, n in zip(chosen["class_index"], chosen["n_particles"], strict=True)
            if 0 <= int(i) < len(best.averages)
        ][:N_REJECTED_PER_LABEL]
        if items:
            rows.append((label, items))
    if not rows:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(rows),
        N_REJECTED_PER_LABEL + 1,
        figsize=(7.5, 0.8 * len(rows)),
        squeeze=False,
        gridspec_kw={"width_ratios": [1.2] + [1] * N_REJECTED_PER_LABEL},
    )
    for ax in axes.flat:
        ax.axis("off")
    for r, (label, items) in enumerate(rows):
        axes[r, 0].text(0.9, 0.5, label, ha="right", va="center", fontsize=8)
        for c, (average, caption) in enumerate(items):
            axes[r, c + 1].imshow(_display_average(average), cmap="gray")
            axes[r, c + 1].set_title(caption, fontsize=6, pad=1)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.02, wspace=0.05, hspace=0.3)
    return _save(fig, path, tight=False)


def write_figures(
    sessions: list[SessionResults], assets_dir: Path, order: list[str] | None = None
) -> dict:
    """Write every figure; return their file names (relative to ``assets_dir``).

    ``order``: the conditions' names in the report's ranking (derived when absent).

    Returns
    -------
    dict
        ``{"fractions", "per_micrograph", "top_classes"}`` file names, and ``"sessions"``: per
        session name a dict with ``ctf``, ``examples``, ``rejected`` (None when there is nothing
        to show).
    """
    assets_dir = Path(assets_dir)
    assets_dir.mkdir(parents=True, exist_ok=True)
    ranked = _ranked(sessions, order)
    figures: dict = {
        "fractions": fractions_figure(ranked, assets_dir / "fractions.png").name,
        "per_micrograph": per_micrograph_figure(ranked, assets_dir / "per_micrograph.png").name,
        "top_classes": top_classes_figure(ranked, assets_dir / "top_classes.png").name,
        "sessions": {},
    }
    for number, session in enumerate(sorted(sessions, key=lambda s: s.name)):
        if not session.ok:
            figures["sessions"][session.name] = {"ctf": None, "examples": None, "rejected": None}
            continue
        stem = f"s{number:02d}"
        examples = examples_figure(session, assets_dir / f"{stem}_examples.png")
        rejected = rejected_figure(session, assets_dir / f"{stem}_rejected.png")
        figures["sessions"][session.name] = {
            "ctf": ctf_figure(session, assets_dir / f"{stem}_ctf.png").name,
            "examples": examples.name if examples else None,
            "rejected": rejected.name if rejected else None,
        }
    return figures
