"""`screen run` on the real examples, as a new user would run it on exports (issue 10, 12).

    python bench/screen_run_real_examples.py [--out /tmp/real_run] [--n-empiar 12]

Writes a manifest with two sessions, the EMPIAR-10017 JPEG exports (1.77 Å/px, read as they
are) and the binned Magellon MRC (6.32 Å/px; its header's pixel size is wrong), runs `screen run`
on it and prints, per session, the micrograph model whose verdicts were used, micrographs kept,
the diameter (and its method), picks, good particles, the best mask and the verdicts, beside
what the folder's README says (every one of these micrographs is good; β-galactosidase ~180 Å,
the Magellon rings ~120 Å).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from screen.io.real_examples import (
    EMPIAR10017_DIAMETER_A,
    EMPIAR10017_PIXEL_A,
    MAGELLON_PIXEL_A,
    MAGELLON_RING_DIAMETER_A,
    REAL_EXAMPLES_DIR,
)


def write_manifest(folder: Path, out: Path, n_empiar: int) -> Path:
    """Symbolic links to the examples, one folder per session, and the manifest."""
    empiar, magellon = out / "empiar10017", out / "magellon"
    for path in (empiar, magellon):
        path.mkdir(parents=True, exist_ok=True)
    for image in sorted(folder.glob("empiar10017_*.jpg"))[:n_empiar]:
        link = empiar / image.name
        if not link.exists():
            link.symlink_to(image.resolve())
    ring = folder / "magellon_24dec03a_binned8.mrc"
    if not (magellon / ring.name).exists():
        (magellon / ring.name).symlink_to(ring.resolve())
    manifest = out / "manifest.csv"
    manifest.write_text(
        "session,micrographs,pixel_size_A\n"
        f"empiar10017,empiar10017,{EMPIAR10017_PIXEL_A}\n"
        f"magellon,magellon,{MAGELLON_PIXEL_A}\n"
    )
    return manifest


def diameter_and_verdicts(summary: dict) -> tuple[str, str]:
    """A session summary's diameter (± its uncertainty) and its verdicts' titles, as shown."""
    diameter = summary.get("diameter_A") or float("nan")
    uncertainty = summary.get("diameter_uncertainty_A")
    shown = f"{diameter:.0f}" + (f" ± {uncertainty:.0f}" if uncertainty else "")
    titles = "; ".join(v.split(":")[0] for v in summary.get("verdicts") or []) or "-"
    return shown, titles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=REAL_EXAMPLES_DIR)
    parser.add_argument("--out", type=Path, default=Path("/tmp/real_run"))
    parser.add_argument("--n-empiar", type=int, default=12)
    args = parser.parse_args(argv)
    manifest = write_manifest(args.folder, args.out, args.n_empiar)
    start = time.time()
    subprocess.run(
        ["screen", "run", str(manifest), "--out", str(args.out / "results"), "-q"], check=True
    )
    seconds = time.time() - start
    truth = {"empiar10017": EMPIAR10017_DIAMETER_A, "magellon": MAGELLON_RING_DIAMETER_A}
    print(f"\n`screen run` on the real examples: {seconds:.0f} s\n")
    print(
        "| session | model used | kept | diameter Å (truth) | method | picks | good particles "
        "| best mask Å | verdicts |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, diameter_truth in truth.items():
        path = args.out / "results" / "sessions" / name / "summary.json"
        summary = json.loads(path.read_text())
        if summary.get("status") != "ok":
            print(f"| {name} | failed: {summary.get('error')} |")
            continue
        shown, titles = diameter_and_verdicts(summary)
        print(
            f"| {name} | {summary.get('micrograph_model')} | {summary['n_good_micrographs']} of "
            f"{summary['n_micrographs']} | {shown} ({diameter_truth:.0f}) | "
            f"{summary.get('diameter_method')} | {summary.get('picked_particles')} | "
            f"{summary.get('good_particles')} | {summary.get('best_mask_diameter_A')} | {titles} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
