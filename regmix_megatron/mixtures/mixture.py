"""The mixture value type, and the files that hold mixtures.

A mixture is a frozen value: domain names in canonical (sorted) order, float64 weights >= 0 that sum to 1,
and a stable content hash (:func:`regmix_megatron.hashing.content_hash` of :meth:`Mixture.canonical_json`).
"Weight" always means the fraction of *training tokens* drawn from a domain.

Files: one mixture as JSON or YAML (:meth:`Mixture.save` / :meth:`Mixture.load`), and many as JSONL
(:func:`write_mixtures` / :func:`read_mixtures`), one :meth:`Mixture.to_json_obj` a line::

    {"format": "regmix-megatron/mixture/v1", "hash": "<16 hex>", "weights": {"code": 0.25, ...}}

Readers refuse a domain listed twice in one mixture (the strict readers of :mod:`regmix_megatron.fileio`, as for
every file and inline mapping we read), a stated hash that does not match the weights (an edited file), and, in
JSONL, a mixture listed twice. A JSONL line may also be a plain mapping domain -> weight.

The one rule for every mixture a user gives (a mixture file, a JSONL line, an inline mapping, a row of a results
table or of a RegMix CSV, a baseline): the weights sum to 1 within :data:`SUM_TOLERANCE`, and are then
renormalized exactly; any other sum is an error naming the source, unless the user asked to rescale on purpose
(``--renormalize`` in every command that reads mixtures, ``--regmix-renormalize`` in the dataset provider):
:func:`check_sum`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..hashing import canonical_json, content_hash

#: Weights may sum to 1 +/- this before normalization is refused (loose rounding in hand-written files).
SUM_TOLERANCE = 1e-3
#: The flag that rescales a mixture whose weights do not sum to 1, on purpose (the same in every command).
RENORMALIZE_FLAG = "--renormalize"
#: A stored mixture sums to 1 within this (float64 rounding); weights this close are never rescaled, so
#: reading a mixture back gives bit-identical weights and the same hash.
EXACT_TOLERANCE = 1e-9


class MixtureError(DataError):
    """An invalid mixture (negative/NaN weights, unknown or duplicate domains, bad sum)."""


@dataclass(frozen=True)
class Mixture:
    """Fractions of training tokens per domain. Build with :meth:`from_dict` or :meth:`from_array`."""

    domains: tuple[str, ...]
    weights: tuple[float, ...]
    _hash: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.domains) != len(self.weights):
            raise MixtureError(f"{len(self.domains)} domains but {len(self.weights)} weights")
        if len(set(self.domains)) != len(self.domains):
            dup = sorted({d for d in self.domains if self.domains.count(d) > 1})
            raise MixtureError(f"duplicate domain(s) {dup}: list each domain once")
        if list(self.domains) != sorted(self.domains):
            raise MixtureError("domains must be in canonical (sorted) order: build with Mixture.from_dict")
        w = np.asarray(self.weights, dtype=np.float64)
        if w.size == 0:
            raise MixtureError("a mixture needs at least one domain")
        if not np.all(np.isfinite(w)):
            bad = [d for d, x in zip(self.domains, w) if not math.isfinite(x)]
            raise MixtureError(f"weight of {bad} is NaN or infinite: give finite weights")
        if np.any(w < 0):
            bad = {d: x for d, x in zip(self.domains, self.weights) if x < 0}
            raise MixtureError(f"negative weight(s) {bad}: weights are token fractions, use values >= 0")
        if abs(w.sum() - 1.0) > EXACT_TOLERANCE:
            raise MixtureError(f"weights sum to {w.sum()!r}, not 1: build with Mixture.from_dict or from_array")
        object.__setattr__(self, "_hash", content_hash(self.canonical_json()))

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def from_dict(
        cls,
        weights: Mapping[str, float],
        *,
        renormalize: bool = False,
        source: str = "mixture",
        flag: str = RENORMALIZE_FLAG,
    ) -> "Mixture":
        """Validate and canonicalize. The sum must be within :data:`SUM_TOLERANCE` of 1 unless ``renormalize``
        (the user's ``flag``: any positive sum is then rescaled); the result is renormalized exactly."""
        if not isinstance(weights, Mapping) or not weights:
            raise MixtureError(f"{source}: expected a non-empty mapping domain -> weight")
        items = []
        for name, value in weights.items():
            if not isinstance(name, str) or not name:
                raise MixtureError(f"{source}: domain name {name!r} must be a non-empty string")
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise MixtureError(f"{source}: weight of {name!r} is {value!r}, not a number") from None
            if not math.isfinite(x):
                raise MixtureError(f"{source}: weight of {name!r} is {value!r}: give a finite number")
            if x < 0:
                raise MixtureError(f"{source}: weight of {name!r} is {x} < 0: weights must be >= 0")
            items.append((name, x))
        items.sort()
        names = tuple(n for n, _ in items)
        w = np.array([x for _, x in items], dtype=np.float64)
        total = float(w.sum())
        if total <= 0:
            raise MixtureError(f"{source}: all weights are zero: give at least one positive weight")
        check_sum(total, source, renormalize=renormalize, flag=flag)
        return cls.from_array(names, w, source=source)

    @classmethod
    def from_array(cls, domains: Sequence[str], weights: Iterable[float], *, source: str = "mixture") -> "Mixture":
        """From parallel sequences (any domain order); weights are renormalized exactly."""
        w = np.asarray(list(weights), dtype=np.float64)
        domains = tuple(domains)
        if w.shape != (len(domains),):
            raise MixtureError(f"{source}: {len(domains)} domains but weights of shape {w.shape}")
        if len(set(domains)) != len(domains):
            dup = sorted({d for d in domains if domains.count(d) > 1})
            raise MixtureError(f"{source}: duplicate domain(s) {dup}: list each domain once")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise MixtureError(f"{source}: weights must be finite, >= 0 and not all zero; got {w.tolist()}")
        order = np.argsort(np.array(domains, dtype=object), kind="stable")
        names = tuple(domains[i] for i in order)
        w = w[order]
        w = normalize_exact(w)
        return cls(names, tuple(float(x) for x in w))

    # ---- views --------------------------------------------------------------------------------------
    @property
    def hash(self) -> str:
        """Stable 16-hex content hash of the canonical JSON form."""
        return self._hash

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.domains, self.weights))

    def as_array(self, domains: Sequence[str] | None = None) -> np.ndarray:
        """Weights as float64 in ``domains`` order (default: canonical). Unknown domains raise; domains
        of ``domains`` absent from this mixture get weight 0 only if listed there explicitly."""
        if domains is None:
            return np.asarray(self.weights, dtype=np.float64)
        d = self.as_dict()
        extra = sorted(set(d) - set(domains))
        if extra:
            raise MixtureError(f"mixture has domain(s) {extra} that are not in {list(domains)}")
        return np.array([d.get(n, 0.0) for n in domains], dtype=np.float64)

    def nonzero(self) -> dict[str, float]:
        """Domains with weight > 0 (Megatron's BlendedDataset asserts every weight > 0)."""
        return {n: w for n, w in zip(self.domains, self.weights) if w > 0}

    def canonical_json(self) -> str:
        """``{"domains": [...], "weights": ["repr", ...]}`` as canonical JSON: ``repr(float)`` round-trips
        exactly and the domains are sorted, so equal mixtures give equal text (and :attr:`hash`)."""
        return canonical_json({"domains": list(self.domains), "weights": [repr(w) for w in self.weights]})

    def restrict(self, domains: Sequence[str]) -> "Mixture":
        """The same mixture expressed over ``domains`` (a superset): missing domains get weight 0."""
        return Mixture.from_array(list(domains), self.as_array(domains))

    # ---- files --------------------------------------------------------------------------------------
    def to_json_obj(self) -> dict:
        return {"format": "regmix-megatron/mixture/v1", "hash": self.hash, "weights": self.as_dict()}

    def save(self, path: str | Path) -> Path:
        """Write JSON (``.json``) or YAML (``.yaml``/``.yml``) atomically."""
        from ..fileio import atomic_write_json, atomic_write_yaml

        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            return atomic_write_yaml(path, self.to_json_obj())
        return atomic_write_json(path, self.to_json_obj())

    @classmethod
    def load(cls, path: str | Path, *, renormalize: bool = False, flag: str = RENORMALIZE_FLAG) -> "Mixture":
        """Read a mixture file: ``{"weights": {...}}`` or a plain mapping domain -> weight (JSON or YAML)."""
        from ..fileio import read_json, read_yaml

        path = Path(path)
        obj = read_yaml(path) if path.suffix in (".yaml", ".yml") else read_json(path)  # refuses a key given twice
        if isinstance(obj, Mapping) and "weights" in obj:
            obj = obj["weights"]
        if not isinstance(obj, Mapping):
            raise DataError(f"{path}: expected a mapping of domain -> weight (or {{'weights': {{...}}}})")
        return cls.from_dict(obj, renormalize=renormalize, source=str(path), flag=flag)


def check_sum(total: float, source: str, *, renormalize: bool = False, flag: str = RENORMALIZE_FLAG) -> None:
    """The one rule: mixture weights sum to 1 within :data:`SUM_TOLERANCE`, unless the user passed ``flag``."""
    if not renormalize and abs(total - 1.0) > SUM_TOLERANCE * (1 + 1e-9):  # 0.999 written in decimal is within
        raise MixtureError(f"{source}: weights sum to {total:.6g}, more than {SUM_TOLERANCE:g} away from 1: fix "
                           f"the weights, or pass {flag} to rescale them to sum to 1 on purpose")


def no_duplicate_keys(where: str):
    """A ``json.loads`` ``object_pairs_hook`` that refuses a domain listed twice (json keeps the last silently):
    :func:`regmix_megatron.fileio.no_duplicate_keys`, the strict reader's hook, raising :class:`MixtureError`."""
    from ..fileio import no_duplicate_keys as strict

    hook = strict(where)

    def mixture_hook(pairs):
        try:
            return hook(pairs)
        except DataError as exc:
            raise MixtureError(str(exc).replace(f"{where}: ", f"{where}: domain(s) ", 1)) from None

    return mixture_hook


# ---- JSONL: many mixtures, one a line ------------------------------------------------------------------------
def write_mixtures(path: str | Path, mixtures: Iterable[Mixture]) -> Path:
    """Write ``mixtures`` as JSONL (:meth:`Mixture.to_json_obj` per line), atomically."""
    from ..fileio import atomic_write_text

    return atomic_write_text(Path(path), "".join(json.dumps(m.to_json_obj()) + "\n" for m in mixtures))


def iter_mixture_lines(path: str | Path, *, renormalize: bool = False,
                       flag: str = RENORMALIZE_FLAG) -> Iterator[tuple[int, Mixture]]:
    """``(line number, mixture)`` for each non-blank line of a mixtures JSONL file, each line checked (valid
    JSON, no domain listed twice, weights summing to 1 unless ``renormalize``, a stated hash matching the
    weights)."""
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: mixtures file not found; create it with `regmix-megatron sample`") from None
    except OSError as exc:  # a directory, no permission
        raise DataError(f"{path}: cannot be read as a mixtures file ({exc.strerror})") from None
    with fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    yield lineno, _mixture_of_line(line, f"{path}:{lineno}", renormalize, flag)
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not a text file (byte {exc.start} of a line is not UTF-8): is it the "
                            "mixtures JSONL?") from None


def _mixture_of_line(line: str, where: str, renormalize: bool = False, flag: str = RENORMALIZE_FLAG) -> Mixture:
    try:
        obj = json.loads(line, object_pairs_hook=no_duplicate_keys(where))
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: invalid JSON ({exc.msg}); expected one mixture per line") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object (a mixture), got {type(obj).__name__}")
    weights = obj["weights"] if "weights" in obj else {k: v for k, v in obj.items() if k not in ("hash", "format")}
    mixture = Mixture.from_dict(weights, source=where, renormalize=renormalize, flag=flag)
    stated = obj.get("hash")
    if stated is not None and stated != mixture.hash:
        raise DataError(f"{where}: stated hash {stated} does not match the weights (hash {mixture.hash}); "
                        "the line was edited: re-create the file with `regmix-megatron sample`")
    return mixture


def read_mixtures(path: str | Path, *, renormalize: bool = False, flag: str = RENORMALIZE_FLAG) -> list[Mixture]:
    """Every mixture of a JSONL file (see the module docstring); a mixture listed twice is refused."""
    mixtures: list[Mixture] = []
    first_line: dict[str, int] = {}
    for lineno, mixture in iter_mixture_lines(path, renormalize=renormalize, flag=flag):
        if mixture.hash in first_line:
            raise DataError(f"{path}:{lineno}: the same mixture as line {first_line[mixture.hash]} (hash "
                            f"{mixture.hash}); list each mixture once")
        first_line[mixture.hash] = lineno
        mixtures.append(mixture)
    if not mixtures:
        raise DataError(f"{path}: no mixtures in the file")
    return mixtures


def read_mixture_at(path: str | Path, index: int, *, renormalize: bool = False,
                    flag: str = RENORMALIZE_FLAG) -> Mixture:
    """Mixture number ``index`` (0-based, blank lines skipped) of a mixtures JSONL file; the lines after it are
    not read."""
    num = 0
    for num, (_, mixture) in enumerate(iter_mixture_lines(path, renormalize=renormalize, flag=flag), start=1):
        if num - 1 == index:
            return mixture
    raise DataError(f"{path}: has no mixture {index} (0-based); it holds {num} mixtures")


def normalize_exact(w: np.ndarray) -> np.ndarray:
    """Divide by the sum; then put any residual rounding error on the largest weight so the sum is 1.0.

    Idempotent: weights already summing to 1 within ``EXACT_TOLERANCE`` are returned unchanged (a copy), so a
    mixture read back from its file keeps its exact weights and hash.
    """
    w = np.array(w, dtype=np.float64)
    if abs(w.sum() - 1.0) <= EXACT_TOLERANCE:
        return w
    w = w / w.sum()
    residual = 1.0 - w.sum()
    if residual != 0.0:
        i = int(np.argmax(w))
        w = w.copy()
        w[i] += residual
    return w
