"""The RegMix sampler over schedules: fixed phase fractions, each phase's mixture drawn by the mixture sampler.

Caps (docs/SCHEDULES.md): the sampler's own caps (``cap_multiplier``, ``max_weights``, ``min_weights``, ``min_weight``)
hold in every phase; an epoch cap (``max_epochs`` with ``target_tokens``) counts a domain's tokens over all phases:
``sum_k f_k * w_kd <= max_epochs * tokens_d / target_tokens``. Phase *k* is drawn with the epoch cap of its own
share of the budget (``target_tokens = f_k * target_tokens``: a short phase may spend a domain's whole budget) and
draws that break the joint cap are rejected. When rejection keeps fewer than :data:`MIN_ACCEPTANCE` of the draws
(measured on the first chunk) and ``fallback`` is ``project``, the rest are drawn with every phase under the static
cap (each phase's epoch cap the whole budget's), which is always jointly feasible; with ``fallback: raise`` the
sampler raises naming the domain whose joint cap rejects most.

Streams: phase *k* of stream *s* (0: the sweep, 1: the search pool) draws with seed ``(seed * 10 + s) * 100 + k``
from :func:`regmix_megatron.mixtures.sampling.iter_candidates`, so everything is deterministic given the seed.

Pure core: numpy.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ..errors import RegmixError
from .sampling import BOUND_TOLERANCE, SamplerConfig, _dedup_into, domain_caps, iter_candidates
from .schedule import Schedule

logger = logging.getLogger(__name__)

#: Below this share of draws meeting the joint epoch cap, the rest are drawn under the static cap per phase.
MIN_ACCEPTANCE = 0.1
#: Streams of :func:`iter_schedule_rows`.
SWEEP_STREAM, POOL_STREAM = 0, 1
_ENDLESS = 1 << 62


@dataclass
class ScheduleStats:
    """What one sampling call did (for logs and stage records)."""

    num_drawn: int = 0
    num_accepted: int = 0
    num_strict: int = 0
    """Schedules drawn under the static cap per phase (the fallback)."""
    num_duplicates: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.num_accepted / self.num_drawn if self.num_drawn else float("nan")


def check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """Phase fractions as they define a schedule (positive, summing to 1; rescaled exactly)."""
    from .mixture import Mixture

    probe = Mixture.from_dict({"x": 1.0})
    return Schedule.from_phases([(f, probe) for f in fractions], source="schedule.phases").fractions


def phase_configs(config: SamplerConfig, fractions: Sequence[float], stream: int, *, strict: bool = False
                  ) -> list[SamplerConfig]:
    """The sampler config of every phase: its own seed and (unless ``strict``) the epoch cap of its share of the
    budget."""
    out = []
    for k, f in enumerate(fractions):
        changes = {"seed": (config.seed * 10 + stream) * 100 + k}
        if config.max_epochs is not None and not strict:
            changes["target_tokens"] = max(1, int(round(f * config.target_tokens)))
        out.append(dataclasses.replace(config, **changes))
    return out


def joint_upper(tokens_per_domain: np.ndarray, config: SamplerConfig) -> np.ndarray | None:
    """The epoch cap of each domain's share of the whole run (None without ``max_epochs``)."""
    if config.max_epochs is None:
        return None
    return config.max_epochs * np.asarray(tokens_per_domain, dtype=np.float64) / float(config.target_tokens)


def overall_weights(rows: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """``(n, K, D)`` phase weights -> ``(n, D)`` token shares over the run."""
    return np.einsum("nkd,k->nd", rows, np.asarray(fractions, dtype=np.float64))


def features_of(rows: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """``(n, K, D)`` phase weights -> ``(n, K*D)`` regression features (:meth:`Schedule.features` order)."""
    scaled = rows * np.asarray(fractions, dtype=np.float64)[None, :, None]
    return scaled.reshape(rows.shape[0], rows.shape[1] * rows.shape[2])


def iter_schedule_rows(tokens_per_domain: np.ndarray, config: SamplerConfig, fractions: Sequence[float], *,
                       domains: Sequence[str], chunk_size: int, stream: int,
                       stats: ScheduleStats | None = None) -> Iterator[np.ndarray]:
    """Endless chunks of jointly feasible ``(n, K, D)`` phase weights (module docstring); deterministic."""
    stats = stats if stats is not None else ScheduleStats()
    fractions = tuple(fractions)
    upper = joint_upper(tokens_per_domain, config)
    domain_caps(tokens_per_domain, config, domains=list(domains))  # the static caps must be feasible

    def streams(strict: bool):
        return [iter_candidates(tokens_per_domain, c, _ENDLESS, chunk_size, domains=list(domains))
                for c in phase_configs(config, fractions, stream, strict=strict)]

    free = streams(strict=False)
    first = True
    while True:
        rows = np.stack([next(g) for g in free], axis=1)
        if upper is None:
            stats.num_drawn += len(rows)
            stats.num_accepted += len(rows)
            yield rows
            continue
        excess = overall_weights(rows, fractions) - upper[None, :]
        ok = np.all(excess <= BOUND_TOLERANCE, axis=1)
        stats.num_drawn += len(rows)
        stats.num_accepted += int(ok.sum())
        if first and ok.mean() < MIN_ACCEPTANCE:
            worst = list(domains)[int(np.argmax((excess > BOUND_TOLERANCE).sum(axis=0)))]
            if config.fallback == "raise":
                raise RegmixError(f"sampler: only {ok.mean():.1%} of drawn schedules keep every domain within its "
                                  f"epoch cap over all phases (most often broken: {worst!r}); raise max_epochs, lower "
                                  "target_tokens, or set fallback: project")
            logger.warning("only %.1f%% of drawn schedules keep every domain within its epoch cap over all phases "
                           "(most often broken: %r); drawing the rest with every phase under the static cap",
                           100 * ok.mean(), worst)
            yield rows[ok]
            break
        first = False
        yield rows[ok]
    for chunk in zip(*streams(strict=True)):
        rows = np.stack(chunk, axis=1)
        stats.num_strict += len(rows)
        yield rows


def sample_schedules(tokens_per_domain: np.ndarray, config: SamplerConfig, fractions: Sequence[float], *,
                     domains: Sequence[str], stats: ScheduleStats | None = None) -> list[Schedule]:
    """Exactly ``config.num_samples`` distinct schedules (features at least ``dedup_min_distance`` apart)."""
    stats = stats if stats is not None else ScheduleStats()
    fractions = check_fractions(fractions)
    num = config.num_samples
    kept: list[np.ndarray] = []
    rows_kept: list[np.ndarray] = []
    chunks = iter_schedule_rows(tokens_per_domain, config, fractions, domains=domains, chunk_size=max(256, 4 * num),
                                stream=SWEEP_STREAM, stats=stats)
    for _ in range(config.max_rounds):
        rows = next(chunks)
        features = features_of(rows, fractions)
        before = len(kept)
        stats.num_duplicates += _dedup_into(kept, features, config, num)
        for f in kept[before:]:  # the rows whose features were kept, in order
            rows_kept.append(rows[int(np.flatnonzero(np.all(features == f, axis=1))[0])])
        if len(kept) >= num:
            break
    else:
        raise RegmixError(f"sampler: only {len(kept)} of {num} distinct schedules after max_rounds="
                          f"{config.max_rounds}; lower dedup_min_distance or num_samples, or loosen the caps")
    out = [Schedule.from_phases([(f, _mixture(domains, r[k])) for k, f in enumerate(fractions)])
           for r in rows_kept[:num]]
    logger.info("sampled %d schedules of %d phases over %d domains: %d drawn, %d within the joint epoch caps, %d "
                "under the static cap per phase, %d duplicates dropped", len(out), len(fractions), len(domains),
                stats.num_drawn, stats.num_accepted, stats.num_strict, stats.num_duplicates)
    return out


def iter_schedule_candidates(tokens_per_domain: np.ndarray, config: SamplerConfig, fractions: Sequence[float],
                             num_candidates: int, chunk_size: int, *, domains: Sequence[str],
                             stats: ScheduleStats | None = None) -> Iterator[np.ndarray]:
    """``num_candidates`` candidate schedules as feature rows, in chunks of ``chunk_size`` (the last may be
    shorter); the search pool's stream, independent of the sweep's."""
    fractions = check_fractions(fractions)
    chunks = iter_schedule_rows(tokens_per_domain, config, fractions, domains=domains, chunk_size=chunk_size,
                                stream=POOL_STREAM, stats=stats)
    buffered, have, done = [], 0, 0
    while done < num_candidates:
        want = min(chunk_size, num_candidates - done)
        while have < want:
            rows = next(chunks)
            buffered.append(features_of(rows, fractions))
            have += len(rows)
        block = np.concatenate(buffered)
        yield block[:want]
        buffered, have = [block[want:]], len(block) - want
        done += want


def _mixture(domains: Sequence[str], weights: np.ndarray):
    from .mixture import Mixture

    return Mixture.from_array(list(domains), weights)


__all__ = ["ScheduleStats", "phase_configs", "joint_upper", "overall_weights", "features_of", "iter_schedule_rows",
           "sample_schedules", "iter_schedule_candidates", "check_fractions", "MIN_ACCEPTANCE"]
