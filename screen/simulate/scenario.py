"""Scenario files (TOML) for ``screen simulate``: a preset to start from, and overrides.

Example::

    preset = "prex1-small"          # optional starting point
    seed = 3
    frame_px = [512, 512]           # (ny, nx)
    pixel_size_A = 2.5
    micrographs_per_session = 8     # applied to every session

    [[sessions]]                    # optional: replaces the preset's sessions
    name = "apo"
    n_micrographs = 10
    bad_mix = { empty = 0.1, carbon = 0.2 }
    metadata = { grid = "Quantifoil R1.2/1.3" }
      [[sessions.species]]
      fraction = 1.0
      structure = { name = "my-protein", diameter_A = 140, mass_kDa = 186, symmetry = "C1" }
      orientation = { preferred_fraction = 0.8, preferred_views = [[90, 0]], spread_deg = 12 }
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path

from screen.errors import ScreenError
from screen.manifest import session_name_problem
from screen.simulate.presets import PRESETS
from screen.simulate.spec import (
    AGGREGATE_SHAPES,
    BAD_REASONS,
    CONTAMINATION_SHAPES,
    ScreenSpec,
    SessionSpec,
)
from screen.simulate.structures import STRUCTURE_LAYOUTS, parse_symmetry


class ScenarioError(ScreenError):
    """A scenario file or preset override is invalid; the message lists every problem."""


def load_scenario(path: Path) -> ScreenSpec:
    """Read a TOML scenario file into a validated ``ScreenSpec``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ScenarioError(f"{path}: scenario file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    return scenario_from_dict(data, source=str(path))


def scenario_from_dict(data: dict, source: str = "scenario") -> ScreenSpec:
    """Build a ``ScreenSpec`` from plain data (as read from TOML); raise ``ScenarioError``."""
    data = dict(data)
    problems: list[str] = []
    preset = data.pop("preset", None)
    per_session = data.pop("micrographs_per_session", None)
    if preset is not None and preset not in PRESETS:
        raise ScenarioError(f"{source}: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    base = PRESETS[preset]() if preset else ScreenSpec(sessions=())
    try:
        spec = _build(ScreenSpec, {**_shallow(base), **data}, "", problems)
    except _Invalid:
        spec = None
    if spec is not None and per_session is not None:
        spec = with_micrographs_per_session(spec, int(per_session))
    if spec is not None:
        problems += validate_screen_spec(spec)
    if problems:
        raise ScenarioError(f"{source}: " + "; ".join(problems))
    return spec


def with_micrographs_per_session(spec: ScreenSpec, n: int) -> ScreenSpec:
    """The same screening with ``n`` micrographs in every session."""
    return dataclasses.replace(
        spec, sessions=tuple(dataclasses.replace(s, n_micrographs=n) for s in spec.sessions)
    )


def validate_screen_spec(spec: ScreenSpec) -> list[str]:
    """Every problem of a spec, as plain sentences (empty when valid)."""
    problems = []
    if not spec.sessions:
        problems.append("no sessions (give a preset or [[sessions]])")
    if not 0.3 <= spec.pixel_size_A <= 20:
        problems.append(f"pixel_size_A {spec.pixel_size_A} is not in 0.3–20 Å")
    if min(spec.frame_px) < 64 or len(spec.frame_px) != 2:
        problems.append(f"frame_px {spec.frame_px} must be two sizes of at least 64 pixels")
    if not 60 <= spec.voltage_kV <= 400:
        problems.append(f"voltage_kV {spec.voltage_kV} is not in 60–400 kV")
    if spec.n_frames < 1:
        problems.append(f"n_frames {spec.n_frames} must be at least 1")
    extent_A = min(spec.frame_px) * spec.pixel_size_A
    for session in spec.sessions:
        largest = max((s.structure.diameter_A for s in session.species), default=0.0)
        if extent_A < 3 * largest:
            problems.append(
                f"session {session.name!r}: the frame ({extent_A:.0f} Å across) must be at least "
                f"3 particle diameters ({3 * largest:.0f} Å): use a larger frame or pixel size"
            )
    names = [s.name for s in spec.sessions]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"session name {name!r} is used twice")
    for session in spec.sessions:
        problems += [f"session {session.name!r}: {p}" for p in _session_problems(session)]
    return problems


def _session_problems(session: SessionSpec) -> list[str]:
    problems = []
    name_problem = session_name_problem(session.name)
    if name_problem:
        problems.append(name_problem)
    if session.n_micrographs < 1:
        problems.append("n_micrographs must be at least 1")
    unknown = set(session.bad_mix) - set(BAD_REASONS)
    if unknown:
        problems.append(
            f"bad_mix has unknown reasons {sorted(unknown)}; known: {list(BAD_REASONS)}"
        )
    if sum(session.bad_mix.values()) > 1.0 + 1e-9 or min(session.bad_mix.values(), default=0) < 0:
        problems.append("bad_mix shares must be >= 0 and sum to at most 1")
    if not session.species or sum(s.fraction for s in session.species) <= 0:
        problems.append("needs at least one species with a positive fraction")
    for species in session.species:
        structure = species.structure
        try:
            parse_symmetry(structure.symmetry)
        except ValueError as exc:
            problems.append(str(exc))
        if not 20 <= structure.diameter_A <= 1500:
            problems.append(f"{structure.name}: diameter_A {structure.diameter_A} not in 20–1500 Å")
        if structure.mass_kDa <= 0:
            problems.append(f"{structure.name}: mass_kDa must be positive")
        if structure.layout not in STRUCTURE_LAYOUTS:
            problems.append(
                f"{structure.name}: layout {structure.layout!r} is not one of "
                + ", ".join(STRUCTURE_LAYOUTS)
            )
    if session.contamination_shapes not in CONTAMINATION_SHAPES:
        problems.append(
            f"contamination_shapes {session.contamination_shapes!r} is not one of "
            + ", ".join(CONTAMINATION_SHAPES)
        )
    if session.aggregate_shapes not in AGGREGATE_SHAPES:
        problems.append(
            f"aggregate_shapes {session.aggregate_shapes!r} is not one of "
            + ", ".join(AGGREGATE_SHAPES)
        )
    if not 0.3 <= session.particle_spacing <= 2.0:
        problems.append(
            f"particle_spacing {session.particle_spacing:g} must be 0.3-2 particle diameters"
        )
    low, high = session.particle_snr
    if not 0 < low <= high:
        problems.append(f"particle_snr {session.particle_snr} must be 0 < low <= high")
    return problems


class _Invalid(Exception):
    pass


def _shallow(obj) -> dict:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _build(cls, data, where: str, problems: list[str]):
    """Convert plain data to dataclass ``cls``, recording unknown keys and wrong types."""
    if dataclasses.is_dataclass(data) and isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        problems.append(f"{where or 'top level'}: expected a table, got {data!r}")
        raise _Invalid
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in set(data) - names:
        problems.append(f"{where}{key}: unknown setting; known: {', '.join(sorted(names))}")
    kwargs = {
        key: _convert(hints[key], value, f"{where}{key}", problems)
        for key, value in data.items()
        if key in names
    }
    try:
        return cls(**kwargs)
    except TypeError as exc:
        problems.append(f"{where or 'top level'}: {exc}")
        raise _Invalid from exc


def _convert(hint, value, where: str, problems: list[str]):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, where, problems)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{where}.", problems)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            problems.append(f"{where}: expected a list, got {value!r}")
            raise _Invalid
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(
                _convert(args[0], v, f"{where}[{i}]", problems) for i, v in enumerate(value)
            )
        if len(args) != len(value):
            problems.append(f"{where}: expected {len(args)} values, got {len(value)}")
            raise _Invalid
        return tuple(
            _convert(a, v, f"{where}[{i}]", problems)
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a table, got {value!r}")
            raise _Invalid
        return {str(k): _convert(args[1], v, f"{where}.{k}", problems) for k, v in value.items()}
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and isinstance(value, hint):
        return value
    if hint is str and isinstance(value, int | float):
        return str(value)
    problems.append(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    raise _Invalid
