"""MicAssess v0: a small two-branch Keras CNN that scores micrographs good/bad and names the reason.

Inputs (made by :func:`preprocess`, pure numpy):

* ``image``: the micrograph (a central square crop) Fourier-cropped to ``IMAGE_PX`` squared,
  normalised to mean 0 / std 1, clipped to +-``CLIP_SIGMA`` and zeroed outside a circular mask
  (Li et al. 2020 use a 494-px disc; we use a much smaller image for speed on CPUs);
* ``spectrum``: the rotationally averaged log power spectrum on a fixed grid of *physical*
  frequencies (``SPECTRUM_K_A``, 1/Å), so that micrographs of different pixel sizes give the
  same feature for the same physics (Thon rings, drift and ice fall-off, low-frequency texture).

Outputs: ``p_good`` (sigmoid) and ``reason`` (softmax over
:data:`screen.stages.records.MICROGRAPH_REASONS`, trained on bad micrographs only).

Training data come from the simulator (:func:`simulate_labelled_set`); TensorFlow/Keras are
imported inside the functions that need them, never at import time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from screen.processing.fourier import fourier_crop, periodogram_average, rotational_average
from screen.stages.records import MICROGRAPH_REASONS

IMAGE_PX = 128
"""Side of the down-sampled square image the CNN sees."""
N_SPECTRUM_BINS = 64
"""Number of physical-frequency bins of the 1D spectrum input."""
SPECTRUM_K_A = np.linspace(1.0 / 200.0, 1.0 / 7.2, N_SPECTRUM_BINS)
"""Frequencies (1/Å) of the spectrum input: 200 Å to 7.2 Å (Nyquist of 3.6 Å/px)."""
SPECTRUM_TILE_PX = 256
"""Tile of the averaged periodogram (half the frame's side for frames under 512 px)."""
SPECTRUM_MAX_PX = 2048
"""The spectrum is averaged over the central ``SPECTRUM_MAX_PX`` square at most (speed)."""
CLIP_SIGMA = 5.0
MIN_SIDE_PX = 64
"""Micrographs whose short side is below this cannot be assessed."""


@dataclass(frozen=True)
class Features:
    """Preprocessed inputs of a batch of micrograph crops."""

    image: np.ndarray  # (n, IMAGE_PX, IMAGE_PX, 1) float32
    spectrum: np.ndarray  # (n, N_SPECTRUM_BINS) float32

    def __len__(self) -> int:
        return len(self.image)

    def as_inputs(self) -> dict[str, np.ndarray]:
        """The dict of named inputs the Keras model takes."""
        return {"image": self.image, "spectrum": self.spectrum}


# --------------------------------------------------------------------------- preprocessing


def square_crops(shape: tuple[int, int]) -> list[tuple[slice, slice]]:
    """Square crops (side = short side) that together cover a frame, evenly spaced.

    A square frame gives one crop; a K3 frame (4092 x 5760) gives two overlapping ones.
    """
    ny, nx = shape
    side = min(ny, nx)
    long_side = max(ny, nx)
    n = int(np.ceil(long_side / side - 1e-6))
    starts = np.linspace(0, long_side - side, n).round().astype(int) if n > 1 else [0]
    if ny <= nx:
        return [(slice(0, side), slice(s, s + side)) for s in starts]
    return [(slice(s, s + side), slice(0, side)) for s in starts]


def circular_mask(n_px: int) -> np.ndarray:
    """Boolean disc of diameter ``n_px`` centred in an ``n_px`` square."""
    y, x = np.indices((n_px, n_px)) - (n_px - 1) / 2
    return np.hypot(x, y) <= n_px / 2


def preprocess_image(square: np.ndarray, image_px: int = IMAGE_PX) -> np.ndarray:
    """Fourier-crop a square micrograph to ``image_px``, normalise, clip and mask it.

    Returns a float32 array ``(image_px, image_px)`` with mean 0 and std 1 inside the disc
    (before clipping at +-``CLIP_SIGMA``) and 0 outside it.
    """
    small = fourier_crop(np.asarray(square, dtype=np.float32), (image_px, image_px))
    mask = circular_mask(image_px)
    inside = small[mask]
    std = float(inside.std())
    out = (small - float(inside.mean())) / (std if std > 0 else 1.0)
    out = np.clip(out, -CLIP_SIGMA, CLIP_SIGMA)
    out[~mask] = 0.0
    return out.astype(np.float32)


def spectrum_feature(
    image: np.ndarray, pixel_size_A: float, k_A: np.ndarray = SPECTRUM_K_A
) -> np.ndarray:
    """Normalised log rotational average of the power spectrum at fixed frequencies ``k_A``.

    Frequencies beyond the micrograph's Nyquist take the value at Nyquist. The result has mean
    0 and std 1 over the bins (only the shape of the spectrum matters, not the dose).
    """
    ny, nx = image.shape
    side = min(ny, nx, SPECTRUM_MAX_PX)
    y0, x0 = (ny - side) // 2, (nx - side) // 2
    centre = np.asarray(image[y0 : y0 + side, x0 : x0 + side], dtype=np.float32)
    # At least 3 x 3 half-overlapping tiles, so small frames are not one speckled periodogram.
    power = periodogram_average(centre, tile_px=min(SPECTRUM_TILE_PX, side // 2))
    k_measured, values = rotational_average(power, pixel_size_A)
    log_power = np.log(np.maximum(values, 1e-12 * max(values.max(), 1e-30)))
    feature = np.interp(k_A, k_measured, log_power)
    std = float(feature.std())
    return ((feature - feature.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def is_assessable(image: np.ndarray) -> bool:
    """True when an image is 2D, large enough, finite everywhere and not constant."""
    image = np.asarray(image)
    return bool(
        image.ndim == 2
        and min(image.shape) >= MIN_SIDE_PX
        and np.isfinite(image).all()
        and float(image.max()) > float(image.min())
    )


def preprocess(
    image: np.ndarray, pixel_size_A: float, image_px: int = IMAGE_PX
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs of one micrograph: one masked image per square crop, and its spectrum.

    Returns
    -------
    images : ndarray
        ``(n_crops, image_px, image_px)`` float32; ``n_crops`` is 1 for a square frame.
    spectrum : ndarray
        ``(N_SPECTRUM_BINS,)`` float32 (one per micrograph, shared by its crops).

    Raises
    ------
    ValueError
        When the image is not 2D, smaller than ``MIN_SIDE_PX``, not finite or constant, or the
        pixel size is not positive.
    """
    image = np.asarray(image)
    if not pixel_size_A > 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_A!r} Å")
    if not is_assessable(image):
        raise ValueError(
            f"cannot assess a micrograph of shape {image.shape}: it must be 2D, at least "
            f"{MIN_SIDE_PX} px on each side, finite and not constant"
        )
    crops = [preprocess_image(image[sy, sx], image_px) for sy, sx in square_crops(image.shape)]
    return np.stack(crops), spectrum_feature(image, pixel_size_A)


# --------------------------------------------------------------------------- model


def build_model(
    image_px: int = IMAGE_PX,
    n_bins: int = N_SPECTRUM_BINS,
    n_reasons: int = len(MICROGRAPH_REASONS),
):
    """The MicAssess v0 network (uncompiled): a small CNN + a dense spectrum branch, two heads."""
    import keras
    from keras import layers

    image = keras.Input((image_px, image_px, 1), name="image")
    spectrum = keras.Input((n_bins,), name="spectrum")
    x = image
    for filters in (16, 32, 48, 64):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    s = layers.Dense(48, activation="relu")(spectrum)
    s = layers.Dense(32, activation="relu")(s)
    h = layers.Concatenate()([x, s])
    h = layers.Dropout(0.3)(h)
    h = layers.Dense(64, activation="relu")(h)
    p_good = layers.Dense(1, activation="sigmoid", name="p_good")(h)
    reason = layers.Dense(n_reasons, activation="softmax", name="reason")(h)
    return keras.Model(
        inputs={"image": image, "spectrum": spectrum},
        outputs={"p_good": p_good, "reason": reason},
        name="micassess_small",
    )


def model_input_sizes(model) -> tuple[int, int]:
    """``(image_px, n_spectrum_bins)`` a loaded model expects."""
    shapes = {t.name.split(":")[0]: tuple(t.shape) for t in model.inputs}
    image_shape = shapes.get("image", (None, IMAGE_PX))
    spectrum_shape = shapes.get("spectrum", (None, N_SPECTRUM_BINS))
    return int(image_shape[1]), int(spectrum_shape[1])


def load_micassess(name_or_path: str | Path):
    """Load MicAssess weights by shipped name (``"micassess_small_v0"``) or path."""
    from screen.models.registry import load_keras_model

    return load_keras_model(name_or_path)


def predict_features(model, features: Features, batch_size: int = 32) -> dict[str, np.ndarray]:
    """``p_good`` ``(n,)`` and ``reason`` ``(n, n_reasons)`` for preprocessed inputs, in batches."""
    p_good, reason = [], []
    for start in range(0, len(features), batch_size):
        out = model(
            {
                "image": features.image[start : start + batch_size],
                "spectrum": features.spectrum[start : start + batch_size],
            },
            training=False,
        )
        p_good.append(np.asarray(out["p_good"], dtype=np.float64).reshape(-1))
        reason.append(np.asarray(out["reason"], dtype=np.float64))
    if not p_good:
        return {"p_good": np.zeros(0), "reason": np.zeros((0, len(MICROGRAPH_REASONS)))}
    return {"p_good": np.concatenate(p_good), "reason": np.concatenate(reason)}


def predict_micrographs(
    model, images: list[np.ndarray], pixel_sizes_A: list[float], batch_size: int = 32
) -> dict[str, np.ndarray]:
    """Preprocess and score micrographs; a non-square frame's crops are averaged.

    Every image must be assessable (see :func:`is_assessable`); returns ``p_good`` ``(n,)`` and
    ``reason`` ``(n, n_reasons)``.
    """
    image_px, _ = model_input_sizes(model)
    crops, spectra, owner = [], [], []
    for index, (image, pixel_size_A) in enumerate(zip(images, pixel_sizes_A, strict=True)):
        squares, spectrum = preprocess(image, pixel_size_A, image_px)
        crops.append(squares)
        spectra.extend([spectrum] * len(squares))
        owner.extend([index] * len(squares))
    n = len(images)
    if n == 0:
        return {"p_good": np.zeros(0), "reason": np.zeros((0, len(MICROGRAPH_REASONS)))}
    features = Features(np.concatenate(crops)[..., None], np.stack(spectra))
    scores = predict_features(model, features, batch_size)
    owner_arr = np.asarray(owner)
    counts = np.bincount(owner_arr, minlength=n)
    p_good = np.bincount(owner_arr, weights=scores["p_good"], minlength=n) / counts
    reason = np.stack(
        [
            np.bincount(owner_arr, weights=scores["reason"][:, j], minlength=n) / counts
            for j in range(scores["reason"].shape[1])
        ],
        axis=1,
    )
    return {"p_good": p_good, "reason": reason}


# --------------------------------------------------------------------------- simulated data


@dataclass(frozen=True)
class SimulatedSetSpec:
    """Recipe of a labelled simulated set: random structures, sessions and micrograph conditions.

    Each session draws a structure (diameter, mass ~ diameter^2.5, symmetry, shape seed from
    ``structure_seeds``), an orientation distribution, a particle coverage, a pixel size and
    ranges of defocus, dose, ice and SNR; its micrographs are ``good_fraction`` good and the rest
    split equally over the bad reasons.
    """

    n_micrographs: int
    seed: int
    micrographs_per_session: int = 32
    frame_px: int = 512
    pixel_size_A: tuple[float, float] = (1.5, 3.5)
    diameter_A: tuple[float, float] = (80.0, 250.0)
    structure_seeds: tuple[int, int] = (1000, 2000)
    coverage: tuple[float, float] = (0.05, 0.35)
    defocus_um: tuple[float, float] = (0.6, 3.0)
    dose_e_per_A2: tuple[float, float] = (30.0, 60.0)
    particle_snr: tuple[float, float] = (0.015, 0.1)
    good_fraction: float = 0.5
    bad_reasons: tuple[str, ...] = MICROGRAPH_REASONS


@dataclass(frozen=True)
class LabelledSet:
    """Preprocessed simulated micrographs with their ground truth."""

    features: Features
    good: np.ndarray  # (n,) bool
    reason_index: np.ndarray  # (n,) index into MICROGRAPH_REASONS, -1 for good
    pixel_size_A: np.ndarray  # (n,)
    structure: tuple[str, ...] = field(default=())


def session_specs(spec: SimulatedSetSpec):
    """The simulator's ``(ScreenSpec, session_index)`` pairs that make up the set."""
    from screen.simulate.spec import (
        OrientationSpec,
        ScreenSpec,
        SessionSpec,
        SpeciesSpec,
        StructureSpec,
    )

    rng = np.random.default_rng([spec.seed, 1])
    n_sessions = int(np.ceil(spec.n_micrographs / spec.micrographs_per_session))
    bad_share = (1.0 - spec.good_fraction) / len(spec.bad_reasons)
    out = []
    remaining = spec.n_micrographs
    for i in range(n_sessions):
        n = min(spec.micrographs_per_session, remaining)
        remaining -= n
        diameter = float(rng.uniform(*spec.diameter_A))
        mass = float(186.0 * (diameter / 140.0) ** 2.5 * rng.lognormal(0.0, 0.25))
        symmetry = str(rng.choice(["C1", "C1", "C2", "C3", "D2", "C4", "D3"]))
        structure = StructureSpec(
            f"s{spec.seed}_{i}",
            diameter,
            mass,
            symmetry,
            n_domains=int(rng.integers(2, 6)),
            elongation=float(rng.uniform(1.0, 2.0)),
            seed=int(rng.integers(*spec.structure_seeds)),
        )
        orientation = OrientationSpec()
        if rng.random() < 0.4:
            views = ((float(rng.uniform(0, 90)), float(rng.uniform(0, 360))),)
            orientation = OrientationSpec(float(rng.uniform(0.5, 0.9)), views, 12.0)
        coverage = float(rng.uniform(*spec.coverage))
        defocus = np.sort(rng.uniform(*spec.defocus_um, size=2))
        snr = np.sort(rng.uniform(*spec.particle_snr, size=2))
        ice_low = float(rng.uniform(150.0, 400.0))
        session = SessionSpec(
            f"set{spec.seed}_{i}",
            (SpeciesSpec(structure, 1.0, orientation),),
            n,
            bad_mix={reason: bad_share for reason in spec.bad_reasons},
            particles_per_um2=coverage * 1e8 / (np.pi / 4 * diameter**2),
            ice_thickness_A=(ice_low, ice_low + float(rng.uniform(50.0, 250.0))),
            defocus_um=(float(defocus[0]), float(max(defocus[1], defocus[0] + 0.2))),
            dose_e_per_A2=spec.dose_e_per_A2,
            particle_snr=(float(snr[0]), float(max(snr[1], snr[0] + 0.01))),
        )
        screen_spec = ScreenSpec(
            (session,),
            frame_px=(spec.frame_px, spec.frame_px),
            pixel_size_A=round(float(rng.uniform(*spec.pixel_size_A)), 3),
            seed=int(rng.integers(0, 2**31 - 1)),
        )
        out.append(screen_spec)
    return out


def _simulate_session(screen_spec) -> tuple[list, list, list, list]:
    """Render and preprocess every micrograph of a one-session ``ScreenSpec``."""
    from screen.simulate.render import render_micrograph
    from screen.simulate.session import session_models, session_plans

    models = session_models(screen_spec.sessions[0])
    images, spectra, reasons = [], [], []
    for plan in session_plans(screen_spec, 0):
        counts = render_micrograph(plan, models, screen_spec.frame_px, screen_spec.pixel_size_A)
        squares, spectrum = preprocess(counts.counts, screen_spec.pixel_size_A)
        images.append(squares[0])
        spectra.append(spectrum)
        reasons.append(plan.reason)
    return images, spectra, reasons, [screen_spec.pixel_size_A] * len(reasons)


def simulate_labelled_set(
    spec: SimulatedSetSpec,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> LabelledSet:
    """Simulate, render and preprocess a labelled set in memory (``jobs`` worker processes)."""
    sessions = session_specs(spec)
    results = []
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for done, result in enumerate(pool.map(_simulate_session, sessions), 1):
                results.append(result)
                if progress:
                    progress(done, len(sessions))
    else:
        for done, session in enumerate(sessions, 1):
            results.append(_simulate_session(session))
            if progress:
                progress(done, len(sessions))
    images = [im for r in results for im in r[0]]
    spectra = [s for r in results for s in r[1]]
    reasons = [x for r in results for x in r[2]]
    pixel_sizes = [p for r in results for p in r[3]]
    structures = tuple(
        s.sessions[0].species[0].structure.name
        for s, r in zip(sessions, results, strict=True)
        for _ in r[2]
    )
    reason_index = np.array(
        [MICROGRAPH_REASONS.index(r) if r != "good" else -1 for r in reasons], dtype=int
    )
    return LabelledSet(
        Features(np.stack(images)[..., None], np.stack(spectra)),
        reason_index < 0,
        reason_index,
        np.asarray(pixel_sizes, dtype=float),
        structures,
    )


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainingConfig:
    """Optimiser settings of :func:`train_micassess`."""

    epochs: int = 24
    batch_size: int = 32
    learning_rate: float = 1e-3
    reason_loss_weight: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class TrainingResult:
    """A trained model and its per-epoch training loss."""

    model: object
    loss_per_epoch: tuple[float, ...]
    seconds: float


def _augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random 90-degree rotations and flips (the physics is isotropic in the image plane)."""
    out = np.empty_like(images)
    turns = rng.integers(0, 4, size=len(images))
    flips = rng.random(len(images)) < 0.5
    for i, image in enumerate(images):
        rotated = np.rot90(image, turns[i], axes=(0, 1))
        out[i] = rotated[:, ::-1] if flips[i] else rotated
    return out


def train_micassess(
    data: LabelledSet, config: TrainingConfig = TrainingConfig(), model=None
) -> TrainingResult:
    """Train (or fine-tune ``model``) on a labelled set: BCE on P(good) + CE on the bad ones' reason.

    Seeded with ``keras.utils.set_random_seed(config.seed)``; images are re-augmented each epoch
    and the learning rate follows a cosine decay to 5% of ``config.learning_rate``.
    """
    import keras

    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    if model is None:
        model = build_model(data.features.image.shape[1], data.features.spectrum.shape[1])
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss={
            "p_good": keras.losses.BinaryCrossentropy(),
            "reason": keras.losses.SparseCategoricalCrossentropy(),
        },
        loss_weights={"p_good": 1.0, "reason": config.reason_loss_weight},
    )
    y = {
        "p_good": data.good.astype(np.float32)[:, None],
        "reason": np.maximum(data.reason_index, 0).astype(np.int32),
    }
    # Bad ones with a known reason train the reason head (bad are ~half: x2 keeps its scale).
    reason_weight = ((~data.good) & (data.reason_index >= 0)).astype(np.float32) * 2.0
    weights = {"p_good": np.ones(len(data.good), np.float32), "reason": reason_weight}
    losses = []
    start = time.perf_counter()
    for epoch in range(config.epochs):
        cosine = 0.5 * (1.0 + np.cos(np.pi * epoch / max(config.epochs, 1)))
        model.optimizer.learning_rate.assign(config.learning_rate * (0.05 + 0.95 * cosine))
        order = rng.permutation(len(data.good))
        x = {
            "image": _augment(data.features.image[order], rng),
            "spectrum": data.features.spectrum[order],
        }
        history = model.fit(
            x,
            {k: v[order] for k, v in y.items()},
            sample_weight={k: v[order] for k, v in weights.items()},
            batch_size=config.batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
        )
        losses.append(float(history.history["loss"][-1]))
    return TrainingResult(model, tuple(losses), time.perf_counter() - start)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class HeldOutMetrics:
    """Accuracy of a model on a labelled set at a P(good) threshold."""

    threshold: float
    n: int
    n_good: int
    accuracy: float
    false_negative_rate: float  # good micrographs called bad
    false_positive_rate: float  # bad micrographs called good
    reason_accuracy: float  # argmax reason on the truly bad micrographs
    bad_recall_by_reason: dict[str, float]  # share of each bad reason called bad


def evaluate(model, data: LabelledSet, threshold: float = 0.1, batch_size: int = 64):
    """Metrics of ``model`` on ``data`` at ``threshold`` (bad when P(good) < threshold)."""
    scores = predict_features(model, data.features, batch_size)
    return metrics_from_scores(scores["p_good"], scores["reason"], data, threshold)


def metrics_from_scores(
    p_good: np.ndarray, reason: np.ndarray, data: LabelledSet, threshold: float
) -> HeldOutMetrics:
    """:class:`HeldOutMetrics` from predicted scores."""
    called_good = p_good >= threshold
    good = data.good
    bad = ~good
    recall = {}
    for index, name in enumerate(MICROGRAPH_REASONS):
        mine = data.reason_index == index
        if mine.any():
            recall[name] = float((~called_good[mine]).mean())
    reason_ok = reason.argmax(axis=1) == data.reason_index
    return HeldOutMetrics(
        threshold=threshold,
        n=len(good),
        n_good=int(good.sum()),
        accuracy=float((called_good == good).mean()),
        false_negative_rate=float((~called_good[good]).mean()) if good.any() else float("nan"),
        false_positive_rate=float(called_good[bad].mean()) if bad.any() else float("nan"),
        reason_accuracy=float(reason_ok[bad].mean()) if bad.any() else float("nan"),
        bad_recall_by_reason=recall,
    )


TRAIN_SET = SimulatedSetSpec(n_micrographs=2400, seed=101)
"""Training set of the shipped ``micassess_small_v0`` weights."""

HELD_OUT_SET = replace(
    SimulatedSetSpec(n_micrographs=320, seed=909),
    micrographs_per_session=16,
    pixel_size_A=(1.7, 3.3),
    diameter_A=(90.0, 240.0),
    structure_seeds=(5000, 6000),
    coverage=(0.07, 0.3),
    defocus_um=(0.9, 3.2),
    dose_e_per_A2=(35.0, 65.0),
    particle_snr=(0.02, 0.09),
)
"""Held-out set: different seed, structures (shape seeds), sessions and condition ranges."""
