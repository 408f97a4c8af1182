"""`screen train micrographs` and `screen train classes`: train or fine-tune an assessment.

Micrographs:

The labelled set is read as ``screen evaluate micrographs`` reads it (a ``screen simulate``
folder or a CSV of ``path,label[,reason][,pixel_size_A]``). Every micrograph is preprocessed as
the pipeline does (Fourier-cropped square crops + 1D log spectrum, ``screen.models.micassess``);
each square crop is one training sample with its micrograph's label. Bad micrographs without a
known reason train P(good) only. By default training starts from the shipped weights
(fine-tuning); ``base=None`` trains a fresh network.

Class averages (`train_classes`): the labelled set is read as ``screen evaluate classes`` reads
it; each average is preprocessed as the stage does for the base model (cropped to its object's
extent or to its mask, resized). A stratified share of it is held out and scored before and after
training, so the user sees what the new weights gained on their own kind of averages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from screen.errors import ScreenError
from screen.evaluation import LabelledMicrograph
from screen.io.images import read_image, summed_frames
from screen.models import micassess
from screen.stages.records import CLASS_LABELS, MICROGRAPH_REASONS


@dataclass(frozen=True)
class PreparedSet:
    """The network inputs of a labelled set and what could not be used."""

    data: micassess.LabelledSet
    skipped: tuple[str, ...]


def prepare_labelled_set(
    items: list[LabelledMicrograph], progress=None, image_px: int | None = None
) -> PreparedSet:
    """Read and preprocess every micrograph; unreadable or unassessable ones are skipped.

    ``image_px`` fixes the square side (for a fixed-size base network); ``None`` lets it
    follow each micrograph's pixel size, as the shipped networks see micrographs.
    """
    images, spectra, good, reasons, pixels, skipped = [], [], [], [], [], []
    for done, item in enumerate(items, 1):
        try:
            image = read_image(item.path)
            pixel_size_A = item.optics.pixel_size_A or image.pixel_size_A or 0.0
            data = summed_frames(image.data)
            crops, micrograph_spectra = micassess.preprocess(data, pixel_size_A, image_px)
        except Exception as exc:
            skipped.append(f"{item.path}: {type(exc).__name__}: {exc}")
            continue
        reason = item.reason if item.reason in MICROGRAPH_REASONS else None
        for crop in crops:
            images.append(crop)
            spectra.append(micrograph_spectra)
            good.append(item.label == "good")
            reasons.append(MICROGRAPH_REASONS.index(reason) if reason else -1)
            pixels.append(pixel_size_A)
        if progress is not None:
            progress(done, len(items))
    if not images:
        raise ScreenError("no micrograph of the labelled set could be used for training")
    good_array = np.asarray(good, bool)
    if good_array.all() or not good_array.any():
        raise ScreenError("the labelled set needs both good and bad micrographs")
    data = micassess.LabelledSet(
        features=micassess.Features.from_crops(images, spectra),
        good=good_array,
        reason_index=np.asarray(reasons, np.int64),
        pixel_size_A=np.asarray(pixels, float),
    )
    return PreparedSet(data, tuple(skipped))


def train_micrographs(
    prepared: PreparedSet,
    config: micassess.TrainingConfig,
    base: str | None,
    progress=None,
) -> micassess.TrainingResult:
    """Fine-tune the weights ``base`` (shipped name or path), or train afresh when ``None``."""
    model = micassess.load_micassess(base) if base is not None else None
    if model is not None:
        from screen.models.micassess_paper import is_paper_model

        if is_paper_model(model):
            raise ScreenError(
                f"weights {base!r} are a paper-style network (one input, one output): "
                "screen train fine-tunes networks with P(good) and reason heads only"
            )
        image_px = micassess.model_image_px(model)
        sides = {image.shape[0] for image in prepared.data.features.image}
        if image_px is not None and sides != {image_px}:
            raise ScreenError(
                f"weights {base!r} expect {image_px} px images, the prepared set has "
                f"{sorted(sides)} px"
            )
    return micassess.train_micassess(prepared.data, config, model, progress)


@dataclass(frozen=True)
class ClassTrainingResult:
    """A class-assessment model trained on a labelled set, and how it scores on the held-out part.

    ``before`` / ``after``: good precision, good recall and accuracy of the base model and of the
    trained one on the held-out averages (``before`` is None without a base model, both None
    when nothing was held out).
    """

    model: object
    n_train: int
    n_held_out: int
    train_counts: dict[str, int]
    before: tuple[float, float, float] | None
    after: tuple[float, float, float] | None
    seconds: float


MIN_CLASS_TRAINING_AVERAGES = 8
"""Fewer labelled averages than this cannot train anything worth saving."""


def _scores(model, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    from screen.class_evaluation import good_precision_recall
    from screen.models.class_assess import predict_class_scores

    predicted = predict_class_scores(model, x).argmax(axis=1)
    precision, recall = good_precision_recall(y, predicted)
    return precision, recall, float(np.mean(predicted == y))


def held_out_split(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Indices held out: ``share`` of each label's items, drawn with ``seed``.

    Rounded per label; a label with two or more items gives at least one when ``share`` > 0.
    """
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n = int(round(share * len(members)))
        if share > 0 and n == 0 and len(members) >= 2:
            n = 1
        held.extend(members[:n].tolist())
    return np.sort(np.asarray(held, dtype=int))


def train_classes(
    items,
    base_model=None,
    epochs: int = 10,
    learning_rate: float = 3e-4,
    held_out_share: float = 0.2,
    seed: int = 0,
) -> ClassTrainingResult:
    """Fine-tune ``base_model`` (or train a fresh extent-crop network) on labelled averages.

    Parameters
    ----------
    items
        `screen.class_evaluation.LabelledAverage` records.
    base_model
        A loaded class model to start from; None trains ``build_class_model(64, crop="extent")``.
    held_out_share
        Share of each label kept out of training and scored before and after (0: train on all).

    Raises
    ------
    ScreenError
        Too few averages, or no good or no non-good average to learn from.
    """
    from screen.models.class_assess import (
        TrainConfig,
        model_crop,
        model_input_px,
        preprocess_average,
        train_class_model,
    )

    if not 0.0 <= held_out_share < 1.0:
        raise ScreenError(f"the held-out share must be in [0, 1), got {held_out_share}")
    if len(items) < MIN_CLASS_TRAINING_AVERAGES:
        raise ScreenError(
            f"{len(items)} labelled averages: at least {MIN_CLASS_TRAINING_AVERAGES} are needed"
        )
    size_px, crop = (
        (64, "extent")
        if base_model is None
        else (model_input_px(base_model), model_crop(base_model))
    )
    x = np.stack(
        [
            preprocess_average(item.image, item.mask_diameter_A, item.pixel_size_A, size_px, crop)
            for item in items
        ]
    ).astype(np.float32)
    y = np.asarray([CLASS_LABELS.index(item.label) for item in items])
    held = held_out_split(y, held_out_share, seed)
    train = np.setdiff1d(np.arange(len(y)), held)
    good = CLASS_LABELS.index("good")
    if not np.any(y[train] == good) or np.all(y[train] == good):
        raise ScreenError(
            "the training part needs good averages and averages of another label "
            f"(labels: {', '.join(f'{CLASS_LABELS[k]} {int(np.sum(y == k))}' for k in range(4))})"
        )
    before = _scores(base_model, x[held], y[held]) if base_model is not None and len(held) else None
    config = TrainConfig(
        size_px=size_px,
        epochs=epochs,
        learning_rate=learning_rate,
        validation_fraction=0.0,
        seed=seed,
        crop=crop,
    )
    start = time.perf_counter()
    model, _ = train_class_model(x[train], y[train], config, model=base_model)
    seconds = time.perf_counter() - start
    after = _scores(model, x[held], y[held]) if len(held) else None
    counts = {label: int(np.sum(y[train] == k)) for k, label in enumerate(CLASS_LABELS)}
    return ClassTrainingResult(model, len(train), len(held), counts, before, after, seconds)
