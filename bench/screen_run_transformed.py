"""`screen run` on the same EMPIAR-10017 exports under several export transformations, one
condition each: the same grid must get the same diameter, particles and verdict whatever the
export did to its pixels.

    python bench/screen_run_transformed.py [--out /tmp/run_transformed] [--micrographs 6]
        [NAME ...]

Writes the first ``--micrographs`` exports of ../shared/real_examples under each transformation
of ``real_examples_transformed.py`` (default: as given, z-scored, 8-bit stretch, Fourier-binned
2x, JPEG quality 30, column stripes) as MRC files, one folder and manifest row per
transformation (pixel size as the transformation leaves it), runs ``screen run`` on the manifest
and prints per condition: micrographs kept, diameter (truth ~180 Å), picks and good particles
per micrograph, best mask, rank and verdicts.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from real_examples_transformed import TRANSFORMS  # noqa: E402
from screen_run_real_examples import diameter_and_verdicts  # noqa: E402

from screen.io.real_examples import EMPIAR10017_DIAMETER_A, real_examples  # noqa: E402

DEFAULT = (
    "as given",
    "z-scored float",
    "8-bit stretch (0.5-99.5 %)",
    "Fourier-binned 2x",
    "JPEG quality 30",
    "column stripes (gain)",
)


def condition_name(transformation: str) -> str:
    """A session name for a transformation (letters, digits and underscores)."""
    return re.sub(r"[^a-z0-9]+", "_", transformation.lower()).strip("_")[:40]


def write_conditions(out: Path, names: list[str], n: int) -> Path:
    """One folder of transformed MRCs per transformation, and the manifest."""
    examples = [e for e in real_examples() if "empiar" in e.path.name][:n]
    rows = ["session,micrographs,pixel_size_A"]
    for name in names:
        folder = out / condition_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        for example in examples:
            image, pixel_size_A = TRANSFORMS[name](
                example.read().astype(np.float64), example.pixel_size_A
            )
            path = folder / (example.path.stem[:48] + ".mrc")
            if not path.exists():
                with mrcfile.new(path) as mrc:
                    mrc.set_data(np.asarray(image, dtype=np.float32))
                    mrc.voxel_size = pixel_size_A
        rows.append(f"{folder.name},{folder.name},{pixel_size_A:.4f}")
    manifest = out / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/run_transformed"))
    parser.add_argument("--micrographs", type=int, default=6)
    parser.add_argument("names", nargs="*", help="Transformations (default: six of them).")
    args = parser.parse_args(argv)
    names = args.names or list(DEFAULT)
    manifest = write_conditions(args.out, names, args.micrographs)
    start = time.time()
    subprocess.run(
        ["screen", "run", str(manifest), "--out", str(args.out / "results"), "-q"], check=True
    )
    print(f"\n`screen run` on {len(names)} transformations: {time.time() - start:.0f} s\n")
    print(
        "| transformation | kept | diameter Å (truth) | method | picks / micrograph | "
        "good particles / micrograph | best mask Å | verdicts |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        path = args.out / "results" / "sessions" / condition_name(name) / "summary.json"
        summary = json.loads(path.read_text())
        if summary.get("status") != "ok":
            print(f"| {name} | failed: {summary.get('error')} |")
            continue
        n = max(summary["n_good_micrographs"], 1)
        shown, titles = diameter_and_verdicts(summary)
        print(
            f"| {name} | {summary['n_good_micrographs']} of {summary['n_micrographs']} | "
            f"{shown} ({EMPIAR10017_DIAMETER_A:.0f}) | {summary.get('diameter_method')} | "
            f"{(summary.get('picked_particles') or 0) / n:.0f} | "
            f"{(summary.get('good_particles') or 0) / n:.0f} | "
            f"{summary.get('best_mask_diameter_A')} | {titles} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
