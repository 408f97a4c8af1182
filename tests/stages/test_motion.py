import dataclasses

import numpy as np
import pytest

from screen.simulate.presets import prex1_small
from screen.simulate.render import render_micrograph
from screen.simulate.session import session_models, session_plans
from screen.stages.motion import MotionParams, align_frames


@pytest.fixture(scope="module")
def movie():
    spec = dataclasses.replace(prex1_small(2), n_frames=10, frame_px=(384, 384))
    plan = session_plans(spec, 5)[0]
    rendered = render_micrograph(
        plan, session_models(spec.sessions[5]), spec.frame_px, spec.pixel_size_A, 10
    )
    return plan, rendered, spec.pixel_size_A


def test_recovers_the_simulated_stage_drift(movie):
    plan, rendered, pixel_size_A = movie
    result = align_frames(rendered.frames, pixel_size_A, MotionParams())
    truth = plan.trajectory_A - plan.trajectory_A.mean(axis=0)
    assert np.linalg.norm(np.ptp(truth, axis=0)) > 3.0  # there is drift to correct
    rms = np.sqrt(((result.shifts_A - truth) ** 2).sum(axis=1).mean())
    assert rms < 0.6  # Å, with 2.5 Å pixels


def test_fixed_hot_pixels_do_not_pin_the_alignment(movie):
    # Camera defects sit at the same pixels in every frame: unhandled, 40 of them pulled the
    # alignment to zero shift (3.1 Å rms on this ~10 Å drift).
    plan, rendered, pixel_size_A = movie
    frames = np.array(rendered.frames, dtype=np.float32)
    where = np.random.default_rng(0).integers(0, frames[0].size, 40)
    for frame in frames:
        frame.reshape(-1)[where] = 50.0 * float(frames.mean())
    result = align_frames(frames, pixel_size_A, MotionParams())
    truth = plan.trajectory_A - plan.trajectory_A.mean(axis=0)
    assert np.sqrt(((result.shifts_A - truth) ** 2).sum(axis=1).mean()) < 0.6
    assert result.micrograph.max() < 5.0 * float(np.median(result.micrograph))  # no streaks


def test_aligned_sum_is_sharper_than_the_plain_sum(movie):
    plan, rendered, pixel_size_A = movie
    aligned = align_frames(rendered.frames, pixel_size_A, MotionParams()).micrograph
    plain = rendered.frames.sum(axis=0)
    signal = rendered.expected_counts - rendered.expected_counts.mean()

    def correlation(image):
        image = image - image.mean()
        return float((image * signal).sum() / np.sqrt((image**2).sum() * (signal**2).sum()))

    assert correlation(aligned) > correlation(plain)
    assert abs(aligned.mean() - plain.mean()) < 1e-3 * plain.mean()


def test_single_frame_and_bad_shape():
    frame = np.random.default_rng(0).poisson(5.0, (1, 64, 64)).astype(np.float32)
    result = align_frames(frame, 1.0, MotionParams())
    assert np.array_equal(result.micrograph, frame[0]) and result.shifts_A.shape == (1, 2)
    with pytest.raises(ValueError, match="frames, y, x"):
        align_frames(np.zeros((64, 64)), 1.0, MotionParams())
