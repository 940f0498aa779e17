"""``make gpu-venv`` (tools/gpu_venv.py): the project on top of an existing CUDA stack, reusing its torch.

The ranges it enforces are megatron-core's own (read from the installed megatron-core's metadata) and
``python_requires`` is what the pins' own metadata declares. The install itself runs on a stand-in stack: a venv
whose torch is a stand-in package (``torch 2.11.0+cu130`` in its dist-info, ``torch.version.cuda`` 13.0) placed
before everything else it sees; the install, offline, must keep that torch.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import gpu_venv  # noqa: E402


def _specifier(spec: str):
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(spec)


def test_the_ranges_are_megatron_cores_own():
    from packaging.requirements import Requirement

    requires = [Requirement(r) for r in metadata.requires("megatron-core")]
    assert metadata.version("megatron-core") == "0.16.1"
    torch = next(r for r in requires if r.name == "torch")
    te = next(r for r in requires if r.name == "transformer-engine")
    assert torch.specifier == _specifier(gpu_venv.TORCH_SPEC)
    assert te.specifier == _specifier(gpu_venv.TE_SPEC)


def _setup_lists() -> dict:
    """The pin lists and python_requires of setup.py, read without running it."""
    tree = ast.parse((REPO / "setup.py").read_text())
    lists = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            lists[node.targets[0].id] = [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    lists["python_requires"] = next(k.value.value for k in call.keywords if k.arg == "python_requires")
    return lists


def test_python_requires_is_what_the_pins_need():
    """The highest Requires-Python lower bound among the pins installed here (each at its pinned version) is
    setup.py's python_requires and the gpu-venv's minimum."""
    from packaging.requirements import Requirement

    lists = _setup_lists()
    bounds = {}
    for pin in lists["CORE"] + lists["DEV"] + lists["MCORE"] + lists["MEGATRON_LM"]:
        req = Requirement(pin)
        version = next(iter(req.specifier)).version
        assert metadata.version(req.name) == version, pin  # `make venv` installs the pins
        declared = metadata.metadata(req.name).get("Requires-Python") or ""
        for clause in _specifier(declared):
            if clause.operator == ">=":
                bounds[req.name] = tuple(int(x) for x in clause.version.split(".")[:2])
    need = max(bounds.values())
    assert need == (3, 11) and bounds["numpy"] == bounds["pandas"] == bounds["scipy"] == need
    assert lists["python_requires"] == ">=3.11" and gpu_venv.MIN_PYTHON == need
    te = Requirement(lists["GPU"][0])
    assert te.name == "transformer-engine" and str(next(iter(te.specifier)).version) == "2.11.0"
    assert te.specifier.contains("2.11.0") and _specifier(gpu_venv.TE_SPEC).contains("2.11.0")
    assert "pybind11==3.1.0" in lists["MEGATRON_LM"]  # Megatron-LM's dataset helpers compile with it


def test_the_stack_check_refuses_what_megatron_core_does_not_support_with_the_fix():
    ok = gpu_venv.check_stack((3, 12), "2.10.0a0+b4e4ee81d3", "13.0", {"transformer-engine": "2.9.0+70f5366"})
    assert ok == []  # NVIDIA's 25.11 container: pre-release torch, TE with a local version
    assert gpu_venv.check_stack((3, 12), "2.11.0+cu130", "13.0", {}) == []  # no TE: fine (gpu-check says NOT TESTED)
    old = gpu_venv.check_stack((3, 12), "2.5.1", "12.4", {})
    assert len(old) == 1 and "torch>=2.6.0" in old[0] and gpu_venv.CONTAINER in old[0]
    te = gpu_venv.check_stack((3, 12), "2.11.0", "13.0", {"transformer-engine": "2.12.0"})
    assert len(te) == 1 and "transformer-engine>=2.9.0a0,<2.12.0" in te[0] and "==2.11.0" in te[0]
    assert gpu_venv.check_stack((3, 12), "2.11.0", "13.0", {"transformer-engine": "2.12.0rc1"})  # not 2.11.x either
    assert "CPU-only build" in gpu_venv.check_stack((3, 12), "2.13.0+cpu", None, {})[0]
    assert "Python 3.10" in gpu_venv.check_stack((3, 10), "2.11.0", "13.0", {})[0]
    assert "no torch here" in gpu_venv.check_stack((3, 12), None, None, {})[0]


def test_constraints_pin_the_stack_and_nothing_else():
    versions = {"torch": "2.10.0a0+b4e4ee81d3", "transformer-engine": "2.9.0+70f5366", "apex": "0.1",
                "nvidia-cudnn-cu12": "9.10.2.21", "triton": "3.5.0", "flash-attn": "2.7.4", "numpy": "1.26.4",
                "torchdata": "0.11.0", "pandas": "2.2.3"}
    lines = gpu_venv.constraints(versions).splitlines()
    assert lines == ["apex==0.1", "flash-attn==2.7.4", "nvidia-cudnn-cu12==9.10.2.21", "torch==2.10.0a0+b4e4ee81d3",
                     "transformer-engine==2.9.0+70f5366", "triton==3.5.0"]


def _stand_in_stack(tmp_path: Path, torch_version: str, cuda: str | None, te: str | None = None) -> Path:
    """A venv standing for a CUDA stack: a stand-in torch first, then everything this test venv has (so that the
    install has nothing to download)."""
    base = tmp_path / "stack"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base)], check=True)
    site = Path(subprocess.run([str(base / "bin" / "python"), "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text(f"__version__ = {torch_version!r}\nfrom . import version\n")
    (site / "torch" / "version.py").write_text(f"__version__ = {torch_version!r}\ncuda = {cuda!r}\n")
    dists = [("torch", torch_version)] + ([("transformer_engine", te)] if te else [])
    for name, version in dists:
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "RECORD").write_text("")
    ours = subprocess.run([sys.executable, "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (site / "zz_test_venv.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return base


def test_gpu_venv_installs_on_a_stand_in_stack_and_keeps_its_torch(tmp_path):
    base = _stand_in_stack(tmp_path, "2.11.0+cu130", "13.0")
    venv, wheels = tmp_path / "gpu-venv", tmp_path / "no-wheels"
    wheels.mkdir()  # offline: anything pip would have to fetch (a replacement torch included) fails the install
    proc = subprocess.run([str(base / "bin" / "python"), str(REPO / "tools" / "gpu_venv.py"), "--venv", str(venv),
                           "--wheels", str(wheels)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "reusing torch 2.11.0+cu130 (CUDA 13.0)" in proc.stdout and "ready: torch 2.11.0+cu130 from" in proc.stdout
    assert "torch==2.11.0+cu130" in (venv / "constraints.txt").read_text().splitlines()
    # megatron-core itself needs a real torch to import: its installed version is read instead
    probe = ("import torch, regmix_megatron; from importlib.metadata import version; "
             "print(torch.__version__, torch.version.cuda, torch.__file__, version('megatron-core'), "
             "version('pybind11'), regmix_megatron.__file__)")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    version, cuda, where, mcore, pybind11, ours = out.stdout.split()
    assert (version, cuda) == ("2.11.0+cu130", "13.0") and Path(where).is_relative_to(base)
    assert (mcore, pybind11) == ("0.16.1", "3.1.0") and Path(ours).is_relative_to(REPO)
    assert not list(venv.glob("lib/python*/site-packages/torch*"))  # nothing of the stack installed into the venv
    naive = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--no-index",
                            "--no-build-isolation", "--find-links", str(wheels), "-e", f"{REPO}[megatron]"],
                           capture_output=True, text=True)
    said = naive.stdout + naive.stderr  # the `megatron` extra's torch pin would replace the stack's torch (or fail)
    assert ("Would install" in said and "torch-2.13.0" in said) or (naive.returncode != 0 and "torch==2.13.0" in said)


def test_gpu_venv_refuses_an_unsupported_stack_before_creating_anything(tmp_path):
    base = _stand_in_stack(tmp_path, "2.11.0+cu130", "13.0", te="2.12.0")
    proc = subprocess.run([str(base / "bin" / "python"), str(REPO / "tools" / "gpu_venv.py"), "--venv",
                           str(tmp_path / "gpu-venv")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Transformer Engine 2.12.0 is outside" in proc.stderr, proc.stderr
    assert not (tmp_path / "gpu-venv").exists()


def test_gpu_venv_installs_only_given_pins_keeping_the_stacks_torch(tmp_path):
    """``--requirements`` (what ``tools/gpu_wheels.py run`` passes): those pins, offline, and not the package."""
    base = _stand_in_stack(tmp_path, "2.11.0+cu130", "13.0")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("megatron-core==0.16.1\npyyaml==6.0.4\nsentencepiece==0.2.3\n")
    venv, wheels = tmp_path / "gpu-venv", tmp_path / "no-wheels"
    wheels.mkdir()
    proc = subprocess.run([str(base / "bin" / "python"), str(REPO / "tools" / "gpu_venv.py"), "--venv", str(venv),
                           "--wheels", str(wheels), "--requirements", str(requirements)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "ready: torch 2.11.0+cu130 from" in proc.stdout, proc.stdout[-3000:] + \
        proc.stderr[-3000:]
    assert not list(venv.glob("lib/python*/site-packages/regmix*"))  # the tools run from the repository


def _make_dry_run(*args: str) -> str:
    """What ``make -n ARGS`` would run, whitespace folded: as a top-level make (the suite itself may run under
    ``make test``, whose MAKELEVEL/MAKEFLAGS would make this one print "Entering directory" lines)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    dry = subprocess.run(["make", "--no-print-directory", "-n", *args], cwd=REPO, capture_output=True, text=True,
                         env=env)
    assert dry.returncode == 0, dry.stderr
    return " ".join(dry.stdout.split())


def test_make_gpu_venv_is_the_one_command_and_gpu_check_then_uses_it(tmp_path):
    assert _make_dry_run("gpu-venv", "PY=python3.12") == "python3.12 tools/gpu_venv.py --venv .venv-gpu"
    venv = tmp_path / "gpu-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    assert _make_dry_run("gpu-check", f"GPU_VENV={venv}", "GPU_CHECK_ARGS=--allow-missing te") == \
        f"{venv}/bin/python tools/gpu_check.py --allow-missing te"
