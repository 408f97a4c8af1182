"""Figure for judging realism: one micrograph of each ground-truth reason, with power spectra.

Every image (simulated or real) gets the same display: Fourier-binned to at most ``DISPLAY_PX``,
gently low-pass filtered, contrast clipped at the 1st/99th percentile; the power spectrum is a
tiled periodogram of the full-resolution image on a log scale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from screen.errors import ScreenError
from screen.processing.fourier import periodogram_average
from screen.report.plots import display_image
from screen.simulate.spec import MICROGRAPH_REASONS

DISPLAY_PX = 640
REAL_SUFFIXES = (".mrc", ".tif", ".tiff", ".jpg", ".jpeg", ".png")


def display_spectrum(image: np.ndarray, tile_px: int = 384) -> np.ndarray:
    """Log power spectrum (tiled periodogram), clipped for display, in [0, 1]."""
    power = np.log(periodogram_average(image, tile_px) + 1e-6)
    n = power.shape[0]
    power[n // 2 - 1 : n // 2 + 2, n // 2 - 1 : n // 2 + 2] = np.median(power)
    low, high = np.percentile(power, [5, 99.7])
    return np.clip((power - low) / max(high - low, 1e-9), 0, 1)


def pick_examples(simulated: Path) -> list[tuple[str, Path, pd.Series]]:
    """First micrograph of each reason found in a simulated screening (good first)."""
    tables = sorted(Path(simulated).glob("sessions/*/ground_truth/micrographs.csv"))
    if not tables:
        raise ScreenError(
            f"{simulated}: no sessions/*/ground_truth/micrographs.csv; "
            "is it a folder written by `screen simulate`?"
        )
    found: dict[str, tuple[str, Path, pd.Series]] = {}
    for table in tables:
        rows = pd.read_csv(table)
        for _, row in rows.iterrows():
            if row["reason"] not in found:
                found[row["reason"]] = (row["reason"], table.parents[1] / row["path"], row)
    return [found[r] for r in MICROGRAPH_REASONS if r in found]


def _read_any(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        import matplotlib.image as mpimg

        data = mpimg.imread(path).astype(np.float32)
        return data.mean(axis=2) if data.ndim == 3 else data
    from screen.io.images import read_image, summed_frames

    return summed_frames(read_image(path).data)


def _caption(row: pd.Series) -> str:
    return (
        f"{row['reason']}  ({row['verdict']})\n"
        f"df {0.5 * (row['defocus_u_um'] + row['defocus_v_um']):.2f} µm, "
        f"{int(row['n_particles'])} particles\nice {row['ice_thickness_A']:.0f} Å"
    )


def write_gallery(simulated: Path, out: Path, real_dir: Path | None = None) -> Path:
    """Write the PNG figure; with ``real_dir``, real micrographs form an extra pair of rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    examples = pick_examples(simulated)
    panels = [(_caption(row), _read_any(path)) for _, path, row in examples]
    real: list[tuple[str, np.ndarray]] = []
    if real_dir is not None:
        files = sorted(p for p in Path(real_dir).iterdir() if p.suffix.lower() in REAL_SUFFIXES)
        if not files:
            raise ScreenError(f"{real_dir}: no micrographs ({', '.join(REAL_SUFFIXES)}) found")
        real = [(f"REAL: {p.name[:28]}", _read_any(p)) for p in files]
    columns = max(len(panels), len(real))
    rows = 2 + (2 if real else 0)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False)
    for row_offset, group in ((0, panels), (2, real)):
        for col in range(columns):
            for r in (0, 1):
                axes[row_offset + r, col].axis("off") if row_offset + r < rows else None
            if col >= len(group):
                continue
            title, image = group[col]
            axes[row_offset, col].imshow(display_image(image, DISPLAY_PX), cmap="gray")
            axes[row_offset, col].set_title(title, fontsize=8)
            axes[row_offset + 1, col].imshow(display_spectrum(image), cmap="gray")
    fig.suptitle("screen simulate: micrographs (top) and their power spectra (below)", fontsize=11)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
