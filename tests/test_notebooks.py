"""The notebooks as files: nbval markers as cell tags, and stored outputs a student can read.

These read the `.ipynb` JSON only; executing the notebooks is the nbval check of `make test`.
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
TAGS = {"nbval-check-output", "nbval-ignore-output"}
# TensorFlow's C++ log lines (absl format), which `notebooks/tidy_outputs.py` strips.
LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ |WARNING: All log messages before absl|WARNING:tensorflow:)",
                      re.MULTILINE)


def code_cells(path):
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


def output_text(cell):
    return "".join("".join(output.get("text", "")) for output in cell.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_markers_are_tags_and_every_check_prints(path):
    cells = code_cells(path)
    for cell in cells:
        source, tags = "".join(cell["source"]), set(cell["metadata"].get("tags", []))
        assert "NBVAL_" not in source, f"{path.name}: use the tags {sorted(TAGS)}, not comment markers"
        assert len(tags & TAGS) <= 1, f"{path.name}: a cell is both checked and ignored"
    checked = [cell for cell in cells if "nbval-check-output" in cell["metadata"].get("tags", [])]
    assert checked, f"{path.name} has no checked cell"
    assert all(output_text(cell).strip() for cell in checked), f"{path.name}: a checked cell prints nothing"


def test_the_log_pattern_matches_both_formats():
    assert LOG_LINE.search("x\nI0000 00:00:1796137161.318494   23200 port.cc:153] oneDNN custom operations")
    assert LOG_LINE.search("W1201 12:03:04.123456 1 cpu.cc:1] slow")
    assert LOG_LINE.search("WARNING:tensorflow:5 out of the last 35 calls to <function ...> triggered tf.function retracing.")
    assert not LOG_LINE.search("Epoch 1/3 I0000 is not at the start of a line")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_stored_outputs_hold_no_tensorflow_log_lines(path):
    for cell in code_cells(path):
        assert not LOG_LINE.search(output_text(cell)), f"{path.name}: run notebooks/tidy_outputs.py on it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_notebook_starts_with_the_setup_helper(path):
    first = "".join(code_cells(path)[0]["source"])
    assert first.startswith("from tlhelpers.notebook import setup\n\nsetup(seed=")
    assert "TF_CPP_MIN_LOG_LEVEL" not in first and "logging.getLogger" not in first


def test_setup_quiets_tensorflow_and_seeds(monkeypatch):
    import logging

    import numpy as np

    from tlhelpers.notebook import setup

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert setup(seed=3) == 3
    first = np.random.rand(3)
    setup(seed=3)
    assert np.array_equal(first, np.random.rand(3))
    import os

    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert logging.getLogger("tensorflow").level == logging.ERROR


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_stored_kernel_is_the_one_jupyterlab_opens_it_with(path):
    """JupyterLab marks a notebook modified on opening when its stored kernel name differs from the
    installed kernel's; `notebooks/tidy_outputs.py` stores the venv's."""
    from jupyter_client.kernelspec import KernelSpecManager

    installed = KernelSpecManager().get_kernel_spec("python3")
    stored = json.loads(path.read_text())["metadata"]["kernelspec"]
    assert (stored["name"], stored["display_name"]) == ("python3", installed.display_name), \
        f"{path.name}: run notebooks/tidy_outputs.py on it"
