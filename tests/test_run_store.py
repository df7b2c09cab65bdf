"""The resumable run store: one file per run, named after its whole configuration."""

import json

import pytest
from conftest import synthetic_run as synthetic

from tlhelpers.errors import DataError
from tlhelpers.run_store import RunStore, run_key


def test_put_get_and_list(tmp_path):
    store = RunStore(tmp_path / "runs")
    spec = {"arm": "scratch", "labels_per_class": 10, "seed": 0, "protocol": {"patience": 10}}
    assert store.get(spec) is None and store.items() == []
    result = synthetic("scratch", 10, 0, [0.2, 0.4], 0.41)
    store.put(spec, result)
    assert store.get(spec) == result
    assert store.get({**spec, "seed": 1}) is None
    # The key does not depend on the order of the fields, and every field counts.
    assert run_key(dict(reversed(list(spec.items())))) == run_key(spec)
    assert run_key({**spec, "protocol": {"patience": 9}}) != run_key(spec)
    (store.folder / f".tmp-1-{run_key(spec)}.json").write_text("{")  # a write in progress
    assert store.items() == [(spec, result)]


def test_damaged_or_renamed_files_are_refused(tmp_path):
    store = RunStore(tmp_path)
    spec = {"seed": 0}
    store.put(spec, synthetic("scratch", 10, 0, [0.2, 0.4], 0.41))
    store.path(spec).write_text(store.path(spec).read_text()[:50])
    with pytest.raises(DataError, match="cannot be read.*delete it"):
        store.get(spec)
    store.put(spec, synthetic("scratch", 10, 0, [0.2, 0.4], 0.41))
    other = store.path({"seed": 1})
    payload = json.loads(store.path(spec).read_text())
    other.write_text(json.dumps(payload))
    with pytest.raises(DataError, match="holds the configuration of"):
        store.get({"seed": 1})
