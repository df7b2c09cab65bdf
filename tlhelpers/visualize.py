"""Looking inside models: image grids, first-layer filters, feature maps, Grad-CAM, sweeps.

Functions that compute return arrays; functions named `plot_*` only draw and
return the Axes or Figure they drew on.
"""

from __future__ import annotations

import numpy as np


def _figure(figure, size):
    if figure is not None:
        return figure
    import matplotlib.pyplot as plt

    return plt.figure(figsize=size)


def plot_image_grid(images, titles=None, columns=8, figure=None, cmap="gray", title=None):
    """Draw images in a grid, one title each; returns the Figure.

    Args:
        images: Array `(N, H, W)` or `(N, H, W, C)` with C = 1 or 3.
        titles: Optional title per image.
        columns: Images per row.
        figure: Figure to draw on (a new one if None).
        cmap: Colour map for single-channel images.
        title: Optional title of the whole grid, above it.
    """
    images = np.asarray(images)
    rows = int(np.ceil(len(images) / columns))
    figure = _figure(figure, (1.4 * columns, 1.6 * rows))
    grid = [figure.add_subplot(rows, columns, index + 1) for index in range(len(images))]
    for index, (ax, image) in enumerate(zip(grid, images)):
        shown = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        ax.imshow(shown, cmap=cmap if shown.ndim == 2 else None)
        ax.set_xticks([])
        ax.set_yticks([])
        if titles is not None:
            ax.set_title(titles[index], fontsize=8)
    if title:
        _grid_title(figure, grid, title)
    return figure


def _grid_title(figure, grid, title):
    """A grid's title above the figure's top edge, clear of the first row's titles (inline figures grow
    to fit it), from the first image's left edge (a short row does not fill the figure's width); call it
    again after the grid moves (`tight_layout`)."""
    figure.suptitle(title, fontsize=10, x=grid[0].get_position().x0 if grid else 0.5,
                    ha="left" if grid else "center", y=1.0, va="bottom")


def first_layer_filters(base, count=16, grey=False):
    """The first convolution's first `count` kernels (None: all) as images `(count, kh, kw, 3)` scaled to 0..1.

    With `grey`, each kernel is summed over its three input channels (`(count, kh, kw, 1)`):
    all that a grey image copied to red, green and blue can excite.
    """
    import keras

    conv = next(layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D))
    kernel = conv.kernel.numpy()[..., :count]
    if grey:
        kernel = kernel.sum(axis=2, keepdims=True)
    kernel = np.moveaxis(kernel, -1, 0)
    low = kernel.min(axis=(1, 2, 3), keepdims=True)
    high = kernel.max(axis=(1, 2, 3), keepdims=True)
    return (kernel - low) / np.maximum(high - low, 1e-12), conv.name


def kernel_smoothness(base):
    """Mean correlation of horizontally and vertically neighbouring weights in the first
    convolution's kernels (summed over input channels): about 0 for random weights, higher for
    kernels that vary smoothly, as edge and blob detectors do."""
    kernels, _ = first_layer_filters(base, count=None, grey=True)
    values = []
    for kernel in kernels[..., 0]:
        pairs = ((kernel[:, :-1], kernel[:, 1:]), (kernel[:-1, :], kernel[1:, :]))
        values.append(np.mean([np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in pairs]))
    return float(np.mean(values))


def most_confused(matrix, class_names, top=3):
    """The `top` largest off-diagonal cells of a confusion matrix (rows: true classes) as
    `(true name, predicted name, count)`, largest first."""
    matrix = np.asarray(matrix)
    cells = [(int(matrix[i, j]), i, j) for i in range(len(matrix)) for j in range(len(matrix)) if i != j]
    return [(class_names[i], class_names[j], count) for count, i, j in sorted(cells, key=lambda c: -c[0])[:top]
            if count > 0]


def feature_maps(base, inputs, layer_names):
    """Outputs of `layer_names` for preprocessed `inputs`, as a dict of arrays."""
    import keras

    probe = keras.Model(base.inputs, [base.get_layer(name).output for name in layer_names])
    outputs = probe.predict(inputs, verbose=0)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return dict(zip(layer_names, outputs))


def plot_feature_maps(maps, channels=8, figure=None):
    """One row per layer: the first `channels` channels of one image's feature maps."""
    figure = _figure(figure, (1.5 * channels, 1.7 * len(maps)))
    for row, (name, value) in enumerate(maps.items()):
        for channel in range(channels):
            ax = figure.add_subplot(len(maps), channels, row * channels + channel + 1)
            ax.imshow(value[0, ..., channel], cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            if channel == 0:
                ax.set_ylabel(f"{name}\n{value.shape[1]}x{value.shape[2]}", fontsize=8)
    return figure


def grad_cam(head, maps, classes=None, size=None):
    """Grad-CAM (Selvaraju et al., 2017) of a classifier whose frozen base produced `maps`: where in
    the image the evidence for a class lies.

    Each feature-map channel is weighted by the mean gradient of the class's log-probability with
    respect to it; the positive part of the weighted sum, scaled to a maximum of 1, is the map.
    The gradient is taken through `head` alone, from the base's output: a frozen base needs no
    gradient, and in Keras a model cannot be cut at a layer inside a nested base model (the base's
    inner layers belong to the base's own graph), so the base runs first (`features.extract_features`
    with `pooling=None`) and only the head is differentiated.

    Args:
        head: A Keras model from feature maps `(N, h, w, c)` to class probabilities.
        maps: The base's feature maps of the images.
        classes: The class of each image whose evidence is mapped (None: the head's prediction).
        size: Side to resize the maps to, bilinearly (None: `h x w`).

    Returns:
        `(heat, classes)`: `(N, size, size)` float arrays in [0, 1] (all zero where no channel
        speaks for the class) and the classes mapped.
    """
    import tensorflow as tf

    maps = tf.convert_to_tensor(np.asarray(maps, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(maps)
        probabilities = head(maps, training=False)
        classes = (np.argmax(probabilities.numpy(), axis=1) if classes is None
                   else np.asarray(classes, dtype=np.int64))
        chosen = tf.reduce_sum(probabilities * tf.one_hot(classes, probabilities.shape[-1]), axis=1)
        score = tf.math.log(chosen + 1e-12)
    weights = tf.reduce_mean(tape.gradient(score, maps), axis=(1, 2), keepdims=True)
    heat = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))
    heat = heat / tf.maximum(tf.reduce_max(heat, axis=(1, 2), keepdims=True), 1e-12)
    if size is not None:
        heat = tf.image.resize(heat[..., None], (size, size), method="bilinear")[..., 0]
    return np.clip(heat.numpy(), 0.0, 1.0), classes


def heat_inside(heat, masks):
    """The share of each map's heat that falls inside its mask (1 = all on the object); a map with
    no heat at all counts as spread evenly (the mask's share of the area)."""
    heat, masks = np.asarray(heat, float), np.asarray(masks, bool)
    total = heat.sum(axis=(1, 2))
    inside = (heat * masks).sum(axis=(1, 2))
    return np.where(total > 0, inside / np.maximum(total, 1e-12), masks.mean(axis=(1, 2)))


def plot_heat_maps(images, heat, titles=None, boxes=None, columns=8, figure=None, title=None):
    """Images in grey with their Grad-CAM heat on top (`plot_image_grid`'s grid) and a colour bar that
    reads the heat; `boxes` `(y, x, side)` outline each object; `title` names the whole grid."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    rows = int(np.ceil(len(images) / columns))
    alpha = 0.45  # the heat over the images, and its colour bar as strong
    figure = plot_image_grid(images, titles, columns, _figure(figure, (1.6 * columns, 1.8 * rows)))
    grid = figure.axes[-len(images):]
    for index, ax in enumerate(grid):
        height, width = np.asarray(images[index]).shape[:2]
        ax.imshow(heat[index], cmap="jet", alpha=alpha, vmin=0, vmax=1,
                  extent=(-0.5, width - 0.5, height - 0.5, -0.5))
        if boxes is not None:
            y, x, side = boxes[index]
            ax.add_patch(Rectangle((x - 0.5, y - 0.5), side, side, fill=False, color="white", linewidth=1))
    # The grid keeps the left 90% of the figure; the colour bar gets its own axes on the right.
    figure.tight_layout(rect=(0, 0, 0.9, 1))
    if title:
        _grid_title(figure, grid, title)
    bar = figure.colorbar(ScalarMappable(Normalize(0, 1), "jet"), cax=figure.add_axes((0.92, 0.2, 0.015, 0.6)),
                          alpha=alpha)
    bar.set_label("Grad-CAM heat (1: the strongest\nevidence in the image)", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    return figure


def projection_view(points, share=0.98, spread=1.5):
    """Axis limits that keep a projection's bulk readable when a few points lie far out.

    The view is the central `share` of the points on each axis, widened by a tenth on each side; it is
    used only when the points' whole range is over `spread` times its width on some axis (otherwise
    every point fits without squashing the rest).

    Returns:
        `((x_low, x_high), (y_low, y_high), outside)`: the limits and the number of points outside them,
        or None when every point can be shown.
    """
    points = np.asarray(points, dtype=float)
    tail = (1.0 - share) / 2 * 100
    low, high = np.percentile(points, [tail, 100 - tail], axis=0)
    pad = (high - low) / 10
    low, high = low - pad, high + pad
    if not np.any(np.ptp(points, axis=0) > spread * (high - low)):
        return None
    outside = int(np.any((points < low) | (points > high), axis=1).sum())
    return (low[0], high[0]), (low[1], high[1]), outside


def plot_projection(points, labels, class_names, ax=None, title=""):
    """Scatter a 2-D projection of features, one colour per class; returns the Axes.

    When a few points lie so far out that the rest would be squashed into a corner, the view keeps the
    bulk (`projection_view`) and says how many points it leaves out.
    """
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.figure(figsize=(5, 4)).gca()
    for label, name in enumerate(class_names):
        chosen = labels == label
        ax.scatter(points[chosen, 0], points[chosen, 1], s=8, alpha=0.7, label=name)
    view = projection_view(points)
    left_out = ""
    if view is not None:
        ax.set_xlim(*view[0])
        ax.set_ylim(*view[1])
        left_out = f" ({view[2]} far points outside the view)"  # in the axis name: no note on the points
    ax.set_title(title)
    ax.set_xlabel("component 1" + left_out)
    ax.set_ylabel("component 2")
    from tlhelpers.plots import legend_below

    legend_below(ax, markerscale=2)
    return ax


def plot_sweep(values, results, xlabel, ax=None, title=""):
    """Test accuracy (left axis) and trainable parameters (right axis) against a swept setting."""
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.figure(figsize=(6, 3.5)).gca()
    # Markers only: a line between two settings would suggest the ones between were measured.
    scores = [r.test_accuracy for r in results]
    accuracy = ax.plot(values, scores, "o", color="C0", markersize=8, label="test accuracy")
    for value, score in zip(values, scores):
        ax.annotate(f"{score:.2f}", (value, score), xytext=(0, -14), textcoords="offset points", ha="center",
                    fontsize=8, color="C0")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy", color="C0")
    ax.set_title(title)
    # Each axis from 0, so that the two lines only coincide where their values do (with autoscaled
    # axes, two points of each would be drawn on top of each other).
    ax.set_ylim(0, 1)
    ax.set_xticks(list(values), [str(value) for value in values])
    twin = ax.twinx()
    millions = [r.trainable_params / 1e6 for r in results]
    # Grey: orange is feature extraction's colour in every other figure.
    params = twin.plot(values, millions, "s", color="0.45", markersize=7, label="trainable parameters")
    twin.set_ylim(0, max(millions) * 1.15 or 1)
    twin.set_ylabel("trainable parameters (millions)", color="0.45")
    ax.legend(accuracy + params, [line.get_label() for line in accuracy + params], loc="lower left", fontsize=8)
    return ax
