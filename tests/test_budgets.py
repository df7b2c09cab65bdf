"""Labels saved along accuracy-against-budget curves, its bootstrap interval, Holm's correction."""

import math

import numpy as np
import pytest
from scipy import stats

from tlhelpers import budgets


def test_crossing_interpolates_in_log_budget():
    assert budgets.crossing([10, 100], [0.4, 0.6], 0.5) == pytest.approx(math.sqrt(10 * 100))
    assert budgets.crossing([10, 25, 50], [0.3, 0.4, 0.7], 0.4) == pytest.approx(25)
    assert budgets.crossing([10, 25], [0.6, 0.7], 0.5) == 10
    assert budgets.crossing([10, 25], [0.3, 0.4], 0.5) is None


def test_labels_saved_with_a_bootstrap_interval_and_censoring():
    transfer = {10: [0.50, 0.52, 0.48, 0.51, 0.49]}
    control = {10: [0.30, 0.31, 0.29, 0.30, 0.32], 100: [0.70, 0.69, 0.71, 0.70, 0.68]}
    found = budgets.labels_saved(transfer, control)
    # 0.3 -> 0.696 between 10 and 100: 0.5 is reached 50.6% of the way in log budget.
    expected = math.exp(math.log(10) + (0.5 - 0.304) / (0.696 - 0.304) * math.log(10))
    assert found.crossing == pytest.approx(expected)
    assert found.low < found.crossing < found.high and found.never == 0
    assert found.describe() == f"{found.crossing:.0f} ({found.low:.0f} to {found.high:.0f})"
    assert budgets.labels_saved(transfer, control) == found  # seeded
    never = budgets.labels_saved(transfer, {10: [0.3] * 5, 250: [0.45, 0.46, 0.44, 0.45, 0.45]})
    assert never.crossing is None and never.never == 1.0 and never.describe() == "more than 250"
    close = budgets.labels_saved(transfer, {10: [0.3] * 5, 250: [0.45, 0.46, 0.44, 0.45, 0.62]})
    assert close.crossing is None and 0 < close.never < 1 and close.high is None
    assert close.describe().startswith("more than 250 (at least ")
    easy = budgets.labels_saved(transfer, {10: [0.6] * 5, 100: [0.7] * 5})
    assert easy.describe() == "10 or fewer"
    with pytest.raises(ValueError, match="same seeds"):
        budgets.labels_saved(transfer, {10: [0.3] * 4, 100: [0.7] * 4})


def test_holm_adjusts_step_down_and_keeps_order():
    adjusted = budgets.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert budgets.holm([0.5, 0.9]) == [1.0, 1.0]
    assert budgets.holm([0.2, 0.01, 0.3]) == pytest.approx([0.4, 0.03, 0.4])


def test_paired_p_value_is_the_paired_t_test():
    a, b = [0.5, 0.6, 0.55, 0.58], [0.4, 0.45, 0.5, 0.41]
    assert budgets.paired_p_value(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert budgets.paired_p_value(a, a) == 1.0
    assert budgets.paired_p_value([0.6, 0.7], [0.5, 0.6]) == 0.0


def test_comparison_family_decides_on_the_adjusted_p_value():
    clear = ([0.60, 0.62, 0.61, 0.63, 0.60], [0.40, 0.41, 0.39, 0.42, 0.40])
    # Uncorrected p about 0.03: "higher" alone, not in a family of 20 with Holm.
    weak = ([0.52, 0.55, 0.50, 0.56, 0.51], [0.50, 0.50, 0.49, 0.50, 0.50])
    assert stats.ttest_rel(*weak).pvalue < 0.05
    pairs = [({"name": "clear"}, *clear)] + [({"name": f"weak {i}"}, *weak) for i in range(19)]
    rows = budgets.comparison_family(pairs)
    assert rows[0]["verdict"] == "higher" and rows[0]["p_holm"] < 0.05
    assert all(row["verdict"] == "no clear difference" for row in rows[1:])
    assert rows[0]["difference"] == pytest.approx(0.208) and rows[0]["ci_low"] > 0
    lower = budgets.comparison_family([({"name": "lower"}, clear[1], clear[0])])
    assert lower[0]["verdict"] == "lower"
    with pytest.raises(ValueError, match="same seeds"):
        budgets.comparison_family([({"name": "x"}, [0.1, 0.2], [0.1])])


def test_protocol_metrics_read_the_validation_curve():
    from tlhelpers.results import RunResult

    curve = [0.2, 0.5, 0.7, 0.9, 1.0, 0.95]
    result = RunResult(backbone="resnet50", weights="none", strategy="scratch", labels_per_class=10, seed=0,
                       history={"val_accuracy": curve}, test_accuracy=0.9, test_loss=0.3, wall_time_s=1.0,
                       trainable_params=1, non_trainable_params=0,
                       config={"protocol": {"eval_every": 50}, "best_step": 200, "stopped_step": 250,
                               "stopped_by": "patience"})
    metrics = budgets.protocol_metrics(result)
    # start: after the first 50 steps, not the untrained model's chance accuracy.
    assert metrics["start"] == 0.5
    assert metrics["steps_to_90"] == 150 and metrics["best_validation"] == 1.0
    assert (metrics["best_step"], metrics["stopped_step"], metrics["stopped_by"]) == (200, 250, "patience")


def test_the_test_sampling_halfwidth_is_the_binomial_interval_and_bad_input_is_refused():
    # 1,000 images at 0.5: 1.96 * sqrt(0.25 / 1000) = 0.031, the figure the audit quotes.
    assert budgets.test_sampling_halfwidth(0.5, 1000) == pytest.approx(0.0310, abs=5e-5)
    assert budgets.test_sampling_halfwidth(0.8, 1500) < budgets.test_sampling_halfwidth(0.5, 1500)
    assert budgets.test_sampling_halfwidth(1.0, 10) == 0.0
    for accuracy, images in ((0.5, 0), (1.2, 100)):
        with pytest.raises(ValueError, match="received"):
            budgets.test_sampling_halfwidth(accuracy, images)
