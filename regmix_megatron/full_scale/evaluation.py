"""Evaluation of the pipeline's outcome (pure: numpy, the regression metrics and the verdict logic).

1. Target comparison, on the **test** split: each compared mixture's target loss per seed at target scale
   (RegMix, natural and uniform with every seed, paired: the same seeds for each; the other baselines once),
   its mean and sd (with schedules also ``regmix_static``, the best static mixture under the same model, as
   a baseline), and a verdict per baseline from :mod:`regmix_megatron.full_scale.verdict` ("better by 0.41 (3.4 sd)",
   "within noise"), the sd being that of the compared difference, seeds and documents combined: the pooled seed
   sd of the mixtures trained with several seeds, and the paired bootstrap over the test documents
   (:mod:`.document_evidence`; null where a run recorded no per-document losses: "documents not measured"). Each
   mixture's test loss is also broken down by the source of the target's documents, and set beside the fit
   model's prediction for it (:mod:`.predictions`). The mixture was chosen on the validation split, so the numbers
   that judge it were never used to choose it.
2. Rank invariance, on the **validation** split (the split the method ranks mixtures on): mixtures trained at
   both scales, ranked by their proxy-scale and their target-scale target loss (mean over seeds); the Spearman
   correlation, a stated pass/fail threshold, and the level chance reaches for as many mixtures.
3. The fit: which regressor drove the search and why, its cross-validated Spearman with the per-fold spread, next
   to the ceiling the proxy seed noise allows (from the fit stage).
4. The confirmation round (``confirmation``, when it ran): each candidate's proxy-scale validation target loss per
   seed, its mean and sd, its comparison with the search's pick, and which candidate went on as ``regmix`` and why
   (:mod:`regmix_megatron.full_scale.confirmation`).

The document is :class:`Evaluation`, written to ``OUT/evaluation.json`` by :func:`write_evaluation` and read back,
typed and checked field by field, by :func:`read_evaluation` (the report, the verdict lines, ``regmix-megatron
run``'s summary). The runs it is computed from are the target stage's ``runs.json`` records, each run's result
read as :class:`~regmix_megatron.runs.run_dir.RunResult`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..configs import Field, plain_record
from ..errors import DataError
from ..fileio import atomic_write_json, file_or_in_folder, read_json
from ..runs.noise import spearman_critical_value
from ..regression.metrics import pearson, spearman
from ..regression.target import Target
from ..runs.noise import pooled_seed_sd, seed_stats
from ..runs.run_dir import RunResult
from ..runs.document_losses import RunDocumentLosses
from .document_evidence import (DocumentSample, document_sample, document_sds, split_documents,
                                target_losses_by_source)
from .verdict import DEFAULT_THRESHOLD_SD, Comparison, aim_met, compare
from .verdict import verdict_lines  # noqa: F401 (the stage summary's wording)

FORMAT = "regmix-megatron/evaluation/v2"
#: The pipeline's evaluation document, in its output directory.
FILE_NAME = "evaluation.json"
#: The split the target-scale comparison is reported on, and the one every choice was made on.
REPORT_SPLIT, SELECTION_SPLIT = "test", "valid"
#: Baselines RegMix must beat beyond noise for the demo's aim (when they were trained).
MUST_BEAT = ("natural", "uniform")
NOISE_UNIT = ("the sd of each compared difference of means, seeds and documents combined: sqrt(seed_sd^2 + "
              "document_sd^2), where seed_sd = pooled * sqrt(1/n_a + 1/n_b), pooled (this 'sd') being "
              "sqrt(sum((n_i - 1) s_i^2) / sum(n_i - 1)) over the mixtures trained with two or more seeds (how far "
              "one run's test loss moves when only the seed changes), and document_sd the sd of the difference "
              "over a paired bootstrap of the test documents (the same documents for both mixtures)")


def split_losses(result: RunResult, split: str) -> Mapping[str, float]:
    """A run's per-domain losses on ``split``: ``val_loss`` (valid) or ``split_loss[split]``."""
    return result.losses(split, validation_split=SELECTION_SPLIT)


def target_loss(result: RunResult, target: Target, split: str = SELECTION_SPLIT) -> float:
    """A run's loss on the target (:meth:`Target.value` of its per-domain ``split`` losses)."""
    return target.value(split_losses(result, split), where=f"run {result.run_id}")


def mixture_entry(label: str, run: Mapping, target: Target, predicted: Mapping[str, float],
                  predicted_sd: Mapping[str, float | None] | None = None,
                  by_source: Mapping[str, Mapping[str, float]] | None = None) -> "MixtureOutcome":
    """One compared mixture: its weights, per-seed test (``target_losses``) and validation target losses at
    target scale, their mean and sd, its proxy-scale validation target loss, its predicted loss with its sd (None
    where none was given, or its regressor gives no uncertainty) and its test loss by source (``by_source``)."""
    where = f"runs.json: runs.{label}"
    per_seed = {str(seed): RunResult.from_json_obj(rec["result"], f"{where}.target.{seed}.result")
                for seed, rec in sorted(run["target"].items(), key=lambda kv: int(kv[0]))}
    test = {seed: target_loss(res, target, REPORT_SPLIT) for seed, res in per_seed.items()}
    valid = {seed: target_loss(res, target, SELECTION_SPLIT) for seed, res in per_seed.items()}
    stats = seed_stats(test)
    first = next(iter(per_seed.values()))
    proxy = (run.get("proxy") or {}).get("result")
    proxy = RunResult.from_json_obj(proxy, f"{where}.proxy.result") if proxy else None
    return MixtureOutcome(
        label=label, mixture=dict(run["mixture"]), mixture_hash=run.get("mixture_hash"),
        run_ids={seed: res.run_id for seed, res in per_seed.items()}, target_losses=test, mean=stats.mean,
        sd=stats.sd, num_seeds=stats.num_seeds, valid_losses=valid, valid_mean=seed_stats(valid).mean,
        test_loss_by_domain={k: float(v) for k, v in split_losses(first, REPORT_SPLIT).items()},
        proxy_loss=target_loss(proxy, target) if proxy else None, predicted_loss=predicted.get(label),
        predicted_sd=(predicted_sd or {}).get(label), test_loss_by_source=dict(by_source or {}))


def evaluate(target: Target | str, runs: Mapping[str, Mapping], *, predicted: Mapping[str, float] | None = None,
             predicted_sd: Mapping[str, float | None] | None = None, fit: Mapping | None = None,
             documents: Mapping[str, Sequence[RunDocumentLosses | None]] | None = None,
             document_sources: Mapping[str, Sequence[str]] | None = None, rank_threshold: float = 0.6,
             threshold_sd: float = DEFAULT_THRESHOLD_SD,
             confirmation: "ConfirmationSummary | None" = None) -> "Evaluation":
    """The evaluation from the target stage's ``runs.json`` ``runs`` (label -> ``{"mixture", "proxy":
    {"result"}, "target": {seed: {"result"}}}``; labels ``regmix``, baselines, ``sweep:<run id>``).
    ``documents``: label -> each target-scale run's per-document losses (None for a run without them; a label
    left out has none); ``document_sources``: domain -> the source of each of its test documents."""
    target = Target.parse(target)
    if "regmix" not in runs:
        raise DataError("evaluation needs the RegMix mixture's target runs (label 'regmix')")
    docs = {lab: split_documents(list((documents or {}).get(lab) or []), REPORT_SPLIT) for lab in runs}
    sources = dict(document_sources or {})
    mixtures = {lab: mixture_entry(lab, run, target, dict(predicted or {}), predicted_sd,
                                   target_losses_by_source(docs[lab], target, sources)) for lab, run in runs.items()}
    sd, dof = pooled_seed_sd([list(m.target_losses.values()) for m in mixtures.values()])
    regmix = mixtures["regmix"].target_losses
    baselines = [lab for lab in mixtures if lab != "regmix" and not lab.startswith("sweep:")]
    document_sd = document_sds(docs["regmix"], {b: docs[b] for b in baselines}, target)
    comparisons = {b: compare(b, regmix, mixtures[b].target_losses, sd, document_sd=document_sd[b],
                              threshold_sd=threshold_sd) for b in baselines}
    must_beat = [b for b in MUST_BEAT if b in comparisons]
    ranked = sorted(mixtures, key=lambda lab: mixtures[lab].mean)
    return Evaluation(
        target=target, split=REPORT_SPLIT, selection_split=SELECTION_SPLIT,
        noise=NoiseUnit(unit=NOISE_UNIT, sd=sd, dof=dof, threshold_sd=threshold_sd), mixtures=mixtures,
        comparison=Verdicts(regmix_mean=mixtures["regmix"].mean, baselines=comparisons, must_beat=tuple(must_beat),
                            aim_met=aim_met(comparisons, must_beat) if must_beat else False,
                            regmix_rank=1 + ranked.index("regmix"), num_mixtures=len(mixtures)),
        rank_invariance=rank_invariance(mixtures, rank_threshold), fit=FitChoice.from_stage(fit),
        documents=document_sample(docs["regmix"], target, sources),
        confirmation=confirmation)


def rank_invariance(mixtures: Mapping[str, "MixtureOutcome"], threshold: float) -> "RankInvariance":
    """Spearman of proxy- vs target-scale validation target losses over the mixtures trained at both scales."""
    rows = [RankPoint(label=m.label, proxy_loss=m.proxy_loss, target_loss=m.valid_mean)
            for m in mixtures.values() if m.proxy_loss is not None]
    rho = None
    pear = None
    if len(rows) >= 3:
        x = np.array([r.proxy_loss for r in rows])
        y = np.array([r.target_loss for r in rows])
        rho, pear = _finite_or_none(spearman(x, y)), _finite_or_none(pearson(x, y))
    return RankInvariance(split=SELECTION_SPLIT, num_mixtures=len(rows), spearman=rho, pearson=pear,
                          threshold=threshold, passed=rho is not None and rho >= threshold,
                          chance_level=spearman_critical_value(len(rows)), mixtures=tuple(rows))


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def spread_indices(values: Sequence[float], num: int) -> list[int]:
    """Indices of ``num`` entries spread evenly over the sorted ``values`` (best, worst and between), so the
    rank-invariance set covers the sweep's loss range. Deterministic; ties broken by index."""
    values = np.asarray(values, dtype=np.float64)
    if num <= 0 or values.size == 0:
        return []
    order = np.argsort(values, kind="stable")
    if num >= values.size:
        return [int(i) for i in order]
    picks = np.unique(np.round(np.linspace(0, values.size - 1, num)).astype(int))
    return [int(order[p]) for p in picks]


# ---- the document (evaluation.json) ---------------------------------------------------------------------------
def _floats(value: Field) -> dict[str, float]:
    return {key: item.number() for key, item in value.fields().items()}


@dataclass(frozen=True)
class MixtureOutcome:
    """One compared mixture at target scale (``mixtures.<label>``)."""

    label: str
    """``regmix``, a baseline's name (``natural``, ...) or ``sweep:<run id>``."""
    mixture: Mapping[str, float]
    """Its weights (a schedule's token shares over all phases)."""
    mixture_hash: str | None
    """Its hash (a schedule's hash for a schedule)."""
    run_ids: Mapping[str, str | None]
    """Seed -> the target-scale run's id."""
    target_losses: Mapping[str, float]
    """Seed -> target loss on the test split (what the verdicts compare)."""
    mean: float
    """Mean of ``target_losses``."""
    sd: float | None
    """Their sample sd (None with one seed)."""
    num_seeds: int
    """Seeds trained at target scale."""
    valid_losses: Mapping[str, float]
    """Seed -> target loss on the validation split."""
    valid_mean: float
    """Mean of ``valid_losses`` (rank invariance compares it)."""
    test_loss_by_domain: Mapping[str, float]
    """Per domain, the first seed's test loss."""
    proxy_loss: float | None
    """The proxy-scale validation target loss (None when it was not trained at proxy scale)."""
    predicted_loss: float | None
    """The search's prediction (None where it made none)."""
    predicted_sd: float | None
    """The prediction's sd (None without an uncertainty)."""
    test_loss_by_source: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    """Per target domain whose documents record their source, each source's test loss (mean over the seeds:
    summed losses over summed tokens of its documents); empty when the runs have no per-document losses."""

    @classmethod
    def from_json(cls, doc: Field) -> "MixtureOutcome":
        maybe_number = lambda key: doc[key].maybe(Field.number)  # noqa: E731
        return cls(label=doc["label"].text(), mixture=_floats(doc["mixture"]),
                   mixture_hash=doc["mixture_hash"].maybe(Field.text),
                   run_ids={k: v.maybe(Field.text) for k, v in doc["run_ids"].fields().items()},
                   target_losses=_floats(doc["target_losses"]), mean=doc["mean"].number(), sd=maybe_number("sd"),
                   num_seeds=doc["num_seeds"].count(), valid_losses=_floats(doc["valid_losses"]),
                   valid_mean=doc["valid_mean"].number(), test_loss_by_domain=_floats(doc["test_loss_by_domain"]),
                   proxy_loss=maybe_number("proxy_loss"), predicted_loss=maybe_number("predicted_loss"),
                   predicted_sd=maybe_number("predicted_sd"),
                   test_loss_by_source={d: _floats(v) for d, v in doc.get("test_loss_by_source", {}).fields().items()})

    def to_json_obj(self) -> dict:
        return plain_record(self)


@dataclass(frozen=True)
class NoiseUnit:
    """The unit of "sd" (``noise``)."""

    unit: str
    """What it is, in words (:data:`NOISE_UNIT`)."""
    sd: float | None
    """The pooled seed sd (None: no mixture was trained with two or more seeds)."""
    dof: int
    """Its degrees of freedom."""
    threshold_sd: float
    """A verdict needs a difference of more than this many sd."""

    @classmethod
    def from_json(cls, doc: Field) -> "NoiseUnit":
        return cls(unit=doc["unit"].text(), sd=doc["sd"].maybe(Field.number), dof=doc["dof"].count(),
                   threshold_sd=doc["threshold_sd"].number())

    def to_json_obj(self) -> dict:
        return plain_record(self)


@dataclass(frozen=True)
class Verdicts:
    """RegMix against each baseline (``comparison``)."""

    regmix_mean: float
    """RegMix's mean test target loss."""
    baselines: Mapping[str, Comparison]
    """Baseline -> its comparison (rank mixtures ``sweep:<id>`` are not baselines)."""
    must_beat: tuple[str, ...]
    """The baselines of the aim that were trained (natural, uniform)."""
    aim_met: bool
    """RegMix is better than every ``must_beat`` beyond noise and worse than none."""
    regmix_rank: int
    """RegMix's place among the compared mixtures by mean test loss (1: best)."""
    num_mixtures: int
    """Mixtures compared."""

    @classmethod
    def from_json(cls, doc: Field) -> "Verdicts":
        return cls(regmix_mean=doc["regmix_mean"].number(),
                   baselines={k: Comparison.from_json(v) for k, v in doc["baselines"].fields().items()},
                   must_beat=tuple(b.text() for b in doc["must_beat"].items()), aim_met=doc["aim_met"].flag(),
                   regmix_rank=doc["regmix_rank"].count(), num_mixtures=doc["num_mixtures"].count())

    def to_json_obj(self) -> dict:
        return {**plain_record(self), "baselines": {k: c.to_json() for k, c in self.baselines.items()}}


@dataclass(frozen=True)
class RankPoint:
    """One mixture trained at both scales."""

    label: str
    proxy_loss: float
    """Proxy-scale validation target loss."""
    target_loss: float
    """Target-scale validation target loss, mean over seeds."""

    @classmethod
    def from_json(cls, doc: Field) -> "RankPoint":
        return cls(label=doc["label"].text(), proxy_loss=doc["proxy_loss"].number(),
                   target_loss=doc["target_loss"].number())

    def to_json_obj(self) -> dict:
        return plain_record(self)


@dataclass(frozen=True)
class RankInvariance:
    """Do mixtures rank the same at both scales (``rank_invariance``)?"""

    split: str
    """The split the losses are on (the validation split)."""
    num_mixtures: int
    """Mixtures trained at both scales."""
    spearman: float | None
    """Their Spearman correlation (None with fewer than three)."""
    pearson: float | None
    threshold: float
    """The stated pass threshold."""
    passed: bool
    chance_level: float | None
    """What chance alone reaches for as many mixtures in 5% of orderings."""
    mixtures: tuple[RankPoint, ...]

    @classmethod
    def from_json(cls, doc: Field) -> "RankInvariance":
        return cls(split=doc["split"].text(), num_mixtures=doc["num_mixtures"].count(),
                   spearman=doc["spearman"].maybe(Field.number), pearson=doc["pearson"].maybe(Field.number),
                   threshold=doc["threshold"].number(), passed=doc["passed"].flag(),
                   chance_level=doc["chance_level"].maybe(Field.number),
                   mixtures=tuple(RankPoint.from_json(p) for p in doc["mixtures"].items()))

    def to_json_obj(self) -> dict:
        return plain_record(self)


@dataclass(frozen=True)
class FitChoice:
    """The fit behind the search (``fit``, from the fit stage)."""

    regressor: str | None
    """The regressor whose predictions drove the search."""
    regressor_reason: str | None
    """Why it was chosen."""
    cv: Mapping[str, Mapping[str, Any]]
    """Per regressor, its cross-validation: ``spearman`` (pooled), ``fold_mean``, ``fold_sd``, ``folds``."""
    noise: Mapping[str, Any]
    """The proxy seed noise (:func:`regmix_megatron.runs.noise.proxy_noise`): ``sd``, ``dof``, ``ceiling``, ..."""
    uncertainty: str | None = None
    """What each mixture's ``predicted_sd`` measures (the ensemble's spread, or a single model's bootstrap refits);
    None when no mixture has one."""

    @classmethod
    def from_stage(cls, fit: Mapping | None) -> "FitChoice | None":
        if not fit:
            return None
        return cls(regressor=fit.get("regressor"), regressor_reason=fit.get("regressor_reason"),
                   cv=dict(fit.get("cv") or {}), noise=dict(fit.get("noise") or {}),
                   uncertainty=fit.get("uncertainty"))

    @classmethod
    def from_json(cls, doc: Field) -> "FitChoice | None":
        if not doc.mapping():
            return None
        return cls(regressor=doc["regressor"].maybe(Field.text), regressor_reason=doc["regressor_reason"].maybe(
                   Field.text), cv={k: v.mapping() for k, v in doc.get("cv", {}).fields().items()},
                   noise=doc.get("noise", {}).mapping(), uncertainty=doc.get("uncertainty").maybe(Field.text))

    def to_json_obj(self) -> dict:
        return plain_record(self)


@dataclass(frozen=True)
class ConfirmedCandidate:
    """One candidate of the confirmation round, measured at proxy scale on the selection split."""

    label: str
    """``regmix`` (the search's pick), ``top1``, ``best_domain:<name>`` or ``best_sweep:<run id>``."""
    mixture_hash: str
    losses: Mapping[str, float]
    """Seed -> the proxy-scale validation target loss."""
    mean: float
    sd: float | None
    """The sample sd over its seeds."""
    combined_sd: float | None
    """The sd of its difference from the pick (seeds and documents together; None for the pick)."""
    num_sd: float | None
    """``(pick - it) / combined_sd``: positive when it is better (None for the pick)."""
    better_than_pick: bool

    @classmethod
    def from_json(cls, doc: Field) -> "ConfirmedCandidate":
        maybe_number = lambda key: doc[key].maybe(Field.number)  # noqa: E731
        return cls(label=doc["label"].text(), mixture_hash=doc["mixture_hash"].text(),
                   losses=_floats(doc["losses"]), mean=doc["mean"].number(), sd=maybe_number("sd"),
                   combined_sd=maybe_number("combined_sd"), num_sd=maybe_number("num_sd"),
                   better_than_pick=doc["better_than_pick"].flag())

    def to_json_obj(self) -> dict:
        return plain_record(self)


@dataclass(frozen=True)
class ConfirmationSummary:
    """What the confirmation round measured and decided (``confirmation``; ``confirm/confirmation.json`` has the
    runs and each comparison's noise by part)."""

    split: str
    """The split the candidates were compared on (the validation split)."""
    chosen: str
    """The candidate trained at target scale as ``regmix``."""
    replaced: bool
    """Whether it replaced the search's pick."""
    reason: str
    threshold_sd: float
    candidates: tuple[ConfirmedCandidate, ...]

    @classmethod
    def from_confirmation(cls, confirmation) -> "ConfirmationSummary":
        """From a :class:`regmix_megatron.full_scale.confirmation.Confirmation`."""
        decision = confirmation.decision
        hashes = {c.label: c.mixture_hash for c in confirmation.candidates}
        rows = tuple(ConfirmedCandidate(
            label=o.label, mixture_hash=hashes[o.label], losses={str(k): v for k, v in sorted(o.losses.items())},
            mean=o.mean, sd=seed_stats(o.losses).sd, combined_sd=o.combined_sd, num_sd=o.num_sd,
            better_than_pick=o.better_than_pick) for o in decision.outcomes)
        return cls(split=confirmation.split, chosen=decision.chosen, replaced=decision.replaced,
                   reason=decision.reason, threshold_sd=decision.threshold_sd, candidates=rows)

    @classmethod
    def from_json(cls, doc: Field) -> "ConfirmationSummary":
        return cls(split=doc["split"].text(), chosen=doc["chosen"].text(), replaced=doc["replaced"].flag(),
                   reason=doc["reason"].text(), threshold_sd=doc["threshold_sd"].number(),
                   candidates=tuple(ConfirmedCandidate.from_json(c) for c in doc["candidates"].items()))

    def to_json_obj(self) -> dict:
        return plain_record(self)


@dataclass(frozen=True)
class Evaluation:
    """``evaluation.json`` (``regmix-megatron/evaluation/v2``): the pipeline's outcome."""

    target: Target
    """What the mixture was optimized for (written in its JSON form)."""
    split: str
    """The split the target-scale comparison is reported on (test)."""
    selection_split: str
    """The split every choice was made on (valid)."""
    noise: NoiseUnit
    mixtures: Mapping[str, MixtureOutcome]
    """Label -> the compared mixture."""
    comparison: Verdicts
    rank_invariance: RankInvariance
    fit: FitChoice | None
    """None when the evaluation was made without the fit's record (written as ``{}``)."""
    documents: DocumentSample | None = None
    """The test documents the verdicts were scored on, by source, and the document bootstrap's draws (None in a
    file written before it was recorded)."""
    confirmation: ConfirmationSummary | None = None
    """The confirmation round; None when it did not run (written as null; absent in older files)."""

    @classmethod
    def from_json_obj(cls, obj: Any, where: str) -> "Evaluation":
        """Read a parsed ``evaluation.json``; a :class:`DataError` names ``where`` and the field path."""
        doc = Field(obj, where, fix="run the pipeline's evaluate stage again (`regmix-megatron run CONFIG`)")
        doc["format"].choice([FORMAT])
        target = Target.from_field(doc["target"])
        return cls(target=target, split=doc["split"].text(), selection_split=doc["selection_split"].text(),
                   noise=NoiseUnit.from_json(doc["noise"]),
                   mixtures={k: MixtureOutcome.from_json(v) for k, v in doc["mixtures"].fields().items()},
                   comparison=Verdicts.from_json(doc["comparison"]),
                   rank_invariance=RankInvariance.from_json(doc["rank_invariance"]),
                   fit=FitChoice.from_json(doc["fit"]),
                   documents=doc["documents"].maybe(DocumentSample.from_json),
                   confirmation=doc["confirmation"].maybe(ConfirmationSummary.from_json))

    def to_json_obj(self) -> dict:
        return {"format": FORMAT, **plain_record(self), "target": self.target.to_json(),
                "fit": {} if self.fit is None else self.fit.to_json_obj()}

    @property
    def target_label(self) -> str:
        """The target for people (``average``, ``qa``, ``0.7 qa + 0.3 reference``)."""
        return self.target.label


def lowest_loss_by_source(mixtures: Sequence[MixtureOutcome]) -> dict[tuple[str, str], str]:
    """``(domain, source) -> label`` of the mixture with the lowest test loss on each source of the target's
    documents, among ``mixtures`` that measured it (the first of them on a tie): which part of the target each
    mixture wins (a description, not a verdict: no noise is measured per source)."""
    lowest: dict[tuple[str, str], MixtureOutcome] = {}
    for m in mixtures:
        for domain, per_source in m.test_loss_by_source.items():
            for source, loss in per_source.items():
                best = lowest.get((domain, source))
                if best is None or loss < best.test_loss_by_source[domain][source]:
                    lowest[(domain, source)] = m
    return {key: m.label for key, m in lowest.items()}


def write_evaluation(path: str | os.PathLike, evaluation: Evaluation) -> Path:
    """Write ``evaluation.json`` atomically."""
    return atomic_write_json(path, evaluation.to_json_obj())


def read_evaluation(path: str | os.PathLike) -> Evaluation:
    """``evaluation.json`` (a file, or the pipeline's output directory holding it), typed."""
    path = file_or_in_folder(path, FILE_NAME)
    return Evaluation.from_json_obj(read_json(path), str(path))
