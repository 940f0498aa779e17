"""tools/gpu_wheels.py: the wheels a GPU machine without internet needs, torch left out (the download itself needs
the package registries: it was run by hand, docs/LOG.md 2026-12-06)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import gpu_wheels  # noqa: E402


def item(name, version, *requires):
    return {"metadata": {"name": name, "version": version, "requires_dist": list(requires)}}


def test_what_the_pins_need_without_going_through_torch():
    report = {"install": [
        item("megatron-core", "0.16.1", "torch>=2.6.0", "numpy", "packaging>=24.2", 'tqdm; extra == "dev"'),
        item("torch", "2.11.0", "filelock", "sympy>=1.13.3", 'nvidia-nccl-cu13==2.28.9; platform_system == "Linux"',
             "typing-extensions>=4.10.0"),
        item("filelock", "3.20.0"), item("sympy", "1.14.0", "mpmath"), item("mpmath", "1.3.0"),
        item("nvidia-nccl-cu13", "2.28.9"), item("numpy", "2.4.6"), item("packaging", "26.4"),
        item("pydantic", "2.14.4", "typing-extensions>=4.14.1", 'email-validator>=2.0.0; extra == "email"',
             'tomli; python_version < "3.11"'),
        item("typing-extensions", "4.16.0"), item("tqdm", "4.70.1"), item("tomli", "2.2.1"),
    ]}
    needed = gpu_wheels.needed(report, ["megatron-core==0.16.1", "pydantic==2.14.4"], "3.12")
    # torch and what only torch needs are the GPU machine's; typing-extensions stays: pydantic needs it too;
    # extras not asked for and markers false for Python 3.12 drop out
    assert needed == {"megatron-core": "0.16.1", "numpy": "2.4.6", "packaging": "26.4", "pydantic": "2.14.4",
                      "typing-extensions": "4.16.0"}
    assert "tomli" in gpu_wheels.needed(report, ["pydantic"], "3.10")


def test_the_subsets_are_setup_pys_pins():
    pins = gpu_wheels.setup_pins()
    assert "megatron-core==0.16.1" in pins and "pybind11==3.1.0" in pins and "numpy==2.4.6" in pins
    assert not any(p.startswith("torch") for p in pins)  # the mcore extra: megatron-core without a torch pin
    small = gpu_wheels.subset_pins("gpu-check")
    assert set(small) < set(pins) and {"megatron-core==0.16.1", "sentencepiece==0.2.3", "PyYAML==6.0.4"} <= set(small)
    assert not any(p.split("==")[0] in ("pandas", "pyarrow", "scipy", "llvmlite") for p in small)
