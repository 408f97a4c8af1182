"""Micrograph-assessment speed on K3-sized MRC files, reading and down-sampling included.

    python bench/micassess_speed.py [--n 16] [--out /tmp/micassess_speed] [--no-paper]

Writes ``--n`` float32 MRC files of 5760 x 4092 pixels (a K3 frame; Poisson counts, the
content does not change the cost) and times the path ``screen run`` takes for them: read the
file, Fourier-crop, spectrum, batched CNN (the pipeline's stage function), in the pipeline's
chunks. Prints a table for the shipped network and for the paper-size ResNet34 (494 px,
random weights: the same arithmetic as the original weights). The bar of issue 4 is >= 2
micrographs per second for the shipped network on 2 cores.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from screen.io.images import read_ahead, read_image, summed_frames
from screen.io.mrc import write_mrc
from screen.stages.assess_micrographs import (
    MicrographAssessParams,
    assess_micrographs,
    load_micrograph_model,
)

K3_SHAPE = (4092, 5760)
K3_PIXEL_A = 0.83
CHUNK = 8
STARTUP_CHUNKS = 2


def write_frames(out: Path, n: int) -> list[Path]:
    """``n`` K3-sized float32 MRC files (written once, reused)."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(n):
        path = out / f"k3_{index:03d}.mrc"
        if not path.exists():
            write_mrc(path, rng.poisson(1.2, K3_SHAPE).astype(np.float32), K3_PIXEL_A)
        paths.append(path)
    return paths


def time_model(model, paths: list[Path], read_ahead_on: bool = True) -> dict[str, float]:
    """Seconds spent reading and assessing ``paths`` in chunks (after one warm-up chunk).

    As ``screen run`` does, the next chunk is read while this one is assessed
    (``screen.io.images.read_ahead``); "read" is the time spent waiting for a chunk's pixels.
    """
    params = MicrographAssessParams()
    warm = [summed_frames(read_image(p).data) for p in paths[:2]]
    assess_micrographs(warm, [K3_PIXEL_A] * len(warm), params, model)

    def read(chunk: list[Path]) -> list[np.ndarray]:
        return [summed_frames(read_image(p).data) for p in chunk]

    chunks = [paths[start : start + CHUNK] for start in range(0, len(paths), CHUNK)]
    per_chunk = []
    t0 = time.perf_counter()
    for _, images in read_ahead(chunks, read, background=read_ahead_on):
        t1 = time.perf_counter()
        assess_micrographs(images, [K3_PIXEL_A] * len(images), params, model)
        t2 = time.perf_counter()
        per_chunk.append((len(images), t1 - t0, t2 - t1))
        t0 = t2
    read_s = sum(r for _, r, _ in per_chunk)
    assess_s = sum(a for _, _, a in per_chunk)
    # The first chunks' arrays land on memory the process never touched; on this VM that costs
    # seconds per chunk (8 K3 frames kept: 7 s, against 0.4 s once freed pages are reused), a
    # start-up cost that a session of hundreds of micrographs pays once.
    later = per_chunk[STARTUP_CHUNKS:]
    steady = sum(n for n, _, _ in later) / max(sum(r + a for _, r, a in later), 1e-9)
    return {"read": read_s, "assess": assess_s, "total": read_s + assess_s, "steady": steady}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("/tmp/micassess_speed"))
    parser.add_argument("--weights", default=MicrographAssessParams().model)
    parser.add_argument("--no-paper", action="store_true", help="Skip the ResNet34.")
    parser.add_argument(
        "--no-read-ahead", action="store_true", help="Read each chunk when reached."
    )
    args = parser.parse_args(argv)
    paths = write_frames(args.out, args.n)
    rows = []
    model = load_micrograph_model(MicrographAssessParams(model=args.weights))
    rows.append((args.weights, time_model(model, paths, not args.no_read_ahead)))
    if not args.no_paper:
        from screen.models.micassess_paper import build_resnet34

        rows.append(
            ("paper ResNet34, 494 px", time_model(build_resnet34(), paths, not args.no_read_ahead))
        )
    print(f"{len(paths)} K3 micrographs (5760 x 4092 float32 MRC, {K3_PIXEL_A} Å/px), 2 cores\n")
    print(
        "| network | waiting for reads s | preprocess + CNN s | total s | micrographs/s | "
        f"after the first {STARTUP_CHUNKS} chunks, micrographs/s |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, seconds in rows:
        print(
            f"| {name} | {seconds['read']:.1f} | {seconds['assess']:.1f} | "
            f"{seconds['total']:.1f} | {len(paths) / seconds['total']:.2f} | "
            f"{seconds['steady']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
