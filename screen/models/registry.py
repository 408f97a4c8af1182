"""Shipped weights, chosen by name; a user may pass a path to their own weights instead.

Weights live in the repository's top-level ``models/`` folder as ``<name>.keras`` with a model card
``<name>.md`` beside them. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from screen.errors import ScreenError

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def weights_path(name_or_path: str | Path) -> Path:
    """Resolve a shipped model name (``"micassess_small_v2"``) or a file path to an existing file."""
    candidate = Path(name_or_path)
    if candidate.suffix and candidate.exists():
        return candidate
    shipped = MODELS_DIR / f"{name_or_path}.keras"
    if shipped.exists():
        return shipped
    known = sorted(p.stem for p in MODELS_DIR.glob("*.keras"))
    raise ScreenError(
        f"model {str(name_or_path)!r} not found: not a file, and not a shipped model "
        f"(shipped: {', '.join(known) or 'none'})"
    )


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file (recorded in provenance and model cards)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_keras_model(name_or_path: str | Path):
    """Load Keras weights by name or path (imports TensorFlow/Keras on first use)."""
    import keras

    path = weights_path(name_or_path)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise ScreenError(f"{path}: cannot load Keras model: {exc}") from exc
