"""Stand-ins for the ImageNet profile's downloads: the real file names and layouts, generated here.

Weights files come from the Keras architectures with random weights, in the legacy HDF5
layout Keras publishes (`load_weights` reads them by layer name); the class index has
1,000 made-up names; the photo archive has a few generated JPEGs per class in the
published folder layout. Their hashes are computed here and injected by the tests only.
"""

import hashlib
import io
import json
import tarfile

import numpy as np


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_file(folder, spec, include_top):
    """Write `spec`'s ImageNet weights file (random weights, the published name) into `folder`."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    name = spec.imagenet_top_file if include_top else spec.imagenet_file
    model = spec.builder(include_top=include_top, weights=None)
    path = folder / name
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return path


def class_index(folder, name="imagenet_class_index.json"):
    """Write a class index in the published layout: `{"0": ["n00000000", "class_0"], ...}`."""
    path = folder / name
    path.write_text(json.dumps({str(i): [f"n{i:08d}", f"standin_{i}"] for i in range(1000)}))
    return path


def photo_archive(folder, spec, per_class, side=40, seed=0):
    """Write `spec.archive` (a .tgz) with `per_class` JPEGs per class under `spec.root/<class>/`.

    Each class has its own colour, so a classifier can learn them. Returns `(path, counts)`.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for label, class_name in enumerate(spec.class_names):
            colour = np.array([(label * 53) % 256, (label * 97 + 80) % 256, (label * 151 + 160) % 256])
            for index in range(per_class):
                image = np.clip(colour + rng.normal(0, 40, (side, side, 3)), 0, 255).astype(np.uint8)
                data = tf.io.encode_jpeg(image).numpy()
                info = tarfile.TarInfo(f"{spec.root}/{class_name}/{index:04d}.jpg")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    path = folder / spec.archive
    path.write_bytes(buffer.getvalue())
    return path, {"": tuple([per_class] * len(spec.class_names))}
