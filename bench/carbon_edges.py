"""Carbon film edges: the step contrast and dark side of every micrograph, per true reason.

    python bench/carbon_edges.py [--sets /tmp/micassess_generators] [--generators ...]

Reads the held-out sets that ``bench/micassess_generators.py`` writes (one folder per set with
``labels.csv``; run that first, or point ``--sets`` at its ``--out``) and the real examples, and
prints for each set and true reason the step contrast of `screen.processing.carbon.carbon_edge`
(10/50/90 %), how many micrographs the check calls carbon (step contrast and transition within
the thresholds and a dark side of at least ``MicrographAssessParams().max_carbon_fraction``),
and, among micrographs with such a dark side, the largest contrast and the narrowest transition
of a step that passes the contrast: the numbers the check's constants stand on.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from screen.io.mrc import read_mrc
from screen.io.real_examples import REAL_EXAMPLES_DIR, real_examples
from screen.processing.carbon import CARBON_MAX_TRANSITION, CARBON_MIN_STEP_CONTRAST, carbon_edge
from screen.stages.assess_micrographs import MicrographAssessParams

SETS = ("trained", "clean", "hot_pixels", "bin_fourier", "nl_means_denoise", "jpeg_round_trip")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=Path, default=Path("/tmp/micassess_generators"))
    parser.add_argument("--generators", nargs="+", default=list(SETS))
    args = parser.parse_args(argv)
    fraction = MicrographAssessParams().max_carbon_fraction
    print(
        f"| set | reason | n | step contrast 10/50/90 % | called carbon (contrast >= {CARBON_MIN_STEP_CONTRAST:g}, transition <= {CARBON_MAX_TRANSITION:g}, "
        f"dark side >= {fraction:g}) | largest contrast with such a side | narrowest transition "
        f"with such a side and contrast >= {CARBON_MIN_STEP_CONTRAST:g} |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.generators:
        labels = args.sets / name / "labels.csv"
        if not labels.exists():
            print(f"| {name} | (no {labels}; run bench/micassess_generators.py) | | | | |")
            continue
        start = time.perf_counter()
        table = pd.read_csv(labels)
        edges = [carbon_edge(read_mrc(args.sets / name / p).data) for p in table["path"]]
        table["contrast"] = [e.step_contrast for e in edges]
        table["dark"] = [e.dark_fraction for e in edges]
        table["transition"] = [e.transition_fraction for e in edges]
        table["carbon"] = [e.carbon_fraction() >= fraction for e in edges]
        for reason, rows in table.groupby("reason"):
            wide = rows[rows["dark"] >= fraction]
            largest = f"{wide['contrast'].max():.1f}" if len(wide) else "-"
            steep = wide[wide["contrast"] >= CARBON_MIN_STEP_CONTRAST]
            narrowest = f"{steep['transition'].min():.2f}" if len(steep) else "-"
            p10, p50, p90 = np.percentile(rows["contrast"], [10, 50, 90])
            print(
                f"| {name} | {reason} | {len(rows)} | {p10:.1f} / {p50:.1f} / {p90:.1f} | "
                f"{int(rows['carbon'].sum())} | {largest} | {narrowest} |"
            )
        print(f"  ({name}: {time.perf_counter() - start:.0f} s)", flush=True)
    for example in real_examples(REAL_EXAMPLES_DIR):
        edge = carbon_edge(example.read())
        print(
            f"| real | {example.path.name} | 1 | {edge.step_contrast:.1f} | "
            f"{int(edge.carbon_fraction() >= fraction)} | dark side {edge.dark_fraction:.2f} | "
            f"transition {edge.transition_fraction:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
