"""tlhelpers: the helper package of the transfer-learning course.

Modules (import what you need; importing the package itself has no side effects):
    datasets, folders, pipeline   data: embedded Fashion-MNIST, digits, your folders, tf.data
    backbones, source_models      ResNet50 / VGG16 registry, weight sources, embedded source models
    models, features, training    heads and strategies, feature cache, seeded training runs
    experiments, curves           the experiment runner, start / slope / asymptote
    plots, report, visualize      figures, summary table, results.json, looking inside models
    profiles, cli                 offline / ImageNet profiles, `python -m tlhelpers`
"""

__version__ = "0.1.0"
