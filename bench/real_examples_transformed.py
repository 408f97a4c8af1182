"""The real examples under what an export, a camera or a user's conversion can do to them.

    python bench/real_examples_transformed.py --out /tmp/transformed [--only jpeg30 hot ...]

Each transformation is applied to the 14 images of ``shared/real_examples`` (12 good EMPIAR-10017
exports as one session, the good Magellon micrograph, the contaminated micrograph), written as
MRC with a ``labels.csv`` per transformation, and judged by ``screen evaluate micrographs``: the
decisions of ``screen run`` (network, domain fallback, image checks, session checks). Prints one
row per transformation: how many good micrographs were kept, and the bad one's verdict. None of
them should turn a good micrograph bad: the checks' meaning must not depend on the export. The
transformations are not a measurement of accuracy (14 images of three sources); they find the
checks that read an export's artefact as a property of the grid.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from screen.io.real_examples import REAL_EXAMPLES_DIR, real_examples
from screen.processing.filters import bin_to_pixel_size

Transform = Callable[[np.ndarray, float], tuple[np.ndarray, float]]


def _stretch8(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, [0.5, 99.5])
    return np.round(np.clip((image - low) / (high - low), 0, 1) * 255.0)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_stretch8(image).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer), dtype=np.float64)


def _low_pass(image: np.ndarray, pixel_size_A: float, cutoff_A: float) -> np.ndarray:
    spectrum = np.fft.rfft2(image)
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.rfftfreq(image.shape[1])[None, :]
    spectrum[np.hypot(fx, fy) / pixel_size_A > 1.0 / cutoff_A] = 0
    return np.fft.irfft2(spectrum, image.shape)


def _fourier_pad2(image: np.ndarray, pixel_size_A: float) -> tuple[np.ndarray, float]:
    ny, nx = image.shape
    padded = np.zeros((2 * ny, 2 * nx), complex)
    padded[ny // 2 : ny // 2 + ny, nx // 2 : nx // 2 + nx] = np.fft.fftshift(np.fft.fft2(image))
    return 4.0 * np.real(np.fft.ifft2(np.fft.ifftshift(padded))), pixel_size_A / 2


def _hot_pixels(image: np.ndarray, pixel_size_A: float) -> tuple[np.ndarray, float]:
    out = image.copy()
    out.flat[np.random.default_rng(1).integers(0, image.size, 300)] = 20.0 * image.max()
    return out, pixel_size_A


def _stripes(image: np.ndarray, axis: int) -> np.ndarray:
    n = image.shape[1 - axis]
    rng = np.random.default_rng(5)
    profile = 0.5 * image.std() * np.sin(0.37 * np.arange(n)) * (rng.random(n) < 0.1)
    return image + (profile[None, :] if axis == 0 else profile[:, None])


def _nl_means_bin4(image: np.ndarray, pixel_size_A: float) -> tuple[np.ndarray, float]:
    from skimage.restoration import denoise_nl_means

    binned, binned_A = bin_to_pixel_size(image, pixel_size_A, 4 * pixel_size_A)
    steps = np.diff(binned, axis=0)
    sigma = float(1.4826 * np.median(np.abs(steps - np.median(steps))) / np.sqrt(2))
    denoised = denoise_nl_means(binned, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6)
    return denoised, binned_A


def _ramp(image: np.ndarray, share: float) -> np.ndarray:
    return image * (1.0 + share * np.linspace(-1.0, 1.0, image.shape[1])[None, :])


TRANSFORMS: dict[str, Transform] = {
    "as given": lambda a, p: (a, p),
    "z-scored float": lambda a, p: ((a - a.mean()) / a.std(), p),
    "16-bit with offset": lambda a, p: (np.round(37.0 * a + 1000.0), p),
    "8-bit stretch (0.5-99.5 %)": lambda a, p: (_stretch8(a), p),
    "gamma 0.6": lambda a, p: (255.0 * ((a - a.min()) / np.ptp(a)) ** 0.6, p),
    "saturated at the 95th percentile": lambda a, p: (np.minimum(a, np.percentile(a, 95)), p),
    "Fourier-binned 2x": lambda a, p: bin_to_pixel_size(a, p, 2 * p),
    "Fourier-binned 3x": lambda a, p: bin_to_pixel_size(a, p, 3 * p),
    "Fourier-binned 4x": lambda a, p: bin_to_pixel_size(a, p, 4 * p),
    "binned 2x, 8-bit stretch": lambda a, p: (_stretch8(bin_to_pixel_size(a, p, 2 * p)[0]), 2 * p),
    "Fourier-padded 2x (half the pixel)": _fourier_pad2,
    "central quarter": lambda a, p: (
        a[a.shape[0] // 4 : 3 * a.shape[0] // 4, a.shape[1] // 4 : 3 * a.shape[1] // 4],
        p,
    ),
    "Gaussian blur 1.5 px": lambda a, p: (ndi.gaussian_filter(a, 1.5), p),
    "median 3 x 3": lambda a, p: (ndi.median_filter(a, 3), p),
    "low-pass at 8 Å": lambda a, p: (_low_pass(a, p, 8.0), p),
    "NL-means on 4x binned": _nl_means_bin4,
    "Gaussian noise of the image's std": lambda a, p: (
        a + np.random.default_rng(0).normal(0.0, a.std(), a.shape),
        p,
    ),
    "JPEG quality 30": lambda a, p: (_jpeg(a, 30), p),
    "JPEG quality 60": lambda a, p: (_jpeg(a, 60), p),
    "300 hot pixels (20 x max)": _hot_pixels,
    "column stripes (gain)": lambda a, p: (_stripes(a, 0), p),
    "row stripes": lambda a, p: (_stripes(a, 1), p),
    "grey-level ramp +-10 %": lambda a, p: (_ramp(a, 0.1), p),
    "zero-filled left border (1/60)": lambda a, p: (
        np.where(np.arange(a.shape[1])[None, :] < a.shape[1] // 60, 0.0, a),
        p,
    ),
}


def write_session(transform: Transform, folder: Path) -> Path:
    """The real examples transformed, as MRC files and a labels CSV (one session per source)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for example in real_examples(REAL_EXAMPLES_DIR):
        image, pixel_size_A = transform(example.read().astype(np.float64), example.pixel_size_A)
        name = example.path.stem[:48] + ".mrc"
        with mrcfile.new(folder / name, overwrite=True) as mrc:
            mrc.set_data(np.asarray(image, dtype=np.float32))
            mrc.voxel_size = pixel_size_A
        session = "empiar10017" if "empiar" in name else example.path.stem.split("_")[0]
        reason = "" if example.verdict == "good" else "contaminated"
        rows.append((name, example.verdict, reason, round(pixel_size_A, 4), session))
    labels = folder / "labels.csv"
    pd.DataFrame(rows, columns=["path", "label", "reason", "pixel_size_A", "session"]).to_csv(
        labels, index=False
    )
    return labels


def judged(labels: Path) -> pd.DataFrame:
    """``screen evaluate micrographs`` on one labels CSV: its per-micrograph table."""
    table = labels.parent / "evaluation.csv"
    subprocess.run(
        [
            "screen",
            "evaluate",
            "micrographs",
            str(labels),
            "--table",
            str(table),
            "--figure",
            str(labels.parent / "evaluation.png"),
        ],
        check=True,
        capture_output=True,
    )
    return pd.read_csv(table)


def row(name: str, table: pd.DataFrame, seconds: float) -> str:
    empiar = table[table.session == "empiar10017"]
    kept = int((empiar.verdict == "good").sum())
    magellon = table[table.session == "magellon"].iloc[0]
    bad = table[table.label == "bad"].iloc[0]
    lost = empiar[empiar.verdict != "good"].reason.fillna("?").value_counts()
    why = ", ".join(f"{n} {r}" for r, n in lost.items()) or "-"
    return (
        f"| {name} | {kept} / {len(empiar)} ({why}) | {magellon.verdict} "
        f"({magellon.p_good:.2f}) | {bad.verdict}, {bad.reason if bad.verdict == 'bad' else '-'} "
        f"({bad.p_good:.2f}) | {seconds:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder for the MRC copies.")
    parser.add_argument("--only", nargs="*", help="Transformations to run (default: all).")
    args = parser.parse_args(argv)
    if not real_examples(REAL_EXAMPLES_DIR):
        print(f"no real examples in {REAL_EXAMPLES_DIR}", file=sys.stderr)
        return 1
    print(
        "| transformation | EMPIAR-10017 kept (lost: reason) | Magellon (P) | contaminated one | s |"
    )
    print("| --- | --- | --- | --- | --- |")
    for index, name in enumerate(args.only or TRANSFORMS):
        start = time.perf_counter()
        labels = write_session(TRANSFORMS[name], args.out / f"t{index:02d}")
        print(row(name, judged(labels), time.perf_counter() - start), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
