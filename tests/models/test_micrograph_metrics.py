"""Good/bad metrics and the CTF-cutoff baseline."""

import numpy as np
import pytest

from screen.models.micrograph_metrics import (
    best_resolution_cutoff,
    binary_metrics,
    reason_metrics,
)


def test_binary_metrics_count_both_classes():
    truth = np.array([True, True, True, False, False])
    called = np.array([True, True, False, True, False])
    m = binary_metrics(truth, called)
    assert m.accuracy == pytest.approx(3 / 5)
    assert m.good_precision == pytest.approx(2 / 3) and m.good_recall == pytest.approx(2 / 3)
    assert m.bad_precision == pytest.approx(1 / 2) and m.bad_recall == pytest.approx(1 / 2)
    assert m.good_called_bad == pytest.approx(1 / 3)
    assert m.confusion == ((2, 1), (1, 1))
    with pytest.raises(ValueError):
        binary_metrics(truth, called[:3])


def test_best_cutoff_separates_sharp_from_blurred_fits():
    resolution = np.array([4.0, 4.5, 5.0, 9.0, 12.0, np.nan])
    truth = np.array([True, True, True, False, False, False])
    cutoff = best_resolution_cutoff(resolution, truth)
    assert 5.0 <= cutoff < 9.0
    assert np.isnan(best_resolution_cutoff(np.array([np.nan]), np.array([True])))


def test_reason_metrics_per_true_reason():
    truth = ["good", "empty", "empty", "carbon"]
    predicted = ["good", "empty", "good", "empty"]
    called = np.array([True, False, True, False])
    m = reason_metrics(truth, predicted, called)
    assert set(m) == {"empty", "carbon"}
    assert m["empty"] == {"n": 2, "called_bad": 0.5, "reason_right": 0.5}
    assert m["carbon"]["called_bad"] == 1.0 and m["carbon"]["reason_right"] == 0.0
