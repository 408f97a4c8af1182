"""Where `screen run` puts its results; the report is rendered from these files alone.

::

    OUT/report.html, OUT/report.pdf      the comparative report (report_assets/ beside them)
    OUT/run.json                         provenance: version, argv, parameters, models, timings,
                                         the manifest's sessions (the ones the report shows)
    OUT/.lock                            held (flock) by the `screen run` writing here
    OUT/sessions/<name>/summary.json     every metric of the session (see screen.pipeline)
    OUT/sessions/<name>/micrographs.csv  one row per micrograph: P(good), verdict, reason, CTF
    OUT/sessions/<name>/picks/<mic>.star picked coordinates per micrograph (RELION STAR)
    OUT/sessions/<name>/classes/d<D>A/   class averages (averages.mrcs) and classes.csv per
                                         mask diameter D (Å)
    OUT/sessions/<name>/particles/       particles.mrcs + particles.star: the good classes'
                                         particles at the best mask diameter
    OUT/sessions/<name>/motion_corrected/<mic>.mrc  aligned sums of movies
    OUT/sessions/<name>/cache/           per-stage cached results, keyed by inputs + parameters

``<mic>`` is the image's file name without extension, made unique within its session by
`micrograph_names` when two folders hold the same file name.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def micrograph_names(paths: Sequence[Path]) -> list[str]:
    """One unique name per image of a session, for its result files and cache entries.

    The file name without extension; when several images share it (ignoring case, as some file
    systems do), each of those gets ``_`` and 8 hex digits of the SHA-1 of its full path. The same
    paths always give the same names.

    Examples
    --------
    >>> micrograph_names([Path("/d/a/m1.mrc"), Path("/d/b/m1.mrc"), Path("/d/a/m2.mrc")])
    ['m1_5b4f18c6', 'm1_ba9620a8', 'm2']
    """
    stems = Counter(Path(p).stem.casefold() for p in paths)
    names = []
    for path in paths:
        stem = Path(path).stem
        if stems[stem.casefold()] > 1:
            stem += "_" + hashlib.sha1(str(path).encode()).hexdigest()[:8]
        names.append(stem)
    return names


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

    def motion_corrected(self, micrograph: str) -> Path:
        """Aligned sum of one movie (``micrograph``: its name from `micrograph_names`)."""
        return self.root / "motion_corrected" / f"{micrograph}.mrc"

    @property
    def particles_dir(self) -> Path:
        """Folder of the final particle stack."""
        return self.root / "particles"

    @property
    def cache_dir(self) -> Path:
        """Folder of cached stage results."""
        return self.root / "cache"

    @property
    def classes_root(self) -> Path:
        """Folder of the classifications (one sub-folder per mask diameter)."""
        return self.root / "classes"

    def classes_dir(self, mask_diameter_A: float) -> Path:
        """Folder of one classification's averages and labels."""
        return self.classes_root / f"d{int(round(mask_diameter_A))}A"

    @property
    def rebuilt_outputs(self) -> tuple[Path, ...]:
        """Results a run rebuilds from the cache: removed first, so none outlives its run."""
        return (self.micrographs, self.picks_dir, self.classes_root, self.particles_dir)


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
