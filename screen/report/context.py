"""Stored run results -> the plain dict the report template renders.

Only the files that `screen run` wrote are read (see `screen.store.layout`); nothing is
recomputed except the verdict sentences, which are re-derived from the stored numbers and good
class averages so that the cross-condition verdicts always see every condition of the run.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from screen.errors import ScreenError
from screen.report.verdicts import (
    TITLES,
    LongAxis,
    decision,
    has_title,
    particle_long_axis_A,
    session_verdicts,
)
from screen.store.layout import RunLayout, SessionLayout

TABLE_COLUMNS_PER_PAGE = 6
"""Conditions per comparison table; more conditions continue in a further table."""

UNUSED_LISTED = 20
"""Unreadable or failed micrographs listed per condition (the rest are counted)."""


@dataclass(frozen=True)
class ClassSet:
    """One stored 2D classification: its table and averages (n, y, x)."""

    mask_diameter_A: float
    table: pd.DataFrame
    averages: np.ndarray


@dataclass(frozen=True)
class SessionResults:
    """Everything stored for one condition."""

    name: str
    layout: SessionLayout
    summary: dict
    micrographs: pd.DataFrame | None
    classes: dict[float, ClassSet] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the session finished."""
        return self.summary.get("status", "ok") == "ok"

    def best_classes(self) -> ClassSet | None:
        """The classification at the best mask diameter, if stored."""
        best = self.summary.get("best_mask_diameter_A")
        if best is None:
            return None
        return next((c for d, c in self.classes.items() if abs(d - float(best)) < 0.5), None)

    def good_averages(self) -> tuple[list[np.ndarray], list[int]]:
        """Good averages at the best mask diameter, most populated first, and their particles."""
        best = self.best_classes()
        return ([], []) if best is None else _good_of(best)

    def other_good_averages(self) -> tuple[list[np.ndarray], list[int]]:
        """Good averages (and particles) at every stored mask diameter but the best one."""
        averages: list[np.ndarray] = []
        counts: list[int] = []
        for _, more, n in self.other_good_by_mask():
            averages += more
            counts += n
        return averages, counts

    def other_good_by_mask(self) -> list[tuple[float, list[np.ndarray], list[int]]]:
        """``(mask_A, good averages, their particles)`` at every other mask diameter."""
        best = self.best_classes()
        return [
            (classes.mask_diameter_A, *_good_of(classes))
            for classes in self.classes.values()
            if classes is not best
        ]

    def long_axis(self) -> LongAxis | None:
        """The particle's long axis from its good averages (`particle_long_axis_A`)."""
        averages: list[np.ndarray] = []
        counts: list[int] = []
        masks_A: list[float] = []
        for classes in self.classes.values():
            more, n = _good_of(classes)
            averages += more
            counts += n
            masks_A += [classes.mask_diameter_A] * len(more)
        return particle_long_axis_A(
            averages,
            counts,
            masks_A,
            float(self.summary.get("pixel_size_2d_A") or 0.0),
            self.summary.get("diameter_A"),
        )


def _good_of(classes: ClassSet) -> tuple[list[np.ndarray], list[int]]:
    """Good averages of one classification, most populated first, and their particles."""
    good = classes.table[classes.table["label"] == "good"].sort_values(
        ["n_particles", "class_index"], ascending=[False, True]
    )
    pairs = [
        (int(i), int(n))
        for i, n in zip(good["class_index"], good["n_particles"], strict=True)
        if 0 <= int(i) < len(classes.averages)
    ]
    return [classes.averages[i] for i, _ in pairs], [n for _, n in pairs]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ScreenError(f"{path}: cannot read the session summary ({error})") from error


MICROGRAPH_TABLE_COLUMNS = ("micrograph", "path", "status", "error", "verdict", "reason")
"""Columns of micrographs.csv the report needs."""

CLASS_TABLE_COLUMNS = ("class_index", "n_particles", "label")
"""Columns of classes.csv the report needs."""


def _read_table(
    path: Path, columns: tuple[str, ...], keep_default_na: bool = False
) -> pd.DataFrame:
    """A stored CSV table with the columns the report needs.

    Raises
    ------
    ScreenError
        Naming the file, when it cannot be read as CSV or lacks a column.
    """
    fix = "re-run `screen run` with the same manifest and --out to rebuild it"
    try:
        table = pd.read_csv(path, keep_default_na=keep_default_na)
    except (OSError, ValueError) as error:  # pandas' parser and decode errors are ValueErrors
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ScreenError(f"{path}: not a readable CSV table ({reason}); {fix}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ScreenError(f"{path}: missing column(s) {', '.join(missing)}; {fix}")
    return table


def _read_classes(layout: SessionLayout, summary: dict) -> dict[float, ClassSet]:
    from screen.io.mrc import read_mrc

    diameters = [float(r["mask_diameter_A"]) for r in summary.get("diameter_search") or []]
    out: dict[float, ClassSet] = {}
    for diameter in diameters:
        folder = layout.classes_dir(diameter)
        table_path, stack_path = folder / "classes.csv", folder / "averages.mrcs"
        if not (table_path.is_file() and stack_path.is_file()):
            continue
        stack = read_mrc(stack_path).data
        stack = stack[None] if stack.ndim == 2 else stack
        table = _read_table(table_path, CLASS_TABLE_COLUMNS, keep_default_na=True)
        out[diameter] = ClassSet(diameter, table, stack)
    return out


def session_results(layout: RunLayout, summary: dict) -> SessionResults:
    """A condition's stored tables and class averages beside its ``summary``."""
    session_layout = layout.session(summary["session"])
    micrographs = (
        _read_table(session_layout.micrographs, MICROGRAPH_TABLE_COLUMNS)
        if session_layout.micrographs.is_file()
        else None
    )
    classes = _read_classes(session_layout, summary) if summary.get("status", "ok") == "ok" else {}
    return SessionResults(summary["session"], session_layout, summary, micrographs, classes)


def load_run(run_root: Path) -> list[SessionResults]:
    """Read the stored sessions of a run (sorted by name).

    The sessions of the last run's manifest when run.json lists them (a folder can hold
    sessions of earlier runs with other manifests, which are left out); otherwise every
    ``sessions/<name>/`` folder.

    Raises
    ------
    ScreenError
        If the run folder holds no ``sessions/<name>/summary.json``.
    """
    layout = RunLayout(Path(run_root))
    listed = read_provenance(layout).get("sessions")
    if isinstance(listed, list):
        folders = sorted(layout.session(str(name)).root for name in listed)
    else:
        folders = sorted(p for p in (layout.root / "sessions").glob("*") if p.is_dir())
    sessions = []
    for folder in folders:
        summary_path = layout.session(folder.name).summary
        if not summary_path.is_file():
            continue
        summary = _read_json(summary_path)
        summary.setdefault("session", folder.name)
        sessions.append(session_results(layout, summary))
    if not sessions:
        raise ScreenError(
            f"{layout.root}: no sessions/<name>/summary.json found; is it a folder written by "
            "`screen run`?"
        )
    return sessions


def rank_key(summary: dict, verdicts: list[str] | None = None) -> tuple:
    """Sort key: go, then no-go, each by good particles per micrograph; failed ones last.

    ``verdicts`` are the condition's verdict sentences (`decision` reads them); without them the
    summary's stored ``"verdicts"``. A condition flagged with preferred orientation, two sizes
    or aggregation is no go, so it ranks below every go condition whatever its particle count:
    more particles of few views are worth less than fewer of all views.
    """
    ok = summary.get("status", "ok") == "ok"
    stored = summary.get("verdicts") or []
    go = (
        ok
        and decision({**summary, "verdicts": stored if verdicts is None else verdicts})[0] == "go"
    )
    return (
        not ok,
        not go,
        -float(summary.get("good_particles_per_micrograph") or 0.0),
        summary["session"],
    )


def ranked_summaries(summaries: list[dict], verdicts: dict[str, list[str]]) -> list[dict]:
    """Summaries in report order (`rank_key`), judged by ``verdicts`` (per session name)."""
    return sorted(summaries, key=lambda s: rank_key(s, verdicts.get(s["session"])))


def _reason_counts(micrographs: pd.DataFrame | None) -> dict[str, int]:
    if micrographs is None or "verdict" not in micrographs:
        return {}
    bad = micrographs[micrographs["verdict"] == "bad"]
    return dict(Counter(str(r) for r in bad.get("reason", []) if str(r)))


def _unused_micrographs(micrographs: pd.DataFrame | None) -> list[dict[str, str]]:
    """The micrographs that could not be read or processed: name, status and why."""
    if micrographs is None or "status" not in micrographs:
        return []
    table = micrographs[micrographs["status"].astype(str) != "ok"]
    return [
        {
            "micrograph": str(row.get("micrograph", "")),
            "status": str(row["status"]),
            "error": str(row.get("error", "")),
        }
        for _, row in table.iterrows()
    ]


def all_verdicts(sessions: list[SessionResults]) -> dict[str, list[str]]:
    """Verdicts per session: every rule, with the best candidate chosen among all conditions.

    Stored verdicts that no rule of `screen.report.verdicts` produced (pipeline notes) are kept.
    """
    summaries = [s.summary for s in sessions]
    inputs = {}
    for s in sessions:
        averages, counts = s.good_averages()
        others, other_counts = s.other_good_averages()
        inputs[s.name] = dict(
            good_averages=averages,
            pixel_size_A=float(s.summary.get("pixel_size_2d_A") or 0.0),
            good_counts=counts,
            other_good_averages=others,
            other_good_counts=other_counts,
            other_masks_good=s.other_good_by_mask(),
            reason_counts=_reason_counts(s.micrographs),
        )
    first = {
        s.name: session_verdicts(s.summary, all_summaries=summaries, flags={}, **inputs[s.name])
        for s in sessions
    }
    out = {}
    for s in sessions:
        ours = session_verdicts(s.summary, all_summaries=summaries, flags=first, **inputs[s.name])
        stored = [
            str(v)
            for v in s.summary.get("verdicts") or []
            if not any(has_title(str(v), t) for t in TITLES) and str(v) not in ours
        ]
        out[s.name] = ours + stored
    return out


def _fmt_int(value) -> str:
    return "—" if value is None else f"{int(value):,}"


def _fmt_float(value, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):,.{digits}f}{unit}"


def _fmt_fraction(value) -> str:
    return "—" if value is None else f"{float(value):.0%}"


def _fmt_seconds(value) -> str:
    if value is None:
        return "—"
    seconds = float(value)
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


DIAMETER_METHODS = {
    "spread_edge": "edge of the picks' spread",
    "gap": "exclusion gap",
    "short_plateau": "edge of the picks' spread, over few trials",
    "refined": "refined on 2D averages",
    "scale_space": "scale-space peak",
    "canny": "averaged picks, Canny edge",
    "manifest": "from the manifest",
}
"""How each `screen.stages.diameter` method (summary ``diameter_method``) is named in the report."""


def long_axis_text(summary: dict, unit: str = " Å", short: bool = False) -> str:
    """The long axis `SessionResults.long_axis` put in a summary (``long_axis_A``), in words.

    ``short``: the comparison table's form ("179 (2D classes, 2.7:1)", "133 (diameter)").
    """
    value = summary.get("long_axis_A")
    if value is None:
        return "—"
    length, aspect = summary.get("classes_length_A"), summary.get("aspect_ratio")
    if length is not None and float(length) >= float(value) - 0.5:
        how = "2D classes" if short else "good 2D classes"
        if aspect:
            how += f", {float(aspect):.1f}:1" if short else f", about {float(aspect):.1f}:1"
    else:
        how = "diameter" if short else "the diameter; good 2D classes are shorter"
    return f"{float(value):,.0f}{unit} ({how})"


def _with_long_axis(session: SessionResults) -> dict:
    """The session's summary with its long axis (`long_axis_text`'s keys) when it has one."""
    found = session.long_axis() if session.ok else None
    if found is None:
        return session.summary
    return {
        **session.summary,
        "long_axis_A": found.long_axis_A,
        "classes_length_A": found.classes_length_A,
        "aspect_ratio": found.aspect_ratio if np.isfinite(found.aspect_ratio) else None,
    }


def diameter_text(summary: dict, unit: str = " Å") -> str:
    """The diameter, its uncertainty and how it was found: ``"181 ± 11 Å (exclusion gap)"``.

    A diameter the manifest gave is ``"180 Å (from the manifest)"``; summaries written before the
    method was stored show the number alone.

    Examples
    --------
    >>> diameter_text({"diameter_A": 181.2, "diameter_uncertainty_A": 10.6, "diameter_method": "gap"})
    '181 ± 11 Å (exclusion gap)'
    >>> diameter_text({"diameter_A": 180, "diameter_source": "manifest"})
    '180 Å (from the manifest)'
    >>> diameter_text({"diameter_A": 130, "diameter_source": "common",
    ...     "diameter_common_uncertainty_A": 12, "diameter_estimate_A": 167.3,
    ...     "diameter_uncertainty_A": 6, "diameter_method": "spread_edge"})
    "130 ± 12 Å (common to the run; this condition's own estimate 167 ± 6 Å (edge of the picks' spread))"
    >>> diameter_text({"diameter_A": 133, "diameter_uncertainty_A": 7,
    ...     "diameter_method": "spread_edge", "diameter_outline_centred": True})
    "133 ± 7 Å (edge of the picks' spread, picks at their outlines' centres)"
    """
    value = summary.get("diameter_A")
    if value is None:
        return "—"
    if summary.get("diameter_source") == "common":
        own = dict(summary, diameter_A=summary.get("diameter_estimate_A"), diameter_source=None)
        spread = summary.get("diameter_common_uncertainty_A")
        spread = f" ± {float(spread):.0f}" if spread else ""
        return (
            f"{float(value):,.0f}{spread}{unit} (common to the run; this condition's own "
            f"estimate {diameter_text(own, unit)})"
        )
    method = "manifest" if summary.get("diameter_source") == "manifest" else None
    method = method or summary.get("diameter_method")
    uncertainty = summary.get("diameter_uncertainty_A")
    spread = (
        f" ± {float(uncertainty):.0f}" if uncertainty is not None and method != "manifest" else ""
    )
    how = DIAMETER_METHODS.get(method, method) if method else ""
    if how and summary.get("diameter_outline_centred"):
        how += ", picks at their outlines' centres"
    how = f" ({how})" if how else ""
    return f"{float(value):,.0f}{spread}{unit}{how}"


NUMBER_ROWS: tuple[tuple[str, str, object], ...] = (
    ("Micrographs", "n_micrographs", _fmt_int),
    ("Good micrographs", "n_good_micrographs", _fmt_int),
    ("Good-micrograph fraction", "good_micrograph_fraction", _fmt_fraction),
    ("Particle diameter (Å)", "", lambda s: diameter_text(s, unit="")),
    ("Particle long axis (Å)", "", lambda s: long_axis_text(s, unit="", short=True)),
    ("Picked particles", "picked_particles", _fmt_int),
    ("Particles per micrograph", "particles_per_micrograph", lambda v: _fmt_float(v, 1)),
    ("Good particles", "good_particles", _fmt_int),
    ("Good-particle fraction", "good_particle_fraction", _fmt_fraction),
    ("Good particles per micrograph", "good_particles_per_micrograph", lambda v: _fmt_float(v, 1)),
    ("2D pixel size (Å)", "pixel_size_2d_A", lambda v: _fmt_float(v, 2)),
    ("Best mask diameter (Å)", "best_mask_diameter_A", lambda v: _fmt_float(v, 0)),
    ("CPU time", "cpu_seconds", _fmt_seconds),
)
"""Rows of the comparison table: label, summary key, formatter of its value (of the whole
summary when the key is empty)."""


def _table(ranked: list[dict]) -> list[dict]:
    """Comparison tables (one column per condition), split every `TABLE_COLUMNS_PER_PAGE`."""
    metadata_keys: list[str] = []
    for summary in ranked:
        for key in (summary.get("metadata") or {}).keys():
            if key not in metadata_keys:
                metadata_keys.append(key)
    tables = []
    for start in range(0, len(ranked), TABLE_COLUMNS_PER_PAGE):
        chunk = ranked[start : start + TABLE_COLUMNS_PER_PAGE]
        rows = [
            {
                "label": "Rank",
                "values": [
                    str(start + i + 1) if s.get("status", "ok") == "ok" else "failed"
                    for i, s in enumerate(chunk)
                ],
                "metadata": False,
            }
        ]
        for key in metadata_keys:
            rows.append(
                {
                    "label": key,
                    "values": [str((s.get("metadata") or {}).get(key, "")) for s in chunk],
                    "metadata": True,
                }
            )
        for label, key, fmt in NUMBER_ROWS:
            rows.append(
                {
                    "label": label,
                    "values": [
                        (fmt(s.get(key)) if key else fmt(s))
                        if s.get("status", "ok") == "ok"
                        else "—"
                        for s in chunk
                    ],
                    "metadata": False,
                }
            )
        tables.append({"conditions": [s["session"] for s in chunk], "rows": rows})
    return tables


def context_from_sessions(sessions: list[SessionResults], provenance: dict | None = None) -> dict:
    """The template's dict from loaded sessions (see `build_context`)."""
    verdicts = all_verdicts(sessions)
    ranked = ranked_summaries([_with_long_axis(s) for s in sessions], verdicts)
    by_name = {s.name: s for s in sessions}
    conditions = []
    for rank, summary in enumerate(ranked, start=1):
        session = by_name[summary["session"]]
        micrographs = session.micrographs
        n_unreadable = int(summary.get("n_unreadable") or 0)
        unused = _unused_micrographs(micrographs)
        go = decision({**summary, "verdicts": verdicts[session.name]})
        conditions.append(
            {
                "name": summary["session"],
                "rank": rank if session.ok else None,
                "ok": session.ok,
                "error": summary.get("error"),
                "metadata": {str(k): str(v) for k, v in (summary.get("metadata") or {}).items()},
                "verdicts": verdicts[session.name],
                "decision": go[0],
                "decision_reason": go[1],
                "domain_warning": summary.get("micrograph_domain_warning"),
                "class_domain_warning": summary.get("class_domain_warning"),
                "kept_all_micrographs": bool(summary.get("kept_all_micrographs")),
                "n_micrographs": int(summary.get("n_micrographs") or 0),
                "n_unreadable": n_unreadable,
                "warnings": [str(w) for w in summary.get("warnings") or []],
                "unused_micrographs": unused[:UNUSED_LISTED],
                "n_unused_not_listed": max(0, len(unused) - UNUSED_LISTED),
                "bad_reasons": sorted(
                    _reason_counts(micrographs).items(), key=lambda kv: (-kv[1], kv[0])
                ),
                "good_micrograph_fraction": _fmt_fraction(summary.get("good_micrograph_fraction")),
                "good_particle_fraction": _fmt_fraction(summary.get("good_particle_fraction")),
                "good_particles_per_micrograph": _fmt_float(
                    summary.get("good_particles_per_micrograph"), 1
                ),
                "diameter": diameter_text(summary),
                "long_axis": long_axis_text(summary),
                "best_mask_diameter": _fmt_float(summary.get("best_mask_diameter_A"), 0),
                "diameter_search": [
                    {
                        "mask_diameter": _fmt_float(r.get("mask_diameter_A"), 0),
                        "n_classes": int(r.get("n_classes") or 0),
                        "n_good_classes": int(r.get("n_good_classes") or 0),
                        "good_particles": _fmt_int(r.get("good_particles")),
                        "labels": ", ".join(f"{k} {v}" for k, v in (r.get("labels") or {}).items()),
                        "cut_by_mask": int(r.get("cut_by_mask") or 0),
                        "best": summary.get("best_mask_diameter_A") is not None
                        and abs(
                            float(r["mask_diameter_A"]) - float(summary["best_mask_diameter_A"])
                        )
                        < 0.5,
                    }
                    for r in summary.get("diameter_search") or []
                ],
                "stage_seconds": [
                    (stage, _fmt_seconds(sec))
                    for stage, sec in (summary.get("stage_seconds") or {}).items()
                ],
                "wall_time": _fmt_seconds(summary.get("wall_seconds")),
                "cpu_time": _fmt_seconds(summary.get("cpu_seconds")),
            }
        )
    provenance = provenance or {}
    return {
        "title": "Cryo-EM screening report",
        "version": str(provenance.get("version", provenance.get("screen_version", ""))),
        "created": str(provenance.get("created", provenance.get("started", ""))),
        "n_conditions": len(conditions),
        "n_failed": sum(not c["ok"] for c in conditions),
        "conditions": conditions,
        "ranking": [c for c in conditions if c["ok"]],
        "failed": [c for c in conditions if not c["ok"]],
        "tables": _table(ranked),
    }


def build_context(run_root: Path) -> dict:
    """Read a run folder's stored results into the plain dict the report template renders.

    Parameters
    ----------
    run_root : Path
        Output folder of `screen run` (see `screen.store.layout.RunLayout`).

    Returns
    -------
    dict
        ``conditions`` (ranked by `rank_key`: go before no-go, each by good particles per
        micrograph; failed ones last, with their error), ``tables`` (the comparison: one column per condition, at most
        `TABLE_COLUMNS_PER_PAGE` per table), ``ranking``, ``failed``, and run facts (``version``,
        ``created``) from run.json when present. Values are display strings.
    """
    layout = RunLayout(Path(run_root))
    return context_from_sessions(load_run(layout.root), read_provenance(layout))


def read_provenance(layout: RunLayout) -> dict:
    """run.json as a dict; empty when absent or unreadable (the report does without it)."""
    if not layout.provenance.is_file():
        return {}
    try:
        data = json.loads(layout.provenance.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
