"""2DAssess: label class averages good / clip / edge / noise (Li et al. 2020, SPEC §2.7).

A small CNN scores each average (cropped to the mask diameter, or for a model trained that way to
the object's own extent, whatever the mask; normalised, resized); optionally a
"good" average then has to pass the saliency check (one salient object near the centre), else it is
moved to "clip". Averages that are flat (all zeros: empty classes) are "noise" without asking the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from screen.errors import ScreenError
from screen.processing.saliency import SaliencyParams, find_salient_objects
from screen.stages.base import Backend
from screen.stages.records import CLASS_LABELS, ClassVerdicts


@dataclass(frozen=True)
class ClassAssessParams:
    """Parameters of the class-average assessment.

    Parameters
    ----------
    model
        Shipped model name (``models/<name>.keras``) or a path to user weights.
    input_px
        Side of the square network input; must match the model.
    use_saliency
        Apply the saliency check to averages the CNN calls "good". Off by default: on the
        drawn held-out set it moved ~11% of true good classes to "clip" for a ~3-point gain
        in good precision (models/class_assess_v1.md); turn it on for crowded samples.
    saliency
        Thresholds of the saliency check (see ``screen.processing.saliency.SaliencyParams``).
    min_mask_diameters
        Where the particle diameter is known (``screen run``: its estimate or the manifest's),
        a classification whose mask is under this many diameters cuts the particle, and its
        "good" averages are "clip" (`cut_by_mask`). 0 turns the rule off.
    """

    # class_assess_v7 until 2026-12-07 (session 28); see `EXTERNAL_AVERAGES_MODEL` for why v8.
    model: str = "class_assess_v8"
    input_px: int = 64
    use_saliency: bool = False
    saliency: SaliencyParams = SaliencyParams()
    # Geometry, not a fit: a person calls a mask under ~0.85 of the particle's visible extent a
    # cut (`class_examples.VISIBLE_LABELS`). At 0.6 estimated diameters a mask is under 0.85
    # extents whenever the estimate is less than 1.4x the extent: the diameter bar is +-15 %
    # (bench/README.md: the pipeline's estimate over the visible extent runs 0.94-1.96, median
    # 1.16, on 15 held-out simulated sessions; EMPIAR-10017 0.9). In `screen run`'s sweep
    # (0.5-2x) it turns the 0.5x classification's good classes into clip and leaves the 0.75x
    # one (0.64-0.86 extents for an estimate within the bar) to the network.
    min_mask_diameters: float = 0.6


EXTERNAL_AVERAGES_MODEL = "class_assess_v8"
"""The model for class averages made by another program (RELION, cryoSPARC) or at an unknown
mask: `screen evaluate classes` uses it unless told otherwise. It crops each average to its
object's own extent, so its verdicts do not depend on the mask it is told (RELION masks the whole
box). Measured (bench/README.md, models/class_assess_v8.md; good precision / recall at any mask):
on **real** averages made by RELION 3.1's ``relion_refine`` from EMPIAR-10017 particles (44, all
good; no real RELION average in its training) recall 0.977 (v7 0.932); on RELION averages of
simulated particles of other sessions than its RELION training data (38: 20 good, 6 clip, 12
noise) 1.000 / 0.850 with every clip and noise one right (v7 the same); on held-out real averages
of our 2D (435, 211 good) 0.975 / 0.938 (v7 0.984 / 0.848). The real averages are one protein.
Since 2026-12-07 (session 28) it is `screen run`'s model too (`ClassAssessParams.model`), with
the mask rule (`cut_by_mask`; without it v8 called classes cut by a half-diameter mask good).
On our own 2D's averages of 15 held-out simulated sessions, picked at the pipeline's own estimate
on their good micrographs as `screen run` picks (217 labelled, 72 good;
`bench/class_assess_pipeline.py`): good precision / recall 0.862 / 0.778, by particles 0.913 /
0.859 (class_assess_v7, `screen run`'s model before: 0.957 / 0.625 and 0.974 / 0.752); where the
session's diameter estimate was within ±15 % 0.902 / 0.902 (v7 1.000 / 0.732)."""


def load_class_model(params: ClassAssessParams = ClassAssessParams()):
    """Load the Keras model named by ``params.model`` and check its input size."""
    from screen.models.class_assess import model_input_px
    from screen.models.registry import load_keras_model

    model = load_keras_model(params.model)
    if model_input_px(model) != params.input_px:
        raise ScreenError(
            f"class model {params.model!r} expects {model_input_px(model)} px inputs, "
            f"but input_px is {params.input_px}"
        )
    return model


def assess_classes(
    averages: np.ndarray,
    mask_diameter_A: float,
    pixel_size_A: float,
    params: ClassAssessParams,
    model,
) -> ClassVerdicts:
    """Label each class average of one classification.

    Parameters
    ----------
    averages
        (k, box, box) class averages (protein white), as a 2D classification returns them.
    mask_diameter_A
        Mask diameter the classification used; averages are cropped to it.
    pixel_size_A
        Pixel size of the averages.
    params
        Model name, input size and saliency thresholds.
    model
        The loaded Keras model (``load_class_model(params)``).

    Returns
    -------
    ClassVerdicts
        Labels, CNN probabilities (k, 4) in ``CLASS_LABELS`` order, and which averages the
        saliency check moved from "good" to "clip".
    """
    from screen.models.class_assess import model_crop, predict_class_scores, preprocess_average

    averages = np.nan_to_num(np.asarray(averages, dtype=np.float32))
    if averages.ndim != 3:
        raise ScreenError(f"class averages must be (k, box, box), got shape {averages.shape}")
    k = averages.shape[0]
    noise = CLASS_LABELS.index("noise")
    scores = np.zeros((k, len(CLASS_LABELS)), np.float32)
    flat = np.array([not np.any(a != a.flat[0]) for a in averages], bool)
    scores[flat, noise] = 1.0
    live = np.flatnonzero(~flat)
    if live.size:
        crop = model_crop(model)
        inputs = np.stack(
            [
                preprocess_average(
                    averages[i], mask_diameter_A, pixel_size_A, params.input_px, crop
                )
                for i in live
            ]
        )
        scores[live] = predict_class_scores(model, inputs)
    labels = [CLASS_LABELS[i] for i in scores.argmax(axis=1)]
    moved = np.zeros(k, bool)
    if params.use_saliency:
        for j, i in enumerate(live):
            if labels[i] == "good" and not find_salient_objects(inputs[j], params.saliency).passes:
                labels[i] = "clip"
                moved[i] = True
    return ClassVerdicts(labels=tuple(labels), scores=scores, moved_by_saliency=moved)


def cut_by_mask(
    verdicts: ClassVerdicts, mask_diameter_A: float, diameter_A: float, min_mask_diameters: float
) -> ClassVerdicts:
    """The verdicts with "good" made "clip" where the mask is under the particle.

    A classification at a mask under ``min_mask_diameters`` particle diameters shows part of
    the particle (its averages can look clean: a dense core); the paper sweeps masks from half
    the estimate up so that the best mask can be found, not to keep classes of cut particles.
    Unchanged when ``diameter_A`` is not positive or the rule is off.
    """
    cut = np.zeros(len(verdicts.labels), bool)
    if diameter_A > 0 and min_mask_diameters > 0:
        if mask_diameter_A < min_mask_diameters * diameter_A:
            cut = np.asarray(verdicts.labels, dtype=object) == "good"
    if not cut.any():
        return verdicts
    labels = tuple("clip" if c else label for c, label in zip(cut, verdicts.labels, strict=True))
    return ClassVerdicts(labels, verdicts.scores, verdicts.moved_by_saliency, cut)


# A session whose 2D classes hold at least this many particles and not one good class (at any
# mask) is more likely outside the class model's domain than empty: a screening grid picked at
# the estimated size rarely has no particle at all (Magellon's apoferritin-like rings, 128
# picks: class_assess_v3 called every class noise, by eye the largest ones are clear rings).
# A count, not a calibrated statistic; below it a session is too small to tell.
CLASS_DOMAIN_MIN_PARTICLES = 100
CLASS_DOMAIN_MAX_GOOD_FRACTION = 0.02
"""Warn when at most this share of the classified particles is in good classes at every mask."""


@dataclass(frozen=True)
class MaskClasses:
    """One classification's classes as the session check needs them."""

    mask_diameter_A: float
    counts: np.ndarray  # (k,) members per class
    verdicts: ClassVerdicts


def session_class_check(per_mask: list[MaskClasses], model_name: str) -> str | None:
    """Warning text when class assessment kept (almost) nothing of a well-populated session.

    Quotes the evidence: the particles classified, the masks, the largest class and its
    P(good). None when the session is small (< ``CLASS_DOMAIN_MIN_PARTICLES`` particles at
    every mask) or some mask has more than ``CLASS_DOMAIN_MAX_GOOD_FRACTION`` of its particles
    in good classes.
    """
    populated = [m for m in per_mask if int(np.sum(m.counts)) >= CLASS_DOMAIN_MIN_PARTICLES]
    if not populated:
        return None
    good_share = [
        float(np.sum(m.counts[np.asarray(m.verdicts.labels) == "good"])) / float(np.sum(m.counts))
        for m in populated
    ]
    if max(good_share) > CLASS_DOMAIN_MAX_GOOD_FRACTION:
        return None
    largest = max(populated, key=lambda m: int(np.max(m.counts)))
    i = int(np.argmax(largest.counts))
    good = CLASS_LABELS.index("good")
    masks = sorted(m.mask_diameter_A for m in populated)
    n = max(int(np.sum(m.counts)) for m in populated)
    other = "class_assess_v1" if model_name != "class_assess_v1" else "class_assess_v3"
    return (
        f"{n} particles classified at {len(masks)} masks ({masks[0]:.0f}-{masks[-1]:.0f} Å) and "
        f"at most {max(good_share):.0%} of them in good classes; the largest class "
        f"({int(largest.counts[i])} particles, mask {largest.mask_diameter_A:.0f} Å) was called "
        f"{largest.verdicts.labels[i]} (P(good) {float(largest.verdicts.scores[i, good]):.2f}). "
        f"Class assessment ({model_name}) may be outside its trained domain (a particle shape or "
        "kind of image it was not trained on) or the grid shows no particles. Look at the class "
        "averages (classes/ in this session's folder); to compare, rerun with "
        f"--class-weights {other}."
    )


BACKEND = Backend(
    stage="assess_classes",
    name="builtin",
    version="1",
    params_type=ClassAssessParams,
    compute=assess_classes,
)
