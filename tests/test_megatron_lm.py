"""Our provider, and pretrain_gpt.py's own provider on our exported files, through a real Megatron-LM checkout.

Megatron-LM's ``megatron.training`` is not in the megatron-core wheel and cannot be downloaded here, so this
runs only where ``REGMIX_MEGATRON_LM`` names a checkout (with ``six`` and ``pydantic`` importable):

    REGMIX_MEGATRON_LM=~/Megatron-LM .venv/bin/python -m pytest tests/test_megatron_lm.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from regmix_megatron.export import export_mixture
from regmix_megatron.manifest import DomainRegistry
from regmix_megatron.mixture import Mixture

REPO = Path(__file__).resolve().parents[1]
CHECKOUT = os.environ.get("REGMIX_MEGATRON_LM")

pytestmark = pytest.mark.skipif(
    not CHECKOUT, reason="set REGMIX_MEGATRON_LM to a Megatron-LM checkout to run Megatron-LM's own data path")


def _check(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "check_megatron_lm.py"), "--megatron-lm", CHECKOUT,
                           *args], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("OK"), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_both_providers_build_the_same_blend_through_megatron_lm(indexed_fixture, tmp_path):
    registry = DomainRegistry.load(indexed_fixture.domains_json)
    weights = {name: 0.0 for name in registry.names}
    weights.update({registry.names[0]: 0.6, registry.names[1]: 0.3, registry.names[-1]: 0.1})
    mixture = Mixture.from_dict(weights)
    path = mixture.save(tmp_path / "mixture.json")
    exported = export_mixture(registry, mixture, tmp_path / "export")
    ours = _check("--regmix-domains", str(indexed_fixture.domains_json), "--regmix-mixture", str(path))
    theirs = _check("--regmix-domains", str(indexed_fixture.domains_json), "--per-split-data-args-path",
                    str(Path(exported["per_split_data_args"])))
    pattern = re.compile(r"^(train: .*|valid: .*|train samples per component: .*)$", re.M)
    assert pattern.findall(ours) == pattern.findall(theirs)
    assert f"valid: {len(registry.names)} set(s)" in ours  # one validation set per domain, zero weights included


def test_a_schedule_through_megatron_lms_data_path(indexed_fixture, tmp_path):
    """``--regmix-schedule``: Megatron-LM's ``build_train_valid_test_datasets`` and ``build_pretraining_data_loader``
    take the scheduled train set; a loader resumed at the phase boundary's consumed samples reads the boundary's
    samples."""
    from regmix_megatron.schedule import Schedule

    registry = DomainRegistry.load(indexed_fixture.domains_json)
    main = Mixture.from_array(registry.names, registry.prior("train"))
    final = Mixture.from_dict({n: (0.7 if n == registry.names[0] else 0.3 / (len(registry.names) - 1))
                               for n in registry.names})
    path = Schedule.from_phases([(0.5, main), (0.5, final)]).save(tmp_path / "schedule.json")
    out = _check("--regmix-domains", str(indexed_fixture.domains_json), "--regmix-schedule", str(path))
    assert "train: ScheduledDataset, 80 samples" in out  # 20 iterations x global batch 4
    assert "train phase 1: from step 0" in out and "train phase 2: from step 10" in out
    assert "train resumed at step 10 (consumed samples 40): first batch is samples 40..41" in out
    assert f"valid: {len(registry.names)} set(s)" in out
