"""The datasets Megatron evaluates on, the knobs every dataset builder shares, and what a blend realized.

:class:`DatasetOptions` holds megatron-core's ``GPTDatasetConfig`` knobs that every builder here and in
:mod:`.train_dataset` (the train set of a mixture or schedule) passes the same way: sequence length, seed, tokenizer,
cache, the document masks, ``mid_level_dataset_surplus`` and which ranks build. :func:`build_validation_datasets`
(one dataset per domain) and :func:`build_unweighted_dataset` (every domain's prefixes blended by size) are the
evaluation sets, the same whatever the mixture. :func:`realized_fractions` reads a blended dataset's own index
(``dataset_index``: which component every sample comes from) and maps components back to domains, so the
requested-vs-realized table (:func:`format_fraction_table`) reports what Megatron will actually feed the model.

megatron-core 0.16.1 details handled here: with a per-split blend the unused splits get size 0; ``path_to_cache``
needs an initialized ``torch.distributed`` process group (Megatron's ``pretrain`` has one; otherwise build without
a cache).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..data.manifest import SPLITS, DomainRegistry
from ..errors import DataError, RegmixError

logger = logging.getLogger(__name__)

#: Attribute set on the returned dataset: the domain of every blend component, in component order.
COMPONENT_DOMAINS_ATTR = "regmix_component_domains"


def _is_rank0() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _log_rank0(level: int, msg: str, *args: Any) -> None:
    if _is_rank0():
        logger.log(level, msg, *args)


@dataclass(frozen=True)
class DatasetOptions:
    """The ``GPTDatasetConfig`` knobs every dataset of a run is built with (Megatron-LM's flags of the same names)."""

    seq_length: int
    """Tokens per sample (``--seq-length``)."""
    seed: int
    """The seed of every shuffle (``--seed``)."""
    tokenizer: Any
    """A megatron-core tokenizer (``regmix_megatron.megatron.tokenizer_adapter.load_tokenizer``)."""
    path_to_cache: str | os.PathLike | None = None
    """Where megatron-core caches its indices (``--data-cache-path``; needs a process group)."""
    reset_position_ids: bool = False
    reset_attention_mask: bool = False
    eod_mask_loss: bool = False
    mid_level_dataset_surplus: float = 0.005
    """Extra samples of each component of a weighted blend (megatron-core's default); raise it when a tiny domain
    with a large weight is repeated many times."""
    is_built_on_rank: Callable[[], bool] | None = None
    """megatron-core's callable (None: build on every rank)."""

    def gpt_config(self, blend_per_split: list, *, path_to_cache: str | None, weighted: bool = False) -> Any:
        """megatron-core's ``GPTDatasetConfig`` of one blend per split (``weighted``: a weighted blend, which takes
        ``mid_level_dataset_surplus``)."""
        from megatron.core.datasets.gpt_dataset import GPTDatasetConfig

        extra = {"mid_level_dataset_surplus": self.mid_level_dataset_surplus} if weighted else {}
        return GPTDatasetConfig(random_seed=int(self.seed), sequence_length=int(self.seq_length),
                                blend_per_split=blend_per_split, path_to_cache=path_to_cache, tokenizer=self.tokenizer,
                                reset_position_ids=self.reset_position_ids,
                                reset_attention_mask=self.reset_attention_mask, eod_mask_loss=self.eod_mask_loss,
                                **extra)

    def build(self, config: Any, split: str, size: int | None) -> Any:
        """megatron-core's ``BlendedMegatronDatasetBuilder`` of ``GPTDataset``: the ``split`` dataset of ``size``
        samples (None: every sample once) of ``config``'s blend; None on a rank that does not build."""
        from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
        from megatron.core.datasets.gpt_dataset import GPTDataset

        index = SPLITS.index(split)
        sizes: list = [0, 0, 0]
        sizes[index] = size
        return BlendedMegatronDatasetBuilder(GPTDataset, sizes, self.is_built_on_rank or _always,
                                             config).build()[index]

    def cache(self) -> str | None:
        """``path_to_cache`` as a str, refused without an initialized process group (megatron-core 0.16.1 asks for
        the rank)."""
        if self.path_to_cache is None:
            return None
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RegmixError(
                f"path_to_cache={str(self.path_to_cache)!r} needs an initialized torch.distributed process group "
                "(megatron-core 0.16.1 asks for the rank): initialize one (gloo, world size 1 is fine) or "
                "pass path_to_cache=None")
        return str(self.path_to_cache)


def blend_per_split(split: str, blend: tuple) -> list:
    """megatron-core's ``blend_per_split``: ``blend`` for ``split``, None for the others."""
    out: list = [None, None, None]
    out[SPLITS.index(split)] = blend
    return out


def check_build_arguments(split: str, num_samples: Any, options: DatasetOptions) -> str | None:
    """Refuse a bad split, size, sequence length or seed, and a cache path without a process group; the cache path
    as a str."""
    if split not in SPLITS:
        raise DataError(f"split={split!r}: use one of {list(SPLITS)}")
    for name, value in (("seq_length", options.seq_length), ("num_samples", num_samples)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise RegmixError(f"{name}={value!r}: use a positive integer")
    if not isinstance(options.seed, (int, np.integer)) or options.seed < 0:
        raise RegmixError(f"seed={options.seed!r}: use a non-negative integer")
    return options.cache()


def _always() -> bool:
    return True


def build_validation_datasets(registry: DomainRegistry, options: DatasetOptions, *, num_samples: int | None,
                              split: str = "valid") -> list[tuple[str, Any]]:
    """One dataset per domain of ``split`` (unweighted across domains; a multi-prefix domain is blended by
    token count), in canonical domain order: ``[(domain, dataset), ...]``. ``num_samples=None`` builds one
    full epoch of each domain (Megatron's ``--full-validation``). Every domain is included, zero weight or
    not, so every validation loss is measured on identical tokens whatever the mixture."""
    if split not in SPLITS:
        raise DataError(f"split={split!r}: use one of {list(SPLITS)}")
    path_to_cache = options.cache()
    out = []
    for domain in registry.domains:
        parts = [p for p in domain.prefixes(split) if p.num_tokens > 0]
        if not parts:
            raise DataError(f"domain {domain.name!r} has no {split} tokens in {registry.path or 'the manifest'}: "
                            f"every domain needs a {split} set (re-run preprocessing)")
        total = sum(p.num_tokens for p in parts)
        weights = None if num_samples is None else [p.num_tokens / total for p in parts]
        config = options.gpt_config(blend_per_split(split, ([p.path for p in parts], weights)),
                                    path_to_cache=path_to_cache)
        dataset = options.build(config, split, None if num_samples is None else int(num_samples))
        if dataset is not None:
            setattr(dataset, COMPONENT_DOMAINS_ATTR, (domain.name,) * len(parts))
        out.append((domain.name, dataset))
    return out


def build_unweighted_dataset(registry: DomainRegistry, options: DatasetOptions, *, num_samples: int | None,
                             split: str = "test") -> Any:
    """Every domain's ``split`` prefixes as one blend weighted by dataset size, ``num_samples`` long (None: all):
    what Megatron-LM builds from an unweighted prefix list, such as the ``test`` list of our
    ``per_split_data_args.json``. The same test set whatever the mixture. None when no domain has ``split``
    prefixes."""
    from ..export.files import domain_prefixes

    if not any(d.prefixes(split) for d in registry.domains):
        return None
    prefixes = domain_prefixes(registry, split)
    path_to_cache = None if options.path_to_cache is None else str(options.path_to_cache)
    config = options.gpt_config(blend_per_split(split, (prefixes, None)), path_to_cache=path_to_cache)
    dataset = options.build(config, split, None if num_samples is None else int(num_samples))
    if dataset is not None:
        setattr(dataset, COMPONENT_DOMAINS_ATTR, tuple(domain_of_prefix(registry, p, split) for p in prefixes))
    return dataset


def domain_of_prefix(registry: DomainRegistry, prefix: str, split: str) -> str:
    """The domain whose ``split`` prefixes hold ``prefix`` (compared as real paths)."""
    target = os.path.realpath(prefix)
    for d in registry.domains:
        for p in d.prefixes(split):
            if os.path.realpath(p.path) == target:
                return d.name
    raise DataError(f"prefix {prefix} is not a {split} prefix of any domain in {registry.path or 'the registry'}")


def _component_counts(dataset: Any) -> np.ndarray:
    index = getattr(dataset, "dataset_index", None)
    if index is None:
        # A blend of one prefix is a plain GPTDataset: every sample comes from component 0.
        return np.array([len(dataset)], dtype=np.int64)
    return np.bincount(np.asarray(index), minlength=len(dataset.datasets)).astype(np.int64)


def realized_samples(dataset: Any, registry: DomainRegistry | None = None) -> dict[str, int]:
    """Samples per domain in the blended dataset's index (every sample is ``seq_length`` tokens)."""
    domains = getattr(dataset, COMPONENT_DOMAINS_ATTR, None)
    if domains is None:
        if registry is None:
            raise RegmixError("dataset was not built by build_train_dataset: pass registry= to map its "
                              "components back to domains")
        parts = dataset.datasets if hasattr(dataset, "datasets") else [dataset]
        split = SPLITS[parts[0].index_split.value]
        domains = tuple(domain_of_prefix(registry, ds.dataset_path, split) for ds in parts)
    counts = _component_counts(dataset)
    out: dict[str, int] = {}
    for name, c in zip(domains, counts):
        out[name] = out.get(name, 0) + int(c)
    if registry is not None:
        out = {name: out.get(name, 0) for name in registry.names}
    return out


def realized_fractions(dataset: Any, registry: DomainRegistry | None = None) -> dict[str, float]:
    """Fraction of training tokens per domain as realized by the blended dataset's index.

    Every sample holds the same number of tokens, so token fractions equal sample fractions. With
    ``registry`` every domain is listed (zero-weight ones as 0.0)."""
    samples = realized_samples(dataset, registry)
    total = sum(samples.values())
    if total <= 0:
        raise RegmixError("the blended dataset is empty")
    return {name: c / total for name, c in samples.items()}


def format_fraction_table(requested: Mapping[str, float], realized: Mapping[str, float],
                          samples: Mapping[str, int] | None = None,
                          epochs: Mapping[str, float] | None = None) -> str:
    """A plain-text table: domain, requested weight, realized weight, difference (and samples/epochs)."""
    names = sorted(set(requested) | set(realized))
    width = max([len("domain")] + [len(n) for n in names])
    head = f"{'domain':<{width}}  {'requested':>10}  {'realized':>10}  {'diff':>10}"
    if samples is not None:
        head += f"  {'samples':>9}"
    if epochs is not None:
        head += f"  {'epochs':>7}"
    lines = [head, "-" * len(head)]
    for n in names:
        r, z = float(requested.get(n, 0.0)), float(realized.get(n, 0.0))
        line = f"{n:<{width}}  {r:>10.6f}  {z:>10.6f}  {z - r:>+10.2e}"
        if samples is not None:
            line += f"  {samples.get(n, 0):>9d}"
        if epochs is not None:
            line += f"  {epochs.get(n, 0.0):>7.3f}"
        lines.append(line)
    return "\n".join(lines)


__all__: Sequence[str] = (
    "DatasetOptions", "blend_per_split", "check_build_arguments", "build_validation_datasets",
    "build_unweighted_dataset", "domain_of_prefix", "realized_fractions", "realized_samples", "format_fraction_table",
    "COMPONENT_DOMAINS_ATTR",
)
