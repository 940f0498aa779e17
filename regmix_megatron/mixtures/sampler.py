"""The RegMix sampler: mixtures, and schedules (a mixture is a one-phase schedule), drawn within the caps.

What it draws (defaults are the method's, see ``../shared/notes/regmix-method.md``):

1. Prior ``p``: each domain's share of *training tokens* (exact counts from the ``.idx`` files).
2. Tempered prior ``q = p**temperature``, renormalized (temperature 0.5).
3. Per sample, a Dirichlet strength ``s`` picked uniformly from ``num_strengths`` log-spaced values in
   ``[strength_min, strength_max]``; the mixture is drawn from ``Dirichlet(q * s)``.
4. Weights below ``min_weight`` are set to 0 and the mixture is renormalized exactly (sum == 1.0).
5. The mixture must lie within per-domain bounds ``lower_i <= w_i <= upper_i``
   (:func:`regmix_megatron.mixtures.caps.domain_caps`):
   ``upper_i = min(1, cap_multiplier * p_i, max_epochs * tokens_i / target_tokens, max_weights[i])`` and
   ``lower_i = min_weights[i]`` (0 by default). Draws outside the bounds are rejected.
6. Mixtures are deduplicated by pairwise distance (every kept pair is at least ``dedup_min_distance`` apart
   in the chosen norm, L1 by default), not merely adjacent rows.

When the bounds make rejection sampling hopeless (the measured acceptance rate is too low to fill the request
within ``max_rounds`` rounds), the sampler does not return fewer mixtures. With ``fallback="project"`` (the
default) it maps each raw draw into the feasible region: capped domains are set to their cap and the excess
mass is redistributed to the still-free domains in proportion to a second, independent draw from the same
Dirichlet (so projected mixtures stay spread over the feasible region instead of collapsing onto a few
vertices; the tempered prior is used when that draw is zero on every free domain); domains below their lower
bound are lifted to it and the deficit is taken from the others in proportion to their slack; this is
repeated until the draw is feasible, then ``min_weight`` zeroing and exact renormalization are applied again
(and the projection repeated if zeroing broke a lower bound). The effect on the distribution: it is no longer
the Dirichlet *conditioned* on the box (which rejection gives) but the Dirichlet *pushed into* the box, so a
binding cap becomes an atom (many mixtures have that domain exactly at its cap) and the uncapped domains get
correspondingly more mass, spread like the Dirichlet itself. With ``fallback="raise"`` the sampler raises instead, naming the binding
constraint (the domain and bound that rejected most draws). Rows produced by projection are counted in
:attr:`SampleStats.num_projected`.

**Schedules** (phases with fixed ``fractions`` of the run's tokens, each its own mixture; docs/SCHEDULES.md): each
phase's mixture is drawn by the steps above with that phase's caps (:func:`regmix_megatron.mixtures.caps.phase_config`:
an epoch cap counts the phase's share of the budget) and draws that break the epoch cap over all phases are
rejected. When rejection keeps fewer than :data:`MIN_ACCEPTANCE` of the draws (measured on the first chunk) and
``fallback`` is ``project``, the rest are drawn with every phase under the static cap (each phase's epoch cap the
whole budget's), which is always jointly feasible; with ``fallback: raise`` the sampler raises naming the domain
whose joint cap rejects most. Distinct means: the schedule features (:meth:`Schedule.features`) at least
``dedup_min_distance`` apart.

**One path.** :func:`sample` (the sweep) and :func:`iter_pool` (the search's candidate pool) take the phase
``fractions``; a static mixture is the one-phase schedule ``(1.0,)``, its features are its weights, and it is drawn
on the mixture streams: ``sample`` of one phase keeps rejection's batches sized by the measured acceptance rate
(stream ``[seed, 0]``) and ``iter_pool`` of one phase is stream ``[seed, 1]`` (independent of the sweep's, so a pool
drawn with the same seed does not repeat the training mixtures; no deduplication). Phase *k* of a schedule of
several phases draws from the one-phase pool stream of its own seed, ``(seed * 10 + s) * 100 + k`` (``s`` 0: the
sweep, 1: the pool). Everything is deterministic given ``seed``.

Pure core: numpy.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from ..errors import RegmixError
from .caps import BOUND_TOLERANCE, as_tokens, bounds_with_sources, domain_caps, joint_upper, phase_config
from .mixture import Mixture
from .sampler_config import SECTION, SamplerConfig, is_integer
from .schedule import Schedule

logger = logging.getLogger(__name__)

#: The phase fractions of a static mixture: one phase, the whole run.
ONE_PHASE = (1.0,)
#: Largest rejection-sampling batch (rows); with max_rounds it bounds the work before projection.
_MAX_BATCH = 200_000
#: First rejection batch, before the acceptance rate is known.
_PILOT_BATCH = 16_384
#: Below this share of drawn schedules meeting the joint epoch cap, the rest are drawn under the static cap per phase.
MIN_ACCEPTANCE = 0.1
#: The random streams: the sweep's (:func:`sample`) and the search pool's (:func:`iter_pool`).
SWEEP_STREAM, POOL_STREAM = 0, 1
_ENDLESS = 1 << 62


@dataclass
class SampleStats:
    """What one :func:`sample` or :func:`iter_pool` call did (for logs, the ``.sampler.yaml`` and stage records)."""

    num_drawn: int = 0
    """Draws (mixtures; for several phases, schedules) made."""
    num_accepted: int = 0
    """Draws kept by rejection (within the caps; for several phases, within the epoch caps over all phases)."""
    num_projected: int = 0
    """Mixtures drawn within the caps by projection (rejection was hopeless: ``fallback: project``)."""
    num_strict: int = 0
    """Schedules drawn with every phase under the static cap (the joint epoch cap was hopeless)."""
    num_duplicates: int = 0
    num_rounds: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.num_accepted / self.num_drawn if self.num_drawn else float("nan")


# ---- drawing --------------------------------------------------------------------------------------------
def _tempered_prior(tokens: np.ndarray, temperature: float) -> np.ndarray:
    p = tokens / tokens.sum()
    q = np.where(p > 0, p, 0.0) ** temperature if temperature > 0 else (p > 0).astype(np.float64)
    q = np.where(p > 0, q, 0.0)
    return q / q.sum()


def _draw_dirichlet(rng: np.random.Generator, q: np.ndarray, strengths: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of Dirichlet(q * s), s uniform over ``strengths``; computed in log space so tiny
    concentrations do not underflow to all-zero rows (Gamma(a) = Gamma(a + 1) * U**(1/a))."""
    s = strengths[rng.integers(0, strengths.size, size=n)]
    alpha = s[:, None] * q[None, :]
    active = q > 0
    alpha = np.where(active, alpha, 1.0)  # placeholder, masked below
    log_g = rng.standard_gamma(alpha + 1.0)
    np.log(log_g, out=log_g)
    log_u = rng.random(alpha.shape)
    np.log(log_u, out=log_u)
    log_u /= alpha
    log_g += log_u
    if not np.all(active):
        log_g[:, ~active] = -np.inf
    log_g -= log_g.max(axis=1, keepdims=True)
    np.exp(log_g, out=log_g)
    log_g /= log_g.sum(axis=1, keepdims=True)
    return log_g


def _normalize_rows_exact(w: np.ndarray) -> np.ndarray:
    """Rows divided by their sums, then each row's rounding residual added to its largest weight."""
    w = w / w.sum(axis=1, keepdims=True)
    residual = 1.0 - w.sum(axis=1)
    idx = np.argmax(w, axis=1)
    w[np.arange(w.shape[0]), idx] += residual
    return w


def _zero_small(w: np.ndarray, min_weight: float) -> np.ndarray:
    if min_weight > 0:
        w = np.where(w < min_weight, 0.0, w)
    return _normalize_rows_exact(w)


def _feasible(w: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return np.all((w <= upper + BOUND_TOLERANCE) & (w >= lower - BOUND_TOLERANCE), axis=1)


def _project(w: np.ndarray, lower: np.ndarray, upper: np.ndarray, q: np.ndarray, min_weight: float,
             shares: np.ndarray, max_iters: int = 0) -> np.ndarray:
    """Push rows into ``lower <= w <= upper`` by iterative redistribution (module docstring): excess mass
    goes to the still-free domains in proportion to ``shares`` (one independent Dirichlet draw per row),
    deficits are taken from the other domains in proportion to their slack above their lower bound."""
    w = w.copy()
    d = w.shape[1]
    max_iters = max_iters or 4 * d + 8
    for _ in range(3):
        for _ in range(max_iters):
            excess = np.clip(w - upper, 0, None).sum(axis=1)
            deficit = np.clip(lower - w, 0, None).sum(axis=1)
            w = np.clip(w, lower, upper)
            net = excess - deficit  # > 0: mass to hand out; < 0: mass to take back
            if np.all(np.abs(net) <= 1e-15):
                break
            give = net > 0
            if np.any(give):
                room = upper - w[give]
                free = room > 0
                base = np.where(free, shares[give], 0.0)
                empty = base.sum(axis=1) <= 0
                base[empty] = np.where(free[empty], q, 0.0)
                base /= base.sum(axis=1, keepdims=True)
                w[give] += base * net[give, None]
            take = net < 0
            if np.any(take):
                slack = np.clip(w[take] - lower, 0, None)
                slack /= slack.sum(axis=1, keepdims=True)
                w[take] += slack * net[take, None]
        w = _zero_small(w, min_weight)
        # Zeroing can undercut a lower bound (never raises a weight above a cap by more than rounding):
        # repeat the projection if any row is still infeasible.
        if np.all(_feasible(w, lower, upper)):
            break
    return w


class _Drawer:
    """Draws feasible rows (rejection first, projection as fallback) from one random stream."""

    def __init__(self, tokens_per_domain, config: SamplerConfig, domains, rng: np.random.Generator):
        self.config = config
        self.lower, self.upper = domain_caps(tokens_per_domain, config, domains=domains)
        _, self.names, _, _, self.source = bounds_with_sources(tokens_per_domain, config, domains)
        self.q = _tempered_prior(as_tokens(tokens_per_domain), config.temperature)
        self.strengths = config.strengths()
        self.rng = rng
        self.stats = SampleStats()
        self.violations_upper = np.zeros(self.q.size, dtype=np.int64)
        self.violations_lower = np.zeros(self.q.size, dtype=np.int64)
        self.use_projection = False

    def raw(self, n: int) -> np.ndarray:
        w = _draw_dirichlet(self.rng, self.q, self.strengths, n)
        return _zero_small(w, self.config.min_weight)

    def rejection(self, n: int) -> np.ndarray:
        w = self.raw(n)
        ok = _feasible(w, self.lower, self.upper)
        bad = w[~ok]
        self.violations_upper += (bad > self.upper + BOUND_TOLERANCE).sum(axis=0)
        self.violations_lower += (bad < self.lower - BOUND_TOLERANCE).sum(axis=0)
        self.stats.num_drawn += n
        self.stats.num_accepted += int(ok.sum())
        return w[ok]

    def projected(self, n: int) -> np.ndarray:
        out = []
        got = 0
        for _ in range(100):
            m = n - got
            shares = _draw_dirichlet(self.rng, self.q, self.strengths, m)
            w = _project(self.raw(m), self.lower, self.upper, self.q, self.config.min_weight, shares)
            w = w[_feasible(w, self.lower, self.upper)]
            out.append(w)
            got += len(w)
            if got >= n:
                break
        else:
            raise RegmixError(f"{SECTION}: projection into the bounds failed repeatedly: "
                              f"{self.binding_constraint()}")
        self.stats.num_projected += n
        return np.concatenate(out)[:n]

    def binding_constraint(self) -> str:
        if self.violations_upper.sum() == 0 and self.violations_lower.sum() == 0:
            return "no constraint was violated"
        iu = int(np.argmax(self.violations_upper))
        il = int(np.argmax(self.violations_lower))
        total = max(self.stats.num_drawn - self.stats.num_accepted, 1)
        if self.violations_upper[iu] >= self.violations_lower[il]:
            return (f"the cap of domain {self.names[iu]!r} (<= {self.upper[iu]:.4g}, from {self.source[iu]}) "
                    f"rejected {self.violations_upper[iu] / total:.0%} of the rejected draws")
        return (f"the lower bound of domain {self.names[il]!r} (min_weights = {self.lower[il]:.4g}) "
                f"rejected {self.violations_lower[il] / total:.0%} of the rejected draws")

    def feasible_rows(self, n: int, rounds_left: int) -> tuple[np.ndarray, int]:
        """At least one feasible row towards ``n`` needed rows; returns (rows, rounds used)."""
        if self.use_projection:
            return self.projected(n), 1
        rate = self.stats.acceptance_rate
        if not math.isfinite(rate) or rate <= 0:
            batch = _PILOT_BATCH  # measure the acceptance rate first
        else:
            batch = int(1.3 * n / rate) + 64
        batch = int(min(batch, _MAX_BATCH))
        rows = self.rejection(batch)
        rate = self.stats.acceptance_rate
        # Give up on rejection when the remaining rounds cannot plausibly fill the request.
        still = n - len(rows)
        hopeless = still > 0 and (rate * _MAX_BATCH * max(rounds_left - 1, 0) < 2 * still)
        if hopeless:
            if self.config.fallback == "raise":
                raise RegmixError(
                    f"{SECTION}: rejection sampling accepted {self.stats.num_accepted} of "
                    f"{self.stats.num_drawn} draws ({rate:.2e}); the binding constraint is "
                    f"{self.binding_constraint()}. Loosen it, or set fallback: project")
            logger.warning("rejection sampling accepts %.2e of draws (%s); sampling the remaining %d "
                           "mixtures within the feasible region by projection", rate,
                           self.binding_constraint(), still)
            self.use_projection = True
            if still > 0:
                rows = np.concatenate([rows, self.projected(still)])
        return rows, 1


def _dedup_into(kept: list[np.ndarray], rows: np.ndarray, config: SamplerConfig, limit: int) -> tuple[int, list[int]]:
    """Append rows of ``rows`` that are >= dedup_min_distance from every kept row; returns (#duplicates, the
    positions in ``rows`` of the rows appended)."""
    dup = 0
    kept_arr = np.array(kept) if kept else np.empty((0, rows.shape[1]))
    buf = list(kept)
    new, positions = [], []
    for i, r in enumerate(rows):
        if len(buf) >= limit:
            break
        close = False
        for block in (kept_arr, np.array(new) if new else None):
            if block is None or len(block) == 0:
                continue
            diff = np.abs(block - r)
            dist = diff.sum(axis=1) if config.dedup_metric == "l1" else diff.max(axis=1)
            if np.any(dist < config.dedup_min_distance) or (config.dedup_min_distance == 0
                                                            and np.any(dist == 0)):
                close = True
                break
        if close:
            dup += 1
            continue
        new.append(r)
        positions.append(i)
        buf.append(r)
    kept.extend(new)
    return dup, positions


# ---- phases, features --------------------------------------------------------------------------------------
def check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """Phase fractions as they define a schedule (positive, summing to 1; rescaled exactly)."""
    probe = Mixture.from_dict({"x": 1.0})
    return Schedule.from_phases([(f, probe) for f in fractions], source="schedule.phases").fractions


def phase_configs(config: SamplerConfig, fractions: Sequence[float], stream: int, *, strict: bool = False
                  ) -> list[SamplerConfig]:
    """The sampler config of every phase of a schedule of several phases: its own seed and caps
    (:func:`regmix_megatron.mixtures.caps.phase_config`; ``strict``: the static caps). A one-phase schedule draws on
    the mixture streams with the config itself (module docstring)."""
    return [dataclasses.replace(config if strict else phase_config(config, f, len(fractions)),
                                seed=(config.seed * 10 + stream) * 100 + k) for k, f in enumerate(fractions)]


def overall_weights(rows: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """``(n, K, D)`` phase weights -> ``(n, D)`` token shares over the run."""
    return np.einsum("nkd,k->nd", rows, np.asarray(fractions, dtype=np.float64))


def features_of(rows: np.ndarray, fractions: Sequence[float]) -> np.ndarray:
    """``(n, K, D)`` phase weights -> ``(n, K*D)`` regression features (:meth:`Schedule.features` order); one
    phase: the weights themselves."""
    scaled = rows * np.asarray(fractions, dtype=np.float64)[None, :, None]
    return scaled.reshape(rows.shape[0], rows.shape[1] * rows.shape[2])


# ---- the sweep: distinct mixtures or schedules -------------------------------------------------------------
def sample_rows(tokens_per_domain: np.ndarray, config: SamplerConfig, fractions: Sequence[float] = ONE_PHASE, *,
                domains: Sequence[str] | None = None, stats: SampleStats | None = None) -> np.ndarray:
    """Exactly ``config.num_samples`` distinct draws as phase weights, shape ``(num_samples, phases, domains)``.

    Every phase's row sums to 1 (exactly renormalized), lies within its caps (up to ``BOUND_TOLERANCE``) and has
    no weight in (0, min_weight); every pair of draws is at least ``dedup_min_distance`` apart in their features.
    Deterministic given ``config.seed``. ``domains`` names the entries of ``tokens_per_domain`` (needed for
    ``min_weights``/``max_weights`` and for several phases). Pass a :class:`SampleStats` to learn how many draws
    were rejected or projected. Raises :class:`RegmixError` naming the binding constraint when the request cannot
    be met.
    """
    fractions = check_fractions(fractions)
    num = config.num_samples
    source = _MixtureDraws(tokens_per_domain, config, domains) if len(fractions) == 1 else \
        _ScheduleDraws(tokens_per_domain, config, fractions, domains, chunk_size=max(256, 4 * num))
    kept: list[np.ndarray] = []
    rows_kept: list[np.ndarray] = []
    num_duplicates = rounds = 0
    while len(kept) < num:
        if rounds >= config.max_rounds:
            raise RegmixError(source.shortfall(len(kept), rounds, num_duplicates))
        rows, used = source.draw(num - len(kept), config.max_rounds - rounds)
        rounds += used
        dup, positions = _dedup_into(kept, features_of(rows, fractions), config, num)
        num_duplicates += dup
        rows_kept.extend(rows[positions])
    out = np.array(rows_kept[:num], dtype=np.float64)
    source.stats.num_duplicates = num_duplicates
    source.stats.num_rounds = rounds
    if stats is not None:
        stats.__dict__.update(source.stats.__dict__)
    source.log(out)
    return out


def sample(tokens_per_domain: np.ndarray, config: SamplerConfig, fractions: Sequence[float] = ONE_PHASE, *,
           domains: Sequence[str], stats: SampleStats | None = None) -> list[Schedule]:
    """:func:`sample_rows` as schedules over ``domains`` (one phase: each the schedule of its mixture, with the
    mixture's hash: ``schedule.mixtures[0]``)."""
    fractions = check_fractions(fractions)
    rows = sample_rows(tokens_per_domain, config, fractions, domains=domains, stats=stats)
    return [Schedule.from_phases([(f, Mixture.from_array(list(domains), r[k])) for k, f in enumerate(fractions)])
            for r in rows]


class _MixtureDraws:
    """One phase: mixtures from the sweep's mixture stream, rejection batches sized by the acceptance rate."""

    def __init__(self, tokens_per_domain, config: SamplerConfig, domains) -> None:
        self.config = config
        self.drawer = _Drawer(tokens_per_domain, config, domains,
                              np.random.default_rng(np.random.SeedSequence([config.seed, SWEEP_STREAM])))
        self.stats = self.drawer.stats

    def draw(self, need: int, rounds_left: int) -> tuple[np.ndarray, int]:
        rows, used = self.drawer.feasible_rows(need, rounds_left)
        return rows[:, None, :], used

    def shortfall(self, num_kept: int, rounds: int, num_duplicates: int) -> str:
        c = self.config
        if num_duplicates and self.stats.num_accepted + self.stats.num_projected >= c.num_samples:
            return (f"{SECTION}: only {num_kept} mixtures at least dedup_min_distance={c.dedup_min_distance} "
                    f"({c.dedup_metric}) apart were found in {rounds} rounds ({num_duplicates} near-duplicates "
                    "dropped): the bounds leave too little room; lower dedup_min_distance or num_samples, or loosen "
                    "the caps")
        return (f"{SECTION}: only {num_kept} of {c.num_samples} mixtures after max_rounds={c.max_rounds}; the "
                f"binding constraint is {self.drawer.binding_constraint()}")

    def log(self, out: np.ndarray) -> None:
        s = self.stats
        logger.info("sampled %d mixtures over %d domains: %d draws, acceptance %.3g, %d projected, %d duplicates "
                    "dropped", len(out), out.shape[2], s.num_drawn, s.acceptance_rate, s.num_projected,
                    s.num_duplicates)


class _ScheduleDraws:
    """Several phases: chunks of jointly feasible schedules from every phase's own pool stream."""

    def __init__(self, tokens_per_domain, config: SamplerConfig, fractions, domains, *, chunk_size: int) -> None:
        self.config, self.fractions, self.domains = config, fractions, list(domains)
        self.stats = SampleStats()
        self.chunks = _schedule_rows(tokens_per_domain, config, fractions, domains=self.domains,
                                     chunk_size=chunk_size, stream=SWEEP_STREAM, stats=self.stats)

    def draw(self, need: int, rounds_left: int) -> tuple[np.ndarray, int]:
        return next(self.chunks), 1

    def shortfall(self, num_kept: int, rounds: int, num_duplicates: int) -> str:
        return (f"{SECTION}: only {num_kept} of {self.config.num_samples} distinct schedules after max_rounds="
                f"{self.config.max_rounds}; lower dedup_min_distance or num_samples, or loosen the caps")

    def log(self, out: np.ndarray) -> None:
        s = self.stats
        logger.info("sampled %d schedules of %d phases over %d domains: %d drawn, %d within the joint epoch caps, %d "
                    "under the static cap per phase, %d duplicates dropped", len(out), len(self.fractions),
                    len(self.domains), s.num_drawn, s.num_accepted, s.num_strict, s.num_duplicates)


def _schedule_rows(tokens_per_domain: np.ndarray, config: SamplerConfig, fractions: Sequence[float], *,
                   domains: Sequence[str], chunk_size: int, stream: int, stats: SampleStats) -> Iterator[np.ndarray]:
    """Endless chunks of jointly feasible ``(n, K, D)`` phase weights of several phases (module docstring)."""
    fractions = tuple(fractions)
    upper = joint_upper(tokens_per_domain, config)
    domain_caps(tokens_per_domain, config, domains=list(domains))  # the static caps must be feasible

    def streams(strict: bool):
        return [_mixture_pool(tokens_per_domain, c, _ENDLESS, chunk_size, list(domains))
                for c in phase_configs(config, fractions, stream, strict=strict)]

    free = streams(strict=False)
    first = True
    while True:
        rows = np.stack([next(g) for g in free], axis=1)
        stats.num_drawn += len(rows)
        if upper is None:
            stats.num_accepted += len(rows)
            yield rows
            continue
        excess = overall_weights(rows, fractions) - upper[None, :]
        ok = np.all(excess <= BOUND_TOLERANCE, axis=1)
        stats.num_accepted += int(ok.sum())
        if first and ok.mean() < MIN_ACCEPTANCE:
            worst = list(domains)[int(np.argmax((excess > BOUND_TOLERANCE).sum(axis=0)))]
            if config.fallback == "raise":
                raise RegmixError(f"{SECTION}: only {ok.mean():.1%} of drawn schedules keep every domain within its "
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


# ---- the search's pool -------------------------------------------------------------------------------------
def iter_pool(tokens_per_domain: np.ndarray, config: SamplerConfig, num_candidates: int, chunk_size: int = 100_000,
              *, fractions: Sequence[float] = ONE_PHASE, domains: Sequence[str] | None = None,
              stats: SampleStats | None = None) -> Iterator[np.ndarray]:
    """Yield ``num_candidates`` candidates as feature rows (one phase: mixtures), in chunks of ``chunk_size`` (the
    last may be shorter).

    The same sampler and caps as :func:`sample` (rejection, with projection when rejection is hopeless per
    ``config.fallback``), no deduplication, memory bounded by ``chunk_size``. Deterministic given ``config.seed``
    and ``chunk_size``; a random stream independent of :func:`sample`'s. ``config.num_samples`` is ignored.
    """
    if not is_integer(num_candidates) or num_candidates <= 0:
        raise RegmixError(f"num_candidates={num_candidates!r}: use a positive integer")
    if not is_integer(chunk_size) or chunk_size <= 0:
        raise RegmixError(f"chunk_size={chunk_size!r}: use a positive integer")
    fractions = check_fractions(fractions)
    stats = stats if stats is not None else SampleStats()
    if len(fractions) == 1:
        yield from _mixture_pool(tokens_per_domain, config, num_candidates, chunk_size, domains, stats)
        return
    chunks = _schedule_rows(tokens_per_domain, config, fractions, domains=domains, chunk_size=chunk_size,
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


def _mixture_pool(tokens_per_domain: np.ndarray, config: SamplerConfig, num_candidates: int, chunk_size: int,
                  domains: Sequence[str] | None, stats: SampleStats | None = None) -> Iterator[np.ndarray]:
    """The pool stream of one phase's mixtures (``[seed, 1]``), in chunks of at most ``chunk_size`` rows."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, POOL_STREAM]))
    drawer = _Drawer(tokens_per_domain, config, domains, rng)
    done = 0
    while done < num_candidates:
        n = min(chunk_size, num_candidates - done)
        parts, got, rounds = [], 0, 0
        while got < n:
            rows, used = drawer.feasible_rows(n - got, config.max_rounds - rounds)
            rounds += used
            if rounds > config.max_rounds and not drawer.use_projection:
                raise RegmixError(f"{SECTION}: candidates not filled after max_rounds={config.max_rounds}; "
                                  f"the binding constraint is {drawer.binding_constraint()}")
            rows = rows[: n - got]
            parts.append(rows)
            got += len(rows)
        chunk = np.concatenate(parts) if len(parts) > 1 else parts[0]
        done += n
        if stats is not None:
            stats.__dict__.update(drawer.stats.__dict__)
        yield chunk


__all__ = ["ONE_PHASE", "MIN_ACCEPTANCE", "SampleStats", "check_fractions", "phase_configs", "overall_weights",
           "features_of", "sample_rows", "sample", "iter_pool"]
