"""Verdicts on mixtures trained with several seeds and scored on a sample of documents: is a difference in target
loss beyond noise?

Pure core (the standard library and numpy). The evaluation calls it with each compared mixture's per-seed
target losses and the document sd of each comparison; the tests call it with constructed numbers.

**The unit of "sd"** is the sd of the compared difference of means, from both sources of noise
(:mod:`.document_noise`):

- the *seeds*: :func:`~regmix_megatron.runs.noise.pooled_seed_sd` pools the seed-to-seed sample variances of every
  mixture trained with two or more seeds (``sqrt(sum((n_i - 1) s_i^2) / sum(n_i - 1))``: how far one run's loss
  moves when only the seed changes; one yardstick for every baseline, with ``sum(n_i - 1)`` degrees of freedom);
  a difference of two means over ``n_a`` and ``n_b`` seeds moves by ``pooled * sqrt(1/n_a + 1/n_b)``;
- the *documents*: the paired bootstrap over the evaluation documents (the same documents for both mixtures)
  gives how far the difference moves with which documents were drawn;

combined as independent errors, ``sqrt(seed^2 + document^2)``. Each part is reported, and which dominates. The
paired differences over shared seeds are reported too (:attr:`Comparison.paired_mean`,
:attr:`Comparison.paired_sd`).

**The verdict.** The difference ``regmix mean - baseline mean`` (negative: RegMix is better) is *better* when it
is below ``-threshold_sd`` sd, *worse* when above ``+threshold_sd`` sd, and *within noise* otherwise; without a
measured seed noise (no mixture with two seeds, or an sd of exactly 0) it is *noise not measured* and never a win.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Mapping, Sequence

from ..configs import Field
from ..runs.noise import seed_stats
from .document_noise import NoiseOfDifference, seed_sd_of_difference

if TYPE_CHECKING:
    from .evaluation import Evaluation

BETTER, WORSE, WITHIN_NOISE, UNMEASURED = "better", "worse", "within noise", "noise not measured"
VERDICTS = (BETTER, WORSE, WITHIN_NOISE, UNMEASURED)
#: The default threshold: a win must exceed this many sd.
DEFAULT_THRESHOLD_SD = 2.0


@dataclass(frozen=True)
class Comparison:
    """RegMix against one baseline."""

    baseline: str
    regmix_mean: float
    baseline_mean: float
    difference: float
    """``regmix_mean - baseline_mean``: negative when RegMix is better (lower loss)."""
    sd: float | None
    """The unit: the combined sd of the difference (seeds and documents; the module docstring)."""
    num_sd: float | None
    """``|difference| / sd``."""
    verdict: Literal["better", "worse", "within noise", "noise not measured"]
    """Beyond ``threshold_sd`` sd better or worse, within noise, or no noise measured (never a win)."""
    num_pairs: int
    """Seeds both were trained with."""
    paired_mean: float | None
    """Mean of the per-seed differences RegMix - baseline over the shared seeds."""
    paired_sd: float | None
    """Their sample sd (two or more pairs)."""
    noise: NoiseOfDifference | None = None
    """``sd`` by part: the seeds' and the documents' (None when no seed noise was given)."""

    @property
    def text(self) -> str:
        """``better by 0.41 (3.4 sd)``, ``within noise (+0.02, 0.5 sd)``, ``worse by 0.10 (2.5 sd)``."""
        if self.verdict == UNMEASURED:
            return f"{self.verdict} ({self.difference:+.3f})"
        if self.verdict == WITHIN_NOISE:
            return f"within noise ({self.difference:+.3f}, {self.num_sd:.1f} sd)"
        return f"{self.verdict} by {abs(self.difference):.3f} ({self.num_sd:.1f} sd)"

    def to_json(self) -> dict:
        return {"baseline": self.baseline, "regmix_mean": self.regmix_mean, "baseline_mean": self.baseline_mean,
                "regmix_minus_baseline": self.difference, "sd": self.sd, "num_sd": self.num_sd,
                "verdict": self.verdict, "text": self.text, "num_pairs": self.num_pairs,
                "paired_mean": self.paired_mean, "paired_sd": self.paired_sd,
                **(self.noise or NoiseOfDifference(seed_sd=None, document_sd=None)).to_json()}

    @classmethod
    def from_json(cls, doc: Field) -> "Comparison":
        """Read :meth:`to_json`'s form (``text`` is derived from the rest)."""
        return cls(baseline=doc["baseline"].text(), regmix_mean=doc["regmix_mean"].number(),
                   baseline_mean=doc["baseline_mean"].number(), difference=doc["regmix_minus_baseline"].number(),
                   sd=doc["sd"].maybe(Field.number), num_sd=doc["num_sd"].maybe(Field.number),
                   verdict=doc["verdict"].choice(VERDICTS),
                   num_pairs=doc["num_pairs"].count(), paired_mean=doc["paired_mean"].maybe(Field.number),
                   paired_sd=doc["paired_sd"].maybe(Field.number), noise=_noise_from_json(doc))

    @property
    def parts_text(self) -> str:
        """``; sd 0.0123 from seeds 0.0056 and documents 0.0110 (documents dominate)``, or ``; sd 0.0082 from seeds
        only (documents not measured)``; empty without a measured seed noise."""
        if self.noise is None or self.noise.combined_sd is None:
            return ""
        n = self.noise
        if n.document_sd is None:
            return f"; sd {n.combined_sd:.4f} from seeds only (documents not measured)"
        which = {"seeds": "seeds dominate", "documents": "documents dominate"}.get(n.dominant, "balanced")
        return f"; sd {n.combined_sd:.4f} from seeds {n.seed_sd:.4f} and documents {n.document_sd:.4f} ({which})"


def _noise_from_json(doc: Field) -> NoiseOfDifference | None:
    """The parts of the sd; None for a file written before they were recorded, or without a measured seed sd."""
    seed_sd = doc.get("seed_sd").maybe(Field.number)
    if seed_sd is None:
        return None
    return NoiseOfDifference(seed_sd=seed_sd, document_sd=doc.get("document_sd").maybe(Field.number))


def compare(name: str, regmix: Mapping[int, float], baseline: Mapping[int, float], pooled_sd: float | None, *,
            document_sd: float | None = None, threshold_sd: float = DEFAULT_THRESHOLD_SD) -> Comparison:
    """RegMix's per-seed losses against a baseline's. ``pooled_sd``: the pooled seed sd of one run; ``document_sd``:
    the paired document bootstrap's sd of this difference (None: not measured, counts as 0). The unit is their
    combination (the module docstring)."""
    if threshold_sd <= 0:
        raise ValueError(f"threshold_sd={threshold_sd}: use a positive number of sd")
    a, b = seed_stats(regmix), seed_stats(baseline)
    difference = a.mean - b.mean
    shared = sorted(set(regmix) & set(baseline))
    pairs = [float(regmix[s]) - float(baseline[s]) for s in shared]
    paired = seed_stats(pairs) if pairs else None
    measured = pooled_sd is not None and math.isfinite(pooled_sd) and pooled_sd > 0
    noise = NoiseOfDifference(seed_sd_of_difference(pooled_sd, a.num_seeds, b.num_seeds), document_sd) \
        if measured else None
    sd = noise.combined_sd if noise is not None else None
    if sd is None:
        verdict, num_sd = UNMEASURED, None
    else:
        num_sd = abs(difference) / sd
        if num_sd > threshold_sd:
            verdict = BETTER if difference < 0 else WORSE
        else:
            verdict = WITHIN_NOISE
    return Comparison(name, a.mean, b.mean, difference, sd, num_sd, verdict, len(pairs),
                      paired.mean if paired else None, paired.sd if paired else None, noise)


def aim_met(comparisons: Mapping[str, Comparison], must_beat: Sequence[str]) -> bool:
    """The demo's aim: RegMix is *better* than every baseline of ``must_beat`` and *worse* than none."""
    beaten = all(name in comparisons and comparisons[name].verdict == BETTER for name in must_beat)
    return beaten and not any(c.verdict == WORSE for c in comparisons.values())


# ---- wording of an evaluation (``evaluation.json``, written by the pipeline's evaluate stage) ------------------
def verdict_lines(evaluation: "Evaluation", short: bool = False) -> list[str]:
    """The verdicts as lines for people: one per baseline, then the rank invariance and (long form) the aim."""
    comp = evaluation.comparison
    noise = evaluation.noise
    lines = []
    for name, c in comp.baselines.items():
        lines.append(f"{name}: {c.text}" if short else
                     f"RegMix {c.regmix_mean:.4f} vs {name} {c.baseline_mean:.4f}: {c.text}{c.parts_text}")
    rank = evaluation.rank_invariance
    rho = rank.spearman
    verdict = "n/a" if rho is None else ("pass" if rank.passed else "fail")
    lines.append(f"rank invariance rho {'n/a' if rho is None else f'{rho:.2f}'} over {rank.num_mixtures} "
                 f"mixtures (threshold {rank.threshold:.2f}: {verdict})")
    if not short:
        sd = "n/a" if noise.sd is None else f"{noise.sd:.4f}"
        lines.append(f"test loss on {evaluation.target.to_json()!r}; seed sd of one run {sd} (pooled, {noise.dof} "
                     f"dof); each verdict's sd is its difference's, seeds and documents combined; a win needs more "
                     f"than {noise.threshold_sd:g} sd")
        lines.append("aim met: RegMix beats " + " and ".join(comp.must_beat) + " beyond noise and loses to none"
                     if comp.aim_met else "aim not met: " + aim_shortfall(evaluation))
    return lines


def aim_shortfall(evaluation: "Evaluation") -> str:
    """Why the aim was not met, in words (no win is claimed within noise)."""
    comp = evaluation.comparison
    parts = [f"vs {b}: {comp.baselines[b].text}" for b in comp.must_beat if comp.baselines[b].verdict != BETTER]
    parts += [f"vs {b}: {c.text}" for b, c in comp.baselines.items() if c.verdict == WORSE]
    if not comp.must_beat:
        parts.append("neither natural nor uniform was trained")
    return "; ".join(parts) or WITHIN_NOISE
