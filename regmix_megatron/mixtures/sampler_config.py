"""The RegMix sampler's config (:class:`SamplerConfig`) and the one way it is assembled (:func:`build_sampler_config`).

Defaults are the method's (RegMix, arXiv 2407.01492; ``../shared/notes/regmix-method.md``); what each knob does to
the draws is :mod:`regmix_megatron.mixtures.sampler`, the bounds it sets are :mod:`regmix_megatron.mixtures.caps`.
Errors name the field, the value and the fix (:class:`~regmix_megatron.errors.ConfigError`).

Pure core: numpy.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Mapping

import numpy as np

from ..configs import check, config_to_dict, load_config
from ..errors import ConfigError

if TYPE_CHECKING:
    from .sampler import SampleStats

#: The config section (and error prefix) of the sampler's fields.
SECTION = "sampler"


@dataclass
class SamplerConfig:
    """Knobs of the RegMix sampler. Defaults are the method's (RegMix, arXiv 2407.01492)."""

    num_samples: int = 512
    """How many distinct mixtures (or schedules) the sweep draws (exactly this many, or it raises)."""
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
        c(is_integer(self.num_samples) and self.num_samples > 0, SECTION, "num_samples",
          self.num_samples, "use a positive integer (the method uses 512)")
        c(is_integer(self.seed) and self.seed >= 0, SECTION,
          "seed", self.seed, "use a non-negative integer")
        c(is_finite(self.temperature) and 0 <= self.temperature <= 10, SECTION, "temperature",
          self.temperature, "use a number in [0, 10] (the method uses 0.5)")
        c(is_finite(self.strength_min) and self.strength_min > 0, SECTION, "strength_min", self.strength_min,
          "use a positive number (the method uses 0.1)")
        c(is_finite(self.strength_max) and self.strength_max >= self.strength_min, SECTION, "strength_max",
          self.strength_max, f"use a number >= strength_min={self.strength_min} (the method uses 5.0)")
        c(is_integer(self.num_strengths) and self.num_strengths >= 1, SECTION, "num_strengths",
          self.num_strengths, "use a positive integer (the method uses 15)")
        c(is_finite(self.min_weight) and 0 <= self.min_weight < 1, SECTION, "min_weight", self.min_weight,
          "use a number in [0, 1) (the method uses 2e-4)")
        if self.cap_multiplier is not None:
            c(is_finite(self.cap_multiplier) and self.cap_multiplier > 0, SECTION, "cap_multiplier",
              self.cap_multiplier, "use a positive number (the method uses 15) or null to disable the cap")
        if (self.max_epochs is None) != (self.target_tokens is None):
            given = "max_epochs" if self.max_epochs is not None else "target_tokens"
            missing = "target_tokens" if given == "max_epochs" else "max_epochs"
            c(False, SECTION, missing, None,
              f"{given} is set, so give {missing} too (the epoch cap needs both) or remove {given}")
        if self.max_epochs is not None:
            c(is_finite(self.max_epochs) and self.max_epochs > 0, SECTION, "max_epochs", self.max_epochs,
              "use a positive number of epochs (e.g. 1.5)")
            c(is_finite(self.target_tokens) and self.target_tokens > 0, SECTION, "target_tokens",
              self.target_tokens, "use a positive token count (the token budget of the target run)")
        for name in ("min_weights", "max_weights"):
            bounds = getattr(self, name)
            c(isinstance(bounds, Mapping), SECTION, name, bounds, "give a mapping domain -> weight")
            for domain, value in bounds.items():
                ok = is_finite(value)
                c(ok and 0 <= value <= 1, SECTION, f"{name}[{domain!r}]", value, "use a weight in [0, 1]")
            object.__setattr__(self, name, {str(k): float(v) for k, v in bounds.items()})
        for domain, value in self.min_weights.items():
            c(value == 0 or value >= self.min_weight, SECTION, f"min_weights[{domain!r}]", value,
              f"a lower bound must be 0 or >= min_weight={self.min_weight} (smaller weights are zeroed)")
            if domain in self.max_weights:
                c(self.max_weights[domain] >= value, SECTION, f"max_weights[{domain!r}]",
                  self.max_weights[domain], f"must be >= min_weights[{domain!r}]={value}")
        c(is_finite(self.dedup_min_distance) and self.dedup_min_distance >= 0, SECTION, "dedup_min_distance",
          self.dedup_min_distance, "use a non-negative distance (e.g. 1e-3)")
        c(self.dedup_metric in ("l1", "linf"), SECTION, "dedup_metric", self.dedup_metric,
          'use "l1" or "linf"')
        c(is_integer(self.max_rounds) and self.max_rounds >= 1, SECTION, "max_rounds", self.max_rounds,
          "use a positive integer")
        c(self.fallback in ("project", "raise"), SECTION, "fallback", self.fallback,
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
                       stats: "SampleStats", num_mixtures: int, output) -> dict:
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


def is_integer(x) -> bool:
    """An integer, not a bool."""
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def is_finite(x) -> bool:
    """A finite real number, not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)) and math.isfinite(x)
