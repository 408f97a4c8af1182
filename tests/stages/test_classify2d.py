import numpy as np
import pytest
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter

from screen.processing.alignment import align_to_references, alignment_grid, transform_images
from screen.processing.ctf import CtfParams, ctf_2d
from screen.simulate.orientations import rotation_matrices
from screen.simulate.spec import StructureSpec
from screen.simulate.structures import build_structure
from screen.stages.classify2d import BACKEND, Classify2DParams, classify_2d, default_n_classes
from screen.stages.records import ClassAverages, ParticleStack

BOX = 64
PIXEL_A = 4.0
DIAMETER_A = 150.0
# Strongly preferred orientation: four distinct views (rot, tilt) of an elongated particle.
VIEWS = [(0.0, 0.0), (0.0, 90.0), (90.0, 90.0), (45.0, 45.0)]


def _model():
    return build_structure(
        StructureSpec(name="t", diameter_A=DIAMETER_A, mass_kDa=250.0, elongation=1.8, seed=5)
    )


def _project(model, euler_deg, shift_px=(0.0, 0.0)):
    """Mass projection (Gaussian-blurred pseudo-atoms) of the model at RELION angles."""
    xyz = model.positions_A @ rotation_matrices(np.asarray(euler_deg, float))[0].T
    edges = (np.arange(BOX + 1) - BOX // 2 - 0.5) * PIXEL_A
    image, _, _ = np.histogram2d(
        xyz[:, 1] + shift_px[1] * PIXEL_A,
        xyz[:, 0] + shift_px[0] * PIXEL_A,
        bins=(edges, edges),
        weights=model.masses_Da,
    )
    return gaussian_filter(image, model.sigma_A / PIXEL_A)


def _band_pass(images):
    """CTF at 1.5 um underfocus: a band-pass with contrast reversals, as in real particles."""
    ctf = ctf_2d((BOX, BOX), PIXEL_A, CtfParams(15000.0, 15000.0))
    return sfft.irfft2(sfft.rfft2(images) * ctf, s=(BOX, BOX))


def _stack(n, snr, seed):
    """Particles of VIEWS at random in-plane angles and small shifts, with noise at ``snr``."""
    rng = np.random.default_rng(seed)
    model = _model()
    view = rng.integers(len(VIEWS), size=n)
    psi = rng.uniform(0.0, 360.0, n)
    shift = rng.uniform(-2.0, 2.0, (n, 2))
    clean = np.stack(
        [_project(model, (*VIEWS[v], p), s) for v, p, s in zip(view, psi, shift, strict=True)]
    )
    clean = _band_pass(clean)
    clean /= clean.std()  # signal variance 1 over the box
    noisy = clean + rng.normal(0.0, 1.0 / np.sqrt(snr), clean.shape)
    noisy = (noisy - noisy.mean(axis=(1, 2), keepdims=True)) / noisy.std(axis=(1, 2), keepdims=True)
    stack = ParticleStack(
        images=noisy.astype(np.float32),
        pixel_size_A=PIXEL_A,
        micrograph_index=np.zeros(n, int),
        x_px=np.zeros(n),
        y_px=np.zeros(n),
    )
    return stack, view, psi


def _purity(assignments, truth):
    return sum(np.bincount(truth[assignments == c]).max() for c in np.unique(assignments)) / len(
        truth
    )


@pytest.fixture(scope="module")
def classified():
    stack, view, psi = _stack(600, snr=0.1, seed=11)
    result = classify_2d(stack, 1.2 * DIAMETER_A, Classify2DParams(n_classes=12, seed=3))
    return stack, view, psi, result


def test_classes_are_pure_and_well_formed(classified):
    stack, view, _, result = classified
    assert isinstance(result, ClassAverages)
    k = len(result.counts)
    assert 4 <= k <= 12
    assert result.averages.shape == (k, BOX, BOX)
    assert result.averages.dtype == np.float32
    assert np.all(np.diff(result.counts) <= 0)  # sorted by count, largest first
    assert result.counts.sum() == len(view)
    np.testing.assert_array_equal(np.bincount(result.assignments, minlength=k), result.counts)
    assert result.mask_diameter_A == pytest.approx(1.2 * DIAMETER_A)
    assert result.pixel_size_A == PIXEL_A
    assert np.all((result.psi_deg >= 0) & (result.psi_deg < 360))
    assert np.hypot(*result.shift_px.T).max() <= 0.1 * BOX + 1.0
    # Most particles of a class share a true view (measured: 1.0 at SNR 0.1).
    assert _purity(result.assignments, view) >= 0.8
    # Every view has a class of its own.
    majority = [np.bincount(view[result.assignments == c]).argmax() for c in range(k)]
    assert set(majority) == set(range(len(VIEWS)))


def test_alignment_angles_are_consistent_within_classes(classified):
    _, _, psi_true, result = classified
    # Members of a class differ only by in-plane rotation, so the aligning angle minus the true
    # in-plane angle is the same for all of them (RELION's psi turns (x, y) by -psi in our
    # convention, so rotating by +psi undoes it).
    for c in range(4):
        members = result.assignments == c
        offset = np.radians(result.psi_deg[members] - psi_true[members])
        assert np.abs(np.exp(1j * offset).mean()) > 0.9


def test_averages_match_true_projections(classified):
    stack, view, _, result = classified
    model = _model()
    truth = _band_pass(np.stack([_project(model, (*v, 0.0)) for v in VIEWS]))
    grid = alignment_grid(BOX, 1.2 * DIAMETER_A / PIXEL_A, 3.0, max_shift_px=6.0, lowpass_px=2.0)
    inner = grid.mask > 0.5
    rng = np.random.default_rng(0)
    noise = gaussian_filter(rng.normal(size=(BOX, BOX)), 1.5)

    def aligned_correlation(image, average):
        fit = align_to_references(image[None], average[None], grid)
        moved = transform_images(image, fit.psi_deg[0], fit.shift_px[0])
        return np.corrcoef(moved[inner], average[inner])[0, 1]

    for c in range(4):
        average = result.averages[c]
        own = np.bincount(view[result.assignments == c]).argmax()
        own_corr = aligned_correlation(truth[own], average)
        assert own_corr > 0.7
        assert own_corr > aligned_correlation(noise, average) + 0.4
        others = [aligned_correlation(truth[v], average) for v in range(len(VIEWS)) if v != own]
        assert own_corr > max(others)


def test_deterministic_with_seed():
    stack, _, _ = _stack(120, snr=0.1, seed=2)
    params = Classify2DParams(n_classes=5, n_iterations=3, seed=7)
    first = classify_2d(stack, DIAMETER_A, params)
    second = classify_2d(stack, DIAMETER_A, params)
    np.testing.assert_array_equal(first.assignments, second.assignments)
    np.testing.assert_array_equal(first.averages, second.averages)
    np.testing.assert_array_equal(first.psi_deg, second.psi_deg)
    np.testing.assert_array_equal(first.shift_px, second.shift_px)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_tiny_stack_and_huge_mask_do_not_crash(n):
    stack, _, _ = _stack(max(n, 1), snr=0.1, seed=4)
    if n == 0:
        stack = ParticleStack(
            np.zeros((0, BOX, BOX), np.float32), PIXEL_A, np.zeros(0, int), np.zeros(0), np.zeros(0)
        )
    result = classify_2d(stack, 2.0 * BOX * PIXEL_A, Classify2DParams())  # mask wider than box
    assert result.counts.sum() == n
    assert len(result.counts) <= max(n, 0)
    assert result.assignments.shape == (n,)
    assert result.averages.shape == (len(result.counts), BOX, BOX)
    assert np.all(np.isfinite(result.averages))
    assert result.psi_deg.shape == (n,) and result.shift_px.shape == (n, 2)


def test_default_class_count_and_backend():
    assert default_n_classes(100) == 5
    assert default_n_classes(4000) == 50
    assert default_n_classes(800) == 10
    assert BACKEND.key == "classify2d/builtin@3"
    assert BACKEND.params_type is Classify2DParams
    assert BACKEND.compute is classify_2d
