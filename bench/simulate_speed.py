"""Simulator speed: seconds per micrograph at test and K3 frame sizes; prints a table.

python bench/simulate_speed.py [--k3-micrographs 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from screen.simulate.presets import prex1, prex1_small
from screen.simulate.scenario import with_micrographs_per_session
from screen.simulate.session import simulate_screen


def _time(spec) -> tuple[float, int]:
    n = sum(s.n_micrographs for s in spec.sessions)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        simulate_screen(spec, Path(tmp))
        return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--k3-micrographs", type=int, default=1, help="per session (6 sessions)")
    args = parser.parse_args()
    rows = []
    small = prex1_small(8)
    seconds, n = _time(small)
    rows.append(("prex1-small 512x512 @2.5 Å", n, seconds))
    k3 = with_micrographs_per_session(prex1(), args.k3_micrographs)
    seconds, n = _time(k3)
    rows.append(("prex1 K3 5760x4092 @0.83 Å", n, seconds))
    k3_movies = dataclasses.replace(
        with_micrographs_per_session(prex1(), 1),
        movies=True,
        n_frames=20,
        sessions=prex1().sessions[:1],
    )
    k3_movies = with_micrographs_per_session(k3_movies, 1)
    seconds, n = _time(k3_movies)
    rows.append(("K3 movie, 20 frames", n, seconds))
    print(f"{'case':32s} {'micrographs':>11s} {'total s':>9s} {'s/micrograph':>13s}")
    for name, count, secs in rows:
        print(f"{name:32s} {count:11d} {secs:9.1f} {secs / count:13.2f}")


if __name__ == "__main__":
    main()
