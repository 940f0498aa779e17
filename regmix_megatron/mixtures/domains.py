"""The one check a mixture or schedule passes before it trains: over exactly a registry's training domains.

:func:`check_trainable` takes a :class:`~regmix_megatron.mixtures.schedule.Schedule` (every phase checked) or a
:class:`~regmix_megatron.mixtures.mixture.Mixture` (the one phase of a static run): a positive weight on an
evaluation-only domain is refused, a zero weight there is dropped, and the rest must be exactly the training
domains of the :class:`~regmix_megatron.data.manifest.DomainRegistry`. Errors name the source (and the phase of a
schedule of several phases) and the fix.

Pure core: the registry and the value types.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar, Union

from ..errors import DataError
from .mixture import Mixture
from .schedule import Schedule

if TYPE_CHECKING:
    from ..data.manifest import DomainRegistry

Trainable = TypeVar("Trainable", bound=Union[Mixture, Schedule])


def check_trainable(registry: "DomainRegistry", value: Trainable, source: str) -> Trainable:
    """``value`` (a mixture, or a schedule) over the registry's training domains; returned unchanged when it named
    no evaluation-only domain. A schedule's phases are checked one by one (``"<source> phase <k>"`` in errors when
    it has several)."""
    if isinstance(value, Mixture):
        return _check_phase(registry, value, source)
    phases = tuple(replace(p, mixture=_check_phase(registry, p.mixture,
                                                   source if value.is_static else f"{source} phase {k}"))
                   for k, p in enumerate(value.phases, start=1))
    if all(a.mixture is b.mixture for a, b in zip(phases, value.phases)):
        return value
    return replace(value, phases=phases, _hash="")


def _check_phase(registry: "DomainRegistry", mixture: Mixture, source: str) -> Mixture:
    weights = mixture.as_dict()
    trained = sorted(d for d in registry.eval_only_names if weights.get(d, 0.0) > 0)
    if trained:
        raise DataError(f"{source}: gives weight to evaluation-only domain(s) "
                        f"{ {d: weights[d] for d in trained} } of {registry.path or 'the manifest'}: they are "
                        f"evaluated, never trained on; give them weight 0 or drop them")
    if any(d in weights for d in registry.eval_only_names):
        kept = {d: w for d, w in weights.items() if d not in set(registry.eval_only_names)}
        mixture = Mixture.from_dict(kept, source=source)
    registry.check_domains(mixture.domains, source)
    return mixture


__all__ = ["check_trainable"]
