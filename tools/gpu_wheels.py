#!/usr/bin/env python3
"""Wheels for a GPU machine without internet that has its own CUDA torch, and the one command that uses them there.

On a machine with the package registries:

    python3 tools/gpu_wheels.py download gpu_wheels/ [--python 3.12] [--torch 2.11.0] [--subset gpu-check]

resolves setup.py's pins for that Python on manylinux x86_64, binary wheels only, as the GPU machine would with its
torch (``torch==<--torch>`` constrains the resolution; megatron-core 0.16.1 requires torch>=2.6.0), and downloads
every wheel of it except torch and what only torch needs (its ``nvidia-*`` CUDA libraries, triton, sympy, ...): the
machine has those. ``--subset all`` (default): every pin of ``make gpu-venv`` (``CORE``, ``mcore``,
``megatron-lm``; ~225 MiB for Python 3.12); ``--subset gpu-check``: what gpu-check's runs import (megatron-core,
numpy, sentencepiece, PyYAML, tqdm, and the ``megatron-lm`` extra; ~25 MiB). It fails if a pin has no wheel for that
Python, and writes the resolved pins to ``requirements.txt`` beside the wheels. Nothing of it is committed
(``gpu_wheels/`` is ignored).

On the GPU machine (the repository and the wheel folder copied there):

    python3 tools/gpu_wheels.py run gpu_wheels/ [gpu_check.py flags]

runs ``tools/gpu_venv.py --wheels gpu_wheels/ --requirements gpu_wheels/requirements.txt`` (a venv on top of the
machine's Python that keeps its torch; pip offline; our code runs from the repository) and then
``tools/gpu_check.py`` in that venv, allowing what the wheels cannot bring: Transformer Engine
(its torch extension is source-only on PyPI, every release: it must be compiled against the machine's torch with
nvcc and cuDNN), a Megatron-LM checkout and the nvcc its ``pretrain`` runs. What runs: the proxy in bf16 with the
local spec, resumed from its checkpoint and again under ``torchrun`` with one process, and the target-shaped model
in bf16 with the local spec; with more GPUs, the parallel layouts. Standard library only (and pip).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64")
#: setup.py's pin lists that ``make gpu-venv`` installs (``.[mcore,megatron-lm]``).
PIN_LISTS = ("CORE", "MCORE", "MEGATRON_LM")
#: What gpu-check's runs import (checked: its data preparation and a training run with every other pin blocked).
GPU_CHECK_PACKAGES = ("megatron-core", "numpy", "sentencepiece", "pyyaml", "tqdm")
#: What the wheels cannot bring, so gpu-check does not fail for it (tools/gpu_check.py --allow-missing).
NOT_IN_WHEELS = ("te", "megatron-lm", "nvcc")


def _packaging():
    try:
        from packaging import markers, requirements
    except ImportError:  # pip vendors it
        from pip._vendor.packaging import markers, requirements
    return markers, requirements


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def setup_pins(lists=PIN_LISTS) -> list:
    """The pins of setup.py's lists ``lists``, read without running setup.py."""
    values = {}
    for node in ast.parse((REPO / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            values[node.targets[0].id] = node.value
    pins = []
    for name in lists:
        for element in values[name].elts:
            if isinstance(element, ast.Constant):
                pins.append(element.value)
            elif isinstance(element, ast.Starred):
                pins += setup_pins((element.value.id,))
    return pins


def _marker_env(python: str) -> dict:
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def needed(report: dict, roots: list, python: str, exclude: str = "torch") -> dict:
    """Name -> version of the resolved packages that ``roots`` need without going through ``exclude``: the
    resolution of a pip ``--report``, walked from the roots along each package's ``Requires-Dist`` (markers
    evaluated for ``python`` on Linux x86_64, extras as requested)."""
    markers, requirements = _packaging()
    items = {normalize(i["metadata"]["name"]): i for i in report["install"]}
    env = _marker_env(python)
    todo = [(normalize(requirements.Requirement(r).name), set(requirements.Requirement(r).extras)) for r in roots]
    seen: dict = {}
    while todo:
        name, extras = todo.pop()
        if name == exclude or name not in items or (name in seen and extras <= seen[name]):
            continue
        seen[name] = seen.get(name, set()) | extras
        for text in items[name]["metadata"].get("requires_dist") or []:
            req = requirements.Requirement(text)
            if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in ({""} | extras)):
                todo.append((normalize(req.name), set(req.extras)))
    return {name: items[name]["metadata"]["version"] for name in sorted(seen)}


def _pip_target(python: str) -> list:
    return ["--only-binary=:all:", "--python-version", python, "--implementation", "cp", "--abi",
            f"cp{python.replace('.', '')}", *[a for p in PLATFORMS for a in ("--platform", p)]]


def _installed_torch_wheel(folder: Path, version: str) -> Path:
    """A wheel that stands, in the resolution only, for the torch the GPU machine has installed: its version with
    a local label (so that it sorts above the index's ``version``) and no dependencies (the machine has torch's)."""
    import zipfile

    name = f"torch-{version}+installed"
    path = folder / f"{name}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{name}.dist-info/METADATA",
                     f"Metadata-Version: 2.1\nName: torch\nVersion: {version}+installed\n")
        whl.writestr(f"{name}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: gpu_wheels\nRoot-Is-Purelib: true\n"
                     "Tag: py3-none-any\n")
        whl.writestr(f"{name}.dist-info/RECORD", "")
    return path


def subset_pins(subset: str) -> list:
    """The pins of ``--subset``: ``all`` or ``gpu-check``."""
    _, requirements = _packaging()
    if subset == "all":
        return setup_pins()
    return [pin for pin in setup_pins() if normalize(requirements.Requirement(pin).name) in GPU_CHECK_PACKAGES] \
        + setup_pins(("MEGATRON_LM",))


def download(dest: Path, python: str, torch: str, subset: str = "all") -> list:
    """Resolve and download (module docstring); ``[(name, version, wheel file)]``."""
    roots = subset_pins(subset)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        constraints, report = Path(tmp) / "constraints.txt", Path(tmp) / "report.json"
        constraints.write_text(f"torch=={torch}\n")
        _installed_torch_wheel(Path(tmp), torch)
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), "--target", str(Path(tmp) / "target"), *_pip_target(python),
                        "--find-links", tmp, "-c", str(constraints), *roots], check=True)
        wanted = needed(json.loads(report.read_text()), roots, python)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(dest),
                    *_pip_target(python), *[f"{n}=={v}" for n, v in wanted.items()]], check=True)
    wheels = {}
    for wheel in dest.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        wheels[(normalize(name), version)] = wheel
    missing = [f"{n}=={v}" for n, v in wanted.items() if (n, v) not in wheels]
    if missing:
        raise SystemExit(f"gpu_wheels: no wheel for Python {python} in {dest} for: {', '.join(missing)}")
    (dest / "requirements.txt").write_text("".join(f"{n}=={v}\n" for n, v in wanted.items()))
    return [(n, v, wheels[(n, v)]) for n, v in wanted.items()]


def run(wheels: Path, gpu_check_args: list) -> int:
    """On the GPU machine: the venv from the wheels (keeping the machine's torch), then gpu-check in it."""
    venv = REPO / ".venv-gpu"
    code = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_venv.py"), "--venv", str(venv), "--wheels",
                           str(wheels), "--requirements", str(wheels / "requirements.txt")]).returncode
    if code != 0:
        return code
    allow = [a for name in NOT_IN_WHEELS for a in ("--allow-missing", name)]
    return subprocess.run([str(venv / "bin" / "python"), str(REPO / "tools" / "gpu_check.py"), *allow,
                           *gpu_check_args]).returncode


def main(argv: list | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("download", help="download the wheels (a machine with the package registries)")
    d.add_argument("dest", type=Path)
    d.add_argument("--python", default="3.12", help="the GPU machine's Python (default 3.12)")
    d.add_argument("--torch", default="2.11.0", help="the GPU machine's torch (default 2.11.0)")
    d.add_argument("--subset", choices=("all", "gpu-check"), default="all",
                   help="every pin (default), or only what gpu-check's runs import")
    r = sub.add_parser("run", help="install them offline and run gpu-check (the GPU machine)")
    r.add_argument("wheels", type=Path)
    r.add_argument("gpu_check_args", nargs=argparse.REMAINDER, help="further tools/gpu_check.py flags")
    args = p.parse_args(argv)
    if args.command == "run":
        return run(args.wheels.resolve(), args.gpu_check_args)
    got = download(args.dest, args.python, args.torch, args.subset)
    total = sum(f.stat().st_size for _, _, f in got)
    for name, version, wheel in got:
        print(f"  {name:24s} {version:12s} {wheel.stat().st_size / 2**20:7.1f} MiB  {wheel.name}")
    print(f"gpu_wheels: {len(got)} wheels, {total / 2**20:.1f} MiB in {args.dest} (no torch: the GPU machine's own "
          f"torch {args.torch} is kept); there: python3 tools/gpu_wheels.py run {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
