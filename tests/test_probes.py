"""Linear probes, paired differences and verdicts."""

import numpy as np
import pytest

from tlhelpers import probes


def _blobs(separation, count=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), count // 3 + 1)[:count]
    features = rng.normal(size=(count, 8)) + separation * np.eye(8)[labels]
    return features, labels


def test_separable_features_probe_higher_than_noise():
    good, labels = _blobs(4.0)
    noise = np.random.default_rng(1).normal(size=good.shape)
    test_good, test_labels = _blobs(4.0, seed=2)
    test_noise = np.random.default_rng(3).normal(size=test_good.shape)
    rows = probes.probe_arms({"good": (good, test_good), "noise": (noise, test_noise)},
                             labels, test_labels, budgets=(2, 10), seeds=(0, 1, 2))
    by_arm = {(row.arm, row.labels_per_class): row for row in rows}
    assert len(rows) == 4 and all(len(row.accuracies) == 3 for row in rows)
    assert by_arm["good", 10].mean > 0.9 and by_arm["noise", 10].mean < 0.55
    assert probes.verdict(by_arm["good", 10].accuracies, by_arm["noise", 10].accuracies) == "higher"
    table = probes.probe_table(rows)
    assert table.splitlines()[0] == "| arm | 2/class | 10/class |"
    assert "| good |" in table


def test_budget_index_is_balanced_and_nested():
    labels = np.repeat(np.arange(4), 30)
    small, large = probes.budget_index(labels, 3, seed=5), probes.budget_index(labels, 10, seed=5)
    assert np.bincount(labels[small]).tolist() == [3] * 4
    assert set(small) <= set(large)
    assert not np.array_equal(np.sort(small), np.sort(probes.budget_index(labels, 3, seed=6)))


@pytest.mark.parametrize("a, b, expected", [
    ([0.80, 0.82, 0.81], [0.60, 0.61, 0.63], "higher"),
    ([0.60, 0.61, 0.63], [0.80, 0.82, 0.81], "lower"),
    ([0.70, 0.90, 0.50], [0.69, 0.52, 0.88], "no clear difference"),
])
def test_verdict_needs_the_interval_to_exclude_zero(a, b, expected):
    assert probes.verdict(a, b) == expected


def test_verdict_margin():
    mean, low, high = probes.paired_difference([0.80, 0.82, 0.81], [0.75, 0.76, 0.76])
    assert low < mean < high and mean == pytest.approx(0.0533, abs=1e-3)
    assert probes.verdict([0.80, 0.82, 0.81], [0.75, 0.76, 0.76], margin=0.10) == "no clear difference"


def test_stage_features_of_a_real_base():
    from tlhelpers.backbones import get_backbone
    from tlhelpers.datasets import ImageSet

    spec = get_backbone("vgg16")
    base = spec.builder(include_top=False, weights=None, input_shape=(32, 32, 3), pooling=None)
    data = ImageSet(np.random.default_rng(0).integers(0, 255, (6, 32, 32, 1), dtype=np.uint8),
                    np.zeros(6, np.int64), ("a",))
    features = probes.stage_features(base, spec.stage_ends, data, (32, 32), spec.preprocess, stages=(2, 5))
    assert sorted(features) == [2, 5]
    assert features[2].shape == (6, 128) and features[5].shape == (6, 512)
    assert probes.pixel_features(data).shape == (6, 1024)
