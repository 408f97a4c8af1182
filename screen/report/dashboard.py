"""The dashboard: every recorded screening session compared across runs, as one HTML page.

Rendered from the results database alone (`screen.store.database.recorded_sessions`) through
``report_templates/dashboard.html.j2``: a row per session (run date, condition metadata, key
metrics, go / no-go, representative good classes, link to its report) in a table that sorts and
filters in the browser (a few lines of inline JavaScript), the conditions ranked across sessions,
and trend plots (good-particle fraction by grid type, by additive and over time) embedded as PNG
data URIs, so the page is one standalone file. `make_server` serves it on 127.0.0.1 with each
run's report beside it (``/runs/<run id>/report.html``), re-rendered when the database changed.
"""

from __future__ import annotations

import base64
import io
import statistics
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

import numpy as np

from screen.errors import ScreenError
from screen.report.conditions import (
    COLUMN_ALIASES,
    NOT_CONDITION,
    column_name,
    group_by_condition,
    metadata_value,
    normalised,
)
from screen.report.verdicts import decision
from screen.store.layout import RunLayout

TEMPLATE_NAME = "dashboard.html.j2"

GROUPS = COLUMN_ALIASES
"""Trend plots by condition metadata: the plot's name and the manifest columns it reads."""

N_THUMBNAIL_CLASSES = 3
PNG_METADATA = {"Software": None}  # same data, same bytes

ReportHref = Callable[[Mapping], str | None]
"""Where a row's report link points, from its record (None: no link)."""


def file_href(record: Mapping) -> str | None:
    """The run's report.html as a ``file://`` address, when it exists (the standalone page)."""
    report = RunLayout(Path(record["results_dir"])).report_html
    return report.as_uri() if report.is_file() else None


def served_href(record: Mapping) -> str | None:
    """The run's report as served by `make_server`."""
    return f"/runs/{int(record['run_id'])}/report.html" if file_href(record) else None


def _date(record: Mapping) -> datetime | None:
    try:
        return datetime.fromisoformat(str(record["run_date"]))
    except ValueError:
        return None


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata=PNG_METADATA, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def thumbnail(record: Mapping) -> str | None:
    """The session's most populated good class averages side by side (PNG data URI), if stored."""
    from screen.io.mrc import read_mrc

    top = (record.get("summary") or {}).get("top_good_classes") or []
    if not top:
        return None
    session = RunLayout(Path(record["results_dir"])).session(str(record["session"]))
    path = session.classes_dir(float(top[0]["mask_diameter_A"])) / "averages.mrcs"
    try:
        averages = read_mrc(path).data
    except Exception:  # results moved or removed: the row goes without a thumbnail
        return None
    tiles = []
    for entry in top[:N_THUMBNAIL_CLASSES]:
        index = int(entry["class_index"])
        if 0 <= index < len(averages):
            tile = np.asarray(averages[index], dtype=np.float32)
            spread = float(tile.max() - tile.min()) or 1.0
            tiles.append((tile - tile.min()) / spread)
    if not tiles:
        return None
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    plt.imsave(buffer, np.hstack(tiles), cmap="gray", format="png", metadata=PNG_METADATA)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _fmt(value, digits: int = 1, percent: bool = False) -> str:
    if value is None:
        return "—"
    return f"{float(value):.0%}" if percent else f"{float(value):,.{digits}f}"


def session_rows(records: Sequence[Mapping], report_href: ReportHref = file_href) -> list[dict]:
    """One display row per recorded session, newest run first.

    ``cells`` are display strings; ``sort`` holds the values the table sorts on (numbers where
    the column is numeric). A session with no good particles shows no best mask diameter, even
    when an older `screen` stored one.
    """
    rows = []
    for record in sorted(records, key=lambda r: (str(r["run_date"]), r["session"]), reverse=True):
        summary = record.get("summary") or {}
        go, why = decision(summary)
        ok = record["status"] == "ok"
        good = int(record.get("good_particles") or 0)
        rows.append(
            {
                "run_id": record["run_id"],
                "date": str(record["run_date"])[:16].replace("T", " "),
                "session": str(record["session"]),
                "metadata": {
                    column_name(k): str(v) for k, v in (record.get("metadata") or {}).items()
                },
                "micrographs": record.get("n_micrographs"),
                "good_micrograph_fraction": record.get("good_micrograph_fraction") if ok else None,
                "good_particles": good if ok else None,
                "good_particle_fraction": record.get("good_particle_fraction") if ok else None,
                "good_per_micrograph": record.get("good_particles_per_micrograph") if ok else None,
                "best_mask_A": record.get("best_mask_diameter_A") if ok and good else None,
                "decision": go,
                "why": why,
                "thumbnail": thumbnail(record) if ok else None,
                "report": report_href(record),
                "results_dir": str(record["results_dir"]),
            }
        )
    for row in rows:
        row["display"] = {
            "good_micrograph_fraction": _fmt(row["good_micrograph_fraction"], percent=True),
            "good_particle_fraction": _fmt(row["good_particle_fraction"], percent=True),
            "good_per_micrograph": _fmt(row["good_per_micrograph"]),
            "best_mask_A": _fmt(row["best_mask_A"], 0),
            "good_particles": _fmt(row["good_particles"], 0),
        }
    return rows


def condition_ranking(records: Sequence[Mapping]) -> list[dict]:
    """Conditions ranked across runs by mean good particles per micrograph.

    Sessions are grouped by their condition metadata (`screen.report.conditions`), so one
    condition under another session name in another week is one row. Each holds the condition
    (one line), the columns it was matched on, its sessions (name and run date, oldest first),
    the mean and the latest value, and the latest session's go / no-go and why.
    """
    ranking = []
    ok = [r for r in records if r["status"] == "ok"]
    for condition, group in group_by_condition(ok).items():
        values = [float(r.get("good_particles_per_micrograph") or 0.0) for r in group]
        go, why = decision(group[-1].get("summary") or {})
        ranking.append(
            {
                "condition": condition.text(),
                "matched_on": "session name" if condition.by_name else ", ".join(condition.columns),
                "sessions": [f"{r['session']} ({str(r['run_date'])[:10]})" for r in group],
                "n_sessions": len(group),
                "mean_good_per_micrograph": statistics.fmean(values),
                "latest_good_per_micrograph": values[-1],
                "decision": go,
                "why": why,
            }
        )
    ranking.sort(key=lambda c: (-c["mean_good_per_micrograph"], c["condition"]))
    for rank, condition in enumerate(ranking, start=1):
        condition["rank"] = rank
    return ranking


def fractions_by(records: Sequence[Mapping], names: Sequence[str]) -> dict[str, list[float]]:
    """Good-particle fractions of the sessions that ran, by one metadata column.

    ``names`` are the column's manifest names (`GROUPS`); values are compared as conditions
    compare them (`screen.report.conditions.normalised`), each shown as last written; sessions
    without the column are "(not given)". Sorted by value, each list oldest run first.
    """
    ok = sorted(
        (r for r in records if r["status"] == "ok"),
        key=lambda r: (str(r["run_date"]), str(r["session"])),
    )
    groups: dict[str, list[float]] = {}
    written: dict[str, str] = {}
    for record in ok:
        value = metadata_value(record.get("metadata") or {}, names) or "(not given)"
        key = normalised(value)
        groups.setdefault(key, []).append(float(record.get("good_particle_fraction") or 0))
        written[key] = " ".join(value.split())
    return {written[key]: groups[key] for key in sorted(groups)}


def trend_figures(records: Sequence[Mapping]) -> dict[str, str]:
    """PNG data URIs: good-particle fraction by each of `GROUPS` and over time per condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    for title, names in GROUPS.items():
        groups = fractions_by(records, names)
        if not groups:
            continue
        labels = list(groups)
        fig, ax = plt.subplots(figsize=(5.5, 0.9 + 0.45 * len(labels)))
        ax.barh(labels, [statistics.fmean(groups[k]) for k in labels], color="#90caf9")
        for y, label in enumerate(labels):
            values = groups[label]
            ax.plot(values, [y] * len(values), "o", color="#0d47a1", markersize=4)
        ax.set_xlim(0, 1)
        ax.set_xlabel("good-particle fraction (bar: mean; dots: sessions)")
        ax.set_title(f"By {title}", fontsize=10)
        ax.invert_yaxis()
        figures[f"by {title}"] = _png(fig)
        plt.close(fig)
    dated = [r for r in records if r["status"] == "ok" and _date(r) is not None]
    if dated:
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
        groups = group_by_condition(dated)
        for condition in sorted(groups, key=lambda c: c.short()):
            points = sorted(
                (_date(r), float(r.get("good_particle_fraction") or 0)) for r in groups[condition]
            )
            x, y = [p[0] for p in points], [p[1] for p in points]
            ax.plot(x, y, "o-", label=condition.short(), markersize=4)
        ax.set_ylim(0, 1)
        ax.set_ylabel("good-particle fraction")
        ax.set_title("Over time, per condition", fontsize=10)
        ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.autofmt_xdate()
        figures["over time"] = _png(fig)
        plt.close(fig)
    return figures


def render_dashboard(records: Sequence[Mapping], report_href: ReportHref = file_href) -> str:
    """The dashboard's HTML for recorded sessions (see the module docstring)."""
    from screen.report.render import render_html

    rows = session_rows(records, report_href)
    headers: dict[str, str] = {}  # a column as sessions are matched on it -> as first written
    for record in sorted(records, key=lambda r: str(r["run_date"])):
        for name in record.get("metadata") or {}:
            column = column_name(name)
            headers.setdefault(column, column if column in GROUPS else str(name))
    context = {
        "title": "Screening dashboard",
        "n_sessions": len(rows),
        "n_runs": len({row["run_id"] for row in rows}),
        "metadata_headers": headers,
        "rows": rows,
        "ranking": condition_ranking(records),
        "not_condition": ", ".join(NOT_CONDITION),
        "figures": trend_figures(records),
    }
    return render_html(context, template=TEMPLATE_NAME)


def write_dashboard(records: Sequence[Mapping], out: Path) -> Path:
    """Write the standalone dashboard to ``out`` (atomically); return its path."""
    from screen.io.atomic import atomic_path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(render_dashboard(records), encoding="utf-8")
    return out


CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".pdf": "application/pdf",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}


class RecordSource(Protocol):
    """Where a served dashboard reads its sessions (`screen.store.database.StoreRecords`)."""

    def stamp(self) -> Hashable:
        """A cheap value that changes whenever the records do."""

    def records(self) -> Sequence[Mapping]:
        """Every recorded session (`screen.store.database.recorded_sessions`)."""


class LivePage:
    """The dashboard of a `RecordSource`, re-rendered when the source's stamp changes.

    `current` is safe to call from several request threads at once (one renders, the others
    wait for it); it raises what the source raises (e.g. a `StoreError`).
    """

    def __init__(self, source: RecordSource) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._stamp: Hashable = object()
        self._html = b""
        self._folders: dict[int, Path] = {}
        self.renders = 0

    def current(self) -> tuple[bytes, dict[int, Path]]:
        """(the page's HTML, each run id's results folder), as the source is now."""
        with self._lock:
            stamp = self.source.stamp()
            if stamp != self._stamp:
                records = self.source.records()
                self._html = render_dashboard(records, served_href).encode()
                self._folders = {
                    int(r["run_id"]): Path(r["results_dir"]).resolve() for r in records
                }
                self._stamp = stamp
                self.renders += 1
            return self._html, self._folders


def make_server(source: RecordSource, port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 (only) for the dashboard and the runs' reports.

    ``/`` is the dashboard, rendered from ``source`` when first served and again at a request
    after the source changed (a run recorded meanwhile shows without a restart); if the source
    cannot be read, the answer is 503 with the reason. ``/runs/<run id>/<file>`` is a file of
    that run's results folder (only report files: HTML, PNG, PDF, CSS, SVG; never outside the
    folder). Call ``serve_forever()`` and, from another thread, ``shutdown()``; ``port`` 0 picks
    a free port (``server.server_address``). The page is rendered once here, so that a source
    that cannot be read fails now. ``server.page`` is the `LivePage`.
    """
    page = LivePage(source)
    page.current()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            try:
                html, folders = page.current()
            except ScreenError as error:
                return self._send(503, "text/plain; charset=utf-8", f"{error}\n".encode())
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                return self._send(200, CONTENT_TYPES[".html"], html)
            parts = path.strip("/").split("/", 2)
            if len(parts) == 3 and parts[0] == "runs" and parts[1].isdigit():
                root = folders.get(int(parts[1]))
                if root is not None:
                    target = (root / parts[2]).resolve()
                    kind = CONTENT_TYPES.get(target.suffix.lower())
                    if kind and target.is_relative_to(root) and target.is_file():
                        return self._send(200, kind, target.read_bytes())
            return self._send(404, "text/plain; charset=utf-8", b"not found\n")

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args) -> None:  # noqa: A002 (http.server's name)
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.page = page  # type: ignore[attr-defined]
    return server
