"""A mixture or schedule as the files Megatron-LM's command line reads (pure: no megatron import).

One export (:func:`export`, :func:`write_export_files`): a static mixture is a one-phase schedule, and a one-phase
schedule's files are its mixture's. For a :class:`~regmix_megatron.mixtures.mixture.Mixture` over the domains of a
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

A schedule of several phases: ``schedule.json`` for our provider's ``--regmix-schedule`` (exact), and one directory
of the files above per phase with ``phases.json`` (first step of each phase, Megatron-LM's
``--phase-transition-iterations``, and what a job per phase repeats or skips) for teams who restart jobs per phase.

An export folder is written whole and in place (:mod:`regmix_megatron.output_folder`: the folder the user gave is
kept, a link or a mount point included; ``outputs.json`` last); a schedule's folder is one unit (its phases,
``phases.json`` and ``schedule.json`` all new, or all old). A search's export (:func:`write_search_export`) is the
export sub-folder of the search folder, written whole with it: the best schedule's files and, for several phases,
the best static mixture's in ``static/``. Readers: :func:`read_megatron_args`, :func:`read_phases`.

Rules: zero-weight domains are dropped from weighted blends (Megatron asserts every weight > 0); a domain
stored in several prefixes has its weight split across them in proportion to their token counts; weights are
written with ``repr`` so ``float(text)`` gives back the exact float. Mixtures whose domain set differs from the
registry's are refused. Megatron's blend parser silently misreads lists whose prefixes look like numbers or
contain whitespace, so such prefixes are refused, after ``--path-prefix`` rewrote them (a rewrite can rescue a
local path with spaces); :func:`~regmix_megatron.data.manifest.check_prefix_paths` refuses them where data is registered and sampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, Union

from ..data.manifest import SPLITS, DomainRegistry, check_blend_prefix
from ..configs import check
from ..errors import ConfigError, DataError, RegmixError
from ..fileio import atomic_write_json, atomic_write_text
from ..mixtures.domains import check_trainable
from ..mixtures.mixture import RENORMALIZE_FLAG, Mixture, read_mixture_at
from ..mixtures.schedule import Schedule, phase_starts, schedule_of

DATA_PATH_FILE = "data_path.txt"
DATA_ARGS_FILE = "data_args.txt"
PER_SPLIT_FILE = "per_split_data_args.json"
PER_SPLIT_NO_TEST_FILE = "per_split_data_args_no_test.json"
ARGS_FILE = "megatron_args.txt"
MIXTURE_FILE = "mixture.json"
#: Every file an export folder holds (written whole and in place: :mod:`regmix_megatron.output_folder`, with its
#: ``outputs.json`` last).
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
    machine as the cluster sees them. From ``--path-prefix OLD=NEW`` flags (:meth:`parse`) or a config's
    ``export.path_prefix`` mapping (:meth:`from_dict`)."""

    rules: tuple[tuple[str, str], ...] = ()
    """``(OLD, NEW)`` pairs without a trailing slash, the longest ``OLD`` first."""

    @classmethod
    def from_dict(cls, mapping: Mapping[str, str], *, source: str = "export.path_prefix") -> "PathMap":
        """From ``{OLD: NEW}`` (a config's ``export.path_prefix``), checked once; errors name ``source`` (the file
        and the field), the entry and the fix."""
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{source}={mapping!r} is invalid: give a mapping {{/path/here: /path/on/the/cluster}}")
        for old, new in mapping.items():
            check(isinstance(old, str) and bool(old) and isinstance(new, str) and bool(new), source, str(old), new,
                  "map a path prefix on this machine to the same folder as the cluster mounts it, e.g. "
                  "/home/me/data: /lustre/team/data")
        rules = [(old.rstrip("/") or "/", new.rstrip("/") or "/") for old, new in mapping.items()]
        twice = sorted({o for o, _ in rules if [r[0] for r in rules].count(o) > 1})
        if twice:
            raise ConfigError(f"{source}: the prefix(es) {twice} are given twice (with and without a trailing slash): "
                              "keep one")
        return cls(tuple(sorted(rules, key=lambda r: -len(r[0]))))

    @classmethod
    def parse(cls, items) -> "PathMap":
        """From ``OLD=NEW`` strings (``--path-prefix``, repeatable); a config's mapping is read by :meth:`from_dict`."""
        if isinstance(items, Mapping):
            return cls.from_dict(items)
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


def blend_for_split(registry: DomainRegistry, mixture: Mixture, split: str = "train", source: str = "mixture",
                    path_map: "PathMap | None" = None) -> tuple[list[str], list[float]]:
    """``(prefixes, weights)`` of the weighted blend of ``split``: zero-weight domains dropped, multi-prefix
    domains split by token count, prefixes rewritten by ``path_map`` and then checked. Weights are > 0 and sum to
    1 (up to float rounding)."""
    if split not in SPLITS:
        raise DataError(f"split {split!r}: use one of {list(SPLITS)}")
    rewrite = path_map or PathMap()
    mixture = check_trainable(registry, mixture, source)
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
            prefixes.append(check_blend_prefix(rewrite(p.path)))
            weights.append(w)
    return prefixes, weights


def domain_prefixes(registry: DomainRegistry, split: str, path_map: "PathMap | None" = None) -> list[str]:
    """Every domain's prefixes of ``split`` in canonical domain order (unweighted; for
    ``--multiple-validation-sets``), rewritten by ``path_map`` and then checked. A domain without data in this
    split raises: it would vanish silently."""
    rewrite = path_map or PathMap()
    out = []
    empty = [d.name for d in registry.domains if not d.prefixes(split)]
    if empty:
        raise DataError(f"domain(s) {empty} have no {split} prefixes in {registry.path or 'the manifest'}: "
                        f"every domain needs a {split} set (re-run preprocessing)")
    for d in registry.domains:
        out.extend(check_blend_prefix(rewrite(p.path)) for p in d.prefixes(split))
    return out


def blend_tokens(prefixes: Sequence[str], weights: Sequence[float]) -> list[str]:
    """The flat ``[w1, p1, w2, p2, ...]`` list Megatron's ``get_blend_from_list`` reads (weights via repr)."""
    if len(prefixes) != len(weights) or not prefixes:
        raise DataError(f"{len(prefixes)} prefixes but {len(weights)} weights")
    out = []
    for p, w in zip(prefixes, weights):
        out.extend([repr(float(w)), check_blend_prefix(p)])
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
    return {
        "train": blend_tokens(*blend_for_split(registry, mixture, "train", path_map=path_map)),
        "valid": domain_prefixes(registry, "valid", path_map),
        "test": domain_prefixes(registry, "test", path_map) if test and has_test_split(registry) else None,
    }


def megatron_args(registry: DomainRegistry, per_split_file: str | Path, path_map: PathMap | None = None) -> list[str]:
    """Megatron-LM's flags for this export: the per-split file (rewritten), per-domain validation, and the
    tokenizer the data was made with (paths rewritten)."""
    rewrite = path_map or PathMap()
    return (["--per-split-data-args-path", rewrite(str(Path(per_split_file).resolve())), *VALIDATION_FLAGS]
            + registry.tokenizer.spec.megatron_flags(rewrite=rewrite))


def write_mixture_files(registry: DomainRegistry, mixture: Mixture, folder: str | Path, *, final_dir: str | Path,
                        path_map: PathMap | None = None) -> dict[str, str]:
    """The export files of ``mixture`` written into ``folder`` (a staging folder), each atomically;
    ``final_dir`` is where they will live (``megatron_args.txt`` names the per-split file there). Returns
    ``{kind: file name}``. Checks first: the data's integrity, and every prefix after the rewrite."""
    registry.verify_files(full=False)  # never export prefixes whose data is damaged or whose counts were edited
    path_map = path_map or PathMap()
    unmatched = path_map.unmatched([p.path for d in registry.domains for ps in d.splits.values() for p in ps])
    if unmatched:
        raise DataError(f"--path-prefix {path_map.to_list()} does not rewrite {unmatched[0]} (and "
                        f"{len(unmatched) - 1} more): give a rule for every data location, or none")
    prefixes, weights = blend_for_split(registry, mixture, path_map=path_map)
    per_split = per_split_data_args(registry, mixture, path_map)
    no_test = per_split_data_args(registry, mixture, path_map, test=False)
    args = megatron_args(registry, Path(final_dir) / PER_SPLIT_NO_TEST_FILE, path_map)
    folder = Path(folder)
    atomic_write_text(folder / DATA_PATH_FILE, " ".join(blend_tokens(prefixes, weights)) + "\n")
    atomic_write_text(folder / DATA_ARGS_FILE, "".join(f"{repr(float(w))} {p}\n" for p, w in zip(prefixes, weights)))
    atomic_write_json(folder / PER_SPLIT_FILE, per_split)
    atomic_write_json(folder / PER_SPLIT_NO_TEST_FILE, no_test)
    atomic_write_text(folder / ARGS_FILE, " ".join(args) + "\n")
    mixture.save(folder / MIXTURE_FILE)
    return {"data_path": DATA_PATH_FILE, "data_args": DATA_ARGS_FILE, "per_split_data_args": PER_SPLIT_FILE,
            "per_split_data_args_no_test": PER_SPLIT_NO_TEST_FILE, "megatron_args": ARGS_FILE,
            "mixture": MIXTURE_FILE}


def read_megatron_args(output_dir: str | Path) -> str:
    """The flags line of a complete export folder (refused when incomplete:
    :func:`regmix_megatron.output_folder.read_outputs`; empty when it has no flags file)."""
    from ..fileio import read_text
    from ..output_folder import read_outputs

    read_outputs(output_dir, "export folder")
    path = Path(output_dir) / ARGS_FILE
    return read_text(path).strip() if path.is_file() else ""


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


def restart_overlap(schedule: Schedule, phase_sizes: Sequence[int]) -> dict[str, dict[str, float]]:
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


#: What a schedule export folder holds: ``schedule.json``, ``phases.json`` and a mixture export per phase.
SCHEDULE_EXPORT_FILES = (SCHEDULE_FILE, PHASES_FILE, *(f"phase[0-9]*/{name}" for name in EXPORT_FILES))
#: What an export folder holds (:class:`regmix_megatron.output_folder.Owned` patterns): a mixture's files, or a
#: schedule's; a new export replaces either.
EXPORT_FOLDER_FILES = (*EXPORT_FILES, *SCHEDULE_EXPORT_FILES)
#: The best static mixture's export inside a search's export of several phases.
STATIC_DIR = "static"


def export(registry: DomainRegistry, value: Union[Mixture, Schedule], output_dir: str | Path, *,
           train_iters: int | None = None, global_batch_size: int | None = None, path_map: PathMap | None = None,
           what: str = "export directory") -> dict[str, Path]:
    """Write the export of ``value`` (a mixture, or a schedule: :func:`write_export_files`) into the folder
    ``output_dir`` (new, or one an export wrote), whole and in place
    (:func:`regmix_megatron.output_folder.output_folder`: all files and ``outputs.json`` last, or after a failed or
    killed write the previous export); returns ``{kind: path}``. ``what`` names the folder in errors (e.g.
    ``--output-dir``); ``path_map`` rewrites the paths written (prefixes, the per-split file named in
    ``megatron_args.txt``, tokenizer files)."""
    from ..output_folder import output_folder

    schedule = schedule_of(value)
    with output_folder(output_dir, owned=EXPORT_FOLDER_FILES, what=what) as stage:
        names = write_export_files(registry, schedule, stage, final_dir=output_dir, train_iters=train_iters,
                                   global_batch_size=global_batch_size, path_map=path_map)
    return {kind: Path(output_dir) / name for kind, name in names.items()}


def write_export_files(registry: DomainRegistry, schedule: Schedule, folder: str | Path, *, final_dir: str | Path,
                       train_iters: int | None = None, global_batch_size: int | None = None,
                       path_map: PathMap | None = None) -> dict[str, str]:
    """The export files of ``schedule`` written into ``folder`` (a staging folder; ``final_dir`` where they will
    live): a one-phase schedule is its mixture (:func:`write_mixture_files`); several phases
    (:func:`write_schedule_files`). Returns ``{kind: path relative to folder}``."""
    if schedule.is_static:
        return write_mixture_files(registry, schedule.mixtures[0], folder, final_dir=final_dir, path_map=path_map)
    return write_schedule_files(registry, schedule, folder, final_dir=final_dir, train_iters=train_iters,
                                global_batch_size=global_batch_size, path_map=path_map)


def search_export_files(export_dir: str = EXPORT_DIR) -> tuple[str, ...]:
    """What the export step writes into a search folder (patterns relative to it): the export sub-folder (a
    mixture's or a schedule's files, and ``static/``) and its old name, a link the ``search`` command keeps."""
    return (*(f"{export_dir}/{p}" for p in (*EXPORT_FOLDER_FILES, *(f"{STATIC_DIR}/{n}" for n in EXPORT_FILES))),
            OLD_EXPORT_DIR)


def write_search_export(registry: DomainRegistry, schedule: Schedule, static: Mixture, folder: str | Path, *,
                        final_dir: str | Path, export_dir: str = EXPORT_DIR,
                        path_map: PathMap | None = None) -> dict[str, str]:
    """A search's export, written into its staging ``folder`` (``final_dir``: the search folder): the best
    ``schedule``'s files in ``export_dir/`` (one phase: the mixture's) and, for several phases, the best ``static``
    mixture's in ``export_dir/static/``; each folder sealed with its ``outputs.json``. Returns ``{kind: path
    relative to the search folder}``."""
    from ..output_folder import seal_folder

    stage, final = Path(folder) / export_dir, Path(final_dir) / export_dir
    exported = write_export_files(registry, schedule.restrict(registry.names), stage, final_dir=final,
                                  path_map=path_map)
    if not schedule.is_static:
        exported.update({f"static_{k}": f"{STATIC_DIR}/{name}" for k, name in write_mixture_files(
            registry, static.restrict(registry.names), stage / STATIC_DIR, final_dir=final / STATIC_DIR,
            path_map=path_map).items()})
        seal_folder(stage / STATIC_DIR)
    seal_folder(stage)
    return {k: f"{export_dir}/{rel}" for k, rel in exported.items()}


def write_schedule_files(registry: DomainRegistry, schedule: Schedule, folder: str | Path, *,
                         final_dir: str | Path, train_iters: int | None = None,
                         global_batch_size: int | None = None, path_map: PathMap | None = None) -> dict[str, str]:
    """A schedule's export files written into ``folder`` (a staging folder; ``final_dir`` where they will
    live): ``schedule.json``, ``phase<k>/`` (:func:`write_mixture_files`, each sealed with its own
    ``outputs.json``) and ``phases.json``: each phase's fraction, first and last step (with ``train_iters``;
    boundaries as the provider cuts them when ``global_batch_size`` is given too), the
    ``--phase-transition-iterations`` value, and :data:`RESTART_WARNING` with each domain's repeated samples.
    Returns ``{kind: path relative to folder}``."""
    from ..output_folder import seal_folder

    registry.check_domains(schedule.domains, "schedule")
    folder = Path(folder)
    schedule.save(folder / SCHEDULE_FILE)
    out = {"schedule": SCHEDULE_FILE}
    phases = []
    for k, phase in enumerate(schedule.phases, start=1):
        names = write_mixture_files(registry, phase.mixture, folder / f"phase{k}", path_map=path_map,
                                    final_dir=Path(final_dir) / f"phase{k}")
        seal_folder(folder / f"phase{k}")
        out[f"phase{k}"] = f"phase{k}/{names['per_split_data_args']}"
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
    atomic_write_json(folder / PHASES_FILE, doc)
    out["phases"] = PHASES_FILE
    return out


def read_phases(output_dir: str | Path) -> dict:
    """The ``phases.json`` of a complete schedule export folder (refused when incomplete)."""
    from ..fileio import read_json
    from ..output_folder import read_outputs

    read_outputs(output_dir, "schedule export folder")
    return read_json(Path(output_dir) / PHASES_FILE)


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
    "per_split_data_args", "export", "write_export_files", "write_mixture_files", "write_schedule_files",
    "search_export_files", "write_search_export", "load_mixture_arg", "PathMap", "megatron_args",
    "read_megatron_args", "read_phases", "restart_overlap",
]
