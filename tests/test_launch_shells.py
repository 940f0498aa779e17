"""The GPU launch shells of examples/, run without SLURM or GPUs (issue 15, items 3, 4 and 7).

Each shell runs with ``srun`` stubbed (helpers/launch_shells.py): the tests read the exact flags and environment
it would launch. Where ``REGMIX_MEGATRON_LM`` names a Megatron-LM checkout (as for tests/test_megatron_lm.py),
the 1B shell's flags also go through Megatron-LM's own ``parse_args`` + ``validate_args`` as rank 0 of the
shell's world size, with the GPU architecture query answering the given compute capability major, and its data
flags through Megatron-LM's dataset building (tools/check_megatron_lm.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.launch_shells import EXAMPLES, REPO, capture_launch
from helpers.megatron_lm_args import validate, validated_args

PRETRAIN_1B = EXAMPLES / "pretrain_gpt_1b_regmix.sh"
OURS_1B = EXAMPLES / "train_target_ours.sh"
CHECKOUT = os.environ.get("REGMIX_MEGATRON_LM")
needs_checkout = pytest.mark.skipif(
    not CHECKOUT, reason="set REGMIX_MEGATRON_LM to a Megatron-LM checkout to validate the shell's flags with it")


@pytest.mark.parametrize("shell", [PRETRAIN_1B, OURS_1B], ids=lambda p: p.name)
def test_tensor_parallel_shells_export_one_device_connection(shell, tmp_path):
    launch = capture_launch(shell, tmp_path)
    assert launch.env.get("CUDA_DEVICE_MAX_CONNECTIONS") == "1"


def test_1b_shell_decides_gradient_accumulation_fusion(tmp_path):
    flags = capture_launch(PRETRAIN_1B, tmp_path).after("pretrain_gpt.py")
    assert "--no-gradient-accumulation-fusion" in flags  # works without APEX's fused kernel
    with_apex = capture_launch(PRETRAIN_1B, tmp_path, {"GRADIENT_ACCUMULATION_FUSION": "1"})
    assert "--no-gradient-accumulation-fusion" not in with_apex.after("pretrain_gpt.py")


def test_1b_shell_waits_longer_than_megatron_lms_default_for_the_other_ranks(tmp_path):
    flags = capture_launch(PRETRAIN_1B, tmp_path).after("pretrain_gpt.py")
    assert _value(flags, "--distributed-timeout-minutes") == "60"
    longer = capture_launch(PRETRAIN_1B, tmp_path, {"DISTRIBUTED_TIMEOUT_MINUTES": "240"}).after("pretrain_gpt.py")
    assert _value(longer, "--distributed-timeout-minutes") == "240"


def test_1b_shell_validates_every_domain_and_has_no_test_split(tmp_path):
    launch = capture_launch(PRETRAIN_1B, tmp_path)
    flags = launch.after("pretrain_gpt.py")
    assert "--full-validation" in flags and "--multiple-validation-sets" in flags
    assert "--eval-iters" not in flags  # ignored under --full-validation
    exported = {"train": ["0.7", "/d/a/train", "0.3", "/d/b/train"], "valid": ["/d/a/valid", "/d/b/valid"],
                "test": ["/d/a/test", "/d/b/test"]}
    (tmp_path / "per_split_data_args.json").write_text(json.dumps(exported))
    launch = capture_launch(PRETRAIN_1B, tmp_path)
    given = json.loads(Path(_value(launch.after("pretrain_gpt.py"), "--per-split-data-args-path")).read_text())
    assert given == {**exported, "test": None}


def _value(flags: list, name: str) -> str:
    return flags[flags.index(name) + 1]


@needs_checkout
@pytest.mark.parametrize("arch", [8, 9], ids=["ampere", "hopper"])
def test_1b_shell_flags_pass_megatron_lm_validate_args(arch, tmp_path):
    launch = capture_launch(PRETRAIN_1B, tmp_path)
    flags = launch.after("pretrain_gpt.py")
    args = validated_args(validate(CHECKOUT, flags, launch.env, launch.world_size, arch))
    assert (args["world_size"], args["tensor_model_parallel_size"], args["pipeline_model_parallel_size"],
            args["data_parallel_size"]) == (32, 2, 2, 8)
    assert args["gradient_accumulation_fusion"] is False and args["sequence_parallel"] is True
    assert args["full_validation"] and args["multiple_validation_sets"] and args["fp8"] == "hybrid"
    assert args["distributed_timeout_minutes"] == 60  # not Megatron-LM's 10: rank 0 builds the indices meanwhile
    # The check is live: the same flags without the shell's environment are refused by Megatron-LM.
    bare = {k: v for k, v in launch.env.items() if k != "CUDA_DEVICE_MAX_CONNECTIONS"}
    refused = validate(CHECKOUT, flags, bare, launch.world_size, arch)
    assert refused.returncode == 1 and "CUDA_DEVICE_MAX_CONNECTIONS" in refused.stdout, refused.stdout[-2000:]


@needs_checkout
def test_1b_shell_data_files_build_through_megatron_lm(indexed_fixture, tmp_path):
    from regmix_megatron.export.files import export
    from regmix_megatron.data.manifest import DomainRegistry
    from regmix_megatron.mixtures.mixture import Mixture

    registry = DomainRegistry.load(indexed_fixture.domains_json)
    exported = export(registry, Mixture.from_array(registry.names, registry.prior()), tmp_path / "export")
    launch = capture_launch(PRETRAIN_1B, tmp_path, {"REGMIX_DATA_ARGS": str(exported["per_split_data_args"])})
    given = _value(launch.after("pretrain_gpt.py"), "--per-split-data-args-path")
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "check_megatron_lm.py"), "--megatron-lm", CHECKOUT,
                           "--regmix-domains", str(indexed_fixture.domains_json), "--per-split-data-args-path",
                           given], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("OK"), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"valid: {len(registry.all_names)} set(s)" in proc.stdout  # evaluation-only domains validate too
    assert "\ntest: None\n" in proc.stdout  # no test set: nothing for Megatron-LM to evaluate after training
