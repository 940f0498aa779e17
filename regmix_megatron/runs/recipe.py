"""The training recipe (pure: no torch, no megatron): how a model is trained, not which run it is.

Model/optimizer/eval/parallel/precision/checkpoint settings come from a named *preset*
(``regmix_megatron/runs/presets/<name>.yaml``) with any nested field overridden::

    build_recipe({"preset": "cpu-proxy", "optim": {"train_steps": 300}})

:func:`build_recipe` merges the preset under the given fields (nested mappings merged key by key) and
validates everything with errors naming field, value and fix. A recipe holds no paths; the run (data, mixture,
seed, output directory) is ``run_config.RunConfig``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence

import yaml

from ..configs import check, config_to_dict, load_config
from ..errors import ConfigError
from ..fileio import read_yaml
from ..hashing import content_hash

PRESET_DIR = Path(__file__).parent / "presets"
DEFAULT_TIMEOUT_MINUTES = 60
"""``parallel.distributed_timeout_minutes`` unless given (torch's own default is 10)."""


@dataclass
class ModelConfig:
    """LLaMA-style decoder: RoPE, RMSNorm, SwiGLU, no bias, untied embeddings."""

    num_layers: int = 2
    """Transformer layers."""
    hidden_size: int = 256
    """Width of the residual stream."""
    num_attention_heads: int = 8
    """Attention heads (they divide ``hidden_size``; the head dimension must be even for RoPE)."""
    ffn_hidden_size: int = 512
    """Width of the SwiGLU MLP (each of the gate and up projections)."""
    seq_length: int = 2048
    """Tokens per training sequence (and per evaluation window)."""
    vocab_size: Optional[int] = None
    """None: the tokenizer's vocabulary size from domains.json (padded to ``vocab_multiple``)."""
    vocab_multiple: int = 64
    """Pad the embedding table to a multiple of this (and of the tensor-parallel size)."""
    rotary_base: int = 10000
    """RoPE base frequency."""
    norm_epsilon: float = 1e-5
    """RMSNorm epsilon."""
    init_method_std: float = 0.02
    """Standard deviation of the normal weight initialization."""

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "num_attention_heads", "ffn_hidden_size", "seq_length",
                     "vocab_multiple", "rotary_base"):
            value = getattr(self, name)
            check(isinstance(value, int) and value > 0, "model", name, value, "use a positive integer")
        check(self.hidden_size % self.num_attention_heads == 0, "model", "num_attention_heads",
              self.num_attention_heads, f"must divide model.hidden_size={self.hidden_size}")
        check((self.hidden_size // self.num_attention_heads) % 2 == 0, "model", "num_attention_heads",
              self.num_attention_heads, "the head dimension hidden_size/num_attention_heads must be even (RoPE)")
        check(self.vocab_size is None or self.vocab_size > 0, "model", "vocab_size", self.vocab_size,
              "use a positive integer or null (take it from the tokenizer)")
        check(self.norm_epsilon > 0, "model", "norm_epsilon", self.norm_epsilon, "use a small positive number")
        check(self.init_method_std > 0, "model", "init_method_std", self.init_method_std, "use e.g. 0.02")


@dataclass
class OptimConfig:
    """AdamW with gradient clipping and a warmup + constant/cosine learning-rate schedule."""

    train_steps: int = 1000
    """Number of optimizer steps."""
    global_batch_size: int = 512
    """Sequences per optimizer step (accumulated over micro-batches and data-parallel ranks)."""
    micro_batch_size: int = 8
    """Sequences per forward/backward pass of one rank."""
    lr: float = 4e-4
    """Peak learning rate (after warmup)."""
    min_lr: float = 0.0
    """Final learning rate of the cosine schedule (ignored by ``constant``)."""
    lr_schedule: Literal["constant", "cosine"] = "constant"
    """``constant`` (after warmup; RegMix proxies) or ``cosine`` (decay to ``min_lr``; target runs)."""
    warmup_steps: Optional[int] = None
    """Linear warmup steps (default none); give this or ``warmup_fraction``, not both."""
    warmup_fraction: Optional[float] = None
    """Warmup as a fraction of ``train_steps`` (e.g. 0.04); give this or ``warmup_steps``, not both."""
    weight_decay: float = 0.1
    """AdamW's decoupled weight decay."""
    adam_beta1: float = 0.9
    """Adam's first-moment decay."""
    adam_beta2: float = 0.95
    """Adam's second-moment decay."""
    adam_eps: float = 1e-8
    """Adam's epsilon."""
    clip_grad: float = 1.0
    """Clip the global gradient norm to this (0 disables clipping)."""

    def __post_init__(self) -> None:
        for name in ("train_steps", "global_batch_size", "micro_batch_size"):
            value = getattr(self, name)
            check(isinstance(value, int) and value > 0, "optim", name, value, "use a positive integer")
        check(self.global_batch_size % self.micro_batch_size == 0, "optim", "global_batch_size",
              self.global_batch_size, f"must be a multiple of optim.micro_batch_size={self.micro_batch_size}")
        check(math.isfinite(self.lr) and self.lr > 0, "optim", "lr", self.lr, "use a positive learning rate")
        check(0 <= self.min_lr <= self.lr, "optim", "min_lr", self.min_lr, f"use 0 <= min_lr <= lr={self.lr}")
        check(self.lr_schedule in ("constant", "cosine"), "optim", "lr_schedule", self.lr_schedule,
              "use 'constant' or 'cosine'")
        check(not (self.warmup_steps is not None and self.warmup_fraction is not None), "optim",
              "warmup_fraction", self.warmup_fraction, "give warmup_steps or warmup_fraction, not both")
        check(self.warmup_steps is None or 0 <= self.warmup_steps <= self.train_steps, "optim", "warmup_steps",
              self.warmup_steps, f"use 0 <= warmup_steps <= train_steps={self.train_steps}")
        check(self.warmup_fraction is None or 0 <= self.warmup_fraction < 1, "optim", "warmup_fraction",
              self.warmup_fraction, "use a fraction in [0, 1)")
        check(self.weight_decay >= 0, "optim", "weight_decay", self.weight_decay, "use a value >= 0")
        check(0 <= self.adam_beta1 < 1, "optim", "adam_beta1", self.adam_beta1, "use a value in [0, 1)")
        check(0 <= self.adam_beta2 < 1, "optim", "adam_beta2", self.adam_beta2, "use a value in [0, 1)")
        check(self.adam_eps > 0, "optim", "adam_eps", self.adam_eps, "use a small positive number")
        check(self.clip_grad >= 0, "optim", "clip_grad", self.clip_grad, "use a value >= 0 (0 disables)")

    @property
    def num_warmup_steps(self) -> int:
        if self.warmup_steps is not None:
            return self.warmup_steps
        if self.warmup_fraction is not None:
            return int(round(self.warmup_fraction * self.train_steps))
        return 0


@dataclass
class EvalConfig:
    """Per-domain validation on fixed tokens: the first ``num_tokens_per_domain`` tokens of each domain's
    ``split`` prefixes, cut into ``model.seq_length`` windows; identical for every run over the same data."""

    eval_interval: int = 100
    """Evaluate every this many steps (and always at the end)."""
    num_tokens_per_domain: int = 65536
    """Tokens evaluated per domain (the first ones of its split)."""
    num_tokens_by_domain: Optional[dict] = None
    """Per-domain exceptions to ``num_tokens_per_domain``: ``{domain: tokens}``, or ``all`` for the whole split
    (e.g. ``{qa: all}`` for a target whose verdicts need every document). Part of the recipe's hash only when set."""
    final_num_tokens_by_domain: Optional[dict] = None
    """Per-domain exceptions for the final evaluation of ``final_splits`` only (same form): e.g. ``{qa: all}`` scores
    the test split that judges the comparison on every document while the evaluations during training stay cheap.
    Unset: the final splits are evaluated like ``split``. Part of the recipe's hash only when set."""
    split: Literal["train", "valid", "test"] = "valid"
    """The split evaluated during training (``val_loss``): the validation split every choice is made on."""
    micro_batch_size: int = 8
    """Evaluation windows per forward pass."""
    domains: Optional[list] = None
    """Domains to evaluate (None: every domain). The evaluation-only domains of domains.json are evaluated
    whatever this says. Fewer domains make evaluation cheaper (proxies need only the target's domains)."""
    final_splits: list = field(default_factory=lambda: ["test"])
    """Splits evaluated once more at the end of training, on the same domains (``result.json``'s
    ``split_loss``): the test split judges a mixture chosen on the validation split."""

    def __post_init__(self) -> None:
        check(self.eval_interval > 0, "eval", "eval_interval", self.eval_interval, "use a positive integer")
        check(self.num_tokens_per_domain > 0, "eval", "num_tokens_per_domain", self.num_tokens_per_domain,
              "use a positive integer")
        self.num_tokens_by_domain = _tokens_by_domain(self.num_tokens_by_domain)
        self.final_num_tokens_by_domain = _tokens_by_domain(self.final_num_tokens_by_domain,
                                                            "final_num_tokens_by_domain")
        check(self.split in ("train", "valid", "test"), "eval", "split", self.split,
              "use 'valid' (or 'test'/'train')")
        check(self.micro_batch_size > 0, "eval", "micro_batch_size", self.micro_batch_size,
              "use a positive integer")
        check(self.domains is None or (isinstance(self.domains, list) and len(self.domains) > 0
                                       and all(isinstance(d, str) and d for d in self.domains)
                                       and len(set(self.domains)) == len(self.domains)),
              "eval", "domains", self.domains, "use null (every domain) or a list of distinct domain names")
        if self.domains is not None:
            self.domains = sorted(self.domains)  # canonical: the order does not change what a run computes
        check(isinstance(self.final_splits, list) and len(set(self.final_splits)) == len(self.final_splits)
              and all(s in ("train", "valid", "test") and s != self.split for s in self.final_splits),
              "eval", "final_splits", self.final_splits,
              f"use a list of distinct splits other than eval.split={self.split!r}, e.g. ['test'] or []")

    def num_tokens_for(self, domain: str, split: str | None = None) -> int | str:
        """Tokens evaluated for ``domain`` on ``split`` (None: ``eval.split``): for a final split its
        ``final_num_tokens_by_domain`` entry, else its ``num_tokens_by_domain`` entry (a count or
        :data:`ALL_TOKENS`), else ``num_tokens_per_domain``."""
        final = self.final_num_tokens_by_domain or {}
        if split is not None and split in self.final_splits and domain in final:
            return final[domain]
        return (self.num_tokens_by_domain or {}).get(domain, self.num_tokens_per_domain)


#: ``eval.num_tokens_by_domain`` value (and ``evaluate --num-tokens``): the whole split.
ALL_TOKENS = "all"


def _tokens_by_domain(value, name: str = "num_tokens_by_domain") -> dict | None:
    """``eval.num_tokens_by_domain`` (or ``eval.<name>``, of the same form) checked, in canonical form: None when
    unset or empty, else a mapping with sorted domain names and positive integer counts or ``"all"`` (``1M``-style
    counts parsed)."""
    from ..numbers import parse_count

    field_fix = "use a mapping {domain: tokens}, tokens a positive integer or 'all' (the whole split), e.g. {qa: all}"
    if value is None:
        return None
    check(isinstance(value, Mapping) and all(isinstance(k, str) and k for k in value), "eval", name, value,
          field_fix)
    out = {}
    for domain in sorted(value):
        raw = value[domain]
        if raw == ALL_TOKENS:
            out[domain] = ALL_TOKENS
            continue
        try:
            count = None if isinstance(raw, bool) else parse_count(raw)
        except (TypeError, ValueError):
            count = None
        check(count is not None and count > 0, "eval", f"{name}.{domain}", raw,
              "use a positive number of tokens (e.g. 131072) or 'all' (the whole split)")
        out[domain] = count
    return out or None


@dataclass
class ParallelConfig:
    """Tensor/pipeline sizes; data parallel is world_size / (tp * pp). Launch with torchrun for > 1 rank."""

    tensor_model_parallel_size: int = 1
    """Ranks a layer's weights are split over."""
    pipeline_model_parallel_size: int = 1
    """Ranks the layers are split over (stages)."""
    num_threads: Optional[int] = None
    """torch intra-op threads per rank; None: $SLURM_CPUS_PER_TASK if set, else torch's default."""
    use_cpu_initialization: Optional[bool] = None
    """Draw each full weight matrix on the CPU and split it over the tensor-parallel ranks, so that every TP size
    starts from the same weights (megatron-core's ``use_cpu_initialization``). None: yes on CPU; no on GPUs, where
    each rank draws its own shard on its GPU (faster; the weights then depend on the TP size)."""
    distributed_timeout_minutes: int = DEFAULT_TIMEOUT_MINUTES
    """How long a collective (NCCL, gloo) waits for the other ranks before the run fails. Rank 0 builds each
    domain's index files while the others wait at a barrier: on large data (billions of tokens, many prefixes)
    that can take longer than torch's default 10 minutes. Raise it for larger data; lower it to notice a hung
    rank sooner."""

    def __post_init__(self) -> None:
        for name in ("tensor_model_parallel_size", "pipeline_model_parallel_size"):
            value = getattr(self, name)
            check(isinstance(value, int) and value > 0, "parallel", name, value, "use a positive integer")
        check(self.num_threads is None or self.num_threads > 0, "parallel", "num_threads", self.num_threads,
              "use a positive integer or null")
        check(isinstance(self.distributed_timeout_minutes, int) and self.distributed_timeout_minutes > 0,
              "parallel", "distributed_timeout_minutes", self.distributed_timeout_minutes,
              f"use a positive whole number of minutes (default {DEFAULT_TIMEOUT_MINUTES})")


@dataclass
class PrecisionConfig:
    """Numerics and layer implementation. On CPU only fp32 with the local spec is supported."""

    bf16: bool = False
    """bf16 parameters/compute with fp32 main weights (GPU; ~20-85x slower than fp32 on this kind of CPU)."""
    fp8: Optional[Literal["hybrid", "e4m3"]] = None
    """None, 'hybrid' (e4m3 forward, e5m2 gradients; TE's recommended recipe) or 'e4m3'. Needs Transformer
    Engine on a GPU."""
    fp8_recipe: Literal["delayed", "tensorwise", "mxfp8", "blockwise"] = "delayed"
    """Transformer Engine's fp8 scaling recipe (with ``fp8``)."""
    layer_spec: Literal["auto", "local", "transformer_engine"] = "auto"
    """'auto' (Transformer Engine when it imports and CUDA is available, else local), 'local' or
    'transformer_engine'."""

    def __post_init__(self) -> None:
        check(self.fp8 in (None, "hybrid", "e4m3"), "precision", "fp8", self.fp8,
              "use null, 'hybrid' or 'e4m3'")
        check(self.fp8_recipe in ("delayed", "tensorwise", "mxfp8", "blockwise"), "precision", "fp8_recipe",
              self.fp8_recipe, "use 'delayed', 'tensorwise', 'mxfp8' or 'blockwise'")
        check(self.layer_spec in ("auto", "local", "transformer_engine"), "precision", "layer_spec",
              self.layer_spec, "use 'auto', 'local' or 'transformer_engine'")
        check(self.fp8 is None or self.layer_spec != "local", "precision", "fp8", self.fp8,
              "fp8 needs the Transformer Engine layer spec: set precision.layer_spec to 'auto' or "
              "'transformer_engine', or fp8 to null")


@dataclass
class CheckpointConfig:
    """When checkpoints are written and how many are kept (a killed run resumes from the newest)."""

    interval: int = 100
    """Save every this many steps (0: only at the end of training)."""
    keep_last: int = 2
    """Keep this many most recent checkpoints."""
    save: bool = True
    """False: write no checkpoint at all, not even the final one (proxies that are cheaper to rerun than to
    save; such a run restarts from step 0 if killed and cannot be scored again with ``regmix-megatron
    evaluate``)."""

    def __post_init__(self) -> None:
        check(self.interval >= 0, "checkpoint", "interval", self.interval, "use an integer >= 0")
        check(self.keep_last >= 1, "checkpoint", "keep_last", self.keep_last, "use an integer >= 1")


#: The sections that decide what a run computes: its hash is part of every run id. Parallel layout, threads,
#: checkpointing and logging change how a run executes, not its losses, and may change between resumes.
IDENTITY_SECTIONS = ("model", "optim", "eval", "precision")


@dataclass
class Recipe:
    """How to train: model, optimizer, evaluation, parallelism, precision, checkpointing and logging.

    A recipe holds no paths and nothing that names one run: the same recipe trains every run of a sweep.
    Build it from a preset and overrides with :func:`build_recipe`; a run is a recipe plus its data, mixture,
    seed and output directory (``run_config.RunConfig``).
    """

    preset: Optional[str] = None
    """The preset this recipe was built from (informational once resolved; not part of its hash)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The model."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """The optimizer, batch and schedule."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Per-domain evaluation."""
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    """Tensor/pipeline parallelism and threads."""
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    """Numerics and layer implementation."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpointing."""
    log_interval: int = 10
    """Log a metrics row every this many steps (and at every evaluation)."""
    tensorboard: bool = False
    """Also write TensorBoard events under output_dir/tensorboard (only if torch.utils.tensorboard imports)."""

    def __post_init__(self) -> None:
        check(self.log_interval > 0, "train", "log_interval", self.log_interval, "use a positive integer")
        mp = self.parallel.tensor_model_parallel_size
        check(self.model.num_attention_heads % mp == 0, "parallel", "tensor_model_parallel_size", mp,
              f"must divide model.num_attention_heads={self.model.num_attention_heads}")
        check(self.model.ffn_hidden_size % mp == 0, "parallel", "tensor_model_parallel_size", mp,
              f"must divide model.ffn_hidden_size={self.model.ffn_hidden_size}")
        pp = self.parallel.pipeline_model_parallel_size
        check(self.model.num_layers % pp == 0, "parallel", "pipeline_model_parallel_size", pp,
              f"must divide model.num_layers={self.model.num_layers}")

    def to_dict(self) -> dict:
        """The plain form; ``eval.num_tokens_by_domain`` and ``eval.final_num_tokens_by_domain`` only when set
        (recipes without them keep their hash, and the ``config.yaml`` of their runs its content)."""
        d = config_to_dict(self)
        for key in ("num_tokens_by_domain", "final_num_tokens_by_domain"):
            if d["eval"][key] is None:
                del d["eval"][key]
        return d

    def identity(self) -> dict:
        """The sections that decide what a run of this recipe computes (:data:`IDENTITY_SECTIONS`)."""
        d = self.to_dict()
        return {k: d[k] for k in IDENTITY_SECTIONS}

    @property
    def hash(self) -> str:
        """Content hash of :meth:`identity` (``hashing.ID_LENGTH`` hex digits)."""
        return content_hash(self.identity())

    @property
    def num_train_tokens(self) -> int:
        """Training tokens one run consumes: steps x global batch x sequence length."""
        return int(self.optim.train_steps * self.optim.global_batch_size * self.model.seq_length)


# ---- presets ---------------------------------------------------------------------------------------------

def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"train.preset={name!r} is invalid: unknown preset; use one of {list_presets()}")
    data = read_yaml(path) or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a preset must be a mapping")
    return dict(data)


def merge_mappings(base: Mapping, override: Mapping) -> dict:
    """Recursive merge: nested mappings merged key by key, everything else replaced by ``override``.
    (``mixture`` mappings are values, not sections: they replace.)"""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if key != "mixture" and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_mappings(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: Sequence[str], flag: str = "--set") -> dict:
    """``["optim.lr=1e-3", "seed=3"]`` -> nested mapping; values parsed as YAML scalars."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{flag} {item!r}: expected key.sub=value")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".")]
        if not all(parts):
            raise ConfigError(f"{flag} {item!r}: empty key part in {key!r}")
        value = yaml.safe_load(raw) if raw.strip() else ""
        if isinstance(value, str):  # YAML 1.1 reads "1e30" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{flag} {item!r}: {p!r} is set both as a value and a section")
        node[parts[-1]] = value
    return out


@dataclass(frozen=True)
class RecipeOverrides:
    """Recipe fields given on top of a preset, as nested mappings (``{optim: {train_steps: 300}}``): a pipeline
    config's ``proxy.overrides`` / ``full_scale.overrides``, or what ``--set`` flags say. :meth:`from_dict` checks
    every key against the recipe's fields once (errors name the file, the field path, a near miss and the known
    fields); the values are checked with the preset's when the recipe is built (:meth:`recipe`)."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    """Section -> field -> value (``log_interval`` and ``tensorboard`` directly); no ``preset``, no run fields."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, source: str = "overrides") -> "RecipeOverrides":
        """Checked overrides; ``source`` names them in errors (``pipeline.yaml: proxy.overrides``)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}={data!r} is invalid: give a mapping of Recipe fields, e.g. "
                              "{optim: {train_steps: 300}}")
        if "preset" in data:
            raise ConfigError(f"{source}.preset is invalid: the preset has its own field (preset: ...); remove it "
                              "from the overrides")
        _check_keys(Recipe, data, source)
        return cls(copy.deepcopy(dict(data)))

    def merged(self, more: Mapping[str, Any]) -> "RecipeOverrides":
        """These overrides with ``more`` merged in (nested mappings key by key, ``more`` winning)."""
        return RecipeOverrides(merge_mappings(self.fields, more))

    def recipe(self, preset: str | None, *, source: str = "<recipe>") -> Recipe:
        """The recipe of ``preset`` with these overrides (:func:`build_recipe`: every value checked)."""
        return build_recipe({"preset": preset, **self.fields} if preset is not None else dict(self.fields),
                            source=source)

    def to_dict(self) -> dict:
        return copy.deepcopy(dict(self.fields))


def _check_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    """Every key of ``data`` a field of dataclass ``cls`` (nested sections recursively)."""
    import dataclasses
    import typing

    from ..errors import did_you_mean

    known = {f.name: f for f in dataclasses.fields(cls) if f.name != "preset"}
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}.{key} is invalid: {cls.__name__} has no field {key!r}"
                              f"{did_you_mean(str(key), known)}; known fields: {sorted(known)}")
        if dataclasses.is_dataclass(hints.get(key)):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}.{key}={value!r} is invalid: give a mapping of {hints[key].__name__} "
                                  f"fields, e.g. {key}: {{...}}")
            _check_keys(hints[key], value, f"{where}.{key}")


def build_recipe(data: Mapping[str, Any] | None, *, source: str = "<recipe>",
                 overrides: Mapping[str, Any] | None = None) -> Recipe:
    """Resolve preset + mapping + overrides into a validated :class:`Recipe`.

    ``data`` holds recipe fields only (``preset``, sections, ``log_interval``, ``tensorboard``); nested
    mappings are merged key by key over the preset's.
    """
    data = dict(data or {})
    if overrides:
        data = merge_mappings(data, overrides)
    preset = data.get("preset")
    if preset is not None:
        if not isinstance(preset, str):
            raise ConfigError(f"{source}: train.preset={preset!r} is invalid: give a preset name "
                              f"({list_presets()})")
        data = merge_mappings(load_preset(preset), data)
    return load_config(Recipe, data, source=source)
