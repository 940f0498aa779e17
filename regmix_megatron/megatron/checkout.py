"""A Megatron-LM checkout as our tools use it: its dataset helpers, the commands its scripts shell out to, and
what else its ``megatron.training`` needs (``tools/check_megatron_lm.py`` and ``make gpu-check`` share this).

A fresh checkout has no compiled ``megatron/core/datasets/helpers_cpp``. Megatron-LM's ``pretrain`` compiles it
at start-up with ``make -C megatron/core/datasets``, whose Makefile asks ``python3 -m pybind11 --includes`` and
``python3-config --extension-suffix`` from ``PATH``: another interpreter than the one running (a venv's python is
not on ``PATH`` when called by its full path; a venv has no ``python3-config``) builds a helper for the wrong
Python, or fails without pybind11. :func:`ensure_dataset_helpers` builds it for this interpreter;
:func:`interpreter_bin` makes ``python3`` and ``python3-config`` on ``PATH`` answer for this interpreter, so
that the Makefile ``pretrain`` runs finds the helper built and up to date.

``pretrain`` also runs ``$CUDA_HOME/bin/nvcc -V`` at start-up (``megatron/legacy/fused_kernels``'s ``load``),
whatever the flags: without a CUDA toolkit it fails there (:func:`nvcc_missing_reason`).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Optional

from ..errors import RegmixError

HELPERS_DIR = Path("megatron") / "core" / "datasets"
"""Where a checkout keeps its dataset helpers' source and Makefile."""

#: What Megatron-LM's ``megatron.training`` imports besides megatron-core and torch, and pybind11 for its dataset
#: helpers: the ``megatron-lm`` extra of setup.py.
TRAINING_MODULES = ("six", "pydantic", "einops", "pybind11")

#: apex's CUDA extension modules behind megatron-core's fused masked softmax (``fusions/fused_softmax.py``), which
#: Megatron-LM's local transformer implementation uses unless ``--no-masked-softmax-fusion``.
FUSED_SOFTMAX_MODULES = ("scaled_upper_triang_masked_softmax_cuda", "scaled_masked_softmax_cuda")


def is_checkout(mlm: Path) -> bool:
    return (Path(mlm) / "megatron" / "training" / "__init__.py").is_file()


def make_helpers_command(mlm: Path) -> list[str]:
    """The command that compiles the checkout's dataset helpers for this Python (Megatron-LM's own Makefile; its
    ``python3``/``python3-config`` defaults may name another interpreter, so the flags are given)."""
    includes = subprocess.run([sys.executable, "-m", "pybind11", "--includes"], capture_output=True, text=True)
    cppflags = includes.stdout.strip() if includes.returncode == 0 else "$(python -m pybind11 --includes)"
    return ["make", "-C", str(Path(mlm) / HELPERS_DIR), f"CPPFLAGS={cppflags}",
            f"LIBEXT={sysconfig.get_config_var('EXT_SUFFIX')}"]


def _load_wheel_helpers(directory: Path) -> Optional[Path]:
    """Import the installed megatron-core's compiled helpers as ``megatron.core.datasets.helpers_cpp`` when their
    source is the checkout's; the file loaded, or None."""
    wheel = importlib.util.find_spec("megatron.core.datasets")
    if wheel is None or not wheel.submodule_search_locations:
        return None
    wheel_dir = Path(list(wheel.submodule_search_locations)[0])
    compiled = sorted(wheel_dir.glob("helpers_cpp*.so"))
    source = wheel_dir / "helpers.cpp"
    if not compiled or not source.is_file() or source.read_bytes() != (directory / "helpers.cpp").read_bytes():
        return None
    name = "megatron.core.datasets.helpers_cpp"
    loader = importlib.machinery.ExtensionFileLoader(name, str(compiled[0]))
    spec = importlib.util.spec_from_file_location(name, str(compiled[0]), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[name] = module
    return compiled[0]


def ensure_dataset_helpers(mlm: Path, build: bool = True, use_wheel: bool = True) -> str:
    """Make the checkout's ``megatron.core.datasets.helpers_cpp`` importable for this Python; returns how.

    Builds it with :func:`make_helpers_command` when missing (``build``); where that cannot run and ``use_wheel``,
    loads megatron-core's own compiled helpers into this process when their source is the same (enough for code
    that runs here; not for a subprocess). Raises :class:`RegmixError` with the exact command otherwise."""
    directory = Path(mlm) / HELPERS_DIR
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    if (directory / f"helpers_cpp{suffix}").is_file():
        return "compiled in the checkout"
    command = make_helpers_command(mlm)
    reason = "not asked to build"
    if build and os.access(directory, os.W_OK):
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode == 0 and (directory / f"helpers_cpp{suffix}").is_file():
            return "built: " + " ".join(command)
        reason = f"the build failed: {(proc.stderr or proc.stdout).strip()[-400:]}"
    elif build:
        reason = f"{directory} is not writable"
    loaded = _load_wheel_helpers(directory) if use_wheel else None
    if loaded is not None:
        return f"{reason}; using megatron-core's compiled helpers ({loaded}), same helpers.cpp"
    raise RegmixError(f"{mlm} has no dataset helpers compiled for this Python ({reason}); build them with: "
                      + shlex.join(command))


_PYTHON3_CONFIG = """#!/bin/sh
# python3-config for {python} (written by regmix-megatron): what Megatron-LM's dataset Makefile asks.
case "$1" in
  --extension-suffix) exec {python} -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))' ;;
  --includes) exec {python} -c 'import sysconfig; p = sysconfig.get_paths()
print("-I" + p["include"], "-I" + p["platinclude"])' ;;
  *) echo "python3-config: only --extension-suffix and --includes are answered here" >&2; exit 2 ;;
esac
"""


def interpreter_bin(directory: Path) -> Path:
    """``directory`` with ``python3`` (this interpreter) and ``python3-config`` (answering for it): put it first on
    ``PATH`` of a Megatron-LM script, so that its ``compile_helpers()`` builds for, and finds, this Python."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    python = shlex.quote(sys.executable)
    # A script, not a link: a venv's interpreter finds its venv from the path it is started by.
    for name, text in (("python3", f'#!/bin/sh\nexec {python} "$@"\n'),
                       ("python3-config", _PYTHON3_CONFIG.format(python=python))):
        (directory / name).write_text(text, encoding="utf-8")
        (directory / name).chmod(0o755)
    return directory


def missing_training_modules() -> list[str]:
    """The modules of :data:`TRAINING_MODULES` this Python cannot import."""
    return [name for name in TRAINING_MODULES if importlib.util.find_spec(name) is None]


def fused_softmax_available() -> bool:
    """True if apex's fused masked-softmax extensions import (megatron-core's local attention then fuses)."""
    return all(importlib.util.find_spec(name) is not None for name in FUSED_SOFTMAX_MODULES)


def nvcc_missing_reason() -> Optional[str]:
    """Why ``pretrain`` would fail at ``$CUDA_HOME/bin/nvcc -V``, or None when torch finds a CUDA toolkit with
    nvcc (``torch.utils.cpp_extension.CUDA_HOME``: ``$CUDA_HOME``/``$CUDA_PATH``, the ``nvcc`` on ``PATH``, or
    ``/usr/local/cuda``)."""
    from torch.utils import cpp_extension

    home = cpp_extension.CUDA_HOME
    if home is None:
        return ("no CUDA toolkit found (torch's CUDA_HOME is None: no $CUDA_HOME, no nvcc on PATH, no "
                "/usr/local/cuda); Megatron-LM's pretrain runs $CUDA_HOME/bin/nvcc -V at start-up: install the "
                "CUDA toolkit (or pip install nvidia-cuda-nvcc for torch's CUDA major) and set CUDA_HOME")
    if not (Path(home) / "bin" / "nvcc").is_file():
        return f"CUDA_HOME={home} has no bin/nvcc (Megatron-LM's pretrain runs it at start-up)"
    return None
