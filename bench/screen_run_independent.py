"""`screen run` on micrographs of the independent simulator (`bench/independent_sim.py`).

    python bench/screen_run_independent.py [--data /tmp/indep_sim] [--out /tmp/indep_run] \
        [--sessions ribosome tetramer_d2 shell rod small] [--micrographs 6] [--seed 0]

Simulates the sessions into --data when their folders are missing (held-out physics, shapes and
optics that `screen` was not tuned on), writes a manifest (session, micrographs, pixel_size_A and
the shape as metadata; no diameter_A: the pipeline must estimate it), runs `screen run` on it and
prints one Markdown row per session: micrographs kept of all (every simulated micrograph is a good
one), the estimated diameter and its method against the true one (longest extent of the atom
cloud), the report's long axis (the larger of the diameter and the good 2D averages' length,
`screen.report.verdicts.particle_long_axis_A`) against the same, picks and their recall /
precision against truth.csv (a pick matches a true centre within
0.3 true diameters, one to one), good particles, the best mask diameter and the verdicts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from screen.io.star import read_star

REPOSITORY = Path(__file__).resolve().parents[1]
SIMULATOR = REPOSITORY / "bench" / "independent_sim.py"
SESSIONS = ("ribosome", "tetramer_d2", "shell", "rod", "small")
MATCH_RADIUS_DIAMETERS = 0.3
DIAMETER_TOLERANCE = 0.15


def simulate(
    data: Path, sessions: list[str], n_micrographs: int, frame_px: int, seed: int
) -> float:
    """Run the independent simulator for the sessions whose folder has no truth.csv; seconds."""
    missing = [s for s in sessions if not (data / s / "truth.csv").exists()]
    if not missing:
        return 0.0
    start = time.time()
    subprocess.run(
        [
            sys.executable,
            str(SIMULATOR),
            "--out",
            str(data),
            "--sessions",
            *missing,
            "--micrographs",
            str(n_micrographs),
            "--frame-px",
            str(frame_px),
            "--seed",
            str(seed),
        ],
        check=True,
    )
    return time.time() - start


def write_manifest(data: Path, out: Path, sessions: list[str]) -> Path:
    """Manifest of the simulated sessions, at the pixel size the simulator chose (conditions.csv)."""
    rows = []
    for session in sessions:
        conditions = pd.read_csv(data / session / "conditions.csv")
        rows.append(
            {
                "session": session,
                "micrographs": str((data / session).resolve()),
                "pixel_size_A": float(conditions["pixel_size_A"].iloc[0]),
                "shape": session,
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def match_picks(
    truth: pd.DataFrame, picks_dir: Path, pixel_size_A: float
) -> tuple[int, int, int, float]:
    """(true positives, picks, true particles, median centre error in px) over a session."""
    matched, n_picks, errors = 0, 0, []
    for micrograph, particles in truth.groupby("micrograph"):
        path = picks_dir / f"{micrograph}.star"
        if not path.exists():
            continue
        picks = next(iter(read_star(path).values()))
        n_picks += len(picks)
        if picks.empty:
            continue
        true_xy = particles[["x_px", "y_px"]].to_numpy(float)
        pick_xy = picks[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy(float)
        radius_px = MATCH_RADIUS_DIAMETERS * particles["diameter_A"].iloc[0] / pixel_size_A
        distance = cdist(true_xy, pick_xy)
        rows, cols = linear_sum_assignment(np.where(distance <= radius_px, distance, 1e9))
        good = distance[rows, cols] <= radius_px
        matched += int(good.sum())
        errors += list(distance[rows, cols][good])
    return matched, n_picks, len(truth), float(np.median(errors)) if errors else float("nan")


def long_axis_of(out: Path, summary: dict) -> float:
    """The report's long axis of a session (`SessionResults.long_axis`; NaN without one)."""
    from screen.report.context import session_results
    from screen.store.layout import RunLayout

    found = session_results(RunLayout(out), summary).long_axis()
    return found.long_axis_A if found is not None else float("nan")


def session_row(data: Path, out: Path, session: str) -> str:
    """One Markdown table row for a session."""
    summary = json.loads((out / "sessions" / session / "summary.json").read_text())
    truth = pd.read_csv(data / session / "truth.csv")
    conditions = pd.read_csv(data / session / "conditions.csv")
    pixel_size_A = float(conditions["pixel_size_A"].iloc[0])
    if summary.get("status") != "ok":
        return f"| {session} | failed: {summary.get('error')} |"
    true_diameter_A = float(truth["diameter_A"].iloc[0])
    diameter_A = summary.get("diameter_A") or float("nan")
    own_A = summary.get("diameter_estimate_A") or float("nan")
    ratio = diameter_A / true_diameter_A
    within = "yes" if abs(ratio - 1) <= DIAMETER_TOLERANCE else "**no**"
    uncertainty = summary.get("diameter_uncertainty_A")
    shown = f"{diameter_A:.0f}" + (f" ± {uncertainty:.0f}" if uncertainty else "")
    if summary.get("diameter_source") != "estimated":
        shown += f" ({summary.get('diameter_source')}; own {own_A:.0f})"
    tp, n_picks, n_true, error_px = match_picks(
        truth, out / "sessions" / session / "picks", pixel_size_A
    )
    recall = tp / n_true if n_true else float("nan")
    precision = tp / n_picks if n_picks else float("nan")
    error_A = error_px * pixel_size_A
    mics = pd.read_csv(out / "sessions" / session / "micrographs.csv")
    reasons = (
        mics.loc[mics["verdict"] != "good", "reason"].value_counts() if "verdict" in mics else None
    )
    bad = (
        ", ".join(f"{r} {n}" for r, n in reasons.items())
        if reasons is not None and len(reasons)
        else "-"
    )
    titles = "; ".join(v.split(":")[0] for v in summary.get("verdicts") or []) or "-"
    long_axis = long_axis_of(out, summary)
    long_ratio = long_axis / true_diameter_A
    long_within = "yes" if abs(long_ratio - 1) <= DIAMETER_TOLERANCE else "**no**"
    return (
        f"| {session} | {summary['n_good_micrographs']} / {summary['n_micrographs']} ({bad}) | "
        f"{shown} | {summary.get('diameter_method')} | {true_diameter_A:.0f} | {ratio:.2f} | {within} | "
        f"{long_axis:.0f} | {long_ratio:.2f} | {long_within} | "
        f"{n_picks} / {n_true} | {recall:.2f} | {precision:.2f} | {error_A:.0f} | "
        f"{summary.get('good_particles')} | {summary.get('best_mask_diameter_A')} | {titles} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/indep_sim"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/indep_run"))
    parser.add_argument("--sessions", nargs="+", default=list(SESSIONS))
    parser.add_argument("--micrographs", type=int, default=6)
    parser.add_argument("--frame-px", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-run", action="store_true", help="only tabulate an earlier run")
    args = parser.parse_args(argv)
    simulated_s = simulate(args.data, args.sessions, args.micrographs, args.frame_px, args.seed)
    manifest = write_manifest(args.data, args.out, args.sessions)
    run_s = 0.0
    if not args.skip_run:
        start = time.time()
        # `python -m screen` from the repository root: the console script may not see the package
        subprocess.run(
            [
                sys.executable,
                "-m",
                "screen",
                "run",
                str(manifest),
                "--out",
                str(args.out / "results"),
                "-q",
                "--no-store",
            ],
            check=True,
            cwd=REPOSITORY,
        )
        run_s = time.time() - start
    print(f"\nindependent simulator: {simulated_s:.0f} s; `screen run`: {run_s:.0f} s\n")
    print(
        "| session | kept (bad reasons) | diameter Å | method | true Å | ratio | ±15 % | long axis Å "
        "| ratio | ±15 % | picks / true | recall | precision | centre error Å | good particles "
        "| best mask Å | verdicts |"
    )
    print("| --- " * 17 + "|")
    for session in args.sessions:
        print(session_row(args.data, args.out / "results", session))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
