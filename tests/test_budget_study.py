"""The budget study: learning rates chosen on validation, runs stored one by one, a report from the store."""

import dataclasses

import numpy as np
import pytest

from tlhelpers import budget_study, datasets, plots
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


def test_build_in_pieces_then_report(tmp_path, cache_dir, monkeypatch):
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
    # Curve metrics compared at one budget, Holm-corrected together; a pair not stored is skipped.
    rows = budget_study.metric_comparisons(groups, [(("small_cnn", "small_cnn"), ("random_features", "resnet50")),
                                                    (("fine_tune", "resnet50"), ("scratch", "resnet50"))], 4)
    assert [row["metric"] for row in rows] == ["start", "steps_to_90", "best_validation"]
    assert all(row["p"] <= row["p_holm"] <= 1 for row in rows)
    [row] = budget_study.metric_comparisons(groups, [(("small_cnn", "small_cnn"), ("random_features", "resnet50"))],
                                            4, metrics=("test_accuracy",))
    assert row["arm_mean"] == pytest.approx(np.mean([r.test_accuracy for r in groups["small_cnn", "small_cnn", 4]]))
    # A store built in pieces: one seed on each side is no comparison yet, and reporting does not fail.
    first_seed = {key: runs[:1] for key, runs in groups.items()}
    assert budget_study.metric_comparisons(first_seed, [(("small_cnn", "small_cnn"), ("random_features", "resnet50"))],
                                           4, metrics=("test_accuracy",)) == []
    # One side a seed ahead of the other: compared on the seeds both hold.
    ahead = {**groups, ("small_cnn", "small_cnn", 4): groups["small_cnn", "small_cnn", 4]
             + [dataclasses.replace(groups["small_cnn", "small_cnn", 4][0], seed=2, test_accuracy=1.0)]}
    [paired] = budget_study.metric_comparisons(ahead, [(("small_cnn", "small_cnn"), ("random_features", "resnet50"))],
                                               4, metrics=("test_accuracy",))
    assert paired == row
    # A stored run trained again gives the same numbers (same seed, same machine).
    [(spec, stored, fresh, same)] = budget_study.recheck(TINY, folder, ("small_cnn",), 8, 1, tolerance=0.0)
    assert same and (spec["labels_per_class"], spec["seed"]) == (8, 1)
    assert fresh.history["val_accuracy"] == stored.history["val_accuracy"]
    with pytest.raises(ValueError, match="seed 7, which .* does not hold"):
        budget_study.recheck(TINY, folder, ("small_cnn",), 8, 7, tolerance=0.0)
    # Its beginning alone: the validation accuracies of the first 10 steps, and nothing after them.
    [(_, _, start, same)] = budget_study.recheck(TINY, folder, ("small_cnn",), 8, 1, tolerance=0.0, steps=10)
    assert same and start.history["val_accuracy"] == stored.history["val_accuracy"][:3]
    assert start.config["stopped_step"] == 10
    # A stored beginning that this code does not reproduce fails the check.
    RunStore(folder).put(spec, dataclasses.replace(stored, history={
        **stored.history, "val_accuracy": [value + 0.1 for value in stored.history["val_accuracy"]]}))
    [(*_, same)] = budget_study.recheck(TINY, folder, ("small_cnn",), 8, 1, tolerance=0.0, steps=10)
    assert not same
    RunStore(folder).put(spec, stored)
    with pytest.raises(ValueError, match="steps=7. Expected None or a positive multiple"):
        budget_study.recheck(TINY, folder, ("small_cnn",), 8, 1, tolerance=0.0, steps=7)
    # The same run by the fixed-step rule: same images and learning rate, 12 steps, no early stopping.
    fixed = budget_study.train_fixed_steps(TINY, spec, 12, eval_every=5)
    assert fixed.config["steps"] == 15 and "best_step" not in fixed.config
    assert fixed.config["learning_rate"] == spec["learning_rate"] and fixed.labels_per_class == 8
    # The study's arms on another target with the rates it chose, kept in a store of their own: a second
    # call reads the stored run instead of training it.
    monkeypatch.setattr(budget_study, "study_folder", lambda weights: tmp_path)
    [[first]] = budget_study.scenario_runs(TINY, "digits", ("small_cnn",), 4, (0,), 0, tmp_path / "digits").values()
    assert first.config["learning_rate_used"] == rates["small_cnn", "small_cnn"]
    [(stored_spec, _)] = RunStore(tmp_path / "digits").items()
    assert stored_spec["dataset"] == "digits" and stored_spec["labels_per_class"] == 4
    [[again]] = budget_study.scenario_runs(TINY, "digits", ("small_cnn",), 4, (0,), 0, tmp_path / "digits").values()
    assert again.wall_time_s == first.wall_time_s and again.history == first.history
    paths = budget_study.write_report(TINY, folder, tmp_path)
    summary = paths["summary"].read_text()
    assert "Holm" in summary and "| ResNet50 | small CNN |" not in summary and "| small CNN | small CNN |" in summary
    test = budget_study._task(TINY.dataset)[1]
    assert f"scored on the same {len(test):,} test images" in summary and "its sampling error" in summary
    assert paths["figure"].stat().st_size > 10_000
    analysis = budget_study.analyse(TINY, folder, budget_study.pixel_accuracies(TINY))
    [panel] = budget_study.budget_figure(TINY, analysis).axes
    assert panel.get_title() == f"ResNet50 ({plots.WEIGHT_NAMES[TINY.weights]})"
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


def test_a_scenario_validates_on_what_the_smallest_class_leaves():
    imagenet = budget_study.BUDGET_STUDIES["imagenet"]
    # Clip art's smallest class has 28 pool images; the digits have room for the study's 50.
    assert budget_study.scenario_validation(imagenet, "clipart", 10) == 18
    assert budget_study.scenario_validation(imagenet, "digits", 10) == imagenet.validation_per_class == 50
    splits = budget_study.load_splits(dataclasses.replace(imagenet, dataset="clipart", validation_per_class=18), 10, 0)
    assert splits.validation.counts().tolist() == [18] * 5


def test_a_budget_with_seeds_missing_says_how_many_it_has():
    row = {"backbone": "vgg16", "arm": "fine_tune", "test_accuracy": 0.7, "ci_low": 0.6, "ci_high": 0.8}
    table = [{**row, "labels_per_class": 10, "seeds": 5}, {**row, "labels_per_class": 50, "seeds": 4}]
    header, _, line = budget_study._budget_table(table, [10, 50, 100], 5, "/class", budget_study._interval)
    assert line == ("| VGG16 | fine-tuning | 0.700 (0.600 to 0.800) | 0.700 (0.600 to 0.800) (4 of 5 seeds) | "
                    "not run yet |")


def test_scenario_comparisons_pair_each_transfer_arm_with_its_control_and_pixels():
    from types import SimpleNamespace

    def runs(*accuracies):
        return [SimpleNamespace(test_accuracy=a, labels_per_class=10) for a in accuracies]

    groups = {("feature_extraction", "resnet50"): runs(0.8, 0.82, 0.79),
              ("random_features", "resnet50"): runs(0.5, 0.52, 0.48),
              ("feature_extraction", "mobilenet_v2"): runs(0.6, 0.61, 0.62)}
    rows = budget_study.scenario_comparisons({"digits": (groups, [0.7, 0.71, 0.69])})
    assert [(r["backbone"], r["control"]) for r in rows] == [("resnet50", "pixels"), ("resnet50", "random_features"),
                                                             ("mobilenet_v2", "pixels")]
    assert [r["verdict"] for r in rows] == ["higher", "higher", "lower"]
    assert rows[1]["difference"] == pytest.approx(0.3033, abs=1e-4) and rows[0]["dataset"] == "digits"


def test_comparison_table_adds_a_column_only_for_what_varies():
    row = {"backbone": "resnet50", "labels_per_class": 10, "arm": "feature_extraction", "control": "pixels",
           "difference": 0.1, "ci_low": 0.05, "ci_high": 0.15, "p": 0.01, "p_holm": 0.02, "verdict": "higher",
           "metric": "test_accuracy"}
    header, _, first, second = budget_study.comparison_table([{**row, "dataset": "digits"},
                                                              {**row, "dataset": "clipart"}]).splitlines()
    assert header.startswith("| dataset | backbone |") and "metric" not in header
    assert first == ("| digits | ResNet50 | 10 | feature extraction - pixels (logistic regression) | "
                     "+0.100 (+0.050 to +0.150) | 0.01 | 0.02 | higher |")
    assert second.startswith("| clip art | ResNet50 |")
    steps = budget_study.comparison_table([{**row, "metric": "steps_to_90", "difference": 120.0, "ci_low": 40.0,
                                            "ci_high": 200.0}, row])
    assert "| metric | backbone |" in steps and "| slope (steps to 90% of its best) | ResNet50 | 10 |" in steps and "+120 (+40 to +200)" in steps


def test_recipe_runs_are_stored_apart_from_plain_fine_tuning(tmp_path, monkeypatch, cache_dir):
    """Each recipe's options reach `train_run` and its store key; a read-only call trains nothing."""
    monkeypatch.setattr(budget_study, "choose_learning_rates", lambda config, store: {("fine_tune", "resnet50"): 1e-4})
    config = dataclasses.replace(TINY, arms=("fine_tune",))
    folder = tmp_path / "digits"
    assert budget_study.recipe_groups(config, "digits", (0,), folder, 4, train=False) == {}
    found = budget_study.recipe_runs(config, "digits", tuple(budget_study.RECIPES), 4, (0,), 0, folder)
    [faster], [augmented] = (found[name, "resnet50"] for name in budget_study.RECIPES)
    assert faster.config["head_rate_factor"] == 10 and not faster.config["augment"]
    assert augmented.config["augment"] and "head_rate_factor" not in augmented.config
    recipes = sorted((spec["recipe"] for spec, _ in RunStore(folder).items()), key=str)
    assert recipes == [{"augment": True}, {"head_rate_factor": 10.0}]
    # Read back without training; plain fine-tuning on this target was never run, so it is left out.
    groups = budget_study.recipe_groups(config, "digits", (0,), folder, 4, train=False)
    assert sorted(groups) == [(name, "resnet50", 4) for name in sorted(budget_study.RECIPES)]
    assert groups["fine_tune_head_x10", "resnet50", 4][0].history == faster.history
    with pytest.raises(ValueError, match="Expected any of: fine_tune_head_x10, fine_tune_augmented"):
        budget_study.recipe_runs(config, "digits", ("cosine_schedule",), 4, (0,), 0, folder)
