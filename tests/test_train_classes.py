"""`screen train classes`: fine-tune class assessment on labelled averages; scored on a held-out part."""

import numpy as np
import pytest
from typer.testing import CliRunner

from screen.class_evaluation import evaluate_classes, load_labelled_averages
from screen.cli import app
from screen.models.class_assess import model_crop
from screen.stages.assess_classes import ClassAssessParams, load_class_model
from screen.stages.records import CLASS_LABELS
from screen.training import held_out_split

runner = CliRunner()


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, write_labelled_averages):
    """A stack of 24 drawn averages (6 per label) of unseen structures and its labels."""
    folder = tmp_path_factory.mktemp("train_classes")
    write_labelled_averages(folder, 6, 9, (300_011, 300_012))
    return folder


def test_held_out_split_takes_a_share_of_every_label():
    labels = np.array([0] * 10 + [1] * 5 + [3] * 2 + [2])
    held = held_out_split(labels, 0.2, seed=0)
    assert [int(np.sum(labels[held] == k)) for k in range(4)] == [2, 1, 0, 1]
    np.testing.assert_array_equal(held, held_out_split(labels, 0.2, seed=0))  # seeded
    assert len(held_out_split(labels, 0.0, seed=0)) == 0


def test_fine_tunes_saves_and_reports_what_the_saved_weights_score(labelled, tmp_path):
    out = tmp_path / "mine.keras"
    result = runner.invoke(
        app,
        [
            "train", "classes", str(labelled / "averages.mrcs"),
            "--labels", str(labelled / "labels.csv"),
            "--out", str(out), "--epochs", "1", "--held-out", "0.25",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    base = ClassAssessParams().model  # `screen run`'s model is what a user fine-tunes
    assert f"trained {base} on 16 averages (good 4, clip 4, edge 4, noise 4)" in result.output
    assert "held out 8 averages" in result.output
    assert f"--class-weights {out}" in result.output
    # The saved weights keep the base model's crop and score the held-out part as printed.
    params = ClassAssessParams(model=str(out))
    model = load_class_model(params)
    assert model_crop(model) == "extent"
    items = load_labelled_averages(labelled / "averages.mrcs", labelled / "labels.csv")
    y = np.array([CLASS_LABELS.index(a.label) for a in items])
    held = [items[i] for i in held_out_split(y, 0.25, seed=0)]
    scored = evaluate_classes(held, params, model)
    accuracy = float(np.mean(scored.cnn == scored.true))
    trained_line = next(line for line in result.output.splitlines() if "trained:" in line)
    assert f"accuracy {accuracy:.3f}" in trained_line
    # and `screen evaluate classes` takes them
    evaluated = runner.invoke(
        app,
        [
            "evaluate", "classes", str(labelled / "averages.mrcs"),
            "--labels", str(labelled / "labels.csv"), "--class-weights", str(out),
        ],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    assert f"model: {out}" in evaluated.output


def test_refuses_sets_it_cannot_learn_from(labelled, tmp_path):
    table = (labelled / "labels.csv").read_text().splitlines()
    only_good = [table[0]] + [f"{i},good,200" for i in range(24)]
    (tmp_path / "good.csv").write_text("\n".join(only_good) + "\n")
    args = ["train", "classes", str(labelled / "averages.mrcs"), "--out", str(tmp_path / "x.keras")]
    result = runner.invoke(app, [*args, "--labels", str(tmp_path / "good.csv")])
    assert result.exit_code == 2
    assert "needs good averages and averages of another label" in result.output
    (tmp_path / "few.csv").write_text("\n".join(table[:5]) + "\n")
    result = runner.invoke(app, [*args, "--labels", str(tmp_path / "few.csv")])
    assert result.exit_code == 2 and "at least 8 are needed" in result.output
    result = runner.invoke(
        app, [*args[:-1], str(tmp_path / "x.h5"), "--labels", str(labelled / "labels.csv")]
    )
    assert result.exit_code == 2 and "must end in .keras" in result.output
    assert not (tmp_path / "x.keras").exists()


def test_from_scratch_trains_an_extent_network_and_scores_nothing_without_a_held_out_part(
    labelled,
):
    from screen.training import train_classes

    items = load_labelled_averages(labelled / "averages.mrcs", labelled / "labels.csv")
    result = train_classes(items, None, epochs=1, held_out_share=0.0)
    assert model_crop(result.model) == "extent" and result.model.input_shape[1] == 64
    assert (result.n_train, result.n_held_out) == (24, 0)
    assert result.before is None and result.after is None
