import matplotlib

matplotlib.use("Agg")

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import saturating, synthetic_run
from tlhelpers import curves, report


def make_run(strategy, labels_per_class, seed, asymptote, test_accuracy, y0=0.1, tau=None):
    tau = tau or (0.5 if strategy != "scratch" else 4.0)
    curve = saturating(asymptote, y0, tau) + 0.01 * seed
    return synthetic_run(strategy, labels_per_class, seed, curve, test_accuracy + 0.02 * seed,
                         wall_time_s=5.0 + seed, trainable_params=10, non_trainable_params=100,
                         phase_starts=[4] if strategy == "fine_tune" else [], config={"image_size": 96})





@pytest.fixture
def runs():
    results = []
    for budget, (scratch, transfer) in {10: (0.3, 0.7), 100: (0.8, 0.75)}.items():
        for seed in range(2):
            results.append(make_run("scratch", budget, seed, scratch, scratch))
            results.append(make_run("fine_tune", budget, seed, transfer, transfer))
    return results


RUN_KEYS = {"backbone", "weights", "strategy", "labels_per_class", "seed", "history", "test_accuracy",
            "initial", "start", "slope", "asymptote", "final", "wall_time_s", "trainable_params"}
SUMMARY_KEYS = {"backbone", "weights", "strategy", "labels_per_class", "n_seeds", "test_accuracy_mean",
                "test_accuracy_std", "start_mean", "slope_mean", "asymptote_mean"}


def test_payload_shape_and_json_serialisable(runs):
    runs[0].test_accuracy = np.float32(0.25)  # numpy scalars must be converted
    runs[0].history["val_loss"] = np.asarray(runs[0].history["val_loss"])
    payload = report.results_payload(runs, {"epochs": np.int64(8), "budgets": (10, 100)})
    assert set(payload) == {"config", "runs", "summary"}
    assert payload["config"] == {"epochs": 8, "budgets": [10, 100]}
    assert len(payload["runs"]) == 8 and len(payload["summary"]) == 4
    for run in payload["runs"]:
        assert RUN_KEYS <= set(run)
        assert set(run["history"]) == {"epoch", "accuracy", "val_accuracy", "loss", "val_loss"}
    for row in payload["summary"]:
        assert SUMMARY_KEYS <= set(row)
    assert payload["runs"][1]["start"] == pytest.approx(runs[1].history["val_accuracy"][1])
    assert json.loads(json.dumps(payload, allow_nan=False)) == payload


def test_write_report_files_and_round_trip(runs, tmp_path):
    config = {"epochs": 8, "classes": ["cat", "dog"]}
    paths = report.write_report(tmp_path / "out", runs, config)
    assert set(paths) == {"results", "learning_curves", "metrics", "label_budget", "summary"}
    for name in ("learning_curves", "metrics", "label_budget"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert paths[name].stat().st_size > 1000
    loaded, loaded_config = report.load_results(paths["results"])
    assert loaded == runs
    assert loaded_config == config
    markdown = paths["summary"].read_text()
    assert markdown.startswith("# ")
    assert report.summary_table(curves.summarize(runs)) in markdown
    for figure in ("learning_curves.png", "metrics.png", "label_budget.png"):
        assert f"({figure})" in markdown
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_write_report_single_run(tmp_path):
    paths = report.write_report(tmp_path, [make_run("feature_extraction", 5, 0, 0.6, 0.6)], {})
    assert paths["label_budget"].stat().st_size > 1000
    assert "no scratch or small_cnn baseline" in paths["summary"].read_text().lower()


def test_load_results_rejects_other_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"config": {}}))
    with pytest.raises(ValueError, match="runs"):
        report.load_results(path)


def test_summary_table_formats_rows(runs):
    table = report.summary_table(curves.summarize(runs)).splitlines()
    assert table[0].startswith("| backbone | weights | strategy | labels/class | seeds | test accuracy")
    assert len(table) == 2 + 4
    assert "| ResNet50 | random start | scratch | 10 | 2 | 0.310 ± 0.014 |" in table[2]
    one_seed = report.summary_table(curves.summarize(runs[:1])).splitlines()[2]
    assert "| 1 | " in one_seed and "±" not in one_seed


def test_reading_positive_and_negative_transfer(runs):
    text = report.reading(curves.summarize(runs))
    at_10, at_100 = text.split("At 10 labels per class, ")[1], text.split("At 100 labels per class, ")[1]
    assert at_10.startswith("fine-tuning starts 0.")
    assert "higher than scratch" in at_10[:50]
    assert "/epoch faster at first" in at_10
    assert "0.40 higher test accuracy (0.71 vs 0.31)" in at_10
    assert "negative transfer" not in at_10.split("At 100")[0]
    assert "0.05 lower test accuracy (0.76 vs 0.81)" in at_100
    assert "negative transfer" in at_100
    assert "Scratch catches up with fine-tuning at 100 labels per class." in text


def test_reading_uses_small_cnn_and_reports_no_crossover():
    rows = curves.summarize([make_run("small_cnn", 10, 0, 0.3, 0.3), make_run("small_cnn", 50, 0, 0.5, 0.5),
                             make_run("feature_extraction", 10, 0, 0.7, 0.7, y0=0.05),
                             make_run("feature_extraction", 50, 0, 0.8, 0.8)])
    text = report.reading(rows)
    assert "higher than the small CNN" in text
    assert "lower" not in text.split("At 50")[0]
    assert "does not catch up with feature extraction" in text


def test_reading_handles_missing_baseline_budget():
    rows = curves.summarize([make_run("scratch", 10, 0, 0.3, 0.3), make_run("fine_tune", 20, 0, 0.7, 0.7)])
    expected = "At 20 labels per class there is no scratch run to compare fine-tuning with."
    assert expected in report.reading(rows)
    assert report.reading([]) == "There are no runs to compare."


def test_modules_import_without_tensorflow_or_side_effects():
    # Reading rcParams["backend"] would resolve the backend and import pyplot, so skip that key.
    code = (
        "import sys, matplotlib, tlhelpers\n"
        "def params():\n"
        "    return {key: matplotlib.rcParams[key] for key in matplotlib.rcParams if key != 'backend'}\n"
        "before = set(sys.modules); old_params = params()\n"
        "import tlhelpers.curves, tlhelpers.plots, tlhelpers.report\n"
        "new = set(sys.modules) - before\n"
        "assert not any(name.split('.')[0] in ('tensorflow', 'keras') for name in new), new\n"
        "assert 'matplotlib.pyplot' not in new\n"
        "assert params() == old_params\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == ""


def test_a_still_rising_curve_gets_no_asymptote_in_the_table_or_the_reading():
    from conftest import synthetic_run

    rising = [synthetic_run("scratch", 10, seed, np.linspace(0.1, 0.5 + 0.01 * seed, 9), 0.5) for seed in range(3)]
    levelled = [make_run("feature_extraction", 10, seed, 0.8, 0.8) for seed in range(3)]
    rows = curves.summarize(rising + levelled)
    assert [row["asymptote_levelled"] for row in rows] == [0, 3]
    table = report.summary_table(rows)
    assert "| n/a (still rising) | linear fallback x3 |" in table
    assert "| saturating fit x3 |" in table
    assert "has no asymptote to compare" in report.reading(rows)


def test_a_wandering_curve_is_no_level_not_still_rising():
    from conftest import synthetic_run

    noise = [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.196, 0.2, 0.264, 0.196]
    rows = curves.summarize([synthetic_run("scratch", 10, seed, np.array(noise) + 0.001 * seed, 0.2)
                             for seed in range(3)])
    assert rows[0]["asymptote_levelled"] == 0 and rows[0]["improving"] == 0
    assert "| n/a (no level) |" in report.summary_table(rows)
