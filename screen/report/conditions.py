"""Which recorded sessions are the same screening condition, across runs and weeks.

A condition is what the manifest's condition-metadata columns say (grid type, additive, partner
concentration...), not the session's name: ``apo_quantifoil`` one week and ``apo_qf_wk2`` the next
are one condition when their columns agree. `condition_of` reads a session's condition:

- every metadata column takes part except notes-like ones (`NOT_CONDITION`: notes, comments,
  operator, date...), which differ from week to week without changing the condition;
- column names are compared with case, spaces and dashes ignored, and known synonyms are one
  column (`COLUMN_ALIASES`: ``Grid``, ``grid_type`` and ``support`` are all "grid type");
- values are compared with case and runs of spaces ignored; an empty cell is no value;
- a session with no condition column at all is matched by its session name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

COLUMN_ALIASES: Mapping[str, tuple[str, ...]] = {
    "grid type": ("grid", "grid_type", "grid type", "support"),
    "additive": ("additive", "additives", "detergent"),
}
"""Manifest column names that mean the same condition column (also the dashboard's trend plots)."""

NOT_CONDITION: tuple[str, ...] = (
    "notes",
    "note",
    "comment",
    "comments",
    "description",
    "remarks",
    "operator",
    "user",
    "date",
    "time",
    "box",
    "grid_box",
    "slot",
    "position",
)
"""Metadata columns that describe a session but not its condition (not compared)."""


def canonical(name: str) -> str:
    """A column name with case, surrounding spaces, inner spaces and dashes ignored.

    Examples
    --------
    >>> canonical(" Grid-Type ")
    'grid_type'
    """
    return str(name).strip().casefold().replace(" ", "_").replace("-", "_")


def column_name(name: str) -> str:
    """The name a metadata column is compared under: its alias group's, else its canonical name.

    Examples
    --------
    >>> column_name("Support"), column_name("Partner conc")
    ('grid type', 'partner_conc')
    """
    key = canonical(name)
    for title, names in COLUMN_ALIASES.items():
        if key in (canonical(n) for n in names):
            return title
    return key


def normalised(value: str) -> str:
    """A value as conditions compare it: case and runs of spaces ignored ('' for no value).

    Examples
    --------
    >>> normalised(" Quantifoil  R1.2/1.3 ")
    'quantifoil r1.2/1.3'
    """
    return " ".join(str(value).split()).casefold()


def metadata_value(metadata: Mapping, names: Sequence[str]) -> str | None:
    """The first of ``names`` in ``metadata`` (case, spaces and dashes ignored), else None.

    Examples
    --------
    >>> metadata_value({"Grid-Type": "lacey"}, ("grid", "grid_type"))
    'lacey'
    """
    wanted = [canonical(n) for n in names]
    for key, value in metadata.items():
        if canonical(key) in wanted and str(value).strip():
            return str(value)
    return None


@dataclass(frozen=True)
class Condition:
    """A screening condition as sessions are matched on it.

    ``key`` holds (column, value) pairs (the `COLUMN_ALIASES` columns first, then the others by
    name), compared as `condition_of` says;
    ``label`` the same columns with the values as written (of the session it was read from);
    ``by_name`` is True when the session had no condition column and ``key`` is its name.
    """

    key: tuple[tuple[str, str], ...]
    label: tuple[tuple[str, str], ...] = field(compare=False)
    by_name: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the condition is matched on (("session",) when by name)."""
        return tuple(column for column, _ in self.key)

    def short(self) -> str:
        """The values alone: ``Quantifoil R1.2/1.3 / none`` (a plot legend)."""
        return " / ".join(value for _, value in self.label)

    def text(self) -> str:
        """One line: ``grid type: Quantifoil R1.2/1.3 · additive: none``."""
        return " · ".join(f"{column}: {value}" for column, value in self.label)


def condition_of(record: Mapping) -> Condition:
    """The condition of a recorded session (its ``metadata``, else its ``session`` name).

    Examples
    --------
    >>> a = condition_of({"session": "apo_qf", "metadata": {"Grid": "Quantifoil ", "notes": "x"}})
    >>> b = condition_of({"session": "apo_wk2", "metadata": {"support": "quantifoil"}})
    >>> a == b, a.text()
    (True, 'grid type: Quantifoil')
    """
    pairs: dict[str, tuple[str, str]] = {}
    for name, value in (record.get("metadata") or {}).items():
        column = column_name(name)
        written = " ".join(str(value).split())
        if column in NOT_CONDITION or not written or column in pairs:
            continue
        pairs[column] = (normalised(written), written)
    if not pairs:
        name = str(record["session"])
        return Condition(key=(("session", name),), label=(("session", name),), by_name=True)
    known = list(COLUMN_ALIASES)
    columns = sorted(pairs, key=lambda c: (known.index(c), "") if c in known else (len(known), c))
    return Condition(
        key=tuple((c, pairs[c][0]) for c in columns),
        label=tuple((c, pairs[c][1]) for c in columns),
    )


def group_by_condition(records: Sequence[Mapping]) -> dict[Condition, list[Mapping]]:
    """Records grouped by `condition_of`, each group oldest run first (by ``run_date``).

    The key of each group is the condition as read from its newest session (its ``label``
    shows the values as last written).
    """
    groups: dict[Condition, list[Mapping]] = {}
    for record in records:
        groups.setdefault(condition_of(record), []).append(record)
    out = {}
    for group in groups.values():
        group.sort(key=lambda r: (str(r["run_date"]), str(r["session"])))
        out[condition_of(group[-1])] = group
    return out
