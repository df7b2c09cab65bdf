"""Inspection helpers, profiles and the linear probe."""

import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from tlhelpers import features, plots, profiles, visualize
from tlhelpers.backbones import build_base
from tlhelpers.results import RunResult


def test_profiles(monkeypatch):
    monkeypatch.delenv("TLHELPERS_PROFILE", raising=False)
    assert profiles.get_profile()["weights"] == "embedded"
    monkeypatch.setenv("TLHELPERS_PROFILE", "imagenet")
    assert profiles.get_profile() == {"name": "imagenet", "weights": "imagenet", "image_size": 224,
                                      "dataset": "flowers"}
    assert profiles.get_profile("offline")["image_size"] == 48
    with pytest.raises(ValueError, match="Received profile='online'"):
        profiles.get_profile("online")


def test_image_grid_draws_one_axes_per_image():
    figure = visualize.plot_image_grid(np.zeros((5, 8, 8, 1), np.uint8), list("abcde"), columns=3,
                                       figure=Figure())
    assert len(figure.axes) == 5
    assert [ax.get_title() for ax in figure.axes] == list("abcde")
    assert figure.get_suptitle() == ""
    titled = visualize.plot_image_grid(np.zeros((2, 8, 8)), columns=2, figure=Figure(), title="Clip art")
    assert titled.get_suptitle() == "Clip art" and titled._suptitle.get_ha() == "left"


def test_filters_and_feature_maps():
    base = build_base("vgg16", weights=None, image_size=32, pooling=None)
    filters, name = visualize.first_layer_filters(base, count=6)
    assert name == "block1_conv1" and filters.shape == (6, 3, 3, 3)
    assert filters.min() >= 0 and filters.max() <= 1
    maps = visualize.feature_maps(base, np.zeros((1, 32, 32, 3), "float32"), ["block1_pool", "block4_pool"])
    assert maps["block1_pool"].shape == (1, 16, 16, 64) and maps["block4_pool"].shape == (1, 2, 2, 512)
    figure = visualize.plot_feature_maps(maps, channels=4, figure=Figure())
    assert len(figure.axes) == 8
    assert figure.axes[0].get_ylabel().startswith("block1_pool")


def test_projection_and_sweep_plots():
    rng = np.random.default_rng(0)
    ax = Figure().add_subplot()
    visualize.plot_projection(rng.normal(size=(30, 2)), np.arange(30) % 3, ("a", "b", "c"), ax=ax, title="t")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    results = [RunResult("resnet50", "embedded", "fine_tune", 10, 0, {}, acc, 1.0, 1.0, params, 0)
               for acc, params in ((0.5, 3_000_000), (0.6, 1_000_000))]
    ax = visualize.plot_sweep([1, 3], results, "last frozen stage k", ax=Figure().add_subplot())
    assert ax.get_xlabel() == "last frozen stage k"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.5, 0.6])


def test_a_projection_with_far_points_keeps_its_bulk_readable_and_counts_what_it_leaves_out():
    rng = np.random.default_rng(0)
    bulk = rng.normal(size=(500, 2))
    assert visualize.projection_view(bulk) is None  # nothing far out: every point shown
    points = np.vstack([bulk, [[200.0, 0.0], [0.0, -150.0]]])
    ax = Figure().add_subplot()
    visualize.plot_projection(points, np.arange(502) % 2, ("a", "b"), ax=ax)
    assert ax.get_xlim()[1] < 10 and ax.get_ylim()[0] > -10
    assert re.fullmatch(r"component 1 \(\d+ far points outside the view\)", ax.get_xlabel()) and not ax.texts
    # The class legend sits under the axes, off the points.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(ax.figure).draw()
    assert ax.get_legend().get_window_extent().y1 <= ax.get_window_extent().y0
    low_x, high_x = visualize.projection_view(points)[0]
    assert low_x < bulk[:, 0].min() / 2 and high_x > bulk[:, 0].max() / 2


def test_a_sweep_draws_its_settings_as_points_not_a_line_between_them():
    results = [RunResult("resnet50", "embedded", "fine_tune", 10, 0, {}, acc, 1.0, 1.0, params, 0)
               for acc, params in ((0.51, 23_000_000), (0.43, 22_000_000))]
    figure = Figure()
    ax = visualize.plot_sweep([1, 3], results, "last frozen stage k", ax=figure.add_subplot())
    twin = [other for other in figure.axes if other is not ax][0]
    assert ax.lines[0].get_linestyle() == "None" and twin.lines[0].get_linestyle() == "None"
    assert [text.get_text() for text in ax.texts] == ["0.51", "0.43"]
    # The parameters are not drawn in an arm's colour (orange is feature extraction everywhere else).
    assert twin.lines[0].get_color() not in {to_hex(f"C{index}") for index in range(10)} | set(
        plots.ARM_COLOURS.values())


def test_sweep_lines_on_twin_axes_do_not_hide_each_other():
    """Two swept values: with autoscaled twin axes both lines ran corner to corner, one exactly on top
    of the other; each axis now starts at 0 and the x ticks are the swept values."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    results = [RunResult("resnet50", "embedded", "fine_tune", 10, 0, {}, acc, 1.0, 1.0, params, 0)
               for acc, params in ((0.52, 14_000_000), (0.48, 8_000_000))]
    figure = Figure()
    FigureCanvasAgg(figure)
    ax = visualize.plot_sweep([3, 4], results, "last frozen stage k", ax=figure.add_subplot())
    figure.canvas.draw()
    twin = [other for other in figure.axes if other is not ax][0]
    drawn = [line.get_transform().transform(np.column_stack(line.get_data())) for line in (ax.lines[0], twin.lines[0])]
    # In pixels, the two lines do not run through the same points (they did exactly, at both values).
    assert np.abs(drawn[0][:, 1] - drawn[1][:, 1]).max() > 50
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["3", "4"]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["test accuracy", "trainable parameters"]


def test_linear_probe_separates_separable_features():
    rng = np.random.default_rng(0)
    labels = np.arange(200) % 2
    separable = rng.normal(size=(200, 5)) + labels[:, None] * 4
    noise = rng.normal(size=(200, 5))
    assert features.linear_probe(separable[:100], labels[:100], separable[100:], labels[100:]) > 0.95
    assert features.linear_probe(noise[:100], labels[:100], noise[100:], labels[100:]) < 0.75
    assert features.project_2d(separable).shape == (200, 2)


def test_most_confused_lists_the_largest_off_diagonal_cells():
    from tlhelpers.visualize import most_confused

    matrix = [[50, 3, 0], [9, 40, 1], [0, 7, 44]]
    assert most_confused(matrix, ["a", "b", "c"], top=2) == [("b", "a", 9), ("c", "b", 7)]
    assert most_confused(np.eye(3) * 5, ["a", "b", "c"]) == []  # no error, no pair


def test_grad_cam_finds_the_evidence_for_each_class():
    import keras

    # Channel 0 speaks for class 0 and is active top-left; channel 1 for class 1, bottom-right.
    inputs = keras.Input((4, 4, 2))
    outputs = keras.layers.Dense(2, activation="softmax", use_bias=False)(keras.layers.GlobalAveragePooling2D()(inputs))
    head = keras.Model(inputs, outputs)
    head.layers[-1].set_weights([np.array([[2.0, -2.0], [-2.0, 2.0]], np.float32)])
    maps = np.zeros((2, 4, 4, 2), np.float32)
    maps[:, 0, 0, 0] = 3.0
    maps[:, 3, 3, 1] = 1.0
    heat, classes = visualize.grad_cam(head, maps, classes=[0, 1])
    assert classes.tolist() == [0, 1] and heat.shape == (2, 4, 4)
    assert heat[0, 0, 0] == 1.0 and heat[0, 3, 3] == 0.0
    assert heat[1, 3, 3] == 1.0 and heat[1, 0, 0] == 0.0
    predicted, predicted_classes = visualize.grad_cam(head, maps, size=8)
    assert predicted_classes.tolist() == [0, 0] and predicted.shape == (2, 8, 8)
    top_left = np.zeros((2, 4, 4), bool)
    top_left[:, :2, :2] = True
    assert visualize.heat_inside(heat, top_left).tolist() == [1.0, 0.0]
    assert visualize.heat_inside(np.zeros((1, 4, 4)), top_left[:1]).tolist() == [0.25]
    figure = visualize.plot_heat_maps(np.zeros((2, 8, 8)), predicted, titles=["a", "b"], boxes=[(0, 0, 4)] * 2,
                                      figure=Figure(figsize=(8, 2)))
    # The two images and a colour bar that reads the heat, right of every image.
    *images, bar = figure.axes
    assert len(images) == 2 and bar.get_ylabel().startswith("Grad-CAM heat")
    assert bar.get_ylim() == (0.0, 1.0)
    figure.canvas.draw()
    assert bar.get_window_extent().x0 > max(ax.get_window_extent().x1 for ax in images)
    # A title for the whole grid starts at the first image where the layout finally put it.
    titled = visualize.plot_heat_maps(np.zeros((2, 8, 8)), predicted, figure=Figure(figsize=(8, 2)),
                                      title="head of seed 0: evidence for the predicted class")
    assert titled.get_suptitle() == "head of seed 0: evidence for the predicted class"
    assert titled._suptitle.get_position()[0] == titled.axes[0].get_position().x0
