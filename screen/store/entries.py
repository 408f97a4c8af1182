"""Stage records read back from the stage cache, checked for shape.

Each ``*_from`` function rebuilds a typed record from what `screen.pipeline` stored with
`screen.store.cache.StageCache` and raises one of `screen.store.cache.SHAPE_ERRORS` when the entry
does not have the record's shape (missing fields, wrong types or lengths): the cache then treats
it as a miss and the stage is recomputed, instead of the session failing on every re-run.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from screen.stages.records import (
    CLASS_LABELS,
    ClassAverages,
    ClassVerdicts,
    CtfFit,
    DiameterEstimate,
    MicrographVerdict,
    Picks,
)

_VERDICT_MEASURES = (
    "opaque_fraction",
    "carbon_fraction",
    "crystalline_fraction",
    "grey_level",
    "noise_variance",
    "anisotropy",
    "anisotropy_noise",
    "grey_min",
    "grey_max",
    "strong_blobs_per_um2",
    "blob_tail_asymmetry",
    "p_good_flattened",
)
"""The verdict's optional float measures (None where not measured or cached before they were)."""


def verdict_from(cached: dict) -> MicrographVerdict:
    """A micrograph verdict from its cached JSON."""
    verdict = str(cached["verdict"])
    if verdict not in ("good", "bad"):
        raise ValueError(f"verdict {verdict!r}")
    reason = cached["reason"]
    measures = {
        name: None if cached.get(name) is None else float(cached[name])
        for name in _VERDICT_MEASURES
    }
    return MicrographVerdict(
        float(cached["p_good"]),
        verdict,
        None if reason is None else str(reason),
        {str(k): float(v) for k, v in dict(cached["reason_scores"]).items()},
        strong_blobs=None if cached.get("strong_blobs") is None else int(cached["strong_blobs"]),
        **measures,
    )


def ctf_from(cached: dict) -> CtfFit:
    """A CTF fit from its cached JSON."""
    return CtfFit(**{f.name: float(cached[f.name]) for f in dataclasses.fields(CtfFit)})


def ctf_or_note_from(cached: dict) -> CtfFit | str:
    """A cached CTF fit, or why none could be fitted (``{"not_measurable": reason}``)."""
    if "not_measurable" in cached:
        return str(cached["not_measurable"])
    return ctf_from(cached)


def motion_from(cached: dict) -> dict:
    """The cached motion record (the shifts): a dict with ``shifts_A``."""
    np.asarray(cached["shifts_A"], dtype=float)
    return cached


def diameter_from(cached: dict) -> DiameterEstimate:
    """A diameter estimate from its cached numbers (the average image is not kept)."""
    uncertainty_A = cached.get("uncertainty_A")
    return DiameterEstimate(
        float(cached["diameter_A"]),
        float(cached["edge_diameter_A"]),
        np.zeros((0, 0)),
        float(cached["pixel_size_A"]),
        float("nan") if uncertainty_A is None else float(uncertainty_A),
        str(cached.get("method", "")),
        bool(cached.get("outline_centred", False)),
    )


def _vector(arrays: dict[str, np.ndarray], name: str, n: int | None = None) -> np.ndarray:
    value = np.asarray(arrays[name])
    if value.ndim != 1 or (n is not None and len(value) != n):
        raise ValueError(f"{name}: shape {value.shape}")
    return value


def picks_from(arrays: dict[str, np.ndarray]) -> Picks:
    """Picks from their cached arrays (x, y, score of equal length)."""
    x = _vector(arrays, "x_px")
    return Picks(x, _vector(arrays, "y_px", len(x)), _vector(arrays, "score", len(x)))


def extracted_from(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One micrograph's extracted particles: ``images`` (n, box, box), pixel size, x, y."""
    images = np.asarray(arrays["images"])
    if images.ndim != 3:
        raise ValueError(f"images: shape {images.shape}")
    return {
        "images": images,
        "pixel_size_A": np.asarray(float(arrays["pixel_size_A"])),
        "x_px": _vector(arrays, "x_px", len(images)),
        "y_px": _vector(arrays, "y_px", len(images)),
    }


def classes_from(arrays: dict[str, np.ndarray]) -> ClassAverages:
    """A 2D classification from its cached arrays."""
    averages = np.asarray(arrays["averages"])
    if averages.ndim != 3:
        raise ValueError(f"averages: shape {averages.shape}")
    assignments = _vector(arrays, "assignments")
    shift = np.asarray(arrays["shift_px"])
    if shift.shape != (len(assignments), 2):
        raise ValueError(f"shift_px: shape {shift.shape}")
    return ClassAverages(
        averages,
        assignments,
        _vector(arrays, "counts", len(averages)),
        float(arrays["mask_diameter_A"]),
        float(arrays["pixel_size_A"]),
        _vector(arrays, "psi_deg", len(assignments)),
        shift,
    )


def class_verdicts_from(cached: dict) -> ClassVerdicts:
    """Class labels from their cached JSON (one label, four scores, one flag per class)."""
    labels = tuple(str(label) for label in cached["labels"])
    if any(label not in CLASS_LABELS for label in labels):
        raise ValueError(f"labels {labels}")
    scores = np.asarray(cached["scores"], dtype=float)
    moved = np.asarray(cached["moved_by_saliency"], dtype=bool)
    if scores.size != len(labels) * len(CLASS_LABELS) or moved.shape != (len(labels),):
        raise ValueError(f"scores {scores.shape}, moved_by_saliency {moved.shape}")
    return ClassVerdicts(labels, scores.reshape(len(labels), len(CLASS_LABELS)), moved)
