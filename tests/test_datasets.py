"""Embedded dataset, digits, and stratified sampling."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from tlhelpers import datasets
from tlhelpers.datasets import DataError, make_splits


def test_embedded_file_is_small_and_balanced():
    assert datasets.EMBEDDED_FILE.stat().st_size < 12 * 1024 * 1024
    with np.load(datasets.EMBEDDED_FILE) as archive:
        assert archive["x_train"].shape == (20000, 28, 28)
        assert archive["x_test"].shape == (5000, 28, 28)
        assert np.bincount(archive["y_train"]).tolist() == [2000] * 10
        assert np.bincount(archive["y_test"]).tolist() == [500] * 10
        assert tuple(archive["class_names"]) == datasets.EMBEDDED_CLASS_NAMES


def test_default_tasks_are_disjoint_and_named():
    source_pool, source_test = datasets.load_embedded(datasets.DEFAULT_SOURCE_CLASSES)
    target_pool, target_test = datasets.load_embedded(datasets.DEFAULT_TARGET_CLASSES)
    assert source_pool.class_names == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat")
    assert target_pool.class_names == ("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
    assert source_pool.images.shape == (10000, 28, 28, 1)
    assert target_test.counts().tolist() == [500] * 5
    assert source_pool.images.dtype == np.uint8


def test_custom_class_lists_by_name_or_index():
    pool, test = datasets.load_embedded(["Bag", 0, "7"])
    assert pool.class_names == ("Bag", "T-shirt/top", "Sneaker")
    assert pool.counts().tolist() == [2000, 2000, 2000]
    # Label 0 must now be bags: compare with the raw archive.
    with np.load(datasets.EMBEDDED_FILE) as archive:
        first_bag = archive["x_train"][archive["y_train"] == 8][0]
    assert np.array_equal(pool.images[pool.labels == 0][0, ..., 0], first_bag)


@pytest.mark.parametrize(
    "classes, message",
    [(["Sandal", "Sock"], "Received class 'Sock'"), ([3, 12], "index 12"),
     (["Bag", "Bag"], "repeated"), (["Bag"], "at least 2")],
)
def test_bad_class_lists(classes, message):
    with pytest.raises(DataError, match=message):
        datasets.load_embedded(classes)


def test_digits_in_embedded_format():
    pool, test = datasets.load_digits(test_fraction=0.3, seed=0)
    assert pool.images.shape[1:] == (28, 28, 1)
    assert pool.images.dtype == np.uint8 and pool.images.max() > 200
    assert len(pool) + len(test) == 1797
    assert set(np.unique(test.labels)) == set(range(10))
    assert abs(len(test) / 1797 - 0.3) < 0.01


@pytest.fixture(scope="module")
def target():
    return datasets.load_embedded(datasets.DEFAULT_TARGET_CLASSES)


def _keys(images):
    return {hashlib.md5(image.tobytes()).hexdigest() for image in images}


def test_splits_are_disjoint_balanced_and_test_untouched(target):
    pool, test = target
    splits = make_splits(pool, test, labels_per_class=10, validation_per_class=50, seed=0)
    assert splits.train.counts().tolist() == [10] * 5
    assert splits.validation.counts().tolist() == [50] * 5
    assert splits.test is test
    train, validation, test_keys = _keys(splits.train.images), _keys(splits.validation.images), _keys(test.images)
    assert not train & validation
    assert not (train | validation) & test_keys


def test_seed_controls_the_sample(target):
    pool, test = target
    first = make_splits(pool, test, 10, 50, seed=0).train
    again = make_splits(pool, test, 10, 50, seed=0).train
    other = make_splits(pool, test, 10, 50, seed=1).train
    assert np.array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)


def test_smaller_budget_is_subset_of_larger(target):
    pool, test = target
    small = _keys(make_splits(pool, test, 10, 50, seed=3).train.images)
    large = _keys(make_splits(pool, test, 50, 50, seed=3).train.images)
    assert small < large


def test_too_many_labels_names_class_and_counts(target):
    pool, test = target
    with pytest.raises(DataError, match=r"Class 'Sandal' has 2000 training examples.*1950.*2050"):
        make_splits(pool, test, labels_per_class=1950, validation_per_class=100)


def test_bad_budget(target):
    with pytest.raises(DataError, match="labels_per_class=0"):
        make_splits(*target, labels_per_class=0)


def test_given_validation_is_used(target):
    pool, test = target
    validation = pool.subset(np.arange(5))
    splits = make_splits(pool, test, 2000, validation=validation)
    assert splits.validation is validation
    assert len(splits.train) == 10000


def test_build_script_cli_check_runs():
    result = subprocess.run([sys.executable, str(datasets.DATA_DIR / "build_fashion_subset.py"), "--check"],
                            capture_output=True, text=True)
    if "not found" in result.stderr:
        pytest.skip("Fashion-MNIST originals not installed")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical" in result.stdout


def test_test_subset_is_fixed_and_balanced(target):
    pool, test = target
    first = make_splits(pool, test, 10, 50, seed=0, test_per_class=40).test
    other = make_splits(pool, test, 50, 50, seed=7, test_per_class=40).test
    assert first.counts().tolist() == [40] * 5
    assert np.array_equal(first.images, other.images)
    assert _keys(first.images) <= _keys(test.images)


def test_validation_last_keeps_training_images_whatever_the_validation_size(target):
    pool, test = target
    small = make_splits(pool, test, 10, validation_per_class=20, seed=3, validation_last=True)
    large = make_splits(pool, test, 10, validation_per_class=60, seed=3, validation_last=True)
    bigger_budget = make_splits(pool, test, 25, validation_per_class=60, seed=3, validation_last=True)
    assert np.array_equal(small.train.images, large.train.images)
    assert set(map(bytes, small.validation.images)) <= set(map(bytes, large.validation.images))
    assert np.array_equal(large.validation.images, bigger_budget.validation.images)
    train = set(map(bytes, bigger_budget.train.images))
    assert set(map(bytes, large.train.images)) <= train
    assert not train & set(map(bytes, bigger_budget.validation.images))
    assert large.validation.counts().tolist() == [60] * len(pool.class_names)
