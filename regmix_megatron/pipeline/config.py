"""``PipelineConfig``: one YAML file that drives ``regmix-megatron run`` end to end.

Every section is a dataclass with a docstring per field; ``__post_init__`` checks each field and names the fix.
Stage-owned settings that already have their own config class (the sampler's ``SamplerConfig``, the training
``Recipe``) are given here as plain mappings and validated by those classes in :func:`validate_deep`, so
this file never duplicates their fields.

Example (``examples/demo.yaml`` is the full default)::

    output_dir: runs/demo
    corpus: {source: build, max_mb_per_domain: 5}
    tokenizer: {vocab_size: 2000}
    sample: {num_samples: 32}
    proxy: {preset: cpu-proxy}
    target: average            # or a domain name, e.g. qa; or weights, e.g. {qa: 0.7, reference: 0.3}
    targets: {preset: cpu-target, baselines: [natural, uniform, best_domain, best_sweep]}
    schedule: {phases: [0.8, 0.2]}   # optional: RegMix over two-phase schedules (docs/SCHEDULES.md)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional, Union

from ..configs import check, config_to_dict, load_config, with_source
from ..errors import ConfigError
from ..fileio import read_yaml
from ..regression.target import AVERAGE, KIND_AVERAGE, Target

#: Baseline mixtures the target stage can train next to the RegMix mixture: natural (token-proportional),
#: uniform, target_only (all weight on the target domain), best_domain (the single training domain with the
#: lowest proxy-scale target loss), best_sweep (the sweep mixture with the lowest proxy target loss).
BASELINES = ("natural", "uniform", "target_only", "best_domain", "best_sweep")
#: Baselines trained with every seed of ``targets.seeds`` (the others once, with the pipeline's seed).
SEEDED_BASELINES = ("natural", "uniform")
REGRESSORS = ("lightgbm", "linear", "quadratic", "ensemble")
#: ``search.regressor`` value: pick the regressor with the best cross-validated Spearman.
AUTO = "auto"
#: ``search.top_k`` value: choose k by the ensemble's uncertainty (:func:`regmix_megatron.search.top_k.choose_top_k`).
TOP_K_AUTO = "auto"
EXECUTORS = ("local", "slurm")


#: ``corpus.max_mb_per_domain`` when not given (the corpus builder's default)
DEFAULT_MAX_MB_PER_DOMAIN = 15.0


@dataclass
class ExtraDomain:
    """A domain of your own text added beside the built corpus (``corpus.extra_domains``), with the rules of
    ``regmix-megatron corpus add`` (``regmix_megatron.data.corpus.user_domain``)."""

    path: str
    """A text (``.txt``/``.md``/``.rst``: one text each) or JSONL (``.jsonl[.gz]``: a ``{"text": ...}`` document a
    line, optionally with a ``"source"``) file, or a directory of them (searched recursively); relative to the
    config file. Each file is a source (a JSONL line's ``source`` overrides it)."""
    eval_only: bool = False
    """Evaluation-only: split 49% valid / 49% test / 2% train stratified by source, never trained on (as if
    listed in ``corpus.eval_only``)."""

    def __post_init__(self) -> None:
        check(isinstance(self.path, str) and bool(self.path), "corpus.extra_domains", "path", self.path,
              "give the file or directory of the domain's text, e.g. path: my_texts/")
        check(isinstance(self.eval_only, bool), "corpus.extra_domains", "eval_only", self.eval_only,
              "use true or false")


@dataclass
class CorpusSection:
    source: str = "build"
    """``build``: fetch and extract the embedded default corpus (``regmix_megatron.data.corpus.build``); or a path to
    an existing corpus directory laid out as ``<domain>/{train,valid,test}.jsonl`` (e.g.
    ``tests/fixtures/corpus``; no network needed), tokenized with the ``tokenizer`` section; or a ``domains.json``
    (from ``regmix-megatron domains import``: data already tokenized into Megatron ``.bin/.idx`` prefixes, used as
    it is, with the tokenizer it records). Relative paths are resolved against the config file."""
    cache_dir: Optional[str] = None
    """Where ``build`` caches downloads and extracted text (default: the corpus builder's default)."""
    domains: Optional[list[str]] = None
    """Domains to use (default: all available; with ``build``, the builder's default eight). The
    ``eval_only`` domains are added."""
    eval_only: list[str] = field(default_factory=list)
    """Evaluation-only domains (e.g. ``[qa]``): tokenized and evaluated in every run (validation and test
    splits), never sampled, trained on or put into a training blend, and left out of the tokenizer's sample.
    The natural target of a held-out, downstream-like evaluation."""
    max_mb_per_domain: Optional[float] = None
    """Cap on the text kept per domain when building (MB of UTF-8; default 15), the extra domains included. Only
    for ``build``: a corpus directory or a ``domains.json`` is used as it is, so the field is refused there."""
    extra_domains: dict = field(default_factory=dict)
    """Domains of your own text beside the built corpus (``source: build`` only): ``{name: {path: my_texts/,
    eval_only: true}}`` (:class:`ExtraDomain`), added to the corpus cache with the rules of ``regmix-megatron
    corpus add``; every domain listed here is used, and the evaluation-only ones join ``eval_only``."""

    def __post_init__(self) -> None:
        check(isinstance(self.source, str) and bool(self.source), "corpus", "source", self.source,
              "use 'build', the path of a corpus directory with <domain>/{train,valid,test}.jsonl, or a "
              "domains.json of existing prefixes (`regmix-megatron domains import`)")
        if self.max_mb_per_domain is not None:
            check(self.max_mb_per_domain > 0, "corpus", "max_mb_per_domain", self.max_mb_per_domain,
                  "use a positive number of MB, e.g. 5")
            check(self.source == "build", "corpus", "max_mb_per_domain", self.max_mb_per_domain,
                  f"it caps what `source: build` builds, and {self.source!r} is used as it is; remove it (cap "
                  "your own text with `regmix-megatron corpus add --max-mb-per-domain`)")
        if self.domains is not None:
            check(len(self.domains) >= 2 and len(set(self.domains)) == len(self.domains), "corpus", "domains",
                  self.domains, "list at least two distinct domain names, or leave it out for all domains")
        check(isinstance(self.eval_only, list) and len(set(self.eval_only)) == len(self.eval_only)
              and all(isinstance(d, str) and d for d in self.eval_only), "corpus", "eval_only", self.eval_only,
              "list distinct domain names (e.g. [qa]), or [] for none")
        self._parse_extra_domains()
        if self.domains is not None:
            training = [d for d in self.domains if d not in self.eval_only]
            check(len(training) >= 2, "corpus", "domains", self.domains,
                  f"keep at least two training domains besides the evaluation-only {self.eval_only}")

    @property
    def max_mb(self) -> float:
        """``max_mb_per_domain``, or the builder's default when not given."""
        return DEFAULT_MAX_MB_PER_DOMAIN if self.max_mb_per_domain is None else float(self.max_mb_per_domain)

    def _parse_extra_domains(self) -> None:
        """``extra_domains`` as :class:`ExtraDomain` values (parsed once, here); the evaluation-only ones
        joined to ``eval_only``."""
        check(isinstance(self.extra_domains, Mapping), "corpus", "extra_domains", self.extra_domains,
              "give a mapping {name: {path: my_texts/, eval_only: true}}")
        if not self.extra_domains:
            return
        check(self.source == "build", "corpus", "extra_domains", sorted(self.extra_domains),
              f"extra domains go beside the built corpus (source: build), and {self.source!r} is used as it is; "
              "add the domain to that corpus directory with `regmix-megatron corpus add NAME --input PATH "
              "--corpus-dir DIR` instead")
        from ..data.corpus.user_domain import check_name

        parsed = {}
        for name, spec in self.extra_domains.items():
            try:
                check_name(name, flag="name")
            except ConfigError as exc:
                raise ConfigError(f"corpus.extra_domains: {exc}") from None
            if isinstance(spec, ExtraDomain):
                parsed[name] = spec
                continue
            check(isinstance(spec, Mapping), "corpus.extra_domains", name, spec,
                  f"give a mapping, e.g. {name}: {{path: my_texts/, eval_only: true}}")
            parsed[name] = load_config(ExtraDomain, spec, source=f"corpus.extra_domains.{name}")
            if parsed[name].eval_only and name not in self.eval_only:
                self.eval_only = [*self.eval_only, name]
        self.extra_domains = parsed


@dataclass
class TokenizerSection:
    """The tokenizer of a corpus directory (ignored for a ``domains.json`` source: it records its own)."""

    vocab_size: int = 8000
    """SentencePiece BPE vocabulary size when one is trained (small on CPU: 1000-4000); for ``TikTokenizer`` the
    ``--vocab-size`` Megatron-LM needs."""
    model: Optional[str] = None
    """An existing tokenizer instead of training one: a SentencePiece ``.model``; with ``type``
    ``HuggingFaceTokenizer`` a local tokenizer directory; with ``TikTokenizer`` its vocabulary ``.json``."""
    type: Optional[str] = None
    """Megatron-LM's ``--tokenizer-type`` (default: a SentencePiece model, trained here unless ``model`` is
    given): GPTSentencePieceTokenizer, GPT2BPETokenizer, HuggingFaceTokenizer, TikTokenizer, ..."""
    vocab_file: Optional[str] = None
    """GPT-2 ``vocab.json`` (``type: GPT2BPETokenizer``)."""
    merge_file: Optional[str] = None
    """GPT-2 ``merges.txt`` (``type: GPT2BPETokenizer``)."""

    def __post_init__(self) -> None:
        check(self.vocab_size >= 256, "tokenizer", "vocab_size", self.vocab_size, "use at least 256")
        if self.type is not None:
            from ..data.tokenizer_types import FAMILIES

            check(self.type in FAMILIES, "tokenizer", "type", self.type, f"use one of {list(FAMILIES)}")

    @property
    def trains(self) -> bool:
        """Whether the pipeline trains a SentencePiece model (no type and no model given)."""
        return self.type is None and self.model is None

    def spec(self):
        """The :class:`~regmix_megatron.data.tokenizer_types.TokenizerSpec` of an existing tokenizer (paths resolved
        already), or None when the pipeline trains one."""
        from ..data.tokenizer_types import DEFAULT_TYPE, TokenizerSpec

        if self.trains:
            return None
        kind = self.type or DEFAULT_TYPE
        return TokenizerSpec(tokenizer_type=kind, tokenizer_model=self.model, vocab_file=self.vocab_file,
                             merge_file=self.merge_file,
                             vocab_size=self.vocab_size if kind == "TikTokenizer" else None)


@dataclass
class PreprocessSection:
    workers: int = 2
    """Worker processes for tokenization."""

    def __post_init__(self) -> None:
        check(self.workers >= 1, "preprocess", "workers", self.workers, "use 1 or more")


@dataclass
class SampleSection:
    RENAMED_FIELDS: ClassVar[dict] = {"num_proxies": "num_samples"}

    num_samples: int = 32
    """How many mixtures to sample, i.e. how many proxy runs the sweep trains (``--num-samples`` of
    ``regmix-megatron sample``; formerly ``num_proxies``)."""
    sampler: dict = field(default_factory=dict)
    """Fields of ``regmix_megatron.mixtures.sampler_config.SamplerConfig`` (temperature, strengths, caps ...). The number of
    mixtures and the seed come from this file; with ``max_epochs`` set, ``target_tokens`` defaults to one target
    run's token budget (steps x global batch x sequence length)."""

    def __post_init__(self) -> None:
        check(self.num_samples >= 4, "sample", "num_samples", self.num_samples,
              "use at least 4 proxies (tens for a meaningful fit; the paper uses 512)")
        check(isinstance(self.sampler, Mapping), "sample", "sampler", self.sampler,
              "give a mapping of SamplerConfig fields")


@dataclass
class TrainSection:
    preset: str = "cpu-proxy"
    """A training preset of ``regmix_megatron.runs.recipe`` (cpu-proxy, cpu-target, tiny-test, regmix-1m ...)."""
    overrides: dict = field(default_factory=dict)
    """Other ``Recipe`` fields (e.g. ``optim: {train_steps: 300}``). The run's own fields (``domains``,
    ``mixture``, ``seed``, ``output_dir``) are set by the pipeline."""
    noise_mixtures: int = 4
    """Sweep mixtures also trained with ``noise_seeds`` other seeds: the proxy seed noise, and the best CV
    Spearman that noise allows (the ceiling the fit is shown against). 0: noise not measured."""
    noise_seeds: int = 2
    """Extra seeds of each noise mixture (seed + 1, seed + 2, ...)."""

    def __post_init__(self) -> None:
        _check_train_section("proxy", self.preset, self.overrides)
        check(self.noise_mixtures >= 0, "proxy", "noise_mixtures", self.noise_mixtures, "use 0 or more")
        check(self.noise_seeds >= 1, "proxy", "noise_seeds", self.noise_seeds, "use 1 or more")


def _check_train_section(section: str, preset: Any, overrides: Any) -> None:
    check(isinstance(preset, str) and bool(preset), section, "preset", preset,
          "name a training preset, e.g. cpu-proxy or cpu-target")
    check(isinstance(overrides, Mapping), section, "overrides", overrides, "give a mapping of Recipe fields")
    reserved = sorted({"domains", "mixture", "seed", "output_dir", "preset", "run_id"} & set(overrides))
    check(not reserved, section, "overrides", reserved,
          "remove these keys: the pipeline sets domains/mixture/seed/output_dir/run_id, and the preset has its "
          "own field")


@dataclass
class SearchSection:
    RENAMED_FIELDS: ClassVar[dict] = {"pool_size": "num_candidates"}

    regressor: str = AUTO
    """Regressor whose predictions drive the search: ``auto`` (the one with the best cross-validated Spearman
    on the sweep; on a tie the ensemble, then LightGBM, then quadratic), lightgbm (the paper's), linear, quadratic
    (ridge on the weights and their pairwise products) or ensemble (the others combined as cross-validation
    chooses, with an uncertainty per prediction: ``predicted_sd`` in ``search.json``)."""
    num_candidates: int = 1_000_000
    """Candidate mixtures simulated (sampled with the sweep's sampler and caps; ``--num-candidates`` of
    ``regmix-megatron search``; formerly ``pool_size``)."""
    top_k: Union[int, str] = 100
    """The best ``top_k`` predicted candidates are averaged into the RegMix mixture; ``auto``: k chosen by the
    ensemble's uncertainty (the largest k whose average is predicted within 1 sd of the best-predicted average,
    k in 1, 2, 5, ..., 1000; needs ``regressor: ensemble``; not for schedules). ``search.json`` records the k
    and why."""
    num_bootstrap: int = 10
    """The ensemble's refits of each member on bootstrap resamples of the sweep's runs (their spread is part of
    its uncertainty; ``--num-bootstrap`` of ``regmix-megatron fit``)."""
    num_folds: int = 5
    """K-fold cross-validation on the sweep when fitting (reported per fold; picks the regressor with
    ``regressor: auto``; ``--num-folds`` of ``regmix-megatron fit``)."""

    def __post_init__(self) -> None:
        check(self.regressor in REGRESSORS + (AUTO,), "search", "regressor", self.regressor,
              f"use one of {[AUTO, *REGRESSORS]}")
        check(self.num_candidates >= 1, "search", "num_candidates", self.num_candidates,
              "use a positive number of candidates")
        if self.top_k == TOP_K_AUTO:
            check(self.regressor == "ensemble", "search", "top_k", self.top_k,
                  f"{TOP_K_AUTO!r} chooses k by the model's uncertainty, which only the ensemble gives: set "
                  f"search.regressor: ensemble (it is {self.regressor!r}), or give top_k a number such as 100")
        else:
            check(isinstance(self.top_k, int) and not isinstance(self.top_k, bool)
                  and 1 <= self.top_k <= self.num_candidates, "search", "top_k", self.top_k,
                  f"use a number between 1 and search.num_candidates ({self.num_candidates}), or {TOP_K_AUTO!r}")
        check(isinstance(self.num_bootstrap, int) and 0 <= self.num_bootstrap, "search", "num_bootstrap",
              self.num_bootstrap, "use 0 or more refits (2 or more measure the bootstrap spread; the default is 10)")
        check(self.num_folds >= 2, "search", "num_folds", self.num_folds, "use 2 or more folds")


@dataclass
class TargetsSection:
    preset: str = "cpu-target"
    """Training preset of the target runs (larger model and token budget than the proxies)."""
    overrides: dict = field(default_factory=dict)
    """Other ``Recipe`` fields of the target runs."""
    baselines: Optional[list[str]] = None
    """Baselines trained next to the RegMix mixture (:data:`BASELINES`): natural (token-proportional), uniform,
    target_only (all of the target domain, when it is a training domain), best_domain (the single training
    domain with the lowest proxy-scale target loss: every single-domain mixture joins the sweep), best_sweep
    (the sweep mixture with the lowest proxy target loss). None: natural, uniform, best_domain, best_sweep."""
    seeds: int = 3
    """Seeds of the RegMix, natural and uniform target runs (seed, seed + 1, ...: paired, the same seeds for
    each); the other baselines and the rank mixtures train once. The verdicts need 2 or more."""
    num_rank_mixtures: int = 3
    """Sweep mixtures (spread over the sweep's loss range) also trained at target scale, so rank invariance is
    measured on RegMix + baselines + these. 0 measures it on RegMix + baselines only."""
    rank_threshold: float = 0.6
    """Rank invariance passes when the Spearman correlation of proxy- and target-scale losses is at least this
    (the report also shows the level chance reaches for the same number of mixtures)."""
    threshold_sd: float = 2.0
    """A difference is a win (or a loss) only beyond this many seed sd (``regmix_megatron.full_scale.verdict``)."""

    def __post_init__(self) -> None:
        _check_train_section("targets", self.preset, self.overrides)
        check(self.seeds >= 1, "targets", "seeds", self.seeds, "use 1 or more (3 or more for verdicts)")
        check(self.num_rank_mixtures >= 0, "targets", "num_rank_mixtures", self.num_rank_mixtures, "use 0 or more")
        check(-1.0 <= self.rank_threshold <= 1.0, "targets", "rank_threshold", self.rank_threshold,
              "use a correlation between -1 and 1, e.g. 0.6")
        check(self.threshold_sd > 0, "targets", "threshold_sd", self.threshold_sd, "use a positive number, e.g. 2")
        if self.baselines is None:
            return
        bad = sorted(set(self.baselines) - set(BASELINES))
        check(not bad, "targets", "baselines", self.baselines, f"use a subset of {list(BASELINES)}")
        check(len(set(self.baselines)) == len(self.baselines), "targets", "baselines", self.baselines,
              "list each baseline once")


@dataclass
class ConfirmSection:
    """The confirmation round between the search and the target runs (``regmix_megatron.full_scale.confirmation``):
    the search's pick, its top-1 candidate, the best single domains and the best sweep mixtures, each trained at
    proxy scale with ``seeds`` seeds and compared on the validation split; one better than the pick beyond
    ``threshold_sd`` combined sd (seeds and documents) replaces it. Skipped with ``schedule.phases``."""

    enabled: bool = True
    """Run the round (false: the search's pick goes to the target runs unconfirmed)."""
    seeds: int = 2
    """Seeds of each candidate (seed, seed + 1, ...; runs the sweep already finished are reused). At least 2: the
    round needs each candidate's seed noise."""
    num_domains: int = 2
    """How many of the best single-domain sweep mixtures (by proxy target loss) are candidates (0: none; they
    exist only when the sweep trained the single domains, i.e. with the best_domain baseline)."""
    num_sweep: int = 2
    """How many of the best sampled sweep mixtures (by proxy target loss) are candidates (0: none)."""
    threshold_sd: float = 2.0
    """A candidate replaces the pick only when better by more than this many combined sd."""

    def __post_init__(self) -> None:
        check(isinstance(self.enabled, bool), "confirm", "enabled", self.enabled, "use true or false")
        check(isinstance(self.seeds, int) and not isinstance(self.seeds, bool) and self.seeds >= 2, "confirm",
              "seeds", self.seeds, "use 2 or more: each candidate's seed noise is part of the comparison")
        for name in ("num_domains", "num_sweep"):
            value = getattr(self, name)
            check(isinstance(value, int) and not isinstance(value, bool) and value >= 0, "confirm", name, value,
                  "use 0 or more")
        check(isinstance(self.threshold_sd, (int, float)) and not isinstance(self.threshold_sd, bool)
              and self.threshold_sd > 0, "confirm", "threshold_sd", self.threshold_sd,
              "use a positive number of sd, e.g. 2")


@dataclass
class ExecutorSection:
    RENAMED_FIELDS: ClassVar[dict] = {"max_retries": ("max_attempts", lambda retries: int(retries) + 1)}

    kind: str = "local"
    """Where proxy and target runs execute: local (a process pool on this machine) or slurm (a job array)."""
    num_parallel: int = 2
    """Runs at once (local: processes; slurm: the array's concurrency throttle)."""
    slurm: dict = field(default_factory=dict)
    """SLURM settings passed to the sweep's SLURM executor (partition, time, cpus_per_task, ...)."""
    max_attempts: int = 2
    """Attempts of a run before it is reported as failed for good (``--max-attempts`` of ``sweep launch``;
    formerly ``max_retries``, the attempts minus one)."""
    reuse_process: bool = True
    """Local executor only: each of the ``num_parallel`` workers is one long-lived process that trains its runs
    back to back (Python start-up and ``import megatron.core`` paid once per worker, not once per run)."""

    def __post_init__(self) -> None:
        check(self.kind in EXECUTORS, "executor", "kind", self.kind, f"use one of {list(EXECUTORS)}")
        check(self.num_parallel >= 1, "executor", "num_parallel", self.num_parallel, "use 1 or more")
        check(isinstance(self.slurm, Mapping), "executor", "slurm", self.slurm, "give a mapping")
        check(self.max_attempts >= 1, "executor", "max_attempts", self.max_attempts, "use 1 or more")


@dataclass
class ExportSection:
    path_prefix: dict = field(default_factory=dict)
    """``{OLD: NEW}``: in the exported Megatron-LM files, paths starting with OLD start with NEW instead (this
    machine's storage as the cluster mounts it); ``--path-prefix OLD=NEW`` of ``export``/``search``."""

    def __post_init__(self) -> None:
        check(isinstance(self.path_prefix, Mapping), "export", "path_prefix", self.path_prefix,
              "give a mapping {/path/here: /path/on/the/cluster}")

    def path_map(self):
        from ..export.files import PathMap

        return PathMap.parse(self.path_prefix)


@dataclass
class ScheduleSection:
    phases: Optional[list[float]] = None
    """Fractions of the training tokens of each phase, e.g. ``[0.8, 0.2]`` (a main phase and a final phase): the
    sweep trains schedules whose phase mixtures the sampler draws (epoch caps over all phases), the fit uses the
    phase weights, the search returns a schedule and the best static mixture under the same model, and both
    train at target scale. None: RegMix over static mixtures."""

    def __post_init__(self) -> None:
        if self.phases is None:
            return
        ok = isinstance(self.phases, list) and 2 <= len(self.phases) <= 9 and all(
            isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in self.phases)
        check(ok, "schedule", "phases", self.phases,
              "give 2 to 9 positive fractions of the training tokens, e.g. [0.8, 0.2] (or leave schedule out)")
        check(abs(sum(self.phases) - 1.0) <= 1e-6, "schedule", "phases", self.phases,
              f"the fractions sum to {sum(self.phases):.6g}: make them sum to 1")


@dataclass
class PipelineConfig:
    output_dir: str = "runs/regmix"
    """Everything the run writes goes here (relative paths are resolved against the config file)."""
    seed: int = 1234
    """The seed of sampling, search and every training run (proxies differ only by mixture); runs repeated for
    noise use seed + 1, seed + 2, ..."""
    target: Union[str, dict] = AVERAGE
    """What the mixture is optimized for: ``average`` (mean loss over every evaluated domain), one domain's
    name (e.g. ``qa``, an evaluation-only domain: a held-out target no run trains on), or a weighted combination
    of evaluated domains (``{qa: 0.7, reference: 0.3}``). Fit and search use the validation split; the final
    target-scale comparison reports the test split. Parsed into a :class:`regmix_megatron.regression.target.Target`
    (:attr:`parsed_target`)."""
    corpus: CorpusSection = field(default_factory=CorpusSection)
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    preprocess: PreprocessSection = field(default_factory=PreprocessSection)
    sample: SampleSection = field(default_factory=SampleSection)
    proxy: TrainSection = field(default_factory=TrainSection)
    search: SearchSection = field(default_factory=SearchSection)
    confirm: ConfirmSection = field(default_factory=ConfirmSection)
    targets: TargetsSection = field(default_factory=TargetsSection)
    executor: ExecutorSection = field(default_factory=ExecutorSection)
    export: ExportSection = field(default_factory=ExportSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)

    def __post_init__(self) -> None:
        check(isinstance(self.target, (str, Mapping)) and bool(self.target), "PipelineConfig", "target",
              self.target, f"use '{AVERAGE}', a domain name, or a mapping of domains to weights")
        target = self.parsed_target
        if self.targets.baselines is None:
            self.targets.baselines = ["natural", "uniform"] + ([] if self.schedule.phases is not None
                                                              else ["best_domain", "best_sweep"])
        if self.schedule.phases is not None:
            static_only = [b for b in self.targets.baselines if b in ("best_domain", "best_sweep")]
            check(not static_only, "targets", "baselines", self.targets.baselines,
                  f"drop {static_only} with schedule.phases: they pick from a sweep of static mixtures, and a "
                  "schedule pipeline sweeps schedules (RegMix's own best static mixture, regmix_static, is compared "
                  "instead)")
        if "target_only" in self.targets.baselines:
            check(target.single_domain is not None and target.single_domain not in self.corpus.eval_only,
                  "targets", "baselines", self.targets.baselines,
                  "'target_only' trains on the target domain alone: it needs a single target domain that is a "
                  "training domain (not evaluation-only); drop target_only")
        if self.corpus.domains is not None:
            target.check_domains(self.all_domains, where="PipelineConfig.target")
        check(not (self.schedule.phases is not None and self.search.top_k == TOP_K_AUTO), "search", "top_k",
              self.search.top_k, "a schedule search averages a fixed number of candidates: give top_k a number "
              "such as 100 with schedule.phases")

    # ---- derived --------------------------------------------------------------------------------------
    @property
    def all_domains(self) -> list[str] | None:
        """``corpus.domains`` with the evaluation-only and extra ones added (None: every available domain)."""
        if self.corpus.domains is None:
            return None
        return sorted(set(self.corpus.domains) | set(self.corpus.eval_only) | set(self.corpus.extra_domains))

    @property
    def seeds(self) -> list[int]:
        """The target-scale seeds: seed, seed + 1, ... (``targets.seeds`` of them)."""
        return [self.seed + i for i in range(self.targets.seeds)]

    @property
    def parsed_target(self) -> Target:
        """The optimization target (:class:`~regmix_megatron.regression.target.Target`) that ``target`` names."""
        return Target.parse(self.target, where="PipelineConfig.target")

    @property
    def schedule_fractions(self) -> tuple[float, ...] | None:
        """The phase fractions of RegMix over schedules, or None (static mixtures)."""
        return None if self.schedule.phases is None else tuple(float(f) for f in self.schedule.phases)

    def to_dict(self) -> dict:
        return config_to_dict(self)


def resolve_path(value: str | None, base: Path) -> Path | None:
    """Expand ``~`` and resolve a relative path against ``base`` (the config file's directory)."""
    if value is None:
        return None
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p).resolve()


def load_pipeline_config(path: str | os.PathLike, output_dir: str | None = None) -> PipelineConfig:
    """Read a YAML config; relative paths in it are resolved against the file's directory, and the result is
    validated deeply (sampler and training sections through their own config classes)."""
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    cfg = load_config(PipelineConfig, data, source=str(path))
    base = path.resolve().parent
    if output_dir is not None:
        cfg.output_dir = str(Path(output_dir).resolve())
    else:
        cfg.output_dir = str(resolve_path(cfg.output_dir, base))
    if cfg.corpus.source != "build":
        cfg.corpus.source = str(resolve_path(cfg.corpus.source, base))
    if cfg.corpus.cache_dir is not None:
        cfg.corpus.cache_dir = str(resolve_path(cfg.corpus.cache_dir, base))
    for extra in cfg.corpus.extra_domains.values():
        extra.path = str(resolve_path(extra.path, base))
    for name in ("model", "vocab_file", "merge_file"):
        if getattr(cfg.tokenizer, name) is not None:
            setattr(cfg.tokenizer, name, str(resolve_path(getattr(cfg.tokenizer, name), base)))
    cfg.export.path_prefix = {str(resolve_path(k, base)) if not os.path.isabs(os.path.expanduser(k)) else k: v
                              for k, v in cfg.export.path_prefix.items()}
    try:
        validate_deep(cfg, source=str(path))
    except ConfigError as exc:
        raise with_source(exc, str(path)) from None
    return cfg


def validate_deep(cfg: PipelineConfig, source: str = "<config>") -> None:
    """Checks that need the stages' own config classes or the file system."""
    if cfg.corpus.source != "build":
        src = Path(cfg.corpus.source)
        check(src.is_dir() or (src.is_file() and src.suffix == ".json"), "corpus", "source", cfg.corpus.source,
              "give an existing corpus directory (<domain>/{train,valid,test}.jsonl), a domains.json of existing "
              "prefixes (`regmix-megatron domains import`), or 'build'")
    for name, extra in cfg.corpus.extra_domains.items():
        check(Path(extra.path).exists(), f"corpus.extra_domains.{name}", "path", extra.path,
              "give an existing file or directory of the domain's text (relative to the config file)")
    if cfg.tokenizer.model is not None and cfg.tokenizer.type is None:
        check(Path(cfg.tokenizer.model).is_file(), "tokenizer", "model", cfg.tokenizer.model,
              "give an existing SentencePiece .model file, or leave it out to train one")
    if cfg.tokenizer.spec() is not None and not uses_imported_data(cfg):
        from ..errors import RegmixError

        try:
            cfg.tokenizer.spec().check()
        except RegmixError as exc:
            raise ConfigError(f"{source}: tokenizer: {exc}") from None
    cfg.export.path_map()
    built = {name: run_recipe(cfg, name, source=source) for name in ("proxy", "targets")}
    for name, recipe in built.items():  # fit and search read the validation split, the verdicts the test split
        check(recipe.eval.split == "valid", name, "overrides", {"eval": {"split": recipe.eval.split}},
              "keep eval.split 'valid': the fit, the search and every choice use the validation split")
    check("test" in built["targets"].eval.final_splits, "targets", "overrides",
          {"eval": {"final_splits": built["targets"].eval.final_splits}},
          "keep 'test' in eval.final_splits: the target-scale comparison is reported on the test split")
    # the epoch caps refer to one target run's token budget
    target_tokens = built["targets"].num_train_tokens if cfg.sample.sampler.get("max_epochs") is not None else None
    sampler_config(cfg, tokens_per_domain=None, target_tokens=target_tokens, source=source)
    if cfg.executor.kind == "slurm" or cfg.executor.slurm:
        slurm_options(cfg, source=source)


def uses_imported_data(cfg: PipelineConfig) -> bool:
    """Whether ``corpus.source`` is a ``domains.json`` of existing prefixes (no corpus, no tokenizing)."""
    return cfg.corpus.source != "build" and Path(cfg.corpus.source).suffix == ".json"


def slurm_options(cfg: PipelineConfig, source: str = "<config>"):
    """``SlurmOptions`` from ``executor.slurm`` (throttle = executor.num_parallel); errors name
    ``<source>: executor.slurm.<key>`` (``source``: the config file; :func:`load_pipeline_config` checks them)."""
    from ..runs.sweep.slurm import SlurmOptions

    return SlurmOptions.from_dict(cfg.executor.slurm, source=f"{source}: executor.slurm",
                                  throttle=cfg.executor.num_parallel, max_attempts=cfg.executor.max_attempts)


def sampler_config(cfg: PipelineConfig, tokens_per_domain: Any, target_tokens: int | None,
                   source: str = "<config>", num_samples: int | None = None):
    """The ``SamplerConfig`` of the sweep (and of the search pool): the file's ``sample.sampler`` fields, with
    the number of mixtures, the seed and the target token budget that defines the epoch caps as defaults."""
    from ..mixtures.sampler_config import build_sampler_config  # pure core (numpy)

    defaults = {"num_samples": num_samples or cfg.sample.num_samples, "seed": cfg.seed}
    if target_tokens is not None and cfg.sample.sampler.get("max_epochs") is not None:
        defaults["target_tokens"] = int(target_tokens)  # the epoch cap refers to one target run's budget
    return build_sampler_config(cfg.sample.sampler, defaults=defaults, source=f"{source}:sample.sampler")


def run_recipe(cfg: PipelineConfig, which: str, *, source: str = "<config>"):
    """The training ``Recipe`` of the proxy (``which="proxy"``) or target (``"targets"``) runs: the section's
    preset and overrides (no paths, no run fields). Proxies evaluate only the target's domains (and the
    evaluation-only ones, always) unless their overrides set ``eval.domains``: the fit needs nothing else, and
    evaluation is a large share of a short proxy's time. With the ``average`` target they evaluate everything."""
    from ..runs.recipe import build_recipe, merge_mappings  # pure (no torch)

    section = getattr(cfg, which)
    overrides = dict(section.overrides)
    target = cfg.parsed_target
    if which == "proxy" and target.kind != KIND_AVERAGE and "domains" not in (overrides.get("eval") or {}):
        overrides = merge_mappings(overrides, {"eval": {"domains": sorted(target.needs)}})
    return build_recipe({"preset": section.preset, **overrides}, source=f"{source}:{which}")

