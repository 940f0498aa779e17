"""Running gpu-check: its tiny data, each check as a subprocess, and the command (tools/gpu_check.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from ..fileio import atomic_write_yaml
from .judge import Outcome, exit_code, format_table, judge_layout, judge_megatron_lm, judge_resume, judge_training
from .plan import (
    MEGATRON_LM_ITERS,
    MEGATRON_LM_SHAPE,
    RESUME_STEP,
    Check,
    GpuInfo,
    detect_gpu,
    format_plan,
    llama_flops_per_token,
    megatron_lm_layout,
    peak_flops,
    plan_checks,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURE_CORPUS = REPO / "tests" / "fixtures" / "corpus"

# ---- running the checks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """Where the checks run and on what data."""

    workdir: Path
    domains_json: Path
    gpu: GpuInfo
    megatron_lm: Optional[str] = None
    megatron_data_args: Optional[Path] = None
    """``per_split_data_args.json`` of the natural mixture without its test split (as the 1B shell passes it)."""
    timeout_s: int = 3600


def prepare_data(workdir: Path) -> tuple:
    """Tokenizer + indexed datasets of the corpus fixture, and the natural mixture's Megatron-LM blend file
    without its test split: ``(domains.json, per_split_data_args.json)``. Reused when already there."""
    from ..export.megatron_files import export_mixture
    from ..fileio import atomic_write_json, read_json
    from ..data.manifest import DomainRegistry
    from ..mixtures.mixture import Mixture
    from ..data.preprocess import preprocess_corpus
    from ..data.tokenizer_training import TokenizerTrainConfig, train_tokenizer

    domains_json = workdir / "data" / "indexed" / "domains.json"
    if not domains_json.is_file():
        model = train_tokenizer(FIXTURE_CORPUS, workdir / "data" / "tokenizer",
                                TokenizerTrainConfig(vocab_size=1000, sample_bytes_per_domain=60_000, seed=0))
        domains_json = Path(preprocess_corpus(FIXTURE_CORPUS, workdir / "data" / "indexed", model, workers=1))
    registry = DomainRegistry.load(domains_json)
    exported = export_mixture(registry, Mixture.from_array(registry.names, registry.prior()), workdir / "export")
    per_split = read_json(exported["per_split_data_args"])
    data_args = atomic_write_json(workdir / "export" / "megatron_lm_data_args.json", {**per_split, "test": None})
    return domains_json, Path(data_args)


def _env(nproc: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if nproc > 1:
        env["CUDA_DEVICE_MAX_CONNECTIONS"] = "1"
    return env


def _launch(nproc: int) -> list:
    if nproc == 1:
        return [sys.executable]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]


def _run(cmd: list, log: Path, nproc: int, timeout_s: int) -> tuple:
    """Run ``cmd``, its output into ``log``; ``(return code, output text)``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as fh:
        try:
            code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env(nproc), cwd=REPO,
                                  timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    return code, log.read_text(encoding="utf-8", errors="replace")


def _read_rows(run_dir: Path) -> list:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _train(check: Check, ctx: Context, out: Path, config_of: Check) -> tuple:
    """Train ``config_of``'s config into ``out`` as ``check``: ``(code, log text, result or None, rows)``."""
    config = ctx.workdir / "configs" / f"{config_of.name}.yaml"
    atomic_write_yaml(config, {**config_of.config, "domains": str(ctx.domains_json)})
    cmd = _launch(check.nproc) + ["-m", "regmix_megatron.cli", "train", str(config), "--output-dir", str(out)]
    code, text = _run(cmd, ctx.workdir / "logs" / f"{check.name}.log", check.nproc, ctx.timeout_s)
    if code != 0 or not (out / "result.json").is_file():
        return code, text, None, []
    return code, text, json.loads((out / "result.json").read_text()), _read_rows(out)


def _throughput(check: Check, ctx: Context, tokens_per_s: Optional[float]) -> tuple:
    """``(tokens/s, MFU)`` of a check's config on ``ctx.gpu``."""
    from ..megatron.model import padded_vocab_size
    from ..data.manifest import DomainRegistry
    from ..runs.recipe import build_recipe

    if not tokens_per_s:
        return None, None
    cfg = build_recipe({k: v for k, v in check.config.items() if k != "seed"}, source=f"gpu-check {check.name}")
    m = cfg.model
    vocab = padded_vocab_size(DomainRegistry.load(ctx.domains_json).tokenizer.vocab_size, m.vocab_multiple,
                              cfg.parallel.tensor_model_parallel_size)
    flops = llama_flops_per_token(num_layers=m.num_layers, hidden_size=m.hidden_size,
                                  ffn_hidden_size=m.ffn_hidden_size, vocab_size=vocab, seq_length=m.seq_length)
    peak = peak_flops(ctx.gpu.name, check.precision)
    return tokens_per_s, None if peak is None else tokens_per_s * flops / (peak * check.nproc)


def _failed(check: Check, code, text: str, log_name: str) -> Outcome:
    last = [line for line in text.splitlines() if line.strip()][-1:] or [""]
    return Outcome(check, "fail", f"exit {code} ({last[0][-160:]}); log {log_name}")


def run_train_check(check: Check, ctx: Context, done: dict) -> Outcome:
    out = ctx.workdir / "runs" / check.name
    shutil.rmtree(out, ignore_errors=True)
    code, text, result, rows = _train(check, ctx, out, check)
    if result is None:
        return _failed(check, code, text, f"logs/{check.name}.log")
    from ..data.manifest import DomainRegistry

    problems = judge_training(rows, result, list(DomainRegistry.load(ctx.domains_json).all_names))
    if check.base:
        problems += judge_layout(_read_rows(ctx.workdir / "runs" / check.base), rows, check.tolerance)
    tokens_per_s, mfu = _throughput(check, ctx, result.get("tokens_per_s"))
    return Outcome(check, "fail" if problems else "pass", "; ".join(problems), tokens_per_s, mfu)


def run_resume_check(check: Check, ctx: Context, done: dict) -> Outcome:
    """Copy the base run, drop its checkpoints after RESUME_STEP and its result, and run it again."""
    from ..megatron.checkpoint import list_checkpoints

    base = done[check.base].check
    source, out = ctx.workdir / "runs" / base.name, ctx.workdir / "runs" / check.name
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out)
    (out / "result.json").unlink()
    for step, path in list_checkpoints(out):
        if step > RESUME_STEP:
            shutil.rmtree(path)
    code, text, result, rows = _train(replace(check, nproc=base.nproc), ctx, out, base)
    if result is None:
        return _failed(check, code, text, f"logs/{check.name}.log")
    problems = judge_resume(json.loads((source / "result.json").read_text()), result, rows, text)
    return Outcome(check, "fail" if problems else "pass", "; ".join(problems))


# ---- Megatron-LM's pretrain_gpt.py on our export ------------------------------------------------------------

def megatron_lm_flags(ctx: Context, tp: int, pp: int) -> list:
    """``pretrain_gpt.py`` flags: the 1B launch shell's (examples/pretrain_gpt_1b_regmix.sh) at a proxy's size."""
    from ..data.manifest import DomainRegistry
    from ..megatron.model import fp8_unsupported_reason

    s, gpu = MEGATRON_LM_SHAPE, ctx.gpu
    run = ctx.workdir / "runs" / "megatron-lm"
    flags = ["--num-layers", s["num_layers"], "--hidden-size", s["hidden_size"], "--num-attention-heads",
             s["num_attention_heads"], "--ffn-hidden-size", s["ffn_hidden_size"], "--seq-length", s["seq_length"],
             "--max-position-embeddings", s["seq_length"], "--position-embedding-type", "rope", "--normalization",
             "RMSNorm", "--swiglu", "--disable-bias-linear", "--untie-embeddings-and-output-weights",
             "--attention-dropout", "0.0", "--hidden-dropout", "0.0", "--init-method-std", "0.02",
             "--tensor-model-parallel-size", tp, "--pipeline-model-parallel-size", pp,
             "--use-distributed-optimizer", "--overlap-grad-reduce", "--overlap-param-gather",
             "--no-gradient-accumulation-fusion",
             "--micro-batch-size", s["micro_batch_size"], "--global-batch-size", s["global_batch_size"],
             "--train-iters", MEGATRON_LM_ITERS, "--lr", "1e-3", "--min-lr", "1e-4", "--lr-decay-style", "cosine",
             "--lr-warmup-fraction", "0.1", "--optimizer", "adam", "--adam-beta1", "0.9", "--adam-beta2", "0.95",
             "--weight-decay", "0.1", "--clip-grad", "1.0", "--seed", "1234",
             "--per-split-data-args-path", ctx.megatron_data_args, "--multiple-validation-sets",
             "--full-validation", "--tokenizer-type", "GPTSentencePieceTokenizer",
             "--tokenizer-model", DomainRegistry.load(ctx.domains_json).tokenizer.model,
             "--data-cache-path", run / "data_cache", "--num-workers", "1",
             "--log-interval", "1", "--eval-interval", MEGATRON_LM_ITERS // 2,
             "--save", run / "checkpoints", "--load", run / "checkpoints", "--save-interval", MEGATRON_LM_ITERS // 2]
    if tuple(gpu.capability) >= (8, 0):
        flags.append("--bf16")
    if gpu.te_available:
        flags += ["--transformer-impl", "transformer_engine"] + (["--sequence-parallel"] if tp > 1 else [])
        if tuple(gpu.capability) >= (8, 0) and fp8_unsupported_reason("delayed", gpu.capability,
                                                                     gpu.cuda_version) is None:
            flags += ["--fp8-format", "hybrid", "--fp8-recipe", "delayed", "--fp8-amax-history-len", "1024",
                      "--fp8-amax-compute-algo", "max"]
    else:
        flags += ["--transformer-impl", "local"]
    return [str(f) for f in flags]


def run_megatron_lm_check(check: Check, ctx: Context, done: dict) -> Outcome:
    from ..data.manifest import DomainRegistry

    tp, pp, nproc = megatron_lm_layout(ctx.gpu.count)
    shutil.rmtree(ctx.workdir / "runs" / "megatron-lm", ignore_errors=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           str(Path(ctx.megatron_lm) / "pretrain_gpt.py"), *megatron_lm_flags(ctx, tp, pp)]
    code, text = _run(cmd, ctx.workdir / "logs" / "megatron-lm.log", max(nproc, 2), ctx.timeout_s)
    if code != 0:
        return _failed(check, code, text, "logs/megatron-lm.log")
    problems, tokens_per_s = judge_megatron_lm(text, len(DomainRegistry.load(ctx.domains_json).all_names))  # one set per evaluated domain
    from ..megatron.model import padded_vocab_size

    s = MEGATRON_LM_SHAPE
    vocab = padded_vocab_size(DomainRegistry.load(ctx.domains_json).tokenizer.vocab_size, 128, tp)  # Megatron-LM's
    flops = llama_flops_per_token(num_layers=s["num_layers"], hidden_size=s["hidden_size"],  # default padding
                                  ffn_hidden_size=s["ffn_hidden_size"], vocab_size=vocab, seq_length=s["seq_length"])
    peak = peak_flops(ctx.gpu.name, check.precision)
    mfu = None if tokens_per_s is None or peak is None else tokens_per_s * flops / (peak * nproc)
    return Outcome(check, "fail" if problems else "pass", "; ".join(problems), tokens_per_s, mfu)


# ---- the command ---------------------------------------------------------------------------------------------

RUNNERS = {"train": run_train_check, "resume": run_resume_check, "megatron-lm": run_megatron_lm_check}


def run_checks(checks: list, ctx: Context, runners: Optional[dict] = None,
               report: Callable[[Outcome], None] = lambda o: None) -> list:
    """Run ``checks`` in order; a check whose ``base`` did not pass is skipped (the base's failure is reported)."""
    runners = runners or RUNNERS
    done: dict = {}
    for check in checks:
        if check.kind == "skip":
            outcome = Outcome(check, "skip", check.reason)
        elif check.base and done.get(check.base, Outcome(check, "fail")).status != "pass":
            outcome = Outcome(check, "skip", f"needs {check.base}, which did not pass")
        else:
            try:
                outcome = runners[check.kind](check, ctx, done)
            except Exception as exc:  # one broken check must not hide the others
                outcome = Outcome(check, "fail", f"{type(exc).__name__}: {exc}")
        done[check.name] = outcome
        report(outcome)
    return list(done.values())


NO_GPU = ("gpu-check: no CUDA GPU is visible to torch (torch.cuda.is_available() is False), so nothing was run. "
          "Run `make gpu-check` on a GPU machine; `--plan --gpus N --capability X.Y` shows what it would run there.")


#: The first line of ``--help``.
DESCRIPTION = ("gpu-check, the first thing to run on a GPU machine: short real trainings that exercise every GPU "
               "path we ship.")


def _hypothetical(args) -> GpuInfo:
    major, minor = (int(x) for x in args.capability.split("."))
    return GpuInfo(name=args.gpu_name, capability=(major, minor), count=args.gpus, cuda_version=args.cuda,
                   te_available=args.transformer_engine)


def main(argv: Optional[list] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="gpu_check.py", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default=str(REPO / "runs" / "gpu-check"), help="data, runs and logs (reused)")
    p.add_argument("--megatron-lm", default=os.environ.get("REGMIX_MEGATRON_LM"),
                   help="a Megatron-LM checkout: also run its pretrain_gpt.py (default $REGMIX_MEGATRON_LM)")
    p.add_argument("--plan", action="store_true", help="print the checks and exit without running them")
    p.add_argument("--gpus", type=int, help="with --plan: describe a machine with this many GPUs")
    p.add_argument("--capability", default="9.0", help="with --plan --gpus: their compute capability")
    p.add_argument("--cuda", default="12.8", help="with --plan --gpus: torch's CUDA version")
    p.add_argument("--transformer-engine", action="store_true", help="with --plan --gpus: TE importable")
    p.add_argument("--gpu-name", default="GPU", help="with --plan --gpus: the GPU's name")
    args = p.parse_args(argv)
    if args.gpus is not None and not args.plan:
        p.error("--gpus describes a machine for --plan only; without --plan the checks run on this machine")
    gpu = _hypothetical(args) if args.gpus is not None else detect_gpu()
    if gpu is None:
        print(NO_GPU)
        return 0
    checks = plan_checks(gpu, args.megatron_lm)
    if args.plan:
        print(format_plan(checks, gpu))
        return 0
    workdir = Path(args.workdir).resolve()
    print(format_plan(checks, gpu), flush=True)
    domains_json, data_args = prepare_data(workdir)
    ctx = Context(workdir=workdir, domains_json=domains_json, gpu=gpu, megatron_lm=args.megatron_lm,
                  megatron_data_args=data_args)
    outcomes = run_checks(checks, ctx, report=lambda o: print(f"  {o.check.name}: {o.status.upper()} {o.detail}",
                                                              flush=True))
    print(format_table(outcomes, gpu))
    print(f"logs and runs: {workdir}")
    return exit_code(outcomes)
