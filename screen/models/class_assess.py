"""2DAssess v0: a small CNN that labels class averages good / clip / edge / noise.

The pieces, in the order data flows through them:

- ``preprocess_averages``: crop each class average to the mask diameter, mean 0 and unit variance,
  Lanczos resize to a small square (Li et al. 2020 use 256 px; 64 px is enough here and fast).
- ``build_class_model``: four conv blocks, dropout, dense, softmax over ``CLASS_LABELS``.
- ``predict_class_scores``: probabilities, averaged over the four 90-degree rotations.
- ``synthetic_class_averages`` / ``make_training_set``: labelled class averages made from the
  simulator's 3D models (no real data is shipped); the held-out set uses other structures.
- ``train_class_model``: Adam + cross-entropy, seeded.

TensorFlow/Keras are imported inside functions only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from screen.processing.ctf import CtfParams, ctf_phase_aberration
from screen.simulate.orientations import rotation_matrices
from screen.simulate.spec import StructureSpec
from screen.simulate.structures import PseudoAtomModel, build_structure
from screen.stages.records import CLASS_LABELS

SYMMETRIES: tuple[str, ...] = ("C1", "C1", "C1", "C2", "C3", "C4", "C5", "C7", "D2", "D3", "D7")

# --------------------------------------------------------------------------------------------------
# Preprocessing and inference


def crop_to_mask(average: np.ndarray, mask_diameter_A: float, pixel_size_A: float) -> np.ndarray:
    """Central d x d crop of a class average, d = mask diameter in pixels (at most the box)."""
    box = min(average.shape)
    d = int(np.clip(round(mask_diameter_A / pixel_size_A), 4, box))
    cy, cx = average.shape[0] // 2, average.shape[1] // 2
    y0, x0 = max(cy - d // 2, 0), max(cx - d // 2, 0)
    return average[y0 : y0 + d, x0 : x0 + d]


def _lanczos_resize(image: np.ndarray, size_px: int) -> np.ndarray:
    from PIL import Image

    resized = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F").resize(
        (size_px, size_px), Image.Resampling.LANCZOS
    )
    return np.asarray(resized, dtype=np.float32)


CROPS: tuple[str, ...] = ("mask", "extent")
"""How an average is cropped before the network: to the mask diameter (v1) or to the object."""


def object_radius_px(average: np.ndarray, share: float = 0.9) -> float:
    """Radius about the box centre that holds ``share`` of the average's bright density.

    The average is smoothed (sigma: box / 48), its background is the median of the outer ring
    (or of the whole image when that is flat), and only pixels brighter than a fifth of the
    brightest one above it count. Independent of the mask the average was judged at, except
    where the mask cuts the object. At least box / 16; box / 2 when nothing stands out.
    """
    image = np.asarray(average, np.float64)
    box = min(image.shape)
    smooth = ndimage.gaussian_filter(image, box / 48 + 0.5)
    y, x = np.indices(image.shape)
    radius = np.hypot(y - image.shape[0] // 2, x - image.shape[1] // 2)
    ring = smooth[radius > 0.42 * box]
    background = np.median(ring) if ring.size and np.ptp(ring) > 0 else np.median(smooth)
    weight = smooth - background
    peak = weight.max()
    if not np.isfinite(peak) or peak <= 0:
        return box / 2
    weight = np.where(weight >= 0.2 * peak, weight, 0.0).ravel()
    order = np.argsort(radius.ravel())
    cumulative = np.cumsum(weight[order])
    r_share = radius.ravel()[order][np.searchsorted(cumulative, share * cumulative[-1])]
    return float(np.clip(r_share, box / 16, box / 2))


def crop_to_extent(average: np.ndarray, margin: float = 1.6) -> np.ndarray:
    """Central crop of ``margin`` times the object's diameter (``object_radius_px``), in the box."""
    box = min(average.shape)
    d = int(np.clip(round(2 * margin * object_radius_px(average)), min(16, box), box))
    cy, cx = average.shape[0] // 2, average.shape[1] // 2
    y0, x0 = max(cy - d // 2, 0), max(cx - d // 2, 0)
    return average[y0 : y0 + d, x0 : x0 + d]


def preprocess_average(
    average: np.ndarray,
    mask_diameter_A: float,
    pixel_size_A: float,
    size_px: int,
    crop: str = "mask",
) -> np.ndarray:
    """One class average -> (size_px, size_px) float32, mean 0, unit variance (zeros if flat).

    ``crop="mask"`` (v1) keeps the mask diameter; ``crop="extent"`` keeps 1.6 times the
    object's own diameter whatever the mask (``crop_to_extent``).
    """
    average = np.asarray(average, dtype=np.float64)
    if crop == "extent":
        crop = crop_to_extent(average)
    elif crop == "mask":
        crop = crop_to_mask(average, mask_diameter_A, pixel_size_A)
    else:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    image = _lanczos_resize(crop, size_px).astype(np.float64)
    image -= image.mean()
    std = image.std()
    if not np.isfinite(std) or std < 1e-8 * (1.0 + np.abs(crop).max()):
        return np.zeros((size_px, size_px), np.float32)
    return (image / std).astype(np.float32)


def preprocess_averages(
    averages: np.ndarray,
    mask_diameter_A: float,
    pixel_size_A: float,
    size_px: int,
    crop: str = "mask",
) -> np.ndarray:
    """Stack (k, box, box) -> (k, size_px, size_px) network inputs (see ``preprocess_average``)."""
    return np.stack(
        [preprocess_average(a, mask_diameter_A, pixel_size_A, size_px, crop) for a in averages]
    ).reshape(len(averages), size_px, size_px)


def model_crop(model) -> str:
    """The crop a model was trained with: its name says it (``class_assess_extent``: extent)."""
    return "extent" if str(model.name).endswith("_extent") else "mask"


def build_class_model(size_px: int = 64, seed: int = 0, crop: str = "mask"):
    """Small CNN: 4 x (conv-BN-ReLU-maxpool), dropout 0.5, dense 64, softmax over 4 labels.

    The model's name records ``crop`` (``model_crop`` reads it back).
    """
    import keras
    from keras import layers

    init = keras.initializers.HeNormal(seed=seed)
    inputs = keras.Input((size_px, size_px, 1), name="average")
    x = inputs
    for i, filters in enumerate((16, 32, 64, 64)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5, seed=seed)(x)
    x = layers.Dense(64, kernel_initializer=init)(x)
    x = layers.LeakyReLU(0.1)(x)
    x = layers.Dropout(0.3, seed=seed + 1)(x)
    outputs = layers.Dense(len(CLASS_LABELS), activation="softmax", name="labels")(x)
    return keras.Model(
        inputs, outputs, name="class_assess" if crop == "mask" else f"class_assess_{crop}"
    )


def model_input_px(model) -> int:
    """Side length of the square input a model expects."""
    return int(model.input_shape[1])


def predict_class_scores(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Probabilities (k, 4) in ``CLASS_LABELS`` order, averaged over the 4 right-angle rotations."""
    images = np.asarray(images, dtype=np.float32)
    if images.shape[0] == 0:
        return np.zeros((0, len(CLASS_LABELS)), np.float32)
    total = np.zeros((images.shape[0], len(CLASS_LABELS)), np.float64)
    for k in range(4):
        rotated = np.rot90(images, k, axes=(1, 2))[..., None]
        for start in range(0, len(rotated), batch_size):
            batch = np.ascontiguousarray(rotated[start : start + batch_size])
            total[start : start + batch_size] += np.asarray(model.predict_on_batch(batch))
    return (total / 4).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Synthetic class averages


@dataclass(frozen=True)
class SyntheticAverage:
    """One synthetic class average with its truth."""

    image: np.ndarray  # (box, box) float32, protein white, background 0
    label: str
    mask_diameter_A: float
    pixel_size_A: float
    particle_diameter_A: float


def random_structure(seed: int, symmetries: tuple[str, ...] = SYMMETRIES) -> PseudoAtomModel:
    """A random procedural particle: diameter 60-300 Å, plausible mass, a symmetry of ``symmetries``.

    ``SYMMETRIES`` (Cn/Dn) made class_assess_v1-v3's drawn averages; pass cubic ones
    (``"T"``, ``"O"``, ``"I"``) for hollow cages, whose averages are rings.
    """
    rng = np.random.default_rng(seed)
    diameter_A = float(rng.uniform(60.0, 300.0))
    solid_kDa = np.pi * diameter_A**3 / 6 / 1.21 / 1e3
    spec = StructureSpec(
        name=f"synthetic-{seed}",
        diameter_A=diameter_A,
        mass_kDa=float(solid_kDa * rng.uniform(0.12, 0.45)),
        symmetry=str(rng.choice(symmetries)),
        n_domains=int(rng.integers(1, 6)),
        elongation=float(rng.uniform(1.0, 2.2)),
        seed=int(seed),
    )
    return build_structure(spec)


def _radial_k(box: int, pixel_size_A: float) -> tuple[np.ndarray, np.ndarray]:
    ky = np.fft.fftfreq(box)[:, None] / pixel_size_A
    kx = np.fft.fftfreq(box)[None, :] / pixel_size_A
    return np.hypot(kx, ky), np.arctan2(ky, kx)


def _average_transfer(box: int, pixel_size_A: float, rng: np.random.Generator) -> np.ndarray:
    """Fourier weights of a CTF-corrected average: mean |CTF| over defoci ** p times a B envelope.

    p = 1 looks phase-flipped (weak low frequencies, halos), p = 0 fully corrected.
    """
    k, angle = _radial_k(box, pixel_size_A)
    ctf = np.zeros_like(k)
    defoci = rng.uniform(6000.0, 30000.0, size=3)
    for defocus in defoci:
        params = CtfParams(defocus_u_A=float(defocus), defocus_v_A=float(defocus))
        ctf += np.abs(np.sin(ctf_phase_aberration(k, angle, params)))
    ctf /= len(defoci)
    b_factor = rng.uniform(150.0, 1500.0)
    return ctf ** rng.uniform(0.0, 1.0) * np.exp(-b_factor * k**2 / 4)


def _project(model: PseudoAtomModel, euler_deg, box: int, pixel_size_A: float, centre_px):
    """Projection of ``model`` (mass per pixel) at ``centre_px`` = (x, y) of a (box, box) image."""
    rot = rotation_matrices(np.asarray(euler_deg, float))[0]
    xyz = model.positions_A @ rot.T
    x = xyz[:, 0] / pixel_size_A + centre_px[0]
    y = xyz[:, 1] / pixel_size_A + centre_px[1]
    edges = np.arange(box + 1) - 0.5
    image, _, _ = np.histogram2d(y, x, bins=(edges, edges), weights=model.masses_Da)
    return ndimage.gaussian_filter(image, max(model.sigma_A / pixel_size_A, 0.5))


def _random_euler(rng: np.random.Generator) -> np.ndarray:
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    tilt = np.degrees(np.arccos(direction[2]))
    rot = np.degrees(np.arctan2(direction[1], direction[0]))
    return np.array([rot, tilt, rng.uniform(-180, 180)])


def _soft_disc(box: int, radius_px: float, edge_px: float = 3.0, centre=None) -> np.ndarray:
    c = box // 2 if centre is None else centre
    y, x = np.mgrid[:box, :box]
    r = np.hypot(y - c, x - c)
    return np.clip((radius_px - r) / edge_px + 0.5, 0.0, 1.0)


def _filter(image: np.ndarray, transfer: np.ndarray) -> np.ndarray:
    return np.real(np.fft.ifft2(np.fft.fft2(image) * transfer))


def _noise(box: int, transfer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = _filter(rng.normal(size=(box, box)), np.sqrt(np.maximum(transfer, 0)) + 0.05)
    return noise / (noise.std() + 1e-12)


def _polar(box: int, shift=(0.0, 0.0)):
    c = box // 2
    y, x = np.mgrid[:box, :box]
    dx, dy = x - c - shift[0], y - c - shift[1]
    return np.hypot(dx, dy), np.arctan2(dy, dx), dx, dy


def _good(ctx) -> np.ndarray:
    box, r_mask, _, rng = ctx["box"], ctx["r_mask_px"], ctx["r_px"], ctx["rng"]
    c = box // 2
    jitter = rng.normal(0, 0.03 * r_mask, size=2)
    return _project(ctx["model"], _random_euler(rng), box, ctx["pixel_size_A"], c + jitter)


def _clip(ctx) -> np.ndarray:
    box, r_mask, r_px, rng = ctx["box"], ctx["r_mask_px"], ctx["r_px"], ctx["rng"]
    model, pix = ctx["model"], ctx["pixel_size_A"]
    c = box // 2
    variant = rng.random()
    if variant < 0.25:  # two particles side by side inside the mask
        half = rng.uniform(0.75, 1.05) * r_px
        axis = rng.uniform(0, 2 * np.pi)
        offset = half * np.array([np.cos(axis), np.sin(axis)])
        return _project(model, _random_euler(rng), box, pix, c + offset) + _project(
            model, _random_euler(rng), box, pix, c - offset
        )
    main_shift = np.zeros(2)
    if variant < 0.4:  # main particle off-centre too
        angle = rng.uniform(0, 2 * np.pi)
        main_shift = rng.uniform(0.3, 0.5) * r_mask * np.array([np.cos(angle), np.sin(angle)])
    image = _project(model, _random_euler(rng), box, pix, c + main_shift)
    for _ in range(1 if rng.random() < 0.7 else 2):
        # The neighbour reaches well inside the mask (0-0.6 particle radii past its edge).
        distance = max(1.5 * r_px, r_mask + rng.uniform(-0.4, 0.2) * r_px)
        theta0 = rng.uniform(0, 2 * np.pi)
        spread = 0.0 if rng.random() < 0.4 else np.radians(rng.uniform(10, 70))
        n_copies = 1 if spread == 0 else 7
        weight = rng.uniform(0.6, 1.0)
        euler = _random_euler(rng)
        for theta in theta0 + spread * np.linspace(-1, 1, n_copies):
            centre = c + distance * np.array([np.cos(theta), np.sin(theta)])
            image += weight / n_copies * _project(model, euler, box, pix, centre)
    return image


def _off_centre(ctx) -> np.ndarray:
    """One particle 0.3-0.6 diameters off the centre (an average of off-centre picks)."""
    box, r_px, rng = ctx["box"], ctx["r_px"], ctx["rng"]
    angle = rng.uniform(0, 2 * np.pi)
    shift = rng.uniform(0.6, 1.2) * r_px * np.array([np.cos(angle), np.sin(angle)])
    return _project(ctx["model"], _random_euler(rng), box, ctx["pixel_size_A"], box // 2 + shift)


def _edge(ctx) -> np.ndarray:
    box, r_mask, rng = ctx["box"], ctx["r_mask_px"], ctx["rng"]
    model, pix = ctx["model"], ctx["pixel_size_A"]
    _, _, dx, dy = _polar(box)
    phi = rng.uniform(0, np.pi)
    u = dx * np.cos(phi) + dy * np.sin(phi)
    profile = np.zeros((box, box))
    for _ in range(int(rng.integers(2, 8))):
        centre = rng.uniform(-r_mask, r_mask)
        width = rng.uniform(0.02, 0.15) * r_mask
        profile += rng.normal() * np.exp(-0.5 * ((u - centre) / width) ** 2)
    if rng.random() < 0.6:  # the carbon edge itself: a step
        profile += rng.normal(0, 1.5) * np.tanh((u - rng.uniform(-0.6, 0.6) * r_mask) / 2.0)
    profile /= profile.std() + 1e-12
    # Particles lined up along the edge, smeared along it by the averaging.
    streak = np.zeros((box, box))
    along = np.array([-np.sin(phi), np.cos(phi)])
    across = np.array([np.cos(phi), np.sin(phi)])
    euler = _random_euler(rng)
    base = box // 2 + across * rng.uniform(-0.5, 0.5) * r_mask
    for s in np.linspace(-r_mask, r_mask, 9):
        streak += _project(model, euler, box, pix, base + s * along)
    streak /= streak.std() + 1e-12
    return profile + rng.uniform(0.0, 0.7) * streak


def _noise_class(ctx) -> np.ndarray:
    box, r_mask, r_px, rng = ctx["box"], ctx["r_mask_px"], ctx["r_px"], ctx["rng"]
    variant = rng.integers(0, 4)
    if variant == 0:  # pure noise
        return np.zeros((box, box))
    r, theta, dx, dy = _polar(box, rng.normal(0, 0.05 * r_mask, size=2))
    if variant == 1:  # low-resolution blob: a heavily blurred particle or an ellipse
        if rng.random() < 0.5:
            image = _good(ctx)
            return ndimage.gaussian_filter(image, rng.uniform(0.12, 0.3) * r_px * 2)
        a = rng.uniform(0.2, 0.6) * r_mask
        b = a * rng.uniform(0.6, 1.0)
        phi = rng.uniform(0, np.pi)
        u = dx * np.cos(phi) + dy * np.sin(phi)
        v = -dx * np.sin(phi) + dy * np.cos(phi)
        return np.exp(-0.5 * ((u / a) ** 2 + (v / b) ** 2))
    if variant == 2:  # rings
        wavelength = rng.uniform(0.1, 0.35) * r_mask
        decay = rng.uniform(0.4, 1.2) * r_mask
        return np.cos(2 * np.pi * r / wavelength + rng.uniform(0, 2 * np.pi)) * np.exp(
            -((r / decay) ** 2)
        ) + rng.uniform(0, 2) * np.exp(-0.5 * (r / (0.06 * r_mask)) ** 2)
    # over-aligned noise: radial streaks around a bright centre
    angular = sum(
        rng.normal() * np.cos(n * theta + rng.uniform(0, 2 * np.pi)) for n in range(2, 16)
    )
    return angular * np.exp(-r / rng.uniform(0.2, 0.7) / r_mask) + rng.uniform(1, 4) * np.exp(
        -0.5 * (r / (0.05 * r_mask)) ** 2
    )


_MAKERS = {"good": _good, "clip": _clip, "edge": _edge, "noise": _noise_class}
_MASK_RATIO = {"good": (0.8, 2.2), "clip": (1.3, 2.6), "edge": (0.8, 2.4), "noise": (0.8, 2.4)}
_NOISE_LEVEL = {"good": (0.03, 0.5), "clip": (0.03, 0.5), "edge": (0.05, 0.8), "noise": (0.3, 1.2)}


def synthetic_class_average(
    label: str, model: PseudoAtomModel, rng: np.random.Generator
) -> SyntheticAverage:
    """One labelled class average of ``model`` at a random pixel size (3-5 Å) and mask diameter.

    The image is what a RELION-style 2D classification shows: the (filtered) projection with
    protein white on a zero background, the residual noise of averaging a random number of
    particles, and, mostly, the circular mask applied.
    """
    pixel_size_A = float(rng.uniform(3.0, 5.0))
    mask_diameter_A = float(model.diameter_A * rng.uniform(*_MASK_RATIO[label]))
    r_mask_px = mask_diameter_A / pixel_size_A / 2
    box = int(2 * np.ceil(r_mask_px * rng.uniform(1.0, 1.25) + 2))
    ctx = {
        "box": box,
        "r_mask_px": r_mask_px,
        "r_px": model.diameter_A / pixel_size_A / 2,
        "model": model,
        "pixel_size_A": pixel_size_A,
        "rng": rng,
    }
    signal = _MAKERS[label](ctx)
    transfer = _average_transfer(box, pixel_size_A, rng)
    signal = _filter(signal, transfer)
    noise = _noise(box, transfer if rng.random() < 0.7 else np.ones_like(transfer), rng)
    inside = _soft_disc(box, r_mask_px) > 0.5
    level = signal[inside].std() if signal[inside].std() > 0 else 1.0
    image = signal / level + rng.uniform(*_NOISE_LEVEL[label]) * noise
    if rng.random() < 0.85:
        image = (image - image[inside].mean()) * _soft_disc(box, r_mask_px)
    image *= rng.uniform(0.2, 5.0)
    return SyntheticAverage(
        image.astype(np.float32), label, mask_diameter_A, pixel_size_A, model.diameter_A
    )


_RANDOM_MASK_RATIO = {
    "good": (0.7, 2.0),
    "clip": (1.2, 2.4),
    "edge": (0.6, 2.4),
    "noise": (0.6, 2.4),
}
_CUT_MASK_RATIO = (0.35, 0.6)  # a "noise" average may be a particle cut by too small a mask


def _uncorrected_transfer(box: int, pixel_size_A: float, rng: np.random.Generator) -> np.ndarray:
    """Mean signed CTF over a few defoci times a B envelope: an average without CTF correction."""
    k, angle = _radial_k(box, pixel_size_A)
    defocus = rng.uniform(5000.0, 25000.0)
    ctf = np.zeros_like(k)
    for d in defocus * rng.uniform(0.85, 1.15, size=3):
        params = CtfParams(defocus_u_A=float(d), defocus_v_A=float(d))
        ctf -= np.sin(ctf_phase_aberration(k, angle, params))
    return ctf / 3 * np.exp(-rng.uniform(100.0, 1000.0) * k**2 / 4)


def randomised_class_average(
    label: str, model: PseudoAtomModel, rng: np.random.Generator
) -> SyntheticAverage:
    """A drawn class average with the mask, box, pixel size and contrast randomised (v2).

    Unlike ``synthetic_class_average`` the box is 1.3-2.6 particle diameters (12-60 px across
    the particle), the mask 0.6-2.4 diameters (good: 0.7-2) or the whole box (a quarter), its
    edge hard to soft, the solvent outside it zero or left as it is; a third of the "noise" ones
    are a particle cut by a mask of 0.35-0.6 diameters (our 2D's examples label a mask under
    0.65 diameters noise) and a third of the "clip" ones a lone particle 0.3-0.6 diameters
    off the centre (RELION's class of off-centre picks); the transfer CTF-corrected,
    uncorrected (signed CTF) or a plain low-pass; the grey levels shifted and scaled.
    """
    d_px = float(rng.uniform(12.0, 60.0))
    pixel_size_A = model.diameter_A / d_px
    box = max(int(np.ceil(d_px * rng.uniform(1.3, 2.6) / 2)) * 2, 24)
    cut = label == "noise" and rng.random() < 0.3
    whole_box = not cut and rng.random() < 0.25
    low, high = _CUT_MASK_RATIO if cut else _RANDOM_MASK_RATIO[label]
    ratio = box / d_px if whole_box else float(rng.uniform(low, min(high, box / d_px)))
    if label == "clip" and ratio * d_px < 1.2 * d_px:  # a box too small for a neighbour inside
        ratio = box / d_px
    r_mask_px = ratio * d_px / 2
    ctx = {
        "box": box,
        "r_mask_px": r_mask_px,
        "r_px": d_px / 2,
        "model": model,
        "pixel_size_A": pixel_size_A,
        "rng": rng,
    }
    if cut:
        signal = _good(ctx)
    elif label == "clip" and rng.random() < 0.3:
        signal = _off_centre(ctx)
    else:
        signal = _MAKERS[label](ctx)
    kind = rng.random()
    if kind < 0.7:
        transfer = _average_transfer(box, pixel_size_A, rng)
    elif kind < 0.85:
        transfer = _uncorrected_transfer(box, pixel_size_A, rng)
    else:
        k, _ = _radial_k(box, pixel_size_A)
        transfer = np.exp(-0.5 * (k * rng.uniform(10.0, 40.0)) ** 2)
    signal = _filter(signal, transfer)
    noise = _noise(box, np.abs(transfer) if rng.random() < 0.7 else np.ones_like(transfer), rng)
    inside = _soft_disc(box, r_mask_px) > 0.5
    level = signal[inside].std() if signal[inside].std() > 0 else 1.0
    image = signal / level + rng.uniform(*_NOISE_LEVEL[label]) * noise
    if cut or (not whole_box and rng.random() < 0.85):
        disc = _soft_disc(box, r_mask_px, edge_px=float(rng.uniform(0.3, 6.0)))
        image = (image - image[inside].mean()) * disc
        if rng.random() < 0.3:  # solvent outside the mask left as noise (no --zero_mask)
            image += (1 - disc) * rng.uniform(0.05, 0.5) * _noise(box, np.ones_like(transfer), rng)
    image = image * rng.uniform(0.2, 5.0) + rng.normal(0, 1.0)
    return SyntheticAverage(
        image.astype(np.float32), label, ratio * model.diameter_A, pixel_size_A, model.diameter_A
    )


def synthetic_class_averages(
    n_per_class: int,
    seed: int,
    structure_seeds: tuple[int, ...],
    randomised: bool = False,
    symmetries: tuple[str, ...] = SYMMETRIES,
) -> list[SyntheticAverage]:
    """``n_per_class`` averages of each label, cycling over the structures of ``structure_seeds``.

    ``randomised`` draws them with ``randomised_class_average`` (v2), else with
    ``synthetic_class_average`` (v1); the structures' symmetries come from ``symmetries``.
    """
    rng = np.random.default_rng(seed)
    models = [random_structure(s, symmetries) for s in structure_seeds]
    make = randomised_class_average if randomised else synthetic_class_average
    out = []
    for i in range(n_per_class):
        for label in CLASS_LABELS:
            out.append(make(label, models[(i + len(out)) % len(models)], rng))
    return out


def make_training_set(
    n_per_class: int,
    seed: int,
    structure_seeds: tuple[int, ...],
    size_px: int = 64,
    crop: str = "mask",
    randomised: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed inputs (n, size_px, size_px) and integer labels (index into CLASS_LABELS)."""
    items = synthetic_class_averages(n_per_class, seed, structure_seeds, randomised)
    x = np.stack(
        [
            preprocess_average(a.image, a.mask_diameter_A, a.pixel_size_A, size_px, crop)
            for a in items
        ]
    )
    y = np.array([CLASS_LABELS.index(a.label) for a in items], dtype=np.int64)
    return x, y


# --------------------------------------------------------------------------------------------------
# Training and metrics


@dataclass(frozen=True)
class TrainConfig:
    """Training of the class-assessment CNN."""

    size_px: int = 64
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    validation_fraction: float = 0.1
    seed: int = 0
    crop: str = "mask"


def train_class_model(
    x: np.ndarray, y: np.ndarray, config: TrainConfig = TrainConfig(), model=None
):
    """Train a fresh ``build_class_model`` on inputs ``x`` (n, s, s) and labels ``y`` (n,).

    With ``model`` (a loaded class model whose input side is ``x``'s), that model is trained
    further instead (fine-tuning; ``config.size_px`` and ``config.crop`` are then its own).
    Random flips/right-angle rotations augment each batch; the learning rate is cosine-decayed.
    Returns ``(model, history)`` where history maps metric names to per-epoch lists.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(x))
    n_val = int(round(config.validation_fraction * len(x)))
    val, train = order[:n_val], order[n_val:]
    x_train = np.asarray(x[train], np.float32)[..., None]
    y_train = np.asarray(y[train])

    def augment(image, label):
        image = tf.image.rot90(image, tf.random.uniform([], 0, 4, dtype=tf.int32, seed=config.seed))
        image = tf.image.random_flip_left_right(image, seed=config.seed)
        return image, label

    dataset = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=config.seed, reshuffle_each_iteration=True)
        .map(augment)
        .batch(config.batch_size)
    )
    steps = config.epochs * int(np.ceil(len(x_train) / config.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, max(steps, 1))
    if model is None:
        model = build_class_model(config.size_px, seed=config.seed, crop=config.crop)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    validation = (np.asarray(x[val], np.float32)[..., None], np.asarray(y[val])) if n_val else None
    history = model.fit(
        dataset, epochs=config.epochs, validation_data=validation, verbose=0
    ).history
    return model, {k: [float(v) for v in vals] for k, vals in history.items()}


def per_class_metrics(true: np.ndarray, predicted: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision, recall and support per label, from integer label arrays (CLASS_LABELS index)."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    metrics = {}
    for i, label in enumerate(CLASS_LABELS):
        tp = int(np.sum((predicted == i) & (true == i)))
        n_pred, n_true = int(np.sum(predicted == i)), int(np.sum(true == i))
        metrics[label] = {
            "precision": tp / n_pred if n_pred else float("nan"),
            "recall": tp / n_true if n_true else float("nan"),
            "support": n_true,
        }
    return metrics


def confusion_matrix(true: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(4, 4) counts: row = true label, column = predicted label (CLASS_LABELS order)."""
    n = len(CLASS_LABELS)
    return np.bincount(np.asarray(true) * n + np.asarray(predicted), minlength=n * n).reshape(n, n)
