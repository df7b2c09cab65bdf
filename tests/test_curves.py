import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from conftest import saturating as shared_saturating, synthetic_run
from tlhelpers import curves


def saturating(asymptote, y0, tau, last_epoch=20):
    return shared_saturating(asymptote, y0, tau, last_epoch)


def make_run(strategy, labels_per_class, seed, curve, test_accuracy, backbone="resnet50"):
    return synthetic_run(strategy, labels_per_class, seed, curve, test_accuracy, backbone=backbone)


def assert_all_finite(metrics):
    for name in ("initial", "start", "slope", "asymptote", "final", "auc", "tau"):
        assert math.isfinite(getattr(metrics, name)), name


@pytest.mark.parametrize("asymptote, y0, tau", [(0.85, 0.1, 3.0), (0.6, 0.1, 1.0), (0.95, 0.3, 6.0)])
def test_recovers_known_saturating_curve(asymptote, y0, tau):
    metrics = curves.curve_metrics(saturating(asymptote, y0, tau))
    assert metrics.method == "saturating_fit"
    assert abs(metrics.asymptote - asymptote) < 0.02
    assert metrics.slope == pytest.approx((asymptote - y0) / tau, rel=0.15)
    assert metrics.tau == pytest.approx(tau, rel=0.15)


@pytest.mark.parametrize("seed", range(5))
def test_recovers_known_curve_with_small_noise(seed):
    # Tolerance: asymptote within 0.02 and initial slope within 15% for noise sd 0.01.
    noise = np.random.default_rng(seed).normal(0.0, 0.01, 21)
    metrics = curves.curve_metrics(saturating(0.85, 0.1, 3.0) + noise)
    assert abs(metrics.asymptote - 0.85) < 0.02
    assert metrics.slope == pytest.approx(0.25, rel=0.15)


def test_transfer_like_jump_then_plateau():
    # Pretrained features: chance at epoch 0, most of the gain in the first epoch.
    metrics = curves.curve_metrics([0.1, 0.6, 0.62, 0.63, 0.63, 0.63])
    assert metrics.method == "saturating_fit"
    assert metrics.asymptote == pytest.approx(0.63, abs=0.01)
    assert metrics.tau < 1.0
    # The initial rate of a curve that saturates within one epoch exceeds the first-epoch gain.
    assert metrics.slope > metrics.start - metrics.initial > 0


def test_simple_definitions():
    values = [0.1, 0.5, 0.6, 0.7, 0.8]
    metrics = curves.curve_metrics(values, final_window=2)
    assert metrics.initial == 0.1
    assert metrics.start == 0.5
    assert metrics.final == pytest.approx(0.75)
    assert metrics.auc == pytest.approx((0.05 + 0.5 + 0.6 + 0.7 + 0.4) / 4)


def test_final_excludes_epoch_zero_when_window_is_longer_than_training():
    assert curves.curve_metrics([0.0, 0.5, 0.7], final_window=5).final == pytest.approx(0.6)


def test_flat_curve():
    metrics = curves.curve_metrics([0.1] * 8)
    assert metrics.method == "flat"
    assert metrics.slope == 0.0
    assert metrics.asymptote == pytest.approx(0.1)
    assert_all_finite(metrics)


@pytest.mark.parametrize("values, slope, method", [([0.4], 0.0, "short"), ([0.1, 0.3], 0.2, "short")])
def test_short_curves(values, slope, method):
    metrics = curves.curve_metrics(values)
    assert metrics.method == method
    assert metrics.slope == pytest.approx(slope)
    assert metrics.asymptote == pytest.approx(values[-1])
    assert metrics.start == pytest.approx(values[1] if len(values) > 1 else values[0])
    assert_all_finite(metrics)


def test_falling_accuracy_curve_has_negative_slope_and_lower_asymptote():
    metrics = curves.curve_metrics(saturating(0.3, 0.8, 2.0, last_epoch=12))
    assert metrics.slope < 0
    assert metrics.asymptote == pytest.approx(0.3, abs=0.02)


def test_noisy_and_non_monotone_curves_stay_finite_and_bounded():
    rng = np.random.default_rng(1)
    for values in ([0.1, 0.5, 0.7, 0.6, 0.4, 0.3], list(rng.uniform(0.0, 1.0, 15)),
                   [0.1, 0.11, 0.1, 0.12, 0.1, 0.11]):
        metrics = curves.curve_metrics(values)
        assert_all_finite(metrics)
        assert 0.0 <= metrics.asymptote <= 1.0


def test_steadily_rising_curve_falls_back_to_final_and_early_differences():
    metrics = curves.curve_metrics([0.10, 0.15, 0.20, 0.25, 0.30])
    assert metrics.method == "linear_fallback"
    assert metrics.asymptote == pytest.approx(0.25)  # mean of the last 3 epochs
    assert metrics.slope == pytest.approx(0.05)


def test_asymptote_clipped_into_bounds_when_fit_wants_more_than_one():
    metrics = curves.curve_metrics(saturating(1.3, 0.3, 10.0, last_epoch=10))
    assert 0.0 <= metrics.asymptote <= 1.0
    assert metrics.asymptote >= metrics.final
    assert metrics.slope > 0


def test_loss_curves_through_run_metrics():
    loss = saturating(0.2, 2.3, 4.0)
    run = make_run("scratch", 10, 0, saturating(0.8, 0.1, 4.0), 0.8)
    run.history["val_loss"] = list(loss)
    metrics = curves.run_metrics(run, "val_loss")
    assert metrics.slope == pytest.approx(-2.1 / 4.0, rel=0.15)
    assert metrics.asymptote == pytest.approx(0.2, abs=0.02)
    assert curves.curve_metrics([2.3, 3.0, 5.0, 9.0], bounds=(0.0, math.inf)).asymptote >= 0.0
    with pytest.raises(ValueError, match="key"):
        curves.run_metrics(run, "epoch")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="empty"):
        curves.curve_metrics([])
    with pytest.raises(ValueError, match="finite"):
        curves.curve_metrics([0.1, float("nan")])
    with pytest.raises(ValueError, match="bounds"):
        curves.curve_metrics([0.1, 0.2], bounds=(1.0, 0.0))
    with pytest.raises(ValueError, match="confidence"):
        curves.aggregate([1.0, 2.0], confidence=1.5)


def test_aggregate_single_value():
    assert curves.aggregate([0.7]) == {"mean": 0.7, "std": 0.0, "ci_low": 0.7, "ci_high": 0.7, "n": 1}


def test_aggregate_several_values():
    stats = curves.aggregate([1.0, 2.0, 3.0])
    assert stats["mean"] == pytest.approx(2.0)
    assert stats["std"] == pytest.approx(1.0)
    # t(0.975, df=2) = 4.3027; half width = 4.3027 * 1 / sqrt(3).
    assert stats["ci_high"] - stats["mean"] == pytest.approx(4.3027 / math.sqrt(3), rel=1e-3)
    assert stats["ci_low"] == pytest.approx(2 * stats["mean"] - stats["ci_high"])
    assert stats["n"] == 3


def test_summarize_groups_in_first_seen_order():
    runs = [make_run("fine_tune", 10, seed, saturating(0.8, 0.1, 1.0, 6), 0.8 + 0.01 * seed)
            for seed in range(3)]
    runs.insert(1, make_run("scratch", 10, 0, saturating(0.4, 0.1, 5.0, 6), 0.4))
    rows = curves.summarize(runs)
    assert [(row["strategy"], row["n_seeds"]) for row in rows] == [("fine_tune", 3), ("scratch", 1)]
    assert rows[0]["test_accuracy_mean"] == pytest.approx(0.81)
    assert rows[0]["test_accuracy_std"] == pytest.approx(0.01)
    assert rows[1]["test_accuracy_ci_low"] == rows[1]["test_accuracy_ci_high"] == pytest.approx(0.4)
    assert rows[0]["wall_time_s_mean"] == pytest.approx(11.0)
    for name in curves.SUMMARY_NAMES:
        for statistic in ("mean", "std", "ci_low", "ci_high"):
            assert math.isfinite(rows[0][f"{name}_{statistic}"])


def budget_rows(transfer, scratch, budgets=(10, 30, 100, 300)):
    rows = []
    for budget, transfer_accuracy, scratch_accuracy in zip(budgets, transfer, scratch):
        rows.append({"backbone": "resnet50", "weights": "embedded", "strategy": "fine_tune",
                     "labels_per_class": budget, "test_accuracy_mean": transfer_accuracy})
        rows.append({"backbone": "resnet50", "weights": "none", "strategy": "scratch",
                     "labels_per_class": budget, "test_accuracy_mean": scratch_accuracy})
    return rows


def test_crossover_present_with_log_interpolation():
    found = curves.crossover(budget_rows([0.7, 0.8, 0.85, 0.9], [0.3, 0.6, 0.85, 0.95]), "fine_tune")
    assert found.labels_per_class == 100
    # Gap 0.2 at 30 and 0.0 at 100: the crossing is exactly at 100.
    assert found.interpolated == pytest.approx(100.0)
    # Gap +0.1 at 100 and -0.1 at 300: the crossing is halfway on the log axis.
    found = curves.crossover(budget_rows([0.7, 0.8, 0.85, 0.9], [0.3, 0.6, 0.75, 1.0]), "fine_tune")
    assert found.labels_per_class == 300
    assert found.interpolated == pytest.approx(math.exp((math.log(100) + math.log(300)) / 2))
    assert found.test_accuracy == pytest.approx(0.875)


def test_crossover_at_smallest_budget_is_not_interpolated():
    found = curves.crossover(budget_rows([0.3, 0.8], [0.4, 0.9]), "fine_tune")
    assert found.labels_per_class == 10
    assert found.interpolated == 10.0
    assert found.test_accuracy == pytest.approx(0.3)


def test_crossover_absent():
    assert curves.crossover(budget_rows([0.7, 0.8, 0.85, 0.9], [0.3, 0.6, 0.8, 0.85]), "fine_tune") is None
    assert curves.crossover(budget_rows([0.7], [0.3]), "feature_extraction") is None


def test_crossover_needs_backbone_when_ambiguous():
    rows = budget_rows([0.7], [0.3]) + [{"backbone": "vgg16", "weights": "embedded", "strategy": "fine_tune",
                                         "labels_per_class": 10, "test_accuracy_mean": 0.2}]
    with pytest.raises(ValueError, match="backbone"):
        curves.crossover(rows, "fine_tune")
    assert curves.crossover(rows, "fine_tune", backbone="vgg16").labels_per_class == 10


def test_baseline_strategy():
    assert curves.baseline_strategy([{"strategy": "small_cnn"}, {"strategy": "scratch"}]) == "scratch"
    assert curves.baseline_strategy([{"strategy": "small_cnn"}]) == "small_cnn"
    assert curves.baseline_strategy([{"strategy": "fine_tune"}]) is None


def test_phase_metrics_fit_each_phase_on_its_own():
    from conftest import saturating, synthetic_run

    head = saturating(0.5, 0.2, 0.8, last_epoch=4)
    tune = saturating(0.9, 0.5, 1.5, last_epoch=8)[1:] + 0.0
    curve = np.concatenate([head, tune])
    run = synthetic_run("fine_tune", 10, 0, curve, 0.9, phase_starts=[5])
    phases = curves.phase_metrics(run)
    assert [first for first, _ in phases] == [0, 4]
    (_, first), (_, second) = phases
    assert first.method == second.method == "saturating_fit"
    assert first.asymptote == pytest.approx(0.5, abs=1e-3) and second.asymptote == pytest.approx(0.9, abs=1e-3)
    # The second phase's own start is one epoch after fine-tuning begins.
    assert second.initial == pytest.approx(curve[4]) and second.start == pytest.approx(curve[5])
    # One fit across both phases would give neither level.
    whole = curves.run_metrics(run)
    assert abs(whole.asymptote - 0.5) > 0.05 or whole.method != "saturating_fit"
    assert len(curves.phase_metrics(synthetic_run("scratch", 10, 0, head, 0.5))) == 1


def test_levelled_and_fit_methods_say_when_a_curve_is_still_rising():
    rising = curves.curve_metrics(np.linspace(0.1, 0.7, 9))
    levelled = curves.curve_metrics(0.8 - 0.7 * np.exp(-np.arange(9) / 1.5))
    assert rising.method == "linear_fallback" and not rising.levelled
    assert levelled.levelled
    assert curves.fit_methods([levelled, rising, levelled]) == "linear fallback x1, saturating fit x2"


def test_improving_tells_a_rising_curve_from_one_that_wanders():
    rising = curves.curve_metrics(np.linspace(0.1, 0.7, 9))
    # A run from scratch that stays at chance with one lucky evaluation: no fit, and not rising.
    wandering = curves.curve_metrics([0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.196, 0.2, 0.264, 0.196])
    falling_loss = curves.curve_metrics(np.linspace(2.0, 1.0, 9), higher_is_better=False, bounds=(0, np.inf))
    assert rising.improving and not rising.levelled
    assert not wandering.levelled and not wandering.improving
    assert falling_loss.improving
