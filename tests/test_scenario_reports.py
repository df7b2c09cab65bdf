"""The committed scenario reports (docs/*-scenarios/summary.md): each says what its store of runs gives."""

import importlib
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(params=["imagenet_scenarios", "garment_scenarios"])
def script(request, monkeypatch):
    # The scripts import each other from docs/, as they do when run from the repository root.
    monkeypatch.syspath_prepend(str(DOCS))
    module = importlib.import_module(request.param)
    yield module
    sys.modules.pop(request.param, None)


def made_from_store(text):
    """A report's results: everything before "How it was made" (machine and wall time vary by call)."""
    return text.split("## How it was made")[0]


def test_the_committed_scenario_report_is_made_from_its_stored_runs(script):
    committed = script.FOLDER / "summary.md"
    if not (script.FOLDER / "runs").is_dir():
        pytest.skip(f"no store committed in {script.FOLDER}")
    assert made_from_store(script.summary()) == made_from_store(committed.read_text())

