"""``make gpu-check`` (tools/gpu_check.py, regmix_megatron/gpu_check/) on a machine without a GPU.

Its no-GPU mode runs as CI runs it, and its "nvidia-smi sees a GPU, torch does not" mode with a stand-in
``nvidia-smi``. Its GPU branch is covered as far as a CPU allows: the plan of checks for 1, 2 and 8 GPUs of compute
capability 7.0, 8.0 and 9.0 and for missing dependencies, the judges on constructed runs and logs, the table and
exit code on constructed outcomes, the whole command on a stand-in GPU with this machine's real Transformer Engine
import error (exit 1, or 0 with ``--allow-missing te``), and (slow) the planned checks of a 2-GPU machine rehearsed
on the CPU through the same runners, at a CPU's size and in fp32.
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
from regmix_megatron.gpu_check import machine
from regmix_megatron.gpu_check import run as gc_run
from regmix_megatron.megatron.model import transformer_engine_import_error

A100 = gc.GpuInfo(name="NVIDIA A100-SXM4-80GB", capability=(8, 0), count=8, cuda_version="12.8")
H100 = gc.GpuInfo(name="NVIDIA H100 80GB HBM3", capability=(9, 0), count=8, cuda_version="12.8")
EVERYTHING = gc.Dependencies()
NO_TE = gc.Dependencies(missing={"te": "ModuleNotFoundError: No module named 'transformer_engine'"})


def test_without_a_gpu_it_says_so_and_runs_nothing(tmp_path):
    env = {**subprocess_env(), "PATH": os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                                        if not (p and os.path.isfile(os.path.join(p, "nvidia-smi"))))}
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_check.py"), "--workdir", str(tmp_path / "w")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU is visible" in proc.stdout and "nothing was run" in proc.stdout
    assert not (tmp_path / "w").exists()


FAKE_SMI = """#!/bin/sh
if [ "$1" = "--query-gpu=name,driver_version" ]; then echo "NVIDIA H100 80GB HBM3, 550.54.15"; exit 0; fi
echo "| NVIDIA-SMI 550.54.15    Driver Version: 550.54.15    CUDA Version: 12.4 |"
"""


def test_a_gpu_nvidia_smi_sees_and_torch_does_not_fails_with_why(tmp_path):
    """A stand-in ``nvidia-smi`` lists an H100; this machine's torch (a CPU build) sees no GPU: exit 1, why, fix."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "nvidia-smi").write_text(FAKE_SMI)
    (stubs / "nvidia-smi").chmod(0o755)
    env = {**subprocess_env(), "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_check.py"), "--workdir", str(tmp_path / "w")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "nvidia-smi sees 1 GPU(s) (NVIDIA H100 80GB HBM3; driver 550.54.15, which supports CUDA up to 12.4)" in out
    assert "CPU-only build (torch.version.cuda is None)" in out and "torch says:" in out
    assert not (tmp_path / "w").exists()


def test_why_torch_does_not_see_the_gpus():
    smi = machine.SmiReport(names=("NVIDIA H100 80GB HBM3",), driver="550.54.15", cuda="12.4")
    old_driver = gc.explain_invisible_gpus(smi, "2.13.0", "13.0", "RuntimeError: driver too old", None)
    assert "built for CUDA 13.0, whose builds need NVIDIA driver 580 or newer; this driver is 550.54.15" in old_driver
    assert "torch says: RuntimeError: driver too old" in old_driver
    hidden = gc.explain_invisible_gpus(smi, "2.8.0", "12.8", "", "")
    assert "CUDA_VISIBLE_DEVICES='' hides every GPU" in hidden
    fine = gc.explain_invisible_gpus(smi, "2.8.0", "12.8", "", None)
    assert "driver 550.54.15 should run it" in fine  # 12.x builds run on 525+: the message does not invent a cause


def test_make_gpu_check_is_the_command(tmp_path):
    makefile = (REPO / "Makefile").read_text()
    assert "gpu-check:" in makefile and "tools/gpu_check.py" in makefile
    assert "make gpu-check" in (REPO / "README.md").read_text()


def names(checks):
    return [c.name for c in checks]


@pytest.mark.parametrize("count", [1, 2, 8])
@pytest.mark.parametrize("gpu", [A100, H100], ids=["8.0", "9.0"])
def test_plan_for_the_machine(gpu, count):
    gpu = dataclasses.replace(gpu, count=count)
    checks = gc.plan_checks(gpu, EVERYTHING)
    fp8 = gpu.capability >= (8, 9)
    expected = ["proxy-bf16", "proxy-bf16-resume", "proxy-bf16-torchrun", "target-bf16", "target-te-bf16"]
    expected += ["target-te-fp8", "target-te-fp8-resume"] if fp8 else ["target-te-bf16-resume", "target-te-fp8"]
    if count >= 2:
        expected += ["tp1-fp32", "tp2", "dp2", "pp2"] + (["tp2-pp2", "tp2-pp2-dp2"] if count == 8 else [])
    assert names(checks) == expected + ["megatron-lm-local", "megatron-lm-te"]
    by_name = {c.name: c for c in checks}
    assert (by_name["target-te-fp8"].kind == "n/a") is not fp8
    if fp8:
        assert by_name["target-te-fp8"].config["precision"]["fp8"] == "hybrid"
    assert by_name["proxy-bf16"].config["precision"] == {"bf16": True, "layer_spec": "local"}
    assert by_name["target-bf16"].config["precision"] == {"bf16": True, "layer_spec": "local"}
    assert by_name["proxy-bf16-torchrun"].torchrun and by_name["proxy-bf16-torchrun"].nproc == 1
    assert by_name["megatron-lm-local"].nproc == by_name["megatron-lm-te"].nproc == {1: 1, 2: 2, 8: 4}[count]
    assert by_name["megatron-lm-te"].needs == ("megatron-lm", "nvcc", "te")
    for c in checks:
        if c.kind != "n/a":
            assert ("te" in c.needs) == (c.name.startswith("target-te") or c.name == "megatron-lm-te"), c
        if c.kind == "train":  # every planned config is a valid train config
            from regmix_megatron.recipe import build_recipe

            cfg = build_recipe({k: v for k, v in c.config.items() if k != "seed"})
            assert cfg.optim.train_steps == gc.NUM_STEPS and cfg.checkpoint.interval == gc.RESUME_STEP
            assert c.nproc % (cfg.parallel.tensor_model_parallel_size * cfg.parallel.pipeline_model_parallel_size) == 0
    if count >= 2:
        assert by_name["tp2"].tolerance == gc.LAYOUT_TOLERANCE and by_name["pp2"].tolerance is None
        assert by_name["tp1-fp32"].config["parallel"]["use_cpu_initialization"] is True


def test_plan_marks_what_the_gpu_cannot_run_not_applicable():
    volta = gc.GpuInfo("Tesla V100-SXM2-32GB", (7, 0), 1, "12.1")
    checks = {c.name: c for c in gc.plan_checks(volta, EVERYTHING)}
    assert checks["proxy-fp32"].config["precision"]["bf16"] is False
    for name in ("target-bf16", "target-te-bf16", "target-te-fp8", "megatron-lm-te"):
        assert checks[name].kind == "n/a" and "8.0" in checks[name].reason, name
    assert checks["megatron-lm-local"].kind == "megatron-lm" and checks["megatron-lm-local"].precision == "fp32"
    ampere = {c.name: c for c in gc.plan_checks(dataclasses.replace(A100, count=1), EVERYTHING)}
    assert ampere["target-te-fp8"].kind == "n/a" and "8.9" in ampere["target-te-fp8"].reason


def test_plan_keeps_what_a_missing_dependency_stops_as_not_tested():
    deps = gc.Dependencies(missing={"te": "ImportError: libcudnn.so.9: cannot open shared object file",
                                    "compiler": "no C compiler (cc, gcc or clang not found on PATH)"})
    gpu = dataclasses.replace(H100, count=1)
    checks = gc.plan_checks(gpu, deps)
    assert names(checks)[-1] == "compiled-fusions"  # stands for what the uncompiled runs leave untested
    plan = gc.format_plan(checks, gpu, deps)
    assert "te          MISSING: ImportError: libcudnn.so.9: cannot open shared object file" in plan
    assert plan.count("[NOT TESTED: needs te]") == 4  # target-te-bf16, target-te-fp8, its resume, megatron-lm-te
    assert "[NOT TESTED: needs te]" not in next(line for line in plan.splitlines() if "target-bf16 " in line)
    nothing_compiles = gc.Dependencies(missing={**deps.missing, "megatron-lm": "no checkout"})
    assert "compiled-fusions" not in names(gc.plan_checks(gpu, nothing_compiles))  # the local spec compiles nothing


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
    checks = {c.name: c for c in gc.plan_checks(dataclasses.replace(H100, count=2), NO_TE)}
    passed = gc.Outcome(checks["proxy-bf16"], "pass", tokens_per_s=123456.7, mfu=0.4213)
    na = gc.Outcome(checks["target-te-fp8"], "n/a", "FP8 needs compute capability 8.9 or higher")
    untested = gc.Outcome(checks["target-te-bf16"], "not-tested", "needs te: ModuleNotFoundError: No module named "
                          "'transformer_engine'", missing=("te",))
    failed = gc.Outcome(checks["tp2"], "fail", "train loss at step 3: 5.1 vs 5.0 for TP=1 (tolerance 0.001)")
    assert gc.exit_code([passed, na]) == 0  # what the GPU cannot run does not fail the run
    assert gc.exit_code([passed, untested]) == 1  # a missing dependency does, unless allowed
    assert gc.exit_code([passed, untested], allow_missing=["te"]) == 0
    assert gc.exit_code([passed, untested], allow_missing=["compiler"]) == 1
    assert gc.exit_code([passed, untested, failed], allow_missing=["te"]) == 1
    table = gc.format_table([passed, na, untested, failed], H100)
    assert "8 x NVIDIA H100 80GB HBM3 (compute capability 9.0" in table
    assert "123,457" in table and "42.1% bf16" in table
    assert "NOT APPLICABLE: FP8 needs" in table and "FAIL: train loss at step 3" in table
    assert "NOT TESTED: needs te: ModuleNotFoundError: No module named 'transformer_engine'" in table
    assert table.splitlines()[-1] == "1 passed, 1 failed, 1 not tested, 1 not applicable, 0 skipped"
    allowed = gc.format_table([passed, untested], H100, allow_missing=["te"])
    assert "NOT TESTED (allowed: --allow-missing te): needs te" in allowed
    assert allowed.splitlines()[-1] == "1 passed, 0 failed, 1 not tested (1 allowed by --allow-missing), " \
                                       "0 not applicable, 0 skipped"


def context(tmp_path, gpu, deps, domains_json=None):
    return gc.Context(workdir=tmp_path, domains_json=domains_json or tmp_path / "domains.json", gpu=gpu, deps=deps)


def test_a_check_needing_a_failed_or_untested_one_is_not_run_and_a_crash_is_a_failure(tmp_path):
    gpu = gc.GpuInfo("fake", (9, 0), 2, "12.8")
    deps = gc.Dependencies(missing={"te": "ModuleNotFoundError: No module named 'transformer_engine'"})
    ran = []

    def broken(check, ctx, done):
        ran.append(check.name)
        raise RuntimeError("boom")

    outcomes = {o.check.name: o for o in gc.run_checks(gc.plan_checks(gpu, deps), context(tmp_path, gpu, deps),
                                                        runners={"train": broken, "resume": broken,
                                                                 "megatron-lm": broken})}
    assert outcomes["proxy-bf16"].status == "fail" and "boom" in outcomes["proxy-bf16"].detail
    assert outcomes["proxy-bf16-resume"].status == "skip" and "proxy-bf16" in outcomes["proxy-bf16-resume"].detail
    assert outcomes["tp2"].status == "skip"
    for name in ("target-te-bf16", "target-te-fp8", "target-te-fp8-resume", "megatron-lm-te"):
        assert outcomes[name].status == "not-tested" and outcomes[name].missing == ("te",), name
        assert name not in ran
    assert "needs te: ModuleNotFoundError" in outcomes["target-te-fp8"].detail


def test_on_a_gpu_stand_in_missing_te_fails_the_run_unless_allowed(tmp_path, indexed_fixture, monkeypatch, capsys):
    """The whole command on a stand-in H100 whose dependencies are this machine's Transformer Engine (which does not
    import here: its real import error) and everything else present; checks that run pass (stand-in runners)."""
    te_error = transformer_engine_import_error()
    assert te_error is not None  # Transformer Engine cannot be installed on this CPU machine
    gpu = gc.GpuInfo("NVIDIA H100 80GB HBM3", (9, 0), 1, "12.8")
    monkeypatch.setattr(gc_run, "detect_gpu", lambda: gpu)
    monkeypatch.setattr(gc_run, "probe_dependencies", lambda mlm: gc.Dependencies(missing={"te": te_error}))
    monkeypatch.setattr(gc_run, "prepare_data", lambda workdir: (domains_json_of(indexed_fixture),
                                                                 workdir / "data_args.json"))
    ran = []
    monkeypatch.setattr(gc_run, "RUNNERS", dict.fromkeys(("train", "resume", "megatron-lm"), lambda c, ctx, done: (
        ran.append(c.name), gc.Outcome(c, "pass"))[1]))
    assert gc.main(["--workdir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"NOT TESTED: needs te: {te_error}" in out  # the import error as Transformer Engine raised it
    assert "target-te-bf16" not in ran and "target-bf16" in ran and "megatron-lm-local" in ran
    assert gc.main(["--workdir", str(tmp_path), "--allow-missing", "te"]) == 0
    assert "NOT TESTED (allowed: --allow-missing te)" in capsys.readouterr().out


def test_this_machines_dependencies_are_probed_with_their_reasons(monkeypatch):
    from regmix_megatron.megatron.checkout import missing_training_modules

    deps = gc.probe_dependencies(None)
    assert deps.missing["te"] == transformer_engine_import_error()
    assert "REGMIX_MEGATRON_LM" in deps.missing["megatron-lm"]
    monkeypatch.setenv("TORCH_COMPILE_DISABLE", "1")
    assert "TORCH_COMPILE_DISABLE=1 is set" in gc.probe_dependencies(None).missing["compiler"]
    monkeypatch.delenv("TORCH_COMPILE_DISABLE")
    checkout = os.environ.get("REGMIX_MEGATRON_LM")
    if checkout:
        assert ("megatron-lm" in gc.probe_dependencies(checkout).missing) == bool(missing_training_modules())
    assert "not a Megatron-LM checkout" in gc.probe_dependencies(str(REPO)).missing["megatron-lm"]


# ---- the Megatron-LM checks' command lines, through Megatron-LM's own code on the CPU -------------------------

needs_checkout = pytest.mark.skipif(
    not os.environ.get("REGMIX_MEGATRON_LM"),
    reason="set REGMIX_MEGATRON_LM to a Megatron-LM checkout to validate the check's flags with it")


def megatron_lm_run(tmp_path, indexed_fixture, count: int, impl: str, build: str = "", drop: str = ""):
    """Megatron-LM's parse_args + validate_args (+ TransformerConfig, + model) on the exact command line of check
    ``megatron-lm-<impl>`` on ``count`` H100s, with its environment; ``drop``: a flag taken out of it."""
    gpu = dataclasses.replace(H100, count=count)
    ctx = gc.Context(workdir=tmp_path, domains_json=domains_json_of(indexed_fixture), gpu=gpu, deps=EVERYTHING,
                     megatron_lm=os.environ["REGMIX_MEGATRON_LM"], megatron_data_args=tmp_path / "data_args.json")
    check = next(c for c in gc.plan_checks(gpu, EVERYTHING) if c.name == f"megatron-lm-{impl}")
    cmd, env = gc.megatron_lm_command(ctx, check)
    flags = cmd[cmd.index(str(ctx.megatron_lm) + "/pretrain_gpt.py") + 1:]
    assert flags == gc.megatron_lm_flags(ctx, check, *gc.megatron_lm_layout(count)[:2])
    if drop:
        flags.remove(drop)
    # CPU only: torch.compile's CPU kernels tell nothing about the GPU's; the fusions run uncompiled (same math).
    env = {**subprocess_env(), **env, "TORCH_COMPILE_DISABLE": "1"}
    return validate(ctx.megatron_lm, flags, env, gc.megatron_lm_layout(count)[2], arch=9, build=build)


@needs_checkout
@pytest.mark.parametrize("count", [1, 2, 4])
def test_megatron_lm_te_check_passes_validate_args_and_needs_only_te(count, indexed_fixture, tmp_path):
    args = validated_args(megatron_lm_run(tmp_path, indexed_fixture, count, "te"))
    tp, pp, _ = gc.megatron_lm_layout(count)
    assert (args["tensor_model_parallel_size"], args["pipeline_model_parallel_size"]) == (tp, pp)
    assert args["fp8"] == "hybrid" and args["bf16"] and args["gradient_accumulation_fusion"] is False
    assert args["transformer_impl"] == "transformer_engine" and args["sequence_parallel"] is (tp > 1)
    refused = megatron_lm_run(tmp_path, indexed_fixture, count, "te", build="config")
    assert refused.returncode == 1  # the fused RoPE it keeps on is Transformer Engine's, absent here
    assert "apply_rope_fusion is not available. Please install TE" in refused.stdout, refused.stdout[-2000:]


@needs_checkout
@pytest.mark.parametrize("count", [2, 4])
def test_megatron_lm_local_check_builds_its_transformer_config(count, indexed_fixture, tmp_path):
    args = validated_args(megatron_lm_run(tmp_path, indexed_fixture, count, "local", build="config"))
    assert args["transformer_impl"] == "local" and args["sequence_parallel"] is False
    assert args["config.apply_rope_fusion"] is False and args["config.persist_layer_norm"] is False
    assert args["config.masked_softmax_fusion"] is False and args["config.gradient_accumulation_fusion"] is False


@needs_checkout
@pytest.mark.slow
def test_megatron_lm_local_check_builds_and_steps_its_model_on_cpu(indexed_fixture, tmp_path):
    """pretrain_gpt.py's own model builder on the check's command line (one GPU's): the model builds and one bf16
    micro-batch goes forward and backward; each fusion flag the local implementation adds is needed for that."""
    args = validated_args(megatron_lm_run(tmp_path, indexed_fixture, 1, "local", build="model"))
    assert args["params_dtype"] == "torch.bfloat16" and args["all_grads"] and math.isfinite(args["loss"])
    refusals = {"--no-rope-fusion": "ValueError: apply_rope_fusion is not available",
                "--no-persist-layer-norm": "AssertionError: persist_layer_norm not supported by torch",
                "--no-masked-softmax-fusion": "No module named 'scaled_masked_softmax_cuda'"}
    for flag, refusal in refusals.items():
        proc = megatron_lm_run(tmp_path, indexed_fixture, 1, "local", build="model", drop=flag)
        assert proc.returncode == 1 and refusal in proc.stdout, (flag, proc.stdout[-2000:] + proc.stderr[-2000:])


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
    """The plan of a 2-GPU machine with this machine's dependencies (no Transformer Engine, no checkout, no nvcc),
    run through the real runners at a CPU's size: what needs nothing missing passes, the rest is NOT TESTED."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as torchrun sets it: 2 threads per process oversubscribe here
    gpu = gc.GpuInfo("fake-accelerator", (9, 0), 2, "12.8")
    deps = gc.probe_dependencies(None)
    checks = [on_cpu(c) for c in gc.plan_checks(gpu, deps)]
    ctx = gc.Context(workdir=tmp_path, domains_json=domains_json_of(indexed_fixture), gpu=gpu, deps=deps,
                     timeout_s=900)
    outcomes = gc.run_checks(checks, ctx)
    table = gc.format_table(outcomes, gpu)
    print(table)
    status = {o.check.name: o.status for o in outcomes}
    ran = ("proxy-bf16", "proxy-bf16-resume", "proxy-bf16-torchrun", "target-bf16", "tp1-fp32", "tp2", "dp2", "pp2")
    assert {n: s for n, s in status.items() if n in ran} == dict.fromkeys(ran, "pass"), table
    assert {n: s for n, s in status.items() if n not in ran} == dict.fromkeys(
        ("target-te-bf16", "target-te-fp8", "target-te-fp8-resume", "megatron-lm-local", "megatron-lm-te")
        + (("compiled-fusions",) if "compiled-fusions" in status else ()), "not-tested"), table
    assert gc.exit_code(outcomes) == 1
    assert gc.exit_code(outcomes, allow_missing=sorted(deps.missing)) == 0
    by_name = {o.check.name: o for o in outcomes}
    assert by_name["proxy-bf16"].tokens_per_s > 0 and by_name["proxy-bf16"].mfu is None  # no peak for this "GPU"
    resumed = [json.loads(line)["step"] for line in (tmp_path / "runs" / "proxy-bf16-resume" / "metrics.jsonl")
               .read_text().splitlines()]
    assert resumed == list(range(1, gc.NUM_STEPS + 1))
    assert "torch.distributed.run" not in (tmp_path / "logs" / "proxy-bf16.log").read_text()
    assert "resumed from" not in (tmp_path / "logs" / "proxy-bf16-torchrun.log").read_text()


def test_prepare_data_can_be_run_again_on_its_workdir(tmp_path, monkeypatch):
    """gpu-check reuses its data: a second run in the same workdir must not trip over the first one's files."""
    first = gc.prepare_data(tmp_path)
    second = gc.prepare_data(tmp_path)
    assert first == second and json.loads(second[1].read_text())["test"] is None
