"""Benchmark 4: wall time of the notebook regression check and of each notebook, offline profile.

Runs the check exactly as `make check-notebooks` does (nbval, notebooks on
parallel workers) and reads each notebook's time from pytest's JUnit report:
the sum of its cells' times, measured while the other worker runs another
notebook. `--cold` uses an empty package cache, so the source models are
trained by the first notebook that needs them. `--one-by-one` instead executes
each notebook alone, one after another (as a student runs it), and prints its
wall time; with `ONEDNN_MAX_CPU_ISA=AVX2` in front that is the slow-CPU figure.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from common import machine, report, timed


def notebook_times(junit_path):
    """Seconds per notebook: the sum of its cells' times in a JUnit report."""
    times = collections.Counter()
    for case in ElementTree.parse(junit_path).iter("testcase"):
        times[case.get("classname", "?").removeprefix("notebooks.")] += float(case.get("time", 0))
    return dict(sorted(times.items()))


NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def one_by_one(env, scratch):
    """`[(notebook, "N s")]`: each notebook executed alone by nbconvert into `scratch`, one after another."""
    jupyter = Path(sys.executable).with_name("jupyter")
    rows = []
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        completed, seconds = timed(subprocess.run, [str(jupyter), "nbconvert", "--to", "notebook", "--execute",
                                                    "--output-dir", scratch, str(notebook)],
                                   env=env, capture_output=True, text=True)
        if completed.returncode != 0:
            raise SystemExit(f"{notebook.name} failed (exit status {completed.returncode}):\n"
                             f"{completed.stderr[-3000:]}")
        rows.append((notebook.stem, f"{seconds:.0f} s ({seconds / 60:.1f} min)"))
        print(f"{notebook.stem}: {seconds:.0f} s", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="start from an empty package cache")
    parser.add_argument("--one-by-one", action="store_true",
                        help="execute each notebook alone, one after another, and time it")
    args = parser.parse_args()

    print(machine())
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        if args.cold:
            env["TLHELPERS_CACHE"] = os.path.join(scratch, "cache")
        if args.one_by_one:
            report(f"Each notebook alone ({'cold' if args.cold else 'warm'} cache)", one_by_one(env, scratch),
                   target="each under 4 min warm on the slow CPU (an AVX2-only AMD EPYC; ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 machine is faster)")
            return
        junit = os.path.join(scratch, "nbval.xml")
        completed, seconds = timed(subprocess.run, ["make", "-s", "check-notebooks",
                                                    f"PYTEST_ARGS=--junitxml={junit}"], env=env)
        if completed.returncode != 0:
            raise SystemExit(f"The notebook check failed (exit status {completed.returncode}); "
                             "its output is above.")
        rows = [(name, f"{value:.0f} s") for name, value in notebook_times(junit).items()]
    rows.append(("whole check (wall)", f"{seconds:.0f} s ({seconds / 60:.1f} min)"))
    report(f"Notebook check ({'cold' if args.cold else 'warm'} cache)", rows,
           target="each under 5 min; whole check warm under 10 min, cold under 20 min")


if __name__ == "__main__":
    main()
