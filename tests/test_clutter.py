"""The cluttered view of the embedded data: deterministic, leak-free, garment intact."""

import numpy as np
import pytest

from tlhelpers import datasets
from tlhelpers.clutter import DEFAULT_CLUTTER, ClutterSpec, clutter_images, garment_offsets, redraw_seed


def _garments(count=12, side=28, seed=0):
    rng = np.random.default_rng(seed)
    images = np.zeros((count, side, side), np.uint8)
    images[:, 4:24, 6:22] = rng.integers(50, 256, (count, 20, 16))
    return images


def test_same_seed_same_view_other_seed_other_view():
    images = _garments()
    first, again = clutter_images(images, DEFAULT_CLUTTER), clutter_images(images, DEFAULT_CLUTTER)
    assert first.shape == (12, 48, 48) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, clutter_images(images, redraw_seed(DEFAULT_CLUTTER, 1)))
    assert redraw_seed(DEFAULT_CLUTTER, 0) == DEFAULT_CLUTTER


def test_garment_is_whole_somewhere_on_the_canvas():
    images = _garments(5)
    out = clutter_images(images, ClutterSpec(canvas_size=40, fragments=3))
    for image, canvas in zip(images, out):
        # The pasted image keeps the brighter pixel: some 28x28 window dominates it everywhere.
        found = any(np.all(canvas[y:y + 28, x:x + 28] >= image)
                    for y in range(40 - 27) for x in range(40 - 27))
        assert found


def test_fragments_come_only_from_the_set_given():
    # Images of two disjoint brightness bands: a canvas may only hold values of its own set.
    dark = np.where(_garments(8) > 0, 60, 0).astype(np.uint8)
    out = clutter_images(dark, ClutterSpec(canvas_size=48, fragments=10))
    assert set(np.unique(out)) <= {0, 60}
    assert (out > 0).sum() > (dark > 0).sum()  # fragments were added


def test_no_fragments_is_a_translation():
    images = _garments(4)
    out = clutter_images(images[..., None], ClutterSpec(canvas_size=36, fragments=0))
    assert out.shape == (4, 36, 36, 1)
    assert [int(canvas.sum()) for canvas in out[..., 0]] == [int(image.sum()) for image in images]


@pytest.mark.parametrize("spec, message", [
    (ClutterSpec(canvas_size=20), "canvas_size=20"),
    (ClutterSpec(fragment_size=40), "fragment_size=40"),
    (ClutterSpec(fragments=-1), "fragments=-1"),
    ("48", "ClutterSpec"),
])
def test_bad_specs_say_what_was_received(spec, message):
    with pytest.raises(ValueError, match=message):
        clutter_images(_garments(2), spec)


def test_embedded_clutter_keeps_labels_and_is_reproducible():
    clean_pool, clean_test = datasets.load_embedded(datasets.DEFAULT_TARGET_CLASSES)
    pool, test = datasets.load_embedded(datasets.DEFAULT_TARGET_CLASSES, clutter=DEFAULT_CLUTTER)
    assert pool.images.shape == (10000, 48, 48, 1) and test.images.shape == (2500, 48, 48, 1)
    assert np.array_equal(pool.labels, clean_pool.labels) and np.array_equal(test.labels, clean_test.labels)
    again = datasets.load_embedded(datasets.DEFAULT_TARGET_CLASSES, clutter=DEFAULT_CLUTTER)[1]
    assert np.array_equal(test.images, again.images)
    # The test split's positions are not the pool's.
    assert not np.array_equal(test.images[0] > 0, pool.images[0] > 0)


def test_each_split_is_cluttered_only_with_its_own_images(monkeypatch):
    import tlhelpers.clutter

    seen = []
    original = tlhelpers.clutter.clutter_images

    def recording(images, spec):
        seen.append(images.copy())
        return original(images, spec)

    monkeypatch.setattr(tlhelpers.clutter, "clutter_images", recording)
    classes = ("Sandal", "Bag")
    clean_pool, clean_test = datasets.load_embedded(classes)
    datasets.load_embedded(classes, clutter=DEFAULT_CLUTTER)
    assert len(seen) == 2
    assert np.array_equal(seen[0], clean_pool.images) and np.array_equal(seen[1], clean_test.images)


def test_garment_offsets_say_where_each_image_went():
    # Each image a 28x28 square of 50 (the clutter pastes fragments of the others, also 50): only at
    # its offset does the canvas hold a whole 28x28 square of it, since fragments are 10x10 and 6.
    images = np.full((20, 28, 28), 50, dtype=np.uint8)
    out = clutter_images(images)
    offsets = garment_offsets(20, 28)
    assert offsets.shape == (20, 2)
    for canvas, (y, x) in zip(out, offsets):
        assert (canvas[y:y + 28, x:x + 28] == 50).all()
    shifted = [(canvas[y + 1:y + 29, x:x + 28] == 50).all() if y < 20 else (canvas[y - 1:y + 27, x:x + 28] == 50).all()
               for canvas, (y, x) in zip(out, offsets)]
    assert not all(shifted)
    other = redraw_seed(DEFAULT_CLUTTER, 1)
    assert not (garment_offsets(20, 28, other) == offsets).all()


def test_the_embedded_task_says_where_its_garments_are():
    clean_pool, clean_test = datasets.load_embedded()
    pool, test = datasets.load_embedded_task("embedded")
    places = datasets.garment_places()
    for clean, cluttered, corners in ((clean_pool, pool, places[0]), (clean_test, test, places[1])):
        assert corners.shape == (len(cluttered), 2)
        for index in (0, 7, len(cluttered) - 1):
            (y, x), garment = corners[index], clean.images[index]
            # The garment is pasted last, keeping the brighter pixel: its square holds at least the garment.
            assert (cluttered.images[index, y:y + 28, x:x + 28] >= garment).all()
