"""A schedule as the train set Megatron trains on: megatron-core's blend, phase by phase, one stream per domain.

Design (docs/SCHEDULES.md): the run's ``N`` samples are cut into phases (:func:`regmix_megatron.mixtures.schedule.phase_starts`,
on step boundaries when the global batch size divides ``N``). Every component (one prefix of a domain with a
positive weight in some phase) is one megatron-core ``GPTDataset`` sized for its samples over **all** phases, so its
shuffle is drawn once and its epochs count every phase. The blend index is megatron-core's own C++
``build_blending_indices`` run per phase over the phase's weights for the phase's samples, each component's
sample counter continuing where the previous phases left it: within a domain, whichever phase draws it, samples
come from one pass. The index is a pure function of (schedule, seed, sizes, data), so resuming at any step is
reading the same indices. With one phase, components, sizes and the first ``N`` index entries are those of
megatron-core's ``BlendedDataset`` for the mixture (weights normalized as megatron does: once for the sizes,
again for the index).

:class:`ScheduledDataset` is a ``torch.utils.data.Dataset`` whose items are ``BlendedDataset``'s (``dataset_id`` +
the ``GPTDataset`` sample); Megatron-LM's ``build_pretraining_data_loader`` takes it as it is.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..data.manifest import SPLITS, DomainRegistry
from ..errors import RegmixError
from ..export.files import blend_for_split
from ..mixtures.schedule import Schedule, phase_starts
from .datasets import COMPONENT_DOMAINS_ATTR, _always, _log_rank0, check_build_arguments, format_fraction_table

logger = logging.getLogger(__name__)


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
def build_scheduled_dataset(
    registry: DomainRegistry,
    schedule: Schedule,
    *,
    seq_length: int,
    num_samples: int,
    seed: int,
    tokenizer: Any,
    global_batch_size: int | None = None,
    split: str = "train",
    path_to_cache: str | os.PathLike | None = None,
    max_epochs: float | None = None,
    mid_level_dataset_surplus: float = 0.005,
    reset_position_ids: bool = False,
    reset_attention_mask: bool = False,
    eod_mask_loss: bool = False,
    is_built_on_rank: Callable[[], bool] | None = None,
) -> ScheduledDataset | None:
    """The ``split`` set of ``num_samples`` samples of ``seq_length`` tokens for ``schedule`` (module docstring).

    ``global_batch_size`` puts the phase boundaries on steps (when it divides ``num_samples``). Warns (rank 0)
    when a domain's tokens over all phases would be repeated more than ``max_epochs`` times. Returns None on a rank
    that does not build data (``is_built_on_rank``), as megatron-core does. Other knobs: see
    :func:`regmix_megatron.megatron.datasets.build_blended_dataset`.
    """
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    path_to_cache = check_build_arguments(split, seq_length, num_samples, seed, path_to_cache)
    starts = phase_starts(schedule.fractions, int(num_samples), global_batch_size or 1)
    sizes = np.diff(starts).tolist()
    prefixes, domains, raw = phase_blends(registry, schedule, split)
    weights = np.stack([_megatron_normalized(w) for w in raw])
    check_schedule_epochs(registry, schedule, sizes, seq_length=seq_length, max_epochs=max_epochs, split=split)
    index, sample = scheduled_blend_index(weights, sizes)
    drawn = np.bincount(index, minlength=len(prefixes))
    position = SPLITS.index(split)
    datasets = []
    for prefix, size in zip(prefixes, component_sizes(weights, sizes, drawn, mid_level_dataset_surplus)):
        blend_per_split: list = [None, None, None]
        blend_per_split[position] = ([prefix], None)
        split_sizes = [0, 0, 0]
        split_sizes[position] = int(size)
        config = GPTDatasetConfig(
            random_seed=int(seed), sequence_length=int(seq_length), blend_per_split=blend_per_split,
            path_to_cache=path_to_cache, tokenizer=tokenizer,
            reset_position_ids=reset_position_ids, reset_attention_mask=reset_attention_mask,
            eod_mask_loss=eod_mask_loss, mid_level_dataset_surplus=mid_level_dataset_surplus)
        datasets.append(BlendedMegatronDatasetBuilder(GPTDataset, split_sizes, is_built_on_rank or _always,
                                                      config).build()[position])
    if any(d is None for d in datasets):
        return None
    for c, (d, n) in enumerate(zip(datasets, drawn)):
        assert len(d) >= n, (prefixes[c], len(d), n)  # component_sizes never builds fewer than drawn
    return ScheduledDataset(datasets, index, sample, schedule=schedule, starts=starts, component_domains=domains)


# ---- epochs and the per-phase table ----------------------------------------------------------------------------
def schedule_epochs(registry: DomainRegistry, schedule: Schedule, phase_sizes: Sequence[int], *, seq_length: int,
                    split: str = "train") -> dict[str, float]:
    """How many times each domain's ``split`` tokens are seen over all phases:
    ``sum_k weight_k * samples_k * seq_length / tokens``."""
    out = {}
    for d in schedule.domains:
        drawn = sum(m.as_dict()[d] * n for m, n in zip(schedule.mixtures, phase_sizes)) * seq_length
        tokens = registry.get(d).num_tokens(split)
        out[d] = 0.0 if drawn == 0 else (float("inf") if tokens == 0 else drawn / tokens)
    return out


def check_schedule_epochs(registry: DomainRegistry, schedule: Schedule, phase_sizes: Sequence[int], *,
                          seq_length: int, max_epochs: float | None, split: str = "train") -> dict[str, float]:
    """Warn (rank 0) for every domain repeated more than ``max_epochs`` times over all phases; the excess ones."""
    if max_epochs is None:
        return {}
    epochs = schedule_epochs(registry, schedule, phase_sizes, seq_length=seq_length, split=split)
    excess = {d: e for d, e in epochs.items() if e > max_epochs}
    for d, e in excess.items():
        _log_rank0(logging.WARNING, "domain %r would be repeated %.2f times over the schedule's %d phases (%s "
                   "samples), more than max_epochs=%g: lower its weights or resample the schedule with the epoch cap",
                   d, e, schedule.num_phases, "+".join(str(n) for n in phase_sizes), max_epochs)
    return excess


def phase_rows(dataset: ScheduledDataset, *, global_batch_size: int | None = None) -> list[dict]:
    """Per phase: its samples (and steps), the requested and the realized token fractions per domain (from the
    index slice of the phase; every sample holds the same number of tokens)."""
    domains = dataset.schedule.domains
    component_domains = getattr(dataset, COMPONENT_DOMAINS_ATTR)
    rows = []
    for k, (phase, lo, hi) in enumerate(zip(dataset.schedule.phases, dataset.phase_starts, dataset.phase_starts[1:])):
        counts = np.bincount(np.asarray(dataset.dataset_index[lo:hi]), minlength=len(component_domains))
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


def log_phase_table(dataset: ScheduledDataset, *, global_batch_size: int | None = None) -> list[dict]:
    """Log (rank 0) the per-phase requested-vs-realized tables of ``dataset``; returns the rows."""
    rows = phase_rows(dataset, global_batch_size=global_batch_size)
    for r in rows:
        vanished = [d for d, w in r["requested"].items() if w > 0 and r["samples"][d] == 0]
        if vanished:
            _log_rank0(logging.WARNING, "phase %d: domain(s) %s have a positive weight but no sample in the phase's "
                       "%d samples (weight x samples < 1): lengthen the phase or give them weight 0", r["phase"],
                       vanished, r["num_samples"])
    _log_rank0(logging.INFO, "schedule %s (%d phases): requested vs realized token fractions per phase (from the "
               "scheduled blend index)\n%s", dataset.schedule.hash, dataset.schedule.num_phases,
               format_phase_table(rows))
    return rows


__all__: Sequence[str] = (
    "ScheduledDataset", "build_scheduled_dataset", "phase_blends", "scheduled_blend_index", "component_sizes",
    "schedule_epochs", "check_schedule_epochs", "phase_rows", "format_phase_table", "log_phase_table",
)
