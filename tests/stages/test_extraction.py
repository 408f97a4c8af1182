"""Extraction on simulated micrographs: shape, pixel size, normalisation, centred particles."""

import numpy as np
import pytest

from screen.processing.boxes import circular_mask, radial_profile
from screen.processing.ctf import ctf_2d
from screen.simulate.presets import prex1_small
from screen.simulate.render import render_micrograph
from screen.simulate.session import session_models, session_plans
from screen.stages.extraction import (
    BACKEND,
    ExtractParams,
    box_size_px,
    ctf_params,
    extract_particles,
    phase_flip,
    wiener_correct,
)
from screen.stages.records import CtfFit, Optics, Picks

DIAMETER_A = 140.0
PIXEL_SIZE_A = 2.5


@pytest.fixture(scope="module")
def truth_stacks():
    spec = prex1_small()
    optics = Optics(PIXEL_SIZE_A, spec.voltage_kV, spec.cs_mm, spec.amplitude_contrast)
    plans = [p for p in session_plans(spec, 5) if p.reason == "good"][:5]
    models = session_models(spec.sessions[5])
    stacks = []
    for plan in plans:
        rendered = render_micrograph(plan, models, spec.frame_px, PIXEL_SIZE_A)
        picks = Picks(
            plan.particle_x_A / PIXEL_SIZE_A,
            plan.particle_y_A / PIXEL_SIZE_A,
            np.ones(plan.n_particles, dtype=np.float32),
        )
        ctf = CtfFit(
            plan.ctf.defocus_u_A, plan.ctf.defocus_v_A, plan.ctf.astigmatism_angle_deg, 4.0, 1.0
        )
        stacks.append(
            extract_particles(
                rendered.counts, picks, PIXEL_SIZE_A, DIAMETER_A, ctf, optics, ExtractParams()
            )
        )
    return stacks


def test_shape_pixel_size_and_indices(truth_stacks):
    stack = truth_stacks[0]
    params = ExtractParams()
    assert stack.pixel_size_A == pytest.approx(params.target_pixel_size_A, rel=0.05)
    box = box_size_px(DIAMETER_A, stack.pixel_size_A, params)
    assert box % 2 == 0 and box * stack.pixel_size_A >= 2 * DIAMETER_A
    assert stack.images.shape == (len(stack.x_px), box, box)
    assert stack.images.dtype == np.float32
    assert np.all(stack.micrograph_index == 0)


def test_background_is_normalised(truth_stacks):
    stack = truth_stacks[0]
    outside = ~circular_mask(stack.images.shape[-1], DIAMETER_A / stack.pixel_size_A / 2)
    values = stack.images[:, outside]
    np.testing.assert_allclose(values.mean(axis=1), 0.0, atol=1e-4)
    np.testing.assert_allclose(values.std(axis=1), 1.0, atol=1e-3)


def test_particles_are_white_and_centred(truth_stacks):
    images = np.concatenate([s.images for s in truth_stacks])
    pixel_size_A = truth_stacks[0].pixel_size_A
    profile = radial_profile(images.mean(axis=0))
    radius_A = np.arange(len(profile)) * pixel_size_A
    # The visible protein of a P-Rex1 projection spans ~0.6 of its enclosing sphere.
    disc = (radius_A <= 0.3 * DIAMETER_A).astype(float)
    assert np.corrcoef(profile, disc)[0, 1] > 0.7  # a centred round blob
    inner = profile[radius_A <= 0.25 * DIAMETER_A].mean()
    outer = profile[radius_A >= 0.6 * DIAMETER_A]
    assert inner > 0.1  # protein white (RELION), well above the normalised background
    assert inner > 5 * np.abs(outer).max()


def test_no_picks_give_an_empty_stack():
    image = np.random.default_rng(0).poisson(50.0, size=(256, 256)).astype(np.float32)
    empty = Picks(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.float32))
    stack = extract_particles(
        image, empty, 1.0, 100.0, CtfFit(15000, 15000, 0, 5, 1), Optics(1.0), ExtractParams()
    )
    assert stack.images.shape[0] == 0 and stack.images.shape[1] == stack.images.shape[2]


def test_backend_contract():
    assert BACKEND.stage == "extraction"
    assert BACKEND.params_type is ExtractParams
    assert BACKEND.compute is extract_particles


def test_the_wiener_correction_is_the_flip_at_the_ctf_peaks_and_silent_at_its_zeros():
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((256, 256)).astype(np.float32)
    ctf, optics, pixel_A = CtfFit(15000.0, 14000.0, 30.0, 6.0, 1.0), Optics(2.0), 2.0
    values = ctf_2d(noise.shape, pixel_A, ctf_params(ctf, optics))  # the rfft2 half plane
    spectrum = np.fft.rfft2
    wiener = spectrum(wiener_correct(noise, pixel_A, ctf, optics, 0.1))
    flipped = spectrum(phase_flip(noise, pixel_A, ctf, optics))
    original = spectrum(noise)
    peaks, zeros = np.abs(values) > 0.98, np.abs(values) < 0.03
    assert peaks.sum() > 100 and zeros.sum() > 100
    # At the peaks both give the same Fourier components (gain -sign(CTF), magnitude 1) ...
    # (apply_transfer tapers the borders, so components match closely, not exactly)
    agreement = np.abs(wiener[peaks] - flipped[peaks]) / np.abs(flipped[peaks])
    assert np.median(agreement) < 0.02 and np.mean(agreement < 0.1) > 0.98
    # ... at the zeros the flip passes the noise at full weight and the Wiener gain almost none.
    ratio = np.abs(wiener[zeros]) / np.abs(original[zeros])
    assert np.median(ratio) < 0.4
    assert np.median(np.abs(flipped[zeros]) / np.abs(original[zeros])) > 0.95


def test_stack_subset_draws_sorted_particles_only_above_the_limit():
    from screen.stages.extraction import stack_subset
    from screen.stages.records import ParticleStack

    n = 50
    stack = ParticleStack(
        np.arange(n, dtype=np.float32)[:, None, None] * np.ones((1, 4, 4), np.float32),
        2.0,
        np.arange(n) % 5,
        np.arange(n, dtype=float),
        -np.arange(n, dtype=float),
    )
    same, everything = stack_subset(stack, n, seed=0)
    assert same is stack and everything.tolist() == list(range(n))
    sub, chosen = stack_subset(stack, 20, seed=0)
    assert len(chosen) == 20 and np.all(np.diff(chosen) > 0)
    assert sub.images[:, 0, 0].tolist() == chosen.tolist()  # each particle with its own record
    assert (
        sub.x_px.tolist() == chosen.tolist()
        and sub.micrograph_index.tolist() == (chosen % 5).tolist()
    )
    assert stack_subset(stack, 20, seed=0)[1].tolist() == chosen.tolist()  # seeded
