"""Command line: thin typer commands; heavy imports happen inside the commands."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from screen import __version__
from screen.errors import ScreenError

app = typer.Typer(
    name="screen",
    help="Automatic cryo-EM sample screening: grid conditions in, a comparative report out.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


evaluate_app = typer.Typer(
    help="Measure a classifier against labels.", no_args_is_help=True, add_completion=False
)
app.add_typer(evaluate_app, name="evaluate")
train_app = typer.Typer(
    help="Train or fine-tune a classifier on labels.", no_args_is_help=True, add_completion=False
)
app.add_typer(train_app, name="train")
store_app = typer.Typer(
    help="The results database: every run's sessions, for the dashboard.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(store_app, name="store")

Database = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Results database: an SQLite file or a postgresql://user@host/dbname URL; default "
        "$SCREEN_DB, else ~/.local/share/screen/results.sqlite.",
    ),
]
"""The ``--db`` option of the commands that use the results database."""

SmtpConfig = Annotated[
    Path | None,
    typer.Option(
        "--smtp-config",
        help="SMTP settings (TOML, [smtp]); default $SCREEN_SMTP_CONFIG, else "
        "~/.config/screen/smtp.toml; $SCREEN_SMTP_* override it.",
    ),
]
"""The ``--smtp-config`` option of ``screen run`` and ``screen email``."""

MicassessWeights = Annotated[
    str | None,
    typer.Option(
        help="Micrograph-assessment weights: shipped name, .keras path, or the paper's "
        "MicAssess .h5 (ResNet34, 494 px)."
    ),
]
"""The ``--micassess-weights`` option of ``screen run`` and ``screen evaluate micrographs``."""

MaxAstigmatism = Annotated[
    float | None,
    typer.Option(
        "--max-astigmatism",
        help="A micrograph whose fitted astigmatism (defocus U - V) exceeds this many Å is bad "
        "(reason bad_ctf) whatever P(good) says, where its CTF fit resolved rings fine enough "
        "to have measured it and both halves of the micrograph repeat it (a fit that found no "
        "rings, or one its halves contradict, is not judged); 0 turns the check off "
        "(default 3000).",
    ),
]
"""The ``--max-astigmatism`` option of ``screen run`` and ``screen evaluate micrographs``."""

MaxOpaque = Annotated[
    float | None,
    typer.Option(
        "--max-opaque",
        help="A micrograph with at least this share (0-1) of its field under nearly opaque "
        "objects (contamination balls, grid bars) is bad (reason contaminated) whatever P(good) "
        "says; 0 turns the check off (default 0.03).",
    ),
]
"""The ``--max-opaque`` option of ``screen run`` and ``screen evaluate micrographs``."""

MaxCarbon = Annotated[
    float | None,
    typer.Option(
        "--max-carbon",
        help="A micrograph with at least this share (0-1) of its field behind a carbon film "
        "edge (a sharp step across the field, straight or curved) is bad (reason carbon) whatever P(good) "
        "says; 0 turns the check off (default 0.3).",
    ),
]
"""The ``--max-carbon`` option of ``screen run`` and ``screen evaluate micrographs``."""

MaxCrystalline = Annotated[
    float | None,
    typer.Option(
        "--max-crystalline",
        help="A micrograph with crystalline-ice reflections (sharp spots at 3.4-3.9 Å in its "
        "power spectrum; measured only at pixel sizes under about 1.9 Å) in at least this share "
        "(0-1) of its field is bad (reason contaminated) whatever P(good) says; 0 turns the "
        "check off (default 0.25).",
    ),
]
"""The ``--max-crystalline`` option of ``screen run`` and ``screen evaluate micrographs``."""

ThickIceTransmission = Annotated[
    float | None,
    typer.Option(
        "--thick-ice-transmission",
        help="Within a session of one dose (grey levels spreading by at most 20 %), a "
        "micrograph whose median grey level is under this "
        "fraction (0-1) of the session's, with its shot noise falling with it (raw counts) or "
        "in a session whose grey levels agree and were not stretched into one range by an "
        "export (binned or denoised sums), received far fewer electrons through thicker ice "
        "and is bad (reason thick_ice), and the network's "
        "thick_ice on a micrograph not darker than its session is judged again without it; 0 "
        "turns both checks off (default 0.75: about 900 Å more ice, energy filtered, 300 kV).",
    ),
]
"""The ``--thick-ice-transmission`` option of ``screen run`` and ``screen evaluate micrographs``."""

SessionReasonShare = Annotated[
    float | None,
    typer.Option(
        "--session-reason-share",
        help="When micrograph assessment gives one spectral reason (bad CTF, thick ice, drift) "
        "to at least this share (0-1) of a session, the reason is taken as the session's (its "
        "detector, processing or whole grid): those micrographs are judged again without it and "
        "the condition's report says so; 0 turns the check off (default 0.4).",
    ),
]
"""The ``--session-reason-share`` option of ``screen run`` and ``screen evaluate micrographs``."""

DriftOutlierSigma = Annotated[
    float | None,
    typer.Option(
        "--drift-outlier-sigma",
        help="A micrograph kept by assessment whose power spectrum lost one direction between 80 "
        "and 30 Å (drift blur) this many robust standard deviations more than its session's "
        "median, and significantly against the measure's noise, is bad (drift); sessions of at "
        "least 8 micrographs; 0 turns the check off (default 6).",
    ),
]
"""The ``--drift-outlier-sigma`` option of ``screen run`` and ``screen evaluate micrographs``."""

EmptyBlobRatio = Annotated[
    float | None,
    typer.Option(
        "--empty-blob-ratio",
        help="A micrograph kept by assessment with under this fraction of its session's median "
        "of strong dark blobs per µm² (80-Å blobs 4 robust sigmas above its own score map), "
        "its score map showing no excess of dark blobs, is bad (empty); sessions of at least "
        "8 micrographs whose median one has 8 such blobs; 0 turns the check off (default 0.1).",
    ),
]
"""The ``--empty-blob-ratio`` option of ``screen run`` and ``screen evaluate micrographs``."""

NoGradientSecondLook = Annotated[
    bool,
    typer.Option(
        "--no-gradient-second-look",
        help="Believe the network's 'contaminated' as it is. By default a micrograph it calls "
        "contaminated is shown to it again with its smooth background (the ice's gradient) "
        "subtracted, and kept when it then reaches the threshold and no opaque or "
        "crystalline-ice measure finds contamination.",
    ),
]
"""The ``--no-gradient-second-look`` option of ``screen run`` and ``screen evaluate micrographs``."""

Averages = Annotated[
    Path, typer.Argument(help="A stack of class averages (.mrcs) or a folder of images.")
]
AverageLabels = Annotated[
    Path,
    typer.Option(
        help="CSV of [file,]index,label[,pixel_size_A][,mask_diameter_A] "
        "(label: good, clip, edge or noise; index 0-based)."
    ),
]
AveragesPixelSize = Annotated[
    float | None, typer.Option(min=0.01, help="Å per pixel (default: the file header's).")
]
AveragesMask = Annotated[
    float | None,
    typer.Option(min=1.0, help="Mask diameter in Å of rows without one (default: whole box)."),
]
"""The labelled class averages of ``screen evaluate classes`` and ``screen train classes``."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"screen {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Automatic cryo-EM sample screening."""
    _quiet_tensorflow()


def _retracing_note(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


def _quiet_tensorflow() -> None:
    """Keep TensorFlow's own log lines out of the user's terminal (before it is imported).

    Its C++ log lines (CPU instructions, and on machines without a GPU an alarming "failed call
    to cuInit") and its note that a model met a new batch shape say nothing about the user's
    data; real failures are raised as exceptions. A ``TF_CPP_MIN_LOG_LEVEL`` the user sets wins
    (0 shows everything). TensorFlow 2.21 prints six lines while it is imported whatever the
    level (measured: 9 lines without it, 6 with; tensorflow/tensorflow#100442).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf_logger = logging.getLogger("tensorflow")
    if _retracing_note not in tf_logger.filters:
        tf_logger.addFilter(_retracing_note)


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(code=2)


def _parse_frame(text: str) -> tuple[int, int]:
    """``"512x512"`` or ``"5760x4092"`` (width x height) -> (ny, nx)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise typer.BadParameter(
            f"{text!r}: expected WIDTHxHEIGHT in pixels, e.g. 512x512"
        ) from exc
    return height, width


@app.command()
def run(
    manifest: Annotated[Path, typer.Argument(help="Manifest CSV: one row per grid condition.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder.")] = Path(
        "screen-results"
    ),
    threshold: Annotated[
        float | None,
        typer.Option(help="Micrograph is bad when P(good) < threshold (default 0.1, the paper's)."),
    ] = None,
    micassess_weights: MicassessWeights = None,
    max_astigmatism: MaxAstigmatism = None,
    max_opaque: MaxOpaque = None,
    max_carbon: MaxCarbon = None,
    max_crystalline: MaxCrystalline = None,
    thick_ice_transmission: ThickIceTransmission = None,
    session_reason_share: SessionReasonShare = None,
    drift_outlier_sigma: DriftOutlierSigma = None,
    empty_blob_ratio: EmptyBlobRatio = None,
    no_gradient_second_look: NoGradientSecondLook = False,
    class_weights: Annotated[
        str | None, typer.Option(help="Class-assessment weights: shipped name or .keras path.")
    ] = None,
    no_domain_fallback: Annotated[
        bool,
        typer.Option(
            "--no-domain-fallback",
            help="Keep the micrograph model's verdicts even when it rejects almost a whole "
            "session or much more of it than micassess_small_v5 does (by default such a session "
            "gets micassess_small_v5's verdicts; never with --micassess-weights).",
        ),
    ] = False,
    keep_all_micrographs: Annotated[
        bool,
        typer.Option(
            "--keep-all-micrographs",
            help="Pick and classify every readable micrograph whatever its verdict "
            "(verdicts are still reported).",
        ),
    ] = False,
    per_condition_diameter: Annotated[
        bool,
        typer.Option(
            "--per-condition-diameter",
            help="Pick each condition at its own estimated particle diameter (by default, when "
            "two or more conditions' factor-free estimates agree within 1.5x, as one sample's "
            "do, all are picked at their median, the run's common diameter, so that they are "
            "compared at one size; a condition the manifest gives diameter_A for, or one whose "
            "own estimate is over 1.5x off, keeps its own).",
        ),
    ] = False,
    noise_corrected_2d: Annotated[
        bool,
        typer.Option(
            "--noise-corrected-2d",
            help="2D classification scores particles against each average's signal, not "
            "signal + noise, so that a well-populated class does not attract every particle "
            "(better classes on simulated data; off until the verdict rules are re-checked "
            "on its classes, bench/README.md).",
        ),
    ] = False,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Skip the HTML/PDF report.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print each stage's timing per session.")
    ] = False,
    db: Database = None,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not record the run in the results database.")
    ] = False,
    email: Annotated[
        str | None,
        typer.Option(help="Mail the PDF report to these addresses (a@b,c@d) when the run ends."),
    ] = None,
    smtp_config: SmtpConfig = None,
) -> None:
    """Screen every grid condition of MANIFEST and write the comparative report."""
    import dataclasses

    from screen.config import RunConfig
    from screen.manifest import read_manifest
    from screen.pipeline import run_screen

    try:
        mail = _mail_settings(email, smtp_config, no_report)  # checked before any work
        parsed = read_manifest(manifest)
        for warning in parsed.warnings:
            _warn(f"warning: {manifest}: {warning}")
        config = RunConfig()
        assess = config.assess
        if threshold is not None:
            assess = dataclasses.replace(assess, threshold=threshold)
        if micassess_weights is not None:
            assess = dataclasses.replace(assess, model=micassess_weights)
        if max_astigmatism is not None:
            assess = dataclasses.replace(assess, max_astigmatism_A=max_astigmatism)
        if max_opaque is not None:
            assess = dataclasses.replace(assess, max_opaque_fraction=max_opaque)
        if max_carbon is not None:
            assess = dataclasses.replace(assess, max_carbon_fraction=max_carbon)
        if max_crystalline is not None:
            assess = dataclasses.replace(assess, max_crystalline_fraction=max_crystalline)
        if thick_ice_transmission is not None:
            assess = dataclasses.replace(assess, thick_ice_transmission=thick_ice_transmission)
        if session_reason_share is not None:
            assess = dataclasses.replace(assess, session_reason_share=session_reason_share)
        if drift_outlier_sigma is not None:
            assess = dataclasses.replace(assess, drift_outlier_sigma=drift_outlier_sigma)
        if empty_blob_ratio is not None:
            assess = dataclasses.replace(assess, empty_blob_ratio=empty_blob_ratio)
        if no_gradient_second_look:
            assess = dataclasses.replace(assess, gradient_second_look=False)
        class_assess = config.class_assess
        if class_weights is not None:
            class_assess = dataclasses.replace(class_assess, model=class_weights)
        config = dataclasses.replace(
            config,
            assess=assess,
            class_assess=class_assess,
            keep_all_micrographs=keep_all_micrographs,
            common_diameter=not per_condition_diameter,
            classify=dataclasses.replace(config.classify, noise_corrected=noise_corrected_2d),
            # Weights the user chose are the user's verdicts: no fallback to another model.
            domain_fallback=not no_domain_fallback and micassess_weights is None,
        )
        summaries = _with_stage_progress(
            parsed,
            quiet,
            lambda progress: run_screen(
                parsed, out, config, progress=progress, argv=sys.argv, render=not no_report
            ),
        )
    except ScreenError as error:
        raise _fail(error) from None
    for summary in summaries:
        line = f"{summary['session']}: {summary.get('status')}"
        if summary.get("status") == "ok":
            line += (
                f", {summary['n_good_micrographs']}/{summary['n_micrographs']} good micrographs, "
                f"{summary['good_particles']} good particles, "
            )
            best = summary["best_mask_diameter_A"]
            line += "no best mask diameter" if best is None else f"best mask {best} Å"
        else:
            line += f" ({summary.get('error')})"
        typer.echo(line, err=True)
        for key in ("micrograph_domain_warning", "class_domain_warning"):
            if summary.get(key):
                _warn(f"  WARNING {summary['session']}: {summary[key]}")
        for warning in summary.get("warnings") or []:
            _warn(f"  WARNING {summary['session']}: {warning}")
        if verbose and summary.get("stage_seconds"):
            timings = ", ".join(f"{k} {v:.1f} s" for k, v in summary["stage_seconds"].items())
            typer.echo(f"    {timings}", err=True)
    if not no_report:
        typer.echo(f"report: {out / 'report.html'} and {out / 'report.pdf'}")
    if not no_store:
        _record(out, db)
    mailed = mail is None or _mail(out, *mail)
    if summaries and all(summary.get("status") != "ok" for summary in summaries):
        typer.echo(
            f"error: every session failed ({len(summaries)}); see the reasons above", err=True
        )
        raise typer.Exit(code=1)
    if not mailed:
        raise typer.Exit(code=1)


def _mail_settings(email: str | None, smtp_config: Path | None, no_report: bool):
    """(recipients, SMTP settings) for ``--email``, or None; a problem is a ScreenError."""
    if email is None:
        return None
    from screen.notify.mail import recipients, smtp_settings

    if no_report:
        raise ScreenError("--email sends the PDF report: it cannot go with --no-report")
    return recipients(email), smtp_settings(smtp_config)


def _mail(out: Path, to: list[str], settings) -> bool:
    """Mail the report of ``out``; on failure say why and how to retry, and return False."""
    from screen.notify.mail import mail_report

    try:
        mail_report(out, to, settings)
    except ScreenError as error:
        typer.echo(f"error: the report was not mailed: {error}", err=True)
        typer.echo(
            f"  it stays in {out}; send it later with: screen email {out} --to {','.join(to)}",
            err=True,
        )
        return False
    typer.echo(f"mailed: {out / 'report.pdf'} to {', '.join(to)}", err=True)
    return True


@app.command("email")
def email_command(
    results: Annotated[Path, typer.Argument(help="Results folder written by `screen run`.")],
    to: Annotated[str, typer.Option("--to", help="Recipients: a@b,c@d.")],
    smtp_config: SmtpConfig = None,
) -> None:
    """Mail a run's PDF report with its decisions, verdicts and Table 3 numbers (or retry)."""
    from screen.notify.mail import recipients, smtp_settings

    try:
        addresses, settings = recipients(to), smtp_settings(smtp_config)
    except ScreenError as error:
        raise _fail(error) from None
    if not _mail(results, addresses, settings):
        raise typer.Exit(code=2)


def _warn(line: str) -> None:
    typer.secho(line, err=True, fg=typer.colors.YELLOW, bold=True)


def _record(out: Path, db: str | None) -> None:
    """Record a finished run in the results database; a failure warns (the results stay)."""
    from screen.store.database import database_location, describe, open_store, record_run

    location = database_location(db)
    try:
        with open_store(location) as conn:
            added = record_run(conn, out)
    except ScreenError as error:
        _warn(f"warning: not recorded in the results database: {error}")
        _warn(f"  record it later with: screen store import {out} --db {describe(location)}")
        return
    typer.echo(f"database: {added} session(s) recorded in {describe(location)}", err=True)


@store_app.command("import")
def store_import(
    results: Annotated[list[Path], typer.Argument(help="Results folders written by `screen run`.")],
    db: Database = None,
) -> None:
    """Record earlier runs' results folders in the results database (again: no change)."""
    from screen.store.database import database_location, describe, open_store, record_run

    location = database_location(db)
    try:
        with open_store(location) as conn:
            for folder in results:
                added = record_run(conn, folder)
                note = "" if added else " (already recorded)"
                typer.echo(f"{folder}: {added} session(s) recorded{note}")
    except ScreenError as error:
        raise _fail(error) from None
    typer.echo(f"database: {describe(location)}", err=True)


@store_app.command("info")
def store_info(db: Database = None) -> None:
    """Print where the results database is, its schema version and what it holds."""
    from screen.store.database import (
        database_location,
        describe,
        open_store,
        schema_version,
        store_counts,
    )

    location = database_location(db)
    try:
        with open_store(location) as conn:
            runs, sessions = store_counts(conn)
            version = schema_version(conn)
    except ScreenError as error:
        raise _fail(error) from None
    typer.echo(
        f"{describe(location)}: schema version {version}, {runs} run(s), {sessions} session(s)"
    )


def _with_stage_progress(manifest, quiet: bool, work):
    """Run ``work(progress)`` with a rich progress display per session and stage (TTY only)."""
    if quiet or not sys.stderr.isatty():
        return work(None)
    with _progress_display() as progress:
        tasks: dict[tuple[str, str], int] = {}

        def update(session: str, stage: str, done: int, total: int) -> None:
            key = (session, stage)
            if key not in tasks:
                tasks[key] = progress.add_task(f"{session}: {stage}", total=total)
            progress.update(tasks[key], completed=done, total=total)

        return work(update)


def _progress_display():
    """A rich progress display: description, bar, done/total, elapsed time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="Results folder written by `screen run`.")],
) -> None:
    """Re-render the HTML and PDF report from stored results (nothing is recomputed)."""
    from screen.errors import os_error_message
    from screen.report.render import render_report

    try:
        html, pdf = render_report(results)
    except ScreenError as error:
        raise _fail(error) from None
    except OSError as error:
        raise _fail(ScreenError(f"cannot write the report: {os_error_message(error)}")) from None
    typer.echo(f"report: {html} and {pdf}")


@app.command()
def dashboard(
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML page to write.")] = Path(
        "screen-dashboard.html"
    ),
    db: Database = None,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Also serve it (and each run's report) on 127.0.0.1."),
    ] = False,
    port: Annotated[int, typer.Option(help="Port for --serve (0: any free port).")] = 8765,
) -> None:
    """Compare every recorded screening session across runs: a standalone HTML page."""
    from screen.report.dashboard import make_server, write_dashboard
    from screen.store.database import StoreRecords, database_location, describe

    location = database_location(db)
    try:
        records = StoreRecords(location).records()
        if not records:
            raise ScreenError(
                f"{describe(location)}: no session recorded yet; run `screen run` or "
                "`screen store import DIR`"
            )
        typer.echo(f"dashboard: {write_dashboard(records, out)} ({len(records)} sessions)")
        if not serve:
            return
        server = make_server(StoreRecords(location), port)
    except ScreenError as error:
        raise _fail(error) from None
    except OSError as error:
        raise _fail(ScreenError(f"cannot write or serve the dashboard: {error}")) from None
    host, bound = server.server_address[:2]
    typer.echo(
        f"serving on http://{host}:{bound}/ (runs recorded later show on reload; Ctrl-C stops)"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("screen-sim"),
    preset: Annotated[
        str, typer.Option(help="prex1-small (tiny frames), prex1 (K3 frames), gallery, realism.")
    ] = "prex1-small",
    scenario: Annotated[
        Path | None, typer.Option(help="TOML scenario file (overrides --preset).")
    ] = None,
    micrographs: Annotated[
        int | None, typer.Option(help="Micrographs per session (overrides the preset).")
    ] = None,
    frame: Annotated[
        str | None, typer.Option(help="Frame size WIDTHxHEIGHT in pixels, e.g. 5760x4092.")
    ] = None,
    pixel_size: Annotated[float | None, typer.Option("--pixel-size", help="Å per pixel.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (same seed, same data).")] = None,
    movies: Annotated[
        bool, typer.Option("--movies/--no-movies", help="Also write raw movies (TIFF counts).")
    ] = False,
    frames: Annotated[int | None, typer.Option(help="Frames per movie.")] = None,
    jobs: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a simulated screening already in --out.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Make synthetic screening sessions with full ground truth, and a manifest for them."""
    import dataclasses
    import functools

    from screen.simulate.presets import PRESETS
    from screen.simulate.scenario import (
        load_scenario,
        scenario_from_dict,
        validate_screen_spec,
        with_micrographs_per_session,
    )
    from screen.simulate.session import simulate_screen

    try:
        if scenario is not None:
            spec = load_scenario(scenario)
        elif preset in PRESETS:
            spec = scenario_from_dict({"preset": preset}, source=f"preset {preset}")
        else:
            raise typer.BadParameter(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        overrides = {
            "frame_px": _parse_frame(frame) if frame else None,
            "pixel_size_A": pixel_size,
            "seed": seed,
            "n_frames": frames,
        }
        spec = dataclasses.replace(spec, **{k: v for k, v in overrides.items() if v is not None})
        if movies:
            spec = dataclasses.replace(spec, movies=True)
        if micrographs is not None:
            spec = with_micrographs_per_session(spec, micrographs)
        problems = validate_screen_spec(spec)
        if problems:
            raise ScreenError("; ".join(problems))
        run = functools.partial(simulate_screen, overwrite=overwrite, jobs=jobs)
        manifest = _run_with_progress(spec, out, quiet, run)
    except ScreenError as error:
        raise _fail(error) from None
    typer.echo(
        f"wrote {manifest} ({len(spec.sessions)} sessions); ground truth in {out}/sessions/*/ground_truth"
    )


def _run_with_progress(spec, out: Path, quiet: bool, simulate_screen) -> Path:
    if quiet or not sys.stderr.isatty():
        return simulate_screen(spec, out)
    with _progress_display() as progress:
        tasks = {s.name: progress.add_task(s.name, total=s.n_micrographs) for s in spec.sessions}

        def update(session: str, done: int, total: int) -> None:
            progress.update(tasks[session], completed=done)

        return simulate_screen(spec, out, progress=update)


@app.command()
def gallery(
    simulated: Annotated[Path, typer.Argument(help="Folder written by `screen simulate`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = Path("gallery.png"),
    real: Annotated[
        Path | None,
        typer.Option(help="Folder of real micrographs to show beside the simulated ones."),
    ] = None,
) -> None:
    """Figure of one good and one bad micrograph of each type (with power spectra)."""
    from screen.simulate.gallery import write_gallery

    try:
        path = write_gallery(simulated, out, real_dir=real)
    except ScreenError as error:
        raise _fail(error) from None
    typer.echo(f"wrote {path}")


@evaluate_app.command("micrographs")
def evaluate_micrographs_command(
    labels: Annotated[
        Path,
        typer.Argument(
            help="A `screen simulate` folder (ground truth) or a CSV of "
            "path,label[,reason][,pixel_size_A] (label: good or bad)."
        ),
    ],
    figure: Annotated[
        Path,
        typer.Option(help="Histogram of CTF fit resolution coloured by true verdict (PNG/PDF)."),
    ] = Path("micrograph_evaluation.png"),
    threshold: Annotated[
        float, typer.Option(help="Micrograph is bad when P(good) < threshold.")
    ] = 0.1,
    micassess_weights: MicassessWeights = None,
    max_astigmatism: MaxAstigmatism = None,
    max_opaque: MaxOpaque = None,
    max_carbon: MaxCarbon = None,
    max_crystalline: MaxCrystalline = None,
    thick_ice_transmission: ThickIceTransmission = None,
    session_reason_share: SessionReasonShare = None,
    drift_outlier_sigma: DriftOutlierSigma = None,
    empty_blob_ratio: EmptyBlobRatio = None,
    no_gradient_second_look: NoGradientSecondLook = False,
    no_domain_fallback: Annotated[
        bool,
        typer.Option(
            "--no-domain-fallback",
            help="Score the first model's verdicts even where it rejects almost a whole session "
            "or much more of one than micassess_small_v5 does (by default such a session gets "
            "micassess_small_v5's verdicts, as "
            "`screen run` does; sessions: a simulated screening's, a CSV's session column, "
            "else one per pixel size and frame shape).",
        ),
    ] = False,
    table: Annotated[
        Path | None,
        typer.Option(
            help="Also write one CSV row per micrograph: label, verdict and reason scored, "
            "P(good), CTF fit resolution, astigmatism and its half-field spread."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Accuracy of micrograph assessment on a labelled set, beside a CTF-resolution cutoff.

    The verdicts scored are `screen run`'s: the session domain check and its fallback model
    included (see --no-domain-fallback).
    """
    import dataclasses

    from screen import evaluation
    from screen.stages import assess_micrographs
    from screen.stages.ctf import CtfSearch

    try:
        items = evaluation.load_labelled_set(labels)
        params = dataclasses.replace(
            assess_micrographs.MicrographAssessParams(), threshold=threshold
        )
        if micassess_weights is not None:
            params = dataclasses.replace(params, model=micassess_weights)
        if max_astigmatism is not None:
            params = dataclasses.replace(params, max_astigmatism_A=max_astigmatism)
        if max_opaque is not None:
            params = dataclasses.replace(params, max_opaque_fraction=max_opaque)
        if max_carbon is not None:
            params = dataclasses.replace(params, max_carbon_fraction=max_carbon)
        if max_crystalline is not None:
            params = dataclasses.replace(params, max_crystalline_fraction=max_crystalline)
        if thick_ice_transmission is not None:
            params = dataclasses.replace(params, thick_ice_transmission=thick_ice_transmission)
        if session_reason_share is not None:
            params = dataclasses.replace(params, session_reason_share=session_reason_share)
        if drift_outlier_sigma is not None:
            params = dataclasses.replace(params, drift_outlier_sigma=drift_outlier_sigma)
        if empty_blob_ratio is not None:
            params = dataclasses.replace(params, empty_blob_ratio=empty_blob_ratio)
        if no_gradient_second_look:
            params = dataclasses.replace(params, gradient_second_look=False)
        problems = assess_micrographs.params_problems(params)
        if problems:
            raise ScreenError("; ".join(problems))
        model = assess_micrographs.load_micrograph_model(params)

        def report(done: int, total: int) -> None:
            if not quiet:
                typer.echo(f"assessed {done}/{total}", err=True)

        fallback = None
        if not no_domain_fallback and micassess_weights is None:
            # As in `screen run`: weights the user chose are the user's verdicts, no fallback.
            fallback_params = dataclasses.replace(
                params, model=assess_micrographs.DOMAIN_RANDOMISED_MODEL
            )
            fallback = evaluation.DomainFallback(
                fallback_params,
                lambda: assess_micrographs.load_micrograph_model(fallback_params),
            )
        result = evaluation.evaluate_micrographs(
            items, params, model, CtfSearch(), report, fallback
        )
    except ScreenError as error:
        raise _fail(error) from None
    typer.echo(evaluation.format_evaluation(result))
    evaluation.resolution_figure(result, figure)
    typer.echo(f"figure: {figure}", err=True)
    if table is not None:
        evaluation.verdict_table(result).to_csv(table, index=False)
        typer.echo(f"table: {table}", err=True)


@evaluate_app.command("diameter")
def evaluate_diameter_command(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="CSVs of path,pixel_size_A,diameter_A[,session], `screen simulate` folders "
            "and/or the word real-examples (shared/real_examples)."
        ),
    ],
    micrographs: Annotated[
        int, typer.Option(min=1, help="Micrographs per session (as `screen run`: 10).")
    ] = 10,
    long_axis: Annotated[
        bool,
        typer.Option(
            "--long-axis",
            help="Also measure the particle's long axis as `screen run`'s report does: pick at "
            "the estimate, 2D-classify over the mask sweep, keep the good classes, measure "
            "their objects (slower: minutes per group).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """The particle-diameter estimate against known diameters (±15 % is issue 12's bar)."""
    import dataclasses

    from screen import diameter_evaluation
    from screen.stages.ctf import CtfSearch
    from screen.stages.diameter import DiameterParams

    def report(result) -> None:
        if not quiet:
            more = (
                f", long axis {result.long_axis.long_axis_A:.0f} Å"
                if result.long_axis is not None
                else ""
            )
            typer.echo(f"{result.group.name}: {result.diameter_A:.0f} Å{more}", err=True)

    try:
        groups = diameter_evaluation.load_diameter_sets(sources)
        params = dataclasses.replace(DiameterParams(), max_micrographs=micrographs)
        results = diameter_evaluation.evaluate_diameters(
            groups, params, CtfSearch(), report, long_axis=long_axis
        )
    except ScreenError as error:
        raise _fail(error) from None
    typer.echo(diameter_evaluation.format_diameter_evaluation(results, long_axis=long_axis))


@evaluate_app.command("classes")
def evaluate_classes_command(
    averages: Averages,
    labels: AverageLabels,
    pixel_size: AveragesPixelSize = None,
    mask_diameter: AveragesMask = None,
    mask_scale: Annotated[
        float, typer.Option(min=0.05, help="Judge every average at this many times its mask.")
    ] = 1.0,
    class_weights: Annotated[
        str | None,
        typer.Option(
            help="Class-assessment weights: shipped name or .keras path (default "
            "class_assess_v8: mask-independent, trained partly on real averages and on RELION's "
            "averages of simulated particles; `screen run` judges its own 2D's averages with it "
            "too)."
        ),
    ] = None,
) -> None:
    """Precision and recall of class assessment on labelled class averages."""
    import dataclasses

    from screen import class_evaluation
    from screen.stages.assess_classes import (
        EXTERNAL_AVERAGES_MODEL,
        ClassAssessParams,
        load_class_model,
    )

    try:
        items = class_evaluation.load_labelled_averages(averages, labels, pixel_size, mask_diameter)
        if mask_scale != 1.0:
            items = class_evaluation.with_mask(items, mask_scale)
        params = dataclasses.replace(
            ClassAssessParams(), model=class_weights or EXTERNAL_AVERAGES_MODEL
        )
        result = class_evaluation.evaluate_classes(items, params, load_class_model(params))
    except ScreenError as error:
        raise _fail(error) from None
    typer.echo(f"model: {params.model}")
    typer.echo(class_evaluation.format_class_evaluation(result))


def _save_weights(model, out: Path) -> None:
    """Write a Keras model to ``out`` (.keras) atomically: a crash leaves no half file."""
    from screen.io.atomic import atomic_path

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        keras_tmp = tmp.with_name(tmp.name + ".keras")  # Keras insists on the suffix
        model.save(keras_tmp)
        keras_tmp.replace(tmp)


@train_app.command("micrographs")
def train_micrographs_command(
    labels: Annotated[
        Path,
        typer.Argument(
            help="A `screen simulate` folder (ground truth) or a CSV of "
            "path,label[,reason][,pixel_size_A] (label: good or bad)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Trained weights (.keras).")] = Path(
        "micassess_finetuned.keras"
    ),
    base: Annotated[
        str,
        typer.Option(help="Weights to start from (shipped name or .keras path)."),
    ] = "micassess_small_v2",
    from_scratch: Annotated[
        bool, typer.Option("--from-scratch", help="Train a fresh network instead.")
    ] = False,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the labelled set.")] = 8,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-4,
    seed: Annotated[int, typer.Option(help="Seed of shuffling, augmentation, init.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Fine-tune micrograph assessment (or train it afresh) on your own labelled micrographs."""
    from screen import evaluation, training
    from screen.models.micassess import TrainingConfig

    if out.suffix != ".keras":
        raise _fail(ScreenError(f"{out}: the weights file must end in .keras"))

    def report(done: int, total: int) -> None:
        if not quiet and (done == total or done % 25 == 0):
            typer.echo(f"prepared {done}/{total}", err=True)

    def epoch_report(epoch: int, total: int, loss: float) -> None:
        if not quiet:
            typer.echo(f"epoch {epoch}/{total}: loss {loss:.4f}", err=True)

    try:
        prepared = training.prepare_labelled_set(evaluation.load_labelled_set(labels), report)
        config = TrainingConfig(epochs=epochs, learning_rate=learning_rate, seed=seed)
        result = training.train_micrographs(
            prepared, config, None if from_scratch else base, epoch_report
        )
    except ScreenError as error:
        raise _fail(error) from None
    _save_weights(result.model, out)
    data = prepared.data
    typer.echo(
        f"trained on {len(data.good)} crops ({int(data.good.sum())} good) for {epochs} epochs "
        f"in {result.seconds:.0f} s; loss {result.loss_per_epoch[0]:.3f} -> "
        f"{result.loss_per_epoch[-1]:.3f}"
    )
    for line in prepared.skipped:
        typer.echo(f"skipped {line}", err=True)
    typer.echo(f"weights: {out} (use: screen run ... --micassess-weights {out})")


@train_app.command("classes")
def train_classes_command(
    averages: Averages,
    labels: AverageLabels,
    pixel_size: AveragesPixelSize = None,
    mask_diameter: AveragesMask = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Trained weights (.keras).")] = Path(
        "class_assess_finetuned.keras"
    ),
    base: Annotated[
        str | None,
        typer.Option(
            help="Weights to start from (shipped name or .keras path; default: `screen run`'s)."
        ),
    ] = None,
    from_scratch: Annotated[
        bool, typer.Option("--from-scratch", help="Train a fresh network instead.")
    ] = False,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the labelled set.")] = 10,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-4,
    held_out: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.9,
            help="Share of each label kept out of training and scored before and after "
            "(0: train on all, no score).",
        ),
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split, shuffling and augmentation.")] = 0,
) -> None:
    """Fine-tune class assessment (or train it afresh) on your own labelled class averages."""
    import dataclasses

    from screen import class_evaluation, training
    from screen.stages.assess_classes import ClassAssessParams, load_class_model

    if out.suffix != ".keras":
        raise _fail(ScreenError(f"{out}: the weights file must end in .keras"))
    params = dataclasses.replace(ClassAssessParams(), model=base or ClassAssessParams().model)
    try:
        items = class_evaluation.load_labelled_averages(averages, labels, pixel_size, mask_diameter)
        base_model = None if from_scratch else load_class_model(params)
        result = training.train_classes(items, base_model, epochs, learning_rate, held_out, seed)
    except ScreenError as error:
        raise _fail(error) from None
    _save_weights(result.model, out)
    counts = ", ".join(f"{label} {n}" for label, n in result.train_counts.items())
    start = "a fresh network" if from_scratch else params.model
    typer.echo(
        f"trained {start} on {result.n_train} averages ({counts}) for {epochs} epochs "
        f"in {result.seconds:.0f} s"
    )

    def scores(values: tuple[float, float, float]) -> str:
        precision, recall, accuracy = values
        return f"good precision {precision:.3f}, recall {recall:.3f}, accuracy {accuracy:.3f}"

    if result.after is not None:
        typer.echo(f"held out {result.n_held_out} averages (not trained on):")
        if result.before is not None:
            typer.echo(f"  {params.model}: {scores(result.before)}")
        typer.echo(f"  trained:  {scores(result.after)}")
    typer.echo(
        f"weights: {out} (use: screen run ... --class-weights {out}; "
        f"screen evaluate classes ... --class-weights {out})"
    )
