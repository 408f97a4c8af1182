"""Metrics of a good/bad micrograph classifier and of the CTF-resolution cutoff baseline.

Pure functions of label and score arrays: ``screen evaluate micrographs`` prints them for the
micrograph-assessment model and, side by side, for the paper's baseline (a micrograph is bad when
its CTF fit resolution is worse than a cutoff; Li et al. 2020, Fig. 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BinaryMetrics:
    """Good/bad verdicts against the truth ("good" is the positive class)."""

    n: int
    n_good: int
    accuracy: float
    good_precision: float
    good_recall: float
    bad_precision: float
    bad_recall: float
    good_called_bad: float  # false-negative rate: share of good micrographs called bad
    confusion: tuple[tuple[int, int], tuple[int, int]]  # rows truth (good, bad), cols called


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def binary_metrics(truth_good: np.ndarray, called_good: np.ndarray) -> BinaryMetrics:
    """Accuracy, precision and recall of both classes, good-called-bad rate, confusion."""
    truth = np.asarray(truth_good, bool)
    called = np.asarray(called_good, bool)
    if truth.shape != called.shape:
        raise ValueError(f"{truth.shape} truths but {called.shape} verdicts")
    gg = int(np.sum(truth & called))
    gb = int(np.sum(truth & ~called))
    bg = int(np.sum(~truth & called))
    bb = int(np.sum(~truth & ~called))
    return BinaryMetrics(
        n=int(truth.size),
        n_good=int(truth.sum()),
        accuracy=_ratio(gg + bb, truth.size),
        good_precision=_ratio(gg, gg + bg),
        good_recall=_ratio(gg, gg + gb),
        bad_precision=_ratio(bb, bb + gb),
        bad_recall=_ratio(bb, bb + bg),
        good_called_bad=_ratio(gb, gg + gb),
        confusion=((gg, gb), (bg, bb)),
    )


def best_resolution_cutoff(fit_resolution_A: np.ndarray, truth_good: np.ndarray) -> float:
    """The CTF-fit-resolution cutoff (Å) with the best accuracy on this set.

    A micrograph is called good when its fit resolution is at most the cutoff. Choosing the
    cutoff on the evaluated set itself makes the baseline as strong as it can be (the paper used
    a fixed 4 Å, at its pixel sizes); non-finite resolutions (failed fits) are always bad.
    """
    resolution = np.asarray(fit_resolution_A, float)
    truth = np.asarray(truth_good, bool)
    finite = np.isfinite(resolution)
    candidates = np.unique(resolution[finite])
    if candidates.size == 0:
        return float("nan")
    best_cutoff, best_accuracy = float(candidates[0]), -1.0
    for cutoff in candidates:
        called = finite & (resolution <= cutoff)
        accuracy = float(np.mean(called == truth))
        if accuracy > best_accuracy:
            best_cutoff, best_accuracy = float(cutoff), accuracy
    return best_cutoff


def reason_metrics(
    truth_reasons: list[str], predicted_reasons: list[str], called_good: np.ndarray
) -> dict[str, dict[str, float]]:
    """Per true bad reason: how many, the share called bad, the share whose reason is right."""
    called = np.asarray(called_good, bool)
    out: dict[str, dict[str, float]] = {}
    for reason in sorted({r for r in truth_reasons if r != "good"}):
        mine = np.array([r == reason for r in truth_reasons])
        right = np.array([p == reason for p in predicted_reasons])
        out[reason] = {
            "n": int(mine.sum()),
            "called_bad": float(np.mean(~called[mine])),
            "reason_right": float(np.mean(right[mine])),
        }
    return out
