"""Markdown summary, plain-English reading, results.json and figures for a set of runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tlhelpers import curves, plots
from tlhelpers.results import RunResult, atomic_output, atomic_write_text

_SAME = 0.0005  # Differences that round to 0.000 are reported as "the same".


def _levels_off(row):
    """Whether every seed's curve of a summary row levels off (rows made before the count: yes)."""
    return row.get("asymptote_levelled", row["n_seeds"]) == row["n_seeds"]


def asymptote_cell(row):
    """The asymptote of a summary row as a table shows it: the mean when every seed's curve levels
    off, else "n/a (still rising)" when a seed's curve that does not level off is still improving
    at the end, and "n/a (no level)" when such curves only wander (`CurveMetrics.improving`)."""
    if _levels_off(row):
        return f"{row['asymptote_mean']:.3f}"
    return "n/a (still rising)" if row.get("improving", 0) else "n/a (no level)"


def summary_table(summary_rows):
    """Formats summary rows as a markdown table in a reader's names (3 decimals, test accuracy as
    mean ± std over seeds, the mean alone for one seed).

    The asymptote is shown only where every seed's curve levels off (`asymptote_cell`); the
    last column says how each seed's asymptote was found (`curves.fit_methods`).

    Args:
        summary_rows: Rows from `curves.summarize`.

    Returns:
        The markdown table as a string (only the header when there are no rows).
    """
    lines = ["| backbone | weights | strategy | labels/class | seeds | test accuracy "
             "| start | slope | asymptote | fit |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in summary_rows:
        spread = f" ± {row['test_accuracy_std']:.3f}" if row["n_seeds"] > 1 else ""
        lines.append(
            f"| {plots.backbone_name(row['backbone'])} "
            f"| {plots.WEIGHT_NAMES.get(row['weights'], row['weights'])} "
            f"| {plots.STRATEGY_NAMES.get(row['strategy'], row['strategy'])} | {row['labels_per_class']} "
            f"| {row['n_seeds']} | {row['test_accuracy_mean']:.3f}{spread} "
            f"| {row['start_mean']:.3f} | {row['slope_mean']:.3f} | {asymptote_cell(row)} "
            f"| {row.get('fit_methods', '')} |")
    return "\n".join(lines)


def _compare(difference, more, less):
    """Words for a difference: e.g. '0.12 higher', '0.03 lower' or 'the same'."""
    if abs(difference) < _SAME:
        return None
    return f"{abs(difference):.2f} {more if difference > 0 else less}"


def _strategy_name(row, naming):
    """Readable strategy name, with the backbone and/or weights when those vary (`naming`)."""
    extras = [str(row[field]) for field in ("backbone", "weights") if field in naming]
    name = plots.STRATEGY_NAMES.get(row["strategy"], row["strategy"])
    return f"{name} ({', '.join(extras)})" if extras else name


def _comparison_sentence(row, reference, baseline_name, name, opening):
    parts = []
    start = _compare(row["start_mean"] - reference["start_mean"], "higher", "lower")
    parts.append(f"starts {start} than {baseline_name} ({row['start_mean']:.2f} vs "
                 f"{reference['start_mean']:.2f})" if start
                 else f"starts at the same level as {baseline_name}")
    slope = _compare(row["slope_mean"] - reference["slope_mean"], "/epoch faster", "/epoch slower")
    parts.append(f"improves {slope.replace(' /', '/')} at first" if slope else "improves at the same rate")
    if _levels_off(row) and _levels_off(reference):
        level = _compare(row["asymptote_mean"] - reference["asymptote_mean"], "higher", "lower")
        parts.append(f"levels off {level}" if level else "levels off at the same level")
    else:
        parts.append("has no asymptote to compare (a curve does not level off within the run)")
    test_gap = row["test_accuracy_mean"] - reference["test_accuracy_mean"]
    test = _compare(test_gap, "higher", "lower")
    parts.append(f"ends with {test} test accuracy ({row['test_accuracy_mean']:.2f} vs "
                 f"{reference['test_accuracy_mean']:.2f})" if test else "ends with the same test accuracy")
    sentence = f"{opening}, {name} {', '.join(parts[:-1])}, and {parts[-1]}."
    if test_gap <= -_SAME:
        sentence += f" That is negative transfer: {baseline_name} does better here."
    return sentence


def reading(summary_rows):
    """Writes a one-paragraph plain-English comparison of each transfer strategy with the baseline.

    The baseline is `"scratch"`, or `"small_cnn"` when no scratch run exists.
    Each transfer strategy is compared at each labels_per_class (preferring a
    baseline of the same backbone) on start, initial slope, asymptote and test
    accuracy (differences below 0.0005 count as "the same"; lower test accuracy
    is called negative transfer), followed by where the baseline catches up
    (`curves.crossover`).

    Args:
        summary_rows: Rows from `curves.summarize`.

    Returns:
        The paragraph as a string.
    """
    rows = list(summary_rows)
    baseline = curves.baseline_strategy(rows)
    transfer_rows = [row for row in rows if row["strategy"] not in curves.BASELINES]
    if not rows:
        return "There are no runs to compare."
    if baseline is None:
        return ("No scratch or small_cnn baseline was run, so transfer cannot be compared "
                "with training from scratch.")
    baseline_name = {"small_cnn": "the small CNN"}.get(baseline, plots.STRATEGY_NAMES.get(baseline, baseline))
    if not transfer_rows:
        return f"Only baseline runs ({baseline_name}) are present, so there is no transfer to compare."
    naming = {"backbone"} if len({row["backbone"] for row in transfer_rows}) > 1 else set()
    weights_by_strategy = {}
    for row in transfer_rows:
        weights_by_strategy.setdefault(row["strategy"], set()).add(row["weights"])
    if any(len(weights) > 1 for weights in weights_by_strategy.values()):
        naming.add("weights")
    baseline_rows = [row for row in rows if row["strategy"] == baseline]
    sentences, previous_budget = [], None
    for row in sorted(transfer_rows, key=lambda row: row["labels_per_class"]):
        budget = row["labels_per_class"]
        opening = "At the same budget" if budget == previous_budget else f"At {budget} labels per class"
        previous_budget = budget
        candidates = [other for other in baseline_rows if other["labels_per_class"] == budget]
        candidates.sort(key=lambda other: other["backbone"] != row["backbone"])
        if candidates:
            sentences.append(_comparison_sentence(row, candidates[0], baseline_name,
                                                  _strategy_name(row, naming), opening))
        else:
            sentences.append(f"{opening} there is no {baseline_name} run to compare "
                             f"{_strategy_name(row, naming)} with.")
    sentence_start = baseline_name[0].upper() + baseline_name[1:]
    baseline_budgets = {row["labels_per_class"] for row in baseline_rows}
    lines = {}
    for row in transfer_rows:
        lines.setdefault((row["strategy"], row["backbone"], row["weights"]), []).append(row)
    for (strategy, backbone, weights), line_rows in lines.items():
        name = _strategy_name(line_rows[0], naming)
        found = curves.crossover(rows, strategy, baseline, backbone=backbone, weights=weights)
        if found is not None:
            sentences.append(f"{sentence_start} catches up with {name} "
                             f"at {found.labels_per_class} labels per class.")
        elif len(baseline_budgets & {row["labels_per_class"] for row in line_rows}) > 1:
            sentences.append(f"{sentence_start} does not catch up with {name} "
                             "within the label budgets tried.")
    return " ".join(sentences)


def _to_builtin(value):
    """Converts numpy scalars/arrays, tuples and paths into JSON-serialisable Python objects."""
    if isinstance(value, dict):
        return {str(key): _to_builtin(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_to_builtin(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def results_payload(results, config):
    """Builds the JSON-serialisable `{"config", "runs", "summary"}` dict for a set of runs.

    Each run is `RunResult.to_dict()` plus the validation-accuracy curve metrics
    (initial, start, slope, asymptote, final, auc, tau, method); the summary is
    `curves.summarize(results)`.

    Args:
        results: Iterable of `RunResult`.
        config: Experiment configuration dict (anything JSON-like).

    Returns:
        The payload dict.
    """
    results = list(results)
    runs = []
    for result in results:
        metrics = curves.run_metrics(result, "val_accuracy")
        runs.append({**result.to_dict(), **vars(metrics)})
    return _to_builtin({"config": dict(config), "runs": runs, "summary": curves.summarize(results)})


def load_results(path):
    """Reads a results.json written by `write_report`.

    Args:
        path: Path of the JSON file.

    Returns:
        A `(results, config)` tuple: a list of `RunResult` and the config dict.

    Raises:
        ValueError: If the file has no `"runs"` list.
    """
    payload = json.loads(Path(path).read_text())
    if not isinstance(payload, dict) or not isinstance(payload.get("runs"), list):
        raise ValueError(f"Expected a JSON object with a 'runs' list in {path}, received something else.")
    return [RunResult.from_dict(run) for run in payload["runs"]], payload.get("config", {})


def _save_figure(figure, path):
    # A reader never sees a half-written PNG.
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120, bbox_inches="tight")


def write_report(out_dir, results, config):
    """Writes results.json, three figures and summary.md for a set of runs.

    The learning-curve figure shows the metric marks only when there are at most
    six run groups, to keep it readable.

    Args:
        out_dir: Directory to write into (created if missing).
        results: Iterable of `RunResult`, at least one.
        config: Experiment configuration dict, stored in results.json.

    Returns:
        A dict with paths under keys `results`, `learning_curves`, `metrics`,
        `label_budget` and `summary`.

    Raises:
        ValueError: If `results` is empty.
    """
    results = list(results)
    if not results:
        raise ValueError("`results` must contain at least one RunResult, received none.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = results_payload(results, config)
    paths = {name: out_dir / file_name for name, file_name in (
        ("results", "results.json"), ("learning_curves", "learning_curves.png"),
        ("metrics", "metrics.png"), ("label_budget", "label_budget.png"), ("summary", "summary.md"))}
    atomic_write_text(paths["results"], json.dumps(payload, indent=2))
    n_groups = len(payload["summary"])
    drawings = (("learning_curves",
                 lambda ax: plots.plot_learning_curves(results, ax=ax, mark_metrics=n_groups <= 6)),
                ("metrics", lambda ax: plots.plot_metric_bars(payload["summary"], ax=ax)),
                ("label_budget", lambda ax: plots.plot_label_budget(payload["summary"], ax=ax)))
    for name, draw in drawings:
        figure = Figure(figsize=(9, 5.5))
        draw(figure.add_subplot())
        _save_figure(figure, paths[name])
    markdown = "\n\n".join([
        "# Transfer-learning results",
        f"{len(results)} runs in {n_groups} groups. Curve metrics are computed from validation accuracy.",
        summary_table(payload["summary"]),
        "## Reading",
        reading(payload["summary"]),
        "## Figures",
        "![Learning curves](learning_curves.png)\n\n![Start, slope and asymptote](metrics.png)\n\n"
        "![Test accuracy vs labels per class](label_budget.png)",
    ])
    atomic_write_text(paths["summary"], markdown + "\n")
    return paths
