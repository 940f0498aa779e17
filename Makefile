# Two commands set everything up on a fresh machine:
#   make demo   runs the whole pipeline on the embedded default corpus
#   make test   runs the test suite
# On a GPU machine, run this first:
#   make gpu-check   short real trainings of every GPU path (says so and exits 0 without a GPU)
# On an existing CUDA stack (e.g. NVIDIA's PyTorch container), first:
#   make gpu-venv    a venv on top of it that reuses its torch / Transformer Engine / apex (refuses a stack
#                    megatron-core 0.16.1 does not support); gpu-check then runs in it
PY ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GPU_VENV ?= .venv-gpu
DEMO_CONFIG ?= examples/demo.yaml

.PHONY: demo test venv bench gpu-check gpu-venv clean-venv

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

# In the gpu-venv when there is one, else in .venv (whose torch 2.13.0 from PyPI is a CUDA 13 build on a machine
# with internet access; it needs NVIDIA driver 580 or newer). GPU_CHECK_ARGS: e.g. --allow-missing te.
ifneq ($(wildcard $(GPU_VENV)/bin/python),)
gpu-check:
	$(GPU_VENV)/bin/python tools/gpu_check.py $(GPU_CHECK_ARGS)
else
gpu-check: $(STAMP)
	$(PYTHON) tools/gpu_check.py $(GPU_CHECK_ARGS)
endif

# $(PY) is the stack's Python (the container's python3). GPU_VENV_ARGS: e.g. --wheels DIR to install offline.
gpu-venv:
	$(PY) tools/gpu_venv.py --venv $(GPU_VENV) $(GPU_VENV_ARGS)

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
