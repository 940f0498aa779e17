"""What a search result is compared with: the natural mixture (token prior), uniform, the target domain alone,
and any mixture files the user gives (:func:`baseline_mixtures`).

Pure core.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import DataError, RegmixError
from ..mixtures.mixture import Mixture
from ..regression.target import Target


def baseline_mixtures(source: Any, target: Target | None = None,
                      extra: Mapping[str, Mixture] | None = None) -> dict[str, Mixture]:
    """``natural`` (token prior), ``uniform``, ``target_only`` (when ``target`` is one training domain's; a
    held-out, evaluation-only target domain has none) and ``extra``.

    ``source`` is a :class:`~regmix_megatron.data.manifest.DomainRegistry` (prior from exact train token counts) or a
    prior :class:`Mixture`.
    """
    if isinstance(source, Mixture):
        prior = source
    else:
        prior = Mixture.from_array(source.names, source.prior("train"))
    domains = list(prior.domains)
    out = {"natural": prior, "uniform": Mixture.from_array(domains, np.ones(len(domains)))}
    target_domain = target.single_domain if target is not None else None
    if target_domain is not None and target_domain in domains:
        out["target_only"] = Mixture.from_array(domains, [1.0 if d == target_domain else 0.0 for d in domains])
    for name, m in (extra or {}).items():
        if name in out:
            raise RegmixError(f"baseline name {name!r} clashes with a built-in baseline; rename the file")
        out[name] = m.restrict(domains) if set(m.domains) <= set(domains) else _refuse_domains(m, domains, name)
    return out


def _refuse_domains(m: Mixture, domains: Sequence[str], name: str) -> Mixture:
    extra = sorted(set(m.domains) - set(domains))
    raise DataError(f"baseline mixture {name!r} has domain(s) {extra} unknown to the model ({list(domains)}); "
                    "use a mixture over the model's domains")


__all__ = ["baseline_mixtures"]
