"""Benchmark 3: the main command, `make run`, with a warm or (`--cold`) a cold cache.

`make run` is `tlhelpers budget-study` with the cheap arms (feature extraction,
random features, the small CNN, pixels; both sources, 10 to 250 labels per
class, 5 seeds, each arm's learning rate chosen on validation, every run
trained by the protocol until it stops improving) on Fashion-MNIST in clutter.
It starts from an empty run store, so every run is trained. By default the
features are already cached (warm); with `--cold` the package cache is
empty, so the run computes every feature too (the source models are
shipped). Prints wall time and the peak resident memory of the command.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile

from common import machine, report, timed

# The arms `make run` passes to `tlhelpers budget-study` (see the Makefile).
MAKE_RUN_ARMS = ("feature_extraction", "random_features", "small_cnn")


def run_command(out, cache=None):
    """Run `make run`'s command in a child process; return its exit code."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if cache:
        env["TLHELPERS_CACHE"] = cache
    command = [sys.executable, "-m", "tlhelpers", "budget-study", "--arms", *MAKE_RUN_ARMS, "--quiet", "--out", out]
    return subprocess.run(command, env=env, check=True).returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="run with an empty package cache instead")
    parser.add_argument("--keep", metavar="DIR",
                        help="write the report to DIR/warm (or DIR/cold) to compare it with report/; "
                             "DIR must be new, or its stored runs are skipped")
    args = parser.parse_args()

    print(machine())
    kind = "cold" if args.cold else "warm"
    with tempfile.TemporaryDirectory() as scratch:
        cache = os.path.join(scratch, "cache") if args.cold else None
        _, seconds = timed(run_command, os.path.join(args.keep or scratch, kind), cache)
    # ru_maxrss of finished children is in kilobytes on Linux: the largest child's peak.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    rows = [(f"{kind}: wall time", f"{seconds:.0f} s ({seconds / 60:.1f} min)"),
            ("peak resident memory (largest run)", f"{peak:.2f} GB")]
    report("Main command (make run: the cheap arms of the budget study, 177 runs at 48 px)", rows,
           target="cold under 60 min on an AVX2-only CPU, peak memory under 3 GB")


if __name__ == "__main__":
    main()
