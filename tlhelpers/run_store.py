"""A resumable store of training runs: one JSON file per run, named after its whole configuration.

A study that takes hours is built in pieces: each finished run is written at
once (atomically, so an interrupted write leaves no file), and a rerun skips
every run whose configuration is already stored. The file name is a hash of
the configuration (`run_key`); the file holds the configuration itself too,
and a file whose configuration does not match its name is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tlhelpers.errors import DataError
from tlhelpers.results import RunResult, atomic_write_text


def run_key(spec):
    """A short, stable name for a run configuration (a JSON-serialisable dict)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class RunStore:
    """Runs stored in `folder`, one `<run_key>.json` each: `{"spec": ..., "result": RunResult dict}`."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def path(self, spec):
        return self.folder / f"{run_key(spec)}.json"

    def get(self, spec):
        """The stored `RunResult` of `spec`, or None when it has not been run."""
        path = self.path(spec)
        return self._read(path)[1] if path.is_file() else None

    def put(self, spec, result):
        """Store `result` as the run of `spec` (atomically)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path(spec), json.dumps({"spec": spec, "result": result.to_dict()}, indent=1) + "\n")

    def items(self):
        """Every stored `(spec, RunResult)`, in file-name order."""
        # Names starting with a dot are writes in progress (`results.atomic_output`).
        return [self._read(path) for path in sorted(self.folder.glob("*.json")) if not path.name.startswith(".")]

    def _read(self, path):
        try:
            payload = json.loads(path.read_text())
            spec, result = payload["spec"], RunResult.from_dict(payload["result"])
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(f"Stored run {path} cannot be read ({error}). Expected a file written by "
                            "`RunStore.put`; delete it and run the study again to recompute that run.") from error
        if path.stem != run_key(spec):
            raise DataError(f"Stored run {path} holds the configuration of {run_key(spec)}.json. Expected "
                            "its file name to match its configuration; delete it and run the study again.")
        return spec, result
