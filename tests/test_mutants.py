"""The fault catalogue and the mutation harness (`make mutants`): a small part of it runs here, so that
neither can rot between full runs."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def harness():
    spec = importlib.util.spec_from_file_location("mutants", ROOT / "tests" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_with_fault(fault, code):
    env = {**os.environ, "TLHELPERS_FAULT": fault, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


def test_the_catalogue_has_ten_faults_or_more_each_with_unit_tests():
    from tlhelpers.faults import FAULTS

    assert len(FAULTS) >= 10
    for fault in FAULTS.values():
        assert fault.description and fault.patches
        assert all((ROOT / test).is_file() for test in fault.unit_tests), fault.name


def test_an_unknown_fault_is_a_clear_error():
    completed = python_with_fault("no_such_fault", "import tlhelpers")
    assert completed.returncode != 0
    assert "Received TLHELPERS_FAULT='no_such_fault'. Expected one of: random_weights" in completed.stderr


def test_a_fault_reaches_every_module_that_imported_the_function_by_name():
    completed = python_with_fault("trainable_frozen_base", (
        "import tlhelpers.training as t, tlhelpers.models as m\n"
        "assert t.build_strategy is m.build_strategy\n"
        "assert t.build_strategy.__wrapped__.__module__ == 'tlhelpers.models'\n"
        "print('patched')"))
    assert completed.stdout.strip() == "patched", completed.stderr[-2000:]


def test_without_the_variable_nothing_is_patched():
    env = {key: value for key, value in os.environ.items() if key != "TLHELPERS_FAULT"}
    completed = subprocess.run([sys.executable, "-c", "import tlhelpers.datasets as d; "
                                "print(hasattr(d.make_splits, '__wrapped__'))"],
                               cwd=ROOT, env=env, capture_output=True, text=True)
    assert completed.stdout.strip() == "False", completed.stderr[-2000:]


def test_shuffled_labels_keeps_the_counts_and_breaks_the_pairing():
    completed = python_with_fault("shuffled_labels", (
        "import numpy as np\n"
        "from tlhelpers import datasets\n"
        "pool, test = datasets.load_embedded(datasets.DEFAULT_TARGET_CLASSES)\n"
        "s = datasets.make_splits(pool, test, 20, 5, seed=0)\n"
        "clean = datasets.make_splits.__wrapped__(pool, test, 20, 5, seed=0)\n"
        "assert (s.train.images == clean.train.images).all()\n"
        "assert (np.bincount(s.train.labels) == np.bincount(clean.train.labels)).all()\n"
        "print((s.train.labels == clean.train.labels).mean())"))
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert float(completed.stdout.strip()) < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("fault, cells", [("random_weights", {"01 c9", "01 c16"}),
                                          ("transposed_port_kernels", {"01 c9"})])
def test_the_harness_catches_faults_in_notebook_1(fault, cells):
    mutants = harness()
    record = mutants.run_one(fault, "01_source_models")
    numbers = mutants.cell_numbers(ROOT / "notebooks" / "01_source_models.ipynb")
    failed = {mutants.short(item, numbers) for item in record["failed"]}
    assert record["items"] == len(numbers)
    assert cells <= failed, record


def test_a_notebook_result_is_stale_when_its_sources_or_checked_outputs_change(tmp_path):
    import json

    mutants = harness()
    cells = [{"cell_type": "code", "source": ["print(1)"], "metadata": {"tags": ["nbval-check-output"]},
              "outputs": [{"text": "1"}]},
             {"cell_type": "code", "source": ["print(2)"], "metadata": {"tags": ["nbval-ignore-output"]},
              "outputs": [{"text": "2"}]}]
    path = tmp_path / "n.ipynb"

    def fingerprint(change):
        edited = json.loads(json.dumps(cells))
        change(edited)
        path.write_text(json.dumps({"cells": edited}))
        return mutants.notebook_fingerprint(path)

    same = fingerprint(lambda c: None)
    assert fingerprint(lambda c: c[1]["outputs"][0].update(text="3")) == same  # an ignored output
    assert fingerprint(lambda c: c[0]["outputs"][0].update(text="3")) != same  # a checked output
    assert fingerprint(lambda c: c[1].update(source=["print(3)"])) != same
    # nbval never runs markdown: a rewritten or an added explanation keeps the stored results.
    assert fingerprint(lambda c: c.insert(1, {"cell_type": "markdown", "source": ["Why"], "metadata": {}})) == same


@pytest.mark.parametrize("fault, caught_by", [
    ("start_before_training", "test_budgets::test_protocol_metrics_read_the_validation_curve"),
    ("interval_from_sd", "test_curves::test_aggregate_several_values"),
    ("labels_saved_wrong_end", "test_budgets::test_crossing_interpolates_in_log_budget"),
])
def test_the_harness_catches_the_analysis_faults_in_their_unit_tests(fault, caught_by):
    """The harness's unit-test target, on faults whose tests take seconds: each fault fails its test."""
    mutants = harness()
    record = mutants.run_one(fault, mutants.UNIT)
    assert record["items"] >= 6 and record["exit_code"] == 1, record
    assert caught_by in {mutants.short(item, {}) for item in record["failed"]}, record
