"""`screen evaluate micrographs`: the micrograph-assessment model against labels, beside the baseline.

A labelled set is either a simulated screening (``screen simulate`` output: its ground truth gives
every micrograph's verdict and reason) or a CSV with columns ``path,label[,reason][,pixel_size_A]``
(``label`` is ``good`` or ``bad``; paths relative to the CSV; the pixel size defaults to the MRC
header's; an optional ``session`` column groups micrographs into sessions). Each micrograph is
read, assessed at the threshold and its CTF fitted; the verdicts and the CTF-fit-resolution
cutoff's verdicts are scored against the labels.

The verdicts scored are the ones `screen run` would use: each session (a simulated screening's
sessions; a CSV's ``session`` column; otherwise one per pixel size and frame shape,
`acquisition_sessions`) gets the session check of `assess_micrographs.session_domain_check`, and
when the model rejects almost the whole session it is assessed again with the domain-randomised
fallback model, whose verdicts count (as `screen run` does; ``fallback=None`` turns this off,
as ``--no-domain-fallback`` does). A session the model rejects in a large share
(`assess_micrographs.needs_second_opinion`) is also assessed with the fallback model, whose verdicts count when the two disagree on much of it
(`assess_micrographs.second_opinion_warning`); elsewhere a micrograph the model alone rejects
is kept where the fallback model gives it P(good) >= 0.75 (`assess_micrographs.
kept_by_second_opinion`). Then, per session, the CTF checks
(`assess_micrographs.check_ctf`, then `assess_micrographs.sound_ctf_in_session`: a fit as far
as the session's typical one overrules the network's bad CTF, and
`assess_micrographs.ringless_in_sound_session`: a doubtful micrograph without a ring where the
session's fits are sound is bad CTF), the session-wide spectral reasons
(`assess_micrographs.session_wide_reasons`), the network's thick ice checked against the
session's grey levels (`assess_micrographs.thick_ice_needs_darkening`), the thick-ice check on
grey levels and shot noise (`assess_micrographs.thick_ice_by_transmission`), the drift check
on the spectrum's directional power (`assess_micrographs.drift_by_anisotropy`) and the empty-field
check on strong dark blobs against the session (`assess_micrographs.empty_in_session`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from screen.errors import ScreenError
from screen.io.images import (
    IMAGE_EXTENSIONS,
    doubtful_pixel_size,
    is_lossy_export,
    read_image,
    summed_frames,
)
from screen.models.micrograph_metrics import (
    BinaryMetrics,
    best_resolution_cutoff,
    binary_metrics,
    reason_metrics,
)
from screen.stages import assess_micrographs, ctf
from screen.stages.records import MICROGRAPH_REASONS, MicrographVerdict, Optics

CHUNK = 16  # micrographs held in memory at once


@dataclass(frozen=True)
class LabelledMicrograph:
    """One micrograph of a labelled set."""

    path: Path
    label: str  # "good" or "bad"
    reason: str  # the bad reason when known, "good" for good ones, "" when unknown
    optics: Optics
    session: str = ""  # micrographs of one session are judged together (the domain check)
    frame_px: tuple[int, int] | None = None  # (rows, columns), once read


@dataclass(frozen=True)
class MicrographEvaluation:
    """Verdicts and metrics of a labelled set."""

    items: tuple[LabelledMicrograph, ...]
    p_good: np.ndarray
    predicted_reasons: tuple[str, ...]
    fit_resolution_A: np.ndarray
    threshold: float
    model: BinaryMetrics
    cutoff_A: float
    baseline: BinaryMetrics
    reasons: dict[str, dict[str, float]]
    unreadable: tuple[str, ...]
    max_astigmatism_A: float = 0.0  # the astigmatism check (0: off)
    bad_by_astigmatism: np.ndarray | None = None  # (n,) bool: called bad by the check alone
    kept_by_sound_ctf: np.ndarray | None = None  # (n,) bool: network's bad_ctf kept by the fit
    # (n,) bool: kept by the network, called drift by the session's directional-power check
    bad_by_drift_check: np.ndarray | None = None
    # (n,) bool: kept by the network, called empty by the session's dark-blob check
    bad_by_empty_check: np.ndarray | None = None
    # (n,) bool: kept by the network, called bad CTF for a fit without rings in a sound session
    bad_by_ringless_check: np.ndarray | None = None
    domain_warnings: tuple[str, ...] = ()  # one line per session that got the domain warning
    # One line per session with a spectral reason taken as the session's (`session_wide_reasons`).
    session_reason_warnings: tuple[str, ...] = ()
    # One line per session where micrographs the model alone rejected were kept
    # (`assess_micrographs.kept_by_second_opinion`).
    second_opinion_notes: tuple[str, ...] = ()
    # One line per session whose CTF fits follow a processing pattern (`ctf.without_fixed_pattern`).
    ctf_pattern_notes: tuple[str, ...] = ()
    # The sessions `acquisition_sessions` made of a set that named none (empty: none made).
    acquisition_session_names: tuple[str, ...] = ()
    # One line per micrograph whose field is too small for its pixel size (`doubtful_pixel_size`).
    pixel_size_doubts: tuple[str, ...] = ()
    called_good: np.ndarray | None = None  # (n,) bool: the scored verdicts
    fits: tuple = ()  # (n,) the CTF fits (CtfFit, or None where the fit failed)


@dataclass(frozen=True)
class DomainFallback:
    """The model a session is assessed again with when the first rejects almost all of it."""

    params: assess_micrographs.MicrographAssessParams
    load_model: Callable[[], object]


def load_labelled_set(path: str | Path) -> list[LabelledMicrograph]:
    """Read a labelled set: a simulated screening folder, folders per label, or a labels CSV.

    Folders per label: ``path/good/*.mrc`` and ``path/bad/*.mrc``, optionally sorted further
    into ``path/bad/<reason>/`` (a reason of ``MICROGRAPH_REASONS``); pixel sizes come from the
    file headers.
    """
    path = Path(path)
    if path.is_dir() and ((path / "good").is_dir() or (path / "bad").is_dir()):
        return _folder_set(path)
    if path.is_dir():
        return _simulated_set(path)
    if path.suffix.lower() in (".csv", ".tsv", ".txt") and path.exists():
        return _csv_set(path)
    raise ScreenError(
        f"{path}: expected a simulated screening folder (screen simulate output) or a CSV of "
        "path,label[,reason][,pixel_size_A]"
    )


def _folder_set(folder: Path) -> list[LabelledMicrograph]:
    items, problems = [], []
    for label in ("good", "bad"):
        root = folder / label
        if not root.is_dir():
            continue
        for image_path in sorted(
            p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
        ):
            parts = image_path.relative_to(root).parts
            reason = "good" if label == "good" else ""
            if label == "bad" and len(parts) > 1:
                reason = parts[0].lower()
                if reason not in MICROGRAPH_REASONS:
                    problems.append(
                        f"{root / parts[0]}: {parts[0]!r} is not a bad reason "
                        f"({', '.join(MICROGRAPH_REASONS)})"
                    )
                    continue
            items.append(LabelledMicrograph(image_path, label, reason, Optics(0.0)))
    if problems:
        raise ScreenError("; ".join(sorted(set(problems))))
    if not items:
        raise ScreenError(f"{folder}: no {'/'.join(IMAGE_EXTENSIONS)} files under good/ or bad/")
    return items


def _simulated_set(folder: Path) -> list[LabelledMicrograph]:
    from screen.manifest import read_manifest

    manifest_path = folder / "manifest.csv"
    if not manifest_path.exists():
        raise ScreenError(f"{folder}: no manifest.csv; is this a `screen simulate` folder?")
    items = []
    for row in read_manifest(manifest_path).sessions:
        truth_path = folder / "sessions" / row.session / "ground_truth" / "micrographs.csv"
        if not truth_path.exists():
            raise ScreenError(f"{truth_path}: missing (no ground truth for {row.session})")
        truth = pd.read_csv(truth_path)
        optics = Optics(row.pixel_size_A, row.voltage_kV, row.cs_mm, row.amplitude_contrast)
        for record in truth.itertuples():
            items.append(
                LabelledMicrograph(
                    folder / "sessions" / row.session / record.path,
                    str(record.verdict),
                    str(record.reason),
                    optics,
                    row.session,
                )
            )
    return items


def _csv_set(path: Path) -> list[LabelledMicrograph]:
    if path.stat().st_size == 0:
        raise ScreenError(
            f"{path}: the file is empty (expected a header path,label[,reason][,pixel_size_A])"
        )
    try:
        table = pd.read_csv(path, sep=None, engine="python", dtype=str).fillna("")
    except (OSError, ValueError, csv.Error) as error:  # pandas' errors are ValueErrors
        raise ScreenError(f"{path}: not a readable CSV table ({error})") from None
    table.columns = [c.strip().lower() for c in table.columns]
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise ScreenError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    items, problems = [], []
    for line, record in enumerate(table.to_dict("records"), start=2):
        label = record["label"].strip().lower()
        if label not in ("good", "bad"):
            problems.append(f"line {line}: label {record['label']!r} is not good or bad")
            continue
        image_path = Path(record["path"].strip())
        image_path = image_path if image_path.is_absolute() else path.parent / image_path
        pixel_text = record.get("pixel_size_a", "").strip()
        try:
            pixel_size_A = float(pixel_text) if pixel_text else None
        except ValueError:
            problems.append(f"line {line}: pixel_size_A {pixel_text!r} is not a number")
            continue
        if pixel_size_A is not None and not 0.0 < pixel_size_A < math.inf:
            problems.append(
                f"line {line}: pixel_size_A {pixel_text!r} must be a positive number of Å"
            )
            continue
        reason = record.get("reason", "").strip().lower() or ("good" if label == "good" else "")
        session = record.get("session", "").strip()
        items.append(
            LabelledMicrograph(image_path, label, reason, Optics(pixel_size_A or 0.0), session)
        )
    if problems:
        raise ScreenError(f"{path}: " + "; ".join(problems))
    if not items:
        raise ScreenError(f"{path}: no micrographs listed (only a header)")
    return items


def _read_labelled(item: LabelledMicrograph) -> tuple[LabelledMicrograph, np.ndarray]:
    """The summed image of a labelled micrograph and the item with its pixel size filled in."""
    image = read_image(item.path)
    pixel_size_A = item.optics.pixel_size_A or image.pixel_size_A
    if not pixel_size_A:
        raise ValueError("no pixel size (header or pixel_size_A column)")
    optics = replace(item.optics, pixel_size_A=pixel_size_A)
    summed = summed_frames(image.data)
    return replace(item, optics=optics, frame_px=tuple(summed.shape[-2:])), summed


def _assess_all(items, params, model, ctf_search, progress):
    """Read, assess and (with ``ctf_search``) CTF-fit every item in chunks; unreadable ones out."""
    kept, verdicts, fits, unreadable = [], [], [], []
    for start in range(0, len(items), CHUNK):
        chunk, images = [], []
        for item in items[start : start + CHUNK]:
            try:
                read, image = _read_labelled(item)
            except Exception as exc:
                unreadable.append(f"{item.path}: {type(exc).__name__}: {exc}")
                continue
            chunk.append(read)
            images.append(image)
        if chunk:
            verdicts += assess_micrographs.assess_micrographs(
                images,
                [c.optics.pixel_size_A for c in chunk],
                params,
                model,
                lossy=[is_lossy_export(c.path) for c in chunk],
            )
            for item, image in zip(chunk, images, strict=True):
                if ctf_search is None:
                    continue
                try:
                    fits.append(ctf.estimate_ctf(image, item.optics, ctf_search))
                except Exception:
                    fits.append(None)
            kept += chunk
        if progress is not None:
            progress(min(start + CHUNK, len(items)), len(items))
    return kept, verdicts, fits, unreadable


def acquisition_sessions(items: list[LabelledMicrograph]) -> list[LabelledMicrograph]:
    """A set that names no session, cut into one session per pixel size and frame shape.

    Every session check (the domain check, the CTF fits' pattern and soundness, drift, empty
    fields, thick ice by grey level) compares a micrograph with the others of its session, as
    `screen run` does with a manifest row's micrographs. A labels CSV without a ``session``
    column, or folders per label, may hold micrographs of several datasets; judged as one
    session, a good micrograph of one dataset would be compared with another's CTF fits,
    spectra and particle densities (a dataset whose fits follow no ring, among others whose fits
    are sound, would be called bad CTF). One session is one detector and one magnification: the
    same pixel size (to 3 significant digits) and the same frame shape. Where all share them,
    or where any item names a session, the items are returned unchanged.
    Sessions are named ``"<pixel size> Å/px, <columns> x <rows> px"``.
    """
    if any(item.session for item in items):
        return items
    names = [
        f"{item.optics.pixel_size_A:.3g} Å/px, "
        + (f"{item.frame_px[1]} x {item.frame_px[0]} px" if item.frame_px else "frame unknown")
        for item in items
    ]
    if len(set(names)) < 2:
        return items
    return [replace(item, session=name) for item, name in zip(items, names, strict=True)]


def _assess_again(
    kept: list[LabelledMicrograph], rows: list[int], fallback: DomainFallback
) -> list[MicrographVerdict]:
    """``fallback``'s verdicts on the micrographs ``kept[i]`` for ``i`` in ``rows``, in order."""
    again, verdicts, _, lost = _assess_all(
        [kept[i] for i in rows], fallback.params, fallback.load_model(), None, None
    )
    if lost or len(again) != len(rows):  # the files changed under us
        raise ScreenError("micrographs became unreadable: " + "; ".join(lost))
    return verdicts


def evaluate_micrographs(
    items: list[LabelledMicrograph],
    params: assess_micrographs.MicrographAssessParams,
    model,
    ctf_search: ctf.CtfSearch,
    progress=None,
    fallback: DomainFallback | None = None,
) -> MicrographEvaluation:
    """Assess and CTF-fit every micrograph (streamed in chunks), then score both methods.

    Unreadable micrographs are left out of the metrics and listed in ``unreadable``. Each
    session gets `screen run`'s domain check; with ``fallback``, a session the model rejects
    almost entirely is assessed again with ``fallback``'s model and those verdicts are scored,
    and so is one the second opinion disagrees with (`assess_micrographs.second_opinion_warning`);
    elsewhere the micrographs the model alone rejects are kept where ``fallback``'s is confident
    (`assess_micrographs.kept_by_second_opinion`).
    """
    kept, verdicts, fits, unreadable = _assess_all(items, params, model, ctf_search, progress)
    if not kept:
        raise ScreenError("no micrograph of the labelled set could be read")
    made: tuple[str, ...] = ()
    if not any(item.session for item in kept):
        kept = acquisition_sessions(kept)
        made = tuple(dict.fromkeys(item.session for item in kept if item.session))
    warnings, notes, patterns = [], [], []
    for session in dict.fromkeys(item.session for item in kept):  # as `screen run` does
        rows = [i for i, item in enumerate(kept) if item.session == session]
        marked, pattern = ctf.without_fixed_pattern([fits[i] for i in rows], ctf_search)
        for i, fit in zip(rows, marked, strict=True):
            fits[i] = fit
        if pattern is not None:
            name = f"session {session}" if session else "the set (one session)"
            patterns.append(f"{name}: {pattern.warning()}")
    for session in dict.fromkeys(item.session for item in kept):
        rows = [i for i, item in enumerate(kept) if item.session == session]
        check = assess_micrographs.session_domain_check(
            [verdicts[i] for i in rows], [fits[i] for i in rows], params
        )
        name = f"session {session}" if session else "the set (one session)"
        if check.warning is None:
            first = [verdicts[i] for i in rows]
            rejected = any(v.reason_scores and v.p_good < params.threshold for v in first)
            if fallback is None or fallback.params.model == params.model or not rejected:
                continue  # nothing the second opinion could keep: not read and assessed again
            again_verdicts = _assess_again(kept, rows, fallback)
            warning = (
                assess_micrographs.second_opinion_warning(
                    [verdicts[i] for i in rows], again_verdicts, params
                )
                if assess_micrographs.needs_second_opinion([verdicts[i] for i in rows], params)
                else None
            )
            if warning is not None:
                for i, verdict in zip(rows, again_verdicts, strict=True):
                    verdicts[i] = verdict
                warnings.append(f"{name}: {warning}")
                continue
            # As `screen run`: what the first model alone rejects, kept where the randomised
            # model is confident that it is good.
            first_kept, n_kept = assess_micrographs.kept_by_second_opinion(
                [verdicts[i] for i in rows], again_verdicts, params
            )
            for i, verdict in zip(rows, first_kept, strict=True):
                verdicts[i] = verdict
            if n_kept:
                notes.append(f"{name}: {assess_micrographs.second_opinion_note(n_kept, params)}")
            continue
        line = f"{name}: {check.warning}"
        if fallback is not None and fallback.params.model != params.model:
            again_verdicts = _assess_again(kept, rows, fallback)
            for i, verdict in zip(rows, again_verdicts, strict=True):
                verdicts[i] = verdict
            n_kept = sum(v.verdict == "good" for v in again_verdicts)
            line += (
                f" Assessed again with {fallback.params.model}: {n_kept} of {len(rows)} kept; "
                "its verdicts are scored."
            )
        warnings.append(line)
    session_reason_warnings = []
    checked_verdicts = [
        assess_micrographs.check_ctf(verdict, fit, params, item.optics.voltage_kV)
        for item, verdict, fit in zip(kept, verdicts, fits, strict=True)
    ]
    astigmatic = [
        c.verdict == "bad" and v.verdict == "good"
        for v, c in zip(verdicts, checked_verdicts, strict=True)
    ]
    for session in dict.fromkeys(item.session for item in kept):  # as `screen run` does
        rows = [i for i, item in enumerate(kept) if item.session == session]
        session_fits, voltage_kV = [fits[i] for i in rows], kept[rows[0]].optics.voltage_kV
        sound = assess_micrographs.ringless_in_sound_session(
            assess_micrographs.sound_ctf_in_session(
                [checked_verdicts[i] for i in rows], session_fits, params, voltage_kV
            ),
            session_fits,
            params,
            voltage_kV,
        )
        wide = assess_micrographs.session_wide_reasons(sound, params)
        if wide.warning:
            name = f"session {session}" if session else "the set (one session)"
            session_reason_warnings.append(f"{name}: {wide.warning}")
        session_verdicts = assess_micrographs.measured_session_checks(wide.verdicts, params)
        for i, verdict in zip(rows, session_verdicts, strict=True):
            checked_verdicts[i] = verdict
    p_good, reasons, called_good, by_astigmatism, by_sound_ctf = [], [], [], [], []
    by_drift, by_empty, by_ringless = [], [], []
    for verdict, checked, astigmatism in zip(verdicts, checked_verdicts, astigmatic, strict=True):
        p_good.append(verdict.p_good)
        called_good.append(checked.verdict == "good")
        by_astigmatism.append(astigmatism and checked.verdict == "bad")
        by_ringless.append(
            checked.verdict == "bad"
            and verdict.verdict == "good"
            and checked.reason == "bad_ctf"
            and not astigmatism
        )
        by_sound_ctf.append(checked.verdict == "good" and verdict.verdict == "bad")
        by_drift.append(
            checked.verdict == "bad" and verdict.verdict == "good" and checked.reason == "drift"
        )
        by_empty.append(
            checked.verdict == "bad" and verdict.verdict == "good" and checked.reason == "empty"
        )
        reasons.append(checked.reason or "good")
    resolution = [fit.fit_resolution_A if fit is not None else float("nan") for fit in fits]
    truth = np.array([item.label == "good" for item in kept])
    scores = np.asarray(p_good, float)
    called = np.asarray(called_good, bool)
    fit_resolution = np.asarray(resolution, float)
    cutoff = best_resolution_cutoff(fit_resolution, truth)
    baseline_called = np.isfinite(fit_resolution) & (fit_resolution <= cutoff)
    return MicrographEvaluation(
        items=tuple(kept),
        p_good=scores,
        predicted_reasons=tuple(reasons),
        fit_resolution_A=fit_resolution,
        threshold=params.threshold,
        model=binary_metrics(truth, called),
        cutoff_A=cutoff,
        baseline=binary_metrics(truth, baseline_called),
        reasons=reason_metrics([i.reason for i in kept], reasons, called),
        unreadable=tuple(unreadable),
        max_astigmatism_A=params.max_astigmatism_A,
        bad_by_astigmatism=np.asarray(by_astigmatism, bool),
        kept_by_sound_ctf=np.asarray(by_sound_ctf, bool),
        bad_by_drift_check=np.asarray(by_drift, bool),
        bad_by_empty_check=np.asarray(by_empty, bool),
        bad_by_ringless_check=np.asarray(by_ringless, bool),
        domain_warnings=tuple(warnings),
        session_reason_warnings=tuple(session_reason_warnings),
        second_opinion_notes=tuple(notes),
        ctf_pattern_notes=tuple(patterns),
        acquisition_session_names=made,
        pixel_size_doubts=tuple(
            f"{item.path.name}: {doubt}"
            for item in kept
            if item.frame_px
            and (doubt := doubtful_pixel_size(item.frame_px, item.optics.pixel_size_A))
        ),
        called_good=called,
        fits=tuple(fits),
    )


def _table_reason(reason: str) -> str:
    """A bad verdict's reason for the table: "unassessable" where it has none.

    An image the network could not judge is bad without a reason (counted as "good" in the
    reason metrics).
    """
    return "unassessable" if reason == "good" else reason


def verdict_table(result: MicrographEvaluation) -> pd.DataFrame:
    """One row per scored micrograph: its label, the verdict scored, P(good) and the CTF fit.

    Columns: ``path``, ``session``, ``label``, ``true_reason`` (empty when unknown),
    ``verdict``, ``reason`` (the verdict's; empty for good), ``p_good``, ``bad_by_astigmatism``,
    ``bad_by_ringless_check``, ``bad_by_drift_check``, ``bad_by_empty_check``,
    ``ctf_fit_resolution_A``, ``astigmatism_A`` and ``astigmatism_spread`` (NaN without a fit).
    """
    rows = []
    for i, item in enumerate(result.items):
        fit, good = result.fits[i], bool(result.called_good[i])
        rows.append(
            {
                "path": str(item.path),
                "session": item.session,
                "label": item.label,
                "true_reason": "" if item.reason == "good" else item.reason,
                "verdict": "good" if good else "bad",
                "reason": "" if good else _table_reason(result.predicted_reasons[i]),
                "p_good": float(result.p_good[i]),
                "bad_by_astigmatism": bool(result.bad_by_astigmatism[i]),
                **{
                    f"bad_by_{check}_check": bool(flagged is not None and flagged[i])
                    for check, flagged in (
                        ("ringless", result.bad_by_ringless_check),
                        ("drift", result.bad_by_drift_check),
                        ("empty", result.bad_by_empty_check),
                    )
                },
                "ctf_fit_resolution_A": float(result.fit_resolution_A[i]),
                "astigmatism_A": abs(fit.defocus_u_A - fit.defocus_v_A) if fit else float("nan"),
                "astigmatism_spread": fit.astigmatism_spread if fit else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def format_evaluation(result: MicrographEvaluation) -> str:
    """The metrics as a plain-text report (markdown tables)."""
    model, base = result.model, result.baseline
    check = ""
    if result.max_astigmatism_A > 0:
        check = (
            f" or fitted astigmatism > {result.max_astigmatism_A:.0f} Å (where the fit's rings "
            "reach far enough to measure it and both half fields repeat it)"
        )
    rows = [
        f"{model.n} micrographs ({model.n_good} good); model verdict bad when "
        f"P(good) < {result.threshold:g}{check}; baseline bad when CTF fit resolution is worse "
        f"than {result.cutoff_A:.2f} Å (the best cutoff on this set)",
    ]
    if result.pixel_size_doubts:
        rows.append(
            f"pixel size: {len(result.pixel_size_doubts)} micrograph(s) smaller than their pixel "
            "size allows; give the right one in a pixel_size_A column. "
            + "; ".join(result.pixel_size_doubts[:3])
            + (" ..." if len(result.pixel_size_doubts) > 3 else "")
        )
    if result.acquisition_session_names:
        rows.append(
            "sessions: none named, so one per pixel size and frame shape "
            f"({len(result.acquisition_session_names)}: "
            + "; ".join(result.acquisition_session_names)
            + "); a session column names them"
        )
    if result.domain_warnings:
        rows += [f"domain check: {line}" for line in result.domain_warnings]
    rows += [f"second opinion: {line}" for line in result.second_opinion_notes]
    rows += [f"CTF pattern: {line}" for line in result.ctf_pattern_notes]
    rows += [f"session-wide reason: {line}" for line in result.session_reason_warnings]
    if result.bad_by_astigmatism is not None and result.bad_by_astigmatism.any():
        truth = np.array([item.label == "good" for item in result.items])
        alone = binary_metrics(truth, result.p_good >= result.threshold)
        flagged = result.bad_by_astigmatism
        rows.append(
            f"astigmatism check: {int(flagged.sum())} micrographs called bad that P(good) kept "
            f"({int((flagged & ~truth).sum())} truly bad); P(good) alone: accuracy "
            f"{alone.accuracy:.3f}, good called bad {alone.good_called_bad:.3f}"
        )
    for check, reason, flagged, why in (
        (
            "ring-less",
            "bad CTF",
            result.bad_by_ringless_check,
            "their CTF fits following no Thon ring where their session's fits are sound",
        ),
        (
            "drift",
            "drift",
            result.bad_by_drift_check,
            "their spectra having lost one direction far more than their session's others",
        ),
        (
            "empty",
            "empty",
            result.bad_by_empty_check,
            "with hardly any of the strong dark blobs their session's others have",
        ),
    ):
        if flagged is not None and flagged.any():
            truth = np.array([item.label == "good" for item in result.items])
            rows.append(
                f"{check} check: {int(flagged.sum())} micrographs kept by P(good) called "
                f"{reason}, {why} ({int((flagged & ~truth).sum())} truly bad)"
            )
    if result.kept_by_sound_ctf is not None and result.kept_by_sound_ctf.any():
        truth = np.array([item.label == "good" for item in result.items])
        kept = result.kept_by_sound_ctf
        rows.append(
            f"sound CTF: {int(kept.sum())} micrographs the network called bad_ctf kept, their CTF "
            f"fits reaching {assess_micrographs.SOUND_CTF_FIT_A:g} Å or their session's typical "
            f"fit ({int((kept & truth).sum())} truly good)"
        )
    rows += [
        "",
        "| metric | model | CTF cutoff |",
        "| --- | --- | --- |",
    ]
    for name, key in (
        ("accuracy", "accuracy"),
        ("good precision", "good_precision"),
        ("good recall", "good_recall"),
        ("bad precision", "bad_precision"),
        ("bad recall", "bad_recall"),
        ("good called bad", "good_called_bad"),
    ):
        rows.append(f"| {name} | {getattr(model, key):.3f} | {getattr(base, key):.3f} |")
    rows += ["", "| confusion (truth \\ called) | good | bad |", "| --- | --- | --- |"]
    for label, (good, bad) in zip(("good", "bad"), model.confusion, strict=True):
        rows.append(f"| {label} | {good} | {bad} |")
    if result.reasons:
        rows += [
            "",
            "| true reason | n | called bad | reason right |",
            "| --- | --- | --- | --- |",
        ]
        for reason, m in result.reasons.items():
            rows.append(
                f"| {reason or 'unknown'} | {m['n']} | {m['called_bad']:.3f} | "
                f"{m['reason_right']:.3f} |"
            )
        known = [m for reason, m in result.reasons.items() if reason]
        right = sum(m["n"] * m["reason_right"] for m in known)
        n_bad = sum(m["n"] for m in known)
        n_called = sum(m["n"] * m["called_bad"] for m in known)
        if n_bad:
            rows += [
                "",
                f"reason right: {right / n_bad:.3f} of the bad micrographs with a known reason "
                f"({right:.0f}/{n_bad}), {right / max(n_called, 1):.3f} of those called bad",
            ]
    if result.unreadable:
        rows += ["", f"{len(result.unreadable)} unreadable (left out):"]
        rows += [f"- {line}" for line in result.unreadable]
    return "\n".join(rows)


def resolution_figure(result: MicrographEvaluation, path: Path) -> None:
    """Histogram of CTF fit resolution coloured by true verdict (Li et al. 2020, Fig. 3C)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from screen.io.atomic import atomic_path

    truth = np.array([item.label == "good" for item in result.items])
    finite = np.isfinite(result.fit_resolution_A)
    values = result.fit_resolution_A[finite]
    bins = np.linspace(values.min(), values.max(), 30) if values.size else 10
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(result.fit_resolution_A[finite & truth], bins=bins, alpha=0.7, label="good (truth)")
    ax.hist(result.fit_resolution_A[finite & ~truth], bins=bins, alpha=0.7, label="bad (truth)")
    if np.isfinite(result.cutoff_A):
        ax.axvline(result.cutoff_A, color="k", linestyle="--", label="best cutoff")
    ax.set_xlabel("CTF fit resolution (Å)")
    ax.set_ylabel("micrographs")
    ax.legend()
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
