"""Render the comparative report: stored results -> context -> jinja2 HTML -> weasyprint PDF.

The HTML and the PDF come from the same template (``report_templates/report.html.j2``, autoescaped);
figures are PNGs in ``report_assets/`` beside the HTML, linked relatively, so the folder can be
copied or mailed as a whole.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from screen.errors import ScreenError
from screen.store.layout import RunLayout

TEMPLATE_NAME = "report.html.j2"


def templates_dir() -> Path:
    """The repository's ``report_templates/`` folder.

    Raises
    ------
    ScreenError
        If the folder or the template is missing (e.g. a non-editable install).
    """
    folder = Path(__file__).resolve().parents[2] / "report_templates"
    if not (folder / TEMPLATE_NAME).is_file():
        raise ScreenError(
            f"{folder / TEMPLATE_NAME}: report template not found; `screen` must run from its "
            "repository (pip install -e .) so that report_templates/ sits beside the package"
        )
    return folder


def render_html(context: dict, folder: Path | None = None, template: str = TEMPLATE_NAME) -> str:
    """Fill a template (the report's by default) with ``context`` (autoescape on: text stays text)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(folder or templates_dir())),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(template).render(**context)


def render_report(run_root: Path) -> tuple[Path, Path]:
    """Write ``report.html`` (with ``report_assets/``) and ``report.pdf`` for a run folder.

    Parameters
    ----------
    run_root : Path
        Output folder of `screen run`.

    Returns
    -------
    tuple of Path
        The HTML and the PDF file.
    """
    from weasyprint import HTML

    from screen.io.atomic import atomic_path
    from screen.report.context import context_from_sessions, load_run, read_provenance
    from screen.report.plots import write_figures

    layout = RunLayout(Path(run_root))
    folder = templates_dir()
    sessions = load_run(layout.root)
    context = context_from_sessions(sessions, read_provenance(layout))
    if layout.assets_dir.exists():
        shutil.rmtree(layout.assets_dir)
    ranking = [c["name"] for c in context["conditions"]]  # the verdicts are derived once
    figures = write_figures(sessions, layout.assets_dir, ranking)
    context["figures"] = figures
    context["assets"] = layout.assets_dir.name
    html = render_html(context, folder)
    with atomic_path(layout.report_html) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    with atomic_path(layout.report_pdf) as tmp:
        HTML(string=html, base_url=str(layout.root)).write_pdf(str(tmp))
    return layout.report_html, layout.report_pdf
