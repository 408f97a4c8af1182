"""`screen evaluate classes`: labelled averages in, per-label precision / recall and confusion out."""

import numpy as np
import pytest
from typer.testing import CliRunner

from screen.class_evaluation import (
    evaluate_classes,
    good_precision_recall,
    load_labelled_averages,
    with_mask,
)
from screen.cli import app
from screen.errors import ScreenError
from screen.io.mrc import write_mrc
from screen.stages.assess_classes import ClassAssessParams, load_class_model

runner = CliRunner()


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, write_labelled_averages):
    """A stack of 24 drawn averages (6 per label) of unseen structures, same box, and its labels."""
    folder = tmp_path_factory.mktemp("classes")
    return folder, write_labelled_averages(folder, 6, 5, (300_001, 300_002))


def test_loads_stack_labels_pixel_size_and_masks(labelled):
    folder, items = labelled
    loaded = load_labelled_averages(folder / "averages.mrcs", folder / "labels.csv")
    assert [a.label for a in loaded] == [a.label for a in items]
    assert all(a.pixel_size_A == pytest.approx(4.0) for a in loaded)  # from the header
    assert loaded[0].mask_diameter_A == pytest.approx(min(items[0].mask_diameter_A, 256.0), abs=0.1)
    whole = with_mask(loaded, 100.0)
    assert all(a.mask_diameter_A == pytest.approx(256.0) for a in whole)  # capped at the box


def test_folder_of_files_and_whole_box_default(tmp_path):
    write_mrc(tmp_path / "a.mrc", np.random.default_rng(0).normal(size=(40, 40)), 3.0)
    stack = np.random.default_rng(1).normal(size=(3, 40, 40))
    stack[2] = 0.0  # an empty class
    write_mrc(tmp_path / "b.mrcs", stack, 3.0, stack=True)
    (tmp_path / "labels.csv").write_text("file,index,label\na.mrc,,good\nb.mrcs,2,noise\n")
    items = load_labelled_averages(tmp_path, tmp_path / "labels.csv")
    assert [a.label for a in items] == ["good", "noise"]
    assert items[0].mask_diameter_A == pytest.approx(120.0)  # whole box, no mask given
    assert items[1].source == "b.mrcs[2]"


def test_problems_are_listed_with_lines(tmp_path):
    write_mrc(tmp_path / "s.mrcs", np.ones((2, 32, 32)) * [[[1.0]], [[2.0]]], None, stack=True)
    (tmp_path / "labels.csv").write_text("index,label\n0,great\n5,good\n1,good\n")
    with pytest.raises(ScreenError) as error:
        load_labelled_averages(tmp_path / "s.mrcs", tmp_path / "labels.csv")
    message = str(error.value)
    assert "line 2: label 'great'" in message
    assert "line 3: index '5' is not in 0-1" in message
    assert "line 4: no pixel size" in message
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ScreenError, match="empty"):
        load_labelled_averages(tmp_path / "s.mrcs", tmp_path / "empty.csv")


def test_scores_match_the_stage_and_metrics_add_up(labelled):
    folder, _ = labelled
    items = load_labelled_averages(folder / "averages.mrcs", folder / "labels.csv")
    params = ClassAssessParams()
    result = evaluate_classes(items, params, load_class_model(params))
    assert result.scores.shape == (24, 4)
    assert np.array_equal(result.cnn, result.scores.argmax(axis=1))
    precision, recall = good_precision_recall(result.true, result.cnn)
    assert 0.0 <= precision <= 1.0 and recall >= 0.5  # drawn averages: the model's own kind
    # The saliency check only moves "good" to "clip".
    moved = result.cnn != result.with_saliency
    assert np.all(result.cnn[moved] == 0) and np.all(result.with_saliency[moved] == 1)


def test_cli_prints_metrics_and_confusion(labelled):
    folder, _ = labelled
    args = [
        "evaluate",
        "classes",
        str(folder / "averages.mrcs"),
        "--labels",
        str(folder / "labels.csv"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "model: class_assess_v8" in result.output  # averages of another program: the default
    assert "24 labelled class averages: 6 good, 6 clip, 6 edge, 6 noise" in result.output
    assert "CNN alone: good precision" in result.output
    assert "CNN + saliency check: good precision" in result.output
    assert result.output.count("confusion (rows: true, columns: predicted)") == 2
    run_model = runner.invoke(app, [*args, "--class-weights", "class_assess_v1"])
    assert run_model.exit_code == 0 and "model: class_assess_v1" in run_model.output
    bad = runner.invoke(
        app,
        ["evaluate", "classes", str(folder / "nope.mrcs"), "--labels", str(folder / "labels.csv")],
    )
    assert bad.exit_code == 2 and "no such stack or folder" in bad.output
