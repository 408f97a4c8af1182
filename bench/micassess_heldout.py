"""Held-out evaluation of micrograph assessment from MRC files, beside the CTF-cutoff baseline.

    python bench/micassess_heldout.py [--out /tmp/micassess_heldout] [--jobs 2]
        [--n 1024] [--weights micassess_small_v2]

Renders the held-out spec (``screen.models.micassess.HELD_OUT_SET``: other seed, structures,
frame sizes and condition ranges than training; every bad type) as MRC files with the pixel size
in the header and a ``labels.csv`` of ``path,label,reason,pixel_size_A`` (kept in ``--out``: a
second run only evaluates), then runs the product's command on it::

    screen evaluate micrographs OUT/labels.csv --figure OUT/evaluation.png

which prints accuracy, precision/recall of both classes, good called bad, the confusion matrix,
per-reason recall and reason accuracy, and the same for the CTF-fit-resolution cutoff (the
cutoff best on this very set).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from screen.io.mrc import write_mrc
from screen.models import micassess as ma


def render_session(job: tuple[int, object, Path]) -> list[tuple[str, str, str, float]]:
    """Render one held-out session into ``folder``; its label rows."""
    from screen.simulate.render import render_micrograph
    from screen.simulate.session import session_models, session_plans

    index, screen_spec, folder = job
    models = session_models(screen_spec.sessions[0])
    rows = []
    for number, plan in enumerate(session_plans(screen_spec, 0)):
        counts = render_micrograph(plan, models, screen_spec.frame_px, screen_spec.pixel_size_A)
        path = folder / f"s{index:03d}_m{number:03d}.mrc"
        write_mrc(path, counts.counts, screen_spec.pixel_size_A)
        label = "good" if plan.reason == "good" else "bad"
        rows.append((str(path), label, plan.reason, screen_spec.pixel_size_A))
    return rows


def write_set(spec: ma.SimulatedSetSpec, out: Path, jobs: int) -> Path:
    """Write the set's MRC files and ``labels.csv`` (once)."""
    labels = out / "labels.csv"
    if labels.exists():
        print(f"using {labels}", file=sys.stderr)
        return labels
    folder = out / "micrographs"
    folder.mkdir(parents=True, exist_ok=True)
    sessions = ma.session_specs(spec)
    jobs_list = [(i, s, folder) for i, s in enumerate(sessions)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        rows = [row for part in pool.map(render_session, jobs_list) for row in part]
    with open(labels.with_suffix(".tmp"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "reason", "pixel_size_A"])
        writer.writerows(rows)
    labels.with_suffix(".tmp").replace(labels)
    print(
        f"rendered {len(rows)} micrographs in {time.perf_counter() - start:.0f} s", file=sys.stderr
    )
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/micassess_heldout"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--n", type=int, default=ma.HELD_OUT_SET.n_micrographs)
    parser.add_argument("--weights", default=None, help="Shipped name or weights path.")
    args = parser.parse_args(argv)
    spec = replace(ma.HELD_OUT_SET, n_micrographs=args.n)
    labels = write_set(spec, args.out, args.jobs)
    command = [
        sys.executable, "-m", "screen", "evaluate", "micrographs", str(labels),
        "--figure", str(args.out / "evaluation.png"), "--quiet",
    ]  # fmt: skip
    if args.weights:
        command += ["--micassess-weights", args.weights]
    start = time.perf_counter()
    done = subprocess.run(command, check=False)
    print(f"\nevaluation: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
