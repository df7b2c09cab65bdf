import dataclasses

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as pyplot
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer, ErrorbarContainer

from conftest import saturating, synthetic_run
from tlhelpers import curves, plots


def make_run(strategy, labels_per_class, seed, asymptote, test_accuracy, phase_starts=()):
    tau = 0.5 if strategy != "scratch" else 4.0
    curve = saturating(asymptote, 0.1, tau) + 0.01 * seed
    return synthetic_run(strategy, labels_per_class, seed, curve, test_accuracy, wall_time_s=5.0,
                         trainable_params=10, non_trainable_params=100, phase_starts=list(phase_starts))


@pytest.fixture
def two_strategies():
    runs = [make_run("scratch", 10, seed, 0.4, 0.4) for seed in range(3)]
    runs += [make_run("fine_tune", 10, seed, 0.8, 0.8, phase_starts=[4]) for seed in range(3)]
    return runs


@pytest.fixture
def budget_runs():
    scratch = {10: 0.3, 30: 0.55, 100: 0.8, 300: 0.9}
    transfer = {10: 0.7, 30: 0.75, 100: 0.78, 300: 0.82}
    runs = []
    for budget in scratch:
        for seed in range(2):
            runs.append(make_run("scratch", budget, seed, scratch[budget], scratch[budget] + 0.01 * seed))
            runs.append(make_run("feature_extraction", budget, seed, transfer[budget], transfer[budget]))
    return runs


@pytest.fixture(autouse=True)
def close_figures():
    yield
    pyplot.close("all")


def test_learning_curves_lines_bands_marks_and_labels(two_strategies):
    figure, ax = pyplot.subplots()
    returned = plots.plot_learning_curves(two_strategies, ax=ax)
    assert returned is ax
    assert ax.get_xlabel() == "epoch (one pass over the training images)"
    assert ax.get_ylabel() == "validation accuracy"
    assert ax.get_title() == "Learning curves: validation accuracy\n(mean over 3 seeds; band: lowest to highest seed)"
    # Per group: mean line, start marker, tangent; plus one phase line.
    assert len(ax.lines) == 2 * 3 + 2 + 1  # axhline asymptotes are Line2D too
    assert sum(isinstance(item, PolyCollection) for item in ax.collections) == 2
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["from scratch", "fine-tuning (head first, then the base)", "fine-tuning starts"]
    phase_lines = [line for line in ax.lines if line.get_label() == "fine-tuning starts"]
    assert len(phase_lines) == 1
    assert list(phase_lines[0].get_xdata()) == [3, 3]
    mean_line = ax.lines[0]
    scratch_curves = [run.history["val_accuracy"] for run in two_strategies[:3]]
    assert np.allclose(mean_line.get_ydata(), np.mean(scratch_curves, axis=0))


def test_learning_curves_without_marks_single_seed_and_loss_key(two_strategies):
    one_seed_each = [two_strategies[0], two_strategies[3]]
    ax = plots.plot_learning_curves(one_seed_each, key="val_loss", mark_metrics=False)
    assert ax.figure is not None
    assert ax.get_ylabel() == "validation loss"
    assert len(ax.lines) == 2 + 1  # two means, one phase line
    assert not any(isinstance(item, PolyCollection) for item in ax.collections)


def test_learning_curves_label_names_varying_budget():
    runs = [make_run("scratch", 10, 0, 0.4, 0.4), make_run("scratch", 100, 0, 0.7, 0.7)]
    ax = plots.plot_learning_curves(runs, mark_metrics=False)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["from scratch (10 labels/class)", "from scratch (100 labels/class)"]
    assert "one run per line" in ax.get_title() and "mean" not in ax.get_title()


def test_learning_curve_legend_names_arms_for_a_reader_and_sits_below_the_curves():
    runs = [make_run("feature_extraction", 10, seed, 0.6, 0.6) for seed in range(2)]
    runs += [synthetic_run("feature_extraction", 10, seed, saturating(0.3, 0.1, 0.5), 0.3, weights="random")
             for seed in range(2)]
    runs += [synthetic_run("small_cnn", 10, 0, saturating(0.4, 0.1, 2.0), 0.4, backbone="small_cnn",
                           weights="none")]
    runs += [synthetic_run("scratch", 10, 0, saturating(0.4, 0.1, 2.0), 0.4, backbone="mobilenet_v2")]
    figure, ax = pyplot.subplots()
    plots.plot_learning_curves(runs, ax=ax, mark_metrics=False)
    legend = ax.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == [
        "feature extraction (ResNet50) (2 seeds)", "random features (ResNet50) (2 seeds)",
        "small CNN (1 seed)", "from scratch (MobileNetV2) (1 seed)"]
    one_backbone = plots.plot_learning_curves(runs[:5], mark_metrics=False)
    assert [text.get_text() for text in one_backbone.get_legend().get_texts()] == [
        "feature extraction (2 seeds)", "random features (2 seeds)", "small CNN (1 seed)"]
    figure.canvas.draw()
    # Below the axes, so it covers no curve and no band.
    assert legend.get_window_extent().y1 <= ax.get_window_extent().y0


def test_learning_curves_rejects_bad_arguments(two_strategies):
    with pytest.raises(ValueError, match="key"):
        plots.plot_learning_curves(two_strategies, key="epoch")
    with pytest.raises(ValueError, match="at least one"):
        plots.plot_learning_curves([])


def test_metric_bars(two_strategies):
    figure, ax = pyplot.subplots()
    assert plots.plot_metric_bars(two_strategies, ax=ax) is ax
    assert len(ax.patches) == 2 * 3
    bars = [container for container in ax.containers if isinstance(container, BarContainer)]
    assert len(bars) == 3
    assert sum(isinstance(container, ErrorbarContainer) for container in ax.containers) == 3
    assert [label.get_text() for label in ax.get_xticklabels()] == ["from scratch", "fine-tuning"]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["start (epoch 1)", "initial slope (per epoch)", "asymptote"]
    assert "slope" in ax.get_ylabel() and ax.get_title()
    rows = curves.summarize(two_strategies)
    heights = [patch.get_height() for patch in bars[2].patches]
    assert heights == pytest.approx([row["asymptote_mean"] for row in rows])


def test_metric_bars_rejects_empty_and_wrong_types():
    with pytest.raises(ValueError, match="empty"):
        plots.plot_metric_bars([])
    with pytest.raises(ValueError, match="received int"):
        plots.plot_metric_bars([1, 2])


def test_label_budget_log_axis_lines_and_crossover(budget_runs):
    figure, ax = pyplot.subplots()
    assert plots.plot_label_budget(budget_runs, ax=ax) is ax
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel().startswith("labels per class")
    assert ax.get_ylabel() == "test accuracy (mean; bars: ± std over seeds)"
    assert ax.get_title()
    assert sum(isinstance(item, ErrorbarContainer) for item in ax.containers) == 2
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["from scratch", "feature extraction"]
    crossing_markers = [line for line in ax.lines if line.get_marker() == "X"]
    assert len(crossing_markers) == 1
    assert 30 < crossing_markers[0].get_xdata()[0] <= 100
    control = [make_run("feature_extraction", run.labels_per_class, run.seed, 0.2, 0.25) for run in budget_runs
               if run.strategy == "scratch"]
    control = [dataclasses.replace(run, weights="random") for run in control]
    ax = plots.plot_label_budget(budget_runs + control)
    # The random-features control gets no "catches up" mark.
    assert len([line for line in ax.lines if line.get_marker() == "X"]) == 1
    assert any("catches up" in text.get_text() for text in ax.texts)


def test_label_budget_without_crossover_accepts_summary_rows(budget_runs):
    transfer_only_better = [run for run in budget_runs if run.labels_per_class <= 30]
    ax = plots.plot_label_budget(curves.summarize(transfer_only_better))
    assert ax.get_xscale() == "log"
    assert not [line for line in ax.lines if line.get_marker() == "X"]
    assert not ax.texts


def test_marks_are_drawn_per_phase_and_no_asymptote_for_a_rising_curve():
    runs = [make_run("fine_tune", 10, seed, 0.8, 0.8, phase_starts=[4]) for seed in range(2)]
    ax = plots.plot_learning_curves(runs)
    starts = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert sorted(float(line.get_xdata()[0]) for line in starts) == [1.0, 4.0]
    pyplot.close("all")
    rising = [synthetic_run("scratch", 10, seed, np.linspace(0.1, 0.6, 9), 0.6) for seed in range(2)]
    ax = plots.plot_learning_curves(rising)
    assert [text.get_text() for text in ax.texts] == ["still rising"]
    assert not ax.collections or all(not isinstance(c, matplotlib.collections.LineCollection)
                                     for c in ax.collections)
    pyplot.close("all")


def test_metric_guide_names_every_mark_and_the_fit_method():
    ax = plots.plot_metric_guide(make_run("fine_tune", 10, 0, 0.8, 0.8))
    texts = " ".join(text.get_text() for text in ax.texts)
    assert "start = " in texts and "initial slope = " in texts and "asymptote = " in texts
    assert "saturating fit" in ax.get_title()
    pyplot.close("all")
    ax = plots.plot_metric_guide(synthetic_run("scratch", 10, 0, np.linspace(0.1, 0.6, 9), 0.6))
    assert "n/a (still rising)" in " ".join(text.get_text() for text in ax.texts)
    assert "linear fallback" in ax.get_title()
    pyplot.close("all")


def test_source_comparison_draws_one_bar_per_source_and_target_and_every_seed():
    accuracies = {"clutter": {"ImageNet": [0.6, 0.7, 0.65], "garments": [0.5, 0.45, 0.5], "random": [0.3, 0.2, 0.25]},
                  "clip art": {"ImageNet": [0.7, 0.6, 0.66], "garments": [0.3, 0.35, 0.3], "random": [0.2, 0.3, 0.3]}}
    ax = plots.plot_source_comparison(accuracies, chance={"clutter": 0.2, "clip art": 0.2})
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in bars] == ["ImageNet", "garments", "random"]
    assert [round(p.get_height(), 3) for p in bars[0].patches] == [0.65, 0.653]
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(dots) == 6 and all(len(line.get_ydata()) == 3 for line in dots)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["clutter", "clip art"]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["ImageNet", "chance", "garments", "random"]
    # A control keeps the colour it has in the other figures; the other sources take the free ones.
    ax = plots.plot_source_comparison(accuracies, colours={"random": plots.ARM_COLOURS["random_features"]})
    assert [to_hex(c.patches[0].get_facecolor()) for c in ax.containers if isinstance(c, BarContainer)] == [
        to_hex("C0"), to_hex("C1"), to_hex("C7")]
    pyplot.close("all")
    with pytest.raises(ValueError, match="different sources"):
        plots.plot_source_comparison({"a": {"x": [1]}, "b": {"y": [1]}})


def test_learning_curves_evaluated_every_n_steps_read_in_steps(two_strategies):
    for run in two_strategies:
        run.config["eval_every"] = 20
    figure, ax = pyplot.subplots()
    plots.plot_learning_curves(two_strategies, ax=ax)
    figure.canvas.draw()
    assert ax.get_xlabel() == "gradient steps (evaluated every 20)"
    ticks = {tick.get_position()[0]: tick.get_text() for tick in ax.get_xticklabels()}
    assert ticks[2.0] == "40" and ticks[4.0] == "80"


def test_random_features_from_a_run_without_weights_are_named_so_and_one_seed_shows_no_spread(budget_runs):
    # `train_run(..., "feature_extraction", weights="none")` records weights "none": still random features.
    control = [dataclasses.replace(make_run("feature_extraction", run.labels_per_class, 0, 0.2, 0.25),
                                   weights="none") for run in budget_runs if run.strategy == "scratch" and run.seed == 0]
    group = {"strategy": "feature_extraction", "weights": "none", "backbone": "resnet50"}
    assert plots.is_random_features(group) and plots.group_label(group, set()) == "random features"
    one_seed = [run for run in budget_runs if run.seed == 0] + control
    ax = plots.plot_label_budget(one_seed)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "from scratch", "feature extraction", "random features"]
    assert ax.get_ylabel() == "test accuracy (one run per point)"
    assert plots.model_title("resnet50", "embedded") == "ResNet50 (garment source)"
    assert plots.backbone_name("a_new_backbone") == "a_new_backbone"


def test_coinciding_curves_stay_visible_each_line_thinner_than_the_one_before():
    flat = np.full(6, 0.2)
    runs = [synthetic_run("scratch", 10, 0, flat, 0.2, backbone=name) for name in ("resnet50", "vgg16")]
    runs.append(synthetic_run("small_cnn", 10, 0, flat, 0.2, backbone="small_cnn"))
    ax = plots.plot_learning_curves(runs, mark_metrics=False)
    widths = [line.get_linewidth() for line in ax.lines[:3]]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == 3
    assert (widths[0], widths[-1]) == plots.LINE_WIDTHS


def test_a_loss_that_explodes_gets_a_log_axis_read_at_1_2_5_and_a_tame_one_does_not():
    exploding = synthetic_run("scratch", 10, 0, np.linspace(0.2, 0.4, 6), 0.4)
    exploding.history["val_loss"] = [2.3, 9.0, 18.0, float("nan"), 12.0, 10.0]
    tame = synthetic_run("fine_tune", 10, 0, np.linspace(0.2, 0.8, 6), 0.8)
    figure, (log_ax, linear_ax) = pyplot.subplots(1, 2)
    plots.plot_learning_curves([exploding, tame], key="val_loss", ax=log_ax, mark_metrics=False)
    assert log_ax.get_yscale() == "log"
    figure.canvas.draw()
    shown = [label.get_text() for label in log_ax.get_yticklabels() if label.get_text()]
    assert shown and set(shown) <= {"0.1", "0.2", "0.5", "1", "2", "5", "10", "20", "50"}
    plots.plot_learning_curves([tame], key="val_loss", ax=linear_ax, mark_metrics=False)
    assert linear_ax.get_yscale() == "linear"


def test_still_rising_is_written_inside_the_axes_left_of_the_curves_end():
    rising = [synthetic_run("scratch", 10, seed, np.linspace(0.1, 0.6, 9), 0.6) for seed in range(2)]
    figure, ax = pyplot.subplots(figsize=(6, 4))
    plots.plot_learning_curves(rising, ax=ax)
    figure.canvas.draw()
    [label] = ax.texts
    box, axes_box = label.get_window_extent(), ax.get_window_extent()
    assert label.get_text() == "still rising" and label.get_bbox_patch() is not None
    assert axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1 and axes_box.y0 <= box.y0 and box.y1 <= axes_box.y1
    end_x = ax.transData.transform((8, 0.6))[0]
    assert box.x1 <= end_x


@pytest.mark.parametrize("length", [1, 3, 40])
def test_ticks_fall_on_whole_evaluations(length):
    runs = [synthetic_run("scratch", 10, 0, np.linspace(0.1, 0.5, length), 0.5)]
    figure, ax = pyplot.subplots()
    plots.plot_learning_curves(runs, ax=ax, mark_metrics=False)
    figure.canvas.draw()
    low, high = ax.get_xlim()
    ticks = [tick for tick in ax.get_xticks() if low <= tick <= high]
    assert ticks and all(float(tick).is_integer() for tick in ticks)


def test_a_shared_y_axis_is_named_once_per_row_on_its_leftmost_panel(two_strategies):
    figure, axes = pyplot.subplots(2, 2, sharey="row")
    for ax in axes.ravel():
        plots.plot_learning_curves(two_strategies, ax=ax, mark_metrics=False)
    assert [[ax.get_ylabel() for ax in row] for row in axes] == [["validation accuracy", ""]] * 2
    figure, axes = pyplot.subplots(2, 2, sharey="col")
    for ax in axes.ravel():
        plots.plot_budget_curves([{"arm": "small_cnn", "labels_per_class": 10, "test_accuracy": 0.5,
                                   "ci_low": 0.4, "ci_high": 0.6}], {"small_cnn": "small CNN"}, ax=ax)
    assert all(ax.get_ylabel().startswith("test accuracy") for ax in axes.ravel())


def test_range_test_legend_sits_below_the_axes():
    from tlhelpers.lr_finder import RangeTest

    rates = np.geomspace(1e-5, 1.0, 50)
    losses = np.concatenate([np.linspace(2.3, 0.5, 40), np.linspace(0.6, 5.0, 10)])
    test = RangeTest(rates=rates, losses=losses, smoothed=losses, lowest=1e-2, suggestion=1e-3, stopped="end")
    figure, ax = pyplot.subplots()
    plots.plot_lr_range(test, ax=ax, marks={"1e-05 (a run above)": 1e-5})
    figure.canvas.draw()
    assert ax.get_legend().get_window_extent().y1 < ax.get_window_extent().y0


def test_the_log_axis_is_decided_on_what_is_drawn_and_a_label_stays_inside_it():
    # Seed 1 runs longer and its loss climbs to 30, but the group is drawn only as far as seed 0 went.
    short = synthetic_run("scratch", 10, 0, np.linspace(0.2, 0.4, 6), 0.4)
    long = synthetic_run("scratch", 10, 1, np.linspace(0.2, 0.4, 12), 0.4)
    short.history["val_loss"] = [2.0, 1.6, 1.2, 1.0, 0.9, 0.8]
    long.history["val_loss"] = [2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 2.0, 5.0, 9.0, 15.0, 22.0, 30.0]
    ax = plots.plot_learning_curves([short, long], key="val_loss", mark_metrics=False)
    assert ax.get_yscale() == "linear"
    pyplot.close("all")
    # A wandering loss that ends near the top of a log axis: its words go under its end, inside the axes.
    wander = [synthetic_run("scratch", 10, seed, np.full(9, 0.3), 0.3) for seed in range(2)]
    for run in wander:
        run.history["val_loss"] = [0.5, 20.0, 3.0, 25.0, 2.0, 30.0, 1.0, 30.0, 40.0]
    figure, ax = pyplot.subplots(figsize=(6, 4))
    plots.plot_learning_curves(wander, key="val_loss", ax=ax)
    assert ax.get_yscale() == "log"
    figure.canvas.draw()
    for label in ax.texts:
        box, axes_box = label.get_window_extent(), ax.get_window_extent()
        assert axes_box.y0 <= box.y0 and box.y1 <= axes_box.y1, label.get_text()


def test_a_budget_curve_of_one_point_gets_an_error_bar_and_no_interval_stretches_the_axis():
    rows = [{"arm": "small_cnn", "labels_per_class": n, "test_accuracy": 0.5 + 0.1 * i, "ci_low": 0.45 + 0.1 * i,
             "ci_high": 0.55 + 0.1 * i} for i, n in enumerate((10, 25, 50))]
    rows.append({"arm": "scratch", "labels_per_class": 10, "test_accuracy": 0.34, "ci_low": -0.49, "ci_high": 1.17})
    ax = plots.plot_budget_curves(rows, {"small_cnn": "small CNN", "scratch": "same architecture from scratch"})
    assert [type(c).__name__ for c in ax.containers] == ["ErrorbarContainer"]
    low, high = ax.get_ylim()
    assert -0.1 < low and high < 1.1
    # Panels that share a y axis still fit both panels' curves.
    figure, (left, right) = pyplot.subplots(1, 2, sharey=True)
    plots.plot_budget_curves(rows[:3], {"small_cnn": "small CNN"}, ax=left)
    plots.plot_budget_curves([dict(row, test_accuracy=0.2, ci_low=0.15, ci_high=0.25) for row in rows[:3]],
                             {"small_cnn": "small CNN"}, ax=right)
    assert right.get_ylim()[0] < 0.15 and left.get_ylim()[1] > 0.75


def test_the_tangent_is_a_thin_dash_dotted_mark(two_strategies):
    ax = plots.plot_learning_curves(two_strategies)
    tangents = [line for line in ax.lines if line.get_linestyle() == "-."]
    assert len(tangents) == 3 and all(line.get_linewidth() < 1.5 for line in tangents)


def test_each_arm_keeps_its_colour_across_figures_and_repeated_arms_are_told_apart():
    runs = [make_run("fine_tune", 10, 0, 0.8, 0.8), make_run("scratch", 10, 0, 0.4, 0.4)]
    alone = plots.plot_learning_curves(runs, mark_metrics=False)
    runs_other_order = [make_run("scratch", 10, 0, 0.4, 0.4),
                        synthetic_run("small_cnn", 10, 0, saturating(0.5, 0.1, 2.0), 0.5, backbone="small_cnn"),
                        make_run("fine_tune", 10, 0, 0.8, 0.8)]
    mixed = plots.plot_learning_curves(runs_other_order, mark_metrics=False)
    colour = {text.get_text(): line.get_color() for ax in (alone, mixed)
              for line, text in zip(ax.get_legend().legend_handles, ax.get_legend().get_texts())}
    assert colour["fine-tuning"] == "C0" and colour["from scratch"] == "C2" and colour["small CNN"] == "C3"
    table = [{"arm": arm, "labels_per_class": budget, "test_accuracy": 0.5, "ci_low": 0.4, "ci_high": 0.6}
             for arm in ("scratch", "fine_tune", "pixels") for budget in (10, 100)]
    budget = plots.plot_budget_curves(table, {"scratch": "s", "fine_tune": "f", "pixels": "p"})
    assert [line.get_color() for line in budget.lines] == ["C2", "C0", "C4"]
    # A second line of one arm (another backbone or budget) takes a colour no arm owns.
    assert plots.arm_colours(["fine_tune", "fine_tune", "scratch"]) == ["C0", "C4", "C2"]
    assert plots.arm_colours(["pixels", "fine_tune", "pixels"]) == ["C4", "C0", "C5"]


def test_stage_lines_sit_side_by_side_around_each_k_with_a_chance_line():
    lines = {name: [(1, 0.7, 0.6, 0.8), (3, 0.6, 0.5, 0.7)] for name in ("AnB", "BnB", "random")}
    ax = plots.plot_by_stage(lines, ("scratch", 0.7, 0.65, 0.75), chance=0.2)
    drawn = [line for line in ax.lines if line.get_marker() == "o"]
    offsets = [line.get_xdata()[0] - 1 for line in drawn]
    assert offsets == pytest.approx([-0.04, 0.0, 0.04])  # centred on k
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["scratch", "chance"]


def test_an_accuracy_gets_a_chance_line_when_every_run_names_its_classes_and_a_loss_does_not():
    classes = {"classes": ["a", "b", "c", "d", "e"]}
    runs = [synthetic_run("scratch", 10, 0, np.linspace(0.2, 0.5, 6), 0.5, config=classes),
            synthetic_run("fine_tune", 10, 0, np.linspace(0.2, 0.8, 6), 0.8, config=classes)]
    ax = plots.plot_learning_curves(runs, mark_metrics=False)
    chance = [line for line in ax.lines if line.get_label() == "chance (1 in 5)"]
    assert len(chance) == 1 and list(chance[0].get_ydata()) == [0.2, 0.2]
    assert not any("chance" in line.get_label() for line in
                   plots.plot_learning_curves(runs, key="val_loss", mark_metrics=False).lines)
    # A run that does not say its classes leaves chance unknown: no line rather than a wrong one.
    unnamed = [runs[0], synthetic_run("fine_tune", 10, 0, np.linspace(0.2, 0.8, 6), 0.8)]
    assert not any("chance" in line.get_label() for line in
                   plots.plot_learning_curves(unnamed, mark_metrics=False).lines)


def test_start_dots_at_one_point_shrink_in_drawing_order_so_each_shows_as_a_ring():
    flat = np.full(6, 0.2)
    runs = [synthetic_run("scratch", 10, 0, flat, 0.2, backbone=name) for name in ("resnet50", "vgg16")]
    runs.append(synthetic_run("small_cnn", 10, 0, flat, 0.2, backbone="small_cnn"))
    ax = plots.plot_learning_curves(runs)
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    sizes = [dot.get_markersize() for dot in dots]
    assert len(dots) == 3 and sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 3
    assert all(dot.get_markeredgecolor() == "white" for dot in dots)


def test_a_log_loss_axis_says_so_and_lines_cut_at_the_shortest_run_say_so():
    long = synthetic_run("scratch", 10, 0, np.linspace(0.2, 0.5, 8), 0.5)
    short = synthetic_run("scratch", 10, 1, np.linspace(0.2, 0.5, 5), 0.5)
    long.history["val_loss"] = [2.3, 9.0, 18.0, 30.0, 12.0, 10.0, 9.0, 8.0]
    ax = plots.plot_learning_curves([long, short], key="val_loss", mark_metrics=False)
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "validation loss (log scale)"
    assert ax.get_title().endswith("lines end at their shortest run)")
    assert len(ax.lines[0].get_xdata()) == 5
    even = plots.plot_learning_curves([long], mark_metrics=False)
    assert "shortest" not in even.get_title() and even.get_ylabel() == "validation accuracy"


def test_budget_markers_shrink_in_legend_order_so_two_arms_level_at_a_budget_both_show():
    rows = [{"arm": arm, "labels_per_class": n, "test_accuracy": 0.5, "ci_low": 0.45, "ci_high": 0.55}
            for arm in ("feature_extraction", "small_cnn") for n in (10, 25)]
    ax = plots.plot_budget_curves(rows, {"feature_extraction": "feature extraction", "small_cnn": "small CNN"})
    first, second = ax.lines[:2]
    assert first.get_markersize() > second.get_markersize()
    assert first.get_markeredgecolor() == second.get_markeredgecolor() == "white"
