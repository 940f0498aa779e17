"""The schedule value type: ordered phases of a run, each a share of its training tokens with its own mixture.

A schedule is a frozen value: phases in training order, each a ``fraction`` of the run's training tokens (> 0;
the fractions sum to exactly 1) and a :class:`~regmix_megatron.mixtures.mixture.Mixture` over the same domains. A static
mixture is a one-phase schedule (:meth:`Schedule.from_mixture`) and has the mixture's hash; a schedule of several
phases hashes :meth:`Schedule.canonical_json` (fractions as ``repr``, each phase's mixture hash).

Files: one schedule as JSON or YAML (:meth:`Schedule.save` / :func:`load_schedule`), many as JSONL
(:func:`write_schedules` / :func:`read_schedules`), one :meth:`Schedule.to_json_obj` a line::

    {"format": "regmix-megatron/schedule/v1", "hash": "<16 hex>",
     "phases": [{"fraction": 0.8, "weights": {"code": 0.25, ...}}, {"fraction": 0.2, "weights": {...}}]}

:func:`load_schedule` also reads a mixture file as a one-phase schedule. Readers refuse a stated hash that does not
match, fractions that are not positive or do not sum to 1, and phases over different domains, naming the fix.

Derived here (pure): where the phases start in a run of ``N`` samples (:func:`phase_starts`), a domain's tokens
over all phases (:meth:`Schedule.tokens_per_domain`), and the regression features of a schedule (the phase weights
scaled by the phase fractions, :func:`feature_names` / :meth:`Schedule.features`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..hashing import canonical_json, content_hash
from .mixture import EXACT_TOLERANCE, Mixture, MixtureError, no_duplicate_keys, normalize_exact, read_mixtures

FORMAT = "regmix-megatron/schedule/v1"
#: A file's fractions may sum to 1 +/- this before they are refused (rescaled exactly otherwise).
FRACTION_TOLERANCE = 1e-6
#: The most phases a schedule may have (feature names carry the phase number).
MAX_PHASES = 99


class ScheduleError(DataError):
    """An invalid schedule (fractions, phases, domains)."""


@dataclass(frozen=True)
class Phase:
    """One phase: ``fraction`` of the run's training tokens, drawn with ``mixture``."""

    fraction: float
    mixture: Mixture


@dataclass(frozen=True)
class Schedule:
    """Phases in training order. Build with :meth:`from_phases`, :meth:`from_mixture` or :meth:`from_obj`."""

    phases: tuple[Phase, ...]
    _hash: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.phases:
            raise ScheduleError("a schedule needs at least one phase")
        if len(self.phases) > MAX_PHASES:
            raise ScheduleError(f"{len(self.phases)} phases: use at most {MAX_PHASES}")
        fractions = np.array([p.fraction for p in self.phases], dtype=np.float64)
        if not np.all(np.isfinite(fractions)) or np.any(fractions <= 0):
            raise ScheduleError(f"phase fractions {fractions.tolist()}: every phase needs a positive share of the "
                                "training tokens; drop empty phases")
        if abs(math.fsum(fractions) - 1.0) > EXACT_TOLERANCE:
            raise ScheduleError(f"phase fractions sum to {math.fsum(fractions)!r}, not 1: build with "
                                "Schedule.from_phases (it rescales them exactly)")
        first = self.phases[0].mixture.domains
        for k, p in enumerate(self.phases, start=1):
            if p.mixture.domains != first:
                raise ScheduleError(f"phase {k} is over domains {list(p.mixture.domains)}, phase 1 over "
                                    f"{list(first)}: give every phase a weight for the same domains (0 allowed)")
        h = self.phases[0].mixture.hash if len(self.phases) == 1 else content_hash(self.canonical_json())
        object.__setattr__(self, "_hash", h)

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def from_phases(cls, phases: Iterable[tuple[float, Mixture]], *, source: str = "schedule") -> "Schedule":
        """From ``(fraction, mixture)`` pairs; fractions within :data:`FRACTION_TOLERANCE` of summing to 1 are
        rescaled exactly, mixtures are expressed over the union of their domains (missing ones weight 0)."""
        pairs = list(phases)
        if not pairs:
            raise ScheduleError(f"{source}: no phases: give at least one {{fraction, weights}}")
        fractions = []
        for k, (f, _) in enumerate(pairs, start=1):
            try:
                x = float(f)
            except (TypeError, ValueError):
                raise ScheduleError(f"{source}: phase {k} fraction {f!r} is not a number") from None
            if not math.isfinite(x) or x <= 0:
                raise ScheduleError(f"{source}: phase {k} fraction is {f!r}: every phase needs a positive share "
                                    "of the training tokens (drop empty phases)")
            fractions.append(x)
        total = math.fsum(fractions)
        if abs(total - 1.0) > FRACTION_TOLERANCE:
            raise ScheduleError(f"{source}: phase fractions {fractions} sum to {total:.6g}, not 1: they are shares "
                                "of the run's training tokens; make them sum to 1")
        fractions = normalize_exact(np.array(fractions)).tolist()  # unchanged when they already sum to 1
        domains = sorted(set().union(*(m.domains for _, m in pairs)))
        return cls(tuple(Phase(float(f), m.restrict(domains)) for f, (_, m) in zip(fractions, pairs)))

    @classmethod
    def from_mixture(cls, mixture: Mixture) -> "Schedule":
        """The one-phase schedule of a static mixture (same hash as the mixture)."""
        return cls((Phase(1.0, mixture),))

    @classmethod
    def from_obj(cls, obj: Any, *, source: str = "schedule") -> "Schedule":
        """From the file form ``{"phases": [{"fraction", "weights"}, ...]}`` (``hash``/``format`` checked if
        present), or a mixture mapping (``{"weights": {...}}`` or ``{domain: weight}``: one phase)."""
        if not isinstance(obj, Mapping):
            raise ScheduleError(f"{source}: expected a mapping with 'phases' (a schedule) or a mixture, got "
                                f"{type(obj).__name__}")
        if "phases" not in obj:
            weights = obj["weights"] if "weights" in obj else {k: v for k, v in obj.items() if k not in ("hash", "format")}
            return cls.from_mixture(Mixture.from_dict(weights, source=source))
        fmt = obj.get("format")
        if fmt is not None and fmt != FORMAT:
            raise ScheduleError(f"{source}: format {fmt!r} is not {FORMAT!r}: write it with `regmix-megatron` or "
                                "drop the format key")
        phases = obj["phases"]
        if not isinstance(phases, Sequence) or isinstance(phases, (str, bytes)) or not phases:
            raise ScheduleError(f"{source}: 'phases' must be a non-empty list of {{fraction, weights}}")
        pairs = []
        for k, p in enumerate(phases, start=1):
            if not isinstance(p, Mapping) or "fraction" not in p or "weights" not in p:
                raise ScheduleError(f"{source}: phase {k} must be a mapping with 'fraction' (share of the training "
                                    f"tokens) and 'weights' (domain -> weight), got {p!r}")
            unknown = sorted(set(p) - {"fraction", "weights", "hash"})
            if unknown:
                raise ScheduleError(f"{source}: phase {k} has unknown key(s) {unknown}: use fraction and weights")
            pairs.append((p["fraction"], Mixture.from_dict(p["weights"], source=f"{source} phase {k}")))
        schedule = cls.from_phases(pairs, source=source)
        stated = obj.get("hash")
        if stated is not None and stated != schedule.hash:
            raise ScheduleError(f"{source}: stated hash {stated} does not match the phases (hash {schedule.hash}); "
                                "the file was edited: remove the hash or write the file again")
        return schedule

    # ---- views --------------------------------------------------------------------------------------
    @property
    def hash(self) -> str:
        """Stable 16-hex content hash; a one-phase schedule has its mixture's hash."""
        return self._hash

    @property
    def domains(self) -> tuple[str, ...]:
        return self.phases[0].mixture.domains

    @property
    def num_phases(self) -> int:
        return len(self.phases)

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(p.fraction for p in self.phases)

    @property
    def mixtures(self) -> tuple[Mixture, ...]:
        return tuple(p.mixture for p in self.phases)

    @property
    def is_static(self) -> bool:
        """One phase: the schedule is its mixture."""
        return len(self.phases) == 1

    def overall(self) -> Mixture:
        """The run's token shares over all phases: ``sum_k fraction_k * weights_k`` (one phase: its mixture)."""
        if self.is_static:
            return self.phases[0].mixture
        w = sum(p.fraction * p.mixture.as_array() for p in self.phases)
        return Mixture.from_array(self.domains, w)

    def canonical_json(self) -> str:
        return canonical_json({"phases": [{"fraction": repr(p.fraction), "mixture": p.mixture.hash}
                                          for p in self.phases]})

    def restrict(self, domains: Sequence[str]) -> "Schedule":
        """The same schedule over ``domains`` (a superset): missing domains get weight 0 in every phase."""
        return Schedule(tuple(Phase(p.fraction, p.mixture.restrict(domains)) for p in self.phases))

    def tokens_per_domain(self, num_tokens: float) -> dict[str, float]:
        """Tokens each domain contributes to a run of ``num_tokens`` training tokens, over all phases."""
        return {d: float(num_tokens) * w for d, w in self.overall().as_dict().items()}

    # ---- regression features ------------------------------------------------------------------------
    def features(self, domains: Sequence[str] | None = None) -> np.ndarray:
        """The phase weights concatenated phase by phase, each scaled by its phase's fraction: the run's token
        share per (phase, domain); sums to 1. Order: :func:`feature_names`."""
        domains = list(self.domains if domains is None else domains)
        return np.concatenate([p.fraction * p.mixture.as_array(domains) for p in self.phases])

    @classmethod
    def from_features(cls, fractions: Sequence[float], domains: Sequence[str], row: Sequence[float]) -> "Schedule":
        """Inverse of :meth:`features` for known phase ``fractions``."""
        row = np.asarray(row, dtype=np.float64)
        d = len(domains)
        if row.shape != (len(fractions) * d,):
            raise ScheduleError(f"{row.shape[0]} features for {len(fractions)} phases x {d} domains")
        return cls.from_phases([(f, Mixture.from_array(list(domains), row[k * d:(k + 1) * d]))
                                for k, f in enumerate(fractions)])

    # ---- files --------------------------------------------------------------------------------------
    def to_json_obj(self) -> dict:
        """The file form: ``{"format", "hash", "phases"}`` (a mixture file reads back as the one-phase schedule)."""
        return {"format": FORMAT, "hash": self.hash,
                "phases": [{"fraction": p.fraction, "weights": p.mixture.as_dict()} for p in self.phases]}

    def save(self, path: str | Path) -> Path:
        """Write JSON (``.json``) or YAML (``.yaml``/``.yml``) atomically."""
        from ..fileio import atomic_write_json, atomic_write_yaml

        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            return atomic_write_yaml(path, self.to_json_obj())
        return atomic_write_json(path, self.to_json_obj())


def feature_names(domains: Sequence[str], num_phases: int) -> list[str]:
    """``p1/<domain>``, ..., ``p2/<domain>``, ... (zero-padded phase numbers past 9, so names sort phase-major). One
    phase: the domains themselves (a one-phase schedule's features are its mixture's weights)."""
    return list(domains) if num_phases == 1 else _phase_names(domains, num_phases)


def _phase_names(domains: Sequence[str], num_phases: int) -> list[str]:
    width = len(str(num_phases))
    return [f"p{k:0{width}d}/{d}" for k in range(1, num_phases + 1) for d in domains]


def parse_feature_names(names: Sequence[str]) -> tuple[int, list[str]] | None:
    """``(num_phases, domains)`` if ``names`` are phase-numbered features (``p<k>/<domain>``), else None (plain
    domain names: a mixture's)."""
    if not names or not all("/" in n and n.startswith("p") and n.split("/", 1)[0][1:].isdigit() for n in names):
        return None
    phases = sorted({int(n.split("/", 1)[0][1:]) for n in names})
    domains = [n.split("/", 1)[1] for n in names if int(n.split("/", 1)[0][1:]) == phases[0]]
    if phases != list(range(1, len(phases) + 1)) or list(names) != _phase_names(domains, len(phases)):
        return None
    return len(phases), domains


# ---- phases in a run -------------------------------------------------------------------------------------------
def phase_starts(fractions: Sequence[float], num_samples: int, granularity: int = 1) -> list[int]:
    """First sample of every phase in a run of ``num_samples`` samples, plus ``num_samples`` at the end.

    Boundaries fall on multiples of ``granularity`` (the global batch size: phases start on a step) when it divides
    ``num_samples``, else on samples: ``start_k = g * floor(U * F_k + 1/2)``, ``U = num_samples / g``, ``F_k`` the
    cumulative fraction before phase k. Refuses a phase that gets no step/sample, naming the fix.
    """
    if not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
        raise ScheduleError(f"num_samples={num_samples!r}: use a positive integer")
    g = int(granularity) if granularity and num_samples % int(granularity) == 0 else 1
    units = num_samples // g
    starts = [0]
    for k in range(1, len(fractions)):
        starts.append(g * int(math.floor(units * math.fsum(fractions[:k]) + 0.5)))
    starts.append(int(num_samples))
    unit = "steps" if g > 1 else "samples"
    for k in range(len(fractions)):
        if starts[k + 1] <= starts[k]:
            raise ScheduleError(
                f"phase {k + 1} (fraction {fractions[k]:.4g}) gets no {unit} of a run of {units} {unit}: raise its "
                "fraction, merge it with a neighbour, or train longer")
    return starts


# ---- files ---------------------------------------------------------------------------------------------------
def load_schedule(path: str | Path) -> Schedule:
    """A schedule file (JSON/YAML ``{"phases": [...]}``), or a mixture file read as a one-phase schedule."""
    from ..fileio import read_json, read_yaml

    path = Path(path)
    obj = read_yaml(path) if path.suffix in (".yaml", ".yml") else read_json(path)  # refuses a key given twice
    try:
        return Schedule.from_obj(obj, source=str(path))
    except MixtureError as exc:
        raise ScheduleError(str(exc)) from None


def schedule_of(value: Any, *, source: str = "schedule") -> Schedule:
    """A schedule from a path, a mapping (file form or ``{phases: [...]}``), a Mixture or a Schedule."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, Mixture):
        return Schedule.from_mixture(value)
    if isinstance(value, (str, Path)):
        return load_schedule(value)
    return Schedule.from_obj(value, source=source)


def write_schedules(path: str | Path, schedules: Iterable[Schedule]) -> Path:
    """Write ``schedules`` as JSONL (:meth:`Schedule.to_json_obj` per line), atomically."""
    from ..fileio import atomic_write_text

    return atomic_write_text(Path(path), "".join(json.dumps(s.to_json_obj()) + "\n" for s in schedules))


def read_schedules(path: str | Path) -> list[Schedule]:
    """Every schedule of a JSONL file; a schedule listed twice is refused."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: schedules file not found; create it with the pipeline's sample stage") from None
    out: list[Schedule] = []
    first: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line, object_pairs_hook=no_duplicate_keys(where))
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg}); expected one schedule per line") from None
        schedule = Schedule.from_obj(obj, source=where)
        if schedule.hash in first:
            raise DataError(f"{where}: the same schedule as line {first[schedule.hash]}; list each schedule once")
        first[schedule.hash] = lineno
        out.append(schedule)
    if not out:
        raise DataError(f"{path}: no schedules in the file")
    return out


def read_trained(path: str | Path, *, renormalize: bool = False) -> list[Schedule]:
    """What a sweep trains, from a JSONL of schedules (its first line has ``phases``) or of mixtures (each the
    one-phase schedule; the mixture rule on the sums, ``renormalize`` to rescale on purpose)."""
    if Path(path).is_file() and is_schedules_file(path):
        return read_schedules(path)
    return [Schedule.from_mixture(m) for m in read_mixtures(path, renormalize=renormalize)]


def is_schedules_file(path: str | Path) -> bool:
    """Whether a JSONL file holds schedules (its first non-blank line has ``phases``) rather than mixtures."""
    from ..fileio import read_text

    for line in read_text(path, "--mixtures").splitlines():
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                return False
            return isinstance(obj, dict) and "phases" in obj
    return False


__all__ = ["Schedule", "Phase", "ScheduleError", "FORMAT", "feature_names", "parse_feature_names", "phase_starts",
           "load_schedule", "schedule_of", "write_schedules", "read_schedules", "read_trained", "is_schedules_file"]
