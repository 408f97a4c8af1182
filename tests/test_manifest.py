import numpy as np
import pytest

from screen.errors import ManifestError
from screen.io.mrc import write_mrc
from screen.manifest import find_images, normalise_column, read_manifest


def _mrc(path, seed=0):
    data = np.random.default_rng(seed).normal(size=(4, 4)).astype(np.float32)
    return write_mrc(path, data, 1.0)


@pytest.fixture
def session_dir(tmp_path):
    """Two folders of tiny micrographs beside the manifest."""
    for i in range(3):
        _mrc(tmp_path / "apo" / f"mic_{i}.mrc", seed=i)
    for i in range(2):
        _mrc(tmp_path / "ddm" / "run1" / f"m{i}.mrc", seed=10 + i)
    (tmp_path / "ddm" / "run1" / "notes.txt").write_text("not an image")
    return tmp_path


def _problems(path):
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert str(path) in str(err.value)
    return err.value.problems


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        (" Pixel Size (Å) ", "pixel_size_A"),
        ("APIX", "pixel_size_A"),
        ("pixel-size.A", "pixel_size_A"),
        ("kV", "voltage_kV"),
        ("Cs (mm)", "cs_mm"),
        ("Q0", "amplitude_contrast"),
        ("Dose (e/Å²)", "dose_e_per_A2"),
        ("Condition", "session"),
        ("Frames", "movies"),
        ("Grid type", "grid_type"),
    ],
)
def test_normalise_column(name, canonical):
    assert normalise_column(name) == canonical


def test_valid_manifest_with_synonyms_defaults_and_metadata(session_dir):
    path = _write(
        session_dir / "manifest.csv",
        "\ufeffCondition, MICS ,APIX,kV,Grid type,Additive,Dose\n"
        "apo,apo,1.06,,Quantifoil,none,\n"
        "\n"
        "+ DDM,ddm/**/*.mrc,0.83,200,lacey,DDM 0.01%,50\n",
    )

    manifest = read_manifest(path)

    assert manifest.metadata_columns == ("Grid type", "Additive")
    first, second = manifest.sessions
    assert (first.session, first.line, first.kind) == ("apo", 2, "micrographs")
    assert first.micrograph_paths == tuple(
        (session_dir / "apo" / f"mic_{i}.mrc").resolve() for i in range(3)
    )
    assert first.pixel_size_A == pytest.approx(1.06)
    assert (first.voltage_kV, first.cs_mm, first.amplitude_contrast) == (300.0, 2.7, 0.1)
    assert first.dose_e_per_A2 is None
    assert first.metadata == {"Grid type": "Quantifoil", "Additive": "none"}
    assert list(first.metadata) == ["Grid type", "Additive"]
    assert (second.session, second.line) == ("+ DDM", 4)
    assert [p.name for p in second.micrograph_paths] == ["m0.mrc", "m1.mrc"]
    assert second.voltage_kV == 200.0
    assert second.dose_e_per_A2 == 50.0
    assert second.source == "ddm/**/*.mrc"


def test_movies_kind_and_semicolon_separator(session_dir):
    path = _write(session_dir / "m.csv", "session;movies;pixel_size_A\nraw;apo/*.mrc;0.5\n")
    (row,) = read_manifest(path).sessions
    assert row.kind == "movies"
    assert len(row.micrograph_paths) == 3


def test_folder_ignores_other_files_and_glob_resolves_relative_to_manifest(
    session_dir, monkeypatch
):
    sub = session_dir / "manifests"
    sub.mkdir()
    monkeypatch.chdir(session_dir / "apo")  # the working folder must not matter
    path = _write(
        sub / "m.csv",
        "session,micrographs,pixel_size_A\na,../ddm/run1,1\nb,../apo/mic_[01].mrc,1\n",
    )
    a, b = read_manifest(path).sessions
    assert [p.name for p in a.micrograph_paths] == ["m0.mrc", "m1.mrc"]
    assert [p.name for p in b.micrograph_paths] == ["mic_0.mrc", "mic_1.mrc"]


def test_env_vars_and_home_are_expanded(session_dir, monkeypatch):
    monkeypatch.setenv("SCREEN_DATA", str(session_dir))
    monkeypatch.setenv("HOME", str(session_dir))
    path = _write(
        session_dir / "m.csv",
        "session,micrographs,pixel_size_A\na,$SCREEN_DATA/apo,1\nb,~/ddm/run1/*.mrc,1\n",
    )
    a, b = read_manifest(path).sessions
    assert len(a.micrograph_paths) == 3 and len(b.micrograph_paths) == 2


def test_find_images_errors(session_dir):
    with pytest.raises(FileNotFoundError, match="'nothing/\\*.mrc' matches no file"):
        find_images("nothing/*.mrc", session_dir)
    with pytest.raises(
        FileNotFoundError, match="'ddm/run1/\\*.txt' matches 1 file.*none is an image"
    ):
        find_images("ddm/run1/*.txt", session_dir)
    with pytest.raises(FileNotFoundError, match="'missing_folder' does not exist"):
        find_images("missing_folder", session_dir)


def test_three_bad_cells_give_three_problems(session_dir):
    path = _write(
        session_dir / "m.csv",
        "session,micrographs,pixel_size_A,voltage_kV,cs_mm\n"
        "a,apo,-1,300,2.7\n"
        "b,apo,1.0,abc,2.7\n"
        "c,apo,1.0,300,11\n",
    )
    problems = _problems(path)
    assert problems == [
        "line 2, column 'pixel_size_A': '-1' is not in 0.3–20 Å",
        "line 3, column 'voltage_kV': 'abc' is not a number",
        "line 4, column 'cs_mm': '11' is not in 0–10 mm",
    ]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("a,apo,,", ["line 2, column 'apix' (pixel_size_A): missing value (required)"]),
        ("a,apo,25,", ["line 2, column 'apix' (pixel_size_A): '25' is not in 0.3–20 Å"]),
        ("a,apo,1,0", ["line 2, column 'dose' (dose_e_per_A2): '0' is not > 0 and ≤ 500 e/Å²"]),
        ("a,apo,1,nan", ["line 2, column 'dose' (dose_e_per_A2): 'nan' is not a number"]),
        (",apo,1,", ["line 2, column 'session': empty session name"]),
        ("a/b,apo,1,", ["line 2, column 'session': 'a/b' cannot be a folder name (contains '/')"]),
        (
            ".hidden,apo,1,",
            ["line 2, column 'session': '.hidden' cannot be a folder name (starts with '.')"],
        ),
        ("a,,1,", ["line 2, column 'micrographs': no images given"]),
        ("a,empty_dir,1,", ["line 2, column 'micrographs': folder 'empty_dir' matches no file"]),
        ("a,apo,1,,extra", ["line 2: 5 values but the header has 4 columns ('extra')"]),
    ],
)
def test_each_cell_problem_names_line_and_column(session_dir, row, expected):
    (session_dir / "empty_dir").mkdir()
    path = _write(session_dir / "m.csv", f"session,micrographs,apix,dose\n{row}\n")
    problems = _problems(path)
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected, strict=True):
        assert problem.startswith(start)


def test_value_under_unnamed_column(session_dir):
    path = _write(session_dir / "m.csv", "session,,micrographs,apix\na,oops,apo,1\nb,,apo,1\n")
    assert _problems(path) == ["line 2, column 2: 'oops' lies under a column with no name"]


def test_trailing_empty_and_missing_cells_are_fine(session_dir):
    path = _write(session_dir / "m.csv", "session,micrographs,apix,grid\na,apo,1,,,\nb,apo,1\n")
    a, b = read_manifest(path).sessions
    assert a.metadata == b.metadata == {"grid": ""}


def test_long_session_name(session_dir):
    path = _write(session_dir / "m.csv", f"session,micrographs,apix\n{'x' * 101},apo,1\n")
    assert _problems(path) == [
        "line 2, column 'session': session name is 101 characters (at most 100)"
    ]
    path = _write(session_dir / "m.csv", f"session,micrographs,apix\n{'Å𝛃' * 50},apo,1\n")
    assert _problems(path) == [
        "line 2, column 'session': session name is 300 bytes in UTF-8 (at most 255, the "
        "file-system limit of a folder name)"
    ]


def test_duplicate_sessions_name_both_lines(session_dir):
    path = _write(
        session_dir / "m.csv",
        "session,micrographs,pixel_size_A\nApo,apo,1\nother,apo,1\napo,apo,99\n",
    )
    problems = _problems(path)
    assert "line 4, column 'pixel_size_A': '99' is not in 0.3–20 Å" in problems
    assert (
        "line 4, column 'session': session name 'apo' is already used on line 2 "
        "(names must be unique, ignoring case)"
    ) in problems
    assert len(problems) == 2


def test_both_micrographs_and_movies(session_dir):
    path = _write(session_dir / "m.csv", "session,micrographs,movies,apix\na,apo,apo,1\nb,,,1\n")
    assert _problems(path) == [
        "line 2, columns 'micrographs' and 'movies': both are filled; give one",
        "line 3, columns 'micrographs' and 'movies': no images given",
    ]


def test_header_problems_are_all_reported(session_dir):
    path = _write(session_dir / "m.csv", "grid,apix,Pixel Size\nx,1,1\n")
    problems = _problems(path)
    assert problems == [
        "line 1, columns 'apix' and 'Pixel Size': both mean 'pixel_size_A'; keep one",
        "line 1: missing required column 'session' (or name, condition, dataset)",
        "line 1: missing required column 'micrographs' or 'movies'",
    ]


def test_file_level_problems(tmp_path):
    assert _problems(tmp_path / "missing.csv") == ["file not found"]
    empty = _write(tmp_path / "empty.csv", "\n  \n")
    assert _problems(empty) == ["the file is empty (expected a header line)"]
    header_only = _write(tmp_path / "header.csv", "session,micrographs,apix\n")
    assert _problems(header_only) == ["line 1: header only, no session rows"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("session,micrographs,apix\ncaf\xe9,a,1\n".encode("latin-1"))
    assert "not UTF-8" in _problems(latin)[0]


def test_error_message_lists_every_problem(session_dir):
    path = _write(session_dir / "m.csv", "session,micrographs,apix\na,apo,0\nb,apo,x\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    message = str(err.value)
    assert "2 problem(s)" in message
    assert "line 2" in message and "line 3" in message


def test_a_misspelled_optional_column_is_a_warning(session_dir):
    path = _write(
        session_dir / "m.csv",
        "session,micrographs,apix,voltge_kV,Amp contrst,grid,additive\napo,apo,1,200,0.07,C,none\n",
    )
    manifest = read_manifest(path)
    assert manifest.warnings == (
        "line 1, column 'voltge_kV': did you mean 'voltage_kV'? It is kept as condition "
        "metadata and voltage_kV is 300 (the default)",
        "line 1, column 'Amp contrst': did you mean 'amplitude_contrast'? It is kept as "
        "condition metadata and amplitude_contrast is 0.1 (the default)",
    )
    assert manifest.sessions[0].voltage_kV == 300.0
    assert manifest.sessions[0].metadata["voltge_kV"] == "200"
    ok = _write(session_dir / "ok.csv", "session,micrographs,apix,kV,grid\napo,apo,1,200,C\n")
    assert read_manifest(ok).warnings == ()


def test_exports_are_read_alone_but_thumbnails_beside_micrographs_are_not(tmp_path):
    from PIL import Image

    thumbnail = np.arange(64, dtype=np.uint8).reshape(8, 8)
    mixed, exports = tmp_path / "epu", tmp_path / "exports"
    mixed.mkdir()
    exports.mkdir()
    write_mrc(mixed / "FoilHole_1.mrc", np.ones((8, 8), np.float32), 1.0)
    Image.fromarray(thumbnail).save(mixed / "FoilHole_1.jpg")  # EPU's thumbnail
    Image.fromarray(thumbnail).save(exports / "a.jpg")
    Image.fromarray(thumbnail).save(exports / "b.PNG")
    assert [p.name for p in find_images("epu", tmp_path)] == ["FoilHole_1.mrc"]
    assert [p.name for p in find_images("epu/*", tmp_path)] == ["FoilHole_1.mrc"]
    assert [p.name for p in find_images("exports", tmp_path)] == ["a.jpg", "b.PNG"]
