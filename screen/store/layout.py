"""Where `screen run` puts its results; the report is rendered from these files alone.

::

    OUT/report.html, OUT/report.pdf      the comparative report (report_assets/ beside them)
    OUT/run.json                         provenance: version, argv, parameters, models, timings
    OUT/sessions/<name>/summary.json     every metric of the session (see screen.pipeline)
    OUT/sessions/<name>/micrographs.csv  one row per micrograph: P(good), verdict, reason, CTF
    OUT/sessions/<name>/picks/<mic>.star picked coordinates per micrograph (RELION STAR)
    OUT/sessions/<name>/classes/d<D>A/   class averages (averages.mrcs) and classes.csv per
                                         mask diameter D (Å)
    OUT/sessions/<name>/particles/       particles.mrcs + particles.star: the good classes'
                                         particles at the best mask diameter
    OUT/sessions/<name>/cache/           per-stage cached results, keyed by inputs + parameters
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SessionLayout:
    """Paths of one session's results."""

    root: Path

    @property
    def summary(self) -> Path:
        """summary.json: the session's metrics and provenance."""
        return self.root / "summary.json"

    @property
    def micrographs(self) -> Path:
        """micrographs.csv: per-micrograph table."""
        return self.root / "micrographs.csv"

    @property
    def picks_dir(self) -> Path:
        """Folder of per-micrograph pick STAR files."""
        return self.root / "picks"

    @property
    def particles_dir(self) -> Path:
        """Folder of the final particle stack."""
        return self.root / "particles"

    @property
    def cache_dir(self) -> Path:
        """Folder of cached stage results."""
        return self.root / "cache"

    def classes_dir(self, mask_diameter_A: float) -> Path:
        """Folder of one classification's averages and labels."""
        return self.root / "classes" / f"d{int(round(mask_diameter_A))}A"


@dataclass(frozen=True)
class RunLayout:
    """Paths of a whole run's results."""

    root: Path

    def session(self, name: str) -> SessionLayout:
        """Layout of one session."""
        return SessionLayout(self.root / "sessions" / name)

    @property
    def provenance(self) -> Path:
        """run.json."""
        return self.root / "run.json"

    @property
    def report_html(self) -> Path:
        """report.html."""
        return self.root / "report.html"

    @property
    def report_pdf(self) -> Path:
        """report.pdf."""
        return self.root / "report.pdf"

    @property
    def assets_dir(self) -> Path:
        """Images of the report."""
        return self.root / "report_assets"
