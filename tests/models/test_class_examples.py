"""Pipeline-made 2DAssess training examples, labelled from ground truth."""

from __future__ import annotations

import numpy as np

from screen.models.class_examples import (
    VISIBLE_LABELS,
    ExampleParams,
    class_label,
    labelled,
    labelled_classes,
    member_classes,
    pipeline_classes,
    random_session_spec,
    solid_sphere_kDa,
    true_pick_flags,
)
from screen.simulate.render import render_micrograph
from screen.simulate.session import session_models, session_plans
from screen.simulate.spec import ScreenSpec
from screen.stages.records import ClassAverages, CtfFit, Optics


def test_true_pick_flags_match_within_the_radius_on_the_same_micrograph():
    truth = [np.array([[10.0, 10.0], [50.0, 50.0]]), np.array([[100.0, 100.0]])]
    x = np.array([12.0, 30.0, 100.0, 10.0])
    y = np.array([11.0, 30.0, 103.0, 10.0])
    micrograph = np.array([0, 0, 1, 1])  # the last pick is at a true spot of the other micrograph
    assert true_pick_flags(x, y, micrograph, truth, 5.0).tolist() == [True, False, True, False]


def test_class_label_by_purity_and_mask():
    params = ExampleParams()
    assert class_label(0.9, 1.0, params) == "good"
    assert class_label(0.9, 1.8, params) is None  # pure but a large mask: ambiguous
    assert class_label(0.5, 1.0, params) is None
    assert class_label(0.2, 1.0, params) == "noise"
    assert class_label(0.2, 2.0, params) == "noise"
    assert class_label(0.95, 0.5, params) == "noise"  # the mask cuts the particle


def test_labelled_classes_use_their_members():
    averages = np.random.default_rng(0).normal(size=(3, 16, 16)).astype(np.float32)
    assignments = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    is_true = np.array([1, 1, 1, 0, 0, 0, 0, 1, 1], bool)
    classes = ClassAverages(
        averages, assignments, np.array([4, 4, 1]), 100.0, 4.0, np.zeros(9), np.zeros((9, 2))
    )
    out = labelled_classes(classes, is_true, 100.0, ExampleParams())
    assert [e.label for e in out] == ["good", "noise"]  # 75 %, 25 %; the singleton is skipped
    assert out[0].mask_diameter_A == 100.0 and out[0].pixel_size_A == 4.0


def test_masks_are_judged_against_the_size_given_for_labels():
    averages = np.zeros((1, 16, 16), np.float32)
    classes = ClassAverages(
        averages, np.zeros(10, int), np.array([10]), 100.0, 4.0, np.zeros(10), np.zeros((10, 2))
    )
    found = member_classes(classes, np.ones(10, bool))
    assert found[0].purity == 1.0 and found[0].n_members == 10
    # A 100 Å mask on a particle of enclosing diameter 160 Å cuts it (0.63)...
    assert [e.label for e in labelled(found, 160.0, ExampleParams())] == ["noise"]
    # ...but the same particle is 115 Å across as seen (0.87 visible extents): good.
    relabelled = labelled(found, 160.0, VISIBLE_LABELS, label_diameter_A=115.0)
    assert [e.label for e in relabelled] == ["good"]
    assert relabelled[0].particle_diameter_A == 160.0


def test_pipeline_examples_of_a_simulated_session_are_labelled_from_truth():
    session = random_session_spec(3, n_micrographs=4)
    spec = ScreenSpec((session,), frame_px=(384, 384), pixel_size_A=2.5, seed=3)
    models = session_models(session)
    plans = session_plans(spec, 0)
    images, ctfs, truth = [], [], []
    for plan in plans:
        images.append(render_micrograph(plan, models, spec.frame_px, spec.pixel_size_A).counts)
        c = plan.ctf
        ctfs.append(CtfFit(c.defocus_u_A, c.defocus_v_A, c.astigmatism_angle_deg, 8.0, 1.0))
        truth.append(np.column_stack([plan.particle_x_A, plan.particle_y_A]) / 2.5)
    diameter_A = max(s.structure.diameter_A for s in session.species)
    params = ExampleParams(mask_factors=(0.75, 1.0))
    found = pipeline_classes(
        images, ctfs, truth, Optics(2.5), diameter_A, np.random.default_rng(0), params
    )
    examples = labelled(found, diameter_A, params)
    assert examples, "no class could be labelled"
    assert {e.label for e in examples} <= {"good", "noise"}
    for e in examples:
        assert e.image.ndim == 2 and np.isfinite(e.image).all()
        assert e.mask_diameter_A / diameter_A < 1.0 * params.diameter_error[1] + 1e-6


def test_cage_sessions_draw_hollow_dense_particles():
    from screen.models.class_examples import CAGE_SYMMETRIES, SESSION_SYMMETRIES

    for seed in range(6):
        cages = random_session_spec(seed, n_micrographs=2, symmetries=CAGE_SYMMETRIES)
        plain = random_session_spec(seed, n_micrographs=2)
        for species in cages.species:
            structure = species.structure
            solid_kDa = np.pi * structure.diameter_A**3 / 6 / 1.21 / 1e3
            assert structure.symmetry in {"T", "O", "I"}
            assert 0.55 <= structure.mass_kDa / solid_kDa <= 0.8  # a dense shell
        assert all(s.structure.symmetry in SESSION_SYMMETRIES for s in plain.species)


def test_training_particles_fill_a_share_of_a_solid_sphere():
    """Masses are 0.15-0.4 of a solid protein sphere of the particle's diameter (0.55-0.8 for
    cages); a ribosome (~2.1 MDa within 228 Å) fills 0.40, a compact globular protein more."""
    assert np.isclose(solid_sphere_kDa(228.0), 5128.8, atol=0.1)
    for seed in range(12):
        for species in random_session_spec(seed).species:
            share = species.structure.mass_kDa / solid_sphere_kDa(species.structure.diameter_A)
            assert 0.15 <= share <= 0.8, (seed, share)
