"""Time `screen run` per stage on simulated screens; prints a table (seconds per micrograph).

python bench/screen_run_speed.py [--k3-micrographs 2] [--small-micrographs 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from screen.manifest import read_manifest
from screen.pipeline import run_screen
from screen.simulate.presets import prex1, prex1_small
from screen.simulate.scenario import with_micrographs_per_session
from screen.simulate.session import simulate_screen


def _measure(name: str, spec) -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        manifest = simulate_screen(spec, Path(tmp) / "sim")
        start = time.perf_counter()
        summaries = run_screen(read_manifest(manifest), Path(tmp) / "out", render=False)
        wall = time.perf_counter() - start
    n = sum(s["n_micrographs"] for s in summaries)
    stages: dict[str, float] = {}
    for summary in summaries:
        for stage, seconds in summary.get("stage_seconds", {}).items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    cpu = sum(s.get("cpu_seconds", 0.0) for s in summaries)
    rows.append((name, n, wall, cpu, stages))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small-micrographs", type=int, default=16)
    parser.add_argument("--k3-micrographs", type=int, default=2)
    args = parser.parse_args()
    rows = _measure(
        "prex1-small 512² @2.5 Å",
        with_micrographs_per_session(prex1_small(), args.small_micrographs),
    )
    if args.k3_micrographs > 0:
        rows += _measure(
            "prex1 K3 5760x4092 @0.83 Å", with_micrographs_per_session(prex1(), args.k3_micrographs)
        )
    print(
        f"{'screen':28s} {'mics':>5s} {'wall s':>8s} {'CPU s':>8s} {'wall s/mic':>11s}  per stage (s/mic)"
    )
    for name, n, wall, cpu, stages in rows:
        per_stage = ", ".join(f"{k} {v / n:.2f}" for k, v in stages.items())
        print(f"{name:28s} {n:5d} {wall:8.1f} {cpu:8.1f} {wall / n:11.2f}  {per_stage}")


if __name__ == "__main__":
    main()
