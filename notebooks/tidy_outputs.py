"""Drop TensorFlow's C++ log lines and Python warnings from stored notebook outputs.

TensorFlow writes timestamped start-up and runtime logs straight to the
process's stderr, where no Python setting reaches them. They carry no
information for a reader and change on every run, so `make notebooks` removes
them after executing. Usage: python notebooks/tidy_outputs.py NOTEBOOK...
"""

import re
import sys

import nbformat

LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+|WARNING: All log messages before absl|WARNING:tensorflow:)")


def tidy(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        outputs = []
        for output in cell.get("outputs", []):
            # C++ logs go to stderr; TensorFlow's Python warnings can reach stdout in Jupyter.
            if output.output_type == "stream":
                kept = [line for line in output.text.splitlines(keepends=True) if not LOG_LINE.match(line)]
                if not "".join(kept).strip():
                    continue
                output.text = "".join(kept)
            outputs.append(output)
        if "outputs" in cell:
            cell.outputs = outputs
    nbformat.write(notebook, path)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        tidy(name)
