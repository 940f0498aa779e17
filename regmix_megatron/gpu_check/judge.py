"""How gpu-check judges a check from its outputs, and the table and exit code of a whole run (pure)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

from .machine import GpuInfo
from .plan import MEGATRON_LM_SHAPE, NUM_STEPS, PIPELINE_TOLERANCE, RESUME_TOLERANCE, Check

MIN_LOSS_DROP = 0.1
"""The mean train loss of the last 3 steps must be this much below that of the first 3 (nats)."""

_ITERATION = re.compile(r"iteration\s+(\d+)/\s*(\d+) \|.*?elapsed time per iteration \(ms\): ([\d.]+)"
                        r".*?lm loss: ([-+\d.eE]+)")
_VALIDATION = re.compile(r"validation(?:-\d+)? loss at iteration (\d+)[^|]*\| lm loss value: ([-+\d.eE]+)")


# ---- outcomes and the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    check: Check
    status: str
    """``pass``, ``fail``, ``not-tested`` (a dependency in ``missing`` is), ``n/a`` (this GPU cannot run it) or
    ``skip`` (the check it needs did not pass; that one's outcome says why)."""
    detail: str = ""
    tokens_per_s: Optional[float] = None
    mfu: Optional[float] = None
    missing: tuple = ()
    """The dependencies a ``not-tested`` check lacks."""
    notes: tuple = ()
    """What else the reader must know about how it ran (e.g. fusions uncompiled)."""

    def allowed(self, allow_missing) -> bool:
        """A ``not-tested`` outcome whose every missing dependency ``allow_missing`` names."""
        return self.status == "not-tested" and set(self.missing) <= set(allow_missing)


_LABELS = {"pass": "PASS", "fail": "FAIL", "not-tested": "NOT TESTED", "n/a": "NOT APPLICABLE", "skip": "SKIPPED"}


def _result(o: Outcome, allow_missing) -> str:
    label = _LABELS[o.status]
    if o.status == "not-tested":
        label += " (allowed: --allow-missing " + " ".join(o.missing) + ")" if o.allowed(allow_missing) else ""
    text = label + (f": {o.detail}" if o.detail and o.status != "pass" else "")
    return text + "".join(f" [{n}]" for n in o.notes)


def format_table(outcomes: list, gpu: GpuInfo, allow_missing=()) -> str:
    """One line per check: name, what ran, GPUs, tokens/s, MFU, result (and why, when not passed)."""
    rows = [("check", "what", "GPUs", "tokens/s", "MFU", "result")]
    for o in outcomes:
        rows.append((o.check.name, o.check.what, str(o.check.nproc),
                     "-" if o.tokens_per_s is None else f"{o.tokens_per_s:,.0f}",
                     "-" if o.mfu is None else f"{o.mfu:.1%} {o.check.precision}", _result(o, allow_missing)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"gpu-check on {gpu.count} x {gpu.name} (compute capability {gpu.capability[0]}.{gpu.capability[1]}, "
             f"CUDA {gpu.cuda_version}); MFU against the dense datasheet peak of the check's precision"]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i in (0, 1) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     + "  " + r[5])
    count = {status: sum(o.status == status for o in outcomes) for status in _LABELS}
    allowed = sum(o.allowed(allow_missing) for o in outcomes)
    lines.append(f"{count['pass']} passed, {count['fail']} failed, {count['not-tested']} not tested"
                 + (f" ({allowed} allowed by --allow-missing)" if allowed else "")
                 + f", {count['n/a']} not applicable, {count['skip']} skipped")
    return "\n".join(lines)


def exit_code(outcomes: list, allow_missing=()) -> int:
    """1 if any check failed, or was not tested for a dependency ``allow_missing`` does not name; else 0 (what
    this GPU cannot run, and checks skipped after a failure already counted, do not fail the run)."""
    bad = [o for o in outcomes if o.status == "fail" or (o.status == "not-tested" and not o.allowed(allow_missing))]
    return 1 if bad else 0


# ---- judging a run from its outputs --------------------------------------------------------------------------


def judge_training(rows: list, result: dict, domains: list) -> list:
    """Problems of a finished run (empty: it passed): completed, every evaluated domain (training and
    evaluation-only) a finite validation loss, train
    loss falling by MIN_LOSS_DROP, validation loss lower at the end than at the first evaluation."""
    if result.get("status") != "completed":
        return [f"status {result.get('status')!r}"]
    problems = []
    val = result.get("val_loss", {})
    if sorted(val) != sorted(domains) or not all(math.isfinite(v) for v in val.values()):
        problems.append(f"validation losses {val} do not cover the {len(domains)} domains with finite values")
    train = [r["train_loss"] for r in rows if "train_loss" in r]
    if len(train) < 6 or sum(train[-3:]) / 3 > sum(train[:3]) / 3 - MIN_LOSS_DROP:
        problems.append(f"train loss did not fall by {MIN_LOSS_DROP}: {[round(x, 3) for x in train]}")
    evals = [r["val_loss_average"] for r in rows if "val_loss_average" in r]
    if len(evals) < 2 or evals[-1] >= evals[0]:
        problems.append(f"validation loss did not fall: {evals}")
    return problems


def judge_resume(original: dict, resumed: dict, rows: list, log_text: str) -> list:
    """Problems of a run resumed from a checkpoint, against the uninterrupted run."""
    if "resumed from" not in log_text:
        return ["the run did not resume from a checkpoint"]
    if resumed.get("status") != "completed":
        return [f"status {resumed.get('status')!r}"]
    steps = [r["step"] for r in rows]
    problems = [] if steps == sorted(set(steps)) and steps[-1] == NUM_STEPS else [f"metrics steps {steps}"]
    worst = max(abs(resumed["val_loss"][d] - v) for d, v in original["val_loss"].items())
    if worst > RESUME_TOLERANCE:
        problems.append(f"final validation losses differ from the uninterrupted run by up to {worst:.4f} "
                        f"(> {RESUME_TOLERANCE})")
    return problems


def judge_layout(reference_rows: list, rows: list, tolerance: Optional[float]) -> list:
    """Problems of a parallel layout's run against the TP=1 reference: per-step train loss within ``tolerance``,
    or (None) final average validation loss within PIPELINE_TOLERANCE."""
    if [r["step"] for r in rows] != [r["step"] for r in reference_rows]:
        return ["its metrics rows are not those of the TP=1 reference"]
    if tolerance is None:
        ref, own = (next(r["val_loss_average"] for r in reversed(x) if "val_loss_average" in r)
                    for x in (reference_rows, rows))
        if abs(own - ref) > PIPELINE_TOLERANCE:
            return [f"final validation loss {own:.4f} vs {ref:.4f} for TP=1 (tolerance {PIPELINE_TOLERANCE})"]
        return []
    step, ref, own = max(((a["step"], a["train_loss"], b["train_loss"]) for a, b in zip(reference_rows, rows)),
                         key=lambda t: abs(t[1] - t[2]))
    if abs(own - ref) > tolerance:
        return [f"train loss at step {step}: {own:.6f} vs {ref:.6f} for TP=1 (tolerance {tolerance:g})"]
    return []


def judge_megatron_lm(text: str, num_domains: int) -> tuple:
    """``(problems, tokens/s)`` from a ``pretrain_gpt.py`` log: every iteration ran, the loss fell, and the last
    evaluation reported one validation loss per domain."""
    iterations = [(int(i), int(n), float(ms), float(loss)) for i, n, ms, loss in _ITERATION.findall(text)]
    if not iterations or iterations[-1][0] != iterations[-1][1]:
        return [f"training did not reach its last iteration ({len(iterations)} iteration lines)"], None
    problems = []
    losses = [it[3] for it in iterations]
    if sum(losses[-3:]) / 3 > sum(losses[:3]) / 3 - MIN_LOSS_DROP:
        problems.append(f"lm loss did not fall by {MIN_LOSS_DROP}: {losses}")
    last = iterations[-1][0]
    validations = [float(v) for i, v in _VALIDATION.findall(text) if int(i) == last]
    if len(validations) < num_domains or not all(math.isfinite(v) for v in validations):
        problems.append(f"{len(validations)} validation losses at iteration {last}, expected {num_domains}")
    steady = [it[2] for it in iterations[1:]] or [iterations[0][2]]  # the first iteration includes warm-up
    s = MEGATRON_LM_SHAPE
    return problems, s["global_batch_size"] * s["seq_length"] / (sorted(steady)[len(steady) // 2] / 1000.0)
