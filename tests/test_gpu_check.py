"""``make gpu-check`` (tools/gpu_check.py, regmix_megatron/gpu_check.py) on a machine without a GPU.

Its no-GPU mode runs as CI runs it. Its GPU branch is covered as far as a CPU allows: the plan of checks for 1, 2
and 8 GPUs of compute capability 8.0 and 9.0, the judges on constructed runs and logs, the table and exit code on
constructed outcomes, and (slow) the planned checks of a 2-GPU machine rehearsed on the CPU through the same
runners, at a CPU's size and in fp32.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest

from helpers.megatron_lm_args import validate, validated_args
from helpers.training import REPO, domains_json_of, subprocess_env
from regmix_megatron import gpu_check as gc
from regmix_megatron.gpu_check import run as gc_run

A100 = gc.GpuInfo(name="NVIDIA A100-SXM4-80GB", capability=(8, 0), count=8, cuda_version="12.8", te_available=True)
H100 = gc.GpuInfo(name="NVIDIA H100 80GB HBM3", capability=(9, 0), count=8, cuda_version="12.8", te_available=True)


def test_without_a_gpu_it_says_so_and_runs_nothing(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_check.py"), "--workdir", str(tmp_path / "w")],
                          capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU is visible" in proc.stdout and "nothing was run" in proc.stdout
    assert not (tmp_path / "w").exists()


def test_make_gpu_check_is_the_command(tmp_path):
    makefile = (REPO / "Makefile").read_text()
    assert "gpu-check:" in makefile and "tools/gpu_check.py" in makefile
    assert "make gpu-check" in (REPO / "README.md").read_text()


def names(checks):
    return [c.name for c in checks]


@pytest.mark.parametrize("count", [1, 2, 8])
@pytest.mark.parametrize("gpu", [A100, H100], ids=["8.0", "9.0"])
def test_plan_for_the_machine(gpu, count):
    gpu = gc.GpuInfo(gpu.name, gpu.capability, count, gpu.cuda_version, gpu.te_available)
    checks = gc.plan_checks(gpu, megatron_lm="/opt/Megatron-LM")
    target = "target-te-fp8" if gpu.capability >= (8, 9) else "target-te-bf16"
    expected = ["proxy-bf16", "proxy-bf16-resume", target, f"{target}-resume"]
    if count >= 2:
        expected += ["tp1-fp32", "tp2", "dp2", "pp2"] + (["tp2-pp2", "tp2-pp2-dp2"] if count == 8 else [])
    assert names(checks) == expected + ["megatron-lm"]
    by_name = {c.name: c for c in checks}
    assert by_name[target].config["precision"]["fp8"] == ("hybrid" if gpu.capability >= (8, 9) else None)
    assert by_name["proxy-bf16"].config["precision"] == {"bf16": True, "layer_spec": "local"}
    assert by_name["megatron-lm"].nproc == {1: 1, 2: 2, 8: 4}[count]
    for c in checks:
        assert c.kind != "skip", c
        if c.kind == "train":  # every planned config is a valid train config
            from regmix_megatron.runs.recipe import build_recipe

            cfg = build_recipe({k: v for k, v in c.config.items() if k != "seed"})
            assert cfg.optim.train_steps == gc.NUM_STEPS and cfg.checkpoint.interval == gc.RESUME_STEP
            assert c.nproc % (cfg.parallel.tensor_model_parallel_size * cfg.parallel.pipeline_model_parallel_size) == 0
    if count >= 2:
        assert by_name["tp2"].tolerance == gc.LAYOUT_TOLERANCE and by_name["pp2"].tolerance is None
        assert by_name["tp1-fp32"].config["parallel"]["use_cpu_initialization"] is True


def test_plan_skips_what_the_machine_cannot_run():
    volta = gc.GpuInfo("Tesla V100-SXM2-32GB", (7, 0), 1, "12.1", te_available=True)
    checks = {c.name: c for c in gc.plan_checks(volta, megatron_lm=None)}
    assert checks["proxy-fp32"].config["precision"]["bf16"] is False
    assert checks["target-te"].kind == "skip" and "8.0" in checks["target-te"].reason
    assert checks["megatron-lm"].kind == "skip" and "REGMIX_MEGATRON_LM" in checks["megatron-lm"].reason
    no_te = {c.name: c for c in gc.plan_checks(gc.GpuInfo("NVIDIA H100 PCIe", (9, 0), 1, "12.8"), None)}
    assert no_te["target-te"].kind == "skip" and "transformer_engine" in no_te["target-te"].reason


def test_peaks_of_known_gpus():
    assert gc.peak_flops("NVIDIA A100-SXM4-80GB", "bf16") == 312e12
    assert gc.peak_flops("NVIDIA A100-SXM4-80GB", "fp8") is None  # no FP8 units on Ampere
    assert gc.peak_flops("NVIDIA H100 80GB HBM3", "fp8") == 1979e12
    assert gc.peak_flops("NVIDIA H100 PCIe", "bf16") == 756e12
    assert gc.peak_flops("NVIDIA L40S", "bf16") == 362e12 and gc.peak_flops("NVIDIA L4", "bf16") == 121e12
    assert gc.peak_flops("NVIDIA A10G", "bf16") is None  # unknown: MFU is not reported, not guessed
    assert gc.peak_flops("fake-accelerator", "fp32") is None


# ---- judges, table and exit code on constructed runs ---------------------------------------------------------

DOMAINS = ["code", "math"]


def rows(train, evals=(5.0, 4.0)):
    out = [{"step": i + 1, "train_loss": x} for i, x in enumerate(train)]
    for at, v in zip((gc.RESUME_STEP, gc.NUM_STEPS), evals):
        out[at - 1].update(val_loss={d: v for d in DOMAINS}, val_loss_average=v)
    return out


FALLING = [7.0 - 0.1 * i for i in range(gc.NUM_STEPS)]
RESULT = {"status": "completed", "val_loss": {"code": 4.0, "math": 4.0}}


def test_judge_training():
    assert gc.judge_training(rows(FALLING), RESULT, DOMAINS) == []
    assert "train loss did not fall" in gc.judge_training(rows([7.0] * gc.NUM_STEPS), RESULT, DOMAINS)[0]
    assert "validation loss did not fall" in gc.judge_training(rows(FALLING, (4.0, 4.5)), RESULT, DOMAINS)[0]
    missing = {**RESULT, "val_loss": {"code": 4.0, "math": math.nan}}
    assert "do not cover" in gc.judge_training(rows(FALLING), missing, DOMAINS)[0]
    assert gc.judge_training(rows(FALLING), {"status": "diverged"}, DOMAINS) == ["status 'diverged'"]


def test_judge_resume_and_layouts():
    resumed = {**RESULT, "val_loss": {"code": 4.01, "math": 4.0}}
    assert gc.judge_resume(RESULT, resumed, rows(FALLING), "INFO resumed from /r/checkpoints/step_0000010") == []
    assert gc.judge_resume(RESULT, resumed, rows(FALLING), "no resume") == ["the run did not resume from a checkpoint"]
    far = {**RESULT, "val_loss": {"code": 4.5, "math": 4.0}}
    assert "differ from the uninterrupted run by up to 0.5000" in gc.judge_resume(RESULT, far, rows(FALLING),
                                                                                 "resumed from")[0]
    close = [x + 1e-5 for x in FALLING]
    assert gc.judge_layout(rows(FALLING), rows(close), gc.LAYOUT_TOLERANCE) == []
    off = list(FALLING)
    off[7] += 0.01
    assert "train loss at step 8" in gc.judge_layout(rows(FALLING), rows(off), gc.LAYOUT_TOLERANCE)[0]
    assert gc.judge_layout(rows(FALLING), rows(off, (5.0, 4.1)), None) == []  # pipeline: final loss only
    assert "final validation loss 4.3000" in gc.judge_layout(rows(FALLING), rows(off, (5.0, 4.3)), None)[0]


def megatron_log(losses, validation_at_end, elapsed_ms=50.0):
    n = len(losses)
    lines = [f" [2026-11-26 10:00:00.000000] iteration {i + 1:8d}/{n:8d} | consumed samples: {32 * (i + 1):12d} | "
             f"elapsed time per iteration (ms): {elapsed_ms * (4 if i == 0 else 1):.1f} | learning rate: 1.0E-03 | "
             f"global batch size:    32 | lm loss: {loss:.6E} | loss scale: 1.0 | grad norm: 1.000 |"
             for i, loss in enumerate(losses)]
    lines += [f" validation-{k} loss at iteration {n} on validation set | lm loss value: {v:.6E} | "
              f"lm loss PPL: {math.exp(v):.6E} | " for k, v in enumerate(validation_at_end)]
    return "\n".join(lines)


def test_judge_megatron_lm_log():
    problems, tokens_per_s = gc.judge_megatron_lm(megatron_log(FALLING[:10], [5.0] * 8), num_domains=8)
    assert problems == [] and tokens_per_s == pytest.approx(32 * 512 / 0.05)
    assert "validation losses" in gc.judge_megatron_lm(megatron_log(FALLING[:10], [5.0] * 7), 8)[0][0]
    assert "did not fall" in gc.judge_megatron_lm(megatron_log([7.0] * 10, [5.0] * 8), 8)[0][0]
    assert "did not reach" in gc.judge_megatron_lm(megatron_log(FALLING[:10], [5.0] * 8)[:300], 8)[0][0]


def test_table_and_exit_code():
    checks = {c.name: c for c in gc.plan_checks(H100, None)}
    passed = gc.Outcome(checks["proxy-bf16"], "pass", tokens_per_s=123456.7, mfu=0.4213)
    skipped = gc.Outcome(checks["megatron-lm"], "skip", checks["megatron-lm"].reason)
    failed = gc.Outcome(checks["tp2"], "fail", "train loss at step 3: 5.1 vs 5.0 for TP=1 (tolerance 0.001)")
    assert gc.exit_code([passed, skipped]) == 0
    assert gc.exit_code([passed, skipped, failed]) == 1
    table = gc.format_table([passed, skipped, failed], H100)
    assert "8 x NVIDIA H100 80GB HBM3 (compute capability 9.0" in table
    assert "123,457" in table and "42.1% bf16" in table
    assert "SKIP: no Megatron-LM checkout" in table and "FAIL: train loss at step 3" in table
    assert table.splitlines()[-1] == "1 passed, 1 failed, 1 skipped"


def test_a_check_needing_a_failed_one_is_skipped_and_a_crash_is_a_failure():
    checks = gc.plan_checks(gc.GpuInfo("fake", (9, 0), 2, "12.8"), None)

    def broken(check, ctx, done):
        raise RuntimeError("boom")

    outcomes = {o.check.name: o for o in gc.run_checks(checks, ctx=None, runners={"train": broken})}
    assert outcomes["proxy-bf16"].status == "fail" and "boom" in outcomes["proxy-bf16"].detail
    assert outcomes["proxy-bf16-resume"].status == "skip" and "proxy-bf16" in outcomes["proxy-bf16-resume"].detail
    assert outcomes["tp2"].status == "skip"


@pytest.mark.skipif(not os.environ.get("REGMIX_MEGATRON_LM"),
                    reason="set REGMIX_MEGATRON_LM to a Megatron-LM checkout to validate the check's flags with it")
@pytest.mark.parametrize("count", [1, 2, 4])
def test_megatron_lm_check_flags_pass_megatron_lm_validate_args(count, indexed_fixture, tmp_path):
    gpu = dataclasses.replace(H100, count=count)
    ctx = gc.Context(workdir=tmp_path, domains_json=domains_json_of(indexed_fixture), gpu=gpu,
                     megatron_lm=os.environ["REGMIX_MEGATRON_LM"], megatron_data_args=tmp_path / "data_args.json")
    tp, pp, nproc = gc.megatron_lm_layout(count)
    proc = validate(ctx.megatron_lm, gc.megatron_lm_flags(ctx, tp, pp), gc_run._env(nproc), nproc, arch=9)
    args = validated_args(proc)
    assert (args["tensor_model_parallel_size"], args["pipeline_model_parallel_size"]) == (tp, pp)
    assert args["fp8"] == "hybrid" and args["bf16"] and args["gradient_accumulation_fusion"] is False
    assert args["sequence_parallel"] is (tp > 1)


# ---- the GPU branch rehearsed on the CPU ---------------------------------------------------------------------

def on_cpu(check):
    """The planned check at a CPU's size and in fp32 (the CPU refuses bf16); layout, steps, evaluation,
    checkpoint interval and logging stay as planned."""
    if check.kind != "train":
        return check
    config = copy.deepcopy(check.config)
    config.update(preset="tiny-test", model={}, precision={"bf16": False, "layer_spec": "local"})
    config["optim"] = {"train_steps": gc.NUM_STEPS, "global_batch_size": 16, "micro_batch_size": 8,
                       "warmup_steps": 2, "lr": 3e-3}
    config["eval"] = {**config["eval"], "num_tokens_per_domain": 2048, "micro_batch_size": 16}
    return dataclasses.replace(check, config=config)


@pytest.mark.slow
def test_gpu_branch_rehearsed_on_cpu(indexed_fixture, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as torchrun sets it: 2 threads per process oversubscribe here
    gpu = gc.GpuInfo("fake-accelerator", (9, 0), 2, "12.8", te_available=False)
    checks = [on_cpu(c) for c in gc.plan_checks(gpu, megatron_lm=None)]
    ctx = gc.Context(workdir=tmp_path, domains_json=domains_json_of(indexed_fixture), gpu=gpu, timeout_s=900)
    outcomes = gc.run_checks(checks, ctx)
    table = gc.format_table(outcomes, gpu)
    print(table)
    status = {o.check.name: o.status for o in outcomes}
    assert status == {"proxy-bf16": "pass", "proxy-bf16-resume": "pass", "target-te": "skip", "tp1-fp32": "pass",
                      "tp2": "pass", "dp2": "pass", "pp2": "pass", "megatron-lm": "skip"}, table
    assert gc.exit_code(outcomes) == 0
    by_name = {o.check.name: o for o in outcomes}
    assert by_name["proxy-bf16"].tokens_per_s > 0 and by_name["proxy-bf16"].mfu is None  # no peak for this "GPU"
    resumed = [json.loads(line)["step"] for line in (tmp_path / "runs" / "proxy-bf16-resume" / "metrics.jsonl")
               .read_text().splitlines()]
    assert resumed == list(range(1, gc.NUM_STEPS + 1))
