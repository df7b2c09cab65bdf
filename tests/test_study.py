"""The matched-control study: same steps and images for every arm, verdicts from paired intervals."""

import dataclasses
import json

import numpy as np
import pytest

from tlhelpers import shipped_sources, study
from tlhelpers.results import RunResult


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory):
    """A VGG16 source model made by the shipping code with a tiny recipe, registered as shipped."""
    folder = tmp_path_factory.mktemp("source_models")
    original = dict(shipped_sources.RECIPES["vgg16"])
    shipped_sources.RECIPES["vgg16"] = {**original, "epochs": 1, "examples_per_class": 20}
    try:
        info = shipped_sources.retrain("vgg16", folder, verbose=0)
    finally:
        shipped_sources.RECIPES["vgg16"] = original
    saved = dict(shipped_sources.SHIPPED), shipped_sources.SHIPPED_DIR
    shipped_sources.SHIPPED["vgg16"] = (info["file"], info["md5"], info["source_test_accuracy"])
    shipped_sources.SHIPPED_DIR = folder
    yield info
    shipped_sources.SHIPPED.clear()
    shipped_sources.SHIPPED.update(saved[0])
    shipped_sources.SHIPPED_DIR = saved[1]


def test_study_runs_every_arm_with_the_same_steps_and_writes_a_report(tiny_source, tmp_path, cache_dir):
    config = study.StudyConfig(backbones=("vgg16",), labels_per_class=(2, 4), seeds=(0, 1), steps=3,
                               eval_every=1, validation_per_class=3, test_per_class=6)
    results, pixels = study.run_study(config, verbose=0)
    assert len(results) == len(study.ARMS) * 2 * 2
    assert sorted(pixels) == [(2, 0), (2, 1), (4, 0), (4, 1)]
    # 10 and 20 training images: the same 3 steps, each followed by an evaluation (epoch 0 is before).
    assert {r.config["steps"] for r in results} == {3}
    assert {len(r.history["val_accuracy"]) for r in results} == {4}
    by_arm = {r.config["arm"]: r for r in results if r.labels_per_class == 2 and r.seed == 0}
    assert by_arm["random_features"].weights == "random"
    assert by_arm["feature_extraction"].non_trainable_params == by_arm["random_features"].non_trainable_params
    assert by_arm["fine_tune"].trainable_params < by_arm["scratch"].trainable_params
    paths = study.write_study_report(tmp_path / "report", results, pixels, config)
    summary = paths["summary"].read_text()
    assert "| VGG16 | random features (same head) | 2 | 2 | 3 |" in summary
    assert "fine-tuning" in summary and "labels per class" in summary
    payload = json.loads(paths["results"].read_text())
    assert len(payload["runs"]) == len(results) and len(payload["pixels"]) == 4
    assert paths["label_budget"].stat().st_size > 1000
    loaded, loaded_pixels, loaded_config = study.load_study(paths["results"])
    assert loaded_config == config and loaded_pixels == pixels
    assert study.reading(loaded, loaded_pixels) == study.reading(results, pixels)
    assert paths["learning_curves"].stat().st_size > 1000
    # The report is a results store: it loads for its own configuration, source model and version only.
    stored, stored_pixels = study.load_store(paths["results"], config)
    assert [r.test_accuracy for r in stored] == [r.test_accuracy for r in results] and stored_pixels == pixels
    for changed, field in ((dataclasses.replace(config, steps=4), "config"),
                           (dataclasses.replace(config, dataset="digits"), "config")):
        with pytest.raises(study.StoreMismatchError, match=f"has {field}="):
            study.load_store(paths["results"], changed)
    payload["store"]["sources"]["vgg16"] = "0" * 32
    (tmp_path / "other.json").write_text(json.dumps(payload))
    with pytest.raises(study.StoreMismatchError, match="has sources="):
        study.load_store(tmp_path / "other.json", config)
    with pytest.raises(study.StoreMismatchError, match="No stored study"):
        study.load_store(tmp_path / "missing.json", config)


def _run(arm, n, seed, accuracy, curve=(0.2, 0.5, 0.6)):
    strategy, weights = study.ARMS[arm]
    weights = "embedded" if weights == "source" else weights
    return RunResult(backbone="resnet50", weights=weights, strategy=strategy, labels_per_class=n, seed=seed,
                     history={"epoch": list(range(len(curve))), "accuracy": list(curve),
                              "val_accuracy": list(curve), "loss": [1.0] * len(curve),
                              "val_loss": [1.0] * len(curve)},
                     test_accuracy=accuracy, test_loss=1.0, wall_time_s=1.0, trainable_params=1,
                     non_trainable_params=1, config={"arm": arm, "steps": 10})


def test_reading_calls_a_difference_only_when_the_interval_excludes_zero():
    results = [_run("fine_tune", 10, s, a) for s, a in enumerate((0.70, 0.72, 0.71))]
    results += [_run("scratch", 10, s, a) for s, a in enumerate((0.50, 0.52, 0.49))]
    results += [_run("feature_extraction", 10, s, a) for s, a in enumerate((0.60, 0.40, 0.55))]
    results += [_run("random_features", 10, s, a) for s, a in enumerate((0.45, 0.58, 0.50))]
    results += [_run("fine_tune", 100, s, 0.8) for s in range(3)]
    results += [_run("scratch", 100, s, a) for s, a in enumerate((0.70, 0.71, 0.73))]
    results += [_run("feature_extraction", 100, s, 0.6) for s in range(3)]
    results += [_run("random_features", 100, s, a) for s, a in enumerate((0.66, 0.68, 0.67))]
    pixels = {(n, s): 0.3 for n in (10, 100) for s in range(3)}
    text = study.reading(results, pixels)
    assert text.startswith("### resnet50\n\n- At 10 labels per class, ")
    assert "fine-tuning has a higher test accuracy than same architecture from scratch (0.710 vs 0.503" in text
    assert ("At 10 labels per class, feature extraction and random features (same head) show no clear "
            "difference in test accuracy") in text
    assert "negative transfer at 100 labels per class: feature extraction does worse" in text
    assert "negative transfer at 10 labels" not in text
    assert ("Same architecture from scratch reaches the accuracy of fine-tuning at 10 labels per class "
            "with 100 labels per class.") in text
    assert ("Random features (same head) does not reach the accuracy of fine-tuning at 10 labels per class "
            "within the budgets run (up to 100).") in text


def test_unpaired_runs_are_refused():
    results = [_run("fine_tune", 10, 0, 0.7), _run("scratch", 10, 0, 0.5), _run("scratch", 10, 1, 0.5)]
    with pytest.raises(ValueError, match="Expected the same seeds"):
        study.comparison(results, {}, "resnet50", "fine_tune", "scratch", 10)


def test_evaluating_every_n_steps_repeats_the_training_images(splits, cache_dir):
    """`eval_every` makes an epoch that many steps over the repeated, reshuffled training images."""
    from tlhelpers import training
    from tlhelpers.protocol import FixedSchedule

    options = dict(backbone="vgg16", weights=None, seed=0, verbose=0)
    run = training.train_run(splits, "feature_extraction", protocol=FixedSchedule(3, eval_every=5, batch_size=4),
                             **options)
    assert run.config["steps"] == 15 and run.history["epoch"] == [0, 1, 2, 3]
    # Once per pass is the default: the same steps in passes of ceil(images / batch) make other curves.
    passes = training.train_run(splits, "feature_extraction", protocol=FixedSchedule(3, batch_size=4), **options)
    assert passes.config["steps"] == 3 * -(-len(splits.train) // 4)


def test_epochs_give_at_least_the_steps():
    assert study.epochs_for(10, 5, 200, 16) == 50      # 4 steps per epoch
    assert study.epochs_for(100, 5, 200, 16) == 7      # 32 steps per epoch: 224 steps
    assert study.epochs_for(1, 2, 0, 16) == 1
    assert np.isclose(study.epochs_for(100, 5, 224, 16) * 32, 224)
    # Epochs of eval_every steps do not depend on the budget.
    assert study.epochs_for(10, 5, 200, 16, eval_every=20) == study.epochs_for(100, 5, 200, 16, eval_every=20) == 10
    assert study.epochs_for(10, 5, 210, 16, eval_every=20) == 11


def test_study_command_writes_the_report_and_no_partial_file(tiny_source, tmp_path, cache_dir):
    from tlhelpers import cli

    out = tmp_path / "study"
    code = cli.main(["study", "--backbone", "vgg16", "--arms", "feature_extraction", "random_features",
                     "--labels-per-class", "2", "4", "--seeds", "0", "1", "--steps", "2", "--eval-every", "1", "--quiet",
                     "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["label_budget.png", "learning_curves.png", "results.json",
                                                     "summary.md"]
    payload = json.loads((out / "results.json").read_text())
    assert {run["config"]["arm"] for run in payload["runs"]} == {"feature_extraction", "random_features"}
    assert "## Reading" in (out / "summary.md").read_text()
