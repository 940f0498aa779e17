"""A mixture as the blended dataset Megatron trains on (megatron-core's ``BlendedMegatronDatasetBuilder``).

:func:`build_blended_dataset` turns a :class:`~regmix_megatron.mixtures.mixture.Mixture` over a
:class:`~regmix_megatron.data.manifest.DomainRegistry` into a ``BlendedDataset`` of ``GPTDataset`` components
(the blend of :func:`regmix_megatron.export.files.blend_for_split`: zero weights dropped, multi-prefix domains split
by token count). :func:`realized_fractions` reads the blended dataset's own index (``dataset_index``: which
component every sample comes from) and maps components back to domains, so the requested-vs-realized table
reports what Megatron will actually feed the model.

megatron-core 0.16.1 details handled here: every blend weight must be > 0 (it asserts); with a per-split
blend the unused splits get size 0; ``path_to_cache`` needs an initialized ``torch.distributed`` process group
(Megatron's ``pretrain`` has one; otherwise build without a cache); a component oversampled beyond its
built size raises an IndexError that mentions ``mid_level_dataset_surplus`` (raise it here when a tiny domain
with a large weight is repeated many times).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..data.manifest import SPLITS, DomainRegistry
from ..errors import DataError, RegmixError
from ..export.files import blend_for_split
from ..mixtures.domains import check_trainable
from ..mixtures.mixture import Mixture

logger = logging.getLogger(__name__)

#: Attribute set on the returned dataset: the domain of every blend component, in component order.
COMPONENT_DOMAINS_ATTR = "regmix_component_domains"


def _is_rank0() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _log_rank0(level: int, msg: str, *args: Any) -> None:
    if _is_rank0():
        logger.log(level, msg, *args)


def epochs_per_domain(registry: DomainRegistry, mixture: Mixture, *, num_samples: int, seq_length: int,
                      split: str = "train") -> dict[str, float]:
    """How many times each domain's ``split`` tokens would be seen:
    ``weight * num_samples * seq_length / tokens_of_domain`` (0 for zero-weight domains)."""
    mixture = check_trainable(registry, mixture, "mixture")
    out = {}
    for name, weight in mixture.as_dict().items():
        tokens = registry.get(name).num_tokens(split)
        if weight == 0:
            out[name] = 0.0
        elif tokens == 0:
            out[name] = float("inf")
        else:
            out[name] = weight * num_samples * seq_length / tokens
    return out


def check_epochs(registry: DomainRegistry, mixture: Mixture, *, num_samples: int, seq_length: int,
                 max_epochs: float | None, split: str = "train") -> dict[str, float]:
    """Warn (rank 0) for every domain repeated more than ``max_epochs`` times; returns the excess ones."""
    if max_epochs is None:
        return {}
    epochs = epochs_per_domain(registry, mixture, num_samples=num_samples, seq_length=seq_length, split=split)
    excess = {d: e for d, e in epochs.items() if e > max_epochs}
    for d, e in excess.items():
        _log_rank0(logging.WARNING,
                   "domain %r would be repeated %.2f times (%d samples x %d tokens x weight %.4g over %d %s tokens), "
                   "more than max_epochs=%g: lower its weight, the number of samples, or resample with the "
                   "epoch cap (regmix-megatron sample --max-epochs/--target-tokens)", d, e, num_samples,
                   seq_length, mixture.as_dict()[d], registry.get(d).num_tokens(split), split, max_epochs)
    return excess


def build_blended_dataset(
    registry: DomainRegistry,
    mixture: Mixture,
    *,
    seq_length: int,
    num_samples: int,
    seed: int,
    tokenizer: Any,
    split: str = "train",
    path_to_cache: str | os.PathLike | None = None,
    max_epochs: float | None = None,
    mid_level_dataset_surplus: float = 0.005,
    reset_position_ids: bool = False,
    reset_attention_mask: bool = False,
    eod_mask_loss: bool = False,
    is_built_on_rank: Callable[[], bool] | None = None,
) -> Any:
    """Build the ``split`` dataset of ``num_samples`` samples of ``seq_length`` tokens for ``mixture``.

    Returns megatron-core's ``BlendedDataset`` (or a plain ``GPTDataset`` when the blend has one prefix);
    either way it carries :data:`COMPONENT_DOMAINS_ATTR` for :func:`realized_fractions`. ``tokenizer`` is a
    megatron-core tokenizer (``regmix_megatron.megatron.tokenizer_adapter.load_tokenizer``). Warns when a domain
    would be repeated more than ``max_epochs`` times. ``is_built_on_rank`` is megatron-core's callable
    (default: build on every rank).

    Long (over 60 lines) because its signature mirrors megatron-core's ``GPTDatasetConfig`` knobs one per line;
    the body is one straight sequence of checks, the config and the builder call.
    """
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    path_to_cache = check_build_arguments(split, seq_length, num_samples, seed, path_to_cache)
    prefixes, weights = blend_for_split(registry, mixture, split)
    component_domains = []
    for p in prefixes:
        component_domains.append(_domain_of_prefix(registry, p, split))
    check_epochs(registry, mixture, num_samples=num_samples, seq_length=seq_length, max_epochs=max_epochs,
                 split=split)

    index = SPLITS.index(split)
    blend_per_split: list = [None, None, None]
    blend_per_split[index] = (prefixes, weights)
    sizes = [0, 0, 0]
    sizes[index] = int(num_samples)
    config = GPTDatasetConfig(
        random_seed=int(seed),
        sequence_length=int(seq_length),
        blend_per_split=blend_per_split,
        path_to_cache=path_to_cache,
        tokenizer=tokenizer,
        reset_position_ids=reset_position_ids,
        reset_attention_mask=reset_attention_mask,
        eod_mask_loss=eod_mask_loss,
        mid_level_dataset_surplus=mid_level_dataset_surplus,
    )
    try:
        datasets = BlendedMegatronDatasetBuilder(GPTDataset, sizes, is_built_on_rank or _always,
                                                 config).build()
    except IndexError as exc:
        if "mid_level_dataset_surplus" in str(exc):
            raise RegmixError(
                f"megatron-core: {exc} Pass a larger mid_level_dataset_surplus (now "
                f"{mid_level_dataset_surplus}) to build_blended_dataset") from exc
        raise
    dataset = datasets[index]
    if dataset is None:
        raise RegmixError(f"megatron-core built no {split} dataset for mixture {mixture.hash}")
    setattr(dataset, COMPONENT_DOMAINS_ATTR, tuple(component_domains))
    return dataset


def check_build_arguments(split: str, seq_length: Any, num_samples: Any, seed: Any,
                          path_to_cache: str | os.PathLike | None) -> str | None:
    """Refuse a bad split, size or seed, and a cache path without a process group; the cache path as a str."""
    if split not in SPLITS:
        raise DataError(f"split={split!r}: use one of {list(SPLITS)}")
    for name, value in (("seq_length", seq_length), ("num_samples", num_samples)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise RegmixError(f"{name}={value!r}: use a positive integer")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RegmixError(f"seed={seed!r}: use a non-negative integer")
    if path_to_cache is None:
        return None
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RegmixError(
            f"path_to_cache={str(path_to_cache)!r} needs an initialized torch.distributed process group "
            "(megatron-core 0.16.1 asks for the rank): initialize one (gloo, world size 1 is fine) or "
            "pass path_to_cache=None")
    return str(path_to_cache)


def _always() -> bool:
    return True


def build_validation_datasets(
    registry: DomainRegistry,
    *,
    seq_length: int,
    num_samples: int | None,
    seed: int,
    tokenizer: Any,
    split: str = "valid",
    path_to_cache: str | os.PathLike | None = None,
    reset_position_ids: bool = False,
    reset_attention_mask: bool = False,
    eod_mask_loss: bool = False,
    is_built_on_rank: Callable[[], bool] | None = None,
) -> list[tuple[str, Any]]:
    """One dataset per domain of ``split`` (unweighted across domains; a multi-prefix domain is blended by
    token count), in canonical domain order: ``[(domain, dataset), ...]``. ``num_samples=None`` builds one
    full epoch of each domain (Megatron's ``--full-validation``). Every domain is included, zero weight or
    not, so every validation loss is measured on identical tokens whatever the mixture."""
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    if split not in SPLITS:
        raise DataError(f"split={split!r}: use one of {list(SPLITS)}")
    if path_to_cache is not None:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RegmixError(f"path_to_cache={str(path_to_cache)!r} needs an initialized torch.distributed "
                              "process group: initialize one or pass path_to_cache=None")
        path_to_cache = str(path_to_cache)
    index = SPLITS.index(split)
    out = []
    for domain in registry.domains:
        parts = [p for p in domain.prefixes(split) if p.num_tokens > 0]
        if not parts:
            raise DataError(f"domain {domain.name!r} has no {split} tokens in {registry.path or 'the manifest'}: "
                            f"every domain needs a {split} set (re-run preprocessing)")
        total = sum(p.num_tokens for p in parts)
        weights = None if num_samples is None else [p.num_tokens / total for p in parts]
        blend_per_split: list = [None, None, None]
        blend_per_split[index] = ([p.path for p in parts], weights)
        sizes: list = [0, 0, 0]
        sizes[index] = None if num_samples is None else int(num_samples)
        config = GPTDatasetConfig(
            random_seed=int(seed), sequence_length=int(seq_length), blend_per_split=blend_per_split,
            path_to_cache=path_to_cache, tokenizer=tokenizer, reset_position_ids=reset_position_ids,
            reset_attention_mask=reset_attention_mask, eod_mask_loss=eod_mask_loss)
        dataset = BlendedMegatronDatasetBuilder(GPTDataset, sizes, is_built_on_rank or _always, config).build()[index]
        if dataset is not None:
            setattr(dataset, COMPONENT_DOMAINS_ATTR, (domain.name,) * len(parts))
        out.append((domain.name, dataset))
    return out


def build_unweighted_dataset(
    registry: DomainRegistry,
    *,
    seq_length: int,
    num_samples: int | None,
    seed: int,
    tokenizer: Any,
    split: str = "test",
    path_to_cache: str | os.PathLike | None = None,
    reset_position_ids: bool = False,
    reset_attention_mask: bool = False,
    eod_mask_loss: bool = False,
    is_built_on_rank: Callable[[], bool] | None = None,
) -> Any:
    """Every domain's ``split`` prefixes as one blend weighted by dataset size, ``num_samples`` long (None: all):
    what Megatron-LM builds from an unweighted prefix list, such as the ``test`` list of our
    ``per_split_data_args.json``. The same test set whatever the mixture. None when no domain has ``split``
    prefixes."""
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    from ..export.files import domain_prefixes

    if not any(d.prefixes(split) for d in registry.domains):
        return None
    prefixes = domain_prefixes(registry, split)
    index = SPLITS.index(split)
    blend_per_split: list = [None, None, None]
    blend_per_split[index] = (prefixes, None)
    sizes: list = [0, 0, 0]
    sizes[index] = None if num_samples is None else int(num_samples)
    config = GPTDatasetConfig(
        random_seed=int(seed), sequence_length=int(seq_length), blend_per_split=blend_per_split,
        path_to_cache=None if path_to_cache is None else str(path_to_cache), tokenizer=tokenizer,
        reset_position_ids=reset_position_ids, reset_attention_mask=reset_attention_mask,
        eod_mask_loss=eod_mask_loss)
    dataset = BlendedMegatronDatasetBuilder(GPTDataset, sizes, is_built_on_rank or _always, config).build()[index]
    if dataset is not None:
        setattr(dataset, COMPONENT_DOMAINS_ATTR, tuple(_domain_of_prefix(registry, p, split) for p in prefixes))
    return dataset


def _domain_of_prefix(registry: DomainRegistry, prefix: str, split: str) -> str:
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
            raise RegmixError("dataset was not built by build_blended_dataset: pass registry= to map its "
                              "components back to domains")
        parts = dataset.datasets if hasattr(dataset, "datasets") else [dataset]
        split = SPLITS[parts[0].index_split.value]
        domains = tuple(_domain_of_prefix(registry, ds.dataset_path, split) for ds in parts)
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


def log_fraction_table(dataset: Any, registry: DomainRegistry, mixture: Mixture, *, seq_length: int | None = None,
                       split: str = "train") -> str:
    """Log (rank 0) and return the requested-vs-realized table of ``dataset``."""
    samples = realized_samples(dataset, registry)
    realized = realized_fractions(dataset, registry)
    epochs = None
    if seq_length is not None:
        epochs = epochs_per_domain(registry, mixture, num_samples=sum(samples.values()), seq_length=seq_length,
                                   split=split)
    table = format_fraction_table(mixture.as_dict(), realized, samples, epochs)
    vanished = [d for d, w in mixture.as_dict().items() if w > 0 and samples.get(d, 0) == 0]
    if vanished:
        _log_rank0(logging.WARNING, "domain(s) %s have a positive weight but no sample in the %s blend of %d "
                   "samples (weight x samples < 1): train on more samples or give them weight 0",
                   vanished, split, sum(samples.values()))
    _log_rank0(logging.INFO, "mixture %s, %s split: requested vs realized token fractions "
               "(from the blended dataset index)\n%s", mixture.hash, split, table)
    return table


__all__: Sequence[str] = (
    "build_blended_dataset", "build_validation_datasets", "realized_fractions", "realized_samples", "epochs_per_domain", "check_epochs",
    "format_fraction_table", "log_fraction_table", "COMPONENT_DOMAINS_ATTR",
)
