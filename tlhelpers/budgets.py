"""Accuracy against label budget: labels saved, with a bootstrap interval over seeds, and Holm's correction.

Labels saved answers "how many labels per class does a control need to reach
what transfer reaches with few?": the budget at which the control's mean test
accuracy, read along its curve against the budget on a log scale, reaches the
transfer arm's mean at the smallest budget. Budgets are nested per seed (a
seed's 10 images per class are among its 25, ...), so seeds are resampled as
units: the interval comes from recomputing the crossing on resampled seeds.
A crossing beyond the largest budget run is censored: "more than 250".
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class LabelsSaved:
    """Where a control's accuracy-against-budget curve reaches a transfer arm's accuracy.

    Attributes:
        target: The transfer arm's mean test accuracy at `budget`.
        budget: The transfer arm's budget (labels per class), the smallest run.
        crossing: Labels per class at which the control's mean reaches `target`
            (log-interpolated between the two budgets around it); None when it
            never does within `largest`.
        low, high: The 95% bootstrap interval of `crossing` over seeds; `high`
            None when more than 2.5% of the resamples never cross.
        largest: The largest budget the control was run at.
        never: The fraction of resamples in which the control never reaches the target.
    """

    target: float
    budget: int
    crossing: float | None
    low: float | None
    high: float | None
    largest: int
    never: float

    def describe(self):
        """E.g. "50 (30 to 90)", "more than 250 (at least 120)" or "10 or fewer"."""
        if self.crossing is not None and self.crossing <= self.budget:
            return f"{self.budget} or fewer"
        low = "more than {}".format(self.largest) if self.low is None else f"{self.low:.0f}"
        if self.crossing is None:
            return f"more than {self.largest}" + (f" (at least {low})" if self.low is not None else "")
        high = f"more than {self.largest}" if self.high is None else f"{self.high:.0f}"
        return f"{self.crossing:.0f} ({low} to {high})"


def crossing(budgets, means, target):
    """The budget at which `means` (one per budget, ascending budgets) first reaches `target`,
    interpolated linearly in log budget; the first budget if it already does; None if it never does."""
    budgets, means = np.asarray(budgets, float), np.asarray(means, float)
    reached = np.flatnonzero(means >= target)
    if not reached.size:
        return None
    first = reached[0]
    if first == 0:
        return float(budgets[0])
    (b0, b1), (m0, m1) = budgets[first - 1:first + 1], means[first - 1:first + 1]
    fraction = (target - m0) / (m1 - m0)
    return float(math.exp(math.log(b0) + fraction * (math.log(b1) - math.log(b0))))


def labels_saved(transfer, control, resamples=2000, seed=0):
    """Labels saved by a transfer arm against one control, with a bootstrap interval over seeds.

    Args:
        transfer: `{budget: [test accuracy per seed]}`; its smallest budget is the reference.
        control: `{budget: [test accuracy per seed]}`, the same seeds in the same order.
        resamples: Bootstrap resamples of the seeds.
        seed: Seed of the resampling.

    Returns:
        A `LabelsSaved`.

    Raises:
        ValueError: when the two arms were not run with the same number of seeds.
    """
    budget = min(transfer)
    reference = np.asarray(transfer[budget], float)
    budgets = sorted(control)
    table = np.asarray([control[b] for b in budgets], float)
    if table.shape[1] != reference.size or reference.size < 2:
        raise ValueError(f"Received {reference.size} transfer runs at {budget} labels per class and "
                         f"{table.shape[1]} control runs per budget. Expected the same seeds, at least 2.")
    point = crossing(budgets, table.mean(axis=1), reference.mean())
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, reference.size, size=(resamples, reference.size))
    found = [crossing(budgets, table[:, index].mean(axis=1), reference[index].mean()) for index in draws]
    values = np.sort([np.inf if value is None else value for value in found])
    # Order statistics, not interpolation: a resample that never crosses counts as infinitely many labels.
    low, high = values[int(0.025 * (resamples - 1))], values[int(math.ceil(0.975 * (resamples - 1)))]
    return LabelsSaved(target=float(reference.mean()), budget=int(budget), crossing=point,
                       low=None if np.isinf(low) else float(low), high=None if np.isinf(high) else float(high),
                       largest=int(budgets[-1]), never=float(np.mean(np.isinf(values))))


def test_sampling_halfwidth(accuracy, images, level=0.95):
    """The half-width of the normal-approximation binomial interval of an accuracy measured on `images`
    test images: the sampling error of the test set itself, which an interval over seeds on one fixed
    test set leaves out."""
    if images < 1 or not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"Expected an accuracy in [0, 1] on at least one image, received {accuracy!r} on "
                         f"{images!r} images.")
    return float(stats.norm.ppf(0.5 + level / 2) * math.sqrt(accuracy * (1.0 - accuracy) / images))


def paired_p_value(a, b):
    """Two-sided p-value of the paired t-test of `a - b` over seeds (1.0 when every difference is 0)."""
    differences = np.asarray(a, float) - np.asarray(b, float)
    if np.allclose(differences, differences[0]) and differences[0] == 0:
        return 1.0
    if np.allclose(differences, differences[0]):
        return 0.0
    return float(stats.ttest_1samp(differences, 0.0).pvalue)


def holm(p_values):
    """Holm's step-down adjusted p-values (same order as given): a family of verdicts whose
    adjusted p-value is below 0.05 has at most a 5% chance of holding any false "higher" or "lower"."""
    p = np.asarray(p_values, float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    result = np.empty_like(p)
    result[order] = np.minimum(adjusted, 1.0)
    return result.tolist()


def protocol_metrics(result):
    """Curve metrics of a run trained under `protocol.Protocol`, read off its validation curve.

    - `start`: validation accuracy after the first evaluation interval (e.g. 50 steps). Torrey and
      Shavlik's "start" is the accuracy before any target training; a new head makes that chance
      for every arm here, so the course measures it after a few steps instead.
    - `steps_to_90`: gradient steps until validation accuracy first reaches 90% of the run's best.
    - `best_validation`: the best validation accuracy (where its weights were restored).
    - `best_step`, `stopped_step`, `stopped_by`: from the run's record.
    """
    curve = result.history["val_accuracy"]
    every = result.config["protocol"]["eval_every"]
    best = max(curve)
    first = next(index for index, value in enumerate(curve) if value >= 0.9 * best)
    return {"start": curve[1] if len(curve) > 1 else curve[0], "steps_to_90": first * every,
            "best_validation": best, "best_step": result.config["best_step"],
            "stopped_step": result.config["stopped_step"], "stopped_by": result.config["stopped_by"]}


def comparison_family(pairs, alpha=0.05):
    """Paired comparisons decided together: Holm's correction over the whole family.

    Args:
        pairs: `[(fields, a, b), ...]`: a dict of what the row is (arm, control, budget, metric, ...)
            and the two seed-ordered lists of values.
        alpha: The family-wise error rate.

    Returns:
        One dict per pair: its fields, both means, the difference with its (uncorrected) 95%
        t-interval, the paired t-test's p-value, Holm's adjusted p-value and the verdict
        (`"higher"`, `"lower"` or `"no clear difference"`, decided on the adjusted p-value).
    """
    from tlhelpers.curves import aggregate

    rows = []
    for fields, a, b in pairs:
        if len(a) != len(b) or len(a) < 2:
            raise ValueError(f"Received {len(a)} and {len(b)} values for {fields}. Expected the same seeds "
                             "for both sides, at least 2.")
        summary = aggregate(np.asarray(a, float) - np.asarray(b, float))
        rows.append({**fields, "arm_mean": float(np.mean(a)), "control_mean": float(np.mean(b)),
                     "difference": summary["mean"], "ci_low": summary["ci_low"], "ci_high": summary["ci_high"],
                     "p": paired_p_value(a, b)})
    for row, adjusted in zip(rows, holm([row["p"] for row in rows])):
        row["p_holm"] = adjusted
        row["verdict"] = ("no clear difference" if adjusted >= alpha
                          else "higher" if row["difference"] > 0 else "lower")
    return rows
