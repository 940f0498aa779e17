"""The bounds a sampled mixture or schedule keeps: per-domain caps, each phase's caps, the epoch cap over a run.

Per domain (:func:`domain_caps`): ``upper_i = min(1, cap_multiplier * p_i, max_epochs * tokens_i / target_tokens,
max_weights[i])`` (terms not configured are skipped) and ``lower_i = min_weights[i]`` (0 by default), validated for
feasibility with errors naming the field and the fix.

A schedule (docs/SCHEDULES.md): the sampler's own caps (``cap_multiplier``, ``max_weights``, ``min_weights``,
``min_weight``) hold in every phase; an epoch cap (``max_epochs`` with ``target_tokens``) counts a domain's tokens
over all phases, ``sum_k f_k * w_kd <= max_epochs * tokens_d / target_tokens`` (:func:`joint_upper`), and each phase
is drawn with the epoch cap of its own share of the budget (:func:`phase_config`: a short phase may spend a domain's
whole budget). A one-phase schedule is its mixture: its phase has the sampler's own caps, and its features are the
mixture's weights, so :func:`feature_bounds` of one phase is :func:`domain_caps`.

Pure core: numpy.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import ConfigError, DataError, RegmixError
from .sampler_config import SECTION, SamplerConfig

if TYPE_CHECKING:
    from .schedule import Schedule

#: A weight may exceed its cap (or undercut its lower bound) by this much because of the exact
#: renormalization (the residual rounding error lands on the largest weight).
BOUND_TOLERANCE = 1e-12


def as_tokens(tokens_per_domain) -> np.ndarray:
    """Token counts per domain as float64, checked (finite, >= 0, some tokens)."""
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
            raise ConfigError(f"{SECTION}.min_weights/max_weights name domains {named}: pass domains= "
                              "(the registry's names, in the order of tokens_per_domain)")
        return [f"#{i}" for i in range(num_domains)]
    domains = list(domains)
    if len(domains) != num_domains:
        raise RegmixError(f"{len(domains)} domain names for {num_domains} token counts")
    for name in ("min_weights", "max_weights"):
        unknown = sorted(set(getattr(config, name)) - set(domains))
        if unknown:
            raise ConfigError(f"{SECTION}.{name} names unknown domain(s) {unknown}: known {domains}")
    return domains


def bounds_with_sources(tokens_per_domain, config: SamplerConfig, domains: Sequence[str] | None):
    """``(tokens, names, lower, upper, source)``: the bounds unchecked, and what set each upper bound (the
    sampler names the binding constraint with it)."""
    t = as_tokens(tokens_per_domain)
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
    t, names, lower, upper, source = bounds_with_sources(tokens_per_domain, config, domains)
    if config.max_epochs is not None and config.max_epochs * t.sum() < config.target_tokens:
        best = config.max_epochs * t.sum()
        raise ConfigError(
            f"{SECTION}.target_tokens={config.target_tokens} is more than max_epochs={config.max_epochs} "
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
                f"{SECTION}: cap of domain {n!r} is {upper[i]:.3g} ({what}), below "
                f"min_weight={config.min_weight}: the domain could never get a weight; {fix}, or lower "
                "min_weight")
        if lower[i] > upper[i]:
            raise ConfigError(f"{SECTION}.min_weights[{n!r}]={lower[i]} is above that domain's cap "
                              f"{upper[i]:.6g} ({source[i]}): lower the bound or loosen the cap")
    if lower.sum() > 1 + BOUND_TOLERANCE:
        raise ConfigError(f"{SECTION}.min_weights sum to {lower.sum():.6g} > 1: no mixture can meet them; "
                          "lower some bounds")
    if upper.sum() < 1 - BOUND_TOLERANCE:
        raise ConfigError(
            f"{SECTION}: the per-domain caps sum to {upper.sum():.6g} < 1, so no mixture fits (caps: "
            + ", ".join(f"{n}<={u:.4g}" for n, u in zip(names, upper))
            + "): raise cap_multiplier / max_weights / max_epochs or lower target_tokens")
    return lower, upper


# ---- phases -----------------------------------------------------------------------------------------------
def phase_config(config: SamplerConfig, fraction: float, num_phases: int) -> SamplerConfig:
    """The caps of a phase that is ``fraction`` of a run of ``num_phases`` phases: the sampler's own, with an epoch
    cap counting the phase's share of the budget (``target_tokens = fraction * target_tokens``). The one phase of a
    one-phase schedule is the mixture: the config itself."""
    if num_phases == 1 or config.max_epochs is None:
        return config
    return dataclasses.replace(config, target_tokens=max(1, int(round(fraction * config.target_tokens))))


def feature_bounds(tokens_per_domain: np.ndarray, config: SamplerConfig, fractions: Sequence[float],
                   domains: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(lower, upper)`` of a schedule's features (:meth:`Schedule.features` order): each phase's caps
    times its fraction. One phase: :func:`domain_caps`."""
    lower, upper = [], []
    for f in fractions:
        lo, up = domain_caps(tokens_per_domain, phase_config(config, f, len(fractions)), domains=list(domains))
        lower.append(f * lo)
        upper.append(f * up)
    return np.concatenate(lower), np.concatenate(upper)


def joint_upper(tokens_per_domain: np.ndarray, config: SamplerConfig) -> np.ndarray | None:
    """The epoch cap of each domain's share of the whole run (None without ``max_epochs``)."""
    if config.max_epochs is None:
        return None
    return config.max_epochs * np.asarray(tokens_per_domain, dtype=np.float64) / float(config.target_tokens)


def within_joint_caps(schedule: "Schedule", tokens_per_domain: np.ndarray, config: SamplerConfig) -> bool:
    """Whether ``schedule``'s token shares over all phases keep every domain's epoch cap of the whole run."""
    upper = joint_upper(tokens_per_domain, config)
    return upper is None or bool(np.all(schedule.overall().as_array() <= upper + BOUND_TOLERANCE))


__all__ = ["BOUND_TOLERANCE", "as_tokens", "bounds_with_sources", "domain_caps", "phase_config", "feature_bounds",
           "joint_upper", "within_joint_caps"]
