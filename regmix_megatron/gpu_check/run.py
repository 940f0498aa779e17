"""Running gpu-check: its tiny data, each check as a subprocess, and the command (tools/gpu_check.py)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from ..fileio import atomic_write_yaml
from ..runs.run_dir import RunDir, read_metrics
from .judge import Outcome, exit_code, format_table, judge_layout, judge_resume, judge_training
from .machine import DEPENDENCIES, Dependencies, GpuInfo, detect_gpu, explain_no_gpu, probe_dependencies
from .megatron_lm import run_megatron_lm_check
from .plan import RESUME_STEP, Check, format_plan, llama_flops_per_token, peak_flops, plan_checks
from .process import REPO, Context, failed, launcher, run_logged

FIXTURE_CORPUS = REPO / "tests" / "fixtures" / "corpus"


def prepare_data(workdir: Path) -> tuple:
    """Tokenizer + indexed datasets of the corpus fixture, and the natural mixture's Megatron-LM blend file
    without its test split: ``(domains.json, per_split_data_args.json)``. Reused when already there."""
    from ..export.files import export
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
    exported = export(registry, Mixture.from_array(registry.names, registry.prior()), workdir / "export")
    per_split = read_json(exported["per_split_data_args"])
    # Beside the export folder, not in it: the export replaces that folder whole and refuses foreign files.
    data_args = atomic_write_json(workdir / "megatron_lm_data_args.json", {**per_split, "test": None})
    return domains_json, Path(data_args)


def _read_rows(run_dir: Path) -> list:
    return read_metrics(run_dir)


def _read_result(run_dir: Path) -> dict:
    """``result.json`` as written (the judges check its status and losses themselves)."""
    return json.loads(RunDir(run_dir).result.read_text())


def _train(check: Check, ctx: Context, out: Path, config_of: Check) -> tuple:
    """Train ``config_of``'s config into ``out`` as ``check``: ``(code, log text, result or None, rows)``."""
    config = ctx.workdir / "configs" / f"{config_of.name}.yaml"
    atomic_write_yaml(config, {**config_of.config, "domains": str(ctx.domains_json)})
    cmd = launcher(check.nproc, check.torchrun) + ["-m", "regmix_megatron.cli", "train", str(config), "--output-dir",
                                                    str(out)]
    code, text = run_logged(cmd, ctx.workdir / "logs" / f"{check.name}.log", ctx, check.nproc)
    if code != 0 or not RunDir(out).result.is_file():
        return code, text, None, []
    return code, text, _read_result(out), _read_rows(out)


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


def run_train_check(check: Check, ctx: Context, done: dict) -> Outcome:
    out = ctx.workdir / "runs" / check.name
    shutil.rmtree(out, ignore_errors=True)
    code, text, result, rows = _train(check, ctx, out, check)
    if result is None:
        return failed(check, code, text, f"logs/{check.name}.log")
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
    RunDir(out).result.unlink()
    for step, path in list_checkpoints(out):
        if step > RESUME_STEP:
            shutil.rmtree(path)
    code, text, result, rows = _train(replace(check, nproc=base.nproc), ctx, out, base)
    if result is None:
        return failed(check, code, text, f"logs/{check.name}.log")
    problems = judge_resume(_read_result(source), result, rows, text)
    return Outcome(check, "fail" if problems else "pass", "; ".join(problems))


# ---- the command ---------------------------------------------------------------------------------------------

RUNNERS = {"train": run_train_check, "resume": run_resume_check, "megatron-lm": run_megatron_lm_check}


def _outcome_before_running(check: Check, deps: Dependencies, done: dict) -> Optional[Outcome]:
    """The outcome of a check that cannot run here (not applicable, a dependency missing, its base not passed)."""
    if check.kind == "n/a":
        return Outcome(check, "n/a", check.reason)
    lacking = deps.lacking(check.needs)
    if lacking:
        return Outcome(check, "not-tested", "; ".join(f"needs {n}: {deps.missing[n]}" for n in lacking),
                       missing=lacking)
    if check.base and done.get(check.base, Outcome(check, "fail")).status != "pass":
        return Outcome(check, "skip", f"needs {check.base}, which did not pass")
    return None


def run_checks(checks: list, ctx: Context, runners: Optional[dict] = None,
               report: Callable[[Outcome], None] = lambda o: None) -> list:
    """Run ``checks`` in order: what cannot run here gets its outcome without running (not applicable, NOT TESTED
    for a missing dependency, skipped when its base did not pass); a check that raises has failed."""
    runners = runners or RUNNERS
    uncompiled = not ctx.deps.has("compiler")
    done: dict = {}
    for check in checks:
        outcome = _outcome_before_running(check, ctx.deps, done)
        if outcome is None:
            try:
                outcome = runners[check.kind](check, ctx, done)
            except Exception as exc:  # one broken check must not hide the others
                outcome = Outcome(check, "fail", f"{type(exc).__name__}: {exc}")
            if uncompiled and ("te" in check.needs or check.kind == "megatron-lm"):
                outcome = replace(outcome, notes=outcome.notes + ("fused kernels ran uncompiled: no C compiler",))
        done[check.name] = outcome
        report(outcome)
    return list(done.values())


#: The first line of ``--help``.
DESCRIPTION = ("gpu-check, the first thing to run on a GPU machine: short real trainings that exercise every GPU "
               "path we ship. A path whose dependency is missing is NOT TESTED and fails the run unless "
               "--allow-missing names that dependency.")


def _hypothetical(args) -> tuple:
    """The GPU and dependencies ``--plan --gpus`` describes: everything but what the flags say is missing."""
    major, minor = (int(x) for x in args.capability.split("."))
    missing = {} if args.transformer_engine else {"te": "not installed (--plan without --transformer-engine)"}
    if not args.megatron_lm:
        missing["megatron-lm"] = "no Megatron-LM checkout (give --megatron-lm or set REGMIX_MEGATRON_LM)"
    return (GpuInfo(name=args.gpu_name, capability=(major, minor), count=args.gpus, cuda_version=args.cuda),
            Dependencies(missing=missing))


def _parser():
    import argparse

    p = argparse.ArgumentParser(prog="gpu_check.py", description=DESCRIPTION,
                                epilog="dependencies (for --allow-missing):\n" + "\n".join(
                                    f"  {name}: {what}" for name, what in DEPENDENCIES.items()),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default=str(REPO / "runs" / "gpu-check"), help="data, runs and logs (reused)")
    p.add_argument("--megatron-lm", default=os.environ.get("REGMIX_MEGATRON_LM"),
                   help="a Megatron-LM checkout: also run its pretrain_gpt.py (default $REGMIX_MEGATRON_LM)")
    p.add_argument("--allow-missing", action="append", default=[], choices=sorted(DEPENDENCIES), metavar="NAME",
                   help="do not fail the run for the checks NAME's absence leaves NOT TESTED (repeatable; "
                        f"one of {', '.join(DEPENDENCIES)})")
    p.add_argument("--plan", action="store_true", help="print the checks and exit without running them")
    p.add_argument("--gpus", type=int, help="with --plan: describe a machine with this many GPUs")
    p.add_argument("--capability", default="9.0", help="with --plan --gpus: their compute capability")
    p.add_argument("--cuda", default="12.8", help="with --plan --gpus: torch's CUDA version")
    p.add_argument("--transformer-engine", action="store_true", help="with --plan --gpus: TE importable")
    p.add_argument("--gpu-name", default="GPU", help="with --plan --gpus: the GPU's name")
    return p


def main(argv: Optional[list] = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.gpus is not None and not args.plan:
        p.error("--gpus describes a machine for --plan only; without --plan the checks run on this machine")
    if args.gpus is not None:
        gpu, deps = _hypothetical(args)
    else:
        gpu = detect_gpu()
        if gpu is None:
            message, code = explain_no_gpu()
            print(message)
            return code
        deps = probe_dependencies(args.megatron_lm)
    checks = plan_checks(gpu, deps)
    print(format_plan(checks, gpu, deps), flush=True)
    if args.plan:
        return 0
    workdir = Path(args.workdir).resolve()
    domains_json, data_args = prepare_data(workdir)
    ctx = Context(workdir=workdir, domains_json=domains_json, gpu=gpu, deps=deps, megatron_lm=args.megatron_lm,
                  megatron_data_args=data_args)
    outcomes = run_checks(checks, ctx, report=lambda o: print(f"  {o.check.name}: {o.status.upper()} {o.detail}",
                                                              flush=True))
    print(format_table(outcomes, gpu, args.allow_missing))
    print(f"logs and runs: {workdir}")
    return exit_code(outcomes, args.allow_missing)
