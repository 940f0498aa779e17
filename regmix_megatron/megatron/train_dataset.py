"""The train set of a run: a mixture or a schedule over a registry, as the dataset Megatron trains on.

One builder (:func:`build_train_dataset`): a static mixture is a one-phase schedule, and its train set is the
blend Megatron-LM itself builds from the export's ``--data-path`` (megatron-core's ``BlendedMegatronDatasetBuilder``
over :func:`regmix_megatron.export.files.blend_for_split`: zero weights dropped, multi-prefix domains split by token
count; its index cached under ``path_to_cache``). A schedule of several phases (docs/SCHEDULES.md) is built phase by
phase (:func:`build_phased_dataset`): the run's ``N`` samples are cut into phases
(:func:`regmix_megatron.mixtures.schedule.phase_starts`, on step boundaries when the global batch size divides ``N``).
Every component (one prefix of a domain with a positive weight in some phase) is one megatron-core ``GPTDataset``
sized for its samples over **all** phases, so its shuffle is drawn once and its epochs count every phase. The blend
index is megatron-core's own C++ ``build_blending_indices`` run per phase over the phase's weights for the phase's
samples, each component's sample counter continuing where the previous phases left it: within a domain, whichever
phase draws it, samples come from one pass. The index is a pure function of (schedule, seed, sizes, data), so
resuming at any step is reading the same indices. With one phase, components, sizes and the first ``N`` index
entries are those of megatron-core's ``BlendedDataset`` for the mixture (weights normalized as megatron does: once
for the sizes, again for the index): the phased train set of one phase is the static one, sample for sample.

:class:`ScheduledDataset` is a ``torch.utils.data.Dataset`` whose items are ``BlendedDataset``'s (``dataset_id`` +
the ``GPTDataset`` sample); Megatron-LM's ``build_pretraining_data_loader`` takes it as it is. The epochs a run
spends on each domain count every phase (:func:`epochs_per_domain`); the requested-vs-realized table is logged per
phase (:func:`log_train_table`).

megatron-core 0.16.1 details handled here: every blend weight must be > 0 (it asserts); with a per-split blend the
unused splits get size 0; a component oversampled beyond its built size raises an IndexError that mentions
``mid_level_dataset_surplus`` (raise it when a tiny domain with a large weight is repeated many times).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..data.manifest import DomainRegistry
from ..errors import RegmixError
from ..export.files import blend_for_split
from ..mixtures.domains import check_trainable
from ..mixtures.mixture import Mixture
from ..mixtures.schedule import Schedule, phase_starts
from .datasets import (
    COMPONENT_DOMAINS_ATTR,
    DatasetOptions,
    _log_rank0,
    blend_per_split,
    check_build_arguments,
    domain_of_prefix,
    format_fraction_table,
    realized_fractions,
    realized_samples,
)

logger = logging.getLogger(__name__)

#: Attribute set on every train set :func:`build_train_dataset` returns: ``(schedule, phase starts)``, what
#: :func:`phase_rows` reads (one phase: the whole run).
PHASES_ATTR = "regmix_phases"


class ScheduledDataset(torch.utils.data.Dataset):
    """Samples ``0 .. N-1`` of a scheduled run: ``datasets[dataset_index[i]][dataset_sample_index[i]]``."""

    def __init__(self, datasets: Sequence[Any], dataset_index: np.ndarray, dataset_sample_index: np.ndarray, *,
                 schedule: Schedule, starts: Sequence[int], component_domains: Sequence[str]) -> None:
        assert len(dataset_index) == len(dataset_sample_index) == starts[-1], (len(dataset_index), starts)
        self.datasets = list(datasets)
        self.dataset_index = dataset_index
        self.dataset_sample_index = dataset_sample_index
        self.schedule = schedule
        self.phase_starts = tuple(int(s) for s in starts)
        self.split = self.datasets[0].index_split  # Megatron-LM's data loader reads it
        setattr(self, COMPONENT_DOMAINS_ATTR, tuple(component_domains))
        setattr(self, PHASES_ATTR, (schedule, self.phase_starts))

    def __len__(self) -> int:
        return int(self.dataset_index.shape[0])

    def __getitem__(self, idx: int) -> dict:
        component = self.dataset_index[idx]
        return {"dataset_id": component, **self.datasets[component][self.dataset_sample_index[idx]]}

    def phase_of(self, sample: int) -> int:
        """The 0-based phase that serves ``sample``."""
        return int(np.searchsorted(self.phase_starts, sample, side="right") - 1)


# ---- the blend of every phase ----------------------------------------------------------------------------------
def phase_blends(registry: DomainRegistry, schedule: Schedule, split: str = "train"
                 ) -> tuple[list[str], list[str], np.ndarray]:
    """``(prefixes, component_domains, weights)``: the components of every phase's blend (canonical domain order,
    then prefix order, as :func:`regmix_megatron.export.files.blend_for_split` orders one blend) and each phase's weight
    of each component (rows: phases; 0 where a phase does not draw the component)."""
    registry.check_domains(schedule.domains, "schedule")
    blends = [dict(zip(*blend_for_split(registry, m, split, source=f"schedule phase {k}")))
              for k, m in enumerate(schedule.mixtures, start=1)]
    prefixes, domains = [], []
    for domain in registry.domains:
        for p in domain.prefixes(split):
            if any(p.path in b for b in blends):
                prefixes.append(p.path)
                domains.append(domain.name)
    weights = np.array([[b.get(p, 0.0) for p in prefixes] for b in blends], dtype=np.float64)
    return prefixes, domains, weights


def _megatron_normalized(weights: np.ndarray) -> np.ndarray:
    """megatron-core's ``normalize`` of a phase's positive weights (0 stays 0)."""
    from megatron.core.datasets.utils import normalize

    out = np.zeros_like(weights)
    active = weights > 0
    out[active] = normalize(weights[active].tolist())
    return out


def scheduled_blend_index(phase_weights: np.ndarray, phase_sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(dataset_index, dataset_sample_index)`` of a scheduled run: megatron's greedy blend per phase (over the
    phase's positive weights, normalized again as ``BlendedDataset`` does) with every component's sample counter
    continuing across phases."""
    from megatron.core.datasets import helpers

    num_components = phase_weights.shape[1]
    if num_components >= np.iinfo(np.int16).max:
        raise RegmixError(f"{num_components} blend components: megatron-core's index holds fewer than 32767")
    total = int(sum(phase_sizes))
    index = np.empty(total, dtype=np.int16)
    sample = np.empty(total, dtype=np.int64)
    counts = np.zeros(num_components, dtype=np.int64)
    pos = 0
    for weights, size in zip(phase_weights, phase_sizes):
        active = np.flatnonzero(weights > 0)
        local_index = np.zeros(size, dtype=np.int16)
        local_sample = np.zeros(size, dtype=np.int64)
        helpers.build_blending_indices(local_index, local_sample, _megatron_normalized(weights[active]),
                                       len(active), int(size), False)
        components = active[local_index].astype(np.int16)
        index[pos:pos + size] = components
        sample[pos:pos + size] = local_sample + counts[components]
        counts += np.bincount(components, minlength=num_components)
        pos += size
    return index, sample


def component_sizes(phase_weights: np.ndarray, phase_sizes: Sequence[int], drawn: np.ndarray,
                    surplus: float) -> list[int]:
    """Samples to build per component: megatron-core's ``ceil(ceil(n * w) * (1 + surplus))`` with ``n * w``
    summed over phases (``n`` a phase's samples, ``w`` its normalized weight), never below what the index draws.
    A blend of one component over the whole run is built for exactly the run's samples (megatron's one-prefix
    path)."""
    if phase_weights.shape[1] == 1:
        return [int(sum(phase_sizes))]
    sizes = []
    for c in range(phase_weights.shape[1]):
        target = sum(math.ceil(n * w) for n, w in zip(phase_sizes, phase_weights[:, c]) if w > 0)
        sizes.append(max(int(math.ceil(target * (1 + surplus))), int(drawn[c])))
    return sizes


# ---- building --------------------------------------------------------------------------------------------------
def build_train_dataset(registry: DomainRegistry, schedule: Schedule | Mixture, *, num_samples: int,
                        options: DatasetOptions, split: str = "train", global_batch_size: int | None = None,
                        max_epochs: float | None = None) -> Any:
    """The ``split`` set of ``num_samples`` samples for ``schedule`` (a mixture: the one-phase schedule; module
    docstring): megatron-core's ``BlendedDataset`` (or a plain ``GPTDataset`` when the blend has one prefix) for
    one phase, a :class:`ScheduledDataset` for several; either way it carries :data:`COMPONENT_DOMAINS_ATTR`.
    ``global_batch_size`` puts the phase boundaries on steps (when it divides ``num_samples``). Warns (rank 0) when
    a domain's tokens over all phases would be repeated more than ``max_epochs`` times. Returns None on a rank that
    does not build data (``options.is_built_on_rank``), as megatron-core does, for several phases."""
    value = schedule
    schedule = check_trainable(registry, Schedule.from_mixture(value) if isinstance(value, Mixture) else value,
                               "mixture" if isinstance(value, Mixture) else "schedule")
    path_to_cache = check_build_arguments(split, num_samples, options)
    starts = phase_starts(schedule.fractions, int(num_samples), global_batch_size or 1)
    check_epochs(registry, schedule, np.diff(starts).tolist(), seq_length=options.seq_length, max_epochs=max_epochs,
                 split=split)
    if schedule.is_static:
        dataset = _build_blended(registry, schedule.mixtures[0], int(num_samples), options, split, path_to_cache)
        setattr(dataset, PHASES_ATTR, (schedule, tuple(starts)))
        return dataset
    return _build_phased(registry, schedule, starts, options, split, path_to_cache)


def _build_blended(registry: DomainRegistry, mixture: Mixture, num_samples: int, options: DatasetOptions, split: str,
                   path_to_cache: str | None) -> Any:
    """One phase: megatron-core's own blend of ``mixture``."""
    prefixes, weights = blend_for_split(registry, mixture, split)
    config = options.gpt_config(blend_per_split(split, (prefixes, weights)), path_to_cache=path_to_cache,
                                weighted=True)
    try:
        dataset = options.build(config, split, int(num_samples))
    except IndexError as exc:
        if "mid_level_dataset_surplus" in str(exc):
            raise RegmixError(
                f"megatron-core: {exc} Pass a larger mid_level_dataset_surplus (now "
                f"{options.mid_level_dataset_surplus}; --mid-level-dataset-surplus)") from exc
        raise
    if dataset is None:
        raise RegmixError(f"megatron-core built no {split} dataset for mixture {mixture.hash}")
    setattr(dataset, COMPONENT_DOMAINS_ATTR, tuple(domain_of_prefix(registry, p, split) for p in prefixes))
    return dataset


def build_phased_dataset(registry: DomainRegistry, schedule: Schedule, *, num_samples: int, options: DatasetOptions,
                         split: str = "train", global_batch_size: int | None = None) -> ScheduledDataset | None:
    """The phase-by-phase train set of ``schedule`` (module docstring), whatever its number of phases: what
    :func:`build_train_dataset` builds for several phases; for one phase it equals megatron-core's blend sample for
    sample (the tests check it)."""
    path_to_cache = check_build_arguments(split, num_samples, options)
    starts = phase_starts(schedule.fractions, int(num_samples), global_batch_size or 1)
    return _build_phased(registry, schedule, starts, options, split, path_to_cache)


def _build_phased(registry: DomainRegistry, schedule: Schedule, starts: Sequence[int], options: DatasetOptions,
                  split: str, path_to_cache: str | None) -> ScheduledDataset | None:
    sizes = np.diff(starts).tolist()
    prefixes, domains, raw = phase_blends(registry, schedule, split)
    weights = np.stack([_megatron_normalized(w) for w in raw])
    index, sample = scheduled_blend_index(weights, sizes)
    drawn = np.bincount(index, minlength=len(prefixes))
    datasets = []
    for prefix, size in zip(prefixes, component_sizes(weights, sizes, drawn, options.mid_level_dataset_surplus)):
        config = options.gpt_config(blend_per_split(split, ([prefix], None)), path_to_cache=path_to_cache,
                                    weighted=True)
        datasets.append(options.build(config, split, int(size)))
    if any(d is None for d in datasets):
        return None
    for c, (d, n) in enumerate(zip(datasets, drawn)):
        assert len(d) >= n, (prefixes[c], len(d), n)  # component_sizes never builds fewer than drawn
    return ScheduledDataset(datasets, index, sample, schedule=schedule, starts=starts, component_domains=domains)


# ---- epochs and the per-phase table ----------------------------------------------------------------------------
def epochs_per_domain(registry: DomainRegistry, schedule: Schedule, phase_sizes: Sequence[int], *, seq_length: int,
                      split: str = "train") -> dict[str, float]:
    """How many times each domain's ``split`` tokens are seen over all phases:
    ``sum_k weight_k * samples_k * seq_length / tokens`` (one phase: ``weight * samples * seq_length / tokens``; 0
    for a domain never drawn)."""
    out = {}
    for d in schedule.domains:
        drawn = sum(m.as_dict()[d] * n for m, n in zip(schedule.mixtures, phase_sizes)) * seq_length
        tokens = registry.get(d).num_tokens(split)
        out[d] = 0.0 if drawn == 0 else (float("inf") if tokens == 0 else drawn / tokens)
    return out


def check_epochs(registry: DomainRegistry, schedule: Schedule, phase_sizes: Sequence[int], *, seq_length: int,
                 max_epochs: float | None, split: str = "train") -> dict[str, float]:
    """Warn (rank 0) for every domain repeated more than ``max_epochs`` times over all phases; the excess ones."""
    if max_epochs is None:
        return {}
    epochs = epochs_per_domain(registry, schedule, phase_sizes, seq_length=seq_length, split=split)
    excess = {d: e for d, e in epochs.items() if e > max_epochs}
    for d, e in excess.items():
        if schedule.is_static:
            how = (f"{phase_sizes[0]} samples x {seq_length} tokens x weight {schedule.mixtures[0].as_dict()[d]:.4g} "
                   f"over {registry.get(d).num_tokens(split)} {split} tokens")
        else:
            how = f"over the schedule's {schedule.num_phases} phases ({'+'.join(str(n) for n in phase_sizes)} samples)"
        _log_rank0(logging.WARNING, "domain %r would be repeated %.2f times (%s), more than max_epochs=%g: lower its "
                   "weight, the number of samples, or resample with the epoch cap (regmix-megatron sample "
                   "--max-epochs/--target-tokens)", d, e, how, max_epochs)
    return excess


def phase_rows(dataset: Any, *, global_batch_size: int | None = None) -> list[dict]:
    """Per phase of a train set of :func:`build_train_dataset` (one phase: the whole run): its samples (and steps),
    the requested and the realized token fractions per domain (from the index slice of the phase; every sample holds
    the same number of tokens)."""
    schedule, starts = getattr(dataset, PHASES_ATTR)
    domains = schedule.domains
    component_domains = getattr(dataset, COMPONENT_DOMAINS_ATTR)
    index = dataset.dataset_index if hasattr(dataset, "dataset_index") else np.zeros(starts[-1], dtype=np.int64)
    rows = []
    for k, (phase, lo, hi) in enumerate(zip(schedule.phases, starts, starts[1:])):
        counts = np.bincount(np.asarray(index[lo:hi]), minlength=len(component_domains))
        samples = {d: 0 for d in domains}
        for name, c in zip(component_domains, counts):
            samples[name] += int(c)
        row = {"phase": k + 1, "fraction": phase.fraction, "start_sample": int(lo), "end_sample": int(hi),
               "num_samples": int(hi - lo), "mixture_hash": phase.mixture.hash,
               "requested": phase.mixture.as_dict(),
               "realized": {d: samples[d] / (hi - lo) for d in domains}, "samples": samples}
        if global_batch_size and lo % global_batch_size == 0 and hi % global_batch_size == 0:
            row.update(start_step=int(lo // global_batch_size), end_step=int(hi // global_batch_size))
        rows.append(row)
    return rows


def format_phase_table(rows: Sequence[Mapping]) -> str:
    """One requested-vs-realized table per phase, each under a line naming the phase's span."""
    parts = []
    for r in rows:
        span = (f"steps {r['start_step']}..{r['end_step'] - 1}" if "start_step" in r else
                f"samples {r['start_sample']}..{r['end_sample'] - 1}")
        parts.append(f"phase {r['phase']} (fraction {r['fraction']:.4g}, {span}, {r['num_samples']} samples)\n"
                     + format_fraction_table(r["requested"], r["realized"], r["samples"]))
    return "\n\n".join(parts)


def log_phase_table(dataset: Any, *, global_batch_size: int | None = None) -> list[dict]:
    """Log (rank 0) the per-phase requested-vs-realized tables of ``dataset``; returns the rows."""
    schedule, _ = getattr(dataset, PHASES_ATTR)
    rows = phase_rows(dataset, global_batch_size=global_batch_size)
    for r in rows:
        vanished = [d for d, w in r["requested"].items() if w > 0 and r["samples"][d] == 0]
        if vanished:
            _log_rank0(logging.WARNING, "phase %d: domain(s) %s have a positive weight but no sample in the phase's "
                       "%d samples (weight x samples < 1): lengthen the phase or give them weight 0", r["phase"],
                       vanished, r["num_samples"])
    _log_rank0(logging.INFO, "schedule %s (%d phases): requested vs realized token fractions per phase (from the "
               "scheduled blend index)\n%s", schedule.hash, schedule.num_phases, format_phase_table(rows))
    return rows


def log_fraction_table(dataset: Any, registry: DomainRegistry, mixture: Mixture, *, seq_length: int | None = None,
                       split: str = "train") -> str:
    """Log (rank 0) and return the requested-vs-realized table of a one-phase train set."""
    samples = realized_samples(dataset, registry)
    realized = realized_fractions(dataset, registry)
    epochs = None
    if seq_length is not None:
        epochs = epochs_per_domain(registry, Schedule.from_mixture(mixture), [sum(samples.values())],
                                   seq_length=seq_length, split=split)
    table = format_fraction_table(mixture.as_dict(), realized, samples, epochs)
    vanished = [d for d, w in mixture.as_dict().items() if w > 0 and samples.get(d, 0) == 0]
    if vanished:
        _log_rank0(logging.WARNING, "domain(s) %s have a positive weight but no sample in the %s blend of %d "
                   "samples (weight x samples < 1): train on more samples or give them weight 0",
                   vanished, split, sum(samples.values()))
    _log_rank0(logging.INFO, "mixture %s, %s split: requested vs realized token fractions "
               "(from the blended dataset index)\n%s", mixture.hash, split, table)
    return table


def log_train_table(dataset: Any, registry: DomainRegistry, schedule: Schedule, *, seq_length: int | None = None,
                    global_batch_size: int | None = None, split: str = "train") -> Any:
    """Log (rank 0) the requested-vs-realized table of a train set: one table for one phase (with each domain's
    epochs; returns its text), one per phase for several (returns the rows, :func:`phase_rows`)."""
    if schedule.is_static:
        return log_fraction_table(dataset, registry, schedule.mixtures[0], seq_length=seq_length, split=split)
    return log_phase_table(dataset, global_batch_size=global_batch_size)


__all__: Sequence[str] = (
    "ScheduledDataset", "build_train_dataset", "build_phased_dataset", "phase_blends", "scheduled_blend_index",
    "component_sizes", "epochs_per_domain", "check_epochs", "phase_rows", "format_phase_table", "log_phase_table",
    "log_fraction_table", "log_train_table", "PHASES_ATTR",
)
