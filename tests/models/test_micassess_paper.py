"""The paper's MicAssess kind (ResNet34, 494 px, sigmoid P(good)): preprocessing and loading."""

import numpy as np
import pytest

from screen.models import micassess as ma
from screen.models import micassess_paper as paper
from screen.stages.assess_micrographs import MicrographAssessParams, assess_micrographs


def test_k2_frames_are_squashed_and_k3_frames_give_two_squares():
    rng = np.random.default_rng(0)
    k2_like = rng.poisson(4.0, (1024, 1060)).astype(np.float32)
    k3_like = rng.poisson(4.0, (800, 1130)).astype(np.float32)
    (square,) = paper.paper_squares(k2_like)
    left_right = paper.paper_squares(k3_like)
    assert square.shape == (494, 494) and left_right.shape == (2, 494, 494)
    yy, xx = np.indices((494, 494))
    outside = np.hypot(yy - 247, xx - 247) > 247
    for image in (square, *left_right):
        assert np.all(image[outside] == 0.0)
        # z-scored over the whole square, before the mask (as the original)
        assert abs(image[~outside].mean()) < 0.1 and 0.8 < image[~outside].std() < 1.2
    # a tall frame is the same as its transpose
    np.testing.assert_allclose(paper.paper_squares(k3_like.T), left_right, atol=1e-5)
    with pytest.raises(ValueError, match="short side"):
        paper.paper_squares(np.ones((300, 400), np.float32))


@pytest.fixture(scope="module")
def resnet34():
    return paper.build_resnet34()


def test_resnet34_has_the_papers_size(resnet34):
    assert resnet34.inputs[0].shape[1:] == (494, 494, 1)
    assert resnet34.outputs[0].shape[1:] == (1,)
    # ResNet34 without its 1000-class head, on one channel: 21.3 M weights
    assert 21.0e6 < resnet34.count_params() < 21.5e6
    assert paper.is_paper_model(resnet34)


@pytest.mark.parametrize("kind", ["keras2_weights", "keras3_weights", "full"])
def test_h5_weights_run_in_the_pipeline_stage(resnet34, tmp_path, kind):
    path = tmp_path / "micassess_051419.h5"
    if kind == "keras2_weights":
        import h5py
        from keras.src.legacy.saving import legacy_h5_format

        with h5py.File(path, "w") as handle:
            legacy_h5_format.save_weights_to_hdf5_group(handle, resnet34)
    elif kind == "keras3_weights":
        resnet34.save_weights(tmp_path / "micassess_051419.weights.h5")
        (tmp_path / "micassess_051419.weights.h5").rename(path)
    else:
        resnet34.save(path)  # legacy full-model HDF5, as the original file
    model = ma.load_micassess(path)
    assert paper.is_paper_model(model)
    rng = np.random.default_rng(1)
    images = [rng.poisson(3.0, (520, 760)).astype(np.float32), np.zeros((600, 600))]
    verdicts = assess_micrographs(images, [1.0, 1.0], MicrographAssessParams(), model)
    assert 0.0 <= verdicts[0].p_good <= 1.0
    assert verdicts[0].reason is None  # no reason head
    assert verdicts[1].verdict == "bad"  # blank frame: a verdict, not a crash
    expected = float(resnet34(paper.paper_squares(images[0])[..., None]).numpy().max())
    assert verdicts[0].p_good == pytest.approx(expected, abs=1e-5)


def test_a_bad_h5_is_a_clear_error(tmp_path):
    from screen.errors import ScreenError

    path = tmp_path / "broken.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(ScreenError, match="broken.h5"):
        ma.load_micassess(path)
