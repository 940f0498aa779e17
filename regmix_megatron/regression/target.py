"""The optimization target: what a mixture is optimized for, as one value type.

A :class:`Target` is one of three kinds:

- ``average``: the mean validation loss over every evaluated domain present (in a run's ``val_loss``, or among
  the loss columns of a results table);
- a domain name, e.g. ``literature``: that domain's validation loss (the "held-out" target, as Pile-CC in the
  paper);
- a mapping of evaluated domains to positive weights, e.g. ``{qa: 0.7, reference: 0.3}``: the weighted sum of
  their validation losses. Weights are normalized exactly (they sum to 1.0); a mapping with one domain is that
  domain's target.

Parse any of the three forms with :meth:`Target.parse` (config values, JSON); :meth:`Target.to_json` gives the
same forms back (canonical: weights normalized, domains sorted), so ``Target.parse(t.to_json()) == t``. A target
knows its display :attr:`~Target.label`, its :attr:`~Target.column` in a results table, the domains it
:attr:`~Target.needs`, and its :meth:`~Target.value` from a run's per-domain losses.

One arithmetic for every caller: :meth:`Target.value` sums with ``math.fsum`` (correctly rounded, independent of
the order of the domains), and :meth:`Target.values` applies the same function to each row of a table, so a
run's target loss is the same float whether it is computed from its ``result.json`` or from the results table.
A non-finite loss makes the target value NaN (such runs are excluded from fits).

Pure core: the standard library and numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, DataError, RegmixError
from ..runs.results import LOSS_PREFIX, loss_column

#: The config value meaning "the mean validation loss over every evaluated domain".
AVERAGE = "average"
#: Kinds of target.
KIND_AVERAGE, KIND_DOMAIN, KIND_WEIGHTED = "average", "domain", "weighted"
#: Column names of the derived targets (a domain target's column is the results table's ``val_loss/<domain>``).
AVERAGE_COLUMN = "average_val_loss"
WEIGHTED_COLUMN = "combined_val_loss"


@dataclass(frozen=True)
class Target:
    """An optimization target. Build with :meth:`parse`, :meth:`average`, :meth:`domain` or :meth:`weighted`."""

    kind: str
    weights: tuple[tuple[str, float], ...] = ()
    """``(domain, weight)`` pairs, domains sorted, weights summing to exactly 1; empty for ``average``."""

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def average(cls) -> "Target":
        return cls(KIND_AVERAGE)

    @classmethod
    def domain(cls, name: str, *, where: str = "target") -> "Target":
        _check_domain_name(name, where)
        return cls(KIND_DOMAIN, ((name, 1.0),))

    @classmethod
    def weighted(cls, weights: Mapping[str, Any], *, where: str = "target") -> "Target":
        """Weighted sum of domains' losses; weights must be positive numbers, normalized exactly here."""
        if not isinstance(weights, Mapping) or not weights:
            raise ConfigError(f"{where}={weights!r} is invalid: give a non-empty mapping of domain -> weight, "
                              "e.g. {qa: 0.7, reference: 0.3}")
        items = []
        for name, value in weights.items():
            _check_domain_name(name, where)
            ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
            if not ok or not math.isfinite(float(value)) or float(value) <= 0:
                raise ConfigError(f"{where}.{name}={value!r} is invalid: give a positive number (a domain with "
                                  "weight 0 is left out of the mapping)")
            items.append((str(name), float(value)))
        items.sort()
        if len(items) == 1:
            return cls(KIND_DOMAIN, ((items[0][0], 1.0),))
        from ..mixtures.mixture import normalize_exact

        exact = normalize_exact(np.array([w for _, w in items], dtype=np.float64))
        return cls(KIND_WEIGHTED, tuple((d, float(w)) for (d, _), w in zip(items, exact)))

    @classmethod
    def parse(cls, value: Any, *, where: str = "target") -> "Target":
        """``"average"``, a domain name, or a mapping domain -> positive weight (also a :class:`Target`).

        ``where`` names the field or flag in errors (e.g. ``PipelineConfig.target``)."""
        if isinstance(value, Target):
            return value
        if isinstance(value, str):
            return cls.average() if value == AVERAGE else cls.domain(value, where=where)
        if isinstance(value, Mapping):
            return cls.weighted(value, where=where)
        raise ConfigError(f"{where}={value!r} is invalid: use '{AVERAGE}', a domain name, or a mapping of domains "
                          "to positive weights (e.g. {qa: 0.7, reference: 0.3})")

    @classmethod
    def from_json(cls, obj: Any) -> "Target":
        """Inverse of :meth:`to_json`."""
        return cls.parse(obj, where="target")

    @classmethod
    def from_field(cls, field: Any) -> "Target":
        """The target a file records in ``field`` (a :class:`~regmix_megatron.configs.Field`, in :meth:`to_json`'s
        form); a bad one raises a :class:`DataError` naming the file, the field and the fix."""
        try:
            return cls.from_json(field.value)
        except RegmixError as exc:
            raise DataError(f"{field.where}: field {field.path!r}: {exc}; {field.fix}") from None

    @classmethod
    def from_column(cls, column: str) -> "Target | None":
        """The target whose :attr:`column` is ``column``, or None (a weighted column does not name its weights)."""
        if column == AVERAGE_COLUMN:
            return cls.average()
        if column.startswith(LOSS_PREFIX) and len(column) > len(LOSS_PREFIX):
            return cls.domain(column[len(LOSS_PREFIX):])
        return None

    # ---- views --------------------------------------------------------------------------------------
    @property
    def needs(self) -> tuple[str, ...]:
        """The domains whose losses this target needs (``()`` for ``average``: every domain present, >= 1)."""
        return tuple(d for d, _ in self.weights)

    @property
    def single_domain(self) -> str | None:
        """The domain of a one-domain target, else None (the ``target_only`` baseline needs one)."""
        return self.weights[0][0] if self.kind == KIND_DOMAIN else None

    @property
    def label(self) -> str:
        """For people: ``average``, ``literature``, ``0.7 qa + 0.3 reference``."""
        if self.kind == KIND_AVERAGE:
            return AVERAGE
        if self.kind == KIND_DOMAIN:
            return self.weights[0][0]
        return " + ".join(f"{w:.3g} {d}" for d, w in self.weights)

    @property
    def column(self) -> str:
        """Its column in a results table: ``val_loss/<domain>``, or the derived ``average_val_loss`` /
        ``combined_val_loss``."""
        if self.kind == KIND_AVERAGE:
            return AVERAGE_COLUMN
        if self.kind == KIND_DOMAIN:
            return loss_column(self.weights[0][0])
        return WEIGHTED_COLUMN

    def to_json(self) -> str | dict[str, float]:
        """``"average"``, the domain name, or ``{domain: weight}`` (sorted, normalized)."""
        if self.kind == KIND_AVERAGE:
            return AVERAGE
        if self.kind == KIND_DOMAIN:
            return self.weights[0][0]
        return dict(self.weights)

    def __str__(self) -> str:
        return self.label

    # ---- checks and values --------------------------------------------------------------------------
    def check_domains(self, domains: Sequence[str], *, where: str = "target") -> None:
        """Raise :class:`ConfigError` naming ``where`` when a needed domain is not among ``domains``."""
        missing = [d for d in self.needs if d not in domains]
        if missing:
            raise ConfigError(f"{where}={self.to_json()!r} is invalid: {missing} not among the domains "
                              f"{list(domains)}; use '{AVERAGE}' or name evaluated domains")

    def value(self, losses: Mapping[str, Any], *, where: str = "run") -> float:
        """The target from one run's per-domain validation losses (``result.json``'s ``val_loss``)."""
        if self.kind == KIND_AVERAGE:
            if not losses:
                raise DataError(f"{where}: no per-domain validation loss to average")
            return _mean([float(x) for x in losses.values()])
        missing = [d for d in self.needs if d not in losses]
        if missing:
            what = "target domain" if self.kind == KIND_DOMAIN else "target domain(s)"
            shown = repr(missing[0]) if self.kind == KIND_DOMAIN else str(missing)
            raise DataError(f"{where}: no validation loss for {what} {shown}; it has {sorted(losses)}")
        if self.kind == KIND_DOMAIN:
            return float(losses[self.weights[0][0]])
        return _weighted_sum([float(losses[d]) for d, _ in self.weights], [w for _, w in self.weights])

    def values(self, losses: Mapping[str, np.ndarray], *, where: str = "table") -> np.ndarray:
        """The target of each row of a table, from per-domain loss columns ``{domain: array}``; row by row
        with :meth:`value`'s arithmetic, so each row gets exactly the value its run would."""
        if not losses:
            raise DataError(f"{where}: no per-domain validation loss columns")
        domains = list(losses) if self.kind == KIND_AVERAGE else list(self.needs)
        missing = [d for d in domains if d not in losses]
        if missing:
            raise DataError(f"{where}: no validation loss column for target domain(s) {missing}; it has "
                            f"{sorted(losses)}")
        matrix = np.column_stack([np.asarray(losses[d], dtype=np.float64) for d in domains])
        return np.array([self.value(dict(zip(domains, row)), where=where) for row in matrix.tolist()],
                        dtype=np.float64).reshape(matrix.shape[0])


def _check_domain_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: domain name {name!r} is invalid: use a non-empty string")
    if name == AVERAGE:
        raise ConfigError(f"{where}: {AVERAGE!r} is the average target, not a domain: use it alone, not in a "
                          "mapping of weights")


def _mean(values: Sequence[float]) -> float:
    if not all(math.isfinite(x) for x in values):
        return math.nan
    return math.fsum(values) / len(values)


def _weighted_sum(values: Sequence[float], weights: Sequence[float]) -> float:
    if not all(math.isfinite(x) for x in values):
        return math.nan
    return math.fsum(w * x for w, x in zip(weights, values))
