"""Drop TensorFlow's C++ log lines and Python warnings from stored notebook outputs, and store the
kernel as JupyterLab names the project's (so that a notebook does not open as modified).

TensorFlow writes timestamped start-up and runtime logs straight to the
process's stderr, where no Python setting reaches them. They carry no
information for a reader and change on every run, so `make notebooks` removes
them after executing. Usage: python notebooks/tidy_outputs.py NOTEBOOK...
"""

import re
import sys

import nbformat

# What `python -m ipykernel install` (the kernel of .venv) calls itself; JupyterLab marks a notebook
# modified when it opens if the stored name differs.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
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
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    nbformat.write(notebook, path)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        tidy(name)
