# Everything runs inside .venv, created on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: venv test run notebooks source-models clean-cache

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## make test: unit tests and the notebook regression check (offline profile).
test: $(STAMP)
	TLHELPERS_PROFILE=offline $(PY) -m pytest -q -W ignore::DeprecationWarning tests

## make run: the main experiment on the embedded data, report in report/.
run: $(STAMP)
	$(PY) -m tlhelpers run --out report

## make source-models: train (first time) or load both embedded source models.
source-models: $(STAMP)
	$(PY) -m tlhelpers source-model --backbone resnet50
	$(PY) -m tlhelpers source-model --backbone vgg16
