"""`screen train micrographs`: fine-tuning on a labelled set, then using the weights."""

import numpy as np
import pytest
from typer.testing import CliRunner

from screen.cli import app
from screen.evaluation import load_labelled_set
from screen.training import prepare_labelled_set

runner = CliRunner()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, simulate_demo_screen):
    return simulate_demo_screen(tmp_path_factory.mktemp("train") / "sim", 2)


def test_prepared_set_keeps_labels_and_unknown_reasons(simulated, tmp_path):
    items = load_labelled_set(simulated)
    prepared = prepare_labelled_set(items)
    data = prepared.data
    assert len(data.good) == len(items) == 12  # square frames: one crop each
    # 512 px at 2.5 Å/px: seen at 8 Å/px, a 160-px square
    assert {image.shape for image in data.features.image} == {(160, 160)}
    assert data.good.sum() == sum(i.label == "good" for i in items)
    assert np.all(data.reason_index[data.good] == -1)
    assert np.all(data.reason_index[~data.good] >= 0)
    mic = items[0].path
    labels = tmp_path / "labels.csv"
    labels.write_text(f"path,label\n{mic},bad\n{mic},good\nnope.mrc,bad\n")
    from_csv = prepare_labelled_set(load_labelled_set(labels))
    assert from_csv.data.reason_index.tolist() == [-1, -1]  # bad without a reason: P(good) only
    assert len(from_csv.skipped) == 1 and "nope.mrc" in from_csv.skipped[0]


def test_fine_tune_writes_weights_that_run_and_evaluate(simulated, tmp_path):
    weights = tmp_path / "mine.keras"
    result = runner.invoke(
        app,
        ["train", "micrographs", str(simulated), "--out", str(weights), "--epochs", "1", "-q"],
    )
    assert result.exit_code == 0, result.output
    assert weights.exists() and "trained on 12 crops" in result.output
    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "micrographs",
            str(simulated),
            "--micassess-weights",
            str(weights),
            "--figure",
            str(tmp_path / "f.png"),
            "-q",
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "12 micrographs" in evaluated.output


def test_training_needs_both_classes_and_a_keras_path(simulated, tmp_path):
    mic = next((simulated / "sessions" / "ddm" / "micrographs").glob("*.mrc"))
    labels = tmp_path / "labels.csv"
    labels.write_text(f"path,label\n{mic},good\n{mic},good\n")
    result = runner.invoke(app, ["train", "micrographs", str(labels), "-q"])
    assert result.exit_code == 2 and "both good and bad" in result.output
    result = runner.invoke(app, ["train", "micrographs", str(labels), "--out", "w.h5", "-q"])
    assert result.exit_code == 2 and ".keras" in result.output


def test_a_paper_style_network_is_not_a_fine_tuning_base(simulated, tmp_path):
    import keras

    inputs = keras.Input((494, 494, 1), name="image")
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    tiny = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(pooled))
    tiny.save(tmp_path / "paper.h5")
    result = runner.invoke(
        app,
        ["train", "micrographs", str(simulated), "--base", str(tmp_path / "paper.h5"), "-q"],
    )
    assert result.exit_code == 2 and "paper-style" in result.output
