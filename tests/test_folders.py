"""Your own image folder: layouts, corrupt files, clear errors."""

import numpy as np
import pytest

from conftest import write_jpeg, write_png
from tlhelpers.datasets import DataError
from tlhelpers.folders import load_image_folder


def make_folder(root, classes=("cats", "dogs"), per_class=6):
    for label, name in enumerate(classes):
        for index in range(per_class):
            write_png(root / name / f"{index:02d}.png", value=label * 50 + index)
    return root


def test_flat_layout_holds_out_stratified_test(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=10)
    pool, test, validation, skipped = load_image_folder(root, image_size=(8, 8), test_fraction=0.2, seed=0)
    assert pool.class_names == ("cats", "dogs")
    assert pool.images.shape == (16, 8, 8, 3) and pool.images.dtype == np.uint8
    assert test.counts().tolist() == [2, 2]
    assert validation is None and skipped == []
    again = load_image_folder(root, image_size=(8, 8), test_fraction=0.2, seed=0)
    assert np.array_equal(again[0].images, pool.images)
    other = load_image_folder(root, image_size=(8, 8), test_fraction=0.2, seed=1)
    assert not np.array_equal(other[1].images, test.images)


def test_nested_folders_inside_a_class_are_read_in_sorted_order(tmp_path):
    root = tmp_path / "data"
    write_png(root / "a" / "z" / "1.png", value=1)
    write_png(root / "a" / "b" / "deep" / "2.png", value=2)
    write_png(root / "a" / "0.png", value=3)
    write_png(root / "b" / "x.png", value=4)
    write_png(root / "b" / "y.png", value=5)
    pool, test, _, _ = load_image_folder(root, image_size=(4, 4), test_fraction=0.34, seed=0)
    assert len(pool) + len(test) == 5
    assert pool.counts().sum() + test.counts().sum() == 5


def test_train_test_validation_layout(tmp_path):
    for split, count in (("train", 4), ("test", 2), ("validation", 1)):
        make_folder(tmp_path / split, per_class=count)
    pool, test, validation, skipped = load_image_folder(tmp_path, image_size=(6, 6))
    assert pool.counts().tolist() == [4, 4]
    assert test.counts().tolist() == [2, 2]
    assert validation.counts().tolist() == [1, 1]


def test_mismatched_split_classes(tmp_path):
    make_folder(tmp_path / "train", classes=("a", "b"))
    make_folder(tmp_path / "test", classes=("a", "c"))
    with pytest.raises(DataError, match=r"\['a', 'c'\].*\['a', 'b'\]"):
        load_image_folder(tmp_path, image_size=(6, 6))


def test_corrupt_and_non_image_files_are_skipped_and_reported(tmp_path, capsys):
    root = make_folder(tmp_path / "pets", per_class=5)
    good = write_jpeg(root / "cats" / "good.jpg", size=(64, 64))
    (root / "cats" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "cats" / "empty.jpg").write_bytes(b"")
    (root / "dogs" / "garbage.png").write_bytes(b"this is not a png at all" * 10)
    (root / "dogs" / "notes.txt").write_text("hello")
    pool, test, _, skipped = load_image_folder(root, image_size=(8, 8), test_fraction=0.2)
    reasons = {path.split("/")[-1]: reason for path, reason in skipped}
    assert set(reasons) == {"truncated.jpg", "empty.jpg", "garbage.png", "notes.txt"}
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["truncated.jpg"] == "truncated or damaged JPEG: it starts like one but does not decode"
    assert reasons["garbage.png"].startswith("not an image: its first bytes")
    # A reason a person can act on, not TensorFlow's op text.
    assert not any("function_node" in reason or "{{" in reason for reason in reasons.values())
    assert len(pool) + len(test) == 11  # 10 PNGs and the good JPEG
    assert "Skipped 4 file(s)" in capsys.readouterr().out


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nope")


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no class subfolders"):
        load_image_folder(tmp_path)


def test_empty_class(tmp_path):
    make_folder(tmp_path, classes=("a",))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.jpg").write_bytes(b"\xff\xd8 garbage")
    with pytest.raises(DataError, match=r"\['b'\].*no readable image.*1 file"):
        load_image_folder(tmp_path)


def test_a_written_folder_reads_back_the_same_images_and_classes(tmp_path):
    from tlhelpers import datasets, folders

    pool, _ = datasets.load_embedded(datasets.DEFAULT_SOURCE_CLASSES)
    data = datasets.subsample_per_class(pool, 3, seed=0)
    root = folders.write_image_folder(data, tmp_path / "mine")
    assert sorted(p.name for p in root.iterdir()) == sorted(n.replace("/", "-") for n in data.class_names)
    back, skipped = folders.read_class_folders(root, (28, 28), verbose=False)
    assert skipped == [] and back.counts().tolist() == [3] * 5
    first = next(iter(sorted((root / "Coat").iterdir())))
    image = folders.read_image(first, (28, 28))
    assert image.shape == (28, 28, 3) and image.dtype == np.uint8
    coat = data.images[data.labels == data.class_names.index("Coat")][0]
    np.testing.assert_array_equal(image[..., 0], coat[..., 0])


def test_read_image_says_what_is_wrong(tmp_path):
    from tlhelpers import folders
    from tlhelpers.errors import DataError

    with pytest.raises(DataError, match="no such file"):
        folders.read_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_bytes(b"hello")
    with pytest.raises(DataError, match="not an image: its first bytes"):
        folders.read_image(tmp_path / "notes.png")
