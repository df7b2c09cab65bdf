"""Shared fixtures: a private package cache and small image folders."""

import http.server
import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture(scope="module")
def splits():
    """A tiny target task: 4 labels and 4 validation examples per class, 50 test examples."""
    from tlhelpers import datasets

    pool, test = datasets.load_embedded(datasets.DEFAULT_TARGET_CLASSES)
    splits = datasets.make_splits(pool, test, labels_per_class=4, validation_per_class=4, seed=0)
    splits.test = test.subset(np.arange(0, len(test), 50))
    return splits


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private, empty package cache for one test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("TLHELPERS_CACHE", str(folder))
    return folder


def write_png(path, value=128, size=(12, 10)):
    """Write a small valid PNG image."""
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    path.write_bytes(tf.io.encode_png(pixels).numpy())


def write_jpeg(path, value=128, size=(16, 16)):
    """Write a small valid JPEG image and return its bytes."""
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((*size, 3), value, dtype=np.uint8)
    data = tf.io.encode_jpeg(pixels).numpy()
    path.write_bytes(data)
    return data


def saturating(asymptote, y0, tau, last_epoch=8):
    """A learning curve `A - (A - y0) exp(-t / tau)` over epochs 0..last_epoch."""
    epochs = np.arange(last_epoch + 1, dtype=float)
    return asymptote - (asymptote - y0) * np.exp(-epochs / tau)


def synthetic_run(strategy, labels_per_class, seed, curve, test_accuracy, **fields):
    """A RunResult whose accuracy curves are `curve` (losses mirror it); `fields` override the rest."""
    from tlhelpers.results import RunResult

    curve = [float(value) for value in curve]
    values = dict(
        backbone="resnet50", weights="none" if strategy == "scratch" else "embedded", strategy=strategy,
        labels_per_class=labels_per_class, seed=seed,
        history={"epoch": list(range(len(curve))), "accuracy": curve, "val_accuracy": curve,
                 "loss": [2.3 - 2 * value for value in curve],
                 "val_loss": [2.3 - 2 * value for value in curve]},
        test_accuracy=test_accuracy, test_loss=1.0, wall_time_s=10.0 + seed,
        trainable_params=100, non_trainable_params=1000)
    values.update(fields)
    return RunResult(**values)


class Server:
    """A web server on 127.0.0.1 that serves `files` (URL path -> bytes) and records each path
    asked for, without its query string; `/cut/<path>` promises all bytes and sends half."""

    def __init__(self):
        self.files, self.requests = {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                server.requests.append(path)
                cut = path.startswith("/cut/")
                data = server.files.get(path.removeprefix("/cut") if cut else path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if cut else data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
