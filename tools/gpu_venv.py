#!/usr/bin/env python3
"""Install regmix-megatron into a venv on top of an existing CUDA stack, reusing its torch (and Transformer Engine,
apex where present), never replacing them: ``make gpu-venv`` runs it with the stack's Python.

    python3 tools/gpu_venv.py [--venv .venv-gpu] [--wheels DIR]        (in e.g. nvcr.io/nvidia/pytorch:25.11-py3)

1. Checks the stack against megatron-core 0.16.1 (our pin): torch>=2.6.0 (its ``Requires-Dist``) built for CUDA,
   Transformer Engine, when installed, in ``>=2.9.0a0,<2.12.0`` (its ``dev`` extra), Python 3.11 or newer (our pins:
   numpy 2.4.6, pandas 3.1.1, scipy 1.17.1, ... need it). Outside that it refuses, with the fix, before creating
   anything (exit 2).
2. Creates the venv with ``--system-site-packages`` (and, when this Python is itself a venv, a ``.pth`` adding its
   site-packages, which ``--system-site-packages`` would not see), so the stack's packages stay visible.
3. Writes ``<venv>/constraints.txt`` pinning every installed package of the stack (torch, triton, torchvision,
   Transformer Engine, apex, flash-attn, NVIDIA's ``nvidia-*`` and ``cuda-*`` wheels) at its installed version, and
   installs the package with the ``mcore`` (megatron-core without torch) and ``megatron-lm`` extras under those
   constraints: pip keeps what is there, or stops on a conflict. NVIDIA's containers set ``PIP_CONSTRAINT`` to their
   own pins of every package; it is cleared for this venv (its packages shadow the container's only inside it),
   as Megatron-LM's own CI image does.
4. Checks that the venv's torch is the stack's (same version, same files) and that nothing of the stack was
   installed into the venv.

``--wheels DIR`` installs offline from a folder of wheels (``tools/gpu_wheels.py`` downloads them);
``--requirements FILE`` installs those pins instead of the package (tools then run from the repository, as
``tools/gpu_wheels.py run`` does). Standard library only: the stack's Python need not have anything of ours.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import site
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: megatron-core 0.16.1's declared ranges (its METADATA: ``Requires-Dist: torch>=2.6.0`` and, in its ``dev`` extra,
#: ``transformer-engine[core_cu13,pytorch]<2.12.0,>=2.9.0a0``); tests/test_tools_gpu_venv.py checks them against the
#: installed megatron-core.
TORCH_SPEC = ">=2.6.0"
TE_SPEC = ">=2.9.0a0,<2.12.0"
MIN_PYTHON = (3, 11)
#: The container this was checked against (README: "On a GPU machine").
CONTAINER = "nvcr.io/nvidia/pytorch:25.11-py3"
TE_DISTRIBUTIONS = ("transformer-engine", "transformer-engine-torch", "transformer-engine-cu12",
                    "transformer-engine-cu13")
#: Installed packages of the CUDA stack that the venv must reuse as they are.
STACK = re.compile(r"^(torch|torchvision|torchaudio|triton|pytorch-triton|transformer-engine(-.*)?|apex|"
                   r"flash-attn(-.*)?|nvidia-.*|cuda-.*)$")
EXTRAS = "mcore,megatron-lm"


class StackError(Exception):
    """The stack cannot be reused: the message says why and how to fix it."""


def _specifier(spec: str):
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # pip vendors it; the stack's Python has pip
        from pip._vendor.packaging.specifiers import SpecifierSet
    return SpecifierSet(spec)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict:
    """Normalized name -> version of every distribution this Python sees (the first one found wins, as for pip)."""
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and normalize(name) not in out:
            out[normalize(name)] = dist.version
    return out


def check_stack(python: tuple, torch_version: str | None, torch_cuda: str | None, versions: dict) -> list:
    """Problems that stop the install (empty: the stack fits megatron-core 0.16.1), each with its fix."""
    if python < MIN_PYTHON:
        return [f"Python {'.'.join(map(str, python))} is older than our pins need (3.11: numpy 2.4.6, pandas 3.1.1, "
                f"scipy 1.17.1, ...): use a stack with Python 3.11 or newer, e.g. {CONTAINER} (Python 3.12)"]
    problems = []
    if torch_version is None:
        return [f"no torch here to reuse: run this with the Python of the CUDA stack (e.g. {CONTAINER}), or use "
                "`make venv` on a machine without one (it installs the pinned torch 2.13.0)"]
    if torch_cuda is None:
        problems.append(f"torch {torch_version} is a CPU-only build: nothing to reuse on a GPU; use a CUDA stack "
                        f"(e.g. {CONTAINER}) or `make venv`")
    elif not _specifier(TORCH_SPEC).contains(torch_version, prereleases=True):
        problems.append(f"torch {torch_version} is outside what megatron-core 0.16.1 supports (torch{TORCH_SPEC}): "
                        f"use {CONTAINER} (torch 2.10) or a torch 2.6+ built for your CUDA")
    te = next((versions[n] for n in TE_DISTRIBUTIONS if n in versions), None)
    if te is not None and not _specifier(TE_SPEC).contains(te, prereleases=True):
        problems.append(f"Transformer Engine {te} is outside what megatron-core 0.16.1 supports "
                        f"(transformer-engine{TE_SPEC}): use {CONTAINER} (Transformer Engine 2.9), or install one in "
                        "range against this torch: pip install --no-build-isolation "
                        "'transformer-engine[pytorch]==2.11.0'")
    return problems


def constraints(versions: dict) -> str:
    """``name==version`` for every installed package of the stack (:data:`STACK`)."""
    return "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()) if STACK.match(name))


def _torch() -> tuple:
    """``(torch.__version__, torch.version.cuda, torch's folder)`` of this Python, or Nones."""
    try:
        import torch
    except ImportError:
        return None, None, None
    return str(torch.__version__), torch.version.cuda, str(Path(torch.__file__).resolve().parent)


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _sees_system_site() -> bool:
    """True if this Python sees its installation's site-packages (not a venv, or one made with them)."""
    if sys.prefix == sys.base_prefix:
        return True
    cfg = Path(sys.prefix) / "pyvenv.cfg"
    text = cfg.read_text() if cfg.is_file() else ""
    return bool(re.search(r"^include-system-site-packages\s*=\s*true\s*$", text, re.M | re.I))


def create_venv(venv: Path) -> None:
    """A venv that sees what this Python sees, after its own packages: ``--system-site-packages`` where this Python
    sees its installation's, and, when this Python is a venv itself (a team's environment with CUDA torch), a
    ``.pth`` that adds that venv's site-packages as a site directory (its own ``.pth`` files processed), which
    ``--system-site-packages`` alone would not see."""
    if not _venv_python(venv).exists():  # without its own pip (and setuptools): it uses the stack's
        system = ["--system-site-packages"] if _sees_system_site() else []
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", *system, str(venv)], check=True)
    if sys.prefix != sys.base_prefix:
        target = subprocess.run([str(_venv_python(venv)), "-c", "import site; print(site.getsitepackages()[0])"],
                                capture_output=True, text=True, check=True).stdout.strip()
        lines = [f"import site; site.addsitedir({p!r})\n" for p in site.getsitepackages()]
        (Path(target) / "_regmix_base_site.pth").write_text("".join(lines))


#: Exit 0 if setuptools can build our editable install without build isolation (bdist_wheel: setuptools 70.1+,
#: or the wheel package).
_CAN_BUILD = ("import importlib.util, sys, setuptools; "
              "v = tuple(int(x) for x in setuptools.__version__.split('.')[:2]); "
              "sys.exit(0 if v >= (70, 1) or importlib.util.find_spec('wheel') else 1)")


def pip_install(venv: Path, constraints_file: Path, wheels: str | None, requirements: str | None = None) -> None:
    """Our package, editable, with :data:`EXTRAS` (or only the pins of ``requirements``), by the stack's pip run
    from the venv's python (it installs into the venv), under ``constraints_file``; setuptools first where the
    stack has none recent enough to build the editable install."""
    env = {**os.environ, "PIP_CONSTRAINT": ""}
    offline = ["--no-index", "--find-links", wheels] if wheels else []
    python = str(_venv_python(venv))
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-c", str(constraints_file), *offline]
    if requirements:
        _pip(pip + ["-r", requirements], env)
        return
    if subprocess.run([python, "-c", _CAN_BUILD], capture_output=True).returncode != 0:
        _pip(pip + ["setuptools>=70.1"], env)
    _pip(pip + ["--no-build-isolation", "-e", f"{REPO}[{EXTRAS}]"], env)


def _pip(cmd: list, env: dict) -> None:
    if subprocess.run(cmd, env=env).returncode != 0:
        raise StackError(f"`{' '.join(cmd)}` failed (its output is above); nothing of the stack was changed: the venv "
                         "holds only what pip installed into it")


def verify(venv: Path, torch_version: str, torch_dir: str) -> str:
    """The venv's torch is the stack's: same version, same files; raises :class:`StackError` otherwise."""
    probe = "import json, torch; from pathlib import Path; print(json.dumps([str(torch.__version__), " \
            "str(Path(torch.__file__).resolve().parent)]))"
    out = subprocess.run([str(_venv_python(venv)), "-c", probe], capture_output=True, text=True)
    if out.returncode != 0:
        raise StackError(f"the venv's python cannot import torch: {out.stderr.strip()[-400:]}")
    version, folder = json.loads(out.stdout.strip().splitlines()[-1])
    if (version, folder) != (torch_version, torch_dir):
        raise StackError(f"the venv's torch is {version} at {folder}, not the stack's {torch_version} at {torch_dir}: "
                         "pip replaced it; remove the venv and report this")
    return f"torch {version} from {folder}"


def main(argv: list | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--venv", default=str(REPO / ".venv-gpu"), help="the venv to create or update")
    p.add_argument("--wheels", help="install offline from this folder of wheels (tools/gpu_wheels.py)")
    p.add_argument("--requirements", help="install these pins instead of the package (tools/gpu_wheels.py run)")
    p.add_argument("--check", action="store_true", help="only check the stack")
    args = p.parse_args(argv)
    torch_version, torch_cuda, torch_dir = _torch()
    versions = installed()
    problems = check_stack(sys.version_info[:2], torch_version, torch_cuda, versions)
    if problems:
        print("gpu_venv: error: this stack cannot be reused:\n" + "\n".join(f"  - {x}" for x in problems),
              file=sys.stderr)
        return 2
    te = next((f"{n} {versions[n]}" for n in TE_DISTRIBUTIONS if n in versions), "no Transformer Engine")
    print(f"gpu_venv: reusing torch {torch_version} (CUDA {torch_cuda}) from {torch_dir}; {te}; "
          f"{'apex ' + versions['apex'] if 'apex' in versions else 'no apex'}")
    if args.check:
        return 0
    venv = Path(args.venv).resolve()
    create_venv(venv)
    constraints_file = venv / "constraints.txt"
    constraints_file.write_text(constraints(versions))
    try:
        pip_install(venv, constraints_file, args.wheels, args.requirements)
        print(f"gpu_venv: {venv} ready: {verify(venv, torch_version, torch_dir)}, its stack pinned in "
              f"{constraints_file}; run `make gpu-check` (or {venv}/bin/python tools/gpu_check.py)")
    except StackError as exc:
        print(f"gpu_venv: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
