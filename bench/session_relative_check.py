"""A micrograph judged against its own session: spectra and CTF fit relative to the session's median.

    python bench/session_relative_check.py [--out /tmp/session_relative] [--held-out DIR ...]

Issue 10 asks for a session-level view of micrograph assessment. Within one session every
micrograph went through one detector, dose and processing chain, so differences from the session's
median cancel what a simulator cannot know (export, binning, denoiser). This script measures
whether such differences catch the bad kinds the network misses after processing (bad CTF, thick
ice, drift, empty) without losing good micrographs:

1. renders labelled sessions with one chain of the *training* variation generators per session
   (``TRAIN_SET_V3``'s distribution, seeds 901 / 903) and clean ones of v2's kind (seed 902);
2. per micrograph: the log power in 12 log-spaced bands of the periodogram (0.02-1 of Nyquist,
   pixel values scaled by their interquartile range), the 2-fold anisotropy of the log power in the
   same bands, and the CTF fit's resolution and correlation (``screen.stages.ctf``); each minus its
   session's median;
3. trains a small dense network (32 units, softmax over good + the 8 reasons) on them, and
   reports, on the validation sessions and on the held-out per-session sets of
   ``micassess_generators.py --per-session`` (``--held-out``), what happens when `screen run`'s
   verdicts (``product``) also reject what the network calls bad (P(good) < t).

Nothing here is used by `screen`; results in bench/README.md ("Judging a micrograph against its
session").
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from micassess_generators import evaluate, render_session  # bench/ is on sys.path
from train_micassess_v3 import TRAIN_SET_V3

from screen.io.images import read_image
from screen.models import micassess as ma
from screen.processing.fourier import periodogram_average
from screen.simulate.domain import TRAINING_DOMAIN, DomainSpec
from screen.stages import ctf
from screen.stages.records import MICROGRAPH_REASONS, Optics

CLASSES = ("good", *MICROGRAPH_REASONS)
BAND_EDGES = np.geomspace(0.02, 1.0, 13)  # fractions of Nyquist
THRESHOLDS = (1e-3, 0.01, 0.03, 0.05)


def render(folder: Path, spec, domain) -> Path:
    labels = folder / "labels.csv"
    if labels.exists():
        return labels
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(i, s, domain, folder) for i, s in enumerate(ma.session_specs(spec))]
    with ProcessPoolExecutor(2) as pool:
        rows = [row for part in pool.map(render_session, jobs) for row in part]
    with open(labels, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "reason", "pixel_size_A", "session"])
        writer.writerows(rows)
    return labels


def micrograph_features(job: tuple[str, float]) -> np.ndarray:
    """Band log powers (12), band anisotropies (12), log CTF fit resolution and correlation."""
    path, pixel_size_A = job
    image = np.asarray(read_image(path).data, np.float32)
    low, high = np.quantile(image[::4, ::4], [5e-4, 1 - 5e-4])
    image = np.clip(image, low, high)
    q75, q25 = np.quantile(image, [0.75, 0.25])
    scaled = (image - np.median(image)) / max(float(q75 - q25), 1e-12)
    power = periodogram_average(scaled, tile_px=min(256, min(image.shape) // 2), overlap=0.5)
    n = power.shape[0]
    y, x = np.indices(power.shape) - n // 2
    radius = np.hypot(x, y) / (n / 2)
    angle = np.exp(2j * np.arctan2(y, x))
    log_power = np.log(power + 1e-30)
    smallest = 1.5 / (n / 2)
    levels, anisotropy = [], []
    for a, b in zip(BAND_EDGES[:-1], BAND_EDGES[1:], strict=True):
        band = (radius >= max(a, smallest)) & (radius < max(b, 1.6 * smallest))
        values = log_power[band]
        levels.append(values.mean())
        anisotropy.append(abs((values - values.mean()) @ angle[band]) / band.sum())
    try:
        fit = ctf.estimate_ctf(image, Optics(pixel_size_A), ctf.CtfSearch())
        fitted = (np.log(fit.fit_resolution_A), fit.score)
    except ValueError:  # no fitting band at this pixel size
        fitted = (np.nan, np.nan)
    return np.array([*levels, *anisotropy, *fitted], np.float32)


def session_relative(labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """Features minus their session's median, and class indices."""
    table = pd.read_csv(labels)
    jobs = [
        (str(labels.parent / p), float(s))
        for p, s in zip(table.path, table.pixel_size_A, strict=True)
    ]
    with ProcessPoolExecutor(2) as pool:
        raw = np.stack(list(pool.map(micrograph_features, jobs, chunksize=4)))
    out = np.zeros((len(raw), 39), np.float32)
    for session in table.session.unique():
        rows = np.flatnonzero((table.session == session).to_numpy())
        median = np.nanmedian(raw[rows], axis=0)
        fitted = np.isfinite(raw[rows, -2])
        for i in rows:
            d = raw[i] - median
            levels = d[:12]
            ok = fitted.sum() >= 3 and np.isfinite(raw[i, -2])
            fit = d[-2:] if ok else np.zeros(2)
            # band levels, their shape (mean removed), anisotropies (~10x smaller), the CTF fit
            out[i] = np.concatenate([levels, levels - levels.mean(), 10.0 * d[12:24], fit, [ok]])
    classes = [
        CLASSES.index("good" if lab == "good" else r)
        for lab, r in zip(table.label, table.reason, strict=True)
    ]
    return out, np.asarray(classes)


def train(x: np.ndarray, y: np.ndarray, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((x.shape[1],))
    hidden = keras.layers.Dense(32, "relu", kernel_regularizer=keras.regularizers.l2(1e-3))(inputs)
    outputs = keras.layers.Dense(len(CLASSES), "softmax")(keras.layers.Dropout(0.2)(hidden))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    counts = np.bincount(y, minlength=len(CLASSES)).astype(float)
    weights = {i: len(y) / (len(CLASSES) * max(c, 1.0)) for i, c in enumerate(counts)}
    model.fit(x, y, epochs=300, batch_size=64, verbose=0, class_weight=weights)
    return model


def combined(name: str, labels: Path, model) -> None:
    """Rows: `screen run`'s verdicts alone, then also rejecting P(good) < t of the session check."""
    x, _ = session_relative(labels)
    p = model.predict(x, verbose=0)
    result = evaluate(labels, "product")
    table = pd.read_csv(labels)
    predicted = np.array(result.predicted_reasons)
    good = (table.label == "good").to_numpy()
    truth = table.reason.to_numpy()
    kept = predicted == "good"
    rows = [("product", kept, predicted)]
    for t in THRESHOLDS:
        flag = p[:, 0] < t
        reasons = np.where(kept & flag, np.array(CLASSES)[p[:, 1:].argmax(1) + 1], predicted)
        rows.append((f"product + check, t = {t:g}", kept & ~flag, reasons))
    for what, keep, reasons in rows:
        print(
            f"| {name} | {what} | {np.mean(good == keep):.3f} | {np.mean(~keep[good]):.3f} | "
            f"{np.mean((reasons == truth)[~good]):.3f} |",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/session_relative"))
    parser.add_argument("--held-out", type=Path, nargs="*", default=[], help="set folders")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    per_session = DomainSpec(TRAINING_DOMAIN.allowed, TRAINING_DOMAIN.probability, (), True)
    base = replace(TRAIN_SET_V3, micrographs_per_session=16, domain=per_session)
    train_sets = [
        render(args.out / "train_ps", replace(base, n_micrographs=960, seed=901), per_session),
        render(
            args.out / "train_clean",
            replace(ma.TRAIN_SET, n_micrographs=320, seed=902, micrographs_per_session=16),
            None,
        ),
    ]
    validation = render(
        args.out / "val_ps", replace(base, n_micrographs=320, seed=903), per_session
    )
    parts = [session_relative(labels) for labels in train_sets]
    model = train(np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]))
    print("| set | verdicts | accuracy | good called bad | reason right |")
    print("| --- | --- | --- | --- | --- |")
    combined("validation (training generators, per session)", validation, model)
    for folder in args.held_out:
        combined(folder.name, folder / "labels.csv", model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
