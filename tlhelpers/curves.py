"""Learning-curve metrics: where a curve starts, how fast it rises, where it levels off."""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings

import numpy as np
from scipy import optimize, stats

METRIC_NAMES = ("initial", "start", "slope", "asymptote", "final", "auc")
SUMMARY_NAMES = ("test_accuracy",) + METRIC_NAMES
BASELINES = ("scratch", "small_cnn")
_FLAT_EPSILON = 1e-6
_FALLBACK_EPOCHS = 3


@dataclasses.dataclass
class CurveMetrics:
    """Summary numbers of one learning curve; every field is a finite float except `method`."""

    initial: float
    start: float
    slope: float
    asymptote: float
    final: float
    auc: float
    tau: float
    method: str
    improving: bool = False

    @property
    def levelled(self):
        """Whether the curve levels off within the run: the saturating fit (or a flat curve) gives
        the asymptote. Otherwise (`"linear_fallback"`, `"short"`) the asymptote is only the final
        level, and tables show "n/a" instead of it: "still rising" when `improving`, else "no level"."""
        return self.method in ("saturating_fit", "flat")


# Curves are sampled once per epoch: time constants below half an epoch cannot be
# told apart, and allowing them would let a one-epoch jump produce an arbitrarily
# steep slope. With tau >= 0.5 the slope is at most twice the total gain.
_MIN_TAU = 0.5


def _saturating(epochs, asymptote, y0, tau):
    return asymptote - (asymptote - y0) * np.exp(-epochs / tau)


def _fit_saturating(values, lower, upper):
    """Least-squares fit of the saturating curve from several starting points; None on failure."""
    epochs = np.arange(len(values), dtype=float)
    last_epoch = epochs[-1]
    # The fit needs finite values to start from even when the bound is infinite.
    span = max(np.ptp(values), 1e-3)
    best = None
    for asymptote_guess in (values[-1], values[-1] + 0.5 * span * np.sign(values[-1] - values[0])):
        for tau_guess in (0.6, last_epoch / 3.0, last_epoch):
            guess = [
                float(np.clip(asymptote_guess, lower + 1e-9, upper - 1e-9)),
                float(np.clip(values[0], lower + 1e-9, upper - 1e-9)),
                float(np.clip(tau_guess, _MIN_TAU + 0.01, 99.0 * last_epoch)),
            ]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    params, _ = optimize.curve_fit(
                        _saturating, epochs, values, p0=guess, maxfev=5000,
                        bounds=([lower, lower, _MIN_TAU], [upper, upper, 100.0 * last_epoch]),
                    )
            except (RuntimeError, ValueError):
                continue
            if not np.all(np.isfinite(params)):
                continue
            error = float(np.sum((_saturating(epochs, *params) - values) ** 2))
            if best is None or error < best[0]:
                best = (error, params)
    return best


def curve_metrics(values, *, higher_is_better=True, bounds=(0.0, 1.0), final_window=3):
    """Computes start, initial slope, asymptote and other summaries of one learning curve.

    `values[0]` is the metric at epoch 0 (before any training) and `values[t]`
    the metric after epoch `t`, so the curve covers epochs `0..T`, `T = len(values) - 1`.

    - `initial = values[0]`.
    - `start = values[1]`, the value after the first epoch (`initial` if there is one value).
    - `final` = mean of the last `final_window` values, leaving out epoch 0 when
      there are later epochs.
    - `auc` = trapezoid area under the curve over epochs `0..T` divided by `T`
      (the mean height of the curve, in the metric's own units; `initial` when `T == 0`).
    - `slope` and `asymptote` come from a least-squares fit (from several starting
      points) of `y(t) = A - (A - y0) * exp(-t / tau)` over `t = 0..T`, with `A` and
      `y0` inside `bounds` and `tau` in `[0.5, 100 * T]` epochs: `slope = (A - y0) / tau`
      is the initial rate of change per epoch and `asymptote = A` (`method="saturating_fit"`).
    - `improving`: a straight line fitted to the whole curve rises (falls, with
      `higher_is_better=False`) and its slope differs from zero at the 5% level: for a curve
      without a fitted level, "still rising" rather than noise around one level.
    - Fallbacks: fewer than 3 values -> `slope` = last difference, `asymptote` = last
      value (`"short"`); curve range below 1e-6 -> `slope = 0`, `asymptote` = mean
      (`"flat"`); failed fit, a fit with a larger squared error than a straight line,
      or a fitted `A` more than half the curve range beyond the observed values ->
      `asymptote = final` and `slope` = mean first difference over the first 3
      epochs (`"linear_fallback"`). `tau` is 0.0 whenever the fit is not used.

    The asymptote is always clipped into `bounds`. A falling curve gives a negative slope.

    Args:
        values: Sequence of finite metric values, at least one.
        higher_is_better: True for accuracy-like metrics, False for losses. The fit works in
            both directions; only `improving` depends on it.
        bounds: `(lower, upper)` range of the metric; `(0, 1)` for accuracy and
            `(0, inf)` for a loss. `upper` may be `math.inf`.
        final_window: Number of last epochs averaged into `final`, at least 1.

    Returns:
        A `CurveMetrics`.

    Raises:
        ValueError: If `values` is empty or not finite, `bounds` is not an increasing
            pair with a finite lower end, or `final_window < 1`.
    """
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("`values` must contain at least one value, received an empty sequence.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`values` must all be finite, received {values.tolist()}.")
    lower, upper = (float(bound) for bound in bounds)
    if not (math.isfinite(lower) and lower < upper):
        raise ValueError(f"`bounds` must be (lower, upper) with finite lower < upper, received {bounds}.")
    if int(final_window) < 1:
        raise ValueError(f"`final_window` must be an integer >= 1, received {final_window}.")
    last_epoch = values.size - 1
    initial = float(values[0])
    start = float(values[1]) if values.size > 1 else initial
    trained = values[1:] if values.size > 1 else values
    final = float(np.mean(trained[-int(final_window):]))
    auc = float(np.trapezoid(values) / last_epoch) if last_epoch > 0 else initial
    span = float(np.ptp(values))
    tau = 0.0

    if values.size < 3:
        method = "short"
        slope = float(values[-1] - values[-2]) if values.size == 2 else 0.0
        asymptote = float(values[-1])
    elif span < _FLAT_EPSILON * max(1.0, abs(float(np.mean(values)))):
        method, slope, asymptote = "flat", 0.0, float(np.mean(values))
    else:
        fit = _fit_saturating(values, lower, upper)
        epochs = np.arange(values.size, dtype=float)
        line_error = float(np.sum((np.polyval(np.polyfit(epochs, values, 1), epochs) - values) ** 2))
        usable = (
            fit is not None
            # A 3-parameter curve that cannot beat a 2-parameter line is the wrong model.
            and fit[0] <= line_error * (1.0 + 1e-6) + 1e-12
            and values.min() - 0.5 * span <= fit[1][0] <= values.max() + 0.5 * span
        )
        if usable:
            asymptote, y0, tau = (float(param) for param in fit[1])
            method, slope = "saturating_fit", (asymptote - y0) / tau
        else:
            method, asymptote = "linear_fallback", final
            slope = float(np.mean(np.diff(values[: _FALLBACK_EPOCHS + 1])))
    asymptote = float(np.clip(asymptote, lower, upper))
    improving = False
    if values.size >= 3 and span > 0:
        trend = stats.linregress(np.arange(values.size, dtype=float), values)
        improving = (trend.slope > 0) == bool(higher_is_better) and trend.pvalue < 0.05
    return CurveMetrics(initial, start, float(slope), asymptote, final, auc, float(tau), method, bool(improving))


def run_metrics(result, key="val_accuracy"):
    """Computes `curve_metrics` for one history curve of a `RunResult`.

    Accuracy keys use `bounds=(0, 1)`; loss keys use `bounds=(0, inf)` and
    `higher_is_better=False`.

    Args:
        result: A `RunResult`.
        key: One of `"accuracy"`, `"val_accuracy"`, `"loss"`, `"val_loss"`.

    Returns:
        A `CurveMetrics`.

    Raises:
        ValueError: If `key` is not one of the allowed names or missing from the history.
    """
    if key in ("accuracy", "val_accuracy"):
        options = {"higher_is_better": True, "bounds": (0.0, 1.0)}
    elif key in ("loss", "val_loss"):
        options = {"higher_is_better": False, "bounds": (0.0, math.inf)}
    else:
        raise ValueError(f"`key` must be accuracy, val_accuracy, loss or val_loss, received {key!r}.")
    if key not in result.history:
        raise ValueError(f"History has no {key!r} curve; it has {sorted(result.history)}.")
    return curve_metrics(result.history[key], **options)


def phase_metrics(result, key="val_accuracy"):
    """`curve_metrics` of each training phase of a `RunResult` on its own: `[(first_epoch, metrics)]`.

    A run without `phase_starts` has one phase. A phase that starts at epoch `p` is fitted
    from epoch `p - 1` (where the previous phase ended, its own "epoch 0") to its last epoch,
    so one saturating curve is never fitted across the change of what trains.
    """
    values = list(result.history[key])
    edges = [0] + [int(start) - 1 for start in result.phase_starts] + [len(values) - 1]
    found = []
    for first, last in itertools.pairwise(edges):
        segment = dataclasses.replace(result, history={**result.history, key: values[first:last + 1]})
        found.append((first, run_metrics(segment, key)))
    return found


def fit_methods(metrics):
    """How the asymptotes of several curves were found, e.g. `"saturating fit x4, linear fallback x1"`."""
    counts = {}
    for metric in metrics:
        name = metric.method.replace("_", " ")
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{name} x{count}" for name, count in sorted(counts.items()))


def aggregate(values, confidence=0.95):
    """Computes mean, sample standard deviation and a t-distribution confidence interval.

    Args:
        values: Finite numbers, at least one (e.g. one per seed).
        confidence: Confidence level of the interval, strictly between 0 and 1.

    Returns:
        A dict with `mean`, `std` (ddof=1, 0 for one value), `ci_low`, `ci_high`
        (both equal to the mean for one value) and `n`.

    Raises:
        ValueError: If `values` is empty or not finite, or `confidence` is outside (0, 1).
    """
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"`values` must be one or more finite numbers, received {values.tolist()}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must be strictly between 0 and 1, received {confidence}.")
    mean = float(np.mean(values))
    if values.size == 1:
        return {"mean": mean, "std": 0.0, "ci_low": mean, "ci_high": mean, "n": 1}
    std = float(np.std(values, ddof=1))
    half_width = float(stats.t.ppf(0.5 + confidence / 2.0, values.size - 1)) * std / math.sqrt(values.size)
    return {"mean": mean, "std": std, "ci_low": mean - half_width, "ci_high": mean + half_width,
            "n": int(values.size)}


def interval_text(value, low, high, digits=3, signed=False):
    """A value with its interval as every table and reading prints it: `0.641 (0.615 to 0.666)`, or
    with `signed` (differences) `+0.079 (+0.039 to +0.119)`."""
    form = f"{'+' if signed else ''}.{digits}f"
    return f"{value:{form}} ({low:{form}} to {high:{form}})"


def summarize(results, key="val_accuracy"):
    """Groups runs by (backbone, weights, strategy, labels_per_class) and aggregates over seeds.

    Args:
        results: Iterable of `RunResult`.
        key: History curve the curve metrics are computed from.

    Returns:
        One dict per group, in first-seen order, with the group fields, `n_seeds`,
        `wall_time_s_mean`, `<name>_mean/_std/_ci_low/_ci_high` for `name` in
        test_accuracy, initial, start, slope, asymptote, final, auc, `asymptote_levelled`
        (how many seeds' curves level off, see `CurveMetrics.levelled`), `improving` (how many of
        the others are still improving at the end) and `fit_methods`.
    """
    groups = {}
    for result in results:
        group_key = (result.backbone, result.weights, result.strategy, int(result.labels_per_class))
        groups.setdefault(group_key, []).append(result)
    rows = []
    for (backbone, weights, strategy, labels_per_class), runs in groups.items():
        row = {"backbone": backbone, "weights": weights, "strategy": strategy,
               "labels_per_class": labels_per_class, "n_seeds": len(runs)}
        metrics = [run_metrics(run, key) for run in runs]
        columns = {"test_accuracy": [run.test_accuracy for run in runs]}
        columns.update({name: [getattr(metric, name) for metric in metrics] for name in METRIC_NAMES})
        for name in SUMMARY_NAMES:
            stats_of_name = aggregate(columns[name])
            for statistic in ("mean", "std", "ci_low", "ci_high"):
                row[f"{name}_{statistic}"] = stats_of_name[statistic]
        row["asymptote_levelled"] = sum(metric.levelled for metric in metrics)
        row["improving"] = sum(metric.improving for metric in metrics if not metric.levelled)
        row["fit_methods"] = fit_methods(metrics)
        row["wall_time_s_mean"] = float(np.mean([run.wall_time_s for run in runs]))
        rows.append(row)
    return rows


def baseline_strategy(summary_rows):
    """Returns `"scratch"` if any row uses it, else `"small_cnn"` if present, else None."""
    strategies = {row["strategy"] for row in summary_rows}
    return next((name for name in BASELINES if name in strategies), None)


@dataclasses.dataclass
class Crossover:
    """Where a baseline's test accuracy catches up with a transfer strategy's.

    Attributes:
        labels_per_class: Smallest compared budget at which the baseline's mean
            test accuracy is >= the transfer strategy's.
        interpolated: Budget where the accuracy gap crosses zero, interpolated
            linearly on a log axis between the budget before and `labels_per_class`
            (equal to `labels_per_class` when the baseline is already level at the
            smallest compared budget).
        test_accuracy: Transfer strategy's test accuracy interpolated at `interpolated`.
        transfer_strategy: The transfer strategy compared.
        baseline: The baseline strategy compared.
        backbone: The backbone filter used, or None.
    """

    labels_per_class: int
    interpolated: float
    test_accuracy: float
    transfer_strategy: str
    baseline: str
    backbone: str | None = None


def _by_budget(rows):
    """Maps labels_per_class to the first row with that budget."""
    budgets = {}
    for row in rows:
        budgets.setdefault(int(row["labels_per_class"]), row)
    return budgets


def crossover(summary_rows, transfer_strategy, baseline="scratch", backbone=None, weights=None):
    """Finds the smallest label budget at which a baseline matches a transfer strategy.

    Baseline rows with the same backbone as the transfer rows are preferred; if
    there are none, all baseline rows are used. When several rows share a budget,
    the first one is used.

    Args:
        summary_rows: Rows from `summarize`.
        transfer_strategy: Strategy name, e.g. `"fine_tune"`.
        baseline: Strategy that should catch up, `"scratch"` by default.
        backbone: Only use transfer rows of this backbone. Required when the
            transfer rows span several backbones.
        weights: Only use transfer rows with this weights source, or None for any.

    Returns:
        A `Crossover`, or None when the baseline never reaches the transfer
        strategy's mean test accuracy at the budgets both were run with.

    Raises:
        ValueError: If `backbone` is None but the transfer rows use several backbones.
    """
    transfer_rows = [row for row in summary_rows if row["strategy"] == transfer_strategy
                     and backbone in (None, row["backbone"]) and weights in (None, row["weights"])]
    backbones = sorted({row["backbone"] for row in transfer_rows})
    if len(backbones) > 1:
        raise ValueError(f"`backbone` must be one of {backbones} when {transfer_strategy!r} "
                         f"was run with several backbones, received None.")
    baseline_rows = [row for row in summary_rows if row["strategy"] == baseline]
    same_backbone = [row for row in baseline_rows if row["backbone"] in backbones]
    transfer, reference = _by_budget(transfer_rows), _by_budget(same_backbone or baseline_rows)
    budgets = sorted(set(transfer) & set(reference))
    gaps = [transfer[b]["test_accuracy_mean"] - reference[b]["test_accuracy_mean"] for b in budgets]
    for index, (budget, gap) in enumerate(zip(budgets, gaps)):
        if gap > 0:
            continue
        interpolated, accuracy = float(budget), float(transfer[budget]["test_accuracy_mean"])
        if index > 0:
            # Linear in log(budget): the crossing of two straight lines on the plot's axis.
            previous_budget, previous_gap = budgets[index - 1], gaps[index - 1]
            fraction = previous_gap / (previous_gap - gap)
            log_budget = math.log(previous_budget) + fraction * (math.log(budget) - math.log(previous_budget))
            interpolated = math.exp(log_budget)
            previous_accuracy = transfer[previous_budget]["test_accuracy_mean"]
            accuracy = float(previous_accuracy + fraction * (accuracy - previous_accuracy))
        return Crossover(budget, interpolated, accuracy, transfer_strategy, baseline, backbone)
    return None
