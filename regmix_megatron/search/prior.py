"""What a search reads besides the model: the prior its pool is drawn around.

:func:`load_prior` reads exactly one of a ``domains.json`` (exact token counts, and the registry the export is
written from), a mapping domain -> training tokens, or a file of token shares such as a RegMix config
(:func:`load_weights_file`, :func:`tokens_from_mapping`).

Pure core: numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..fileio import read_json, read_yaml
from ..mixtures.mixture import Mixture

#: Scale applied to a prior given as fractions, so it can stand in for token counts (share-based caps only).
PRIOR_TOKEN_SCALE = 1e12


@dataclass(frozen=True)
class SearchPrior:
    """What the search pool is drawn around: train tokens per domain (the regressor's order) and the natural
    mixture, from one of three sources."""

    tokens: np.ndarray
    mixture: Mixture
    registry: Any = None
    """The :class:`~regmix_megatron.data.manifest.DomainRegistry` when read from ``domains.json`` (enables export)."""
    shares_only: bool = False
    """The tokens are token shares scaled by :data:`PRIOR_TOKEN_SCALE`: epoch caps cannot be computed."""


def load_prior(domains: Sequence[str], *, domains_json: str | None = None, tokens_file: str | None = None,
               prior_file: str | None = None) -> SearchPrior:
    """The prior from exactly one of: a ``domains.json`` (exact token counts), a mapping domain -> training
    tokens, or a mixture file of token shares (e.g. a RegMix config)."""
    from ..data.manifest import DomainRegistry

    domains = list(domains)
    if domains_json:
        registry = DomainRegistry.load(domains_json)
        registry.verify_files(full=False)  # its counts set the prior and the caps, and the result is exported from it
        return SearchPrior(registry.tokens_per_domain("train").astype("float64"),
                           Mixture.from_array(registry.names, registry.prior("train")), registry)
    if tokens_file:
        tokens = tokens_from_mapping(load_weights_file(tokens_file, "--tokens-per-domain"), domains,
                                     f"--tokens-per-domain {tokens_file}")
        return SearchPrior(tokens, Mixture.from_array(domains, tokens))
    shares = tokens_from_mapping(load_weights_file(prior_file, "--prior"), domains, f"--prior {prior_file}")
    tokens = shares / shares.sum() * PRIOR_TOKEN_SCALE
    return SearchPrior(tokens, Mixture.from_array(domains, tokens), shares_only=True)


def load_weights_file(path: str | Path, what: str = "prior") -> dict[str, float]:
    """A mapping domain -> number from JSON/YAML: a mixture file (``{"weights": {...}}`` or a plain mapping), a
    RegMix config (``{"train": {"train_the_pile_x": w}}``), or token counts. RegMix ``train_the_pile_`` /
    ``train_`` prefixes are stripped. No normalization here."""
    from ..regression.data import regmix_domain

    path = Path(path)
    obj = read_yaml(path) if path.suffix in (".yaml", ".yml") else read_json(path)
    if isinstance(obj, Mapping):
        for key in ("weights", "train", "tokens_per_domain"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise DataError(f"{what} {path}: expected a mapping domain -> number (or {{'weights': {{...}}}})")
    out: dict[str, float] = {}
    for key, value in obj.items():
        name = regmix_domain(str(key)) or str(key)
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{what} {path}: value of {key!r} is {value!r}, not a number") from None
        if not math.isfinite(x) or x < 0:
            raise DataError(f"{what} {path}: value of {key!r} is {value!r}: use a finite number >= 0")
        if name in out:
            raise DataError(f"{what} {path}: domain {name!r} listed twice")
        out[name] = x
    return out


def tokens_from_mapping(values: Mapping[str, float], domains: Sequence[str], source: str,
                        scale: float = 1.0) -> np.ndarray:
    """Token counts (float64) over ``domains`` from a mapping; names must match exactly."""
    missing = sorted(set(domains) - set(values))
    unknown = sorted(set(values) - set(domains))
    if missing or unknown:
        raise DataError(f"{source}: domains do not match the model's: missing {missing}, unknown {unknown}; "
                        f"give a value for each of {list(domains)}")
    t = np.array([values[d] for d in domains], dtype=np.float64) * scale
    if t.sum() <= 0:
        raise DataError(f"{source}: all values are zero")
    return t


__all__ = ["PRIOR_TOKEN_SCALE", "SearchPrior", "load_prior", "load_weights_file", "tokens_from_mapping"]
