import numpy as np
import pytest
from scipy.spatial import cKDTree

from screen.simulate.orientations import (
    N_VIEW_BINS,
    rotation_matrices,
    sample_orientations,
    view_bins,
    view_entropy_bits,
    viewing_directions,
)
from screen.simulate.spec import OrientationSpec, StructureSpec
from screen.simulate.structures import (
    PseudoAtomModel,
    build_structure,
    longest_extent_A,
    parse_symmetry,
    projected_extent_A,
    render_volume,
    symmetry_operators,
)

SMALL = (60.0, 50.0)
LARGE = (400.0, 4000.0)
MEDIUM = (200.0, 600.0)  # below the 6000-bead coarsening limit


def _enclosing_diameter(model):
    return 2.0 * np.linalg.norm(model.positions_A, axis=1).max()


def _symmetry_error_A(model):
    """Largest distance from a symmetry-mapped pseudo-atom to the nearest original one."""
    tree = cKDTree(model.positions_A)
    return max(
        tree.query(model.positions_A @ op.T)[0].max() for op in symmetry_operators(model.symmetry)
    )


@pytest.mark.parametrize("symmetry", ["C1", "C3", "D2", "D7"])
@pytest.mark.parametrize("size", [SMALL, MEDIUM])
def test_diameter_mass_and_centre_match_the_spec(symmetry, size):
    diameter_A, mass_kDa = size
    model = build_structure(StructureSpec("x", diameter_A, mass_kDa, symmetry, seed=4))
    assert _enclosing_diameter(model) == pytest.approx(diameter_A, rel=1e-6)
    assert model.mass_kDa == pytest.approx(mass_kDa, rel=1e-6)
    centre = np.average(model.positions_A, axis=0, weights=model.masses_Da)
    np.testing.assert_allclose(centre, 0.0, atol=1e-6 * diameter_A)
    assert 2.0 <= model.sigma_A <= 6.0


@pytest.mark.parametrize("symmetry", ["C1", "C3", "D2", "D7"])
def test_large_structure_keeps_its_mass_and_roughly_its_diameter(symmetry):
    model = build_structure(StructureSpec("x", *LARGE, symmetry, seed=4))
    assert len(model.positions_A) <= 6000
    assert model.mass_kDa == pytest.approx(4000.0, rel=1e-6)
    assert _enclosing_diameter(model) == pytest.approx(400.0, rel=0.01)


@pytest.mark.parametrize("symmetry", ["C1", "D2"])
def test_large_structure_diameter_centre_and_symmetry_are_exact(symmetry):
    model = build_structure(StructureSpec("x", *LARGE, symmetry, seed=4))
    assert _enclosing_diameter(model) == pytest.approx(400.0, rel=1e-6)
    centre = np.average(model.positions_A, axis=0, weights=model.masses_Da)
    np.testing.assert_allclose(centre, 0.0, atol=1e-3)
    assert _symmetry_error_A(model) < 1e-6


def test_partner_is_included_in_diameter_and_mass():
    partner = StructureSpec("partner", 70.0, 45.0, "C1", seed=2)
    alone = build_structure(StructureSpec("main", 150.0, 186.0, "C1", seed=3))
    model = build_structure(StructureSpec("main", 150.0, 186.0, "C1", partner=partner, seed=3))
    assert _enclosing_diameter(model) == pytest.approx(150.0, rel=1e-6)
    assert model.mass_kDa == pytest.approx(186.0 + 45.0, rel=1e-6)
    assert len(model.positions_A) > len(alone.positions_A)
    # The main body keeps its beads, the partner's follow with exactly the partner's mass.
    assert model.masses_Da[len(alone.positions_A) :].sum() == pytest.approx(45e3, rel=1e-6)


@pytest.mark.parametrize("symmetry", ["C3", "D2", "D7", "T", "O", "I"])
@pytest.mark.parametrize("size", [SMALL, MEDIUM])
def test_model_has_its_point_group_symmetry(symmetry, size):
    model = build_structure(StructureSpec("x", *size, symmetry, seed=4))
    assert _symmetry_error_A(model) < 1e-6
    group, order = parse_symmetry(symmetry)
    assert len(symmetry_operators(symmetry)) == order * (2 if group == "D" else 1)


@pytest.mark.parametrize("symmetry", ["T", "O", "I"])
def test_cubic_particles_are_hollow_cages_that_project_as_rings(symmetry):
    # apoferritin-like: 120 Å across, 480 kDa; projected density per area (radial profile over
    # random views) is low in the centre and peaks near the rim, as a shell's does.
    model = build_structure(StructureSpec("cage", 120.0, 480.0, symmetry, n_domains=1, seed=2))
    radius = np.linalg.norm(model.positions_A, axis=1)
    assert np.quantile(radius, 0.02) > 0.4 * radius.max()  # nothing in the middle
    rng = np.random.default_rng(0)
    edges = np.linspace(0.0, 60.0, 13)
    profile = np.zeros(12)
    for _ in range(10):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        r2d = np.linalg.norm(model.positions_A @ rotation[:, :2], axis=1)
        profile += np.histogram(r2d, bins=edges)[0] / np.diff(np.pi * edges**2)
    assert profile[:3].mean() < 0.7 * profile.max()
    assert 6 <= np.argmax(profile) <= 10


def test_cubic_symmetry_names_parse():
    assert parse_symmetry(" o ") == ("O", 24)
    assert parse_symmetry("T") == ("T", 12)
    assert parse_symmetry("i") == ("I", 60)


def test_c1_model_is_not_symmetric_under_a_foreign_operator():
    model = build_structure(StructureSpec("x", *MEDIUM, "C1", seed=4))
    tree = cKDTree(model.positions_A)
    three_fold = symmetry_operators("C3")[1]
    assert tree.query(model.positions_A @ three_fold.T)[0].max() > 5.0


def test_symmetry_operators_are_rotations():
    for symmetry in ("C1", "C5", "D3"):
        ops = symmetry_operators(symmetry)
        np.testing.assert_allclose(
            ops @ ops.transpose(0, 2, 1), np.broadcast_to(np.eye(3), ops.shape), atol=1e-12
        )
        np.testing.assert_allclose(np.linalg.det(ops), 1.0)


@pytest.mark.parametrize("bad", ["X2", "C0", "D", "C-3", "I2", "Q", "C3x", ""])
def test_invalid_symmetry_raises(bad):
    with pytest.raises(ValueError, match="expected Cn or Dn"):
        parse_symmetry(bad)
    with pytest.raises(ValueError):
        build_structure(StructureSpec("x", 60.0, 50.0, bad))


def test_lower_case_symmetry_is_accepted():
    assert parse_symmetry(" d7 ") == ("D", 7)


def test_build_structure_is_deterministic_in_its_seed():
    spec = StructureSpec("x", 100.0, 150.0, "C2", seed=8)
    np.testing.assert_array_equal(
        build_structure(spec).positions_A, build_structure(spec).positions_A
    )
    other = build_structure(StructureSpec("x", 100.0, 150.0, "C2", seed=9))
    assert not np.allclose(other.positions_A[:10], build_structure(spec).positions_A[:10])


def test_render_volume_holds_the_mass():
    model = build_structure(StructureSpec("x", 100.0, 150.0, "C2", seed=8))
    volume = render_volume(model, pixel_size_A=4.0)
    assert volume.shape[0] == volume.shape[1] == volume.shape[2] >= 100 / 4
    assert volume.sum() == pytest.approx(150e3, rel=0.01)


def test_uniform_orientations_fill_every_view_bin():
    euler = sample_orientations(OrientationSpec(), 20000, np.random.default_rng(0))
    entropy = view_entropy_bits(view_bins(euler))
    assert entropy == pytest.approx(np.log2(N_VIEW_BINS), abs=0.05)
    # Uniform on the sphere: cos(tilt) is uniform on [-1, 1].
    cos_tilt = np.cos(np.radians(euler[:, 1]))
    assert abs(cos_tilt.mean()) < 0.02
    assert np.var(cos_tilt) == pytest.approx(1 / 3, rel=0.05)


def test_preferred_orientation_lowers_view_entropy():
    preferred = OrientationSpec(0.9, ((90.0, 0.0),), spread_deg=5.0)
    euler = sample_orientations(preferred, 20000, np.random.default_rng(0))
    entropy = view_entropy_bits(view_bins(euler))
    assert entropy < 0.5 * np.log2(N_VIEW_BINS)
    # 90% within a few spreads of the side view (tilt 90, rot 0).
    target = viewing_directions(np.array([[0.0, 90.0, 0.0]]))[0]
    angle = np.degrees(np.arccos(np.clip(viewing_directions(euler) @ target, -1, 1)))
    assert np.mean(angle < 25.0) == pytest.approx(
        0.9 + 0.1 * (1 - np.cos(np.radians(25))) / 2, abs=0.02
    )
    assert preferred.kind == "preferred" and OrientationSpec().kind == "uniform"


def test_view_entropy_of_edge_cases():
    assert view_entropy_bits(np.zeros(0, dtype=int)) == 0.0
    assert view_entropy_bits(np.full(50, 7)) == 0.0
    assert view_entropy_bits(np.arange(N_VIEW_BINS)) == pytest.approx(np.log2(N_VIEW_BINS))


def test_rotation_matrices_map_the_viewing_direction_onto_z():
    euler = sample_orientations(OrientationSpec(), 500, np.random.default_rng(1))
    rotations = rotation_matrices(euler)
    directions = viewing_directions(euler)
    np.testing.assert_allclose(
        np.einsum("nij,nj->ni", rotations, directions),
        np.tile([0.0, 0.0, 1.0], (500, 1)),
        atol=1e-9,
    )
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0)
    # psi (in-plane) does not change the viewing direction.
    spun = euler.copy()
    spun[:, 2] += 77.0
    np.testing.assert_allclose(viewing_directions(spun), directions)


def _solid_ball() -> PseudoAtomModel:
    """20,000 atoms filling a ball of radius 50 Å."""
    rng = np.random.default_rng(0)
    ball = rng.normal(size=(20000, 3))
    ball *= (50.0 * rng.random(20000) ** (1 / 3) / np.linalg.norm(ball, axis=1))[:, None]
    return PseudoAtomModel("ball", ball, np.ones(20000), 2.0, 100.0, "C1")


def _rod() -> PseudoAtomModel:
    """A line of atoms 200 Å long."""
    rod = np.zeros((2001, 3))
    rod[:, 0] = np.linspace(-100.0, 100.0, 2001)
    return PseudoAtomModel("rod", rod, np.ones(2001), 2.0, 200.0, "C1")


def test_projected_extent_of_a_solid_ball_is_its_diameter_and_of_a_rod_its_long_axis():
    sphere, line = _solid_ball(), _rod()
    # The 99 % radius of a projected ball of radius 50 Å is a little under 50 Å.
    assert 90.0 < projected_extent_A(sphere) <= 100.0
    # A 200 Å rod seen from random directions: its projected length averages pi/4 of it.
    assert 0.7 * 200.0 < projected_extent_A(line, n_views=400) < 0.85 * 200.0


def test_projected_extent_of_a_procedural_structure_is_under_its_enclosing_diameter():
    model = build_structure(StructureSpec("p", 160.0, 200.0, "C1", n_domains=4, seed=3))
    assert 0.5 * 160.0 < projected_extent_A(model) < 160.0


def test_a_globular_particle_fills_its_envelope_and_domains_do_not():
    """Residues uniform in one ellipsoid project over more of the diameter than spread-out
    domains (measured 155 against 143 Å for 180 Å), and still meet the spec's diameter."""
    domains, globular = (
        build_structure(
            StructureSpec("x", 180.0, 300.0, "C1", n_domains=4, elongation=1.4, seed=15, layout=k)
        )
        for k in ("domains", "globular")
    )
    assert globular.diameter_A == pytest.approx(180.0)
    assert projected_extent_A(globular) > projected_extent_A(domains) + 5.0
    # mass spread over the envelope: the radius of gyration of a uniform ellipsoid of semi-axes
    # 90, 64, 64 Å, sqrt((90**2 + 2 * 64**2) / 5) = 57 Å
    centred = globular.positions_A - globular.positions_A.mean(axis=0)
    gyration_A = float(np.sqrt((centred**2).sum(axis=1).mean()))
    assert gyration_A == pytest.approx(57.0, rel=0.05)


def test_longest_extent_is_a_balls_diameter_and_a_rods_length():
    sphere, line = _solid_ball(), _rod()
    assert 95.0 < longest_extent_A(sphere) <= 100.0
    # 99 % of the atoms lie within 99 Å of the centre: the rod's length less its two tips.
    assert 0.97 * 200.0 < longest_extent_A(line) <= 0.99 * 200.0 + 1e-6
    # A procedural structure: longer than its mean projected extent, within its enclosing diameter.
    model = build_structure(StructureSpec("p", 160.0, 200.0, "C1", n_domains=4, seed=3))
    assert projected_extent_A(model) < longest_extent_A(model) < 160.0
