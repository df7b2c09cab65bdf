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
GROUP_FIELDS = ("backbone", "weights", "strategy", "labels_per_class")


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
    """Readable legend label: the strategy, plus the group fields that differ between groups."""
    label = STRATEGY_NAMES.get(group["strategy"], group["strategy"])
    extras = [str(group[field]) for field in ("backbone", "weights") if field in varying]
    if "labels_per_class" in varying:
        extras.append(f"{group['labels_per_class']} labels/class")
    return f"{label} ({', '.join(extras)})" if extras else label


def _varying(groups, fields=GROUP_FIELDS):
    """Group fields worth naming in labels because they differ between groups."""
    varying = {field for field in fields
               if field != "weights" and len({group[field] for group in groups}) > 1}
    # Scratch always has other weights than transfer; name weights only when one strategy uses several.
    by_strategy = {}
    for group in groups:
        by_strategy.setdefault(group["strategy"], set()).add(group.get("weights"))
    if "weights" in fields and any(len(weights) > 1 for weights in by_strategy.values()):
        varying.add("weights")
    return varying


def plot_learning_curves(results, key="val_accuracy", ax=None, mark_metrics=True):
    """Plots the mean learning curve of each run group, with its spread and curve metrics.

    Runs are grouped by (backbone, weights, strategy, labels_per_class). Each
    group gets one colour: the mean over seeds (over the epochs all its runs
    reached), and with two or more seeds a band from the minimum to the maximum
    seed. With `mark_metrics`, the metrics of the mean curve are drawn: a marker
    at the start (epoch 1), a short tangent from epoch 0 with the fitted initial
    slope (cut where it reaches the asymptote level), and a dashed line at the
    asymptote. A dotted vertical line marks where a later phase begins
    (between epoch `p - 1` and epoch `p` for `phase_starts = [p]`).

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
    bounds = (0.0, 1.0) if "accuracy" in key else (0.0, np.inf)
    phases = {}
    for index, (group, runs) in enumerate(groups.items()):
        color = f"C{index % 10}"
        length = min(len(run.history[key]) for run in runs)
        stacked = np.array([run.history[key][:length] for run in runs], dtype=float)
        epochs = np.arange(length)
        mean = stacked.mean(axis=0)
        ax.plot(epochs, mean, color=color, linewidth=2,
                label=f"{group_label(dict(zip(GROUP_FIELDS, group)), varying)} (n={len(runs)})")
        if len(runs) >= 2:
            ax.fill_between(epochs, stacked.min(axis=0), stacked.max(axis=0), color=color, alpha=0.2)
        if mark_metrics:
            metrics = curves.curve_metrics(mean, higher_is_better="accuracy" in key, bounds=bounds)
            _mark_metrics(ax, metrics, length - 1, color)
        for run in runs:
            for phase_start in run.phase_starts:
                phases.setdefault(phase_start - 1, run.strategy)
    for position, strategy in sorted(phases.items()):
        name = "fine-tuning starts" if strategy == "fine_tune" else "next phase starts"
        ax.axvline(position, color="0.3", linestyle=":", linewidth=1.5, label=name)
        ax.annotate(name, (position, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=8, color="0.3")
    ax.set_xlabel("epoch")
    ax.set_ylabel(KEY_NAMES[key])
    ax.set_title(f"Learning curves ({KEY_NAMES[key]})")
    ax.legend(fontsize=8)
    return ax


def _mark_metrics(ax, metrics, last_epoch, color):
    """Draws the start marker, the initial-slope tangent and the asymptote line."""
    if last_epoch >= 1:
        ax.plot([1], [metrics.start], marker="o", color=color, markersize=7, linestyle="none")
    # The tangent of the fitted curve meets the asymptote after `tau` epochs; stop it there.
    length = max(last_epoch, 1) / 4.0
    if metrics.slope != 0:
        length = min(length, abs(metrics.asymptote - metrics.initial) / abs(metrics.slope)) or length
    ax.plot([0, length], [metrics.initial, metrics.initial + metrics.slope * length],
            color=color, linewidth=1.5, linestyle="-", alpha=0.8)
    ax.axhline(metrics.asymptote, color=color, linestyle="--", linewidth=1, alpha=0.6)


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
    for index, ((backbone, weights, strategy), line_rows) in enumerate(lines.items()):
        line_rows = sorted(line_rows, key=lambda row: row["labels_per_class"])
        ax.errorbar([row["labels_per_class"] for row in line_rows],
                    [row["test_accuracy_mean"] for row in line_rows],
                    yerr=[row["test_accuracy_std"] for row in line_rows],
                    color=f"C{index % 10}", marker="o", capsize=3,
                    label=group_label(line_rows[0], varying))
        if baseline is None or strategy in curves.BASELINES:
            continue
        found = curves.crossover(rows, strategy, baseline, backbone=backbone, weights=weights)
        if found is not None:
            ax.plot([found.interpolated], [found.test_accuracy], marker="X", markersize=11,
                    color=f"C{index % 10}", markeredgecolor="black", linestyle="none")
            ax.annotate(f"{STRATEGY_NAMES.get(baseline, baseline)} catches up\n"
                        f"≈{found.interpolated:.0f} labels/class",
                        (found.interpolated, found.test_accuracy), xytext=(8, -24),
                        textcoords="offset points", fontsize=8, arrowprops={"arrowstyle": "-"})
    ax.set_xscale("log")
    budgets = sorted({row["labels_per_class"] for row in rows})
    ax.set_xticks(budgets, [str(budget) for budget in budgets])
    ax.minorticks_off()
    ax.set_xlabel("labels per class (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy vs labelled examples per class")
    ax.legend(fontsize=8)
    return ax
