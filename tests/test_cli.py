"""The main command: validation before training, clear errors, an end-to-end report."""

import json
import os
import subprocess
import sys

import pytest

from tlhelpers import cli, quiet
from tlhelpers.backbones import build_base


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backbone", "resnet5"], "Received backbones=['resnet5']"),
        (["--strategies", "finetune"], "Received strategies=['finetune']"),
        (["--dataset", "/no/such/folder"], "Received dataset='/no/such/folder'"),
        (["--target-classes", "Bag", "Coat"], "overlap: ['Coat']"),
        (["--target-classes", "Sock", "Bag"], "Received class 'Sock'"),
        (["--dataset", "digits", "--target-classes", "Bag", "Shirt"], "embedded dataset only"),
        (["--weights", "none"], "fine-tuning random weights is training from scratch"),
        (["--epochs", "2", "--head-epochs", "2"], "head_epochs=2 with epochs=2"),
        (["--head-epochs", "2"], "head_epochs=2 without epochs"),
        (["--patience", "0"], "patience=0"),
        (["--max-steps", "10"], "max_steps=10 and eval_every=50"),
        (["--image-size", "16"], "at least 32"),
        (["--labels-per-class", "0"], "labels_per_class=[0]"),
        (["--labels-per-class", "1990"], "Class 'Sandal' has 2000 training examples"),
        (["--distribute", "multi-worker"], "without TF_CONFIG"),
    ],
)
def test_bad_input_gives_one_clear_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = cli.main(["run", "--out", str(tmp_path / "r"), "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_debug_shows_the_traceback():
    with pytest.raises(ValueError, match="resnet5"):
        cli.main(["--debug", "run", "--backbone", "resnet5"])


def test_offline_imagenet_fails_before_training(capsys, tmp_path):
    from tlhelpers.paths import keras_cache_dir
    from tlhelpers.registry import get_backbone

    if (keras_cache_dir() / get_backbone("vgg16").imagenet_file).exists():
        pytest.skip("ImageNet weights cached here")
    code = cli.main(["run", "--backbone", "vgg16", "--weights", "imagenet", "--quiet",
                     "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    if code == 0:
        pytest.skip("online machine")
    assert code == 2 and "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in err


def test_end_to_end_report(tmp_path, cache_dir):
    weights = tmp_path / "vgg16_random.weights.h5"
    build_base("vgg16", weights=None, image_size=32).save_weights(weights)
    out = tmp_path / "report"
    command = [sys.executable, "-m", "tlhelpers", "run", "--backbone", "vgg16", "--weights", str(weights),
               "--strategies", "feature_extraction", "small_cnn", "--labels-per-class", "3", "6",
               "--seeds", "0", "1", "--epochs", "2", "--head-epochs", "0", "--validation-per-class", "5",
               "--dataset", "digits", "--out", str(out)]
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "[8/8]" in completed.stdout
    # TensorFlow's start-up notices do not reach the user.
    assert not [line for line in completed.stderr.encode().splitlines() if quiet.LOG_LINE.match(line)], \
        completed.stderr[:2000]
    payload = json.loads((out / "results.json").read_text())
    assert payload["config"]["dataset"] == "digits"
    assert len(payload["runs"]) == 8
    run = payload["runs"][0]
    for key in ("backbone", "weights", "strategy", "labels_per_class", "seed", "history", "test_accuracy",
                "initial", "start", "slope", "asymptote", "final", "wall_time_s", "trainable_params"):
        assert key in run
    assert run["history"]["epoch"] == [0, 1, 2]
    assert {row["strategy"] for row in payload["summary"]} == {"feature_extraction", "small_cnn"}
    assert all(row["n_seeds"] == 2 for row in payload["summary"])
    for name in ("learning_curves.png", "metrics.png", "label_budget.png"):
        assert (out / name).stat().st_size > 10_000
    summary = (out / "summary.md").read_text()
    assert "| feature_extraction |" in summary or "feature" in summary


def test_online_profile_offline_fails_fast_before_training(tmp_path):
    import os
    import socket
    import time

    with socket.socket() as probe:  # A port nobody listens on stands in for "no internet".
        probe.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "TLHELPERS_MIRROR": unreachable,
           "TLHELPERS_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "report"
    command = [sys.executable, "-m", "tlhelpers", "run", "--weights", "imagenet", "--dataset", "flowers",
               "--image-size", "224", "--out", str(out)]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    elapsed = time.perf_counter() - start
    errors = [line for line in completed.stderr.splitlines() if line.startswith("tlhelpers: error:")]
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert len(errors) == 1 and "Traceback" not in completed.stderr
    for part in ("photo dataset 'flowers'", unreachable + "/flower_photos.tgz",
                 "tlhelpers data add flowers flower_photos.tgz", "TLHELPERS_MIRROR",
                 str(tmp_path / "keras" / "datasets" / "flower_photos.tgz")):
        assert part in errors[0]
    assert "Running" not in completed.stdout and not out.exists()
    assert elapsed < 60  # Python and TensorFlow start-up; the download attempt itself fails at once.
    assert sorted(p.name for p in (tmp_path / "keras" / "datasets").iterdir()) == []


def test_run_accepts_registry_photo_datasets():
    from tlhelpers.experiments import DATASETS, ExperimentConfig, check_config

    assert {"cats_vs_dogs", "flowers"} <= set(DATASETS)
    check_config(ExperimentConfig(dataset="cats_vs_dogs", weights="imagenet", image_size=160))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["study", "--seeds", "0"], "Expected at least 2 seeds"),
        (["study", "--backbone", "resnet5"], "Received backbone='resnet5' for a shipped source model"),
        (["study", "--arms", "finetune"], "Received arms=['finetune']"),
        (["study", "--steps", "10", "--eval-every", "20"], "Received steps=10 and eval_every=20"),
        (["source-model", "--task", "clean", "--retrain"], "Received --retrain with --task clean"),
        (["source-model", "--task", "clutter", "--backbone", "vgg16", "--out", "x"], "--out needs --retrain"),
    ],
)
def test_study_and_source_model_bad_input(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main([*argv, *(["--out", "r", "--quiet"] if argv[0] == "study" else [])])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_random_features_control_runs_from_the_command_line_under_the_protocol(tmp_path, cache_dir):
    out = tmp_path / "report"
    code = cli.main(["run", "--backbone", "vgg16", "--weights", "none", "--strategies", "feature_extraction",
                     "--labels-per-class", "3", "--seeds", "0", "1", "--max-steps", "20", "--eval-every", "5",
                     "--patience", "2", "--validation-per-class", "3", "--dataset", "digits", "--quiet",
                     "--out", str(out)])
    assert code == 0
    payload = json.loads((out / "results.json").read_text())
    runs = payload["runs"]
    assert [(run["strategy"], run["weights"]) for run in runs] == [("feature_extraction", "none")] * 2
    assert payload["config"]["protocol"]["max_steps"] == 20 and payload["config"]["epochs"] is None
    for run in runs:
        assert run["config"]["protocol"]["patience"] == 2 and run["config"]["stopped_step"] <= 20
        assert run["history"]["epoch"][-1] * 5 == run["config"]["stopped_step"]


def test_unreachable_hub_handle_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub-cache"))
    # An address on this machine with nothing listening: the download fails as it would offline.
    handle = "hub:http://127.0.0.1:9/feature_vector/5"
    code = cli.main(["run", "--backbone", handle, "--weights", "hub", "--strategies", "feature_extraction",
                     "--quiet", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Could not download the TF-Hub model" in err and "Traceback" not in err


@pytest.mark.parametrize("error", ["DataError", "WeightsUnavailableError", "DownloadError", "HubUnavailableError",
                                   "SourceWeightsError"])
def test_every_package_error_is_one_line_and_exit_2(error, capsys, monkeypatch):
    from tlhelpers import errors

    def fail(args):
        raise getattr(errors, error)(f"Received something. Expected something else ({error}).")

    monkeypatch.setattr(cli, "command_doctor", fail)
    assert cli.main(["doctor"]) == 2
    err = capsys.readouterr().err
    assert err == f"tlhelpers: error: Received something. Expected something else ({error}).\n"
    assert issubclass(getattr(errors, error), errors.TlhelpersError)
