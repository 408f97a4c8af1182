import dataclasses

import numpy as np
import pytest

from screen.errors import ScreenError
from screen.models.class_assess import random_structure, synthetic_class_average
from screen.stages.assess_classes import (
    BACKEND,
    ClassAssessParams,
    assess_classes,
    load_class_model,
)
from screen.stages.records import CLASS_LABELS, ClassVerdicts

PARAMS = ClassAssessParams()
STAGE_ACCURACY_MIN = 0.75  # measured 0.92 on these 24 averages, saliency check on
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
