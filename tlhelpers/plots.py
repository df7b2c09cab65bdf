"""Figures for learning curves, curve metrics and label budgets (matplotlib only)."""

from __future__ import annotations

import numpy as np

from tlhelpers import curves
from tlhelpers.results import RunResult

KEY_NAMES = {
    "accuracy": "training accuracy",
    "val_accuracy": "validation accuracy",
    "loss": "training loss",
    "val_loss": "validation loss",
}
STRATEGY_NAMES = {
    "feature_extraction": "feature extraction",
    "fine_tune": "fine-tuning",
    "scratch": "scratch",
    "small_cnn": "small CNN",
}
# A legend names a strategy on its own, without a table's column to explain it.
LEGEND_NAMES = {**STRATEGY_NAMES, "scratch": "from scratch"}
# What a reader calls a registry name or a weight source in a legend or a table.
BACKBONE_NAMES = {
    "resnet50": "ResNet50",
    "vgg16": "VGG16",
    "mobilenet_v2": "MobileNetV2",
    "efficientnet_lite0": "EfficientNet-Lite0",
    "small_cnn": "small CNN",
}
WEIGHT_NAMES = {
    "imagenet": "ImageNet weights",
    "embedded": "garment source",
    "develop": "developed source",
    "source": "source weights",
    "random": "random weights",
    "none": "random start",
}
GROUP_FIELDS = ("backbone", "weights", "strategy", "labels_per_class")
# One colour per arm in every figure of the course (matplotlib's default cycle); the colours no arm
# here uses go, in order, to the other arms a figure shows.
ARM_COLOURS = {"fine_tune": "C0", "feature_extraction": "C1", "scratch": "C2", "small_cnn": "C3",
               "random_features": "C7"}
# Each group's line is thinner than the one before, so curves that coincide all stay visible.
LINE_WIDTHS = (2.6, 1.2)
# Start dots shrink in the same order, so dots at one point show as rings; budget-curve markers too.
DOT_SIZES = (10.0, 5.0)
BUDGET_DOT_SIZES = (8.0, 5.0)


def _shrinking(bounds, count, alone):
    """`count` sizes from `bounds[0]` down to `bounds[1]`, one per mark in drawing order (a later mark is
    smaller, so marks that coincide all show), or `[alone]` for a single mark."""
    return list(np.linspace(*bounds, count)) if count > 1 else [alone]


def backbone_name(name):
    """A registry name as a reader knows it: "ResNet50" for `resnet50`; unknown names unchanged."""
    return BACKBONE_NAMES.get(name, name)


def model_title(backbone, weights):
    """A model as a title names it: "ResNet50 (garment source)"."""
    return f"{backbone_name(backbone)} ({WEIGHT_NAMES.get(weights, weights)})"


def is_random_features(group):
    """Whether a run group is the random-features control: a frozen base with random weights (a study's
    `"random"` or a run's `weights="none"`)."""
    return group["strategy"] == "feature_extraction" and group.get("weights") in ("random", "none")


def arm_of(group):
    """The arm a run group or summary row belongs to: its strategy, or `"random_features"`."""
    return "random_features" if is_random_features(group) else group["strategy"]


def arm_colours(arms, owned=ARM_COLOURS):
    """A colour for each entry of `arms` (arm names, in drawing order).

    An arm's first line keeps its `owned` colour (`ARM_COLOURS`: fine-tuning is the same blue in every
    figure); a second line of the same arm (another backbone or budget) and an arm not listed there
    take, in order, the colours no listed arm uses.
    """
    spare = [f"C{index}" for index in range(10) if f"C{index}" not in owned.values()]
    colours, seen, spares_used = [], set(), 0
    for arm in arms:
        if arm in owned and arm not in seen:
            colours.append(owned[arm])
        else:
            colours.append(spare[spares_used % len(spare)])
            spares_used += 1
        seen.add(arm)
    return colours


def _axes(ax):
    """Returns `ax`, or the axes of a new pyplot figure (so notebooks display it) when None."""
    if ax is not None:
        return ax
    from matplotlib import pyplot  # Imported lazily: library import must not pick a backend.

    return pyplot.subplots(figsize=(8, 5))[1]


def _as_rows(data):
    """Accepts summary rows or `RunResult`s and returns summary rows."""
    data = list(data)
    if not data:
        raise ValueError("Expected summary rows or RunResult objects, received an empty sequence.")
    if all(isinstance(item, RunResult) for item in data):
        return curves.summarize(data)
    if all(isinstance(item, dict) for item in data):
        return data
    raise ValueError("Expected summary rows (dicts) or RunResult objects, "
                     f"received {type(data[0]).__name__}.")


def group_label(group, varying):
    """Readable legend label: the strategy, plus the group fields that differ between groups, in a
    reader's words ("random features" for feature extraction from random weights, "ResNet50" for
    `resnet50`)."""
    strategy, weights = group["strategy"], group.get("weights")
    random_features = is_random_features(group)
    label = "random features" if random_features else LEGEND_NAMES.get(strategy, strategy)
    extras = []
    if "backbone" in varying and group["backbone"] != strategy:
        extras.append(backbone_name(group["backbone"]))
    if "weights" in varying and not random_features and strategy not in ("scratch", "small_cnn"):
        extras.append(WEIGHT_NAMES.get(weights, weights))
    if "labels_per_class" in varying:
        extras.append(f"{group['labels_per_class']} labels/class")
    return f"{label} ({', '.join(extras)})" if extras else label


def seeds_text(counts):
    """What a curve is, given each line's number of seeds: "one run per line", "mean over 5 seeds"."""
    counts = set(counts)
    if counts == {1}:
        return "one run per line"
    return f"mean over {counts.pop()} seeds" if len(counts) == 1 else "mean over seeds"


def _varying(groups, fields=GROUP_FIELDS):
    """Group fields worth naming in labels because they differ between groups."""
    varying = {field for field in fields
               if field not in ("weights", "backbone") and len({group[field] for group in groups}) > 1}
    # The small CNN is its own architecture: name backbones only when the others differ.
    if "backbone" in fields and len({g["backbone"] for g in groups if g["strategy"] != "small_cnn"}) > 1:
        varying.add("backbone")
    # Scratch always has other weights than transfer, and random features are named as such; name
    # weights only when one strategy uses several.
    by_strategy = {}
    for group in groups:
        by_strategy.setdefault("random features" if is_random_features(group) else group["strategy"],
                               set()).add(group.get("weights"))
    if "weights" in fields and any(len(weights) > 1 for weights in by_strategy.values()):
        varying.add("weights")
    return varying


def plot_learning_curves(results, key="val_accuracy", ax=None, mark_metrics=True):
    """Plots the mean learning curve of each run group, with its spread and curve metrics.

    Runs are grouped by (backbone, weights, strategy, labels_per_class). Each
    group gets one colour: the mean over seeds (over the epochs all its runs
    reached), and with two or more seeds a band from the minimum to the maximum
    seed. With `mark_metrics`, each phase of training gets its own marks, the
    means over seeds of each seed's metrics (the numbers the tables show): a dot
    at the start (the first evaluation after the phase begins), a short tangent
    with the fitted initial slope (cut where it reaches the asymptote level), and
    a dashed line at the asymptote, drawn only when every seed's curve levels off
    ("still rising", or "no level" for curves that only wander, is written left of the
    curve's end otherwise). Each group's line and start dot are smaller than the one
    before, so curves and dots that coincide stay visible. An accuracy gets a dotted
    chance line when every run names the same number of classes. A loss whose highest
    drawn value is over 10 times its lowest gets a log axis, and its name says so. A
    group whose runs stopped at different evaluations is drawn up to the shortest
    run, and the title says so; a run trained in two phases (head first, then the
    base) is named by both.
    `plot_metric_guide` explains the marks on one curve. A dotted vertical line
    marks where a later phase begins (between epoch `p - 1` and epoch `p` for
    `phase_starts = [p]`).

    Args:
        results: Iterable of `RunResult`.
        key: History curve to plot, e.g. `"val_accuracy"` or `"val_loss"`.
        ax: Axes to draw on; a new figure is created when None.
        mark_metrics: Whether to draw the start, slope and asymptote marks.

    Returns:
        The Axes drawn on.

    Raises:
        ValueError: If `results` is empty or `key` is not a history curve name.
    """
    results = list(results)
    if not results:
        raise ValueError("`results` must contain at least one RunResult, received none.")
    if key not in KEY_NAMES:
        raise ValueError(f"`key` must be one of {sorted(KEY_NAMES)}, received {key!r}.")
    ax = _axes(ax)
    groups = {}
    for result in results:
        groups.setdefault(tuple(getattr(result, field) for field in GROUP_FIELDS), []).append(result)
    varying = _varying([dict(zip(GROUP_FIELDS, group)) for group in groups])
    counts = {len(runs) for runs in groups.values()}
    phases = {}
    widths = _shrinking(LINE_WIDTHS, len(groups), alone=2.0)
    dot_sizes = _shrinking(DOT_SIZES, len(groups), alone=DOT_SIZES[0])
    # Each group's curves up to the last evaluation all its runs reached: what is drawn.
    stacks = []
    for runs in groups.values():
        length = min(len(run.history[key]) for run in runs)
        stacks.append(np.array([run.history[key][:length] for run in runs], dtype=float))
    cut = any(len({len(run.history[key]) for run in runs}) > 1 for runs in groups.values())
    if "loss" in key:
        _log_if_spread(ax, stacks)
    labelled = False
    colours = arm_colours(arm_of(dict(zip(GROUP_FIELDS, group))) for group in groups)
    for index, ((group, runs), stacked) in enumerate(zip(groups.items(), stacks)):
        color = colours[index]
        length = stacked.shape[1]
        epochs = np.arange(length)
        mean = stacked.mean(axis=0)
        seeds = f" ({len(runs)} seed{'s' * (len(runs) > 1)})" if len(counts) > 1 else ""
        fields = dict(zip(GROUP_FIELDS, group))
        two_phase = fields["strategy"] == "fine_tune" and any(run.phase_starts for run in runs)
        two_phase = " (head first, then the base)" if two_phase else ""
        ax.plot(epochs, mean, color=color, linewidth=widths[index],
                label=group_label(fields, varying) + two_phase + seeds)
        if len(runs) >= 2:
            ax.fill_between(epochs, stacked.min(axis=0), stacked.max(axis=0), color=color, alpha=0.2)
        if mark_metrics:
            per_run = [curves.phase_metrics(run, key) for run in runs]
            bounds = [first for first, _ in per_run[0]][1:] + [length - 1]
            for phase, (first, _) in enumerate(per_run[0]):
                metrics = [found[phase][1] for found in per_run if len(found) > phase]
                labelled |= _mark_metrics(ax, metrics, first, bounds[phase], color, mean, key,
                                          dot_size=dot_sizes[index])
        for run in runs:
            for phase_start in run.phase_starts:
                phases.setdefault(phase_start - 1, run.strategy)
    for position, strategy in sorted(phases.items()):
        name = "fine-tuning starts" if strategy == "fine_tune" else "next phase starts"
        ax.axvline(position, color="0.3", linestyle=":", linewidth=1.5, label=name)
        ax.annotate(name, (position, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=8, color="0.3")
    classes = {len(run.config.get("classes") or ()) for run in results}
    if "accuracy" in key and len(classes) == 1 and min(classes) > 1:
        ax.axhline(1 / min(classes), color="0.5", linestyle=(0, (1, 3)), linewidth=1.2,
                   label=f"chance (1 in {min(classes)})")
    if labelled:
        ax.margins(y=0.15)  # room above and below the curves for their words
    _label_evaluations(ax, results)
    name_y_axis(ax, KEY_NAMES[key] + (" (log scale)" if ax.get_yscale() == "log" else ""))
    spread = "; band: lowest to highest seed" if max(counts) >= 2 else ""
    cut_text = "; lines end at their shortest run" if cut else ""
    ax.set_title(f"Learning curves: {KEY_NAMES[key]}\n({seeds_text(counts)}{spread}{cut_text})", fontsize=10)
    legend_below(ax)
    return ax


def legend_below(ax, **options):
    """The legend under the axes, where it covers no curve, band or point (`options` go to `legend`)."""
    handles = ax.get_legend_handles_labels()[0]
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(3, max(1, len(handles))),
              frameon=False, **options)


def name_y_axis(ax, text):
    """Names the y axis, but only on the leftmost of the panels side by side that share it (matplotlib's
    `sharey`): the others show the same scale without repeating the name."""
    spec = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None
    for other in ax.get_shared_y_axes().get_siblings(ax):
        other_spec = other.get_subplotspec() if other is not ax and hasattr(other, "get_subplotspec") else None
        if (spec is not None and other_spec is not None and other_spec.get_gridspec() is spec.get_gridspec()
                and other_spec.rowspan.start == spec.rowspan.start
                and other_spec.colspan.start < spec.colspan.start):
            ax.set_ylabel("")
            return
    ax.set_ylabel(text)


def _log_if_spread(ax, curves_drawn, ratio=10.0):
    """A log y axis, labelled at 1, 2 and 5 of each decade, when the highest drawn value is over `ratio`
    times the lowest (a loss that explodes for one arm would squash every other curve to the floor)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    values = np.concatenate([np.asarray(curve, float).ravel() for curve in curves_drawn])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0 or values.max() <= ratio * values.min():
        return
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _label_evaluations(ax, results):
    """Name the x-axis by what an evaluation index means: gradient steps when every run was evaluated
    every N steps (ticks then read in steps), else passes over the training images. Ticks fall on
    whole evaluations only."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))

    every = {run.config.get("eval_every") for run in results}
    if len(every) == 1 and None not in every:
        step = every.pop()
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value * step:g}"))
        ax.set_xlabel(f"gradient steps (evaluated every {step})")
    else:
        ax.set_xlabel("epoch (one pass over the training images)")


def _mean_metrics(metrics):
    """The mean over seeds of each metric (what the tables show), and whether all level off."""
    mean = {name: float(np.mean([getattr(m, name) for m in metrics])) for name in ("initial", "start", "slope",
                                                                                  "asymptote")}
    return mean, all(m.levelled for m in metrics)


def _unlevelled_words(metrics, key):
    """What to write where a curve does not level off: still rising (falling, for a loss), or no level."""
    if any(m.improving for m in metrics if not m.levelled):
        return "still falling" if "loss" in key else "still rising"
    return "no level"


def _mark_metrics(ax, metrics, first, last, color, curve, key="val_accuracy", dot_size=DOT_SIZES[0]):
    """Draws one phase's start marker (`dot_size` points across, white-edged so a smaller dot drawn on
    it stays visible), initial-slope tangent and asymptote (epochs `first..last` of the drawn `curve`);
    a curve that does not level off gets its words left of its end, above it, or under it for a curve
    that falls into its end, where the curve is not. Returns whether it wrote words."""
    mean, levelled = _mean_metrics(metrics)
    span = last - first
    if span >= 1:
        ax.plot([first + 1], [mean["start"]], marker="o", color=color, markersize=dot_size,
                markeredgecolor="white", markeredgewidth=0.8, linestyle="none")
    # The tangent of the fitted curve meets the asymptote after `tau` epochs; stop it there.
    length = max(span, 1) / 4.0
    if mean["slope"] != 0:
        length = min(length, abs(mean["asymptote"] - mean["initial"]) / abs(mean["slope"])) or length
    # Thin and dash-dotted: a mark, not a second curve.
    ax.plot([first, first + length], [mean["initial"], mean["initial"] + mean["slope"] * length],
            color=color, linewidth=1.0, linestyle="-.", alpha=0.8)
    if levelled:
        ax.hlines(mean["asymptote"], first, last, color=color, linestyle="--", linewidth=1, alpha=0.6)
        return False
    # Left of the curve's end, on a light background.
    below = curve[last] < curve[max(first, last - 2)]
    ax.annotate(_unlevelled_words(metrics, key), (last, curve[last]), xytext=(-4, -7 if below else 7),
                textcoords="offset points", fontsize=8, color=color, ha="right",
                va="top" if below else "bottom",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.6})
    return True


def plot_metric_guide(result, key="val_accuracy", ax=None):
    """One run's curve with its marks named: how to read start, initial slope and asymptote.

    Draws the curve, the fitted saturating curve `A - (A - y0) exp(-t / tau)` (dotted,
    when the fit is used), and labels the start dot, the tangent and the asymptote
    line with their values and the fit method. When the fit falls back, the
    asymptote is labelled "n/a (still rising)" (or "n/a (no level)" for a curve that only wanders)
    and no dashed line is drawn.

    Returns:
        The Axes drawn on.
    """
    ax = _axes(ax)
    values = np.asarray(result.history[key], float)
    metrics = curves.run_metrics(result, key)
    epochs = np.arange(len(values))
    ax.plot(epochs, values, color="C0", linewidth=2, marker=".", label=f"{KEY_NAMES[key]} (one run)")
    if metrics.method == "saturating_fit":
        smooth = np.linspace(0, epochs[-1], 200)
        # The fit's own y0 (slope = (A - y0) / tau), not the first measured value.
        y0 = metrics.asymptote - metrics.slope * metrics.tau
        fitted = metrics.asymptote - (metrics.asymptote - y0) * np.exp(-smooth / metrics.tau)
        ax.plot(smooth, fitted, color="0.4", linestyle=":", label="fitted saturating curve")
    _mark_metrics(ax, [metrics], 0, len(values) - 1, "C0", values, key)
    low, high = ax.get_ylim()
    # Below the start dot when there is room, else above it.
    start_offset = (25, -45) if metrics.start > low + 0.35 * (high - low) else (25, 25)
    notes = [((1, metrics.start), f"start = {metrics.start:.3f}\n(after the first interval)", start_offset),
             ((0, metrics.initial), f"initial slope = {metrics.slope:.3f} per epoch\n(tangent at epoch 0)",
              (12, 10))]
    if metrics.levelled:
        notes.append(((epochs[-1] * 0.6, metrics.asymptote),
                      f"asymptote = {metrics.asymptote:.3f}\n(the level the fit approaches)", (0, 14)))
    else:
        notes.append(((epochs[-1], values[-1]), f"asymptote: n/a ({_unlevelled_words([metrics], key)})",
                      (-130, -30)))
    for point, text, offset in notes:
        ax.annotate(text, point, xytext=offset, textcoords="offset points", fontsize=8,
                    arrowprops={"arrowstyle": "-", "color": "0.5"})
    ax.set_xlabel("epoch (one evaluation interval each)")
    ax.set_ylabel(KEY_NAMES[key])
    ax.set_title(f"Reading the marks (fit method: {metrics.method.replace('_', ' ')})")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_metric_bars(data, ax=None):
    """Plots start, initial slope and asymptote side by side for each run group.

    Bars show the mean over seeds and error bars the sample standard deviation.
    Start and asymptote are in the metric's units (validation accuracy); the
    slope is in accuracy per epoch, so it shares the axis.

    Args:
        data: Summary rows from `curves.summarize`, or `RunResult`s.
        ax: Axes to draw on; a new figure is created when None.

    Returns:
        The Axes drawn on.

    Raises:
        ValueError: If `data` is empty or of the wrong type.
    """
    rows = _as_rows(data)
    ax = _axes(ax)
    varying = _varying(rows)
    positions = np.arange(len(rows))
    width = 0.26
    names = (("start", "start (epoch 1)"), ("slope", "initial slope (per epoch)"), ("asymptote", "asymptote"))
    for offset, (name, label) in zip((-width, 0.0, width), names):
        ax.bar(positions + offset, [row[f"{name}_mean"] for row in rows], width,
               yerr=[row[f"{name}_std"] for row in rows], capsize=3, label=label)
    ax.set_xticks(positions, [group_label(row, varying) for row in rows], rotation=30, ha="right")
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    ax.set_xlabel("strategy")
    ax.set_ylabel("validation accuracy (slope: accuracy per epoch)")
    ax.set_title("Start, initial slope and asymptote (mean ± std over seeds)")
    ax.legend(fontsize=8)
    return ax


def plot_label_budget(data, ax=None):
    """Plots test accuracy against labels per class on a log axis, one line per strategy.

    Error bars are the standard deviation over seeds. Where the baseline
    (`"scratch"`, else `"small_cnn"`) catches up with a transfer strategy, the
    interpolated crossing (`curves.crossover`) is marked and annotated.

    Args:
        data: Summary rows from `curves.summarize`, or `RunResult`s.
        ax: Axes to draw on; a new figure is created when None.

    Returns:
        The Axes drawn on.

    Raises:
        ValueError: If `data` is empty or of the wrong type.
    """
    rows = _as_rows(data)
    ax = _axes(ax)
    lines = {}
    for row in rows:
        lines.setdefault((row["backbone"], row["weights"], row["strategy"]), []).append(row)
    varying = _varying([dict(zip(("backbone", "weights", "strategy"), line)) for line in lines],
                       ("backbone", "weights", "strategy"))
    baseline = curves.baseline_strategy(rows)
    colours = arm_colours(arm_of(line_rows[0]) for line_rows in lines.values())
    for index, ((backbone, weights, strategy), line_rows) in enumerate(lines.items()):
        line_rows = sorted(line_rows, key=lambda row: row["labels_per_class"])
        ax.errorbar([row["labels_per_class"] for row in line_rows],
                    [row["test_accuracy_mean"] for row in line_rows],
                    yerr=[row["test_accuracy_std"] for row in line_rows],
                    color=colours[index], marker="o", capsize=3,
                    label=group_label(line_rows[0], varying))
        # Random features are a control: no "catches up" mark for them.
        if baseline is None or strategy in curves.BASELINES or is_random_features(line_rows[0]):
            continue
        found = curves.crossover(rows, strategy, baseline, backbone=backbone, weights=weights)
        if found is not None:
            ax.plot([found.interpolated], [found.test_accuracy], marker="X", markersize=11,
                    color=colours[index], markeredgecolor="black", linestyle="none")
            ax.annotate(f"{STRATEGY_NAMES.get(baseline, baseline)} catches up\n"
                        f"≈{found.interpolated:.0f} labels/class",
                        (found.interpolated, found.test_accuracy), xytext=(8, -24),
                        textcoords="offset points", fontsize=8, arrowprops={"arrowstyle": "-"})
    ax.set_xscale("log")
    budgets = sorted({row["labels_per_class"] for row in rows})
    ax.set_xticks(budgets, [str(budget) for budget in budgets])
    ax.minorticks_off()
    ax.set_xlabel("labels per class (log scale)")
    ax.set_ylabel("test accuracy (one run per point)" if {row["n_seeds"] for row in rows} == {1}
                  else "test accuracy (mean; bars: ± std over seeds)")
    ax.set_title("Test accuracy vs labelled examples per class")
    legend_below(ax)
    return ax


def plot_by_stage(lines, reference, ax=None, title="Test accuracy by the number of stages copied", chance=None):
    """Plots one line per arm against k, the number of copied stages, with 95% intervals.

    Args:
        lines: `{label: [(k, mean, low, high), ...]}`.
        reference: `(label, mean, low, high)` of the k = 0 run, drawn as a band.
        ax: Axes to draw on; a new figure is created when None.
        title: The panel's title.
        chance: Optional chance accuracy, drawn as a dotted line.

    Returns:
        The Axes drawn on.

    Raises:
        ValueError: If `lines` is empty.
    """
    if not lines:
        raise ValueError("Expected at least one line of (k, mean, low, high) points, received none.")
    ax = _axes(ax)
    label, mean, low, high = reference
    ax.axhspan(low, high, color="grey", alpha=0.2)
    ax.axhline(mean, color="grey", linestyle="--", linewidth=1, label=label)
    if chance is not None:
        ax.axhline(chance, color="0.3", linestyle=":", linewidth=1, label="chance")
    for index, (name, points) in enumerate(lines.items()):
        ks, means, lows, highs = (np.array(column, float) for column in zip(*sorted(points)))
        # Side by side around each k, so that the error bars do not hide each other.
        ax.errorbar(ks + 0.04 * (index - (len(lines) - 1) / 2), means, yerr=[means - lows, highs - means],
                    marker="o", capsize=3, color=f"C{index % 10}", label=name)
    ax.set_xticks(sorted({k for points in lines.values() for k, *_ in points}))
    ax.set_xlabel("stages copied (k)")
    ax.set_ylabel("test accuracy (mean of seeds, 95% interval)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def plot_source_comparison(accuracies, chance=None, ax=None, colours=None,
                           title="Test accuracy by source (bars: mean over seeds; dots: one seed each)"):
    """Test accuracy of several sources on several targets: grouped bars with one dot per seed.

    Args:
        accuracies: `{target: {source: [test accuracy per seed]}}`, every target
            with the same sources in the same order.
        chance: Optional `{target: chance accuracy}`, drawn as a short dashed line over each group.
        ax: Axes to draw on; a new figure is created when None.
        colours: Optional `{source: colour}` (e.g. `ARM_COLOURS["random_features"]` for a random-weights
            control, as in the other figures); the other sources take, in order, the default cycle's
            colours not given there (`arm_colours`).
        title: The panel's title.

    Returns:
        The Axes drawn on.

    Raises:
        ValueError: no targets, or targets with different sources.
    """
    targets = list(accuracies)
    if not targets:
        raise ValueError("Received no targets. Expected {target: {source: [accuracies]}}.")
    sources = list(accuracies[targets[0]])
    if any(list(accuracies[t]) != sources for t in targets):
        raise ValueError(f"Received targets with different sources. Expected every target to have: {sources}.")
    ax = _axes(ax)
    width = 0.8 / len(sources)
    positions = np.arange(len(targets))
    colour = dict(zip(sources, arm_colours(sources, owned=colours or {})))
    for index, source in enumerate(sources):
        x = positions + (index - (len(sources) - 1) / 2) * width
        values = [np.asarray(accuracies[t][source], dtype=float) for t in targets]
        ax.bar(x, [v.mean() for v in values], width * 0.9, label=source, color=colour[source])
        for left, seeds in zip(x, values):
            ax.plot(np.full(len(seeds), left), seeds, "o", color="black", markersize=3, zorder=3)
    for position, target in zip(positions, targets):
        if chance and target in chance:
            ax.hlines(chance[target], position - 0.45, position + 0.45, colors="0.3", linestyles="--",
                      linewidth=1, label="chance" if position == 0 else None)
    ax.set_xticks(positions, targets)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax


def plot_budget_curves(table, arm_names, ax=None, title=None):
    """Test accuracy against labels per class (log axis), one line per arm with its 95% t-interval over
    seeds as a band; each arm's markers are smaller than the one before it, so equal values stay visible.

    Args:
        table: Rows with `arm`, `labels_per_class`, `test_accuracy`, `ci_low`, `ci_high`
            (e.g. one backbone's rows of `budget_study.analyse(...)["table"]`).
        arm_names: `{arm: legend name}`; its order is the legend's. Colours: `arm_colours`.
        ax: Axes to draw on; a new figure is created when None.
        title: The panel's title.

    Returns:
        The Axes drawn on.
    """
    if not table:
        raise ValueError("Expected rows of test accuracy by arm and budget, received none.")
    ax = _axes(ax)
    # Markers shrink in legend order, white-edged: two arms level at one budget show as a ring and a dot.
    sizes = _shrinking(BUDGET_DOT_SIZES, len(arm_names), alone=7.0)
    for colour, size, (arm, name) in zip(arm_colours(arm_names), sizes, arm_names.items()):
        marker = {"marker": "o", "markersize": size, "markeredgecolor": "white", "markeredgewidth": 0.8}
        rows = sorted((row for row in table if row["arm"] == arm), key=lambda row: row["labels_per_class"])
        if not rows:
            continue
        budgets = [row["labels_per_class"] for row in rows]
        means = np.array([row["test_accuracy"] for row in rows])
        # Accuracy lies in [0, 1]: a wide interval of few seeds does not stretch the axis past it.
        lows = np.clip([row["ci_low"] for row in rows], 0.0, 1.0)
        highs = np.clip([row["ci_high"] for row in rows], 0.0, 1.0)
        if len(rows) == 1:  # one budget: a band would be invisible, so an error bar
            ax.errorbar(budgets, means, yerr=[means - lows, highs - means], capsize=4, color=colour, label=name,
                        **marker)
            continue
        ax.plot(budgets, means, color=colour, label=name, **marker)
        ax.fill_between(budgets, lows, highs, color=colour, alpha=0.15, linewidth=0)
    budgets = sorted({row["labels_per_class"] for row in table})
    ax.set_xscale("log")
    ax.set_xticks(budgets, [str(budget) for budget in budgets])
    ax.minorticks_off()
    ax.set_xlabel("labels per class (log scale)")
    name_y_axis(ax, "test accuracy (mean over seeds; band: 95% interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title)
    return ax


def plot_lr_range(test, ax=None, marks=None, title="Learning-rate range test"):
    """The loss of each step of a range test against its learning rate (log axis), smoothed, with the
    suggested rate and any `marks` (`{label: rate}`, e.g. rates tried on validation) as vertical lines.

    Args:
        test: An `lr_finder.RangeTest`.
        ax: Axes to draw on; a new figure is created when None.
        marks: Optional rates to mark.
        title: The panel's title.

    Returns:
        The Axes drawn on.
    """
    ax = _axes(ax)
    ax.plot(test.rates, test.losses, color="0.75", linewidth=1, label="loss of each step")
    ax.plot(test.rates, test.smoothed, color="C0", linewidth=2, label="smoothed")
    ax.axvline(test.suggestion, color="C2", linestyle="--", label=f"suggestion {test.suggestion:.1e} (lowest / 10)")
    for index, (label, rate) in enumerate((marks or {}).items()):
        ax.axvline(rate, color=f"C{3 + index}", linestyle=":", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (one training step each)")
    ax.set_ylabel("training loss")
    ax.set_ylim(top=min(float(np.max(test.losses)), 3 * float(np.min(test.smoothed))) * 1.05)
    ax.set_title(title)
    legend_below(ax)
    return ax
