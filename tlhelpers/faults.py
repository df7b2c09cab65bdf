"""Faults a maintainer, a refactoring or a dependency upgrade could plausibly introduce, injectable on
purpose so that the regression check can be shown to catch them (`make mutants`, `tests/mutants.py`).

Nothing here runs unless the environment variable `TLHELPERS_FAULT` names a fault when `tlhelpers` is
first imported (`tlhelpers/__init__.py` calls `inject`); a notebook's kernel inherits it from the test
run that starts it. Each fault replaces one library function by a broken version, everywhere the
package holds a reference to it, and leaves the notebooks and tests untouched.

This module sits above every other one (it patches them) and nothing imports it but `tlhelpers`.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys

FAULT_ENV = "TLHELPERS_FAULT"


@dataclasses.dataclass(frozen=True)
class Fault:
    """One injectable fault.

    Attributes:
        name: What `TLHELPERS_FAULT` is set to.
        description: The bug, as a reader of `docs/mutants.md` sees it.
        patches: `(module, function name, broken version factory)`; the factory receives the
            original function and returns its replacement.
        unit_tests: The test files that cover the patched code (the harness runs these and the
            notebooks once per fault).
    """

    name: str
    description: str
    patches: tuple
    unit_tests: tuple


def _replace(module_name, attribute, make):
    """Replace `module.attribute` by `make(original)` in the module and in every loaded `tlhelpers`
    module that imported it by name."""
    module = importlib.import_module(f"tlhelpers.{module_name}")
    original = getattr(module, attribute)
    broken = make(original)
    broken.__wrapped__ = original
    for name, loaded in list(sys.modules.items()):
        if (name == "tlhelpers" or name.startswith("tlhelpers.")) and getattr(loaded, attribute, None) is original:
            setattr(loaded, attribute, broken)


def _randomise_kernels(model, seed=1234):
    """Overwrite every kernel of `model` (weights with two or more axes) with He-normal noise of its
    fan-in; biases and BatchNormalization statistics keep their loaded values."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[:-1])) if len(shape) == 2 else int(np.prod(shape[:-2])) * shape[-2]
            weight.assign(rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape).astype("float32"))
    return model


def _random_after_loading(original):
    def build_base(name, weights=None, *args, **kwargs):
        base = original(name, weights, *args, **kwargs)
        return base if weights in (None, "none") or str(name).startswith("hub:") else _randomise_kernels(base)
    return build_base


def _random_classifier(original):
    def build_classifier(*args, **kwargs):
        return _randomise_kernels(original(*args, **kwargs))
    return build_classifier


def _shuffled_labels(original):
    def make_splits(*args, **kwargs):
        import numpy as np

        splits = original(*args, **kwargs)
        train = splits.train
        labels = np.random.default_rng(99).permutation(train.labels)
        return dataclasses.replace(splits, train=dataclasses.replace(train, labels=labels))
    return make_splits


def _validation_is_test(original):
    def make_splits(*args, **kwargs):
        splits = original(*args, **kwargs)
        return dataclasses.replace(splits, validation=splits.test)
    return make_splits


def _no_preprocessing(original):
    def to_model_input(images, image_size, preprocess):
        return original(images, image_size, lambda x: x)
    return to_model_input


def _double_preprocessing(original):
    def to_model_input(images, image_size, preprocess):
        return original(images, image_size, lambda x: preprocess(preprocess(x)))
    return to_model_input


def _trainable_frozen_base(original):
    def build_strategy(strategy, *args, **kwargs):
        built = original(strategy, *args, **kwargs)
        if strategy == "feature_extraction" and built.base is not None:
            built.base.trainable = True
            if kwargs.get("compile", True):
                from tlhelpers.runtime import compile_model

                compile_model(built.model, built.learning_rate)
        return built
    return build_strategy


def _rate_factors_dropped(original):
    def __init__(self, learning_rate=0.001, rate_factors=None, **kwargs):
        original(self, learning_rate, None, **kwargs)
    return __init__


def _augmentation_ignored(original):
    def build_strategy(strategy, *args, **kwargs):
        return original(strategy, *args, **{**kwargs, "augment": False})
    return build_strategy


def _batchnorm_training_features(original):
    def forward_function(base):
        import tensorflow as tf

        def forward(images):
            base.trainable = True
            try:
                return base(images, training=True)
            finally:
                base.trainable = False
        return lambda images: forward(tf.convert_to_tensor(images))
    return forward_function


def _unfreeze_off_by_one(original):
    def freeze_up_to(base, stage_ends, stage, freeze_batchnorm=True):
        return original(base, stage_ends, max(stage - 1, 0), freeze_batchnorm)
    return freeze_up_to


def _batchnorm_unfrozen(original):
    def freeze_up_to(base, stage_ends, stage, freeze_batchnorm=True):
        return original(base, stage_ends, stage, False)
    return freeze_up_to


def _hub_training_mode(original):
    def call(self, inputs, training=None):
        if self.accepts_training:
            return self._function(inputs, training=True)
        return original(self, inputs, training)
    return call


def _preset_epsilon(original):
    def build_lite0_backbone(**overrides):
        return original(**{"batch_norm_epsilon": 1e-5, **overrides})
    return build_lite0_backbone


def _head_rate_times_100(original):
    def strategy_learning_rate(strategy, backbone="resnet50", learning_rate=None):
        rate = original(strategy, backbone, learning_rate)
        return rate * 100 if strategy == "feature_extraction" else rate
    return strategy_learning_rate


def _cache_ignores_weights(original):
    def feature_key(base, data, image_size, preprocess, fingerprint=None):
        return original(base, data, image_size, preprocess, fingerprint="any weights")
    return feature_key


def _no_restore(original):
    def on_train_end(self, logs=None):
        return None
    return on_train_end


def _copy_skipped(original):
    def copy_stages(source, model, k, trainable):
        for stage in range(1, k + 1):
            model.get_layer(f"stage{stage}_conv").trainable = trainable
    return copy_stages


def _transposed_kernels(original):
    def keras_weights(layer, state, prefix):
        import numpy as np

        arrays = original(layer, state, prefix)
        return [np.ascontiguousarray(np.swapaxes(a, 0, 1)) if a.ndim == 4 and a.shape[0] == a.shape[1] > 1 else a
                for a in arrays]
    return keras_weights


def _start_before_training(original):
    def protocol_metrics(result):
        metrics = original(result)
        return {**metrics, "start": result.history["val_accuracy"][0]}
    return protocol_metrics


def _interval_from_sd(original):
    def aggregate(values, confidence=0.95):
        import math

        summary = original(values, confidence)
        widen = math.sqrt(summary["n"])  # the half-width divided by nothing instead of sqrt(n)
        return {**summary, "ci_low": summary["mean"] - (summary["mean"] - summary["ci_low"]) * widen,
                "ci_high": summary["mean"] + (summary["ci_high"] - summary["mean"]) * widen}
    return aggregate


def _interpolated_from_the_wrong_end(original):
    def crossing(budgets, means, target):
        import numpy as np

        found = original(budgets, means, target)
        if found is None or found == budgets[0]:
            return found
        first = int(np.flatnonzero(np.asarray(means, float) >= target)[0])
        return float(budgets[first - 1] * budgets[first] / found)  # mirrored in log budget
    return crossing


FAULTS = {fault.name: fault for fault in (
    Fault("random_weights", "transferred weights replaced by random ones after loading (every file check "
          "passes): source models, ImageNet bases and the ImageNet classifier",
          (("backbones", "build_base", _random_after_loading),
           ("imagenet_ports", "build_classifier", _random_classifier)),
          ("tests/test_backbones.py", "tests/test_imagenet_ports.py", "tests/test_shipped_sources.py")),
    Fault("shuffled_labels", "the training labels shuffled when the splits are made",
          (("datasets", "make_splits", _shuffled_labels),), ("tests/test_datasets.py", "tests/test_training.py")),
    Fault("validation_is_test", "selection on test: the validation split replaced by the test split",
          (("datasets", "make_splits", _validation_is_test),), ("tests/test_datasets.py", "tests/test_protocol.py")),
    Fault("no_preprocessing", "the backbone's preprocessing skipped (raw 0-255 pixels go in)",
          (("pipeline", "to_model_input", _no_preprocessing),), ("tests/test_datasets.py", "tests/test_training.py")),
    Fault("double_preprocessing", "the backbone's preprocessing applied twice",
          (("pipeline", "to_model_input", _double_preprocessing),), ("tests/test_datasets.py",
                                                                      "tests/test_training.py")),
    Fault("trainable_frozen_base", "feature extraction leaves its base trainable",
          (("models", "build_strategy", _trainable_frozen_base),), ("tests/test_training.py",)),
    Fault("augmentation_ignored", "`augment=True` silently builds the model without its augmentation layers",
          (("models", "build_strategy", _augmentation_ignored),), ("tests/test_backbones.py",)),
    Fault("batchnorm_training_features", "feature extraction runs BatchNormalization in training mode "
          "(batch statistics, moving statistics updated)",
          (("features", "forward_function", _batchnorm_training_features),), ("tests/test_training.py",)),
    Fault("unfreeze_off_by_one", "fine-tuning unfreezes the wrong stages (freezes up to stage k-1)",
          (("models", "freeze_up_to", _unfreeze_off_by_one),), ("tests/test_training.py",)),
    Fault("batchnorm_unfrozen", "fine-tuning leaves the BatchNormalization layers of the unfrozen stages "
          "trainable (their moving statistics drift)",
          (("models", "freeze_up_to", _batchnorm_unfrozen),), ("tests/test_training.py",)),
    Fault("hub_training_mode", "the TF-Hub layer runs its SavedModel in training mode whatever it is asked "
          "(batch statistics, moving statistics updated)",
          (("hub", "HubFeatureVector.call", _hub_training_mode),), ("tests/test_hub.py",)),
    Fault("preset_epsilon", "the KerasHub preset built with BatchNormalization epsilon 1e-5 (PyTorch's "
          "default) instead of the weights' 1e-3",
          (("keras_hub_presets", "build_lite0_backbone", _preset_epsilon),), ("tests/test_keras_hub_presets.py",)),
    Fault("head_rate_x100", "the head's learning rate multiplied by 100 (feature extraction)",
          (("models", "strategy_learning_rate", _head_rate_times_100),), ("tests/test_training.py",)),
    Fault("head_rate_factor_dropped", "discriminative learning rates dropped: the optimizer ignores its "
          "per-variable factors, so the head trains at the base's rate",
          (("optimizers", "FusedAdam.__init__", _rate_factors_dropped),),
          ("tests/test_optimizers.py", "tests/test_training.py")),
    Fault("cache_ignores_weights", "the feature cache serves another model's features (its key ignores "
          "the weights)", (("features", "feature_key", _cache_ignores_weights),), ("tests/test_training.py",)),
    Fault("no_restore_best", "early stopping does not restore the best weights",
          (("protocol", "EarlyStopping.on_train_end", _no_restore),), ("tests/test_protocol.py",)),
    Fault("stage_copy_skipped", "layer transferability: the copied stages keep their random initial weights "
          "(frozen or not as asked, but nothing copied)",
          (("transferability", "copy_stages", _copy_skipped),), ("tests/test_transferability.py",)),
    Fault("transposed_port_kernels", "the ImageNet port transposes square conv kernels the wrong way",
          (("imagenet_ports", "keras_weights", _transposed_kernels),), ("tests/test_imagenet_ports.py",
                                                                         "tests/test_imagenet_reference.py")),
    # Faults in the analysis: they leave every run as trained and change what is read off the runs.
    Fault("start_before_training", "the curve metric start read before any training step (the first "
          "evaluation) instead of after the first evaluation interval",
          (("budgets", "protocol_metrics", _start_before_training),), ("tests/test_budgets.py",)),
    Fault("interval_from_sd", "the 95% interval over seeds built from the standard deviation instead of "
          "the standard error (sqrt(n) times too wide)",
          (("curves", "aggregate", _interval_from_sd),), ("tests/test_curves.py", "tests/test_budgets.py")),
    Fault("labels_saved_wrong_end", "labels saved interpolated from the wrong end of the budgets around the "
          "crossing", (("budgets", "crossing", _interpolated_from_the_wrong_end),), ("tests/test_budgets.py",)),
)}


def inject(name):
    """Apply the fault `name` (a key of `FAULTS`) to the loaded package.

    Raises:
        ValueError: unknown name.
    """
    if name not in FAULTS:
        raise ValueError(f"Received {FAULT_ENV}={name!r}. Expected one of: {', '.join(FAULTS)}.")
    for module_name, attribute, make in FAULTS[name].patches:
        if "." in attribute:  # a method: patch the class
            class_name, method = attribute.split(".")
            owner = getattr(importlib.import_module(f"tlhelpers.{module_name}"), class_name)
            setattr(owner, method, make(getattr(owner, method)))
        else:
            _replace(module_name, attribute, make)
