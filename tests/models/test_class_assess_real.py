"""Class assessment on real class averages: our 2D on EMPIAR-10017 particles.

The fixture holds 48 averages (24 labelled good, 24 noise, chosen with a fixed seed) of the
held-out set of ``bench/real_class_examples.py --fixture``: five EMPIAR-10017 exports that
never reached training, picked and classified by the built-in stages at 3.75 Å/px, labelled
from the exports' annotated particle centres (good: >= 70 % of members on a centre at a mask of
0.85-1.8 x 180 Å; noise: <= 35 %, or a mask that cuts the particle). On the whole held-out set
(432 averages) class_assess_v7 (the run's model until 2026-12-07, now class_assess_v8: 0.975 /
0.938 on 435) measured good precision 0.940, recall 0.887 (v6
0.952 / 0.887, v5 0.950 / 0.859, v4 0.962 / 0.853, v3 0.952 / 0.893); v1 1.000 / 0.107
(models/class_assess_v7.md). On these 48: v6, v5, v4 and v3 recall 0.92, noise called good 0.04; v1 (recall 0.17) and v2
(0.54) fail the test.
"""

from pathlib import Path

import numpy as np
import pytest

from screen.stages.assess_classes import ClassAssessParams, assess_classes, load_class_model

FIXTURE = Path(__file__).parents[1] / "data" / "empiar10017_class_averages.npz"


def _verdicts(params: ClassAssessParams) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(FIXTURE)
    model = load_class_model(params)
    called = []
    for k in range(len(data["label"])):
        average = data[f"average_{k:02d}"].astype(np.float32)[None]
        mask_A, pixel_A = float(data["mask_diameter_A"][k]), float(data["pixel_size_A"][k])
        called.append(assess_classes(average, mask_A, pixel_A, params, model).labels[0])
    return np.asarray(data["label"]), np.asarray(called)


@pytest.fixture(scope="module")
def run_model_verdicts():
    return _verdicts(ClassAssessParams())


def test_the_run_model_keeps_real_good_classes(run_model_verdicts):
    truth, called = run_model_verdicts
    recall = np.mean(called[truth == "good"] == "good")
    assert recall >= 0.75, recall


def test_the_run_model_drops_real_noise_classes(run_model_verdicts):
    truth, called = run_model_verdicts
    precision = np.mean(truth[called == "good"] == "good")
    assert precision >= 0.85, precision
    assert np.mean(called[truth == "noise"] == "good") <= 0.15


def test_the_external_averages_model_keeps_real_good_and_drops_real_noise():
    """`screen evaluate classes`'s model (class_assess_v8) on the same real averages."""
    from dataclasses import replace

    from screen.stages.assess_classes import EXTERNAL_AVERAGES_MODEL

    truth, called = _verdicts(replace(ClassAssessParams(), model=EXTERNAL_AVERAGES_MODEL))
    assert np.mean(called[truth == "good"] == "good") >= 0.75
    assert np.mean(called[truth == "noise"] == "good") <= 0.15
