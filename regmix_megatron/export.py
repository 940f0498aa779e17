"""A mixture as the files Megatron-LM's command line reads (pure: no megatron import).

For a :class:`~regmix_megatron.mixture.Mixture` over the domains of a
:class:`~regmix_megatron.manifest.DomainRegistry`:

- ``--data-path "w1 p1 w2 p2 ..."``: the training blend as one token string (:func:`format_data_path`);
- ``--data-args-path FILE``: the same tokens in a file, one ``weight prefix`` pair per line (Megatron-LM reads
  the file and splits it on whitespace);
- ``--per-split-data-args-path FILE.json``: ``{"train": [w1, p1, ...], "valid": [p, ...], "test": [p, ...]}``:
  train is the weighted blend; valid and test list every domain's prefixes of that split *unweighted*, for
  ``--multiple-validation-sets`` (one validation loss per prefix). Megatron requires all three keys.

A schedule (:func:`export_schedule`): ``schedule.json`` for our provider's ``--regmix-schedule`` (exact), and one
directory of the files above per phase with ``phases.json`` (first step of each phase, Megatron-LM's
``--phase-transition-iterations``, and what a job per phase repeats or skips) for teams who restart jobs per phase.

Rules: zero-weight domains are dropped from weighted blends (Megatron asserts every weight > 0); a domain
stored in several prefixes has its weight split across them in proportion to their token counts; weights are
written with ``repr`` so ``float(text)`` gives back the exact float. Mixtures whose domain set differs from the
registry's are refused. Megatron's blend parser silently misreads lists whose prefixes look like numbers or
contain whitespace, so such prefixes are refused here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .errors import DataError
from .fileio import atomic_write_json, atomic_write_text
from .manifest import SPLITS, DomainRegistry
from .mixture import Mixture, read_mixture_at

if TYPE_CHECKING:
    from .schedule import Schedule

DATA_PATH_FILE = "data_path.txt"
DATA_ARGS_FILE = "data_args.txt"
PER_SPLIT_FILE = "per_split_data_args.json"
MIXTURE_FILE = "mixture.json"


def _check_prefix(prefix: str) -> str:
    if not prefix or any(c.isspace() for c in prefix):
        raise DataError(f"prefix {prefix!r} is empty or contains whitespace: Megatron-LM splits blend lists on "
                        "whitespace; move the data to a path without spaces")
    try:
        float(prefix)
    except ValueError:
        return prefix
    raise DataError(f"prefix {prefix!r} parses as a number, so Megatron would read it as a weight: rename it")


def blend_for_split(registry: DomainRegistry, mixture: Mixture, split: str = "train",
                    source: str = "mixture") -> tuple[list[str], list[float]]:
    """``(prefixes, weights)`` of the weighted blend of ``split``: zero-weight domains dropped, multi-prefix
    domains split by token count. Weights are > 0 and sum to 1 (up to float rounding)."""
    if split not in SPLITS:
        raise DataError(f"split {split!r}: use one of {list(SPLITS)}")
    registry.check_domains(mixture.domains, source)
    prefixes: list[str] = []
    weights: list[float] = []
    for name, weight in mixture.nonzero().items():
        domain = registry.get(name)
        parts = [p for p in domain.prefixes(split) if p.num_tokens > 0]
        total = sum(p.num_tokens for p in parts)
        if not parts or total <= 0:
            raise DataError(f"{source}: domain {name!r} has weight {weight!r} but no {split} tokens in "
                            f"{registry.path or 'the manifest'}: give it data or weight 0")
        for p in parts:
            w = weight * p.num_tokens / total if len(parts) > 1 else weight
            if not (w > 0 and math.isfinite(w)):
                raise DataError(f"{source}: prefix {p.path} of domain {name!r} gets weight {w!r}")
            prefixes.append(_check_prefix(p.path))
            weights.append(w)
    return prefixes, weights


def domain_prefixes(registry: DomainRegistry, split: str) -> list[str]:
    """Every domain's prefixes of ``split`` in canonical domain order (unweighted; for
    ``--multiple-validation-sets``). A domain without data in this split raises: it would vanish silently."""
    out = []
    empty = [d.name for d in registry.domains if not d.prefixes(split)]
    if empty:
        raise DataError(f"domain(s) {empty} have no {split} prefixes in {registry.path or 'the manifest'}: "
                        f"every domain needs a {split} set (re-run preprocessing)")
    for d in registry.domains:
        out.extend(_check_prefix(p.path) for p in d.prefixes(split))
    return out


def blend_tokens(prefixes: Sequence[str], weights: Sequence[float]) -> list[str]:
    """The flat ``[w1, p1, w2, p2, ...]`` list Megatron's ``get_blend_from_list`` reads (weights via repr)."""
    if len(prefixes) != len(weights) or not prefixes:
        raise DataError(f"{len(prefixes)} prefixes but {len(weights)} weights")
    out = []
    for p, w in zip(prefixes, weights):
        out.extend([repr(float(w)), _check_prefix(p)])
    return out


def format_data_path(registry: DomainRegistry, mixture: Mixture, split: str = "train") -> str:
    """The value of ``--data-path`` for this mixture (one string, whitespace separated)."""
    return " ".join(blend_tokens(*blend_for_split(registry, mixture, split)))


def format_data_args(registry: DomainRegistry, mixture: Mixture, split: str = "train") -> str:
    """The contents of a ``--data-args-path`` file: one ``weight prefix`` pair per line."""
    prefixes, weights = blend_for_split(registry, mixture, split)
    return "".join(f"{repr(float(w))} {p}\n" for p, w in zip(prefixes, weights))


def per_split_data_args(registry: DomainRegistry, mixture: Mixture) -> dict:
    """The object of a ``--per-split-data-args-path`` JSON file (keys train, valid, test, all present)."""
    return {
        "train": blend_tokens(*blend_for_split(registry, mixture, "train")),
        "valid": domain_prefixes(registry, "valid"),
        "test": domain_prefixes(registry, "test"),
    }


def export_mixture(registry: DomainRegistry, mixture: Mixture, output_dir: str | Path) -> dict[str, Path]:
    """Write every format into ``output_dir`` atomically; returns ``{kind: path}``."""
    output_dir = Path(output_dir)
    files = {
        "data_path": (DATA_PATH_FILE, format_data_path(registry, mixture) + "\n"),
        "data_args": (DATA_ARGS_FILE, format_data_args(registry, mixture)),
    }
    per_split = per_split_data_args(registry, mixture)
    out = {}
    for kind, (name, text) in files.items():
        out[kind] = atomic_write_text(output_dir / name, text)
    out["per_split_data_args"] = atomic_write_json(output_dir / PER_SPLIT_FILE, per_split)
    out["mixture"] = mixture.save(output_dir / MIXTURE_FILE)
    return out


# ---- schedules --------------------------------------------------------------------------------------------------
SCHEDULE_FILE = "schedule.json"
PHASES_FILE = "phases.json"
PHASES_FORMAT = "regmix-megatron/phases/v1"

RESTART_WARNING = (
    "A job per phase is NOT the schedule's data order. Megatron-LM with --phase-transition-iterations builds each "
    "phase's blend afresh, sized for that phase's samples, and reads it from its start: every domain's shuffled "
    "pass starts again in every phase, so a domain drawn in several phases is served the same documents again (with "
    "the same seed and at most one epoch per job, exactly its first samples again) while the rest of it is never "
    "reached, and megatron's epoch counts cover one phase at a time. Without --phase-transition-iterations a "
    "restarted job builds a blend of the whole run's size and resumes at the checkpoint's consumed samples, "
    "skipping the first part of every domain's new pass instead. The exact path is our dataset provider: "
    "--regmix-schedule schedule.json --regmix-domains domains.json.")


def restart_overlap(schedule: "Schedule", phase_sizes: Sequence[int]) -> dict[str, dict[str, float]]:
    """Per domain drawn in several phases, for a job per phase: the samples it draws over the run (``drawn``), the
    distinct samples a job per phase serves when every job's dataset of the domain is the same single-epoch
    shuffle (``distinct``: the largest phase's draw) and so the samples served again (``repeated``). Expected
    counts (weight x samples); the schedule's own path serves ``drawn`` distinct samples (at most one epoch)."""
    out = {}
    for d in schedule.domains:
        draws = [m.as_dict()[d] * n for m, n in zip(schedule.mixtures, phase_sizes)]
        if sum(1 for x in draws if x > 0) > 1:
            out[d] = {"drawn": sum(draws), "distinct": max(draws), "repeated": sum(draws) - max(draws)}
    return out


def export_schedule(registry: DomainRegistry, schedule: "Schedule", output_dir: str | Path, *,
                    train_iters: int | None = None, global_batch_size: int | None = None) -> dict[str, Path]:
    """Write ``schedule.json`` (for ``--regmix-schedule``, the exact path) and, for teams who restart jobs per
    phase, ``phase<k>/`` with each phase's mixture files (:func:`export_mixture`) and ``phases.json``: each phase's
    fraction, first and last step (with ``train_iters``; boundaries as the provider cuts them when
    ``global_batch_size`` is given too), the ``--phase-transition-iterations`` value, and :data:`RESTART_WARNING`
    with each domain's repeated samples. Returns ``{kind: path}``."""
    from .schedule import phase_starts

    registry.check_domains(schedule.domains, "schedule")
    output_dir = Path(output_dir)
    out = {"schedule": schedule.save(output_dir / SCHEDULE_FILE)}
    phases = []
    for k, phase in enumerate(schedule.phases, start=1):
        files = export_mixture(registry, phase.mixture, output_dir / f"phase{k}")
        out[f"phase{k}"] = files["per_split_data_args"]
        phases.append({"phase": k, "fraction": phase.fraction, "mixture_hash": phase.mixture.hash,
                       "per_split_data_args": f"phase{k}/{PER_SPLIT_FILE}", "data_args": f"phase{k}/{DATA_ARGS_FILE}"})
    doc = {"format": PHASES_FORMAT, "schedule_hash": schedule.hash, "exact": {
        "flags": f"--regmix-schedule {SCHEDULE_FILE} --regmix-domains {registry.path or 'domains.json'}",
        "note": "our dataset provider (regmix_megatron.megatron.provider): one dataset for the whole run, every "
                "domain one shuffled pass across phases, resumable at any step"}, "phases": phases}
    if train_iters:
        g = int(global_batch_size or 1)
        starts = phase_starts(schedule.fractions, int(train_iters) * g, g)
        for row, lo, hi in zip(phases, starts, starts[1:]):
            row.update(start_step=lo // g, end_step=hi // g)
        doc["train_iters"] = int(train_iters)
        doc["phase_transition_iterations"] = ",".join(str(r["start_step"]) for r in phases[1:])
        if global_batch_size:
            doc["restart_repeats"] = restart_overlap(schedule, [hi - lo for lo, hi in zip(starts, starts[1:])])
    doc["restart_warning"] = RESTART_WARNING
    out["phases"] = atomic_write_json(output_dir / PHASES_FILE, doc)
    return out


def load_mixture_arg(spec: str, *, tolerance: float | None = None) -> Mixture:
    """A mixture given on the command line: a mixture file (JSON/YAML), or ``FILE.jsonl:INDEX`` (mixture
    ``INDEX`` of a ``regmix-megatron sample`` output, 0-based)."""
    path_text, sep, index_text = spec.rpartition(":")
    if sep and path_text.endswith(".jsonl") and index_text.isdigit():
        return read_mixture_at(path_text, int(index_text))
    if spec.endswith(".jsonl"):
        raise DataError(f"{spec}: a JSONL file holds many mixtures: pick one with {spec}:INDEX (0-based)")
    kwargs = {} if tolerance is None else {"tolerance": tolerance}
    return Mixture.load(spec, **kwargs)


__all__ = [
    "blend_for_split", "domain_prefixes", "blend_tokens", "format_data_path", "format_data_args",
    "per_split_data_args", "export_mixture", "load_mixture_arg", "export_schedule", "restart_overlap",
]
