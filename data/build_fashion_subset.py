"""Build `data/fashion_mnist_subset.npz` from the four original Fashion-MNIST files.

Usage:
    python data/build_fashion_subset.py [--source DIR] [--out FILE] [--check]

The originals are looked for in `--source`, then in Debian's
`/usr/share/datasets/fashion-mnist/` (package `dataset-fashion-mnist`), then
in `~/.keras/datasets/fashion-mnist/` (where
`keras.datasets.fashion_mnist.load_data()` puts them). Their decompressed
content is checked against known md5 sums (the gzip wrappers differ between
those sources, the idx bytes do not). The selection is deterministic and the
archive is written with fixed timestamps, so a rebuild is byte-identical;
`--check` rebuilds in memory and compares with the committed file.
"""

import argparse
import gzip
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# md5 of the decompressed idx files.
IDX_MD5 = {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}
TRAIN_PER_CLASS = 2000
TEST_PER_CLASS = 500
SELECTION_SEED = 2026
SEARCH_DIRS = (
    Path("/usr/share/datasets/fashion-mnist"),
    Path.home() / ".keras" / "datasets" / "fashion-mnist",
)
DEFAULT_OUT = Path(__file__).resolve().parent / "fashion_mnist_subset.npz"


def find_source(source=None):
    """Return the first folder that holds all four original files."""
    candidates = [Path(source)] if source else list(SEARCH_DIRS)
    for folder in candidates:
        if all((folder / name).is_file() for name in IDX_MD5):
            return folder
    sys.exit(
        "Fashion-MNIST originals not found. Looked in: "
        + ", ".join(str(c) for c in candidates)
        + ". Install Debian's `dataset-fashion-mnist` package, or run "
        "`python -c 'import keras; keras.datasets.fashion_mnist.load_data()'` "
        "online, or pass --source DIR."
    )


def read_idx(path):
    """Read one gzip'd idx file after checking its md5."""
    raw = gzip.decompress(path.read_bytes())
    digest = hashlib.md5(raw).hexdigest()
    if digest != IDX_MD5[path.name]:
        sys.exit(
            f"{path}: md5 of the decompressed content is {digest}, expected "
            f"{IDX_MD5[path.name]}. The file is not the original Fashion-MNIST."
        )
    offset = 16 if "images" in path.name else 8
    array = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    return array.reshape(-1, 28, 28) if "images" in path.name else array


def select(labels, per_class, rng):
    """Indices of `per_class` examples of every class, in original order."""
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(10)]
    return np.sort(np.concatenate(chosen))


def build(folder):
    """Return the archive bytes built from the originals in `folder`."""
    x_train = read_idx(folder / "train-images-idx3-ubyte.gz")
    y_train = read_idx(folder / "train-labels-idx1-ubyte.gz")
    x_test = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    y_test = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(SELECTION_SEED)
    train_index = select(y_train, TRAIN_PER_CLASS, rng)
    test_index = select(y_test, TEST_PER_CLASS, rng)
    arrays = {
        "x_train": x_train[train_index],
        "y_train": y_train[train_index],
        "x_test": x_test[test_index],
        "y_test": y_test[test_index],
        "class_names": np.array(CLASS_NAMES),
    }
    buffer = io.BytesIO()
    # Fixed member timestamps make the archive byte-identical across rebuilds.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="folder with the four original .gz files")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="archive to write")
    parser.add_argument("--check", action="store_true", help="compare a rebuild with --out")
    args = parser.parse_args(argv)
    folder = find_source(args.source)
    payload = build(folder)
    out = Path(args.out)
    digest = hashlib.md5(payload).hexdigest()
    if args.check:
        same = out.is_file() and out.read_bytes() == payload
        print(f"rebuild md5 {digest}: {'identical to' if same else 'DIFFERS from'} {out}")
        return 0 if same else 1
    out.write_bytes(payload)
    print(f"wrote {out} ({len(payload) / 1e6:.1f} MB, md5 {digest}) from {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
