"""The machine gpu-check runs on: its GPUs as torch sees them, why torch sees none where ``nvidia-smi`` does, and
which of the checks' dependencies it lacks (with the reason, e.g. Transformer Engine's import error)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class GpuInfo:
    """What the plan depends on (``detect_gpu`` on a GPU machine; constructed in tests)."""

    name: str
    capability: tuple
    count: int
    cuda_version: Optional[str] = None
    """``torch.version.cuda``."""


def detect_gpu() -> Optional[GpuInfo]:
    """This machine's GPUs as torch sees them, or None without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return None
    return GpuInfo(name=torch.cuda.get_device_name(0), capability=tuple(torch.cuda.get_device_capability(0)),
                   count=torch.cuda.device_count(), cuda_version=torch.version.cuda)


#: The dependencies a check can need, by the name ``--allow-missing`` takes: what each is and what needs it.
DEPENDENCIES = {
    "te": "Transformer Engine (transformer_engine.pytorch imports): the TE layer spec and FP8 of our trainer and "
          "of Megatron-LM (the 1B shell's settings)",
    "megatron-lm": "a Megatron-LM checkout (--megatron-lm or $REGMIX_MEGATRON_LM) and what its megatron.training "
                   "imports besides megatron-core (six, pydantic, einops; pybind11 for its dataset helpers: "
                   "pip install -e .[megatron-lm])",
    "nvcc": "a CUDA toolkit's nvcc at torch's CUDA_HOME: Megatron-LM's pretrain runs `$CUDA_HOME/bin/nvcc -V` at "
            "start-up, whatever its flags",
    "compiler": "a C compiler and Python.h: torch.compile builds megatron-core's fused bias-dropout-add and "
                "bias-SwiGLU kernels with them (the TE layer spec; Megatron-LM always compiles them at start-up)",
}


@dataclass(frozen=True)
class Dependencies:
    """Which dependencies this machine lacks, and why (``probe_dependencies`` on a GPU machine)."""

    missing: dict = field(default_factory=dict)
    """Name (a key of :data:`DEPENDENCIES`) -> why it is missing: the import error's text, the path looked at."""
    fused_softmax: bool = False
    """apex's fused masked-softmax kernels import: Megatron-LM's local implementation keeps its softmax fusion
    (else it runs with ``--no-masked-softmax-fusion``)."""
    found: dict = field(default_factory=dict)
    """Name -> what was found (a version, a path), for the header."""

    def has(self, name: str) -> bool:
        return name not in self.missing

    def lacking(self, needs: tuple) -> tuple:
        """The names of ``needs`` that are missing here."""
        return tuple(n for n in needs if n in self.missing)


def format_dependencies(deps: Dependencies) -> str:
    lines = ["dependencies:"]
    for name in DEPENDENCIES:
        state = f"MISSING: {deps.missing[name]}" if name in deps.missing else f"found {deps.found.get(name, '')}"
        lines.append(f"  {name:11s} {state.rstrip()}")
    lines.append("  apex fused softmax: " + ("found (Megatron-LM's local implementation fuses its softmax)"
                                             if deps.fused_softmax else "no (Megatron-LM's local implementation runs "
                                             "with --no-masked-softmax-fusion; no shipped path needs it)"))
    return "\n".join(lines)




def _version_of(*distributions: str) -> Optional[str]:
    from importlib import metadata

    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _probe_megatron_lm(megatron_lm: Optional[str]) -> tuple:
    """``(missing reason or None, what was found)`` for the ``megatron-lm`` dependency."""
    from ..megatron.checkout import is_checkout, missing_training_modules

    if not megatron_lm:
        return "no Megatron-LM checkout (give --megatron-lm or set REGMIX_MEGATRON_LM)", ""
    if not is_checkout(Path(megatron_lm)):
        return f"{megatron_lm} is not a Megatron-LM checkout (no megatron/training/ there)", ""
    modules = missing_training_modules()
    if modules:
        return (f"Megatron-LM's megatron.training needs {', '.join(modules)}, which do not import here: "
                "pip install -e .[megatron-lm]"), ""
    return None, str(Path(megatron_lm).resolve())


def _probe_compiler() -> tuple:
    from ..megatron.model import COMPILE_DISABLE_ENV, compiled_fusions_unavailable_reason

    if os.environ.get(COMPILE_DISABLE_ENV) == "1":
        return f"{COMPILE_DISABLE_ENV}=1 is set here: torch.compile is off, its fused kernels run uncompiled", ""
    environ = {k: v for k, v in os.environ.items() if k != COMPILE_DISABLE_ENV}
    reason = compiled_fusions_unavailable_reason(environ)
    cc = environ.get("CC") or next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), "")
    return reason, "" if reason else f"({shutil.which(cc) or cc} and Python.h)"


def probe_dependencies(megatron_lm: Optional[str]) -> Dependencies:
    """Which of :data:`DEPENDENCIES` this machine has, each missing one with the reason (the import error's text
    for Transformer Engine)."""
    from ..megatron.checkout import fused_softmax_available, nvcc_missing_reason
    from ..megatron.model import transformer_engine_import_error

    missing, found = {}, {}
    te_error = transformer_engine_import_error()
    if te_error:
        missing["te"] = te_error
    else:
        found["te"] = _version_of("transformer_engine", "transformer-engine", "transformer_engine_torch") or ""
    for name, (reason, what) in (("megatron-lm", _probe_megatron_lm(megatron_lm)), ("compiler", _probe_compiler())):
        if reason:
            missing[name] = reason
        else:
            found[name] = what
    nvcc = nvcc_missing_reason()
    if nvcc:
        missing["nvcc"] = nvcc
    else:
        from torch.utils import cpp_extension

        found["nvcc"] = str(Path(cpp_extension.CUDA_HOME) / "bin" / "nvcc")
    return Dependencies(missing=missing, fused_softmax=fused_softmax_available(), found=found)


# ---- a GPU torch does not see ---------------------------------------------------------------------------------

#: The oldest NVIDIA driver branch that runs builds of each CUDA major (minor-version compatibility: one driver of
#: that branch or newer runs every minor release of the major).
MIN_DRIVER = {11: 450, 12: 525, 13: 580}


@dataclass(frozen=True)
class SmiReport:
    """What ``nvidia-smi`` says: its GPUs, the driver, the newest CUDA the driver supports."""

    names: tuple = ()
    driver: Optional[str] = None
    cuda: Optional[str] = None
    error: str = ""
    """Its output when it failed."""


def query_nvidia_smi() -> Optional[SmiReport]:
    """``nvidia-smi``'s view of this machine, or None when there is no ``nvidia-smi``."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run([exe, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=60)
        header = subprocess.run([exe], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return SmiReport(error=str(exc))
    if proc.returncode != 0:
        return SmiReport(error=(proc.stdout + proc.stderr).strip()[-300:])
    rows = [[part.strip() for part in line.split(",")] for line in proc.stdout.splitlines() if line.strip()]
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header)
    return SmiReport(names=tuple(r[0] for r in rows), driver=rows[0][1] if rows and len(rows[0]) > 1 else None,
                     cuda=cuda.group(1) if cuda else None)


def _major(version: Optional[str]) -> Optional[int]:
    match = re.match(r"\s*(\d+)", version or "")
    return int(match.group(1)) if match else None


def explain_invisible_gpus(smi: SmiReport, torch_version: str, torch_cuda: Optional[str], init_error: str,
                           visible_devices: Optional[str]) -> str:
    """Why torch sees none of the GPUs ``nvidia-smi`` lists, and the fix (pure)."""
    supports = f", which supports CUDA up to {smi.cuda}" if smi.cuda else ""
    lines = [f"gpu-check: nvidia-smi sees {len(smi.names)} GPU(s) ({', '.join(sorted(set(smi.names)))}; driver "
             f"{smi.driver}{supports}) but torch does not (torch.cuda.is_available() is False), so nothing was run."]
    need = MIN_DRIVER.get(_major(torch_cuda))
    if torch_cuda is None:
        lines.append(f"Why: torch {torch_version} is a CPU-only build (torch.version.cuda is None). Fix: install a "
                     "CUDA build of torch for this driver (PyPI's torch 2.13.0 is a CUDA 13 build, which needs driver "
                     "580 or newer; https://download.pytorch.org/whl/cu126 has CUDA 12.6 builds), or use an existing "
                     "CUDA stack with `make gpu-venv`.")
    elif visible_devices is not None and visible_devices.strip() in ("", "-1", "none", "void"):
        lines.append(f"Why: CUDA_VISIBLE_DEVICES={visible_devices!r} hides every GPU from torch. Fix: unset it.")
    elif need is not None and _major(smi.driver) is not None and _major(smi.driver) < need:
        lines.append(f"Why: torch {torch_version} is built for CUDA {torch_cuda}, whose builds need NVIDIA driver "
                     f"{need} or newer; this driver is {smi.driver}. Fix: upgrade the driver to {need}+, or install "
                     f"a torch built for CUDA {smi.cuda or 'the driver supports'} or older.")
    else:
        lines.append(f"torch {torch_version} is built for CUDA {torch_cuda}; driver {smi.driver} should run it.")
    if init_error:
        lines.append(f"torch says: {init_error}")
    return "\n".join(lines)


NO_GPU = ("gpu-check: no CUDA GPU is visible to torch (torch.cuda.is_available() is False) and nvidia-smi sees "
          "none, so nothing was run. Run `make gpu-check` on a GPU machine; `--plan --gpus N --capability X.Y` "
          "shows what it would run there.")


def explain_no_gpu() -> tuple:
    """``(message, exit code)`` when torch sees no GPU: 1 when ``nvidia-smi`` sees one (with why torch does not),
    else 0 (a machine without GPUs)."""
    import torch

    smi = query_nvidia_smi()
    if smi is None or not smi.names:
        extra = f" (nvidia-smi: {smi.error})" if smi is not None and smi.error else ""
        return NO_GPU + extra, 0
    try:
        torch.cuda.init()
        init_error = ""
    except Exception as exc:  # torch's own account of why CUDA does not initialize
        init_error = f"{type(exc).__name__}: {exc}"
    return explain_invisible_gpus(smi, torch.__version__, torch.version.cuda, init_error,
                                  os.environ.get("CUDA_VISIBLE_DEVICES")), 1
