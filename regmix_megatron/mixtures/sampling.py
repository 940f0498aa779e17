"""The RegMix mixture sampler (pure numpy).

What it draws (defaults are the method's, see ``../shared/notes/regmix-method.md``):

1. Prior ``p``: each domain's share of *training tokens* (exact counts from the ``.idx`` files).
2. Tempered prior ``q = p**temperature``, renormalized (temperature 0.5).
3. Per sample, a Dirichlet strength ``s`` picked uniformly from ``num_strengths`` log-spaced values in
   ``[strength_min, strength_max]``; the mixture is drawn from ``Dirichlet(q * s)``.
4. Weights below ``min_weight`` are set to 0 and the mixture is renormalized exactly (sum == 1.0).
5. The mixture must lie within per-domain bounds ``lower_i <= w_i <= upper_i`` (see :func:`domain_caps`):
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

Everything is deterministic given ``seed``. :func:`iter_candidates` (the search stage's candidate pool) uses
the same sampler and the same bounds on an independent random stream (so a pool drawn with the same seed does
not repeat the training mixtures) and skips deduplication.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, field
from typing import Iterator, Literal, Mapping, Sequence

import numpy as np

from ..configs import check, config_to_dict, load_config
from ..errors import ConfigError, DataError, RegmixError

logger = logging.getLogger(__name__)

#: A weight may exceed its cap (or undercut its lower bound) by this much because of the exact
#: renormalization (the residual rounding error lands on the largest weight).
BOUND_TOLERANCE = 1e-12

_SECTION = "sampler"

#: Largest rejection-sampling batch (rows); with max_rounds it bounds the work before projection.
_MAX_BATCH = 200_000
#: First rejection batch, before the acceptance rate is known.
_PILOT_BATCH = 16_384


@dataclass
class SamplerConfig:
    """Knobs of the RegMix sampler. Defaults are the method's (RegMix, arXiv 2407.01492)."""

    num_samples: int = 512
    """How many distinct mixtures :func:`sample_mixtures` returns (exactly this many, or it raises)."""
    seed: int = 0
    """Seed of the random stream; the same seed and config give identical mixtures."""
    temperature: float = 0.5
    """The Dirichlet base is ``p**temperature`` renormalized (p = token share). 1.0 = natural prior,
    0.0 = uniform."""
    strength_min: float = 0.1
    """Smallest Dirichlet strength (concentration multiplier): small = sparse, extreme mixtures."""
    strength_max: float = 5.0
    """Largest Dirichlet strength: large = mixtures close to the tempered prior."""
    num_strengths: int = 15
    """Number of log-spaced strengths in [strength_min, strength_max]; one is picked uniformly per sample."""
    min_weight: float = 2e-4
    """Weights below this are set to 0 (then the mixture is renormalized exactly)."""
    cap_multiplier: float | None = 15.0
    """Cap ``upper_i = min(cap_multiplier * p_i, 1)`` (the method's default, about 1.5 epochs when the
    target run sees ~1/10 of the pool). None disables it."""
    max_epochs: float | None = None
    """Epoch limit: with ``target_tokens``, caps ``upper_i = max_epochs * tokens_i / target_tokens``.
    Give both or neither. Applied together with ``cap_multiplier`` (the smaller cap wins); set
    ``cap_multiplier`` to None to use the epoch cap alone."""
    target_tokens: int | None = None
    """Token budget of the run the mixture is for (see ``max_epochs``)."""
    min_weights: dict[str, float] = field(default_factory=dict)
    """Explicit per-domain lower bounds (domain -> weight); 0 or >= min_weight each."""
    max_weights: dict[str, float] = field(default_factory=dict)
    """Explicit per-domain upper bounds (domain -> weight), combined with the caps above (smaller wins)."""
    dedup_min_distance: float = 1e-3
    """Two kept mixtures are at least this far apart in ``dedup_metric`` (0 only drops exact repeats)."""
    dedup_metric: Literal["l1", "linf"] = "l1"
    """``"l1"`` (sum of absolute differences, in [0, 2]) or ``"linf"`` (largest absolute difference)."""
    max_rounds: int = 50
    """Rejection-sampling rounds (each at most 200k draws) before giving up on rejection (then ``fallback``
    decides). Rejection is abandoned early when the measured acceptance rate cannot fill the request in the
    rounds left."""
    fallback: Literal["project", "raise"] = "project"
    """When rejection cannot fill the request: ``"project"`` (sample within the feasible region, see the
    module docstring) or ``"raise"`` (error naming the binding constraint)."""

    def __post_init__(self) -> None:
        c = check
        c(_integer(self.num_samples) and self.num_samples > 0, _SECTION, "num_samples",
          self.num_samples, "use a positive integer (the method uses 512)")
        c(_integer(self.seed) and self.seed >= 0, _SECTION,
          "seed", self.seed, "use a non-negative integer")
        c(_finite(self.temperature) and 0 <= self.temperature <= 10, _SECTION, "temperature",
          self.temperature, "use a number in [0, 10] (the method uses 0.5)")
        c(_finite(self.strength_min) and self.strength_min > 0, _SECTION, "strength_min", self.strength_min,
          "use a positive number (the method uses 0.1)")
        c(_finite(self.strength_max) and self.strength_max >= self.strength_min, _SECTION, "strength_max",
          self.strength_max, f"use a number >= strength_min={self.strength_min} (the method uses 5.0)")
        c(_integer(self.num_strengths) and self.num_strengths >= 1, _SECTION, "num_strengths",
          self.num_strengths, "use a positive integer (the method uses 15)")
        c(_finite(self.min_weight) and 0 <= self.min_weight < 1, _SECTION, "min_weight", self.min_weight,
          "use a number in [0, 1) (the method uses 2e-4)")
        if self.cap_multiplier is not None:
            c(_finite(self.cap_multiplier) and self.cap_multiplier > 0, _SECTION, "cap_multiplier",
              self.cap_multiplier, "use a positive number (the method uses 15) or null to disable the cap")
        if (self.max_epochs is None) != (self.target_tokens is None):
            given = "max_epochs" if self.max_epochs is not None else "target_tokens"
            missing = "target_tokens" if given == "max_epochs" else "max_epochs"
            c(False, _SECTION, missing, None,
              f"{given} is set, so give {missing} too (the epoch cap needs both) or remove {given}")
        if self.max_epochs is not None:
            c(_finite(self.max_epochs) and self.max_epochs > 0, _SECTION, "max_epochs", self.max_epochs,
              "use a positive number of epochs (e.g. 1.5)")
            c(_finite(self.target_tokens) and self.target_tokens > 0, _SECTION, "target_tokens",
              self.target_tokens, "use a positive token count (the token budget of the target run)")
        for name in ("min_weights", "max_weights"):
            bounds = getattr(self, name)
            c(isinstance(bounds, Mapping), _SECTION, name, bounds, "give a mapping domain -> weight")
            for domain, value in bounds.items():
                ok = _finite(value)
                c(ok and 0 <= value <= 1, _SECTION, f"{name}[{domain!r}]", value, "use a weight in [0, 1]")
            object.__setattr__(self, name, {str(k): float(v) for k, v in bounds.items()})
        for domain, value in self.min_weights.items():
            c(value == 0 or value >= self.min_weight, _SECTION, f"min_weights[{domain!r}]", value,
              f"a lower bound must be 0 or >= min_weight={self.min_weight} (smaller weights are zeroed)")
            if domain in self.max_weights:
                c(self.max_weights[domain] >= value, _SECTION, f"max_weights[{domain!r}]",
                  self.max_weights[domain], f"must be >= min_weights[{domain!r}]={value}")
        c(_finite(self.dedup_min_distance) and self.dedup_min_distance >= 0, _SECTION, "dedup_min_distance",
          self.dedup_min_distance, "use a non-negative distance (e.g. 1e-3)")
        c(self.dedup_metric in ("l1", "linf"), _SECTION, "dedup_metric", self.dedup_metric,
          'use "l1" or "linf"')
        c(_integer(self.max_rounds) and self.max_rounds >= 1, _SECTION, "max_rounds", self.max_rounds,
          "use a positive integer")
        c(self.fallback in ("project", "raise"), _SECTION, "fallback", self.fallback,
          'use "project" (sample within the feasible region) or "raise"')

    def strengths(self) -> np.ndarray:
        """The log-spaced Dirichlet strengths."""
        return np.geomspace(self.strength_min, self.strength_max, self.num_strengths)

    @classmethod
    def from_dict(cls, fields: Mapping | None = None, *, defaults: Mapping | None = None,
                  overrides: Mapping | None = None, source: str = "sampler") -> "SamplerConfig":
        """Parse and check the fields once (:func:`build_sampler_config`: a config section, a sampler file's
        ``sampler`` mapping, defaults and overrides); errors name ``source`` (the file and section), the field,
        the value and the fix."""
        return build_sampler_config(fields, defaults=defaults, overrides=overrides, source=source)


@dataclass
class SampleStats:
    """What happened in one :func:`sample_mixtures` call (for logs and the resolved-config file)."""

    num_drawn: int = 0
    num_accepted: int = 0
    num_projected: int = 0
    num_duplicates: int = 0
    num_rounds: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.num_accepted / self.num_drawn if self.num_drawn else float("nan")


def build_sampler_config(fields: Mapping | None = None, *, defaults: Mapping | None = None,
                         overrides: Mapping | None = None, source: str = "sampler") -> SamplerConfig:
    """The one place a :class:`SamplerConfig` is assembled from its sources.

    ``fields``: a config file's or a config section's mapping of fields; a mapping holding a ``sampler``
    mapping (the ``.sampler.yaml`` that ``regmix-megatron sample`` writes, or ``{sampler: {...}}``) is read for
    that. ``defaults`` fill the fields it leaves out (e.g. the pipeline's seed); ``overrides`` replace fields
    (e.g. flags given on the command line; a None value is applied, it means "off" for the optional caps).
    Errors name the field, the value and the fix (:class:`~regmix_megatron.errors.ConfigError`).
    """
    if fields is not None and not isinstance(fields, Mapping):
        raise ConfigError(f"{source}: expected a mapping of SamplerConfig fields, got {type(fields).__name__}")
    data = dict(fields or {})
    if isinstance(data.get("sampler"), Mapping):
        data = dict(data["sampler"])
    for key, value in (defaults or {}).items():
        data.setdefault(key, value)
    data.update(overrides or {})
    return load_config(SamplerConfig, data, source=source)


def sampler_run_record(config: SamplerConfig, registry, lower: np.ndarray, upper: np.ndarray,
                       stats: SampleStats, num_mixtures: int, output) -> dict:
    """The ``.sampler.yaml`` written beside a mixtures file (format ``regmix-megatron/sampler-run/v1``): the
    resolved config (readable back with :func:`build_sampler_config`), the domains and their train tokens,
    prior and bounds, and the sampling statistics."""
    from pathlib import Path

    tokens = registry.tokens_per_domain("train")
    return {
        "format": "regmix-megatron/sampler-run/v1",
        "sampler": config_to_dict(config),
        "domains_json": str(Path(registry.path).resolve()) if registry.path else None,
        "domains": list(registry.names),
        "tokens_per_domain": [int(t) for t in tokens],
        "prior": [float(x) for x in registry.prior("train")],
        "lower": [float(x) for x in lower],
        "upper": [float(x) for x in upper],
        "num_mixtures": int(num_mixtures),
        "stats": {"num_drawn": stats.num_drawn, "num_accepted": stats.num_accepted,
                  "num_projected": stats.num_projected, "num_duplicates": stats.num_duplicates,
                  "acceptance_rate": stats.acceptance_rate},
        "output": str(Path(output).resolve()),
    }


def _integer(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def _finite(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)) and math.isfinite(x)


# ---- bounds ---------------------------------------------------------------------------------------------
def _as_tokens(tokens_per_domain) -> np.ndarray:
    t = np.asarray(tokens_per_domain, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise RegmixError(f"tokens_per_domain must be a non-empty 1-d array, got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise RegmixError(f"tokens_per_domain must be finite and >= 0, got {t.tolist()}")
    if t.sum() <= 0:
        raise RegmixError("tokens_per_domain: no domain has any training tokens")
    return t


def _domain_names(num_domains: int, domains: Sequence[str] | None, config: SamplerConfig) -> list[str]:
    if domains is None:
        named = sorted(set(config.min_weights) | set(config.max_weights))
        if named:
            raise ConfigError(f"{_SECTION}.min_weights/max_weights name domains {named}: pass domains= "
                              "(the registry's names, in the order of tokens_per_domain)")
        return [f"#{i}" for i in range(num_domains)]
    domains = list(domains)
    if len(domains) != num_domains:
        raise RegmixError(f"{len(domains)} domain names for {num_domains} token counts")
    for name in ("min_weights", "max_weights"):
        unknown = sorted(set(getattr(config, name)) - set(domains))
        if unknown:
            raise ConfigError(f"{_SECTION}.{name} names unknown domain(s) {unknown}: known {domains}")
    return domains


def _bounds_with_sources(tokens_per_domain, config: SamplerConfig, domains: Sequence[str] | None):
    t = _as_tokens(tokens_per_domain)
    names = _domain_names(t.size, domains, config)
    if t.size < 2:
        only = f" ({names[0]!r})" if names else ""
        raise DataError(f"one training domain{only}: every mixture over one domain is the same (weight 1), so "
                        "there is nothing to sample, fit or search; give at least two training domains (are the "
                        "others evaluation-only? `regmix-megatron domains show` lists the roles, `domains "
                        "eval-only` changes them)")
    p = t / t.sum()
    upper = np.ones_like(p)
    source = ["1 (no cap)"] * t.size

    def tighten(values: np.ndarray, label) -> None:
        for i, v in enumerate(values):
            if v < upper[i]:
                upper[i] = v
                source[i] = label(i)

    if config.cap_multiplier is not None:
        tighten(config.cap_multiplier * p, lambda i: f"cap_multiplier={config.cap_multiplier} x prior {p[i]:.4g}")
    if config.max_epochs is not None:
        tighten(config.max_epochs * t / float(config.target_tokens),
                lambda i: f"max_epochs={config.max_epochs} x {int(t[i])} tokens / "
                          f"target_tokens={config.target_tokens}")
    tighten(np.array([config.max_weights.get(n, 1.0) for n in names]),
            lambda i: f"max_weights[{names[i]!r}]")
    lower = np.array([config.min_weights.get(n, 0.0) for n in names], dtype=np.float64)
    return t, names, lower, upper, source


def domain_caps(tokens_per_domain: np.ndarray, config: SamplerConfig, *,
                domains: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-domain ``(lower, upper)`` weight bounds, validated for feasibility.

    ``upper_i = min(1, cap_multiplier * p_i, max_epochs * tokens_i / target_tokens, max_weights[i])``
    (terms that are not configured are skipped), ``lower_i = min_weights[i]`` (default 0). ``domains`` names
    the entries of ``tokens_per_domain`` (needed when ``min_weights``/``max_weights`` are given).
    Raises :class:`ConfigError` naming the field and the fix when no mixture can satisfy the bounds.
    """
    t, names, lower, upper, source = _bounds_with_sources(tokens_per_domain, config, domains)
    if config.max_epochs is not None and config.max_epochs * t.sum() < config.target_tokens:
        best = config.max_epochs * t.sum()
        raise ConfigError(
            f"{_SECTION}.target_tokens={config.target_tokens} is more than max_epochs={config.max_epochs} "
            f"x the {int(t.sum())} available training tokens, so no mixture can meet the budget (the caps "
            f"sum to {upper.sum():.4g} < 1): use target_tokens <= {int(best)} or raise max_epochs")
    for i, n in enumerate(names):
        if upper[i] < config.min_weight:
            what = source[i]
            fix = ("raise max_epochs or lower target_tokens" if what.startswith("max_epochs")
                   else "raise it" if what.startswith("max_weights") else
                   "raise cap_multiplier" if what.startswith("cap_multiplier") else "add tokens")
            if t[i] == 0:
                raise ConfigError(f"domain {n!r} has no training tokens, so its cap is 0: drop the domain "
                                  "from domains.json or give it data")
            raise ConfigError(
                f"{_SECTION}: cap of domain {n!r} is {upper[i]:.3g} ({what}), below "
                f"min_weight={config.min_weight}: the domain could never get a weight; {fix}, or lower "
                "min_weight")
        if lower[i] > upper[i]:
            raise ConfigError(f"{_SECTION}.min_weights[{n!r}]={lower[i]} is above that domain's cap "
                              f"{upper[i]:.6g} ({source[i]}): lower the bound or loosen the cap")
    if lower.sum() > 1 + BOUND_TOLERANCE:
        raise ConfigError(f"{_SECTION}.min_weights sum to {lower.sum():.6g} > 1: no mixture can meet them; "
                          "lower some bounds")
    if upper.sum() < 1 - BOUND_TOLERANCE:
        raise ConfigError(
            f"{_SECTION}: the per-domain caps sum to {upper.sum():.6g} < 1, so no mixture fits (caps: "
            + ", ".join(f"{n}<={u:.4g}" for n, u in zip(names, upper))
            + "): raise cap_multiplier / max_weights / max_epochs or lower target_tokens")
    return lower, upper


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
        _, self.names, _, _, self.source = _bounds_with_sources(tokens_per_domain, config, domains)
        self.q = _tempered_prior(_as_tokens(tokens_per_domain), config.temperature)
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
            raise RegmixError(f"{_SECTION}: projection into the bounds failed repeatedly: "
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
                    f"{_SECTION}: rejection sampling accepted {self.stats.num_accepted} of "
                    f"{self.stats.num_drawn} draws ({rate:.2e}); the binding constraint is "
                    f"{self.binding_constraint()}. Loosen it, or set fallback: project")
            logger.warning("rejection sampling accepts %.2e of draws (%s); sampling the remaining %d "
                           "mixtures within the feasible region by projection", rate,
                           self.binding_constraint(), still)
            self.use_projection = True
            if still > 0:
                rows = np.concatenate([rows, self.projected(still)])
        return rows, 1


def _dedup_into(kept: list[np.ndarray], rows: np.ndarray, config: SamplerConfig, limit: int) -> int:
    """Append rows of ``rows`` that are >= dedup_min_distance from every kept row; returns #duplicates."""
    dup = 0
    kept_arr = np.array(kept) if kept else np.empty((0, rows.shape[1]))
    buf = list(kept)
    new = []
    for r in rows:
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
        buf.append(r)
    kept.extend(new)
    return dup


def sample_mixtures(tokens_per_domain: np.ndarray, config: SamplerConfig, *,
                    domains: Sequence[str] | None = None,
                    stats: SampleStats | None = None) -> np.ndarray:
    """Exactly ``config.num_samples`` distinct mixtures, shape (num_samples, num_domains), float64.

    Every row sums to 1 (exactly renormalized), lies within :func:`domain_caps` (up to
    :data:`BOUND_TOLERANCE`) and has no weight in (0, min_weight); every pair of rows is at least
    ``dedup_min_distance`` apart. Deterministic given ``config.seed``. ``domains`` names the entries of
    ``tokens_per_domain`` (needed for ``min_weights``/``max_weights``). Pass a :class:`SampleStats` to
    learn how many draws were rejected or projected. Raises :class:`RegmixError` naming the binding
    constraint when the request cannot be met.
    """
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0]))
    drawer = _Drawer(tokens_per_domain, config, domains, rng)
    kept: list[np.ndarray] = []
    num_duplicates = 0
    rounds = 0
    while len(kept) < config.num_samples:
        if rounds >= config.max_rounds:
            if num_duplicates and drawer.stats.num_accepted + drawer.stats.num_projected >= config.num_samples:
                raise RegmixError(
                    f"{_SECTION}: only {len(kept)} mixtures at least dedup_min_distance="
                    f"{config.dedup_min_distance} ({config.dedup_metric}) apart were found in {rounds} rounds "
                    f"({num_duplicates} near-duplicates dropped): the bounds leave too little room; lower "
                    "dedup_min_distance or num_samples, or loosen the caps")
            raise RegmixError(
                f"{_SECTION}: only {len(kept)} of {config.num_samples} mixtures after max_rounds="
                f"{config.max_rounds}; the binding constraint is {drawer.binding_constraint()}")
        need = config.num_samples - len(kept)
        rows, used = drawer.feasible_rows(need, config.max_rounds - rounds)
        rounds += used
        num_duplicates += _dedup_into(kept, rows, config, config.num_samples)
    out = np.array(kept[: config.num_samples], dtype=np.float64)
    drawer.stats.num_duplicates = num_duplicates
    drawer.stats.num_rounds = rounds
    if stats is not None:
        stats.__dict__.update(drawer.stats.__dict__)
    logger.info("sampled %d mixtures over %d domains: %d draws, acceptance %.3g, %d projected, %d duplicates "
                "dropped", len(out), out.shape[1], drawer.stats.num_drawn, drawer.stats.acceptance_rate,
                drawer.stats.num_projected, num_duplicates)
    return out


def iter_candidates(tokens_per_domain: np.ndarray, config: SamplerConfig, num_candidates: int,
                    chunk_size: int = 100_000, *,
                    domains: Sequence[str] | None = None) -> Iterator[np.ndarray]:
    """Yield ``num_candidates`` candidate mixtures in chunks of at most ``chunk_size`` rows.

    The same sampler and bounds as :func:`sample_mixtures` (rejection, with projection when rejection is
    hopeless per ``config.fallback``), no deduplication, memory bounded by ``chunk_size``. Deterministic
    given ``config.seed`` and ``chunk_size``; uses a random stream independent of :func:`sample_mixtures`.
    ``config.num_samples`` is ignored.
    """
    if not _integer(num_candidates) or num_candidates <= 0:
        raise RegmixError(f"num_candidates={num_candidates!r}: use a positive integer")
    if not _integer(chunk_size) or chunk_size <= 0:
        raise RegmixError(f"chunk_size={chunk_size!r}: use a positive integer")
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    drawer = _Drawer(tokens_per_domain, config, domains, rng)
    done = 0
    while done < num_candidates:
        n = min(chunk_size, num_candidates - done)
        parts, got, rounds = [], 0, 0
        while got < n:
            rows, used = drawer.feasible_rows(n - got, config.max_rounds - rounds)
            rounds += used
            if rounds > config.max_rounds and not drawer.use_projection:
                raise RegmixError(f"{_SECTION}: candidates not filled after max_rounds={config.max_rounds}; "
                                  f"the binding constraint is {drawer.binding_constraint()}")
            rows = rows[: n - got]
            parts.append(rows)
            got += len(rows)
        chunk = np.concatenate(parts) if len(parts) > 1 else parts[0]
        done += n
        yield chunk
