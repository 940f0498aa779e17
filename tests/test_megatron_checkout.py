"""A Megatron-LM checkout as our tools use it (regmix_megatron/megatron/checkout.py): its dataset helpers, the
``python3``/``python3-config`` its Makefile asks, what its ``megatron.training`` and ``pretrain`` need.

The tests that build from a checkout's own Makefile run only where ``REGMIX_MEGATRON_LM`` names one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from regmix_megatron.errors import RegmixError
from regmix_megatron.megatron import checkout

CHECKOUT = os.environ.get("REGMIX_MEGATRON_LM")
needs_checkout = pytest.mark.skipif(not CHECKOUT, reason="set REGMIX_MEGATRON_LM to a Megatron-LM checkout")
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")


def test_interpreter_bin_answers_for_this_python(tmp_path):
    bin_dir = checkout.interpreter_bin(tmp_path / "bin")
    prefix = subprocess.run([str(bin_dir / "python3"), "-c", "import sys; print(sys.prefix)"], capture_output=True,
                            text=True, check=True).stdout.strip()
    assert prefix == sys.prefix  # a venv's python stays in its venv (and sees its pybind11)
    config = [str(bin_dir / "python3-config")]
    assert subprocess.run(config + ["--extension-suffix"], capture_output=True, text=True).stdout.strip() == SUFFIX
    includes = subprocess.run(config + ["--includes"], capture_output=True, text=True).stdout
    assert f"-I{sysconfig.get_paths()['include']}" in includes.split()
    assert subprocess.run(config + ["--ldflags"], capture_output=True, text=True).returncode == 2


def test_what_megatron_training_needs_is_named(monkeypatch):
    monkeypatch.setattr(checkout, "TRAINING_MODULES", ("six", "no_such_module_regmix"))
    assert checkout.missing_training_modules() == ["no_such_module_regmix"]
    assert checkout.fused_softmax_available() is False  # apex's CUDA extension cannot be built here


def test_pretrains_nvcc_is_looked_for_where_torch_looks(monkeypatch, tmp_path):
    from torch.utils import cpp_extension

    monkeypatch.setattr(cpp_extension, "CUDA_HOME", None)
    assert "no CUDA toolkit found" in checkout.nvcc_missing_reason()
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(tmp_path))
    assert checkout.nvcc_missing_reason() == f"CUDA_HOME={tmp_path} has no bin/nvcc (Megatron-LM's pretrain runs " \
                                             "it at start-up)"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvcc").write_text("")
    assert checkout.nvcc_missing_reason() is None


def _fresh_datasets(tmp_path: Path) -> Path:
    """A copy of the checkout with only its dataset helpers' source and Makefile (nothing compiled)."""
    fresh = tmp_path / "Megatron-LM"
    shutil.copytree(Path(CHECKOUT) / checkout.HELPERS_DIR, fresh / checkout.HELPERS_DIR,
                    ignore=shutil.ignore_patterns("helpers_cpp*", "__pycache__"))
    return fresh


@needs_checkout
def test_dataset_helpers_of_a_fresh_checkout_are_built_for_this_python(tmp_path):
    fresh = _fresh_datasets(tmp_path)
    how = checkout.ensure_dataset_helpers(fresh)
    assert how.startswith("built: make -C") and (fresh / checkout.HELPERS_DIR / f"helpers_cpp{SUFFIX}").is_file()
    assert checkout.ensure_dataset_helpers(fresh) == "compiled in the checkout"
    shutil.rmtree(fresh)
    fresh = _fresh_datasets(tmp_path)
    assert "megatron-core's compiled helpers" in checkout.ensure_dataset_helpers(fresh, build=False)
    with pytest.raises(RegmixError, match="build them with: make -C .*LIBEXT="):
        checkout.ensure_dataset_helpers(fresh, build=False, use_wheel=False)


@needs_checkout
def test_megatron_lms_own_compile_step_finds_them_with_interpreter_bin(tmp_path):
    """pretrain's ``compile_helpers()`` runs the checkout's Makefile with ``python3``/``python3-config`` from PATH:
    with :func:`interpreter_bin` first on PATH it builds for this Python, and finds a built helper up to date."""
    fresh = _fresh_datasets(tmp_path)
    directory = fresh / checkout.HELPERS_DIR
    path = f"{checkout.interpreter_bin(tmp_path / 'bin')}{os.pathsep}/usr/bin{os.pathsep}/bin"
    built = subprocess.run(["make", "-C", str(directory)], env={"PATH": path}, capture_output=True, text=True)
    assert built.returncode == 0 and (directory / f"helpers_cpp{SUFFIX}").is_file(), built.stderr[-2000:]
    again = subprocess.run(["make", "-C", str(directory)], env={"PATH": path}, capture_output=True, text=True)
    assert "Nothing to be done" in again.stdout
    system = subprocess.run(["python3", "-c", "import pybind11"], env={"PATH": "/usr/bin:/bin"}, capture_output=True)
    if system.returncode != 0:  # without it, the system's python3 (no pybind11) is what the Makefile would ask
        (directory / f"helpers_cpp{SUFFIX}").unlink()
        bare = subprocess.run(["make", "-C", str(directory)], env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                              text=True)
        assert bare.returncode != 0 and "pybind11" in bare.stdout + bare.stderr
