"""``PipelineConfig``: one YAML file that drives ``regmix-megatron run`` end to end.

Every section is a dataclass with a docstring per field; ``__post_init__`` checks each field and names the fix.
Stage-owned settings that already have their own config class (the sampler's ``SamplerConfig``, the training
``Recipe``) are given here as plain mappings and validated by those classes in :func:`validate_deep`, so
this file never duplicates their fields.

Example (``examples/demo.yaml`` is the full default)::

    output_dir: runs/demo
    corpus: {source: build, max_mb_per_domain: 5}
    tokenizer: {vocab_size: 2000}
    sample: {num_proxies: 32}
    proxy: {preset: cpu-proxy}
    target: average            # or a domain name, e.g. literature
    targets: {preset: cpu-target, baselines: [natural, uniform, target_only]}
    schedule: {phases: [0.8, 0.2]}   # optional: RegMix over two-phase schedules (docs/SCHEDULES.md)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from ..configs import check, config_to_dict, load_config
from ..errors import ConfigError
from ..fileio import read_yaml
from ..target import AVERAGE, Target

#: Baseline mixtures the target stage can train next to the RegMix mixture.
BASELINES = ("natural", "uniform", "target_only")
REGRESSORS = ("lightgbm", "linear")
EXECUTORS = ("local", "slurm")


@dataclass
class CorpusSection:
    source: str = "build"
    """``build``: fetch and extract the embedded default corpus (``regmix_megatron.corpus.build``); or a path to
    an existing corpus directory laid out as ``<domain>/{train,valid,test}.jsonl`` (e.g.
    ``tests/fixtures/corpus``; no network needed). Relative paths are resolved against the config file."""
    cache_dir: Optional[str] = None
    """Where ``build`` caches downloads and extracted text (default: the corpus builder's default)."""
    domains: Optional[list[str]] = None
    """Domains to use (default: all available)."""
    max_mb_per_domain: float = 15.0
    """Cap on the text kept per domain when building (MB of UTF-8)."""

    def __post_init__(self) -> None:
        check(isinstance(self.source, str) and bool(self.source), "corpus", "source", self.source,
              "use 'build' or the path of a corpus directory with <domain>/{train,valid,test}.jsonl")
        check(self.max_mb_per_domain > 0, "corpus", "max_mb_per_domain", self.max_mb_per_domain,
              "use a positive number of MB, e.g. 5")
        if self.domains is not None:
            check(len(self.domains) >= 2 and len(set(self.domains)) == len(self.domains), "corpus", "domains",
                  self.domains, "list at least two distinct domain names, or leave it out for all domains")


@dataclass
class TokenizerSection:
    vocab_size: int = 8000
    """SentencePiece BPE vocabulary size (small on CPU: 1000-4000)."""
    model: Optional[str] = None
    """An existing SentencePiece ``.model`` to use instead of training one."""

    def __post_init__(self) -> None:
        check(self.vocab_size >= 256, "tokenizer", "vocab_size", self.vocab_size, "use at least 256")


@dataclass
class PreprocessSection:
    workers: int = 2
    """Worker processes for tokenization."""

    def __post_init__(self) -> None:
        check(self.workers >= 1, "preprocess", "workers", self.workers, "use 1 or more")


@dataclass
class SampleSection:
    num_proxies: int = 32
    """How many mixtures to sample, i.e. how many proxy runs the sweep trains."""
    sampler: dict = field(default_factory=dict)
    """Fields of ``regmix_megatron.sampling.SamplerConfig`` (temperature, strengths, caps ...). The number of
    mixtures and the seed come from this file; with ``max_epochs`` set, ``target_tokens`` defaults to one target
    run's token budget (steps x global batch x sequence length)."""

    def __post_init__(self) -> None:
        check(self.num_proxies >= 4, "sample", "num_proxies", self.num_proxies,
              "use at least 4 proxies (tens for a meaningful fit; the paper uses 512)")
        check(isinstance(self.sampler, Mapping), "sample", "sampler", self.sampler,
              "give a mapping of SamplerConfig fields")


@dataclass
class TrainSection:
    preset: str = "cpu-proxy"
    """A training preset of ``regmix_megatron.recipe`` (cpu-proxy, cpu-target, tiny-test, regmix-1m ...)."""
    overrides: dict = field(default_factory=dict)
    """Other ``Recipe`` fields (e.g. ``optim: {train_steps: 300}``). The run's own fields (``domains``,
    ``mixture``, ``seed``, ``output_dir``) are set by the pipeline."""

    def __post_init__(self) -> None:
        _check_train_section("proxy", self.preset, self.overrides)


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
    regressor: str = "lightgbm"
    """Regressor whose predictions drive the search: lightgbm (the paper's) or linear."""
    pool_size: int = 1_000_000
    """Candidate mixtures simulated (sampled with the sweep's sampler and caps)."""
    top_k: int = 100
    """The best ``top_k`` predicted candidates are averaged into the RegMix mixture."""
    num_folds: int = 5
    """K-fold cross-validation on the sweep when fitting (reported, not used for selection)."""

    def __post_init__(self) -> None:
        check(self.regressor in REGRESSORS, "search", "regressor", self.regressor, f"use one of {list(REGRESSORS)}")
        check(self.pool_size >= 1, "search", "pool_size", self.pool_size, "use a positive number of candidates")
        check(1 <= self.top_k <= self.pool_size, "search", "top_k", self.top_k,
              f"use a number between 1 and search.pool_size ({self.pool_size})")
        check(self.num_folds >= 2, "search", "num_folds", self.num_folds, "use 2 or more folds")


@dataclass
class TargetsSection:
    preset: str = "cpu-target"
    """Training preset of the target runs (larger model and token budget than the proxies)."""
    overrides: dict = field(default_factory=dict)
    """Other ``Recipe`` fields of the target runs."""
    baselines: Optional[list[str]] = None
    """Baselines trained next to the RegMix mixture: natural (token-proportional), uniform, target_only (all of
    the target domain). None: all three, without target_only when the target is the average."""
    num_rank_mixtures: int = 3
    """Sweep mixtures (spread over the sweep's loss range) also trained at target scale, so rank invariance is
    measured on RegMix + baselines + these. 0 measures it on RegMix + baselines only."""

    def __post_init__(self) -> None:
        _check_train_section("targets", self.preset, self.overrides)
        if self.baselines is None:
            return
        bad = sorted(set(self.baselines) - set(BASELINES))
        check(not bad, "targets", "baselines", self.baselines, f"use a subset of {list(BASELINES)}")
        check(len(set(self.baselines)) == len(self.baselines), "targets", "baselines", self.baselines,
              "list each baseline once")
        check(self.num_rank_mixtures >= 0, "targets", "num_rank_mixtures", self.num_rank_mixtures, "use 0 or more")


@dataclass
class ExecutorSection:
    kind: str = "local"
    """Where proxy and target runs execute: local (a process pool on this machine) or slurm (a job array)."""
    num_parallel: int = 2
    """Runs at once (local: processes; slurm: the array's concurrency throttle)."""
    slurm: dict = field(default_factory=dict)
    """SLURM settings passed to the sweep's SLURM executor (partition, time, cpus_per_task, ...)."""
    max_retries: int = 1
    """Retries of a failed run before it is reported as failed for good."""
    reuse_process: bool = True
    """Local executor only: each of the ``num_parallel`` workers is one long-lived process that trains its runs
    back to back (Python start-up and ``import megatron.core`` paid once per worker, not once per run)."""

    def __post_init__(self) -> None:
        check(self.kind in EXECUTORS, "executor", "kind", self.kind, f"use one of {list(EXECUTORS)}")
        check(self.num_parallel >= 1, "executor", "num_parallel", self.num_parallel, "use 1 or more")
        check(isinstance(self.slurm, Mapping), "executor", "slurm", self.slurm, "give a mapping")
        check(self.max_retries >= 0, "executor", "max_retries", self.max_retries, "use 0 or more")


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
    """One seed for sampling, search and every training run (proxies differ only by mixture)."""
    target: str = AVERAGE
    """What the mixture is optimized for: ``average`` (mean validation loss over all domains) or one domain's
    name (its validation loss; that domain is the "held-out" target, as Pile-CC in the paper). Parsed into a
    :class:`regmix_megatron.target.Target` (:attr:`parsed_target`)."""
    corpus: CorpusSection = field(default_factory=CorpusSection)
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    preprocess: PreprocessSection = field(default_factory=PreprocessSection)
    sample: SampleSection = field(default_factory=SampleSection)
    proxy: TrainSection = field(default_factory=TrainSection)
    search: SearchSection = field(default_factory=SearchSection)
    targets: TargetsSection = field(default_factory=TargetsSection)
    executor: ExecutorSection = field(default_factory=ExecutorSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)

    def __post_init__(self) -> None:
        check(isinstance(self.target, str) and bool(self.target), "PipelineConfig", "target", self.target,
              f"use '{AVERAGE}' or a domain name")
        target = self.parsed_target
        if self.targets.baselines is None:
            self.targets.baselines = [b for b in BASELINES
                                      if not (b == "target_only" and target.single_domain is None)]
        if target.single_domain is None:
            check("target_only" not in self.targets.baselines, "targets", "baselines", self.targets.baselines,
                  "'target_only' needs a single target domain: set target to a domain name or drop target_only")
        if self.corpus.domains is not None:
            target.check_domains(self.corpus.domains, where="PipelineConfig.target")

    # ---- derived --------------------------------------------------------------------------------------
    @property
    def parsed_target(self) -> Target:
        """The optimization target (:class:`~regmix_megatron.target.Target`) that ``target`` names."""
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
    if cfg.tokenizer.model is not None:
        cfg.tokenizer.model = str(resolve_path(cfg.tokenizer.model, base))
    validate_deep(cfg, source=str(path))
    return cfg


def validate_deep(cfg: PipelineConfig, source: str = "<config>") -> None:
    """Checks that need the stages' own config classes or the file system."""
    if cfg.corpus.source != "build":
        src = Path(cfg.corpus.source)
        check(src.is_dir(), "corpus", "source", cfg.corpus.source,
              "give an existing corpus directory (<domain>/{train,valid,test}.jsonl) or 'build'")
    if cfg.tokenizer.model is not None:
        check(Path(cfg.tokenizer.model).is_file(), "tokenizer", "model", cfg.tokenizer.model,
              "give an existing SentencePiece .model file, or leave it out to train one")
    built = {name: section_recipe(getattr(cfg, name), section_name=name, source=source)
             for name in ("proxy", "targets")}
    # the epoch caps refer to one target run's token budget
    target_tokens = built["targets"].num_train_tokens if cfg.sample.sampler.get("max_epochs") is not None else None
    sampler_config(cfg, tokens_per_domain=None, target_tokens=target_tokens, source=source)
    if cfg.executor.kind == "slurm":
        slurm_options(cfg)


def slurm_options(cfg: PipelineConfig):
    """``SlurmOptions`` from ``executor.slurm`` (throttle = executor.num_parallel)."""
    from ..sweep.slurm import SlurmOptions

    data = dict(cfg.executor.slurm)
    if "extra_sbatch_args" in data:
        data["extra_sbatch_args"] = tuple(data["extra_sbatch_args"])
    data.setdefault("throttle", cfg.executor.num_parallel)
    data["max_attempts"] = cfg.executor.max_retries + 1
    known = set(SlurmOptions.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    check(not unknown, "executor", "slurm", unknown, f"unknown SLURM option(s); known: {sorted(known)}")
    return SlurmOptions(**data)


def sampler_config(cfg: PipelineConfig, tokens_per_domain: Any, target_tokens: int | None,
                   source: str = "<config>", num_samples: int | None = None):
    """The ``SamplerConfig`` of the sweep (and of the search pool): the file's ``sample.sampler`` fields, with
    the number of mixtures, the seed and the target token budget that defines the epoch caps as defaults."""
    from ..sampling import build_sampler_config  # pure core (numpy)

    defaults = {"num_samples": num_samples or cfg.sample.num_proxies, "seed": cfg.seed}
    if target_tokens is not None and cfg.sample.sampler.get("max_epochs") is not None:
        defaults["target_tokens"] = int(target_tokens)  # the epoch cap refers to one target run's budget
    return build_sampler_config(cfg.sample.sampler, defaults=defaults, source=f"{source}:sample.sampler")


def section_recipe(section: TrainSection | TargetsSection, *, section_name: str = "proxy",
                   source: str = "<config>"):
    """The training ``Recipe`` of a section's runs: its preset and its overrides (no paths, no run fields)."""
    from ..recipe import build_recipe  # pure (no torch)

    return build_recipe({"preset": section.preset, **dict(section.overrides)}, source=f"{source}:{section_name}")

