"""tlhelpers: the helper package of the transfer-learning course.

Modules (import what you need; importing the package itself has no side effects, unless
`TLHELPERS_FAULT` names a fault of `faults` to inject for the mutation harness),
bottom to top: each imports only from its own line or the lines above it.
    errors, paths, results, runtime   the error hierarchy, cache folders, run records, seeding
    registry                          ResNet50 / VGG16 (and TF-Hub names): stages, preprocessing
    datasets, clutter, folders, ...   data: Fashion-MNIST (in clutter), digits, your folders, tf.data
    shipped_sources, source_models    the source models; features (the cache), hub (TF-Hub)
    backbones                         build_base: a base with weights from any source
    models, model_pool, training      heads and strategies, seeded training runs with curves
    curves, probes, plots, report     start / slope / asymptote, figures, tables, results.json
    experiments, study, ...           the experiment runner, transfer against matched controls,
                                      transferability (features copied stage by stage)
    profiles, doctor, notebook, cli   offline / ImageNet profiles, the notebooks' setup, `python -m tlhelpers`
    faults                            broken versions of library functions, for `make mutants` only
"""

import os as _os

__version__ = "0.1.0"

if _os.environ.get("TLHELPERS_FAULT"):
    from tlhelpers.faults import inject as _inject

    _inject(_os.environ["TLHELPERS_FAULT"])
