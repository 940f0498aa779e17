"""A mixture as the files Megatron-LM's command line reads (pure: no megatron import).

For a :class:`~regmix_megatron.mixtures.mixture.Mixture` over the domains of a
:class:`~regmix_megatron.data.manifest.DomainRegistry`:

- ``--data-path "w1 p1 w2 p2 ..."``: the training blend as one token string (:func:`format_data_path`);
- ``--data-args-path FILE``: the same tokens in a file, one ``weight prefix`` pair per line (Megatron-LM reads
  the file and splits it on whitespace);
- ``--per-split-data-args-path FILE.json``: ``{"train": [w1, p1, ...], "valid": [p, ...], "test": [p, ...]}``:
  train is the weighted blend; valid and test list every domain's prefixes of that split *unweighted* (valid:
  one validation loss per prefix with ``--multiple-validation-sets``; test: Megatron-LM blends the list by
  dataset size, as our provider's test split does). Megatron requires all three keys (``null`` when no domain
  has test prefixes). Evaluation-only domains (``domains.json``) appear in valid and test only: never in a
  training blend (a mixture giving one weight is refused).
- ``per_split_data_args_no_test.json``: the same with ``"test": null``, the file the printed flags name:
  Megatron-LM 0.16.1 evaluates the test split after training through code that fails with
  ``--multiple-validation-sets`` (``len()`` of its single iterator), after the last checkpoint is saved.
- ``megatron_args.txt``: the Megatron-LM flags to paste (:func:`megatron_args`): the per-split file,
  ``--multiple-validation-sets --full-validation`` (Megatron-LM refuses the first without the second once
  training starts), and the tokenizer's flags from ``domains.json``.

``--path-prefix OLD=NEW`` (:class:`PathMap`) rewrites every path written (prefixes, the per-split file, tokenizer
files) from this machine's storage to the cluster's.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from ..data.manifest import SPLITS, DomainRegistry
from ..errors import DataError, RegmixError
from ..fileio import atomic_dir, atomic_write_json, atomic_write_text, check_replaceable
from ..mixtures.mixture import RENORMALIZE_FLAG, Mixture, read_mixture_at

if TYPE_CHECKING:
    from ..mixtures.schedule import Schedule

DATA_PATH_FILE = "data_path.txt"
DATA_ARGS_FILE = "data_args.txt"
PER_SPLIT_FILE = "per_split_data_args.json"
PER_SPLIT_NO_TEST_FILE = "per_split_data_args_no_test.json"
ARGS_FILE = "megatron_args.txt"
MIXTURE_FILE = "mixture.json"
#: Every file an export folder holds (the folder is written as a whole: :func:`regmix_megatron.fileio.atomic_dir`).
EXPORT_FILES = (DATA_PATH_FILE, DATA_ARGS_FILE, PER_SPLIT_FILE, PER_SPLIT_NO_TEST_FILE, ARGS_FILE, MIXTURE_FILE)
#: The export folder of ``search`` and of the pipeline's search stage (``megatron/`` before; kept as a link).
EXPORT_DIR = "export"
OLD_EXPORT_DIR = "megatron"
#: Flags every export's Megatron-LM command line carries: one validation loss per domain, each over its whole
#: validation split (Megatron-LM refuses --multiple-validation-sets without --full-validation).
VALIDATION_FLAGS = ("--multiple-validation-sets", "--full-validation")


@dataclass(frozen=True)
class PathMap:
    """``OLD=NEW`` prefix rewrites (longest ``OLD`` first, matched at a path-component boundary): paths on this
    machine as the cluster sees them."""

    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, items) -> "PathMap":
        """From ``OLD=NEW`` strings (``--path-prefix``, repeatable; or a config's mapping)."""
        if isinstance(items, Mapping):
            items = [f"{k}={v}" for k, v in items.items()]
        rules = []
        for item in items or ():
            old, sep, new = str(item).partition("=")
            if not sep or not old or not new:
                raise RegmixError(f"--path-prefix {item!r}: use OLD=NEW, e.g. /home/me/data=/lustre/team/data")
            rules.append((old.rstrip("/") or "/", new.rstrip("/") or "/"))
        if len({o for o, _ in rules}) != len(rules):
            raise RegmixError(f"--path-prefix: an OLD prefix is given twice in {list(items)}")
        return cls(tuple(sorted(rules, key=lambda r: -len(r[0]))))

    def __call__(self, path: str) -> str:
        for old, new in self.rules:
            if path == old or path.startswith(old.rstrip("/") + "/"):
                return new + path[len(old):] if old != "/" else new.rstrip("/") + path
        return path

    def unmatched(self, paths) -> list[str]:
        """The ``paths`` no rule rewrites (only meaningful when there are rules)."""
        return [p for p in paths if self.rules and self(p) == p]

    def to_list(self) -> list[str]:
        return [f"{o}={n}" for o, n in self.rules]


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
    mixture = registry.check_mixture(mixture, source)
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


def has_test_split(registry: DomainRegistry) -> bool:
    """Whether the domains have test prefixes (all of them: ``domains import`` refuses some-but-not-all)."""
    return any(d.prefixes("test") for d in registry.domains)


def per_split_data_args(registry: DomainRegistry, mixture: Mixture, path_map: PathMap | None = None,
                        test: bool = True) -> dict:
    """The object of a ``--per-split-data-args-path`` JSON file (keys train, valid, test, all present; ``test``
    None when ``test`` is False or no domain has test prefixes)."""
    rewrite = path_map or PathMap()
    train = blend_tokens(*blend_for_split(registry, mixture, "train"))
    return {
        "train": [t if i % 2 == 0 else _check_prefix(rewrite(t)) for i, t in enumerate(train)],
        "valid": [_check_prefix(rewrite(p)) for p in domain_prefixes(registry, "valid")],
        "test": ([_check_prefix(rewrite(p)) for p in domain_prefixes(registry, "test")]
                 if test and has_test_split(registry) else None),
    }


def megatron_args(registry: DomainRegistry, per_split_file: str | Path, path_map: PathMap | None = None) -> list[str]:
    """Megatron-LM's flags for this export: the per-split file (rewritten), per-domain validation, and the
    tokenizer the data was made with (paths rewritten)."""
    rewrite = path_map or PathMap()
    return (["--per-split-data-args-path", rewrite(str(Path(per_split_file).resolve())), *VALIDATION_FLAGS]
            + registry.tokenizer.spec.megatron_flags(rewrite=rewrite))


def export_mixture(registry: DomainRegistry, mixture: Mixture, output_dir: str | Path,
                   what: str = "export directory", path_map: PathMap | None = None,
                   final_dir: str | Path | None = None) -> dict[str, Path]:
    """Write every format into ``output_dir``, the folder as a whole (all files or none: a failed or killed
    write leaves the previous export, or nothing); returns ``{kind: path}``. ``output_dir`` must be absent or
    hold only export files (``what`` names it in that error, e.g. ``--output-dir``). ``path_map`` rewrites the
    paths written (prefixes, the per-split file named in ``megatron_args.txt``, tokenizer files). ``final_dir``:
    where the folder will live when ``output_dir`` is a temporary folder of a larger atomic write."""
    registry.verify_files()  # never export prefixes whose data is damaged or whose counts were edited
    path_map = path_map or PathMap()
    output_dir = Path(output_dir)
    check_replaceable(output_dir, EXPORT_FILES, what)
    prefixes, weights = blend_for_split(registry, mixture)
    prefixes = [path_map(p) for p in prefixes]
    unmatched = path_map.unmatched([p.path for d in registry.domains for ps in d.splits.values() for p in ps])
    if unmatched:
        raise DataError(f"--path-prefix {path_map.to_list()} does not rewrite {unmatched[0]} (and "
                        f"{len(unmatched) - 1} more): give a rule for every data location, or none")
    files = {
        "data_path": (DATA_PATH_FILE, " ".join(blend_tokens(prefixes, weights)) + "\n"),
        "data_args": (DATA_ARGS_FILE, "".join(f"{repr(float(w))} {p}\n" for p, w in zip(prefixes, weights))),
    }
    names = {"data_path": DATA_PATH_FILE, "data_args": DATA_ARGS_FILE, "per_split_data_args": PER_SPLIT_FILE,
             "per_split_data_args_no_test": PER_SPLIT_NO_TEST_FILE, "megatron_args": ARGS_FILE,
             "mixture": MIXTURE_FILE}
    args = megatron_args(registry, Path(final_dir or output_dir) / PER_SPLIT_NO_TEST_FILE, path_map)
    with atomic_dir(output_dir, owned=EXPORT_FILES, what=what) as tmp:
        for name, text in files.values():
            atomic_write_text(tmp / name, text)
        atomic_write_json(tmp / PER_SPLIT_FILE, per_split_data_args(registry, mixture, path_map))
        atomic_write_json(tmp / PER_SPLIT_NO_TEST_FILE, per_split_data_args(registry, mixture, path_map, test=False))
        atomic_write_text(tmp / ARGS_FILE, " ".join(args) + "\n")
        mixture.save(tmp / MIXTURE_FILE)
    return {kind: output_dir / name for kind, name in names.items()}


def read_megatron_args(output_dir: str | Path) -> str:
    """The flags line of an export folder (empty when it has none)."""
    path = Path(output_dir) / ARGS_FILE
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


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
                    train_iters: int | None = None, global_batch_size: int | None = None,
                    path_map: PathMap | None = None, final_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``schedule.json`` (for ``--regmix-schedule``, the exact path) and, for teams who restart jobs per
    phase, ``phase<k>/`` with each phase's mixture files (:func:`export_mixture`) and ``phases.json``: each phase's
    fraction, first and last step (with ``train_iters``; boundaries as the provider cuts them when
    ``global_batch_size`` is given too), the ``--phase-transition-iterations`` value, and :data:`RESTART_WARNING`
    with each domain's repeated samples. ``path_map`` and ``final_dir`` as for :func:`export_mixture`. Returns
    ``{kind: path}``."""
    from ..mixtures.schedule import phase_starts

    registry.check_domains(schedule.domains, "schedule")
    output_dir = Path(output_dir)
    out = {"schedule": schedule.save(output_dir / SCHEDULE_FILE)}
    phases = []
    for k, phase in enumerate(schedule.phases, start=1):
        files = export_mixture(registry, phase.mixture, output_dir / f"phase{k}", path_map=path_map,
                               final_dir=Path(final_dir or output_dir) / f"phase{k}")
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


def load_mixture_arg(spec: str, *, renormalize: bool = False, flag: str = RENORMALIZE_FLAG) -> Mixture:
    """A mixture given on the command line: a mixture file (JSON/YAML), or ``FILE.jsonl:INDEX`` (mixture
    ``INDEX`` of a ``regmix-megatron sample`` output, 0-based). Its weights sum to 1 (within the tolerance)
    unless ``renormalize`` (the user passed ``flag``)."""
    path_text, sep, index_text = spec.rpartition(":")
    if sep and path_text.endswith(".jsonl") and index_text.isdigit():
        return read_mixture_at(path_text, int(index_text), renormalize=renormalize, flag=flag)
    if spec.endswith(".jsonl"):
        raise DataError(f"{spec}: a JSONL file holds many mixtures: pick one with {spec}:INDEX (0-based)")
    return Mixture.load(spec, renormalize=renormalize, flag=flag)


__all__ = [
    "blend_for_split", "domain_prefixes", "blend_tokens", "format_data_path", "format_data_args",
    "per_split_data_args", "export_mixture", "load_mixture_arg", "PathMap", "megatron_args", "read_megatron_args",
    "export_schedule", "restart_overlap",
]
