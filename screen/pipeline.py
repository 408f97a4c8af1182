"""`screen run`: the order of stages for each session, caching and resume, fault isolation, progress.

For each session (grid condition) of the manifest, independently:

1. read each micrograph (movies are motion-corrected first);
2. micrograph assessment (P(good), verdict at the threshold, reason) and CTF estimation;
3. particle diameter from a subset of good micrographs (averaged picks, Canny edge x 1.5);
4. template-free picking on the good micrographs, extraction at ~3.5-4 Å/px, normalised;
5. 2D classification at several mask diameters (0.5x-2x the diameter), class assessment;
6. best mask diameter = most good particles; its good classes' particles are the output stack.

Every stage result is cached under the session's ``cache/`` folder, keyed by the input file's
identity, the stage's parameters and the backend's version, and written atomically: re-running
skips finished work, and a killed run resumes. A micrograph that cannot be read or processed is
recorded with its reason and skipped; a session that fails is recorded and the others go on.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import json
import platform
import shutil
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

import screen
from screen.config import RunConfig, config_problems
from screen.errors import RunError, ScreenError, os_error_message
from screen.io.atomic import atomic_path
from screen.io.images import MrcImage, is_lossy_export, read_ahead, read_image, summed_frames
from screen.io.mrc import write_mrc
from screen.io.star import OpticsGroup, write_particles_star, write_star
from screen.manifest import Manifest, SessionRow
from screen.models.registry import sha256, weights_path
from screen.stages import (
    assess_classes,
    assess_micrographs,
    classify2d,
    ctf,
    diameter,
    extraction,
    motion,
    picking,
)
from screen.stages.base import THREADS, threaded_map
from screen.stages.records import (
    CLASS_LABELS,
    ClassAverages,
    ClassVerdicts,
    CtfFit,
    DiameterEstimate,
    MicrographVerdict,
    Optics,
    ParticleStack,
    Picks,
)
from screen.store import entries
from screen.store.cache import StageCache, cache_key, file_identity
from screen.store.layout import RunLayout, SessionLayout, micrograph_names
from screen.store.lock import results_lock

ProgressCallback = Callable[[str, str, int, int], None]
"""Called as ``(session, stage, done, total)``."""

CHUNK = 16  # micrographs read and assessed together (bounded memory)

PIXEL_SIZE_TOLERANCE = 0.02
"""Relative difference of header and manifest pixel sizes that earns a warning."""

RUN_STOPPING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""OS errors that would fail every session alike (the disk): they stop the run."""

OUTLINE_PICK_REACH = 0.4
"""``PickParams.symmetry_reach`` of a condition whose diameter came from outline-centred picks
(`DiameterEstimate.outline_centred`): the diameter stage's own reach (0.4 diameters, where a
hollow shell's wall picks lie). On the independent simulator's shells at their 133-Å estimate
(`bench/screen_run_independent.py`, run 10): recall / precision 0.69 / 0.79 -> 0.87 / 0.98,
centre error 36 -> 10 Å; compact particles never get it (their picks are centred already, and on
the real EMPIAR-10017 exports it would move picks 0.13 -> 0.15 diameters off the manual
centres)."""


@dataclass
class _Models:
    """Keras models, loaded on first use and shared by all sessions of a run."""

    config: RunConfig
    _micrograph: object | None = None
    _fallback_micrograph: object | None = None
    _classes: object | None = None

    @property
    def micrograph(self):
        if self._micrograph is None:
            self._micrograph = _load_once(
                assess_micrographs.load_micrograph_model, self.config.assess, "micrograph"
            )
        return self._micrograph

    @property
    def fallback_micrograph(self):
        """The domain-randomised micrograph model: its second opinion, made beside the first."""
        if self._fallback_micrograph is None:
            self._fallback_micrograph = _load_once(
                assess_micrographs.load_micrograph_model, fallback_assess(self.config), "micrograph"
            )
        return self._fallback_micrograph

    @property
    def classes(self):
        if self._classes is None:
            self._classes = _load_once(
                assess_classes.load_class_model, self.config.class_assess, "class"
            )
        return self._classes


def _raise_if_run_stopping(exc: Exception) -> None:
    """Re-raise what would fail every session alike (a full disk, a model); the rest is local."""
    if isinstance(exc, RunError) or (isinstance(exc, OSError) and exc.errno in RUN_STOPPING_ERRNOS):
        raise exc


def _load_once(load, params, what: str):
    """``load(params)``; a model that cannot be loaded stops the run (every session needs it)."""
    try:
        return load(params)
    except Exception as exc:
        raise RunError(
            f"the {what}-assessment model {params.model!r} cannot be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


@dataclass
class _MicrographResult:
    name: str
    path: Path
    identity: dict
    status: str = "ok"
    error: str = ""
    verdict: MicrographVerdict | None = None
    ctf: CtfFit | None = None
    n_picks: int = 0
    ctf_note: str = ""  # why no CTF could be fitted (`ctf.CtfNotMeasurable`); the rest goes on


@dataclass
class _Session:
    row: SessionRow
    layout: SessionLayout
    cache: StageCache
    config: RunConfig
    models: _Models
    progress: ProgressCallback | None
    optics: Optics
    stage_seconds: dict[str, float]
    stage_cpu_seconds: dict[str, float]
    # Cache entries already counted: a result computed (or reused) and later read again from
    # the cache in the same session (the second opinion's verdicts) counts once.
    counted: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)
    # Set by `_assess_and_ctf` when the session's CTF fits follow a processing pattern.
    ctf_pattern: ctf.FixedPattern | None = None

    def tick(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(self.row.session, stage, done, total)

    def computed(self, stage: str, entry: tuple[str, str, str], cpu_seconds: float) -> None:
        """Account for a stage result computed now (``entry``: cache stage, name, key)."""
        self.counted.add(entry)
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + cpu_seconds
        self.stage_cpu_seconds[stage] = self.stage_cpu_seconds.get(stage, 0.0) + cpu_seconds
        self.cache.put_cpu_seconds(*entry, cpu_seconds)

    def reused(self, stage: str, entry: tuple[str, str, str]) -> None:
        """Account for a cached stage result: its original CPU cost counts in the totals."""
        if entry in self.counted:
            return
        self.counted.add(entry)
        seconds = self.cache.get_cpu_seconds(*entry)
        self.stage_cpu_seconds[stage] = self.stage_cpu_seconds.get(stage, 0.0) + seconds


def run_screen(
    manifest: Manifest,
    out_dir: Path,
    config: RunConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
    argv: list[str] | None = None,
    render: bool = True,
) -> list[dict]:
    """Run every session of ``manifest`` into ``out_dir``; return the session summaries.

    Raises
    ------
    RunError
        Before any work, if a parameter is out of range, a model's weights are missing, the
        output folder cannot be written or another run is using it; during the run, if the disk
        fills up or a model cannot be loaded (every session would fail the same way).
    """
    config = config or RunConfig()
    problems = config_problems(config)
    if problems:
        raise RunError("; ".join(problems))
    for model in (config.assess.model, config.class_assess.model):
        model_identity(model)  # a missing weights file stops the run before any work
    layout = RunLayout(Path(out_dir))
    try:
        layout.root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunError(f"{layout.root} is a file, not a folder: choose another --out") from None
    except OSError as error:
        raise RunError(f"cannot make the results folder: {os_error_message(error)}") from None
    try:
        with results_lock(layout.root):
            return _run_sessions(manifest, layout, config, progress, argv, render)
    except OSError as error:
        raise RunError(f"cannot write the results: {os_error_message(error)}") from None


def _run_sessions(
    manifest: Manifest,
    layout: RunLayout,
    config: RunConfig,
    progress: ProgressCallback | None,
    argv: list[str] | None,
    render: bool,
) -> list[dict]:
    models = _Models(config)
    started = time.time()
    # Two passes: every condition's micrographs and own diameter first, so that all can be
    # picked at the run's common diameter (`diameter.common_diameter`), then the rest.
    prepared: dict[str, _Prepared | dict] = {}
    for row in manifest.sessions:
        session_layout = layout.session(row.session)
        _remove_outputs(session_layout)
        try:
            prepared[row.session] = _prepare_session(row, session_layout, config, models, progress)
        except Exception as exc:  # one failing session never stops the others
            _raise_if_run_stopping(exc)
            prepared[row.session] = _failed_summary(row, exc)
    common = None
    if config.common_diameter:
        common = diameter.common_diameter(
            {
                name: p.estimate
                for name, p in prepared.items()
                if isinstance(p, _Prepared) and p.estimate is not None
            }
        )
    summaries = []
    for row in manifest.sessions:
        summary = prepared[row.session]
        if isinstance(summary, _Prepared):
            try:
                summary = _finish_session(summary, common)
            except Exception as exc:
                _raise_if_run_stopping(exc)
                summary = _failed_summary(row, exc)
        _write_json(layout.session(row.session).summary, summary)
        summaries.append(summary)
    _add_verdicts(layout, summaries)
    _write_provenance(layout, manifest, config, argv, time.time() - started)
    if render:
        from screen.report.render import render_report

        render_report(layout.root)
    return summaries


@functools.cache
def model_identity(name_or_path: str) -> dict[str, str]:
    """Weights file and its SHA-256: part of cache keys and provenance."""
    path = weights_path(name_or_path)
    return {"path": str(path), "sha256": sha256(path)}


def _remove_outputs(layout: SessionLayout) -> None:
    """Remove an earlier run's rebuilt outputs (picks, classes, particles), keeping the cache."""
    for path in layout.rebuilt_outputs:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _write_json(path: Path, value) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2, default=_json_default))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value)}")


class NoUsableMicrographs(ScreenError):
    """Not one micrograph of a session could be read and assessed."""


def _unusable_message(results: list[_MicrographResult]) -> str:
    counts = Counter(r.status for r in results)
    first = next((r for r in results if r.error), None)
    example = f"; first: {first.path}: {first.error}" if first else ""
    kinds = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return (
        f"none of the {len(results)} micrographs could be used ({kinds}){example}; "
        "every one is listed with its reason in micrographs.csv"
    )


def _failed_summary(row: SessionRow, exc: Exception) -> dict:
    error = str(exc) if isinstance(exc, ScreenError) else f"{type(exc).__name__}: {exc}"
    return {
        "session": row.session,
        "metadata": dict(row.metadata),
        "status": "failed",
        "error": error,
        "n_micrographs": len(row.micrograph_paths),
        "verdicts": [],
    }


@dataclass
class _Prepared:
    """A condition after its micrographs and its own diameter (`_prepare_session`)."""

    session: _Session
    results: list[_MicrographResult]
    good: list[_MicrographResult]
    estimate: DiameterEstimate | None
    domain_warning: str | None
    micrograph_model: str
    cpu_seconds: float
    wall_seconds: float


def _prepare_session(
    row, layout: SessionLayout, config: RunConfig, models: _Models, progress
) -> _Prepared:
    """Read, assess and CTF-fit a condition's micrographs and estimate its own diameter."""
    cpu_start, wall_start = time.process_time(), time.time()
    session = _Session(
        row=row,
        layout=layout,
        cache=StageCache(layout.cache_dir),
        config=config,
        models=models,
        progress=progress,
        optics=Optics(row.pixel_size_A, row.voltage_kV, row.cs_mm, row.amplitude_contrast),
        stage_seconds={},
        stage_cpu_seconds={},
    )
    fallback_allowed = (
        config.domain_fallback and config.assess.model != fallback_assess(config).model
    )
    # The randomised model assesses the same pixels at once (cached): a session that needs its
    # verdicts (below) is then not read and preprocessed a second time.
    model = models.micrograph  # loaded first: a run's own model that cannot load stops it
    also = (fallback_assess(config), models.fallback_micrograph) if fallback_allowed else None
    results = _assess_and_ctf(session, model=model, also=also)
    assessed = [r for r in results if r.status == "ok" and r.verdict is not None]
    if not assessed:
        _write_micrograph_table(layout, results, config.ctf.low_res_A)
        raise NoUsableMicrographs(_unusable_message(results))
    domain = assess_micrographs.session_domain_check(
        [r.verdict for r in assessed], [r.ctf for r in assessed], config.assess
    )
    domain_warning, micrograph_model = domain.warning, config.assess.model
    again: list[_MicrographResult] | None = None  # the randomised model's results, once asked
    if domain.warning and fallback_allowed:
        # The first model rejects almost the whole session: assess it again with the model
        # trained on randomised detectors, denoisers and exports (CTF fits come from the cache).
        results = _assess_and_ctf(
            session, fallback_assess(config), session.models.fallback_micrograph
        )
        assessed = [r for r in results if r.status == "ok" and r.verdict is not None]
        micrograph_model = fallback_assess(config).model
        n_kept = sum(r.verdict.verdict == "good" for r in assessed)
        domain_warning += (
            f" Assessed again with {micrograph_model} (trained on randomised detectors, "
            f"denoisers and exports): {n_kept} of {len(assessed)} kept; its verdicts are used "
            f"(--no-domain-fallback keeps {config.assess.model}'s)."
        )
    elif fallback_allowed and assess_micrographs.needs_second_opinion(
        [r.verdict for r in assessed], config.assess
    ):
        # A large share rejected: the randomised model's second opinion on the same micrographs.
        again = _assess_and_ctf(
            session, fallback_assess(config), session.models.fallback_micrograph
        )
        pairs = _both_assessed(results, again)
        warning = assess_micrographs.second_opinion_warning(
            [a.verdict for a, _ in pairs], [b.verdict for _, b in pairs], config.assess
        )
        if warning is not None:
            results, domain_warning = again, warning
            assessed = [r for r in results if r.status == "ok" and r.verdict is not None]
            micrograph_model = fallback_assess(config).model
    if fallback_allowed and micrograph_model == config.assess.model:
        # Micrographs the first model alone rejects, kept where the randomised one is confident
        # that they are good (its verdicts are cached from the first pass).
        if again is None:
            again = _assess_and_ctf(
                session, fallback_assess(config), session.models.fallback_micrograph
            )
        pairs = _both_assessed(results, again)
        kept, n_kept = assess_micrographs.kept_by_second_opinion(
            [a.verdict for a, _ in pairs], [b.verdict for _, b in pairs], config.assess
        )
        for (first, _), verdict in zip(pairs, kept, strict=True):
            first.verdict = verdict
        if n_kept:
            note = assess_micrographs.second_opinion_note(n_kept, config.assess)
            domain_warning = f"{domain_warning} {note}" if domain_warning else note
    # The session's view: rings that reach as far as the session's typical fit are a sound CTF,
    # whatever the network guessed (and rings that fade well before it do not overrule the
    # network's bad CTF, however far they reach in Å), and a doubtful micrograph without a ring where the session's
    # fits are sound has a bad CTF; a spectral reason given to much of the session is the
    # session's, not single micrographs'; a micrograph that received far fewer electrons than
    # the others lies in much thicker ice (its grey level and shot noise, measured with the
    # assessment); one whose spectrum lost one direction far more than the others' did drifted;
    # one with hardly any of the strong dark blobs the others have is empty.
    fits, voltage_kV = [r.ctf for r in assessed], session.optics.voltage_kV
    sound = assess_micrographs.ringless_in_sound_session(
        assess_micrographs.sound_ctf_in_session(
            [r.verdict for r in assessed], fits, config.assess, voltage_kV
        ),
        fits,
        config.assess,
        voltage_kV,
    )
    wide = assess_micrographs.session_wide_reasons(sound, config.assess)
    if wide.warning:
        domain_warning = f"{domain_warning} {wide.warning}" if domain_warning else wide.warning
    checked = assess_micrographs.measured_session_checks(wide.verdicts, config.assess)
    for result, verdict in zip(assessed, checked, strict=True):
        result.verdict = verdict
    if session.ctf_pattern is not None:
        pattern = session.ctf_pattern.warning()
        domain_warning = f"{domain_warning} {pattern}" if domain_warning else pattern
    unmeasured = [r for r in assessed if r.ctf is None and r.ctf_note]
    if unmeasured:
        note = _ctf_not_measurable_warning(unmeasured, len(assessed))
        domain_warning = f"{domain_warning} {note}" if domain_warning else note
    good = [r for r in assessed if r.verdict.verdict == "good"]
    if config.keep_all_micrographs:  # the user's escape: every readable micrograph goes on
        good = assessed
    estimate = _estimate_diameter(session, good)
    return _Prepared(
        session,
        results,
        good,
        estimate,
        domain_warning,
        micrograph_model,
        time.process_time() - cpu_start,
        time.time() - wall_start,
    )


def _finish_session(prepared: _Prepared, common: diameter.CommonDiameter | None) -> dict:
    """Pick, extract, classify and assess a prepared condition; its summary.

    It is picked at the run's ``common`` diameter where `diameter.adopts_common` says so, else at
    its own estimate.
    """
    cpu_start, wall_start = time.process_time(), time.time()
    session, results, good, estimate = (
        prepared.session,
        prepared.results,
        prepared.good,
        prepared.estimate,
    )
    layout, config = session.layout, session.config
    used = estimate
    if estimate is not None and common is not None and diameter.adopts_common(estimate, common):
        used = dataclasses.replace(
            estimate, diameter_A=common.diameter_A, uncertainty_A=common.uncertainty_A
        )
    diameter_A = used.diameter_A if used else None
    pick_params = config.picking
    if estimate is not None and estimate.outline_centred and pick_params.symmetry_reach <= 0:
        # The diameter stage found the picker's maxima off the particles' centres (a hollow
        # shell's wall): picks move to their outlines' centres here too.
        pick_params = dataclasses.replace(pick_params, symmetry_reach=OUTLINE_PICK_REACH)
    stack, pick_counts = _pick_and_extract(session, good, diameter_A, pick_params)
    for result in results:
        result.n_picks = pick_counts.get(result.name, 0)
    _write_micrograph_table(layout, results, session.config.ctf.low_res_A)
    search, best = _classify_all(session, stack, diameter_A, good)
    summary = _summary(
        session, results, good, estimate, stack, search, best, picked_at_own=used is estimate
    )
    if used is not estimate:
        summary["diameter_A"] = used.diameter_A
        summary["diameter_source"] = "common"
        summary["diameter_common_uncertainty_A"] = common.uncertainty_A
        summary["diameter_common_from"] = list(common.conditions)
    summary["diameter_estimate_A"] = estimate.diameter_A if estimate else None
    domain_warning, micrograph_model = prepared.domain_warning, prepared.micrograph_model
    summary["micrograph_domain_warning"] = domain_warning
    summary["class_domain_warning"] = assess_classes.session_class_check(
        [
            assess_classes.MaskClasses(
                entry["mask_diameter_A"], np.asarray(entry["_classes"].counts), entry["_verdicts"]
            )
            for entry in search
        ],
        config.class_assess.model,
    )
    summary["micrograph_model"] = micrograph_model
    summary["kept_all_micrographs"] = bool(config.keep_all_micrographs)
    summary["cpu_seconds"] = sum(session.stage_cpu_seconds.values())
    summary["wall_seconds"] = prepared.wall_seconds + time.time() - wall_start
    summary["run_cpu_seconds"] = prepared.cpu_seconds + time.process_time() - cpu_start
    summary["stage_seconds"] = dict(session.stage_seconds)
    summary["stage_cpu_seconds"] = dict(session.stage_cpu_seconds)
    return summary


# --- micrographs: read (motion-correct), assess, CTF ------------------------------------------


def _read_micrograph(session: _Session, result: _MicrographResult) -> np.ndarray:
    """The micrograph as float32; movies are motion-corrected (cached as MRC)."""
    path, name = result.path, result.name
    if session.row.kind != "movies":
        data = read_image(path).data
        return summed_frames(data)
    key = cache_key(
        result.identity, session.config.motion, motion.BACKEND.key, session.optics.pixel_size_A
    )
    corrected = session.layout.motion_corrected(name)
    done = session.cache.get_json("motion", name, key, entries.motion_from)
    if done is not None and corrected.exists():
        session.reused("motion", ("motion", name, key))
        return read_image(corrected).data
    frames = read_image(path).data
    if frames.ndim == 2:
        frames = frames[None]
    start = time.process_time()
    aligned = motion.align_frames(frames, session.optics.pixel_size_A, session.config.motion)
    write_mrc(corrected, aligned.micrograph, session.optics.pixel_size_A)
    session.cache.put_json("motion", name, key, {"shifts_A": aligned.shifts_A.tolist()})
    session.computed("motion", ("motion", name, key), time.process_time() - start)
    return aligned.micrograph


def assess_cache_version(config: RunConfig, optics: Optics) -> tuple:
    """What a micrograph's cached assessment depends on, besides the file.

    The parameters (less the CTF checks, applied after the cache by `check_ctf`, and the
    session's checks, `session_wide_reasons`, `thick_ice_by_transmission`,
    `drift_by_anisotropy`, `ringless_in_sound_session` and `empty_in_session`, so that changing
    them reuses P(good)), the backend, the model's
    weights, and the pixel size: the network sees the frame rescaled to ~8 Å/px, so a corrected
    pixel size must re-assess.
    """
    return (
        dataclasses.replace(
            config.assess,
            max_astigmatism_A=0.0,
            sound_ctf_keeps=True,
            thick_ice_transmission=0.0,
            session_reason_share=0.0,
            drift_outlier_sigma=0.0,
            ringless_max_p_good=0.0,
            empty_blob_ratio=0.0,
        ),
        assess_micrographs.BACKEND.key,
        model_identity(config.assess.model),
        optics.pixel_size_A,
    )


def _both_assessed(
    first: list[_MicrographResult], second: list[_MicrographResult]
) -> list[tuple[_MicrographResult, _MicrographResult]]:
    """The same micrographs' results under two models, where both assessed them."""
    return [
        (a, b)
        for a, b in zip(first, second, strict=True)
        if a.status == b.status == "ok" and a.verdict and b.verdict
    ]


def fallback_assess(config: RunConfig) -> assess_micrographs.MicrographAssessParams:
    """The micrograph-assessment parameters of the domain fallback: the same, another model."""
    return dataclasses.replace(config.assess, model=assess_micrographs.DOMAIN_RANDOMISED_MODEL)


def _assess_and_ctf(
    session: _Session,
    assess: assess_micrographs.MicrographAssessParams | None = None,
    model=None,
    also: tuple[assess_micrographs.MicrographAssessParams, object] | None = None,
) -> list[_MicrographResult]:
    """Assess and CTF-fit every micrograph of the session (cached).

    ``assess`` and ``model``, when given, replace the run's (the domain fallback). ``also``, a
    second (params, model), is assessed on the same pixels while they are in memory and only
    cached: a later pass with it (the second opinion) then reads no micrograph again.
    """
    assess = session.config.assess if assess is None else assess
    model = session.models.micrograph if model is None else model
    paths = list(session.row.micrograph_paths)
    results = [
        _MicrographResult(name, path, file_identity(path))
        for name, path in zip(micrograph_names(paths), paths, strict=True)
    ]
    assess_version = assess_cache_version(
        dataclasses.replace(session.config, assess=assess), session.optics
    )
    ctf_version = (session.config.ctf, ctf.BACKEND.key, session.optics)
    also_version = (
        assess_cache_version(dataclasses.replace(session.config, assess=also[0]), session.optics)
        if also is not None
        else None
    )
    also_missing: set[str] = set()
    for result in results:  # what the cache already holds
        entry = ("assess", result.name, cache_key(result.identity, assess_version))
        cached = session.cache.get_json(*entry, entries.verdict_from)
        if cached is not None:
            result.verdict = cached
            session.reused("assess_micrographs", entry)
        ctf_entry = ("ctf", result.name, cache_key(result.identity, ctf_version))
        cached_ctf = session.cache.get_json(*ctf_entry, entries.ctf_or_note_from)
        if cached_ctf is not None:  # a fit, or why none can be fitted (not tried again)
            if isinstance(cached_ctf, str):
                result.ctf_note = cached_ctf
            else:
                result.ctf = cached_ctf
            session.reused("ctf", ctf_entry)
        if also is not None:
            also_entry = ("assess", result.name, cache_key(result.identity, also_version))
            if session.cache.get_json(*also_entry, entries.verdict_from) is None:
                also_missing.add(result.name)
            else:  # spent once, as in the run that computed it
                session.reused("assess_micrographs", also_entry)
    todo = [r for r in results if r.verdict is None or (r.ctf is None and not r.ctf_note)]
    done = len(results) - len(todo)
    session.tick("assess + CTF", done, len(results))

    def read_chunk(chunk: list[_MicrographResult]) -> list[np.ndarray | Exception]:
        images: list[np.ndarray | Exception] = []
        for result in chunk:
            try:
                images.append(_read_micrograph(session, result))
            except Exception as exc:  # handed to the caller, which decides what it means
                images.append(exc)
        return images

    chunks = [todo[start : start + CHUNK] for start in range(0, len(todo), CHUNK)]
    # Movies are motion-corrected while read (CPU work that records stage statistics): read
    # when reached. Images are read one chunk ahead while this one is assessed and fitted (the
    # stages' process CPU times then include that reading, a small share of it).
    for chunk, read in read_ahead(chunks, read_chunk, background=session.row.kind != "movies"):
        images: dict[int, np.ndarray] = {}
        for i, (result, image) in enumerate(zip(chunk, read, strict=True)):
            if isinstance(image, Exception):
                _raise_if_run_stopping(image)
                result.status = "unreadable"
                result.error = f"{type(image).__name__}: {image}"
            else:
                images[i] = image
        pending_assess = [i for i in images if chunk[i].verdict is None]
        pending_also = [i for i in images if chunk[i].name in also_missing]
        pending = sorted(set(pending_assess) | set(pending_also))
        if pending:
            pairs = [(assess, model)] + ([also] if pending_also else [])
            begin = time.process_time()
            verdicts = assess_micrographs.assess_micrographs_with(
                [images[i] for i in pending],
                [session.optics.pixel_size_A] * len(pending),
                pairs,
                lossy=[is_lossy_export(chunk[i].path) for i in pending],
            )
            each = (time.process_time() - begin) / (len(pending) * len(pairs))
            for row, i in enumerate(pending):
                if i in pending_assess:
                    chunk[i].verdict = verdicts[0][row]
                    entry = ("assess", chunk[i].name, cache_key(chunk[i].identity, assess_version))
                    session.cache.put_json(*entry, verdicts[0][row])
                    session.computed("assess_micrographs", entry, each)
                if i in pending_also:
                    entry = ("assess", chunk[i].name, cache_key(chunk[i].identity, also_version))
                    session.cache.put_json(*entry, verdicts[1][row])
                    session.computed("assess_micrographs", entry, each)
        to_fit = [i for i in images if chunk[i].ctf is None and not chunk[i].ctf_note]

        def fit(image: np.ndarray) -> tuple[CtfFit | None, str | None, Exception | None, float]:
            begin = time.thread_time()
            try:
                found = ctf.estimate_ctf(image, session.optics, session.config.ctf)
                return found, None, None, time.thread_time() - begin
            except ctf.CtfNotMeasurable as exc:  # no band to fit: judged on the image alone
                return None, str(exc), None, time.thread_time() - begin
            except Exception as exc:
                return None, None, exc, 0.0

        # Two micrographs fitted at a time (FFTs release the GIL); cached here, in this thread.
        fits = threaded_map(fit, [images[i] for i in to_fit])
        for i, (found, note, error, cpu_seconds) in zip(to_fit, fits, strict=True):
            result = chunk[i]
            if error is not None:
                result.status, result.error = "failed", f"CTF: {type(error).__name__}: {error}"
                continue
            result.ctf, result.ctf_note = found, note
            entry = ("ctf", result.name, cache_key(result.identity, ctf_version))
            stored = result.ctf if result.ctf is not None else {"not_measurable": result.ctf_note}
            session.cache.put_json(*entry, stored)
            session.computed("ctf", entry, cpu_seconds)
        done += len(chunk)
        session.tick("assess + CTF", done, len(results))
    # Fits that agree too well across the session are a pattern of the images' processing, not
    # Thon rings: marked as following no ring before any check reads them.
    marked, session.ctf_pattern = ctf.without_fixed_pattern(
        [r.ctf for r in results], session.config.ctf
    )
    for result, fit in zip(results, marked, strict=True):
        result.ctf = fit
    for result in results:  # the verdict once the CTF fit is known (cheap, not cached)
        if result.verdict is not None:
            result.verdict = assess_micrographs.check_ctf(
                result.verdict, result.ctf, assess, session.optics.voltage_kV
            )
    return results


# --- diameter, picking, extraction ---------------------------------------------------------------


def _finite_or_none(value: float) -> float | None:
    """``value`` as a JSON number, ``None`` when it is NaN or infinite (no uncertainty given)."""
    return float(value) if np.isfinite(value) else None


def _ctf_not_measurable_warning(unmeasured: list[_MicrographResult], n_assessed: int) -> str:
    """What the run says about micrographs on which no CTF could be fitted."""
    return (
        f"CTF: not measurable on {len(unmeasured)} of {n_assessed} micrographs "
        f"({unmeasured[0].ctf_note}). They are judged on the image alone, so a bad CTF "
        "(astigmatism, drift, focus) is not told on them, and their particles are not "
        "phase-flipped; micrographs at a finer pixel size would show their Thon rings."
    )


def _estimate_diameter(session: _Session, good: list[_MicrographResult]):
    if not good:
        return None
    if session.row.diameter_A is not None:  # the user's value (manifest column diameter_A)
        given = float(session.row.diameter_A)
        return DiameterEstimate(
            given, given, np.zeros((0, 0)), session.optics.pixel_size_A, method="manifest"
        )
    subset = good[: session.config.diameter_micrographs]
    key = cache_key(
        [r.identity for r in subset],
        [r.ctf for r in subset],
        session.config.diameter,
        diameter.BACKEND.key,
    )
    cached = session.cache.get_json("diameter", "session", key, entries.diameter_from)
    if cached is not None:
        session.reused("diameter", ("diameter", "session", key))
        return cached
    begin = time.process_time()
    images = [_read_micrograph(session, r) for r in subset]
    fits = [r.ctf for r in subset]
    estimate = diameter.estimate_diameter(
        images,
        session.optics.pixel_size_A,
        session.config.diameter,
        ctfs=fits if all(f is not None for f in fits) else None,  # no flip by missing fits
        optics=session.optics,
    )
    session.cache.put_json(
        "diameter",
        "session",
        key,
        {
            "diameter_A": estimate.diameter_A,
            "edge_diameter_A": estimate.edge_diameter_A,
            "pixel_size_A": estimate.pixel_size_A,
            "uncertainty_A": _finite_or_none(estimate.uncertainty_A),
            "method": estimate.method,
            "outline_centred": estimate.outline_centred,
        },
    )
    session.computed("diameter", ("diameter", "session", key), time.process_time() - begin)
    session.tick("diameter", 1, 1)
    return estimate


PICK_CHUNK = 2 * THREADS
"""Micrographs picked and extracted together, `THREADS` at a time (their filters and FFTs release
the GIL; four 4096² EMPIAR-10017 exports 4.1 -> 3.1 s on 2 cores): a small chunk bounds the
frames held in memory and keeps the progress moving."""


@dataclass
class _PickWork:
    """One micrograph's picking and extraction: what the cache held, what a worker computed."""

    index: int
    result: _MicrographResult
    pick_entry: tuple[str, str, str]
    extract_entry: tuple[str, str, str]
    picks: Picks | None
    stack_arrays: dict[str, np.ndarray] | None
    image: np.ndarray | None = None
    pick_cpu_s: float | None = None  # set when the picks were computed now
    extract_cpu_s: float | None = None  # set when the stack was computed now
    error: Exception | None = None


def _compute_picks(session: _Session, work: _PickWork, diameter_A, pick_params) -> None:
    """Pick and extract what the cache lacked, into ``work`` (a worker thread: no session state)."""
    try:
        image = work.image
        if work.picks is None:
            image = image if image is not None else _read_micrograph(session, work.result)
            begin = time.thread_time()
            work.picks = picking.pick_particles(
                image, session.optics.pixel_size_A, diameter_A, pick_params
            )
            work.pick_cpu_s = time.thread_time() - begin
        if work.stack_arrays is None:
            image = image if image is not None else _read_micrograph(session, work.result)
            begin = time.thread_time()
            stack = extraction.extract_particles(
                image,
                work.picks,
                session.optics.pixel_size_A,
                diameter_A,
                work.result.ctf,
                session.optics,
                session.config.extraction,
            )
            work.stack_arrays = {
                "images": stack.images,
                "pixel_size_A": np.array(stack.pixel_size_A),
                "x_px": stack.x_px,
                "y_px": stack.y_px,
            }
            work.extract_cpu_s = time.thread_time() - begin
    except Exception as exc:  # the picks made before it are kept
        work.error = exc
    finally:
        work.image = None


def _pick_and_extract(
    session: _Session,
    good: list[_MicrographResult],
    diameter_A,
    pick_params: picking.PickParams | None = None,
):
    """Picks on every good micrograph and the session's particle stack (None when empty).

    ``pick_params`` default to the session's configuration. Micrographs are picked and extracted
    `PICK_CHUNK` at a time in worker threads; the cache, the picks' STAR files and the session's
    accounts are written here, in order.
    """
    if not good or diameter_A is None:
        return None, {}
    pick_params = session.config.picking if pick_params is None else pick_params
    counts: dict[str, int] = {}
    parts: list[ParticleStack] = []
    pick_version = (diameter_A, pick_params, picking.BACKEND.key)
    numbered = list(enumerate(good))
    for start in range(0, len(numbered), PICK_CHUNK):
        chunk: list[_PickWork] = []
        for index, result in numbered[start : start + PICK_CHUNK]:
            pick_key = cache_key(result.identity, pick_version)
            extract_key = cache_key(
                pick_key,
                result.ctf,
                session.optics,
                diameter_A,
                session.config.extraction,
                extraction.BACKEND.key,
            )
            pick_entry = ("picking", result.name, pick_key)
            extract_entry = ("extraction", result.name, extract_key)
            picks = session.cache.get_arrays(*pick_entry, entries.picks_from)
            stack_arrays = session.cache.get_arrays(*extract_entry, entries.extracted_from)
            if picks is not None:
                session.reused("picking", pick_entry)
            if stack_arrays is not None:
                session.reused("extraction", extract_entry)
            chunk.append(_PickWork(index, result, pick_entry, extract_entry, picks, stack_arrays))
        todo = [w for w in chunk if w.picks is None or w.stack_arrays is None]
        if session.row.kind == "movies":
            # Motion correction records the session's stage accounts: read here, in this thread.
            for work in todo:
                try:
                    work.image = _read_micrograph(session, work.result)
                except Exception as exc:
                    work.error = exc
        threaded_map(
            lambda work: _compute_picks(session, work, diameter_A, pick_params),
            [w for w in todo if w.error is None],
        )
        for work in chunk:
            result = work.result
            if work.pick_cpu_s is not None:
                picks = work.picks
                session.cache.put_arrays(
                    *work.pick_entry,
                    {"x_px": picks.x_px, "y_px": picks.y_px, "score": picks.score},
                )
                session.computed("picking", work.pick_entry, work.pick_cpu_s)
            if work.picks is not None:
                _write_picks(session.layout, result.name, work.picks)
            if work.error is not None:
                _raise_if_run_stopping(work.error)
                result.status, result.error = (
                    "failed",
                    f"picking/extraction: {type(work.error).__name__}: {work.error}",
                )
                continue
            if work.extract_cpu_s is not None:
                session.cache.put_arrays(*work.extract_entry, work.stack_arrays)
                session.computed("extraction", work.extract_entry, work.extract_cpu_s)
            counts[result.name] = len(work.picks)
            stack_arrays = work.stack_arrays
            n = len(stack_arrays["images"])
            parts.append(
                ParticleStack(
                    stack_arrays["images"],
                    float(stack_arrays["pixel_size_A"]),
                    np.full(n, work.index),
                    stack_arrays["x_px"],
                    stack_arrays["y_px"],
                )
            )
            session.tick("picking + extraction", work.index + 1, len(good))
    parts = [p for p in parts if len(p.images)]
    if not parts:
        return None, counts
    stack = ParticleStack(
        np.concatenate([p.images for p in parts]),
        parts[0].pixel_size_A,
        np.concatenate([p.micrograph_index for p in parts]),
        np.concatenate([p.x_px for p in parts]),
        np.concatenate([p.y_px for p in parts]),
    )
    return stack, counts


def _write_picks(layout: SessionLayout, name: str, picks: Picks) -> None:
    table = pd.DataFrame(
        {
            "rlnCoordinateX": picks.x_px,
            "rlnCoordinateY": picks.y_px,
            "rlnAutopickFigureOfMerit": picks.score,
        }
    )
    write_star(layout.picks_dir / f"{name}.star", {"": table})


# --- 2D classification over mask diameters, class assessment, best diameter --------------------


def _classify_all(session: _Session, stack: ParticleStack | None, diameter_A, good):
    """Classify at every mask diameter; return the search table and the best entry (or None)."""
    if stack is None or diameter_A is None or len(stack.images) == 0:
        return [], None
    sub, chosen = extraction.stack_subset(
        stack, session.config.max_particles_2d, session.config.seed
    )
    sub = extraction.binned_stack(sub, session.config.max_box_2d_px)
    stack_id = cache_key(sub.images)
    search = []
    factors = session.config.mask_factors
    masks_A = [float(round(factor * diameter_A)) for factor in factors]
    classified = _classify_masks(session, sub, stack_id, masks_A)
    for done, mask_A in enumerate(masks_A, 1):
        classes = classified[mask_A]
        verdicts = assess_classes.cut_by_mask(
            _assess(session, classes, stack_id, mask_A),
            mask_A,
            float(diameter_A),
            session.config.class_assess.min_mask_diameters,
        )
        labels = np.asarray(verdicts.labels, dtype=object)
        particles_by_label = {
            label: int(np.asarray(classes.counts)[labels == label].sum()) for label in CLASS_LABELS
        }
        _write_classes(session.layout, classes, verdicts)
        search.append(
            {
                "mask_diameter_A": mask_A,
                "n_classes": len(classes.counts),
                "n_good_classes": int(np.sum(labels == "good")),
                "good_particles": particles_by_label["good"],
                "labels": {label: int(np.sum(labels == label)) for label in CLASS_LABELS},
                "label_particles": particles_by_label,
                "cut_by_mask": 0
                if verdicts.cut_by_mask is None
                else int(np.sum(verdicts.cut_by_mask)),
                "_classes": classes,
                "_verdicts": verdicts,
                "_chosen": chosen,
            }
        )
        session.tick("class assessment", done, len(masks_A))
    best = max(
        search,
        key=lambda entry: (entry["good_particles"], -abs(entry["mask_diameter_A"] - diameter_A)),
    )
    _write_particles(session, stack, best, good)
    return search, best


def _classify_masks(
    session: _Session, stack: ParticleStack, stack_id: str, masks_A: list[float]
) -> dict[float, ClassAverages]:
    """The 2D classification at every mask diameter: cached ones read, the rest computed.

    Those not cached are classified `THREADS` at a time (each from its own seeded
    generator, so the classes are the same as one after another) and cached here, in this
    thread, as each finishes, with its own CPU time: one that fails loses none of the others
    (the first failure is raised once the rest are cached). Progress is ticked per mask.
    """
    found: dict[float, ClassAverages] = {}
    missing: dict[float, tuple[str, str, str]] = {}
    unique = list(dict.fromkeys(masks_A))
    for mask_A in unique:
        key = cache_key(stack_id, mask_A, session.config.classify, classify2d.BACKEND.key)
        entry = ("classify2d", f"d{int(mask_A)}", key)
        cached = session.cache.get_arrays(*entry, entries.classes_from)
        if cached is not None:
            session.reused("classify2d", entry)
            found[mask_A] = cached
        else:
            missing[mask_A] = entry

    def classify(mask_A: float) -> tuple[ClassAverages, float]:
        begin = time.thread_time()
        classes = classify2d.classify_2d(stack, mask_A, session.config.classify)
        return classes, time.thread_time() - begin

    # The stage silences k-means' empty-cluster warnings in `warnings.catch_warnings` blocks,
    # which are not thread-safe; one block around the threads leaves the filters as they were.
    failure: BaseException | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            running = {pool.submit(classify, mask_A): mask_A for mask_A in missing}
            for future in as_completed(running):
                mask_A = running[future]
                try:
                    classes, cpu_seconds = future.result()
                except Exception as exc:  # the others are still cached; raised below
                    failure = failure or exc
                    continue
                entry = missing[mask_A]
                session.cache.put_arrays(
                    *entry,
                    {
                        "averages": classes.averages,
                        "assignments": classes.assignments,
                        "counts": classes.counts,
                        "mask_diameter_A": np.array(classes.mask_diameter_A),
                        "pixel_size_A": np.array(classes.pixel_size_A),
                        "psi_deg": classes.psi_deg,
                        "shift_px": classes.shift_px,
                    },
                )
                session.computed("classify2d", entry, cpu_seconds)
                found[mask_A] = classes
                session.tick("2D classification", len(found), len(unique))
    if failure is not None:
        raise failure
    return found


def _assess(
    session: _Session, classes: ClassAverages, stack_id: str, mask_A: float
) -> ClassVerdicts:
    key = cache_key(
        stack_id,
        mask_A,
        session.config.classify,
        session.config.class_assess,
        assess_classes.BACKEND.key,
        model_identity(session.config.class_assess.model),
    )
    entry = ("assess_classes", f"d{int(mask_A)}", key)
    cached = session.cache.get_json(*entry, entries.class_verdicts_from)
    if cached is not None:
        session.reused("assess_classes", entry)
        return cached
    begin = time.process_time()
    verdicts = assess_classes.assess_classes(
        classes.averages,
        mask_A,
        classes.pixel_size_A,
        session.config.class_assess,
        session.models.classes,
    )
    session.cache.put_json(
        *entry,
        {
            "labels": list(verdicts.labels),
            "scores": np.asarray(verdicts.scores).tolist(),
            "moved_by_saliency": np.asarray(verdicts.moved_by_saliency).tolist(),
        },
    )
    session.computed("assess_classes", entry, time.process_time() - begin)
    return verdicts


def _write_classes(layout: SessionLayout, classes: ClassAverages, verdicts: ClassVerdicts) -> None:
    folder = layout.classes_dir(classes.mask_diameter_A)
    if len(classes.averages):
        write_mrc(folder / "averages.mrcs", classes.averages, classes.pixel_size_A)
    scores = np.asarray(verdicts.scores).reshape(len(verdicts.labels), -1)
    table = pd.DataFrame(
        {
            "class_index": np.arange(len(classes.counts)),
            "n_particles": classes.counts,
            "label": list(verdicts.labels),
            "p_good": scores[:, 0],
            "p_clip": scores[:, 1],
            "p_edge": scores[:, 2],
            "p_noise": scores[:, 3],
            "moved_by_saliency": np.asarray(verdicts.moved_by_saliency, dtype=bool),
            "cut_by_mask": (
                np.zeros(len(verdicts.labels), bool)
                if verdicts.cut_by_mask is None
                else np.asarray(verdicts.cut_by_mask, dtype=bool)
            ),
        }
    )
    with atomic_path(folder / "classes.csv") as tmp:
        table.to_csv(tmp, index=False)


def _write_particles(session: _Session, stack: ParticleStack, best: dict, good) -> None:
    """The good classes' particles at the best mask diameter: particles.mrcs + particles.star.

    ``stack.micrograph_index`` indexes ``good`` (the good micrographs, in order).
    """
    classes, verdicts, chosen = best["_classes"], best["_verdicts"], best["_chosen"]
    good_classes = [i for i, label in enumerate(verdicts.labels) if label == "good"]
    keep = np.isin(classes.assignments, good_classes)
    index = chosen[keep]
    if index.size == 0:
        return
    images = stack.images[index]
    folder = session.layout.particles_dir
    write_mrc(folder / "particles.mrcs", images, stack.pixel_size_A)
    sources = [good[i] for i in stack.micrograph_index[index]]
    particles = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1:06d}@particles.mrcs" for i in range(index.size)],
            "rlnMicrographName": [str(r.path) for r in sources],
            "rlnCoordinateX": stack.x_px[index],
            "rlnCoordinateY": stack.y_px[index],
            "rlnDefocusU": [r.ctf.defocus_u_A if r.ctf else np.nan for r in sources],
            "rlnDefocusV": [r.ctf.defocus_v_A if r.ctf else np.nan for r in sources],
            "rlnDefocusAngle": [r.ctf.astigmatism_angle_deg if r.ctf else np.nan for r in sources],
            "rlnClassNumber": classes.assignments[keep] + 1,
            "rlnAnglePsi": classes.psi_deg[keep],
        }
    )
    optics = OpticsGroup(
        pixel_size_A=stack.pixel_size_A,
        voltage_kV=session.optics.voltage_kV,
        cs_mm=session.optics.cs_mm,
        amplitude_contrast=session.optics.amplitude_contrast,
        image_size_px=int(images.shape[-1]),
    )
    write_particles_star(folder / "particles.star", optics, particles)


# --- tables, summary, verdicts, provenance -------------------------------------------------------


def _verdict_measure(result: _MicrographResult, name: str) -> float:
    """A measure the micrograph's verdict holds (``opaque_fraction``, ...), NaN when none."""
    value = getattr(result.verdict, name, None) if result.verdict else None
    return np.nan if value is None else value


def _write_micrograph_table(
    layout: SessionLayout, results: list[_MicrographResult], low_res_A: float
) -> None:
    """Write ``micrographs.csv``, one row per micrograph.

    ``ctf_rings_fitted`` says whether the CTF fit followed Thon rings past the fitting band's low
    end ``low_res_A`` (else its defocus is not a measurement).
    """
    rows = []
    for r in results:
        rows.append(
            {
                "micrograph": r.name,
                "path": str(r.path),
                "status": r.status,
                "error": r.error,
                "p_good": r.verdict.p_good if r.verdict else np.nan,
                "verdict": r.verdict.verdict if r.verdict and r.status == "ok" else "",
                "reason": (r.verdict.reason or "") if r.verdict else "",
                "opaque_fraction": _verdict_measure(r, "opaque_fraction"),
                "carbon_fraction": _verdict_measure(r, "carbon_fraction"),
                "crystalline_fraction": _verdict_measure(r, "crystalline_fraction"),
                "grey_level": _verdict_measure(r, "grey_level"),
                "noise_variance": _verdict_measure(r, "noise_variance"),
                "anisotropy": _verdict_measure(r, "anisotropy"),
                "anisotropy_noise": _verdict_measure(r, "anisotropy_noise"),
                "strong_blobs_per_um2": _verdict_measure(r, "strong_blobs_per_um2"),
                "blob_tail_asymmetry": _verdict_measure(r, "blob_tail_asymmetry"),
                "p_good_flattened": _verdict_measure(r, "p_good_flattened"),
                "defocus_u_um": r.ctf.defocus_u_A / 1e4 if r.ctf else np.nan,
                "defocus_v_um": r.ctf.defocus_v_A / 1e4 if r.ctf else np.nan,
                "astigmatism_angle_deg": r.ctf.astigmatism_angle_deg if r.ctf else np.nan,
                "ctf_fit_resolution_A": r.ctf.fit_resolution_A if r.ctf else np.nan,
                "ctf_score": r.ctf.score if r.ctf else np.nan,
                "ctf_rings_fitted": bool(r.ctf and r.ctf.fit_resolution_A < low_res_A),
                "astigmatism_spread": r.ctf.astigmatism_spread if r.ctf else np.nan,
                "ctf_note": r.ctf_note,
                "n_picks": r.n_picks,
            }
        )
    with atomic_path(layout.micrographs) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def _summary(
    session: _Session, results, good, estimate, stack, search, best, *, picked_at_own=True
) -> dict:
    readable = [r for r in results if r.status != "unreadable"]
    area_um2, warnings = _first_image_facts(session, readable)
    # a fallback estimate that the run's common diameter replaced was not picked at: no caution
    caution = (
        diameter.fallback_caution(estimate) if estimate is not None and picked_at_own else None
    )
    if caution is not None:
        warnings = [*warnings, caution]
    picked = sum(r.n_picks for r in good)
    # ``good`` are the micrographs that went on to picking (every assessed one with
    # --keep-all-micrographs); the good-micrograph count is always the verdicts'.
    n_kept = len(good)
    n_good = sum(
        r.status == "ok" and r.verdict is not None and r.verdict.verdict == "good" for r in results
    )
    classified = len(best["_chosen"]) if best else 0
    good_in_subset = best["good_particles"] if best else 0
    good_fraction = good_in_subset / classified if classified else 0.0
    good_particles = int(round(good_fraction * picked))
    top = []
    if best:
        classes, verdicts = best["_classes"], best["_verdicts"]
        order = [i for i in np.argsort(-classes.counts) if verdicts.labels[i] == "good"][:5]
        top = [
            {
                "mask_diameter_A": best["mask_diameter_A"],
                "class_index": int(i),
                "n_particles": int(classes.counts[i]),
            }
            for i in order
        ]
    return {
        "session": session.row.session,
        "metadata": dict(session.row.metadata),
        "optics": dataclasses.asdict(session.optics),
        "status": "ok",
        "error": None,
        "n_micrographs": len(results),
        "n_unreadable": len(results) - len(readable),
        "n_failed": sum(r.status == "failed" for r in results),
        "n_good_micrographs": n_good,
        "micrograph_area_um2": area_um2,
        "warnings": warnings,
        "good_micrograph_fraction": n_good / len(readable) if readable else 0.0,
        "diameter_A": estimate.diameter_A if estimate else None,
        "diameter_source": (
            None
            if estimate is None
            else "manifest"
            if estimate.method == "manifest"
            else "estimated"
        ),
        "diameter_uncertainty_A": _finite_or_none(estimate.uncertainty_A) if estimate else None,
        "diameter_method": estimate.method if estimate else None,
        "diameter_outline_centred": bool(estimate.outline_centred) if estimate else False,
        "picked_particles": int(picked),
        "n_kept_micrographs": n_kept,
        "particles_per_micrograph": picked / n_kept if n_kept else 0.0,
        "classified_particles": int(classified),
        "good_particles": good_particles,
        "good_particle_fraction": good_fraction,
        "good_particles_per_micrograph": good_particles / n_kept if n_kept else 0.0,
        "pixel_size_2d_A": float(stack.pixel_size_A) if stack is not None else None,
        # no good particle at any mask diameter: there is no best one
        "best_mask_diameter_A": best["mask_diameter_A"] if best and good_in_subset else None,
        "diameter_search": [{k: v for k, v in e.items() if not k.startswith("_")} for e in search],
        "top_good_classes": top,
        "reason_counts": _reason_counts(results),
        "verdicts": [],
    }


def _first_image_facts(session: _Session, readable) -> tuple[float | None, list[str]]:
    """Area of one micrograph in µm² (for densities) and `image_warnings`.

    Both come from the first readable micrograph, read on every run, so a re-run from the
    cache warns alike.
    """
    for result in readable:
        try:
            image = read_image(result.path)
        except Exception:
            continue
        ny, nx = image.data.shape[-2:]
        area_um2 = float(ny * nx * session.optics.pixel_size_A**2 / 1e8)
        return area_um2, image_warnings(image, session.row)
    return None, []


def image_warnings(image: MrcImage, row: SessionRow) -> list[str]:
    """Likely mistakes an image shows about its manifest row (empty when none).

    A header pixel size more than `PIXEL_SIZE_TOLERANCE` away from the manifest's (the
    manifest's is used), and a stack of frames given as a micrograph (summed without alignment).
    """
    warnings = []
    header_A, manifest_A = image.pixel_size_A, row.pixel_size_A
    if header_A and abs(header_A - manifest_A) > PIXEL_SIZE_TOLERANCE * manifest_A:
        warnings.append(
            f"{image.path}: the header gives {header_A:.4g} Å/px but the manifest (line "
            f"{row.line}) {manifest_A:.4g} Å/px; the manifest's is used: check which is right"
        )
    if row.kind == "micrographs" and image.data.ndim == 3 and len(image.data) > 1:
        warnings.append(
            f"{image.path}: a stack of {len(image.data)} frames in the micrographs column is "
            "summed without alignment; give movies in the movies column to motion-correct them"
        )
    return warnings


def _reason_counts(results) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        if r.verdict is not None and r.verdict.verdict == "bad" and r.verdict.reason:
            counts[r.verdict.reason] = counts.get(r.verdict.reason, 0) + 1
    return counts


def _add_verdicts(layout: RunLayout, summaries: list[dict]) -> None:
    """Plain-language verdicts need every session's numbers (ranking), so they come last.

    The report's rules on the stored results (`screen.report.context.all_verdicts`): the same
    sentences in summary.json as in the report.
    """
    from screen.report.context import all_verdicts, session_results

    sessions = [session_results(layout, summary) for summary in summaries]
    verdicts = all_verdicts(sessions)
    for session in sessions:
        if session.ok:
            session.summary["verdicts"] = verdicts[session.name]
            _write_json(session.layout.summary, session.summary)


def _write_provenance(
    layout: RunLayout, manifest: Manifest, config: RunConfig, argv, seconds: float
) -> None:
    import scipy

    record = {
        "screen_version": screen.__version__,
        "argv": argv if argv is not None else sys.argv,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "platform": platform.platform(),
        "manifest": str(manifest.path),
        "sessions": [row.session for row in manifest.sessions],
        "manifest_warnings": list(manifest.warnings),
        "config": dataclasses.asdict(config),
        "backends": [
            b.key
            for b in (
                motion.BACKEND,
                assess_micrographs.BACKEND,
                ctf.BACKEND,
                diameter.BACKEND,
                picking.BACKEND,
                extraction.BACKEND,
                classify2d.BACKEND,
                assess_classes.BACKEND,
            )
        ],
        "models": {
            "micrograph": model_identity(config.assess.model),
            "classes": model_identity(config.class_assess.model),
        },
        "wall_seconds": seconds,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_json(layout.provenance, record)
