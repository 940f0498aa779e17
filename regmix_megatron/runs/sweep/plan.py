"""Planning a sweep: mixtures x one proxy recipe (+ a seed per run, by default one seed for all) on one
domains.json -> a run list with deterministic ids.

A sweep's runs train schedules (phases with their own mixtures, ``regmix_megatron.mixtures.schedule``); a static
mixture is the one-phase schedule. A run of several phases adds ``schedule`` (the schedule file form) to its entry in
``sweep.json``, beside its overall ``mixture``; a static run's entry is its mixture, as it always was.

A run is defined by its data, its mixture, the recipe and the seed; its id is ``run_config.run_id`` of the four
(content only, no path), so planning the same inputs twice gives the same ids and directories (idempotent), a
moved project keeps its ids, and a sweep directory can never silently mix runs of two different recipes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ...configs import load_config
from ...errors import ConfigError, DataError, RegmixError
from ...fileio import atomic_write_json, atomic_write_yaml, file_or_in_folder, read_json, read_yaml
from ...data.manifest import DomainRegistry
from ...mixtures.domains import check_trainable
from ...mixtures.mixture import Mixture
from ...mixtures.schedule import Schedule, read_trained, schedule_of
from ..recipe import Recipe, build_recipe
from ..run_config import DEFAULT_SEED, RUN_FIELDS, RunConfig, run_id, trained_fields, trained_schedule
from ..run_dir import CONFIG_FILE as RUN_CONFIG

log = logging.getLogger(__name__)

FORMAT = "regmix-megatron/sweep/v2"
#: Formats of earlier versions: their run ids follow another scheme, so they are planned afresh, not resumed.
OLD_FORMATS = ("regmix-megatron/sweep/v1",)
SWEEP_FILE = "sweep.json"
RUNS_DIR = "runs"


class SweepError(RegmixError):
    """A sweep directory or its inputs are inconsistent."""


@dataclass(frozen=True)
class PlannedRun:
    """One proxy run of a sweep."""

    run_id: str
    schedule: Schedule
    """What the run trains: its schedule (a static run: the one-phase schedule of its mixture, same hash)."""
    seed: int

    @property
    def mixture(self) -> Mixture:
        """The run's token shares over all phases (a static run: its mixture)."""
        return self.schedule.overall()


@dataclass(frozen=True)
class Sweep:
    """A planned sweep, as stored in ``SWEEP_DIR/sweep.json``."""

    root: Path
    recipe: Recipe
    """The proxy recipe shared by every run."""
    domains_path: str
    """Absolute path of domains.json. sweep.json stores it relative to ``root`` (a project folder that moves as a
    whole keeps it) and as it was when planned (a sweep folder moved alone finds data that stayed put)."""
    domain_names: tuple[str, ...]
    seed: int
    runs: tuple[PlannedRun, ...]

    @property
    def recipe_hash(self) -> str:
        return self.recipe.hash

    def run_dir(self, run_id: str) -> Path:
        return self.root / RUNS_DIR / run_id

    def run_config_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / RUN_CONFIG

    def run_ids(self) -> list[str]:
        return [r.run_id for r in self.runs]

    def get(self, run_id: str) -> PlannedRun:
        for r in self.runs:
            if r.run_id == run_id:
                return r
        raise SweepError(f"{self.root}: no run {run_id!r} in this sweep ({len(self.runs)} runs)")

    def run_config(self, run: PlannedRun) -> RunConfig:
        """The run config of one run (what ``regmix-megatron train`` reads from its ``config.yaml``)."""
        return RunConfig(recipe=self.recipe, domains=self.domains_path, seed=run.seed,
                         output_dir=str(self.run_dir(run.run_id)), **trained_fields(run.schedule))

    def write_run_config(self, run: PlannedRun) -> Path:
        """``runs/<id>/config.yaml``, paths relative to the run directory (the trainer saves the same form)."""
        path = self.run_config_path(run.run_id)
        return atomic_write_yaml(path, self.run_config(run).to_dict(relative_to=path.parent))

    def restore_run_config(self, run_id: str) -> list[str]:
        """Rewrite ``runs/<id>/config.yaml`` from the plan when it is missing, unreadable, defines another run
        (other mixture, seed or recipe; set aside as ``config.yaml.corrupt-<n>``), or names a domains.json that is
        not there (a sweep folder moved without its data). Returns one line per repair (none when it is sound)."""
        from ...fileio import set_aside
        from ..run_config import load_run_config

        run = self.get(run_id)
        path = self.run_config_path(run_id)
        if path.is_file():
            try:
                cfg = load_run_config(path)
                trained = trained_schedule(cfg, str(path))
                same_run = (trained is not None and trained.hash == run.schedule.hash and cfg.seed == run.seed
                            and cfg.recipe.hash == self.recipe.hash)
                if same_run and Path(cfg.domains).exists():
                    return []
                if same_run:  # the folder moved without its data: point it at the sweep's domains.json again
                    self.write_run_config(run)
                    return [f"{RUN_CONFIG} named {cfg.domains}, which is not there (the folder was moved): "
                            f"rewritten with {self.domains_path}"]
                why = "defines another run than the plan"
            except RegmixError as exc:
                why = f"is unreadable ({exc})"
        elif path.exists() or path.is_symlink():
            why = "is not a file"
        else:
            self.write_run_config(run)
            return [f"{RUN_CONFIG} was missing: rewritten from {SWEEP_FILE}"]
        moved = set_aside(path)
        self.write_run_config(run)
        return [f"{RUN_CONFIG} {why}: set aside as {moved.name} and rewritten from {SWEEP_FILE}"]

    def to_json_obj(self) -> dict:
        return {
            "format": FORMAT,
            "recipe_hash": self.recipe_hash,
            "domains": os.path.relpath(self.domains_path, self.root),
            "domains_as_planned": str(self.domains_path),
            "domain_names": list(self.domain_names),
            "seed": self.seed,
            "recipe": self.recipe.to_dict(),
            "num_runs": len(self.runs),
            "runs": [{"run_id": r.run_id, "mixture_hash": r.mixture.hash, "seed": r.seed,
                      "mixture": r.mixture.as_dict(),
                      **({} if r.schedule.is_static else {"schedule": r.schedule.to_json_obj()})}
                     for r in self.runs],
        }

    @classmethod
    def load(cls, root: str | os.PathLike) -> "Sweep":
        root = Path(root).resolve()
        path = root / SWEEP_FILE
        if not path.is_file():
            raise SweepError(f"{root} is not a planned sweep (no {SWEEP_FILE}): "
                             f"create it with `regmix-megatron sweep plan --mixtures M.jsonl --config C.yaml "
                             f"--output-dir {root}`")
        obj = read_json(path)
        if isinstance(obj, dict) and obj.get("format") in OLD_FORMATS:
            raise SweepError(f"{path}: planned by an earlier version ({obj['format']}, other run ids): plan into a "
                             "new --output directory (or delete this one)")
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise DataError(f"{path}: not a sweep file (expected \"format\": \"{FORMAT}\")")
        try:
            runs = []
            for i, r in enumerate(obj["runs"]):
                mixture = Mixture.from_dict(r["mixture"], source=f"{path}: runs[{i}]")
                if mixture.hash != r["mixture_hash"]:
                    raise DataError(f"{path}: runs[{i}] mixture hash {r['mixture_hash']} does not match its "
                                    f"weights ({mixture.hash}); the file was edited: re-plan the sweep")
                schedule = Schedule.from_obj(r["schedule"], source=f"{path}: runs[{i}]") if "schedule" in r else \
                    Schedule.from_mixture(mixture)
                runs.append(PlannedRun(run_id=str(r["run_id"]), schedule=schedule, seed=int(r["seed"])))
            recipe = load_config(Recipe, obj["recipe"], source=f"{path}: recipe")
            if recipe.hash != obj["recipe_hash"]:
                raise DataError(f"{path}: recipe hash {obj['recipe_hash']} does not match the recipe ({recipe.hash}); "
                                "the file was edited: re-plan the sweep")
            return cls(root=root, recipe=recipe, domains_path=_find_domains(root, obj),
                       domain_names=tuple(obj["domain_names"]), seed=int(obj["seed"]), runs=tuple(runs))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, RegmixError):
                raise
            raise DataError(f"{path}: malformed sweep file ({type(exc).__name__}: {exc}); re-plan the sweep") \
                from None


def _find_domains(root: Path, obj: dict) -> str:
    """The sweep's domains.json: relative to the sweep folder if it is there, else where it was planned."""
    relative = (root / obj["domains"]).resolve()
    planned = obj.get("domains_as_planned")
    if not relative.exists() and planned and Path(planned).exists():
        return str(Path(planned))
    return str(relative)


# ---- inputs -----------------------------------------------------------------------------------------------
def read_proxy_config(path: str | os.PathLike) -> tuple[Recipe, str, int | None]:
    """Read a proxy run config file: (its recipe, the absolute domains.json path, its seed or None).

    A relative ``domains`` path is resolved against the config file's directory, then the working directory.
    ``mixture`` and ``output_dir`` are set per run by the sweep: values in the file are ignored.
    """
    path = Path(path)
    cfg = read_yaml(path)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping of run config fields, got {type(cfg).__name__}")
    if not cfg.get("domains"):
        raise ConfigError(f"{path}: run config field 'domains' is missing: give the path of domains.json "
                          "(written by `regmix-megatron preprocess`)")
    domains = Path(str(cfg.pop("domains")))
    if not domains.is_absolute():
        candidates = [path.parent / domains, Path.cwd() / domains]
        found = [c for c in candidates if c.exists()]
        if not found:
            raise ConfigError(f"{path}: domains={str(domains)!r} not found (looked in {path.parent} and "
                              f"{Path.cwd()}): give an existing domains.json path")
        domains = found[0]
    domains = file_or_in_folder(domains, "domains.json")
    if not domains.is_file():
        raise ConfigError(f"{path}: domains={str(domains)!r} does not exist: give an existing domains.json path")
    for key in ("mixture", "output_dir", "run_id"):
        if key in cfg:
            cfg.pop(key)
            log.info("%s: field %r is set per run by the sweep; the value in the file is ignored", path, key)
    seed = cfg.pop("seed", None)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"{path}: seed={seed!r} must be an integer")
    assert not set(cfg) & set(RUN_FIELDS), cfg
    return build_recipe(cfg, source=str(path)), str(domains.resolve()), seed


def build_sweep(root: str | os.PathLike, mixtures: Sequence[Mixture | Schedule], recipe: Recipe,
                domains_path: str | os.PathLike, seed: int, *, seeds: Sequence[int] | None = None) -> Sweep:
    """The sweep for these inputs (mixtures, or schedules; in memory; :func:`plan_sweep` writes it). ``seeds`` (one
    per mixture) gives runs their own seeds (a mixture may then appear once per seed); default: ``seed`` for
    every run."""
    from ...data.manifest import check_prefix_paths

    root = Path(root).resolve()
    registry = DomainRegistry.load(domains_path)
    registry.verify_files(full=False)
    check_prefix_paths(registry)  # every run would fail on such a path: refuse it before planning any
    schedules = [check_trainable(registry, schedule_of(m), f"{'mixture' if schedule_of(m).is_static else 'schedule'} "
                                                          f"{i + 1} (hash {m.hash})") for i, m in enumerate(mixtures)]
    seeds = [int(seed)] * len(schedules) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != len(schedules):
        raise SweepError(f"{len(seeds)} seeds for {len(schedules)} mixtures: give one seed per mixture")
    runs = tuple(PlannedRun(run_id=run_id(recipe, registry, m, s), schedule=m, seed=s) for m, s in zip(schedules, seeds))
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        dup = sorted({(r.mixture.hash, r.seed) for r in runs if ids.count(r.run_id) > 1})
        raise SweepError(f"the same mixture and seed are planned twice {dup}: list each (mixture, seed) once")
    return Sweep(root=root, recipe=recipe, domains_path=str(Path(registry.path).resolve()),
                 domain_names=registry.names, seed=int(seed), runs=runs)


def plan_sweep(root: str | os.PathLike, mixtures: Sequence[Mixture | Schedule], recipe: Recipe,
               domains_path: str | os.PathLike, seed: int, *, seeds: Sequence[int] | None = None
               ) -> tuple[Sweep, bool]:
    """Write ``sweep.json`` and every run's ``config.yaml``. Returns (sweep, created).

    Re-planning identical inputs is a no-op (``created`` False, missing run configs restored); planning
    different inputs into a directory that holds a sweep raises :class:`SweepError`.
    """
    sweep = build_sweep(root, mixtures, recipe, domains_path, seed, seeds=seeds)
    path = sweep.root / SWEEP_FILE
    created = True
    if path.exists():
        old = Sweep.load(sweep.root)
        differences = _differences(old, sweep)
        if differences:
            raise SweepError(
                f"{sweep.root} already holds a different sweep ({'; '.join(differences)}): plan into a new "
                "--output directory (or delete this one if its runs are not needed)")
        created = False
    elif sweep.root.exists() and any(p.name not in (RUNS_DIR,) for p in sweep.root.iterdir()):
        raise SweepError(f"{sweep.root} exists and is not a sweep directory (no {SWEEP_FILE}): give a new or "
                         "empty --output directory")
    for run in sweep.runs:
        if not sweep.run_config_path(run.run_id).exists():  # the trainer rewrites it (same content): keep it
            sweep.write_run_config(run)
    if created:
        atomic_write_json(path, sweep.to_json_obj())  # last: a sweep dir looks planned only when complete
    return sweep, created


def _differences(old: Sweep, new: Sweep) -> list[str]:
    out = []
    a, b = old.recipe.to_dict(), new.recipe.to_dict()
    if a != b:
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        out.append(f"recipe hash {old.recipe_hash} vs {new.recipe_hash}, fields differing: {changed}")
    if old.seed != new.seed:
        out.append(f"seed {old.seed} vs {new.seed}")
    if old.run_ids() != new.run_ids():
        a, b = set(old.run_ids()), set(new.run_ids())
        out.append(f"{len(old.runs)} planned runs vs {len(new.runs)} now ({len(b - a)} new, {len(a - b)} missing"
                   f"{', same runs in another order' if a == b else ''})")
    return out


def plan_from_files(mixtures_path: str | os.PathLike, config_path: str | os.PathLike, root: str | os.PathLike,
                     seed: int | None = None, renormalize: bool = False) -> tuple[Sweep, bool]:
    """``sweep plan``: read the mixtures (or schedules: a JSONL of schedules) and the proxy config, then
    :func:`plan_sweep`."""
    mixtures = read_trained(mixtures_path, renormalize=renormalize)
    recipe, domains_path, file_seed = read_proxy_config(config_path)
    if seed is None:
        seed = DEFAULT_SEED if file_seed is None else file_seed
    return plan_sweep(root, mixtures, recipe, domains_path, seed)
