"""Every notebook that reads the profile, executed end to end in the ImageNet profile, against a
mirror on 127.0.0.1. A notebook whose code only picks and shows the profile runs the same in both
profiles, and the offline check (nbval) already runs it; it joins this test as soon as its code reads
the profile.

The mirror serves stand-ins with the real file names and layouts (`imagenet_standins`): the
ImageNet weights files of the Keras architectures (random weights), ImageNet's class index, a
small generated flower-photo archive and a TF-Hub feature vector (a compressed SavedModel).
Only this test knows their hashes: a first cell injected into each notebook puts them into the
registry. A second injected cell, after the parameters cell, shrinks the budgets so that each
notebook runs in a minute or two. Nothing is mocked: every file comes over HTTP through the
package's downloads (or, for the TF-Hub model, through `tensorflow_hub`'s own resolver), and
a notebook that downloads anything else fails, because nothing else is reachable.
"""

import io
import re
import tarfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import imagenet_standins
from conftest import Server
from tlhelpers import downloads, photos, registry

ALL_NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
# Lines that only pick the profile and show it: any other mention of it in a notebook's code means the
# notebook runs differently in the ImageNet profile.
PROFILE_PLUMBING = {'PROFILE = os.environ.get("TLHELPERS_PROFILE", "offline")', "profile = get_profile(PROFILE)",
                    "profile"}


def reads_profile(notebook):
    """Whether a notebook's code uses the profile beyond picking and showing it."""
    lines = [line.strip() for cell in notebook.cells if cell.cell_type == "code"
             for line in cell.source.splitlines()]
    return any(re.search(r"\bprofile\b", line, re.IGNORECASE) for line in lines if line not in PROFILE_PLUMBING)


NOTEBOOKS = [path for path in ALL_NOTEBOOKS if reads_profile(nbformat.read(path, as_version=4))]
IMAGE_SIZE = 32  # the profile's 224 would take an hour per notebook on a CPU
PHOTOS_PER_CLASS = 40
HUB_PATH = "/hub/feature-vector"

# Budgets small enough for minutes, large enough for every split and cell of each notebook.
SMALL = "LABELS_PER_CLASS = 3\nVALIDATION_PER_CLASS = 2\nTEST_PER_CLASS = 4\n"
OVERRIDES = {
    "01_source_models": "PROBE_PER_CLASS = 10\n",
    "03_feature_extraction": SMALL + "EPOCHS = 2\nSEEDS = (0, 1)\nIMAGENET_SIZE = 32\n",
    "04_fine_tuning": SMALL + "EPOCHS = 2\nHEAD_EPOCHS = 1\nFREEZE_STAGES = [3, 4]\nLEARNING_RATES = [1e-4, 1e-2]\n",
    "02_from_scratch": SMALL + "EPOCHS = 1\nAUGMENT_SEEDS = (0, 1)\nAUGMENT_EPOCHS = 1\n",
    "06_tfhub_backbones": SMALL + "EPOCHS = 2\nFINE_TUNE_EPOCHS = 2\nHEAD_EPOCHS = 1\nONLINE_HANDLE = {hub!r}\n",
}


def _hub_archive(folder):
    """A TF-Hub feature vector (a ResNet50 base with random weights) as the compressed archive
    that `tensorflow_hub` downloads for an http(s) handle."""
    from tlhelpers.backbones import build_base
    from tlhelpers.hub_export import export_feature_vector

    exported = export_feature_vector(build_base("resnet50", None, IMAGE_SIZE, pooling="avg"), folder / "hub")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(exported.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(exported)), recursive=False)
    path = folder / "feature-vector.tar.gz"
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mirror")
    weights = {name: {top: imagenet_standins.md5(imagenet_standins.weights_file(folder, spec, top))
                      for top in (False, True) if (name, top) != ("vgg16", True)}
               for name, spec in registry.BACKBONES.items() if name in registry.KERAS_IMAGENET}
    # mobilenet_v2 and efficientnet_lite0 run with their genuine weights: nothing stands in for them.
    index = imagenet_standins.class_index(folder)
    flowers = photos.PHOTO_DATASETS["flowers"]
    archive, counts = imagenet_standins.photo_archive(folder, flowers, PHOTOS_PER_CLASS)
    server = Server()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            server.files["/" + path.name] = path.read_bytes()
    server.files[HUB_PATH] = _hub_archive(folder).read_bytes()
    lines = ["# Injected by tests/test_imagenet_profile.py: the stand-ins' hashes and a small image size.",
             "import dataclasses",
             "from tlhelpers import downloads, photos, profiles, registry"]
    for name, md5s in weights.items():
        lines.append(f"registry.BACKBONES[{name!r}] = dataclasses.replace(registry.BACKBONES[{name!r}], "
                     f"imagenet_md5={md5s[False]!r}, imagenet_top_md5={md5s.get(True, '')!r})")
    lines += [f"downloads.CLASS_INDEX_MD5 = {imagenet_standins.md5(index)!r}",
              f"photos.PHOTO_DATASETS['flowers'] = dataclasses.replace(photos.PHOTO_DATASETS['flowers'], "
              f"sha256={imagenet_standins.sha256(archive)!r}, size={archive.stat().st_size}, "
              f"images_per_class={counts!r})",
              f"profiles.PROFILES['imagenet'] = {{**profiles.PROFILES['imagenet'], 'image_size': {IMAGE_SIZE}}}"]
    server.injected = "\n".join(lines)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _prepared(path, mirror):
    """The notebook with the injected cells: hashes first, smaller budgets after the parameters."""
    notebook = nbformat.read(path, as_version=4)
    cells = notebook.cells
    at = next(i for i, cell in enumerate(cells) if "parameters" in cell.metadata.get("tags", []))
    overrides = OVERRIDES[path.stem].format(hub=mirror.url + HUB_PATH)
    cells.insert(at + 1, nbformat.v4.new_code_cell("# Injected by the test: small budgets.\n" + overrides))
    cells.insert(0, nbformat.v4.new_code_cell(mirror.injected))
    return notebook


def _printed(notebook):
    return ["".join(output.get("text", "")) for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", []) if output.get("output_type") == "stream"]


def test_every_notebook_here_has_overrides_for_this_test():
    assert sorted(OVERRIDES) == sorted(path.stem for path in NOTEBOOKS)


def test_only_notebooks_that_never_read_the_profile_are_left_out():
    def notebook(*sources):
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])

    plumbing = 'PROFILE = os.environ.get("TLHELPERS_PROFILE", "offline")'
    assert not reads_profile(notebook(plumbing, "profile = get_profile(PROFILE)\nprofile", "print(1)"))
    assert reads_profile(notebook(plumbing, "profile = get_profile(PROFILE)", "pool, test = load_target_task(profile)"))
    assert reads_profile(notebook("WEIGHTS = profile['weights']"))
    # The three notebooks that read only stored studies, the shipped sources and the ported ImageNet model.
    assert [path.stem for path in ALL_NOTEBOOKS if path not in NOTEBOOKS] == [
        "05_learning_curves", "07_layer_transferability", "08_imagenet_source"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_end_to_end_in_the_imagenet_profile(path, mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("TLHELPERS_PROFILE", "imagenet")
    monkeypatch.setenv(downloads.MIRROR_ENV, mirror.url)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TLHELPERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "tfhub"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = _prepared(path, mirror)
    before = len(mirror.requests)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    asked = set(mirror.requests[before:])
    printed = "\n".join(_printed(notebook))
    flowers = photos.PHOTO_DATASETS["flowers"]
    assert "/" + flowers.archive in asked, sorted(asked)  # each trains on the profile's flower photos
    if path.stem == "01_source_models":
        spec = registry.BACKBONES["resnet50"]
        assert {"/" + spec.imagenet_top_file, "/" + downloads.CLASS_INDEX_FILE} <= asked
        assert "imagenet profile, target task flowers: " in printed and "daisy" in printed
    if path.stem in ("03_feature_extraction", "04_fine_tuning"):
        assert "/" + registry.BACKBONES["resnet50"].imagenet_file in asked
    if path.stem == "06_tfhub_backbones":
        assert HUB_PATH in asked
