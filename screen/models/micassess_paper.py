"""The paper's MicAssess: a ResNet34 on a 494x494 micrograph, sigmoid P(good), bad below 0.1.

For users who have the original MicAssess weights (``micassess_051419.h5``, Li et al. 2020) or a
ResNet34 they trained the paper's way, and want the paper's behaviour inside ``screen run``
(``--micassess-weights model.h5``). Preprocessing follows the original ``micassess.py``:

1. Fourier-crop the frame to a height of 494 px (width in proportion, even);
2. min-max scale to 8-bit grey levels (the original wrote JPEGs; the JPEG compression itself
   is not reproduced);
3. a nearly square frame (K2: 494x512) is resized to 494x494 (nearest neighbour, Keras'
   default); a wide frame (K3: 494x696) gives a left and a right 494x494 crop, and the
   micrograph's P(good) is the larger of the two, as in the original;
4. z-score each square, zero outside the inscribed circle (radius 247 px).

The network has one image input and one sigmoid output (P(good)); it gives no reason, so
bad micrographs it finds carry none. :func:`build_resnet34` defines the architecture for
weights-only files and for measuring its speed (``bench/micassess_bench.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from screen.processing.fourier import fourier_crop

PAPER_IMAGE_PX = 494
"""Side of the square the paper's network sees."""
SQUASH_MAX_ASPECT = 1.2
"""Frames no wider than this (K2, square) are resized to a square; wider ones give two crops."""


def build_resnet34(image_px: int = PAPER_IMAGE_PX, channels: int = 1):
    """ResNet34 (basic blocks 3-4-6-3, He et al. 2016) with a one-unit sigmoid head (uncompiled)."""
    import keras
    from keras import layers

    def block(x, filters: int, stride: int, name: str):
        shortcut = x
        y = layers.Conv2D(
            filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1"
        )(x)
        y = layers.BatchNormalization(name=f"{name}_bn1")(y)
        y = layers.ReLU(name=f"{name}_relu1")(y)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
        y = layers.BatchNormalization(name=f"{name}_bn2")(y)
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = layers.Conv2D(
                filters, 1, strides=stride, use_bias=False, name=f"{name}_proj"
            )(shortcut)
            shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
        y = layers.Add(name=f"{name}_add")([y, shortcut])
        return layers.ReLU(name=f"{name}_out")(y)

    image = keras.Input((image_px, image_px, channels), name="image")
    x = layers.Conv2D(64, 7, strides=2, padding="same", use_bias=False, name="conv1")(image)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    for stage, (filters, n_blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 1):
        for index in range(n_blocks):
            stride = 2 if index == 0 and stage > 1 else 1
            x = block(x, filters, stride, f"stage{stage}_block{index + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    p_good = layers.Dense(1, activation="sigmoid", name="p_good")(x)
    return keras.Model(image, p_good, name="micassess_resnet34")


def is_paper_model(model) -> bool:
    """True for a one-input, one-output network (the paper's kind), False for ours."""
    return len(model.inputs) == 1 and len(model.outputs) == 1


def load_paper_model(path: str | Path):
    """Load a paper-style MicAssess network from ``.h5``/``.keras``.

    A full saved model (the original ``micassess_051419.h5`` is one) loads as it is; a
    weights-only ``.h5`` (Keras 2 layout, or Keras 3's ``.weights.h5`` layout under another
    name) is loaded into :func:`build_resnet34`.
    """
    import tempfile

    import keras

    path = Path(path)
    try:
        return keras.models.load_model(path, compile=False)
    except (ValueError, TypeError, KeyError, OSError) as first_error:
        if path.suffix.lower() not in (".h5", ".hdf5"):
            raise
        model = build_resnet34()
        errors = [f"not a saved Keras model ({first_error})"]
        try:
            model.load_weights(path)  # Keras 2 weights layout
            return model
        except Exception as exc:
            errors.append(f"not Keras 2 ResNet34 weights ({exc})")
        with tempfile.TemporaryDirectory() as folder:
            alias = Path(folder) / "weights.weights.h5"
            alias.symlink_to(path.resolve())
            try:
                model.load_weights(alias)  # Keras 3 weights layout
                return model
            except Exception as exc:
                errors.append(f"not Keras 3 ResNet34 weights ({exc})")
        raise ValueError(f"{path}: " + "; ".join(errors)) from None


def paper_squares(image: np.ndarray, image_px: int = PAPER_IMAGE_PX) -> np.ndarray:
    """The paper's network inputs for one micrograph: ``(n_squares, image_px, image_px)``.

    One square for a square or K2-shaped frame, two (left and right) for a wider one.
    """
    from skimage.transform import resize

    image = np.asarray(image, dtype=np.float32)
    ny, nx = image.shape
    if ny > nx:
        image = image.T
        ny, nx = nx, ny
    if ny < image_px:
        raise ValueError(
            f"cannot assess a micrograph of shape {image.shape} with a {image_px}-px network: "
            "its short side is smaller"
        )
    width = min(nx, max(image_px, int(round(nx * image_px / ny / 2)) * 2))
    small = fourier_crop(image, (image_px, width))
    span = float(small.max() - small.min())
    grey = np.floor((small - small.min()) / (span + 1e-7) * 255.0).astype(np.float32)
    if width / image_px <= SQUASH_MAX_ASPECT:
        squares = [resize(grey, (image_px, image_px), order=0, preserve_range=True)]
    else:
        squares = [grey[:, :image_px], grey[:, width - image_px :]]
    yy, xx = np.indices((image_px, image_px))
    centre = image_px // 2
    radius = min(centre, image_px - centre)
    outside = np.hypot(yy - centre, xx - centre) > radius
    out = []
    for square in squares:
        std = float(square.std())
        normed = (square - float(square.mean())) / (std if std > 0 else 1.0)
        normed[outside] = 0.0
        out.append(normed.astype(np.float32))
    return np.stack(out)


def predict_paper(model, images: list[np.ndarray], batch_size: int = 8) -> np.ndarray:
    """P(good) of each micrograph: the larger over its squares (left/right of a wide frame)."""
    image_px = int(model.inputs[0].shape[1])
    channels = int(model.inputs[0].shape[-1])
    squares, owner = [], []
    for index, image in enumerate(images):
        for square in paper_squares(image, image_px):
            squares.append(square)
            owner.append(index)
    p_good = np.full(len(images), -np.inf)
    for start in range(0, len(squares), batch_size):
        batch = np.stack(squares[start : start + batch_size])[..., None]
        if channels != 1:
            batch = np.repeat(batch, channels, axis=-1)
        scores = np.asarray(model.predict_on_batch(batch), dtype=np.float64).reshape(len(batch), -1)
        for row, score in zip(owner[start : start + batch_size], scores[:, -1], strict=True):
            p_good[row] = max(p_good[row], float(score))
    return p_good
