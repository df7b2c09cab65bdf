"""The mutation harness: inject each fault of `tlhelpers.faults` and record which checked notebook
cells and unit tests fail (`make mutants`).

One stored result per fault and target (a notebook, or the fault's unit tests) in `docs/mutants/`,
with a hash of the code it ran (the package, and the notebook's sources with its checked outputs or
the tests): a rerun skips what is stored (`--refresh`: what is stored for other code), so the table is
built in pieces (`--faults`, `--targets`, `--hours`). Each target runs in its own pytest process with `TLHELPERS_FAULT` set and an empty
package cache, so no feature or converted weights computed without the fault can hide it. The
baseline (no fault) runs every target too: a target that fails without a fault makes the table
meaningless, and the report says so.

    python tests/mutants.py                        # everything still missing, then the report
    python tests/mutants.py --faults random_weights --targets 01_source_models
    python tests/mutants.py --report-only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tlhelpers.faults import FAULTS  # noqa: E402  (after the path above: runs from a clone too)

OUT = ROOT / "docs" / "mutants"
REPORT = ROOT / "docs" / "mutants.md"
BASELINE = "none"
UNIT = "unit tests"
CHECK_TAG = "nbval-check-output"
NBVAL = ["--nbval-lax", "--nbval-sanitize-with", "notebooks/sanitize.cfg", "--nbval-cell-timeout=600"]


def notebooks():
    return sorted(ROOT.glob("notebooks/*.ipynb"))


def cell_numbers(path):
    """`{nbval item name: the cell's index among all cells}`: nbval numbers code cells only, the
    reviews and the notebooks' readers count every cell."""
    cells = json.loads(path.read_text())["cells"]
    code = [index for index, cell in enumerate(cells) if cell["cell_type"] == "code"]
    return {f"{path.name}::Cell {k}": index for k, index in enumerate(code)}


def checked_cells(path):
    """`{nbval item name: first source line}` of a notebook's cells tagged `nbval-check-output`."""
    cells = json.loads(path.read_text())["cells"]
    return {item: "".join(cells[index]["source"]).splitlines()[0]
            for item, index in cell_numbers(path).items()
            if CHECK_TAG in cells[index].get("metadata", {}).get("tags", [])}


def notebook_fingerprint(path):
    """What nbval's verdict on a notebook depends on: the code cells' sources, in order, and the stored
    outputs of the checked ones (`--nbval-lax` compares only those); not the outputs it ignores, and not
    the markdown cells, which nbval never runs (a rewritten explanation keeps the stored results)."""
    cells = json.loads(path.read_text())["cells"]
    return json.dumps([("code", "".join(cell["source"]),
                        cell.get("outputs") if CHECK_TAG in cell.get("metadata", {}).get("tags", []) else None)
                       for cell in cells if cell["cell_type"] == "code"], sort_keys=True).encode()


def code_hash(target):
    """sha256 over what a target's result depends on: the package, and for a notebook its
    `notebook_fingerprint` and nbval's sanitizer, for the unit tests the test files; not this harness,
    whose report may change without changing what it measured."""
    digest = hashlib.sha256()
    if target == UNIT:
        own = [(path.name, path.read_bytes()) for path in sorted(ROOT.glob("tests/*.py"))
               if path.resolve() != Path(__file__).resolve()]
    else:
        notebook = ROOT / "notebooks" / f"{target}.ipynb"
        own = [(notebook.name, notebook_fingerprint(notebook)),
               ("sanitize.cfg", (ROOT / "notebooks" / "sanitize.cfg").read_bytes())]
    for name, content in [(path.name, path.read_bytes()) for path in sorted(ROOT.glob("tlhelpers/*.py"))] + own:
        digest.update(name.encode() + content)
    return digest.hexdigest()[:16]


def all_targets():
    """What every fault (and the baseline) runs: each notebook, then the fault's unit tests (the
    baseline: all their union)."""
    return [path.stem for path in notebooks()] + [UNIT]


def unit_tests(fault):
    if fault == BASELINE:
        return sorted({test for f in FAULTS.values() for test in f.unit_tests})
    return list(FAULTS[fault].unit_tests)


def result_path(fault, target):
    return OUT / f"{fault}--{target.replace(' ', '-')}.json"


def failures(junit):
    """`(failed item names, number of items)` from a pytest JUnit XML file: `01_source_models.ipynb::Cell 4`
    for a notebook cell, `tests.test_training::test_name` for a unit test."""
    root = ElementTree.parse(junit).getroot()
    failed, total = [], 0
    for case in root.iter("testcase"):
        total += 1
        if case.find("failure") is not None or case.find("error") is not None:
            where = case.get("classname", "")
            if where.endswith(".ipynb"):
                where = where.removesuffix(".ipynb").rsplit(".", 1)[-1] + ".ipynb"
            failed.append(f"{where}::{case.get('name', '')}")
    return failed, total


def run_one(fault, target):
    """Run one target under one fault; returns the stored record (with the hash of the code it started on)."""
    code = code_hash(target)
    args = unit_tests(fault) if target == UNIT else [*NBVAL, f"notebooks/{target}.ipynb"]
    with tempfile.TemporaryDirectory(prefix="tlhelpers-mutant-") as cache:
        junit = Path(cache) / "junit.xml"
        env = {**os.environ, "TLHELPERS_PROFILE": "offline", "TLHELPERS_CACHE": str(Path(cache) / "cache"),
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("TLHELPERS_FAULT", None)
        if fault != BASELINE:
            env["TLHELPERS_FAULT"] = fault
        started = time.monotonic()
        completed = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                    "-W", "ignore::DeprecationWarning", f"--junitxml={junit}", *args],
                                   cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = round(time.monotonic() - started)
        if not junit.is_file():
            raise RuntimeError(f"pytest wrote no report for fault {fault!r}, target {target!r} (exit "
                               f"{completed.returncode}):\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
        failed, total = failures(junit)
    return {"fault": fault, "target": target, "failed": failed, "items": total, "seconds": seconds,
            "exit_code": completed.returncode, "code": code}


def stored(fault, target):
    path = result_path(fault, target)
    return json.loads(path.read_text()) if path.is_file() else None


def build(faults, targets, hours=None, refresh=False):
    """Run every (fault, target) pair not stored yet (with `refresh`: not stored for the current code),
    baseline first."""
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    codes = {target: code_hash(target) for target in targets}
    for fault in faults:
        for target in targets:
            record = stored(fault, target)
            if record is not None and (not refresh or record["code"] == codes[target]):
                continue
            if hours is not None and time.monotonic() - started > hours * 3600:
                print("time is up; run again to continue", flush=True)
                return
            record = run_one(fault, target)
            partial = result_path(fault, target).with_suffix(".part")
            partial.write_text(json.dumps(record, indent=1) + "\n")
            partial.replace(result_path(fault, target))
            print(f"{fault} / {target}: {len(record['failed'])} of {record['items']} failed, "
                  f"{record['seconds']} s", flush=True)


def short(item, numbers):
    """`01_source_models.ipynb::Cell 4` -> `01 c9` (the cell's index among all cells); a unit test
    keeps its module and name."""
    if ".ipynb::" in item:
        return f"{item[:2]} c{numbers[item]}"
    module, _, name = item.partition("::")
    return f"{module.rsplit('.', 1)[-1]}::{name}"


def report():
    """Write `docs/mutants.md` from the stored results."""
    codes = {target: code_hash(target) for target in all_targets()}
    numbers = {item: index for path in notebooks() for item, index in cell_numbers(path).items()}
    checked = {item: (path.stem, line) for path in notebooks() for item, line in checked_cells(path).items()}
    records = {(f, t): stored(f, t) for f in [BASELINE, *FAULTS] for t in all_targets()}
    older = sum(r is not None and r["code"] != codes[t] for (_, t), r in records.items())
    lines = ["# Which faults the regression check catches", "",
             "Written by `make mutants` (`tests/mutants.py`) from the results stored in `docs/mutants/`. Each fault of `tlhelpers/faults.py` is injected with "
             "`TLHELPERS_FAULT`, every notebook is checked as `make test` checks it (nbval, offline profile) "
             "and the fault's unit tests run, each in its own process with an empty package cache.", "",
             "A notebook cell counts as a catch when nbval fails it: a checked cell whose output differs, or any "
             "cell that raises. \"not run yet\" marks pairs the harness has not reached (it is built in pieces).",
             ""]
    base_failed = [item for t in all_targets() if records[BASELINE, t] for item in records[BASELINE, t]["failed"]]
    if base_failed:
        lines += ["**Without any fault these already fail, so the table below cannot be trusted:** "
                  + ", ".join(short(i, numbers) for i in base_failed), ""]
    lines += ["## Faults", "", "| fault | what breaks | checked cells that fail | other cells that fail | "
              "unit tests that fail | minutes |", "|---|---|---|---|---|---:|"]
    # {checked item: {fault that fails it: whether that result ran on the current code}}
    caught_by = {item: {} for item in checked}
    for name, fault in FAULTS.items():
        runs = [records[name, t] for t in all_targets()]
        failed = [item for r in runs if r for item in r["failed"]]
        for r in runs:
            for item in (r["failed"] if r else []):
                if item in checked:
                    caught_by[item][name] = r["code"] == codes[r["target"]]
        cells = [short(i, numbers) + ("" if caught_by[i][name] else " (older code)") for i in failed if i in checked]
        other = [short(i, numbers) for i in failed if ".ipynb::" in i and i not in checked]
        units = [short(i, numbers) for i in failed if ".ipynb::" not in i]
        missing = sum(r is None for r in runs)
        minutes = sum(r["seconds"] for r in runs if r) / 60
        lines.append(f"| `{name}` | {fault.description} | {', '.join(cells) or 'none'} | {', '.join(other) or 'none'}"
                     f" | {len(units)}{' (' + ', '.join(units[:3]) + (', ...' if len(units) > 3 else '') + ')' if units else ''}"
                     f"{f'; {missing} of {len(runs)} targets not run yet' if missing else ''} | {minutes:.1f} |")
    lines += ["", "## Checked cells", "", "| notebook | cell | first line | faults it catches |", "|---|---|---|---|"]
    missing = {path.stem: sum(records[name, path.stem] is None for name in FAULTS) for path in notebooks()}
    for item, (notebook, line) in checked.items():
        found = [name if current else f"{name} (older code)" for name, current in caught_by[item].items()]
        pending = f"{missing[notebook]} of {len(FAULTS)} faults not run yet" if missing[notebook] else ""
        lines.append(f"| {notebook} | c{numbers[item]} | `{line.strip()[:60]}` | "
                     + (", ".join(found + ([f"({pending})"] if pending else [])) if found or pending else "**none**")
                     + " |")
    complete = not any(missing.values())
    uncaught = [name for name in FAULTS if not any(name in found for found in caught_by.values())]
    idle = [item for item, found in caught_by.items() if not found and not missing[checked[item][0]]]
    done = sum(r is not None for r in records.values())
    uncaught_now = [name for name in FAULTS if not any(found.get(name) for found in caught_by.values())]
    idle_now = [short(item, numbers) for item, found in caught_by.items() if not any(found.values())]
    lines += ["", "## Summary", "",
              f"- {done} of {len(records)} fault and target pairs run (baseline included); {older} of them on "
              "older code than the current (the package, the tests or the notebook changed since; "
              "`--refresh` runs them again).",
              f"- Faults no checked cell catches{'' if complete else ' so far'}: {', '.join(uncaught) or 'none'}.",
              f"- Checked cells that catch no fault, in notebooks run under every fault: {len(idle)} of "
              f"{len(checked)} checked cells.",
              "- Counting only results on the current code (a catch marked \"older code\" may no longer hold): "
              f"faults no checked cell catches: {', '.join(uncaught_now) or 'none'}; checked cells that catch "
              f"no fault: {', '.join(idle_now) or 'none'}.", ""]
    REPORT.write_text("\n".join(lines))
    return REPORT


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", nargs="+", default=None, help=f"any of: {BASELINE}, {', '.join(FAULTS)}")
    parser.add_argument("--targets", nargs="+", default=None,
                        help="notebook stems (01_source_models ...) or 'unit tests' (default: all)")
    parser.add_argument("--hours", type=float, default=None, help="start no new run after this many hours")
    parser.add_argument("--refresh", action="store_true", help="run again what was stored for other code")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    faults = args.faults or [BASELINE, *FAULTS]
    unknown = sorted(set(faults) - {BASELINE, *FAULTS})
    if unknown:
        parser.error(f"unknown faults {unknown}; expected any of: {BASELINE}, {', '.join(FAULTS)}")
    targets = args.targets or all_targets()
    unknown = sorted(set(targets) - set(all_targets()))
    if unknown:
        parser.error(f"unknown targets {unknown}; expected any of: {', '.join(all_targets())}")
    if not args.report_only:
        build(faults, targets, args.hours, args.refresh)
    print(f"wrote {report().relative_to(ROOT)}")


if __name__ == "__main__":
    main()
