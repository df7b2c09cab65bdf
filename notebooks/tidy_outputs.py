"""After `make notebooks` executed a notebook: store the kernel as JupyterLab names the project's (so
that a notebook does not open as modified), and refuse TensorFlow log lines in its outputs.

A student's kernel shows whatever TensorFlow's C++ code writes to stderr, so those lines are
silenced where they start (`tlhelpers.notebook.setup`, the first cell of every notebook), not
removed from the stored outputs afterwards: a notebook whose run printed one fails here, naming the
cell. Usage: python notebooks/tidy_outputs.py NOTEBOOK...
"""

import re
import sys

import nbformat

# What `python -m ipykernel install` (the kernel of .venv) calls itself; JupyterLab marks a notebook
# modified when it opens if the stored name differs.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+|WARNING: All log messages before absl|WARNING:tensorflow:)")


def log_lines(notebook):
    """`[(cell index among all cells, line)]` of TensorFlow log lines in the notebook's stream outputs."""
    return [(index, line) for index, cell in enumerate(notebook.cells) for output in cell.get("outputs", [])
            if output.output_type == "stream" for line in output.text.splitlines() if LOG_LINE.match(line)]


def tidy(path):
    """Store the project's kernel name in `path`.

    Raises:
        SystemExit: when an output holds a TensorFlow log line (the notebook is left as executed).
    """
    notebook = nbformat.read(path, as_version=4)
    found = log_lines(notebook)
    if found:
        index, line = found[0]
        raise SystemExit(f"Received {len(found)} TensorFlow log line(s) in the outputs of {path}, first in cell "
                         f"c{index}: {line[:120]!r}. Expected none: the first cell must call "
                         "tlhelpers.notebook.setup() before anything imports TensorFlow, and no cell may start "
                         "a process that logs to stderr.")
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    nbformat.write(notebook, path)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        tidy(name)
