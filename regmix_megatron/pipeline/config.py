"""``PipelineConfig``: one YAML file that drives ``regmix-megatron run`` end to end.

Every section is a dataclass with a docstring per field; ``__post_init__`` checks each field and names the fix.
Parsed once, at load, into the types that own them (so this file never duplicates their fields, and no stage
parses them again): ``target`` into a :class:`~regmix_megatron.regression.target.Target`, ``sample.sampler`` into
a :class:`~regmix_megatron.mixtures.sampler_config.SamplerConfig` (the pipeline's seed and sample count, and the
full-scale token budget of the epoch caps, as its defaults), ``executor.slurm`` into
:class:`~regmix_megatron.runs.sweep.slurm.SlurmOptions`, ``export.path_prefix`` into a
:class:`~regmix_megatron.export.files.PathMap`, and the ``overrides`` of ``proxy`` and ``full_scale`` into
:class:`~regmix_megatron.runs.recipe.RecipeOverrides`. :meth:`PipelineConfig.to_dict` writes them back in the
forms a user writes.

Example (``examples/demo.yaml`` is the full default)::

    output_dir: runs/demo
    corpus: {source: build, max_mb_per_domain: 5}
    tokenizer: {vocab_size: 2000}
    sample: {num_samples: 32}
    proxy: {preset: cpu-proxy}
    target: average            # or a domain name, e.g. qa; or weights, e.g. {qa: 0.7, reference: 0.3}
    full_scale: {preset: cpu-target, baselines: [natural, uniform, best_domain, best_sweep]}
    schedule: {phases: [0.8, 0.2]}   # optional: RegMix over two-phase schedules (docs/SCHEDULES.md)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, Mapping, Optional, Union

from ..configs import check, config_to_dict, load_config, with_source
from ..errors import ConfigError
from ..export.files import PathMap
from ..fileio import read_yaml
from ..mixtures.sampler_config import SamplerConfig
from ..regression.target import AVERAGE, KIND_AVERAGE, Target
from ..runs.recipe import Recipe, RecipeOverrides
from ..runs.sweep.slurm import SlurmOptions

#: Baseline mixtures the target stage can train next to the RegMix mixture: natural (token-proportional),
#: uniform, target_only (all weight on the target domain), best_domain (the single training domain with the
#: lowest proxy-scale target loss), best_sweep (the sweep mixture with the lowest proxy target loss).
BASELINES = ("natural", "uniform", "target_only", "best_domain", "best_sweep")
#: Baselines trained with every seed of ``full_scale.seeds`` (the others once, with the pipeline's seed).
SEEDED_BASELINES = ("natural", "uniform")
REGRESSORS = ("lightgbm", "linear", "quadratic", "ensemble")
Regressor = Literal["auto", "lightgbm", "linear", "quadratic", "ensemble"]
"""``search.regressor``: :data:`AUTO` or one of :data:`REGRESSORS`."""
#: ``search.regressor`` value: pick the regressor with the best cross-validated Spearman.
AUTO = "auto"
#: ``search.top_k`` value: choose k by the ensemble's uncertainty (:func:`regmix_megatron.search.top_k.choose_top_k`).
TOP_K_AUTO = "auto"
EXECUTORS = ("local", "slurm")
Executor = Literal["local", "slurm"]
#: The two scales of training runs, by the config section that holds their recipe.
RunScale = Literal["proxy", "full_scale"]


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
    PARSED_FIELDS: ClassVar[tuple] = ("sampler",)

    num_samples: int = 32
    """How many mixtures to sample, i.e. how many proxy runs the sweep trains (``--num-samples`` of
    ``regmix-megatron sample``; formerly ``num_proxies``)."""
    sampler: SamplerConfig = field(default_factory=dict)
    """Fields of :class:`~regmix_megatron.mixtures.sampler_config.SamplerConfig` (temperature, strengths, caps ...),
    parsed by :class:`PipelineConfig` at load. The number of mixtures and the seed come from this file; with
    ``max_epochs`` set, ``target_tokens`` defaults to one full-scale run's token budget (steps x global batch x
    sequence length)."""
    sampler_fields: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    """The ``sampler`` fields as written (the sample stage's fingerprint, and what :meth:`PipelineConfig.to_dict`
    writes back)."""

    def __post_init__(self) -> None:
        check(self.num_samples >= 4, "sample", "num_samples", self.num_samples,
              "use at least 4 proxies (tens for a meaningful fit; the paper uses 512)")
        check(isinstance(self.sampler, (Mapping, SamplerConfig)), "sample", "sampler", self.sampler,
              "give a mapping of SamplerConfig fields")
        self.sampler_fields = config_to_dict(self.sampler) if isinstance(self.sampler, SamplerConfig) \
            else dict(self.sampler)


@dataclass
class TrainSection:
    PARSED_FIELDS: ClassVar[tuple] = ("overrides",)

    preset: str = "cpu-proxy"
    """A training preset of ``regmix_megatron.runs.recipe`` (cpu-proxy, cpu-target, tiny-test, regmix-1m ...)."""
    overrides: RecipeOverrides = field(default_factory=RecipeOverrides)
    """Other ``Recipe`` fields (e.g. ``optim: {train_steps: 300}``), parsed into
    :class:`~regmix_megatron.runs.recipe.RecipeOverrides`. The run's own fields (``domains``, ``mixture``,
    ``seed``, ``output_dir``) are set by the pipeline."""
    noise_mixtures: int = 4
    """Sweep mixtures also trained with ``noise_seeds`` other seeds: the proxy seed noise, and the best CV
    Spearman that noise allows (the ceiling the fit is shown against). 0: noise not measured."""
    noise_seeds: int = 2
    """Extra seeds of each noise mixture (seed + 1, seed + 2, ...)."""

    def __post_init__(self) -> None:
        self.overrides = _check_train_section("proxy", self.preset, self.overrides)
        check(self.noise_mixtures >= 0, "proxy", "noise_mixtures", self.noise_mixtures, "use 0 or more")
        check(self.noise_seeds >= 1, "proxy", "noise_seeds", self.noise_seeds, "use 1 or more")


def _check_train_section(section: str, preset: str, overrides: Mapping | RecipeOverrides) -> RecipeOverrides:
    """The section's preset checked, and its overrides parsed (once) into :class:`RecipeOverrides`."""
    check(isinstance(preset, str) and bool(preset), section, "preset", preset,
          "name a training preset, e.g. cpu-proxy or cpu-target")
    if isinstance(overrides, RecipeOverrides):
        return overrides
    check(isinstance(overrides, Mapping), section, "overrides", overrides, "give a mapping of Recipe fields")
    reserved = sorted({"domains", "mixture", "seed", "output_dir", "preset", "run_id"} & set(overrides))
    check(not reserved, section, "overrides", reserved,
          "remove these keys: the pipeline sets domains/mixture/seed/output_dir/run_id, and the preset has its "
          "own field")
    return RecipeOverrides.from_dict(overrides, source=f"{section}.overrides")


@dataclass
class SearchSection:
    RENAMED_FIELDS: ClassVar[dict] = {"pool_size": "num_candidates"}

    regressor: Regressor = AUTO
    """Regressor whose predictions drive the search: ``auto`` (the one with the best cross-validated Spearman
    on the sweep; on a tie the ensemble, then LightGBM, then quadratic), lightgbm (the paper's), linear, quadratic
    (ridge on the weights and their pairwise products) or ensemble (the others combined as cross-validation
    chooses, with an uncertainty per prediction: ``predicted_sd`` in ``search.json``)."""
    num_candidates: int = 1_000_000
    """Candidate mixtures simulated (sampled with the sweep's sampler and caps; ``--num-candidates`` of
    ``regmix-megatron search``; formerly ``pool_size``)."""
    top_k: Union[int, Literal["auto"]] = 100
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
class FullScaleSection:
    """The full-scale runs (config key ``full_scale``; formerly ``targets``): RegMix and the baselines trained at
    target scale, and what the verdicts need."""

    PARSED_FIELDS: ClassVar[tuple] = ("overrides",)

    preset: str = "cpu-target"
    """Training preset of the full-scale runs (larger model and token budget than the proxies)."""
    overrides: RecipeOverrides = field(default_factory=RecipeOverrides)
    """Other ``Recipe`` fields of the full-scale runs (:class:`~regmix_megatron.runs.recipe.RecipeOverrides`)."""
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
        self.overrides = _check_train_section("full_scale", self.preset, self.overrides)
        check(self.seeds >= 1, "full_scale", "seeds", self.seeds, "use 1 or more (3 or more for verdicts)")
        check(self.num_rank_mixtures >= 0, "full_scale", "num_rank_mixtures", self.num_rank_mixtures, "use 0 or more")
        check(-1.0 <= self.rank_threshold <= 1.0, "full_scale", "rank_threshold", self.rank_threshold,
              "use a correlation between -1 and 1, e.g. 0.6")
        check(self.threshold_sd > 0, "full_scale", "threshold_sd", self.threshold_sd, "use a positive number, e.g. 2")
        if self.baselines is None:
            return
        bad = sorted(set(self.baselines) - set(BASELINES))
        check(not bad, "full_scale", "baselines", self.baselines, f"use a subset of {list(BASELINES)}")
        check(len(set(self.baselines)) == len(self.baselines), "full_scale", "baselines", self.baselines,
              "list each baseline once")


@dataclass
class ConfirmSection:
    """The confirmation round between the search and the full-scale runs (``regmix_megatron.full_scale.confirmation``):
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
    PARSED_FIELDS: ClassVar[tuple] = ("slurm",)

    kind: Executor = "local"
    """Where proxy and target runs execute: local (a process pool on this machine) or slurm (a job array)."""
    num_parallel: int = 2
    """Runs at once (local: processes; slurm: the array's concurrency throttle)."""
    slurm: SlurmOptions = field(default_factory=dict)
    """SLURM settings passed to the sweep's SLURM executor (partition, time, cpus_per_task, ...), parsed by
    :class:`PipelineConfig` at load into :class:`~regmix_megatron.runs.sweep.slurm.SlurmOptions` (its throttle
    defaults to ``num_parallel``, its attempts are ``max_attempts``)."""
    slurm_fields: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    """The ``slurm`` options as written (what :meth:`PipelineConfig.to_dict` writes back)."""
    max_attempts: int = 2
    """Attempts of a run before it is reported as failed for good (``--max-attempts`` of ``sweep launch``;
    formerly ``max_retries``, the attempts minus one)."""
    reuse_process: bool = True
    """Local executor only: each of the ``num_parallel`` workers is one long-lived process that trains its runs
    back to back (Python start-up and ``import megatron.core`` paid once per worker, not once per run)."""

    def __post_init__(self) -> None:
        check(self.kind in EXECUTORS, "executor", "kind", self.kind, f"use one of {list(EXECUTORS)}")
        check(self.num_parallel >= 1, "executor", "num_parallel", self.num_parallel, "use 1 or more")
        check(isinstance(self.slurm, (Mapping, SlurmOptions)), "executor", "slurm", self.slurm, "give a mapping")
        check(self.max_attempts >= 1, "executor", "max_attempts", self.max_attempts, "use 1 or more")
        if isinstance(self.slurm, Mapping):
            self.slurm_fields = dict(self.slurm)


@dataclass
class ExportSection:
    PARSED_FIELDS: ClassVar[tuple] = ("path_prefix",)

    path_prefix: PathMap = field(default_factory=PathMap)
    """``{OLD: NEW}``: in the exported Megatron-LM files, paths starting with OLD start with NEW instead (this
    machine's storage as the cluster mounts it); ``--path-prefix OLD=NEW`` of ``export``/``search``. Parsed into a
    :class:`~regmix_megatron.export.files.PathMap` by :class:`PipelineConfig` (relative OLD prefixes resolved
    against the config file first, by :func:`load_pipeline_config`)."""

    def __post_init__(self) -> None:
        check(isinstance(self.path_prefix, (Mapping, PathMap)), "export", "path_prefix", self.path_prefix,
              "give a mapping {/path/here: /path/on/the/cluster}")


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
    #: ``targets`` named the full-scale runs' section until the word was kept for the objective alone.
    RENAMED_FIELDS: ClassVar[dict] = {"targets": "full_scale"}
    PARSED_FIELDS: ClassVar[tuple] = ("target",)

    output_dir: str = "runs/regmix"
    """Everything the run writes goes here (relative paths are resolved against the config file)."""
    seed: int = 1234
    """The seed of sampling, search and every training run (proxies differ only by mixture); runs repeated for
    noise use seed + 1, seed + 2, ..."""
    target: Target = field(default_factory=Target.average)
    """What the mixture is optimized for: ``average`` (mean loss over every evaluated domain), one domain's
    name (e.g. ``qa``, an evaluation-only domain: a held-out target no run trains on), or a weighted combination
    of evaluated domains (``{qa: 0.7, reference: 0.3}``). Fit and search use the validation split; the final
    full-scale comparison reports the test split. Parsed once, at load, into a
    :class:`regmix_megatron.regression.target.Target` (written back by :meth:`to_dict` as ``Target.to_json``)."""
    corpus: CorpusSection = field(default_factory=CorpusSection)
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    preprocess: PreprocessSection = field(default_factory=PreprocessSection)
    sample: SampleSection = field(default_factory=SampleSection)
    proxy: TrainSection = field(default_factory=TrainSection)
    search: SearchSection = field(default_factory=SearchSection)
    confirm: ConfirmSection = field(default_factory=ConfirmSection)
    full_scale: FullScaleSection = field(default_factory=FullScaleSection)
    executor: ExecutorSection = field(default_factory=ExecutorSection)
    export: ExportSection = field(default_factory=ExportSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)

    def __post_init__(self) -> None:
        if not isinstance(self.target, Target):
            check(isinstance(self.target, (str, Mapping)) and bool(self.target), "PipelineConfig", "target",
                  self.target, f"use '{AVERAGE}', a domain name, or a mapping of domains to weights")
            self.target = Target.parse(self.target, where="PipelineConfig.target")
        target = self.target
        if self.full_scale.baselines is None:
            self.full_scale.baselines = ["natural", "uniform"] + ([] if self.schedule.phases is not None
                                                                 else ["best_domain", "best_sweep"])
        if self.schedule.phases is not None:
            static_only = [b for b in self.full_scale.baselines if b in ("best_domain", "best_sweep")]
            check(not static_only, "full_scale", "baselines", self.full_scale.baselines,
                  f"drop {static_only} with schedule.phases: they pick from a sweep of static mixtures, and a "
                  "schedule pipeline sweeps schedules (RegMix's own best static mixture, regmix_static, is compared "
                  "instead)")
        if "target_only" in self.full_scale.baselines:
            check(target.single_domain is not None and target.single_domain not in self.corpus.eval_only,
                  "full_scale", "baselines", self.full_scale.baselines,
                  "'target_only' trains on the target domain alone: it needs a single target domain that is a "
                  "training domain (not evaluation-only); drop target_only")
        if self.corpus.domains is not None:
            target.check_domains(self.all_domains, where="PipelineConfig.target")
        check(not (self.schedule.phases is not None and self.search.top_k == TOP_K_AUTO), "search", "top_k",
              self.search.top_k, "a schedule search averages a fixed number of candidates: give top_k a number "
              "such as 100 with schedule.phases")
        self._parse_children()

    def _parse_children(self) -> None:
        """The sampler, SLURM and path-prefix mappings parsed once into their types (errors name the field)."""
        if not isinstance(self.sample.sampler, SamplerConfig):
            defaults = {"num_samples": self.sample.num_samples, "seed": self.seed}
            if self.sample.sampler_fields.get("max_epochs") is not None:  # the cap refers to one full-scale run
                defaults["target_tokens"] = run_recipe(self, "full_scale").num_train_tokens
            self.sample.sampler = SamplerConfig.from_dict(self.sample.sampler_fields, defaults=defaults,
                                                          source="sample.sampler")
        ex = self.executor
        if not isinstance(ex.slurm, SlurmOptions):
            ex.slurm = SlurmOptions.from_dict(ex.slurm_fields, source="executor.slurm", throttle=ex.num_parallel,
                                              max_attempts=ex.max_attempts)
        if not isinstance(self.export.path_prefix, PathMap):
            self.export.path_prefix = PathMap.from_dict(self.export.path_prefix, source="export.path_prefix")

    # ---- derived --------------------------------------------------------------------------------------
    @property
    def all_domains(self) -> list[str] | None:
        """``corpus.domains`` with the evaluation-only and extra ones added (None: every available domain)."""
        if self.corpus.domains is None:
            return None
        return sorted(set(self.corpus.domains) | set(self.corpus.eval_only) | set(self.corpus.extra_domains))

    @property
    def seeds(self) -> list[int]:
        """The full-scale seeds: seed, seed + 1, ... (``full_scale.seeds`` of them)."""
        return [self.seed + i for i in range(self.full_scale.seeds)]

    @property
    def schedule_fractions(self) -> tuple[float, ...] | None:
        """The phase fractions of RegMix over schedules, or None (static mixtures)."""
        return None if self.schedule.phases is None else tuple(float(f) for f in self.schedule.phases)

    def to_dict(self) -> dict:
        """The config as a YAML file writes it: each parsed field in the form a user writes (the target as
        ``Target.to_json``, the sampler and SLURM fields as given, the path prefixes as ``{OLD: NEW}``, the
        overrides as nested mappings); it loads back into an equal config."""
        out = config_to_dict(self)
        out["target"] = self.target.to_json()
        out["sample"]["sampler"] = dict(out["sample"].pop("sampler_fields"))
        out["executor"]["slurm"] = dict(out["executor"].pop("slurm_fields"))
        out["export"]["path_prefix"] = dict(self.export.path_prefix.rules)
        for name in ("proxy", "full_scale"):
            out[name]["overrides"] = getattr(self, name).overrides.to_dict()
        return out


def resolve_path(value: str | None, base: Path) -> Path | None:
    """Expand ``~`` and resolve a relative path against ``base`` (the config file's directory)."""
    if value is None:
        return None
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p).resolve()


def load_pipeline_config(path: str | os.PathLike, output_dir: str | None = None) -> PipelineConfig:
    """Read a YAML config; relative paths in it are resolved against the file's directory, and the result is
    parsed once into its types and validated deeply (the training sections through their recipes)."""
    path = Path(path)
    data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    base = path.resolve().parent
    data = _with_resolved_path_prefixes(data, base)
    cfg = load_config(PipelineConfig, data, source=str(path))
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
    try:
        validate_deep(cfg, source=str(path))
    except ConfigError as exc:
        raise with_source(exc, str(path)) from None
    return cfg


def _with_resolved_path_prefixes(data: Mapping, base: Path) -> Mapping:
    """``data`` with the relative OLD prefixes of ``export.path_prefix`` resolved against ``base`` (before the
    mapping is parsed into a :class:`PathMap`)."""
    export = data.get("export")
    prefixes = export.get("path_prefix") if isinstance(export, Mapping) else None
    if not isinstance(prefixes, Mapping):
        return data  # absent, or wrong: the parse names the field
    resolved = {str(resolve_path(k, base)) if isinstance(k, str) and k and not os.path.isabs(os.path.expanduser(k))
                else k: v for k, v in prefixes.items()}
    return {**data, "export": {**export, "path_prefix": resolved}}


def validate_deep(cfg: PipelineConfig, source: str = "<config>") -> None:
    """Checks that need the training recipes or the file system."""
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
    built = {name: run_recipe(cfg, name, source=source) for name in ("proxy", "full_scale")}
    for name, recipe in built.items():  # fit and search read the validation split, the verdicts the test split
        check(recipe.eval.split == "valid", name, "overrides", {"eval": {"split": recipe.eval.split}},
              "keep eval.split 'valid': the fit, the search and every choice use the validation split")
    check("test" in built["full_scale"].eval.final_splits, "full_scale", "overrides",
          {"eval": {"final_splits": built["full_scale"].eval.final_splits}},
          "keep 'test' in eval.final_splits: the full-scale comparison is reported on the test split")


def uses_imported_data(cfg: PipelineConfig) -> bool:
    """Whether ``corpus.source`` is a ``domains.json`` of existing prefixes (no corpus, no tokenizing)."""
    return cfg.corpus.source != "build" and Path(cfg.corpus.source).suffix == ".json"


def run_recipe(cfg: PipelineConfig, which: RunScale, *, source: str = "<config>") -> Recipe:
    """The training ``Recipe`` of the proxy (``which="proxy"``) or full-scale (``"full_scale"``) runs: the section's
    preset and overrides (no paths, no run fields). Proxies evaluate only the target's domains (and the
    evaluation-only ones, always) unless their overrides set ``eval.domains``: the fit needs nothing else, and
    evaluation is a large share of a short proxy's time. With the ``average`` target they evaluate everything."""
    section = getattr(cfg, which)
    overrides = section.overrides
    target = cfg.target
    if which == "proxy" and target.kind != KIND_AVERAGE and "domains" not in (overrides.fields.get("eval") or {}):
        overrides = overrides.merged({"eval": {"domains": sorted(target.needs)}})
    return overrides.recipe(section.preset, source=f"{source}:{which}")
