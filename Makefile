# Two commands set everything up on a fresh machine:
#   make demo   runs the whole pipeline on the embedded default corpus
#   make test   runs the test suite
# On a GPU machine, run this first:
#   make gpu-check   short real trainings of every GPU path (says so and exits 0 without a GPU)
PY ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_CONFIG ?= examples/demo.yaml

.PHONY: demo test venv bench gpu-check clean-venv

venv: $(STAMP)

# torch first, pinned: its CPU wheel lies on disk here; an unpinned torch would pull a multi-GB CUDA build.
# Then the package with every extra the demo and the tests need (pins: setup.py, the one list).
$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PYTHON) -m pip install -q --disable-pip-version-check --no-build-isolation -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/regmix-megatron run $(DEMO_CONFIG)

test: $(STAMP)
	$(PYTHON) -m pytest -q tests

gpu-check: $(STAMP)
	$(PYTHON) tools/gpu_check.py

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
