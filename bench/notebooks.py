"""Benchmark 4: wall time of each notebook and of the whole set, offline profile.

Executes copies of the notebooks (the stored outputs are not touched) the way
`make notebooks` does. `--cold` uses an empty package cache, so the first
notebook that needs a source model trains it.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from common import machine, report, timed


def execute(path, env):
    """Execute one notebook with nbconvert (same options as `make notebooks`)."""
    jupyter = os.path.join(os.path.dirname(sys.executable), "jupyter")
    subprocess.run([jupyter, "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    "--ExecutePreprocessor.timeout=3600", "--ExecutePreprocessor.kernel_name=python3",
                    path], env=env, check=True, capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="start from an empty package cache")
    parser.add_argument("notebooks", nargs="*", default=sorted(glob.glob("notebooks/*.ipynb")))
    args = parser.parse_args()

    print(machine())
    env = dict(os.environ, TLHELPERS_PROFILE="offline", TF_CPP_MIN_LOG_LEVEL="3")
    rows, total = [], 0.0
    with tempfile.TemporaryDirectory() as scratch:
        if args.cold:
            env["TLHELPERS_CACHE"] = os.path.join(scratch, "cache")
        for notebook in args.notebooks:
            # Run next to the originals so relative paths (data/, notebooks/) still resolve.
            copy = notebook.replace(".ipynb", ".bench.ipynb")
            shutil.copy(notebook, copy)
            try:
                _, seconds = timed(execute, copy, env)
            finally:
                os.remove(copy)
            total += seconds
            rows.append((os.path.basename(notebook), f"{seconds:.0f} s"))
    rows.append(("all notebooks", f"{total:.0f} s ({total / 60:.1f} min)"))
    report(f"Notebooks ({'cold' if args.cold else 'warm'} cache)", rows,
           target="each under 5 min; whole check warm under 10 min, cold under 20 min")


if __name__ == "__main__":
    main()
