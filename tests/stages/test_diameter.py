"""Diameter from centred unaligned averages: edge measure, fixed point, centring, phase flip."""

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from screen.simulate import presets
from screen.simulate.render import render_micrograph
from screen.simulate.session import session_models, session_plans
from screen.stages.diameter import (
    BACKEND,
    DiameterParams,
    TrialAverage,
    blob_edge_diameter_px,
    centre_boxes,
    corrected_contrast,
    estimate_diameter,
    self_consistent_diameter,
)
from screen.stages.extraction import phase_flip
from screen.stages.records import CtfFit, Optics


def _dark_discs(seed, diameter_A, pixel_size_A=2.5, shape=(512, 512), n=30, contrast=0.25):
    """Counts-like image: dark discs (protein dark) with Poisson-like noise."""
    rng = np.random.default_rng(seed)
    radius_px = diameter_A / pixel_size_A / 2
    image = np.zeros(shape)
    y, x = np.indices(shape)
    placed = []
    while len(placed) < n:
        cx, cy = rng.uniform(radius_px * 2, shape[1] - radius_px * 2, size=2)
        if all(np.hypot(cx - px, cy - py) > 2.2 * radius_px for px, py in placed):
            placed.append((cx, cy))
            image[(x - cx) ** 2 + (y - cy) ** 2 <= radius_px**2] = 1.0
    image = ndimage.gaussian_filter(image, 1.5)
    return 100.0 * (1.0 - contrast * image) + rng.normal(0.0, 10.0, size=shape)


def _fit(ctf) -> CtfFit:
    """The simulator's true CTF as a fit (the pipeline passes the CTF stage's fits)."""
    return CtfFit(ctf.defocus_u_A, ctf.defocus_v_A, ctf.astigmatism_angle_deg, 6.0, 1.0)


def test_edge_of_a_smooth_disc_is_its_diameter():
    n, radius = 64, 12.0
    y, x = np.indices((n, n))
    disc = -(np.hypot(x - n // 2, y - n // 2) <= radius).astype(float)
    average = ndimage.gaussian_filter(disc, 1.0)
    assert blob_edge_diameter_px(average, 2.0) == pytest.approx(2 * radius, abs=2.0)


def test_fixed_point_is_interpolated_where_measure_crosses_trial():
    blank = np.zeros((8, 8), dtype=np.float32)
    # Measured diameter (edge x 1.5): 150 at every trial -> fixed point at 150.
    trials = [TrialAverage(d, 10, blank, 4.0, 100.0) for d in (100.0, 130.0, 170.0, 220.0)]
    chosen, diameter = self_consistent_diameter(trials, 1.5)
    assert diameter == pytest.approx(150.0, rel=1e-6)
    assert chosen.trial_diameter_A in (130.0, 170.0)


def test_centring_recovers_the_offsets_of_noisy_blobs():
    rng = np.random.default_rng(3)
    box, margin, n = 32, 6, 60
    big = box + 2 * margin
    y, x = np.indices((big, big))
    true = rng.integers(-4, 5, size=(n, 2))
    stack = np.empty((n, big, big), dtype=np.float32)
    for i, (dx, dy) in enumerate(true):
        blob = -np.exp(-((x - big // 2 - dx) ** 2 + (y - big // 2 - dy) ** 2) / (2 * 4.0**2))
        stack[i] = blob + rng.normal(0.0, 0.3, size=(big, big))
    plain = centre_boxes(stack, box, 0)[0].mean(axis=0)
    boxes, shifts = centre_boxes(stack, box, 3)
    error = shifts - true
    error -= np.round(np.median(error, axis=0)).astype(int)  # the common offset is free
    assert np.mean(np.all(np.abs(error) <= 1, axis=1)) > 0.9
    centre = (slice(box // 2 - 1, box // 2 + 2),) * 2
    assert boxes.mean(axis=0)[centre].mean() < 1.3 * plain[centre].mean()  # darker centre


def test_corrected_contrast_is_phase_flipped_with_the_ctf():
    rng = np.random.default_rng(0)
    image = rng.poisson(50.0, size=(128, 128)).astype(np.float32)
    ctf, optics = CtfFit(15000.0, 14000.0, 30.0, 6.0, 1.0), Optics(2.0)
    plain = corrected_contrast(image, 2.0)
    assert plain == pytest.approx(image / np.median(image) - 1.0, abs=1e-6)
    flipped = corrected_contrast(image, 2.0, ctf, optics)
    assert flipped == pytest.approx(phase_flip(plain, 2.0, ctf, optics), abs=1e-5)


def test_synthetic_discs_diameter_within_25_percent():
    true_A = 120.0
    images = [_dark_discs(seed, true_A) for seed in range(3)]
    params = DiameterParams(
        trial_diameters_A=(60.0, 80.0, 100.0, 130.0, 170.0, 220.0), edge_factor=1.0
    )
    estimate = estimate_diameter(images, 2.5, params)
    assert estimate.diameter_A == pytest.approx(true_A, rel=0.25)
    assert estimate.edge_diameter_A == pytest.approx(estimate.diameter_A / params.edge_factor)
    assert estimate.average.ndim == 2


def test_ctfs_must_cover_the_micrographs():
    images = [_dark_discs(0, 60.0, shape=(128, 128), n=1)] * 2
    with pytest.raises(ValueError, match="CTF"):
        estimate_diameter(images, 2.5, DiameterParams(), ctfs=[CtfFit(1e4, 1e4, 0.0, 6.0, 1.0)])


@pytest.mark.xfail(
    strict=False,
    reason="picks sit on a compact dark feature ~0.16 diameters off the particles' centres; "
    "the average is a narrow core (see screen.stages.diameter limitations)",
)
def test_simulated_prex1_sessions_within_20_percent():
    spec = presets.prex1_small(10)
    params = DiameterParams(max_micrographs=6)
    for index in (0, 2):  # apo on Quantifoil, DDM
        session = spec.sessions[index]
        models = session_models(session)
        plans = [p for p in session_plans(spec, index) if p.reason == "good"][:6]
        images = [
            render_micrograph(p, models, spec.frame_px, spec.pixel_size_A).counts for p in plans
        ]
        optics = Optics(spec.pixel_size_A, spec.voltage_kV, spec.cs_mm, spec.amplitude_contrast)
        estimate = estimate_diameter(
            images, spec.pixel_size_A, params, [_fit(p.ctf) for p in plans], optics
        )
        true_A = session.species[0].structure.diameter_A
        assert estimate.diameter_A == pytest.approx(true_A, rel=0.2), session.name


def test_backend_contract():
    assert BACKEND.stage == "diameter"
    assert BACKEND.version == "2"
    assert BACKEND.params_type is DiameterParams
    assert BACKEND.compute is estimate_diameter
    assert dataclasses.is_dataclass(DiameterParams())
