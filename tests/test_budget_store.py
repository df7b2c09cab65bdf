"""The committed budget-study stores (docs/budget-study*): runs that learnt, and reports made from them."""

import json

import pytest

from tlhelpers import budget_study
from tlhelpers.run_store import RunStore, run_key


@pytest.fixture(scope="module", params=sorted(budget_study.BUDGET_STUDIES))
def study(request):
    folder = budget_study.study_folder(request.param)
    if not (folder / "runs").is_dir():
        pytest.skip(f"no {request.param} budget-study store committed")
    return budget_study.BUDGET_STUDIES[request.param], folder


@pytest.fixture(scope="module")
def stored(study):
    return RunStore(study[1] / "runs").items()


def test_every_stored_run_learnt_and_stopped_by_the_rule(stored):
    assert stored
    for spec, result in stored:
        assert result.config["test_classes_predicted"] >= 2, spec
        # Learning-rate selection runs at a rate too small may reach the cap (the report lists them);
        # a reported run may not.
        if spec["seed"] != budget_study.SELECTION_SEED:
            assert result.config["stopped_by"] == "patience", f"stopped by its cap while improving: {spec}"
        assert result.config["best_step"] < result.config["stopped_step"]
        assert result.config["learning_rate_used"] == spec["learning_rate"]
        assert result.labels_per_class == spec["labels_per_class"] and result.seed == spec["seed"]


def test_the_committed_report_is_made_from_the_stored_runs(study, stored):
    config, folder = study
    written = json.loads((folder / "analysis.json").read_text())
    recomputed = budget_study.analyse(config, folder / "runs")
    for key in ("table", "labels_saved", "flags", "learning_rates", "protocol", "selection", "small_cnn_from"):
        assert json.loads(json.dumps(recomputed[key])) == written[key], key
    assert {run_key(spec) for spec, _ in stored} == {path.stem for path in (folder / "runs").glob("*.json")}
