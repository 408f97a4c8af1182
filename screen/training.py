"""`screen train micrographs`: train or fine-tune micrograph assessment on a labelled set.

The labelled set is read as ``screen evaluate micrographs`` reads it (a ``screen simulate``
folder or a CSV of ``path,label[,reason][,pixel_size_A]``). Every micrograph is preprocessed as
the pipeline does (Fourier-cropped square crops + 1D log spectrum, ``screen.models.micassess``);
each square crop is one training sample with its micrograph's label. Bad micrographs without a
known reason train P(good) only. By default training starts from the shipped weights
(fine-tuning); ``base=None`` trains a fresh network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from screen.errors import ScreenError
from screen.evaluation import LabelledMicrograph
from screen.io.images import read_image, summed_frames
from screen.models import micassess
from screen.stages.records import MICROGRAPH_REASONS


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
