"""Run Megatron-LM's own ``tools/preprocess_data.py`` from a checkout, on a CPU without triton.

Usage: ``megatron_lm_preprocess.py CHECKOUT -- FLAGS...`` (the flags of Megatron-LM's tool). Megatron-LM's
``megatron.training`` imports one megatron-core module that needs triton; it is replaced by a stub first (see
``tools/check_megatron_lm.py``). Nothing is downloaded: ``HF_HUB_OFFLINE`` is set.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(checkout: str, flags: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    """This script on ``flags`` in a subprocess (its output captured)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, __file__, checkout, "--", *flags], capture_output=True, text=True,
                          timeout=timeout, env=env)


def main(argv: list[str]) -> None:
    checkout = argv[0]
    flags = argv[argv.index("--") + 1:]
    sys.path.insert(0, str(REPO / "tools"))
    sys.path.insert(0, checkout)
    from check_megatron_lm import _without_triton

    _without_triton()
    script = str(Path(checkout) / "tools" / "preprocess_data.py")
    sys.argv = [script, *flags]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
