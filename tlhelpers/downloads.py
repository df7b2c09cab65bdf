"""Downloads into the Keras cache: hash-checked, with fallback origins and a mirror.

Every file the online profile needs (ImageNet weights, photo archives) is
fetched here with `keras.utils.get_file`, into the same cache Keras itself
uses (`$KERAS_HOME`, default `~/.keras`), so a file placed by this module is
a cache hit for `keras.applications` too.

What Keras 3.15's `get_file` does not guarantee, and this module adds:
a file that fails its hash check stays in the cache (Keras only raises), a
corrupt archive is only a warning, and a failed extraction can leave a
half-filled folder. Here a download goes to a temporary name, is checked
(hash or size), extracted into a temporary folder, and only then moved into
place; whatever fails, nothing partial or wrong remains in the cache. (Keras
also falls back to `/tmp/.keras` when the cache folder does not exist yet, so
the folder is created first.)

`$TLHELPERS_MIRROR` (an `http://`, `https://` or `file://` base URL) replaces
every origin: the file name is appended to it. Air-gapped classrooms point it
at a shared folder or a local web server holding the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import urllib.parse
from pathlib import Path

from tlhelpers import paths
from tlhelpers.errors import DownloadError  # noqa: F401  (raised here; importable from here)
from tlhelpers.registry import KERAS_IMAGENET, get_backbone
from tlhelpers.results import atomic_output

MIRROR_ENV = "TLHELPERS_MIRROR"
MIRROR_SCHEMES = ("http", "https", "file")
# Seconds a connection may stay silent. Offline machines fail at once (name
# resolution or connection refused); this bounds the rarer silent network.
TIMEOUT_SECONDS = 20
# Where Keras publishes the no-top ImageNet weights (keras/src/applications/
# resnet.py BASE_WEIGHTS_PATH and vgg16.py WEIGHTS_PATH_NO_TOP, Keras 3.15).
IMAGENET_BASE_URLS = {
    "resnet50": "https://storage.googleapis.com/tensorflow/keras-applications/resnet/",
    "vgg16": "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/",
}


def keras_home(cache_dir=None):
    """The Keras cache root: `cache_dir`, else `$KERAS_HOME` as Keras read it at import."""
    return Path(cache_dir) if cache_dir is not None else paths.keras_cache_dir().parent


def mirror_base():
    """The mirror base URL from `$TLHELPERS_MIRROR` (without trailing slash), or None.

    Raises:
        ValueError: the variable is set but is not an http, https or file URL.
    """
    value = os.environ.get(MIRROR_ENV, "").strip()
    if not value:
        return None
    if urllib.parse.urlsplit(value).scheme not in MIRROR_SCHEMES:
        raise ValueError(f"Received {MIRROR_ENV}={value!r}. Expected a base URL starting with "
                         "http://, https:// or file:// (e.g. file:///srv/course-files).")
    return value.rstrip("/")


def resolve_origins(fname, origins):
    """The URLs to try, in order: the mirror alone if one is set, else `origins`."""
    mirror = mirror_base()
    return [f"{mirror}/{fname}"] if mirror else list(origins)


def file_digest(path, algorithm):
    """Hex digest (`"sha256"` or `"md5"`) of a file, read in chunks."""
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def hash_algorithm(file_hash):
    """`"sha256"` for a 64-digit hash, `"md5"` for a 32-digit one (Keras's rule)."""
    lengths = {64: "sha256", 32: "md5"}
    if len(file_hash) not in lengths:
        raise ValueError(f"Received file_hash={file_hash!r}. Expected a sha256 (64 hex digits) "
                         "or md5 (32 hex digits).")
    return lengths[len(file_hash)]


def check_file(path, file_hash=None, size=None):
    """Return None if `path` has the expected hash and size, else what is wrong (one line)."""
    actual_size = Path(path).stat().st_size
    if size is not None and actual_size != size:
        return f"size is {actual_size} bytes, expected {size}"
    if file_hash is not None:
        algorithm = hash_algorithm(file_hash)
        actual = file_digest(path, algorithm)
        if actual != file_hash:
            return f"{algorithm} is {actual}, expected {file_hash}"
    return None


def extraction_dir(archive_path):
    """Where Keras 3 extracts `name.ext`: `name_extracted/` beside it (name up to the first dot)."""
    archive_path = Path(archive_path)
    return archive_path.with_name(archive_path.name.split(".")[0] + "_extracted")


def extract_into_place(archive_path, destination, validate=None):
    """Extract an archive to a temporary folder, check it, then move it to `destination`.

    Args:
        archive_path: A zip or tar(.gz, .bz2) file.
        destination: The final folder (replaced if it exists).
        validate: Optional callable taking the extracted folder; raises if wrong.

    Raises:
        ValueError: the file is not a readable archive, or `validate` rejected it.
    """
    from keras.src.utils.file_utils import extract_archive

    destination = Path(destination)
    temporary = destination.with_name(f".tmp-{os.getpid()}-{destination.name}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        try:
            extracted = extract_archive(str(archive_path), str(temporary))
        except Exception as error:  # zipfile, tarfile, gzip and zlib each raise their own type.
            raise ValueError(f"archive is corrupt ({type(error).__name__}: "
                             f"{str(error).splitlines()[0][:120] if str(error) else 'no detail'})") from None
        if not extracted:
            raise ValueError("not a zip or tar archive, or a truncated one")
        if validate is not None:
            validate(temporary)
        shutil.rmtree(destination, ignore_errors=True)
        os.replace(temporary, destination)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return destination


@contextlib.contextmanager
def _socket_timeout(seconds):
    """Bound every socket operation of the block (urllib has no timeout by default)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _one_line(error, origin):
    """The first line of an error, without the URL Keras repeats in its fetch failures."""
    text = str(error).strip().splitlines()
    text = text[0] if text else type(error).__name__
    return text.replace(f"URL fetch failure on {origin}: ", "").replace("None -- ", "")[:200]


def _download(origin, temporary, timeout):
    """Fetch `origin` to `temporary` with Keras's get_file (always downloads, no cache lookup)."""
    import keras

    with _socket_timeout(timeout):
        keras.utils.get_file(fname=temporary.name, origin=origin, cache_dir=str(temporary.parent.parent),
                             cache_subdir=temporary.parent.name, force_download=True)


def cached_file(fname, cache_subdir="datasets", file_hash=None, size=None, extract=False,
                cache_dir=None):
    """The cached file (or its extraction folder) if present and correct, else None."""
    target = keras_home(cache_dir) / cache_subdir / fname
    if not target.is_file() or check_file(target, file_hash, size) is not None:
        return None
    if extract:
        return extraction_dir(target) if extraction_dir(target).is_dir() else None
    return target


def install_file(source, fname, cache_subdir="datasets", file_hash=None, size=None, extract=False,
                 cache_dir=None, validate=None):
    """Check a local file and place it in the Keras cache as a download would.

    Args:
        source: Path of the file to install.
        fname: Name in the cache.
        cache_subdir: `"models"` or `"datasets"`.
        file_hash: Expected sha256 or md5 (None: not checked).
        size: Expected size in bytes (None: not checked).
        extract: Also extract it to `<name>_extracted/`, as `get_file(extract=True)` does.
        cache_dir: Keras cache root (default: `keras_home()`).
        validate: Optional check of the extracted folder (raises if wrong).

    Returns:
        The cached file, or its extraction folder when `extract`.

    Raises:
        ValueError: hash, size or contents differ from what is expected; nothing is left behind.
    """
    source = Path(source)
    if not source.is_file():
        raise ValueError(f"Received {str(source)!r}, which is not a file.")
    problem = check_file(source, file_hash, size)
    if problem:
        raise ValueError(f"Refused {source.name}: {problem}. Nothing was copied.")
    target = keras_home(cache_dir) / cache_subdir / fname
    with atomic_output(target) as temporary:
        shutil.copyfile(source, temporary)
        if extract:
            try:
                extract_into_place(temporary, extraction_dir(target), validate)
            except ValueError as error:
                raise ValueError(f"Refused {source.name}: {error}. Nothing was copied.") from None
    return extraction_dir(target) if extract else target


def fetch(fname, origins, *, file_hash=None, size=None, cache_subdir="datasets", extract=False,
          cache_dir=None, what=None, add_command=None, validate=None, timeout=TIMEOUT_SECONDS):
    """Return a cached file, downloading it first if it is missing or wrong.

    Origins are tried in order (only the mirror if `$TLHELPERS_MIRROR` is set).
    A download is checked and, with `extract`, unpacked before it is moved
    into the cache, so a failure leaves nothing behind.

    Args:
        fname: File name in the cache (also appended to the mirror URL).
        origins: URLs to try in order (`http(s)://` or `file://`).
        file_hash: Published sha256 or md5 (None: not checked).
        size: Published size in bytes (None: not checked).
        cache_subdir: `"models"` or `"datasets"`.
        extract: Unpack to `<name>_extracted/` and return that folder.
        cache_dir: Keras cache root (default: `keras_home()`).
        what: How the error message names the file (default: `fname`).
        add_command: The `tlhelpers` command that installs the file by hand.
        validate: Optional check of the extracted folder (raises if wrong).
        timeout: Seconds a connection may stay silent.

    Returns:
        Path of the cached file, or of its extraction folder when `extract`.

    Raises:
        DownloadError: no origin delivered a correct file (offline, wrong
            hash, truncated transfer, corrupt archive).
    """
    cached = cached_file(fname, cache_subdir, file_hash, size, extract=False, cache_dir=cache_dir)
    target = keras_home(cache_dir) / cache_subdir / fname
    target.parent.mkdir(parents=True, exist_ok=True)
    if cached is not None:
        if not extract or extraction_dir(target).is_dir():
            return extraction_dir(target) if extract else target
        try:
            return extract_into_place(target, extraction_dir(target), validate)
        except ValueError:
            target.unlink()  # A cached archive that does not unpack is downloaded again.
    failures = []
    tried = resolve_origins(fname, origins)
    for origin in tried:
        temporary = target.with_name(f".tmp-{os.getpid()}-{fname}")
        try:
            _download(origin, temporary, timeout)
            problem = check_file(temporary, file_hash, size)
            if problem:
                raise ValueError(problem)
            if extract:
                extract_into_place(temporary, extraction_dir(target), validate)
            os.replace(temporary, target)
            return extraction_dir(target) if extract else target
        except Exception as error:  # Keras raises a bare Exception for network failures.
            failures.append(f"{origin} ({_one_line(error, origin)})")
        finally:
            temporary.unlink(missing_ok=True)
    how = f"run `tlhelpers {add_command}`" if add_command else f"copy it to {target}"
    raise DownloadError(
        f"Could not get {what or fname}: tried {'; '.join(failures)}. It would be cached at "
        f"{target}. To provide it by hand, download {fname} on a machine that is online and {how}, "
        f"or set {MIRROR_ENV} to a folder or server that holds it (e.g. file:///srv/course-files)."
    )


# ImageNet's class names by output index, which `decode_predictions` needs
# (keras/src/applications/imagenet_utils.py CLASS_INDEX_PATH and its file_hash, Keras 3.15).
CLASS_INDEX_FILE = "imagenet_class_index.json"
CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/" + CLASS_INDEX_FILE
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"


def fetch_class_index(cache_dir=None, timeout=TIMEOUT_SECONDS):
    """Fetch ImageNet's class index (`imagenet_class_index.json`) into the Keras `models/` cache.

    Raises:
        DownloadError: not cached and not downloadable.
    """
    return fetch(CLASS_INDEX_FILE, [CLASS_INDEX_URL], file_hash=CLASS_INDEX_MD5, cache_subdir="models",
                 cache_dir=cache_dir, what="ImageNet's class index", add_command=f"weights add {CLASS_INDEX_FILE}",
                 timeout=timeout)


def fetch_imagenet_weights(backbone, cache_dir=None, timeout=TIMEOUT_SECONDS, include_top=False):
    """Fetch a registry backbone's ImageNet weights into the Keras `models/` cache: the no-top
    file, or with `include_top` the file with the 1,000-class classifier.

    Returns:
        Path of the weights file (named as `keras.applications` expects it).

    Raises:
        ValueError: unknown backbone.
        DownloadError: not cached and not downloadable.
    """
    spec = get_backbone(backbone)
    if spec.name not in IMAGENET_BASE_URLS:
        raise ValueError(f"Received backbone={backbone!r}, which has no Keras ImageNet weights file. "
                         f"Expected one of: {', '.join(IMAGENET_BASE_URLS)}.")
    name, md5 = (spec.imagenet_top_file, spec.imagenet_top_md5) if include_top else (spec.imagenet_file,
                                                                                   spec.imagenet_md5)
    return fetch(name, [IMAGENET_BASE_URLS[spec.name] + name], file_hash=md5, cache_subdir="models",
                 cache_dir=cache_dir, what=f"the ImageNet weights of {spec.name}"
                 + (" with its classifier" if include_top else ""),
                 add_command=f"weights add {name}", timeout=timeout)


def model_files():
    """Every file the ImageNet profile may need in the Keras `models/` cache:
    `[(owner, file name, md5)]`, owner a backbone name or `"class index"`."""
    found = []
    for spec in map(get_backbone, KERAS_IMAGENET):
        found += [(spec.name, name, md5) for name, md5 in ((spec.imagenet_file, spec.imagenet_md5),
                                                           (spec.imagenet_top_file, spec.imagenet_top_md5)) if name]
    return found + [("class index", CLASS_INDEX_FILE, CLASS_INDEX_MD5)]


def add_weights_file(path, cache_dir=None):
    """Install an ImageNet weights file (no-top or with its classifier) or the class index,
    recognised by its name or its md5.

    Returns:
        `(owner, cached_path)`: the backbone name, or `"class index"`.

    Raises:
        ValueError: the file is none of `model_files()` (the message gives the expected and
            the actual md5).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Received {str(path)!r}, which is not a file.")
    known = model_files()
    actual = file_digest(path, "md5")
    by_name = [entry for entry in known if entry[1] == path.name]
    by_hash = [entry for entry in known if entry[2] == actual]
    if by_name and not by_hash:
        owner, name, md5 = by_name[0]
        raise ValueError(f"Refused {path.name}: md5 is {actual}, expected {md5} for {owner}. "
                         "The file is damaged or another version; nothing was copied.")
    if not by_hash:
        expected = ", ".join(f"{owner}: {name} (md5 {md5})" for owner, name, md5 in known)
        raise ValueError(f"Refused {path.name} (md5 {actual}): not an ImageNet weights file of a registry "
                         f"backbone nor the class index. Expected one of: {expected}.")
    owner, name, md5 = by_hash[0]
    return owner, install_file(path, name, "models", md5, cache_dir=cache_dir)
