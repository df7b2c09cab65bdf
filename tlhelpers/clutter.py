"""Fashion-MNIST in clutter: each garment at a random place among fragments of others.

Clean Fashion-MNIST is easy from raw pixels (a linear model on pixels reaches
0.84 with 10 labels per class on the default target), so no learned feature
can show what it is worth there. In clutter, the garment moves and shares the
canvas with pieces of other garments, as in the Cluttered MNIST benchmark
(Mnih et al., 2014): pixels fail, and what a source model learned (find the
object, ignore the clutter) is exactly what a target with few labels cannot
learn by itself.

The view is a pure function of the images and a seed. Fragments come only
from the set being cluttered (train images from train images, test images
from test images, source classes from source classes), so nothing of one
split or task leaks into another.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ClutterSpec:
    """How a cluttered view is drawn.

    Attributes:
        canvas_size: Side of the square canvas, in pixels.
        fragments: Fragments of other images pasted on each canvas.
        fragment_size: Side of each square fragment.
        seed: Seed of the positions and of the fragments' sources.
    """

    canvas_size: int = 48
    fragments: int = 6
    fragment_size: int = 10
    seed: int = 0

    def to_dict(self):
        return dataclasses.asdict(self)


DEFAULT_CLUTTER = ClutterSpec()
# The test split is drawn as this redraw of the spec, so that its positions are
# not those of the training pool's first images.
TEST_SEED_OFFSET = 1


def check_clutter(spec, image_side):
    """Return `spec` after checking that its pieces fit on the canvas.

    Raises:
        ValueError: naming the field received and the range allowed.
    """
    if not isinstance(spec, ClutterSpec):
        raise ValueError(f"Received clutter={spec!r}. Expected a tlhelpers.clutter.ClutterSpec or None.")
    if spec.canvas_size < image_side:
        raise ValueError(f"Received canvas_size={spec.canvas_size}. Expected at least the image side, "
                         f"{image_side}.")
    if not 1 <= spec.fragment_size <= image_side:
        raise ValueError(f"Received fragment_size={spec.fragment_size}. Expected 1..{image_side}.")
    if spec.fragments < 0:
        raise ValueError(f"Received fragments={spec.fragments}. Expected an integer >= 0.")
    return spec


def clutter_images(images, spec=DEFAULT_CLUTTER):
    """Place each image at a random position on a canvas strewn with fragments of the others.

    Fragments are pasted first, then the image itself; overlaps keep the
    brighter pixel (Fashion-MNIST's background is 0), so the garment is never
    cut but may be crossed by clutter.

    Args:
        images: uint8 array `(N, H, W)` or `(N, H, W, 1)`, square, 0 = background.
        spec: A `ClutterSpec`.

    Returns:
        uint8 array `(N, canvas, canvas)` or `(N, canvas, canvas, 1)`, as given.
    """
    images = np.asarray(images)
    squeeze = images.ndim == 4
    flat = images[..., 0] if squeeze else images
    count, side = len(flat), flat.shape[1]
    check_clutter(spec, side)
    canvas, piece = spec.canvas_size, spec.fragment_size
    sources, crops, places, offsets = _draws(count, side, spec)
    out = np.zeros((count, canvas, canvas), dtype=np.uint8)
    for k in range(spec.fragments):
        for i in range(count):
            (cy, cx), (py, px) = crops[i, k], places[i, k]
            fragment = flat[sources[i, k], cy:cy + piece, cx:cx + piece]
            window = out[i, py:py + piece, px:px + piece]
            np.maximum(window, fragment, out=window)
    for i in range(count):
        y, x = offsets[i]
        window = out[i, y:y + side, x:x + side]
        np.maximum(window, flat[i], out=window)
    return out[..., None] if squeeze else out


def _draws(count, side, spec):
    """`(sources, crops, places, offsets)` of `clutter_images`: every random number drawn up front, in
    one order, so the view depends only on the seed and the number of images."""
    canvas, piece = spec.canvas_size, spec.fragment_size
    rng = np.random.default_rng(spec.seed)
    if count > 1:
        # Another image than the canvas's own: shift by 1..count-1.
        sources = (np.arange(count)[:, None] + rng.integers(1, count, (count, spec.fragments))) % count
    else:
        sources = np.zeros((count, spec.fragments), dtype=np.int64)
    crops = rng.integers(0, side - piece + 1, (count, spec.fragments, 2))
    places = rng.integers(0, canvas - piece + 1, (count, spec.fragments, 2))
    offsets = rng.integers(0, canvas - side + 1, (count, 2))
    return sources, crops, places, offsets


def garment_offsets(count, side, spec=DEFAULT_CLUTTER):
    """Where `clutter_images` puts each of `count` images of side `side` on its canvas: `(count, 2)`
    top-left corners `(y, x)`, the same for the same spec and count."""
    check_clutter(spec, side)
    return _draws(count, side, spec)[3]


def redraw_seed(spec, draw):
    """The spec of the `draw`-th fresh view (draw 0 is `spec` itself); a source trained on
    new clutter every epoch sees the same garments in new places."""
    return dataclasses.replace(spec, seed=spec.seed + 1000 * draw) if draw else spec
