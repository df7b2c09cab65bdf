"""The budget study: learning rates chosen on validation, runs stored one by one, a report from the store."""

import dataclasses

import numpy as np
import pytest

from tlhelpers import budget_study, datasets
from tlhelpers.protocol import Protocol
from tlhelpers.run_store import RunStore

# Clip art: a test split of 142 images keeps each run to seconds.
TINY = budget_study.BudgetStudyConfig(
    backbones=("resnet50",), arms=("random_features", "small_cnn"), labels_per_class=(4, 8), seeds=(0, 1),
    dataset="clipart", image_size=32, validation_per_class=4,
    protocol=Protocol(eval_every=5, max_steps=20, patience=2, batch_size=8))


def test_held_out_test_images_were_never_used_for_design():
    _, test = datasets.load_embedded_task("embedded")
    design = datasets.subsample_per_class(test, budget_study.DESIGN_TEST_PER_CLASS)
    held_out = datasets.held_out_per_class(test, budget_study.DESIGN_TEST_PER_CLASS)
    assert np.bincount(held_out.labels).tolist() == [300] * 5
    seen = {image.tobytes() for image in design.images}
    assert not any(image.tobytes() in seen for image in held_out.images)
    splits = budget_study.load_splits(budget_study.BudgetStudyConfig(), 4, 0)
    assert len(splits.test) == 1500 and np.bincount(splits.train.labels).tolist() == [4] * 5
    assert len(budget_study.load_splits(TINY, 4, 0).test) == 142


def test_config_rejects_what_the_study_cannot_do():
    with pytest.raises(ValueError, match="arms=\\['transfer'\\]"):
        budget_study.BudgetStudyConfig(arms=("transfer",))
    with pytest.raises(ValueError, match="learning_rate=0.01"):
        budget_study.BudgetStudyConfig(protocol=Protocol(learning_rate=0.01))
    with pytest.raises(ValueError, match="increasing"):
        budget_study.BudgetStudyConfig(labels_per_class=(100, 10))


def test_build_in_pieces_then_report(tmp_path, cache_dir):
    folder = tmp_path / "runs"
    grids = {arm: len(budget_study.learning_rate_grid(arm, "resnet50")) for arm in TINY.arms}
    main_runs = len(TINY.labels_per_class) * len(TINY.seeds)
    assert budget_study.build(TINY, folder, hours=0, verbose=0) == {"trained": 0, "stored": 0,
                                                                    "pending": sum(grids.values())}
    # The selection runs: every learning rate of the grid (one budget: TINY's are below 10), on a seed no
    # table reports.
    selection = budget_study.selection_specs(TINY)
    assert len(selection) == sum(grids.values()) and {s["seed"] for s in selection} == {budget_study.SELECTION_SEED}
    # One arm first (a piece of the study): its learning rate is chosen, its runs stored.
    piece = budget_study.build(TINY, folder, verbose=0, only=lambda spec: spec["arm"] == "small_cnn")
    small = grids["small_cnn"] + main_runs
    assert piece == {"trained": small, "stored": small, "pending": 0}
    assert sorted(budget_study.stored_runs(TINY, folder)[1]) == [("small_cnn", "small_cnn")]
    done = budget_study.build(TINY, folder, verbose=0)
    assert done == {"trained": grids["random_features"] + main_runs, "stored": small + grids["random_features"]
                    + main_runs, "pending": 0}
    assert budget_study.build(TINY, folder, verbose=0)["trained"] == 0
    store = RunStore(folder)
    rates = budget_study.choose_learning_rates(TINY, store)
    for spec in selection:
        chosen = store.get({**spec, "learning_rate": rates[spec["arm"], spec["backbone"]]})
        assert max(store.get(spec).history["val_accuracy"]) <= max(chosen.history["val_accuracy"])
    groups, _ = budget_study.stored_runs(TINY, folder)
    assert sorted(groups) == [("random_features", "resnet50", 4), ("random_features", "resnet50", 8),
                              ("small_cnn", "small_cnn", 4), ("small_cnn", "small_cnn", 8)]
    run = groups["small_cnn", "small_cnn", 4][0]
    assert run.config["learning_rate_used"] == rates["small_cnn", "small_cnn"] and run.config["arm"] == "small_cnn"
    paths = budget_study.write_report(TINY, folder, tmp_path)
    summary = paths["summary"].read_text()
    assert "Holm" in summary and "| resnet50 | small CNN |" not in summary and "| small_cnn | small CNN |" in summary
    assert paths["figure"].stat().st_size > 10_000
    # Another protocol is another study: nothing stored applies to it.
    other = dataclasses.replace(TINY, protocol=dataclasses.replace(TINY.protocol, patience=3))
    assert budget_study.build(other, folder, hours=0, verbose=0)["pending"] == sum(grids.values())


@pytest.mark.parametrize("argv, message", [
    (["--arms", "transfer"], "Received --arms transfer. Expected any of: feature_extraction"),
    (["--weights", "imagenet", "--backbone", "resnet50"], "Received --backbone resnet50. Expected any of: mobilenet_v2"),
])
def test_command_line_names_what_it_cannot_train(argv, message, capsys, tmp_path):
    from tlhelpers import cli

    assert cli.main(["budget-study", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_the_imagenet_study_compares_with_the_small_cnn_of_the_same_images():
    imagenet = budget_study.BUDGET_STUDIES["imagenet"]
    assert "small_cnn" not in imagenet.arms and imagenet.image_size == 128
    with pytest.raises(ValueError, match="seeds differ"):
        budget_study.borrowed_small_cnn(dataclasses.replace(imagenet, seeds=(0, 1)))
    assert budget_study.borrowed_small_cnn(budget_study.BUDGET_STUDIES["embedded"]) == ({}, {})
