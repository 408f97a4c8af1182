"""Fixtures shared by several test modules."""

from collections.abc import Callable
from pathlib import Path

import pytest

from screen.simulate.presets import prex1_small
from screen.simulate.scenario import with_micrographs_per_session
from screen.simulate.session import simulate_screen


@pytest.fixture(scope="session")
def simulate_demo_screen() -> Callable[[Path, int], Path]:
    """``simulate(folder, n)``: the six-condition demo preset, ``n`` micrographs each."""

    def simulate(folder: Path, micrographs_per_session: int) -> Path:
        preset = with_micrographs_per_session(prex1_small(), micrographs_per_session)
        simulate_screen(preset, folder)
        return folder

    return simulate
