"""Command line: thin typer commands; heavy imports happen inside the commands."""

from __future__ import annotations

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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=False) as progress:
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
