"""Source models shipped in data/source_models/: md5-checked loading, clear errors, retraining."""

import json

import numpy as np
import pytest

from tlhelpers import shipped_sources
from tlhelpers.downloads import file_digest
from tlhelpers.shipped_sources import SourceWeightsError


@pytest.fixture
def fake_shipped(tmp_path, monkeypatch):
    """A shipped entry 'vgg16' pointing at a small file of two arrays in a private folder."""
    weights = [np.arange(6, dtype=np.float32).reshape(2, 3) / 7, np.ones(3, np.float32)]
    path = shipped_sources.write_base_weights(weights, tmp_path / "vgg16-test.npz")
    monkeypatch.setattr(shipped_sources, "SHIPPED_DIR", tmp_path)
    monkeypatch.setattr(shipped_sources, "SHIPPED",
                        {"vgg16": ("vgg16-test.npz", file_digest(path, "md5"), 0.9)})
    return path, weights


def test_round_trip_is_float16_rounding(fake_shipped):
    path, weights = fake_shipped
    read = shipped_sources.read_base_weights("vgg16")
    assert [w.dtype for w in read] == [np.float32, np.float32]
    assert np.array_equal(read[0], weights[0].astype(np.float16).astype(np.float32))
    assert not list(path.parent.glob(".tmp-*"))


def test_missing_file_says_how_to_restore(fake_shipped):
    path, _ = fake_shipped
    path.unlink()
    with pytest.raises(SourceWeightsError, match=r"not found .*git checkout -- data/source_models/vgg16-test.npz"):
        shipped_sources.read_base_weights("vgg16")


def test_truncated_file_names_both_md5s(fake_shipped):
    path, _ = fake_shipped
    expected = shipped_sources.SHIPPED["vgg16"][1]
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(SourceWeightsError, match=f"expected {expected}.*--retrain"):
        shipped_sources.read_base_weights("vgg16")


def test_unreadable_archive_is_a_clear_error(fake_shipped):
    path, _ = fake_shipped
    path.write_bytes(b"not a zip archive")
    with pytest.raises(SourceWeightsError, match="cannot be read"):
        shipped_sources.read_base_weights("vgg16", check_md5=False)


def test_unknown_backbone_lists_shipped(fake_shipped):
    with pytest.raises(ValueError, match="Received backbone='resnet5'.*vgg16"):
        shipped_sources.shipped_path("resnet5")


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(KeyboardInterrupt):
        shipped_sources.write_base_weights([np.ones(2)], tmp_path / "x.npz")
    assert list(tmp_path.iterdir()) == []


def test_other_clutter_or_classes_are_refused():
    from tlhelpers.clutter import ClutterSpec

    if "vgg16" not in shipped_sources.SHIPPED:
        pytest.skip("no shipped vgg16 source model")
    with pytest.raises(ValueError, match="clutter=ClutterSpec.*trained on"):
        shipped_sources.check_shipped_task("vgg16", ClutterSpec(canvas_size=40))
    with pytest.raises(ValueError, match="source_classes"):
        shipped_sources.check_shipped_task("vgg16", shipped_sources.SOURCE_CLUTTER, source_classes=("Bag", "Coat"))
    from tlhelpers.experiments import ExperimentConfig, check_config

    with pytest.raises(ValueError, match="source_task .clean."):
        check_config(ExperimentConfig(source_classes=("Bag", "Coat", "Sandal", "Shirt", "Sneaker"),
                                      target_classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat")))


def test_retrain_writes_file_and_provenance(tmp_path, monkeypatch):
    # The committed recipe, shrunk to 30 images per class and one epoch: same code path.
    monkeypatch.setitem(shipped_sources.RECIPES, "vgg16",
                        {**shipped_sources.RECIPES["vgg16"], "epochs": 2, "examples_per_class": 30})
    info = shipped_sources.retrain("vgg16", tmp_path, verbose=0)
    path = tmp_path / "vgg16-clutter48.npz"
    assert info["md5"] == file_digest(path, "md5")
    assert json.loads(path.with_suffix(".json").read_text())["md5"] == info["md5"]
    assert len(info["test_accuracy_per_epoch"]) == 2 and 0 <= info["source_test_accuracy"] <= 1
    assert info["train_examples_per_epoch"] == 150
    base = shipped_sources.build_source_base(
        "vgg16", 48, weights=shipped_sources.read_base_weights("vgg16", path, check_md5=False))
    assert base.output.shape == (None, 512)
    # Same recipe, same seed, same machine: the same file.
    again = shipped_sources.retrain("vgg16", tmp_path / "again", verbose=0)
    assert again["md5"] == info["md5"]


def test_doctor_reports_the_shipped_files(fake_shipped):
    from tlhelpers import doctor

    path, _ = fake_shipped
    assert doctor._shipped_state("vgg16") == "ok (md5 checked)"
    assert doctor._shipped_state("resnet50") == "not shipped"
    path.write_bytes(b"x")
    assert doctor._shipped_state("vgg16").startswith("unusable: Shipped vgg16 source model")
    lines = doctor.format_status(doctor.collect_status(probe=False))
    assert any(line.split()[:2] == ["vgg16", "unusable:"] for line in lines)
    # The offline profile needs the shipped files: a broken one makes it not ready, saying which.
    offline = next(line for line in lines if line.split()[0] == "offline")
    assert "NOT READY" in offline and "vgg16" in offline


@pytest.mark.parametrize("backbone", ["resnet50", "vgg16"])
def test_shipped_file_loads_through_build_base_at_any_size(backbone):
    from tlhelpers.backbones import build_base, weights_file_version

    name, md5, accuracy = shipped_sources.SHIPPED[backbone]
    path = shipped_sources.shipped_path(backbone)
    assert path.stat().st_size < 50 * 1024 * 1024 and file_digest(path, "md5") == md5
    provenance = json.loads(path.with_suffix(".json").read_text())
    assert provenance["md5"] == md5 and provenance["source_test_accuracy"] == accuracy
    expected = shipped_sources.read_base_weights(backbone)
    for size in (48, 32):
        base = build_base(backbone, "embedded", size, clutter=shipped_sources.SOURCE_CLUTTER)
        assert base.input_shape == (None, size, size, 3)
        assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), expected))
    assert weights_file_version(backbone, "embedded", clutter=shipped_sources.SOURCE_CLUTTER) is not None


def test_shipped_vgg16_features_beat_random_weights_on_the_cluttered_target():
    """The point of shipping it: on the cluttered target its features separate the classes
    better than random weights of the same architecture (measured gap about 0.15 at 10 labels
    per class; a broken or shuffled file falls to the random level)."""
    from tlhelpers import datasets, probes
    from tlhelpers.backbones import get_backbone

    spec = get_backbone("vgg16")
    pool, test = datasets.load_embedded(datasets.DEFAULT_TARGET_CLASSES, clutter=shipped_sources.SOURCE_CLUTTER)
    pool, test = datasets.subsample_per_class(pool, 40), datasets.subsample_per_class(test, 60)
    features = {}
    for label in ("source", "random"):
        base = (shipped_sources.build_source_base("vgg16", pooling=None) if label == "source" else
                spec.builder(include_top=False, weights=None, input_shape=(48, 48, 3), pooling=None))
        features[label] = [probes.stage_features(base, spec.stage_ends, d, (48, 48), spec.preprocess,
                                                 stages=(5,))[5] for d in (pool, test)]
    scores = {label: probes.probe(train, pool.labels, held_out, test.labels, (10,), (0, 1, 2))[10]
              for label, (train, held_out) in features.items()}
    assert np.mean(scores["source"]) - np.mean(scores["random"]) > 0.05, scores


def test_embedded_weights_mean_the_shipped_model_and_train_nothing(monkeypatch):
    """What the offline profile relies on: `weights="embedded"` with no options is the shipped
    cluttered source model; nothing is trained at first use, and options that only a trained
    source model has are refused instead of being ignored."""
    from tlhelpers import datasets, profiles, source_models
    from tlhelpers.backbones import build_base
    from tlhelpers.clutter import DEFAULT_CLUTTER

    def no_training(*args, **kwargs):
        raise AssertionError("weights='embedded' must not train a source model")

    monkeypatch.setattr(source_models, "train_source_model", no_training)
    base = build_base("vgg16", "embedded", 48)
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), shipped_sources.read_base_weights("vgg16")))
    with pytest.raises(ValueError, match="pass clutter=None"):
        build_base("vgg16", "embedded", 48, recipe={"epochs": 1})
    with pytest.raises(ValueError, match="pass clutter=None"):
        build_base("vgg16", "embedded", 48, seed=3)
    with pytest.raises(AssertionError, match="must not train"):
        build_base("vgg16", "embedded", 48, clutter=None, cache_dir="/nonexistent-cache")
    profile = profiles.get_profile("offline")
    pool, test = profiles.load_target_task(profile)
    expected_pool, expected_test = datasets.load_embedded(datasets.DEFAULT_TARGET_CLASSES, clutter=DEFAULT_CLUTTER)
    assert pool.images.shape[1:] == (48, 48, 1) and profile["image_size"] == 48
    assert np.array_equal(pool.images, expected_pool.images) and np.array_equal(test.images, expected_test.images)

