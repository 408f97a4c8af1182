"""`screen evaluate micrographs` on good and bad micrographs of the independent simulator.

    python bench/micassess_independent.py [--out /tmp/micassess_independent] [--seed 1] \
        [--sessions ribosome tetramer_d2 shell small] [--micrographs 16] [--frame-px 1024] \
        [--export jpg|png|none] [--jobs 2] [--montage kinds.png] [--simulate-only]

Simulates one session per shape with `bench/independent_sim.py` (physics, shapes and bad kinds that
`screen` was not tuned on): half of each session good, half bad, the bad ones spread over the eight
reasons (empty, crowded, aggregated, contaminated, carbon, thick_ice, drift, bad_ctf; each session
starts the cycle at another reason), in a shuffled order. It writes `labels_mrc.csv`
(path,label,reason,pixel_size_A,session) and, unless `--export none`, a second copy of the same
micrographs as people export them (`export/`: a Gaussian denoise of 1.5 px, contrast stretched
between the 0.5 and 99.5 percentiles to 8 bits, JPEG quality 90 or PNG) with `labels_export.csv`
(the pixel size from the column: exports have none). It runs `python -m screen evaluate
micrographs` on each (its report in `evaluate_<set>.txt`, one row per micrograph in
`verdicts_<set>.csv`) and prints Markdown tables: per set the accuracy, the share of good
micrographs called bad, the bad recall and the share of bad micrographs whose reason is right, then
per true reason the share called bad / with the right reason, and every good micrograph called
bad. Micrographs already simulated (same kinds in `conditions.csv`) are not simulated again.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_sim  # noqa: E402

SESSIONS = ("ribosome", "tetramer_d2", "shell", "small")
REASONS = independent_sim.BAD_KINDS  # the same names as screen's MICROGRAPH_REASONS
EXPORT_SIGMA_px = 1.5
EXPORT_PERCENTILES = (0.5, 99.5)
JPEG_QUALITY = 90


def session_kinds(n: int, session_index: int, seed: int) -> list[str]:
    """Half good, half bad (the reasons in turn from this session's offset), shuffled."""
    n_bad = n // 2
    bad = [REASONS[(session_index + i) % len(REASONS)] for i in range(n_bad)]
    kinds = ["good"] * (n - n_bad) + bad
    order = np.random.default_rng([seed, session_index, 7]).permutation(n)
    return [kinds[i] for i in order]


def simulate(job: tuple[str, Path, int, int, int, list[str]]) -> tuple[str, float]:
    shape, data, n, frame_px, session_seed, kinds = job
    conditions = data / shape / "conditions.csv"
    if conditions.exists():
        done = pd.read_csv(conditions)
        if "kind" in done and done["kind"].tolist() == kinds:
            return shape, 0.0
    start = time.time()
    independent_sim.simulate_session(shape, data, n, frame_px, session_seed, 0.0, kinds)
    return shape, time.time() - start


def export(mrc_path: Path, out_path: Path) -> None:
    """The micrograph as people export it: denoised, contrast-stretched, 8 bits."""
    image = gaussian_filter(mrcfile.read(mrc_path).astype(np.float64), EXPORT_SIGMA_px)
    lo, hi = np.percentile(image, EXPORT_PERCENTILES)
    grey = np.clip((image - lo) / (hi - lo) * 255 + 0.5, 0, 255).astype(np.uint8)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix == ".jpg":
        Image.fromarray(grey).save(out_path, quality=JPEG_QUALITY)
    else:
        Image.fromarray(grey).save(out_path)


def labels(out: Path, data: Path, sessions: list[str], suffix: str | None) -> pd.DataFrame:
    """Rows path,label,reason,pixel_size_A,session (paths relative to out), exporting if asked."""
    rows = []
    for shape in sessions:
        conditions = pd.read_csv(data / shape / "conditions.csv")
        for row in conditions.itertuples():
            path = data / shape / f"{row.micrograph}.mrc"
            if suffix is not None:
                exported = out / "export" / shape / f"{row.micrograph}{suffix}"
                export(path, exported)
                path = exported
            rows.append(
                {
                    "path": str(path.relative_to(out)),
                    "label": "good" if row.kind == "good" else "bad",
                    "reason": "" if row.kind == "good" else row.kind,
                    "pixel_size_A": row.pixel_size_A,
                    "session": shape,
                }
            )
    return pd.DataFrame(rows)


def evaluate(out: Path, name: str, table: pd.DataFrame) -> tuple[pd.DataFrame, str, float]:
    """Run `screen evaluate micrographs` on one labels CSV; its verdict table, report, seconds."""
    labels_csv = out / f"labels_{name}.csv"
    table.to_csv(labels_csv, index=False)
    verdicts = out / f"verdicts_{name}.csv"
    start = time.time()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "screen",
            "evaluate",
            "micrographs",
            str(labels_csv),
            "--table",
            str(verdicts),
            "--figure",
            str(out / f"evaluation_{name}.png"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.time() - start
    report = result.stdout + result.stderr
    (out / f"evaluate_{name}.txt").write_text(report)
    if result.returncode != 0:
        raise SystemExit(f"screen evaluate micrographs failed on {labels_csv}:\n{report}")
    return pd.read_csv(verdicts, keep_default_na=False), report, seconds


def metrics(verdicts: pd.DataFrame) -> dict:
    good = verdicts[verdicts["label"] == "good"]
    bad = verdicts[verdicts["label"] == "bad"]
    per_reason = {}
    for reason in REASONS:
        rows = bad[bad["true_reason"] == reason]
        per_reason[reason] = (
            len(rows),
            float((rows["verdict"] == "bad").mean()) if len(rows) else float("nan"),
            float((rows["reason"] == reason).mean()) if len(rows) else float("nan"),
        )
    return {
        "n": len(verdicts),
        "n_good": len(good),
        "accuracy": float((verdicts["verdict"] == verdicts["label"]).mean()),
        "good_called_bad": float((good["verdict"] == "bad").mean()),
        "bad_recall": float((bad["verdict"] == "bad").mean()),
        "reason_right": float((bad["reason"] == bad["true_reason"]).mean()),
        "per_reason": per_reason,
    }


def montage(data: Path, sessions: list[str], path: Path, tile_px: int = 384) -> None:
    """One row per kind (good first), one column per session: the first micrograph of that kind,
    low-passed (2 px) and shrunk, contrast stretched, captioned with its name and kind detail."""
    from PIL import ImageDraw  # noqa: PLC0415
    from scipy.ndimage import zoom  # noqa: PLC0415

    kinds = independent_sim.KINDS
    sheet = Image.new("L", (len(sessions) * (tile_px + 4), len(kinds) * (tile_px + 4)), 255)
    for column, shape in enumerate(sessions):
        conditions = pd.read_csv(data / shape / "conditions.csv", keep_default_na=False)
        for row, kind in enumerate(kinds):
            match = conditions[conditions["kind"] == kind]
            if match.empty:
                continue
            name, detail = match.iloc[0]["micrograph"], match.iloc[0]["kind_detail"]
            image = gaussian_filter(mrcfile.read(data / shape / f"{name}.mrc").astype(float), 2.0)
            image = zoom(image, tile_px / len(image), order=1)
            lo, hi = np.percentile(image, EXPORT_PERCENTILES)
            grey = np.clip((image - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
            tile = Image.fromarray(grey)
            draw = ImageDraw.Draw(tile)
            draw.rectangle([0, 0, tile_px, 12], fill=0)
            draw.text((2, 1), f"{name} {kind} {detail}"[:64], fill=255)
            sheet.paste(tile, (column * (tile_px + 4), row * (tile_px + 4)))
    sheet.save(path)


def markdown(table: pd.DataFrame) -> str:
    """A small table as Markdown (index first)."""
    header = [str(table.index.name or "")] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for index, row in table.iterrows():
        lines.append("| " + " | ".join([str(index)] + [str(v) for v in row]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/micassess_independent"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--sessions", nargs="+", choices=sorted(independent_sim.SHAPES), default=list(SESSIONS)
    )
    parser.add_argument("--micrographs", type=int, default=16, help="per session")
    parser.add_argument("--frame-px", type=int, default=1024)
    parser.add_argument("--export", choices=("jpg", "png", "none"), default="jpg")
    parser.add_argument("--jobs", type=int, default=2, help="sessions simulated at once")
    parser.add_argument(
        "--montage", type=Path, default=None, help="PNG of one micrograph per kind and session"
    )
    parser.add_argument(
        "--simulate-only", action="store_true", help="simulate (and draw the montage), no scoring"
    )
    args = parser.parse_args(argv)
    out = args.out.resolve()
    data = out / "data"
    start = time.time()

    shapes = list(independent_sim.SHAPES)
    jobs = [
        (
            shape,
            data,
            args.micrographs,
            args.frame_px,
            args.seed * 1000 + shapes.index(shape),  # as independent_sim.py's command line
            session_kinds(args.micrographs, i, args.seed),
        )
        for i, shape in enumerate(args.sessions)
    ]
    with ProcessPoolExecutor(max(1, min(args.jobs, len(jobs)))) as pool:
        simulated = dict(pool.map(simulate, jobs))
    sim_seconds = time.time() - start
    if args.montage:
        montage(data, args.sessions, args.montage)
    if args.simulate_only:
        return 0

    sets = {"mrc": labels(out, data, args.sessions, None)}
    if args.export != "none":
        sets[f"export ({args.export})"] = labels(out, data, args.sessions, f".{args.export}")
    export_seconds = time.time() - start - sim_seconds

    results, seconds, reports = {}, {}, {}
    for name, table in sets.items():
        key = name.split()[0]
        verdicts, reports[name], seconds[name] = evaluate(out, key, table)
        results[name] = (metrics(verdicts), verdicts)

    details = pd.concat(
        [
            pd.read_csv(data / shape / "conditions.csv", keep_default_na=False).assign(
                session=shape
            )
            for shape in args.sessions
        ]
    ).set_index(["session", "micrograph"])["kind_detail"]

    print(
        f"\n{len(args.sessions)} sessions x {args.micrographs} micrographs ({args.frame_px} px, "
        f"seed {args.seed}); simulated in {sim_seconds:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in simulated.items())}), exported in "
        f"{export_seconds:.0f} s, evaluated in "
        f"{', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())}\n"
    )
    print("| set | n (good) | accuracy | good called bad | bad recall | reason right |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (m, _) in results.items():
        print(
            f"| {name} | {m['n']} ({m['n_good']}) | {m['accuracy']:.3f} | "
            f"{m['good_called_bad']:.3f} | {m['bad_recall']:.3f} | {m['reason_right']:.3f} |"
        )
    names = list(results)
    print("\nPer true reason, called bad / reason right:\n")
    print("| reason | n | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in names) + " |")
    for reason in REASONS:
        n = results[names[0]][0]["per_reason"][reason][0]
        cells = []
        for name in names:
            _, recall, right = results[name][0]["per_reason"][reason]
            cells.append(f"{recall:.2f} / {right:.2f}")
        print(f"| {reason} | {n} | " + " | ".join(cells) + " |")

    for name, (_, verdicts) in results.items():
        called = verdicts["reason"].where(verdicts["verdict"] == "bad", "good")
        confusion = pd.crosstab(
            verdicts["true_reason"].replace("", "good"),
            called,
            rownames=["true"],
            colnames=["called"],
        )
        print(f"\n{name}: true kind (rows) against the verdict's reason (columns)\n")
        print(markdown(confusion))
        wrong = verdicts[(verdicts["label"] == "good") & (verdicts["verdict"] == "bad")]
        if len(wrong):
            print(f"\n{name}: good micrographs called bad")
            for row in wrong.itertuples():
                print(
                    f"  {row.session} {Path(row.path).stem}: {row.reason}, P(good) {row.p_good:.3f}, "
                    f"CTF fit {row.ctf_fit_resolution_A:.1f} Å, astigmatism {row.astigmatism_A:.0f} Å"
                )
        missed = verdicts[(verdicts["label"] == "bad") & (verdicts["verdict"] == "good")]
        if len(missed):
            print(f"\n{name}: bad micrographs called good")
            for row in missed.itertuples():
                stem = Path(row.path).stem
                print(
                    f"  {row.session} {stem}: {row.true_reason} "
                    f"({details.get((row.session, stem), '')}), P(good) {row.p_good:.3f}"
                )
        for line in reports[name].splitlines():
            if "domain check" in line or "sound CTF" in line:
                print(f"{name}: {line.strip()}")
    print(f"\ntotal {time.time() - start:.0f} s; data, labels and reports under {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
