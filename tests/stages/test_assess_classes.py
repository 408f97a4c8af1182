import dataclasses

import numpy as np
import pytest

from screen.config import RunConfig
from screen.errors import ScreenError
from screen.models.class_assess import random_structure, synthetic_class_average
from screen.stages.assess_classes import (
    BACKEND,
    ClassAssessParams,
    MaskClasses,
    assess_classes,
    cut_by_mask,
    load_class_model,
    session_class_check,
)
from screen.stages.records import CLASS_LABELS, ClassVerdicts

PARAMS = ClassAssessParams()
# On these 24 v1-style drawings (labels by the enclosing diameter), saliency check on: v1 0.92,
# v3 0.75, v4 0.71 (v3/v4 were trained to other labels: a drawn "clip" with a neighbour inside a
# large mask they call good, as on real averages). A floor that a broken model (0.25) fails.
STAGE_ACCURACY_MIN = 0.7
SALIENCY_ON = dataclasses.replace(PARAMS, use_saliency=True)


@pytest.fixture(scope="module")
def model():
    return load_class_model(PARAMS)


def test_backend_contract():
    assert BACKEND.stage == "assess_classes"
    assert BACKEND.params_type is ClassAssessParams
    assert BACKEND.compute is assess_classes
    assert BACKEND.key == "assess_classes/builtin@1"


def test_wrong_input_size_is_a_clear_error():
    with pytest.raises(ScreenError, match="expects 64 px"):
        load_class_model(dataclasses.replace(PARAMS, input_px=96))


def test_empty_and_flat_averages_are_noise(model):
    averages = np.zeros((3, 48, 48), np.float32)
    averages[1] = 2.5  # constant
    verdicts = assess_classes(averages, 160.0, 4.0, PARAMS, model)
    assert isinstance(verdicts, ClassVerdicts)
    assert verdicts.labels == ("noise", "noise", "noise")
    np.testing.assert_array_equal(verdicts.scores[:, CLASS_LABELS.index("noise")], 1.0)
    assert not verdicts.moved_by_saliency.any()
    none = assess_classes(np.zeros((0, 48, 48)), 160.0, 4.0, PARAMS, model)
    assert none.labels == () and none.scores.shape == (0, 4)


def test_labels_match_truth_on_unseen_structures(model):
    # Each synthetic average has its own box, mask and pixel size, so each is its own call.
    rng = np.random.default_rng(11)
    structures = [random_structure(300_000 + i) for i in range(3)]
    averages = [
        (synthetic_class_average(CLASS_LABELS[i % 4], structures[i % 3], rng), CLASS_LABELS[i % 4])
        for i in range(24)
    ]
    correct = 0
    for item, label in averages:
        verdicts = assess_classes(
            item.image[None], item.mask_diameter_A, item.pixel_size_A, SALIENCY_ON, model
        )
        assert verdicts.scores.shape == (1, 4)
        np.testing.assert_allclose(verdicts.scores.sum(axis=1), 1.0, rtol=1e-4)
        correct += verdicts.labels[0] == label
        if verdicts.moved_by_saliency[0]:
            assert verdicts.labels[0] == "clip"
    assert correct / len(averages) >= STAGE_ACCURACY_MIN


def _mask_classes(mask_A: float, counts: list[int], labels: list[str]) -> MaskClasses:
    scores = np.zeros((len(counts), len(CLASS_LABELS)), np.float32)
    for i, label in enumerate(labels):
        scores[i, CLASS_LABELS.index(label)] = 0.9
        scores[i, CLASS_LABELS.index("good")] += 0.05
    verdicts = ClassVerdicts(tuple(labels), scores, np.zeros(len(counts), bool))
    return MaskClasses(mask_A, np.asarray(counts), verdicts)


def test_session_class_check_warns_when_a_populated_session_keeps_nothing():
    # Magellon's rings with class_assess_v3: every class of ~128 particles called noise.
    per_mask = [
        _mask_classes(129.0, [94, 20, 10, 3, 1], ["noise"] * 5),
        _mask_classes(193.0, [71, 36, 17, 3, 1], ["noise", "noise", "clip", "noise", "noise"]),
    ]
    warning = session_class_check(per_mask, "class_assess_v3")
    assert warning is not None
    assert warning.startswith("128 particles classified at 2 masks (129-193 Å)")
    assert "largest class (94 particles, mask 129 Å) was called noise (P(good) 0.05)" in warning
    assert "outside its trained domain" in warning and "--class-weights class_assess_v1" in warning
    assert "--class-weights class_assess_v3" in session_class_check(per_mask, "class_assess_v1")


def test_session_class_check_is_quiet_with_good_classes_or_few_particles():
    noise_only = _mask_classes(129.0, [94, 20, 10, 3, 1], ["noise"] * 5)
    one_good = _mask_classes(193.0, [71, 36, 17, 3, 1], ["good"] + ["noise"] * 4)
    assert session_class_check([noise_only, one_good], "class_assess_v3") is None
    # 1 of 128 good particles (under 2 %) still warns
    tiny_good = _mask_classes(193.0, [71, 36, 17, 3, 1], ["noise"] * 4 + ["good"])
    assert session_class_check([noise_only, tiny_good], "class_assess_v3") is not None
    small = _mask_classes(129.0, [40, 20, 10], ["noise"] * 3)
    assert session_class_check([small], "class_assess_v3") is None
    assert session_class_check([], "class_assess_v3") is None


def _verdicts(labels: list[str]) -> ClassVerdicts:
    scores = np.eye(len(CLASS_LABELS))[[CLASS_LABELS.index(label) for label in labels]]
    return ClassVerdicts(tuple(labels), scores, np.zeros(len(labels), bool))


def test_cut_by_mask_makes_good_classes_clip_only_under_the_particle():
    verdicts = _verdicts(["good", "noise", "good", "clip"])
    # 0.5 of a 150-A particle: the mask cuts it; good classes become clip, the rest stay
    cut = cut_by_mask(verdicts, 75.0, 150.0, 0.6)
    assert cut.labels == ("clip", "noise", "clip", "clip")
    assert cut.cut_by_mask.tolist() == [True, False, True, False]
    np.testing.assert_array_equal(cut.scores, verdicts.scores)  # the network's scores are kept
    # 0.75 of it is left to the network, as is any mask when the diameter is unknown or rule off
    assert cut_by_mask(verdicts, 112.5, 150.0, 0.6).labels == verdicts.labels
    assert cut_by_mask(verdicts, 75.0, 0.0, 0.6).labels == verdicts.labels
    assert cut_by_mask(verdicts, 75.0, 150.0, 0.0).labels == verdicts.labels


def test_screen_runs_sweep_leaves_every_mask_but_the_smallest_to_the_network():
    rule = ClassAssessParams().min_mask_diameters
    factors = RunConfig().mask_factors
    assert [f < rule for f in factors] == [f == min(factors) for f in factors]
