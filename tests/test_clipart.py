"""The vendored clip-art subset: content, leak-free split, rebuild, errors and a real run on it."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from tlhelpers import datasets
from tlhelpers.datasets import DataError

# Per class, in CLIPART_CLASS_NAMES order (data/README.md states the same).
POOL_COUNTS = [72, 28, 55, 30, 32]
TEST_COUNTS = [43, 16, 34, 27, 22]
FOLDERS = ("animals/mammals/", "animals/birds/", "food/fruit/", "transportation/vehicles/", "computer/hardware/")


@pytest.fixture(scope="module")
def clipart():
    return datasets.load_clipart()


@pytest.fixture(scope="module")
def archive():
    with np.load(datasets.CLIPART_FILE, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}


def _keys(images):
    return [hashlib.sha256(image.tobytes()).hexdigest() for image in images]


def test_classes_shapes_and_counts(clipart):
    pool, test = clipart
    assert datasets.CLIPART_FILE.stat().st_size < 8 * 1024 * 1024
    assert pool.class_names == test.class_names == ("mammals", "birds", "fruit", "vehicles", "hardware")
    for split in (pool, test):
        assert split.images.shape[1:] == (128, 128, 3) and split.images.dtype == np.uint8
        assert split.labels.dtype == np.int64
        # Each drawing fits into 120 px, centred on white: a 4-px white border all round.
        border = np.ones((128, 128), dtype=bool)
        border[4:-4, 4:-4] = False
        assert (split.images[:, border] == 255).all()
        assert (split.images.min(axis=(1, 2, 3)) < 200).all(), "an image is blank"
    assert pool.counts().tolist() == POOL_COUNTS
    assert test.counts().tolist() == TEST_COUNTS


def test_paths_belong_to_their_class_folders(archive):
    paths = archive["paths"].tolist()
    assert len(set(paths)) == len(paths) == len(archive["images"])
    for path, label in zip(paths, archive["labels"]):
        assert path.startswith(FOLDERS[label]) and path.endswith(".png")


def test_no_group_in_both_pool_and_test(archive):
    groups, is_test = archive["groups"], archive["is_test"]
    assert not set(groups[is_test]) & set(groups[~is_test])
    # Groups are real: some hold several drawings, and a group never spans two classes.
    assert len(np.unique(groups)) < len(groups)
    for group in np.unique(groups):
        assert len(np.unique(archive["labels"][groups == group])) == 1


def test_no_identical_image_twice_or_in_both_splits(clipart):
    pool, test = clipart
    pool_keys, test_keys = _keys(pool.images), _keys(test.images)
    assert len(set(pool_keys)) == len(pool_keys) and len(set(test_keys)) == len(test_keys)
    assert not set(pool_keys) & set(test_keys)


def test_every_class_has_at_least_15_test_images(clipart):
    assert clipart[1].counts().min() >= 15


def test_build_script_reproduces_the_committed_file():
    result = subprocess.run([sys.executable, str(datasets.DATA_DIR / "build_clipart_subset.py"), "--check"],
                            capture_output=True, text=True, timeout=600)
    if "not found" in result.stderr:
        pytest.skip("Debian's openclipart-png is not installed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical" in result.stdout
    digest = hashlib.sha256(datasets.CLIPART_FILE.read_bytes()).hexdigest()
    assert f"rebuild sha256 {digest}" in result.stdout


def test_missing_file_says_how_to_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "CLIPART_FILE", tmp_path / "clipart_subset.npz")
    with pytest.raises(DataError, match=r"not found.*python data/build_clipart_subset\.py.*openclipart-png"):
        datasets.load_clipart()


@pytest.mark.parametrize("damage", ["truncated", "not an archive", "wrong arrays"])
def test_corrupt_file_says_how_to_rebuild(tmp_path, monkeypatch, damage):
    path = tmp_path / "clipart_subset.npz"
    if damage == "truncated":
        path.write_bytes(datasets.CLIPART_FILE.read_bytes()[: 1_000_000])
    elif damage == "not an archive":
        path.write_bytes(b"<html>404</html>")
    else:
        np.savez(path, images=np.zeros((2, 8, 8), np.uint8), labels=np.zeros(2, np.uint8),
                 is_test=np.zeros(2, bool), class_names=np.array(datasets.CLIPART_CLASS_NAMES))
    monkeypatch.setattr(datasets, "CLIPART_FILE", path)
    with pytest.raises(DataError, match=r"Clip-art dataset at .*build_clipart_subset\.py"):
        datasets.load_clipart()


def test_experiment_runs_on_clipart(cache_dir):
    from tlhelpers.experiments import DATASETS, ExperimentConfig, run_experiment

    assert "clipart" in DATASETS
    config = ExperimentConfig(backbones=("vgg16",), weights="none", strategies=("feature_extraction", "small_cnn"),
                              labels_per_class=(3,), seeds=(0,), epochs=1, head_epochs=0, image_size=32,
                              dataset="clipart", validation_per_class=3, test_per_class=4)
    results = run_experiment(config, verbose=0)
    assert [r.strategy for r in results] == ["feature_extraction", "small_cnn"]
    for result in results:
        assert 0.0 <= result.test_accuracy <= 1.0
        assert result.history["epoch"] == [0, 1]


def test_budget_beyond_the_pool_is_a_clear_error(cache_dir):
    from tlhelpers.experiments import ExperimentConfig, run_experiment

    config = ExperimentConfig(backbones=("vgg16",), weights="none", strategies=("small_cnn",),
                              labels_per_class=(50,), seeds=(0,), epochs=1, dataset="clipart")
    with pytest.raises(DataError, match=r"Class 'birds' has 28 training examples.*\(70\).*at most 8"):
        run_experiment(config, verbose=0)


def test_study_takes_clipart_with_its_whole_test_split():
    from tlhelpers import study

    config = study.check_study_config(study.StudyConfig(dataset="clipart", labels_per_class=(5, 18), seeds=(0, 1),
                                                        validation_per_class=10))
    splits = study.load_splits(config)
    assert set(splits) == {(5, 0), (5, 1), (18, 0), (18, 1)}
    assert splits[5, 0].test.counts().tolist() == TEST_COUNTS
    assert splits[18, 1].train.counts().tolist() == [18] * 5
    assert splits[18, 1].validation.counts().tolist() == [10] * 5
