from pathlib import Path

from screen.store.layout import micrograph_names


def test_micrograph_names_are_unique_and_stable():
    paths = [Path("/d/a/m1.mrc"), Path("/d/b/m1.mrc"), Path("/d/b/M1.tif"), Path("/d/a/m2.mrc")]
    names = micrograph_names(paths)
    assert len(set(names)) == 4 and names[3] == "m2"
    assert all(name.startswith(("m1_", "M1_")) for name in names[:3])
    assert micrograph_names(paths) == names
    assert micrograph_names(paths[::-1]) == names[::-1]
