"""Planning a sweep: mixtures x one proxy train config (+ seed) -> a run list with deterministic ids.

A run is defined by its mixture, the proxy train config and the seed; its id is a hash of the three, so
planning the same inputs twice gives the same ids and directories (idempotent), and a sweep directory can
never silently mix runs of two different configs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError, DataError, RegmixError
from ..fileio import atomic_write_json, atomic_write_yaml, read_json, read_yaml
from ..manifest import DomainRegistry
from ..mixture import Mixture, read_mixtures  # noqa: F401 (read_mixtures: the sweep's input)

log = logging.getLogger(__name__)

FORMAT = "regmix-megatron/sweep/v1"
SWEEP_FILE = "sweep.json"
RUNS_DIR = "runs"
RUN_CONFIG = "config.yaml"
#: Train-config fields the sweep sets per run; a value in the proxy config is a default or is replaced.
PER_RUN_FIELDS = ("mixture", "seed", "output_dir", "run_id")


class SweepError(RegmixError):
    """A sweep directory or its inputs are inconsistent."""


@dataclass(frozen=True)
class PlannedRun:
    """One proxy run of a sweep."""

    run_id: str
    mixture: Mixture
    seed: int


@dataclass(frozen=True)
class Sweep:
    """A planned sweep, as stored in ``SWEEP_DIR/sweep.json``."""

    root: Path
    train_config: Mapping[str, Any]
    """The proxy train config shared by every run, with ``domains`` absolute and no per-run fields."""
    config_hash: str
    domains_path: str
    domain_names: tuple[str, ...]
    seed: int
    runs: tuple[PlannedRun, ...]

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

    def run_config(self, run: PlannedRun) -> dict:
        """The full train config of one run (what ``regmix-megatron train`` reads)."""
        from ..configs import config_to_dict
        from ..train_config import build_train_config

        cfg = dict(self.train_config)
        cfg["mixture"] = run.mixture.as_dict()
        cfg["seed"] = run.seed
        cfg["output_dir"] = str(self.run_dir(run.run_id))
        cfg["run_id"] = run.run_id
        return config_to_dict(build_train_config(cfg, source=f"run {run.run_id}"))

    def to_json_obj(self) -> dict:
        return {
            "format": FORMAT,
            "config_hash": self.config_hash,
            "domains": self.domains_path,
            "domain_names": list(self.domain_names),
            "seed": self.seed,
            "train_config": dict(self.train_config),
            "num_runs": len(self.runs),
            "runs": [{"run_id": r.run_id, "mixture_hash": r.mixture.hash, "seed": r.seed,
                      "mixture": r.mixture.as_dict()} for r in self.runs],
        }

    @classmethod
    def load(cls, root: str | os.PathLike) -> "Sweep":
        root = Path(root).resolve()
        path = root / SWEEP_FILE
        if not path.is_file():
            raise SweepError(f"{root} is not a planned sweep (no {SWEEP_FILE}): "
                             "create it with `regmix-megatron sweep plan --output {root}`")
        obj = read_json(path)
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise DataError(f"{path}: not a sweep file (expected \"format\": \"{FORMAT}\")")
        try:
            runs = []
            for i, r in enumerate(obj["runs"]):
                mixture = Mixture.from_dict(r["mixture"], source=f"{path}: runs[{i}]")
                if mixture.hash != r["mixture_hash"]:
                    raise DataError(f"{path}: runs[{i}] mixture hash {r['mixture_hash']} does not match its "
                                    f"weights ({mixture.hash}); the file was edited: re-plan the sweep")
                runs.append(PlannedRun(run_id=str(r["run_id"]), mixture=mixture, seed=int(r["seed"])))
            return cls(root=root, train_config=dict(obj["train_config"]), config_hash=str(obj["config_hash"]),
                       domains_path=str(obj["domains"]), domain_names=tuple(obj["domain_names"]),
                       seed=int(obj["seed"]), runs=tuple(runs))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, RegmixError):
                raise
            raise DataError(f"{path}: malformed sweep file ({type(exc).__name__}: {exc}); re-plan the sweep") \
                from None


# ---- inputs -----------------------------------------------------------------------------------------------
def resolve_train_config(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read the proxy train config; return (shared config with absolute ``domains``, per-run defaults).

    A relative ``domains`` path is resolved against the config file's directory, then the working directory.
    """
    path = Path(path)
    cfg = read_yaml(path)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping of train config fields, got {type(cfg).__name__}")
    if not cfg.get("domains"):
        raise ConfigError(f"{path}: train config field 'domains' is missing: give the path of domains.json "
                          "(written by `regmix-megatron preprocess`)")
    domains = Path(str(cfg["domains"]))
    if not domains.is_absolute():
        candidates = [path.parent / domains, Path.cwd() / domains]
        found = [c for c in candidates if c.exists()]
        if not found:
            raise ConfigError(f"{path}: domains={cfg['domains']!r} not found (looked in {path.parent} and "
                              f"{Path.cwd()}): give an existing domains.json path")
        domains = found[0]
    if domains.is_dir():
        domains = domains / "domains.json"
    if not domains.is_file():
        raise ConfigError(f"{path}: domains={str(domains)!r} does not exist: give an existing domains.json path")
    defaults = {k: cfg.pop(k) for k in PER_RUN_FIELDS if k in cfg}
    for key in ("mixture", "output_dir", "run_id"):
        if key in defaults:
            log.info("%s: field %r is set per run by the sweep; the value in the file is ignored", path, key)
    cfg["domains"] = str(domains.resolve())
    return _resolve_with_trainer(cfg, source=str(path)), defaults


def _resolve_with_trainer(cfg: Mapping[str, Any], source: str) -> dict:
    """The config as the trainer resolves it (preset merged, every field explicit), minus per-run fields.

    Validation errors (field, value, fix) surface at plan time, and each run's ``config.yaml`` is exactly
    the resolved form the trainer itself saves in its run directory (it refuses to resume a run directory
    whose saved config differs).
    """
    from ..configs import config_to_dict
    from ..train_config import build_train_config

    resolved = config_to_dict(build_train_config(dict(cfg, mixture=None, output_dir="/plan-probe"),
                                                 source=source))
    return {k: v for k, v in resolved.items() if k not in PER_RUN_FIELDS}


def config_hash_of(train_config: Mapping[str, Any]) -> str:
    blob = json.dumps(train_config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_run_id(mixture_hash: str, config_hash: str, seed: int) -> str:
    """Deterministic id of a run: a hash of what defines it."""
    return hashlib.sha256(f"{mixture_hash}|{config_hash}|{int(seed)}".encode()).hexdigest()[:16]


def build_sweep(root: str | os.PathLike, mixtures: Sequence[Mixture], train_config: Mapping[str, Any],
                seed: int) -> Sweep:
    """The sweep for these inputs (in memory; :func:`plan_sweep` writes it)."""
    root = Path(root).resolve()
    registry = DomainRegistry.load(train_config["domains"])
    for i, m in enumerate(mixtures):
        registry.check_domains(m.domains, source=f"mixture {i + 1} (hash {m.hash})")
    chash = config_hash_of(train_config)
    runs = tuple(PlannedRun(run_id=make_run_id(m.hash, chash, seed), mixture=m, seed=int(seed)) for m in mixtures)
    return Sweep(root=root, train_config=dict(train_config), config_hash=chash,
                 domains_path=str(train_config["domains"]), domain_names=registry.names, seed=int(seed),
                 runs=runs)


def plan_sweep(root: str | os.PathLike, mixtures: Sequence[Mixture], train_config: Mapping[str, Any],
               seed: int) -> tuple[Sweep, bool]:
    """Write ``sweep.json`` and every run's ``config.yaml``. Returns (sweep, created).

    Re-planning identical inputs is a no-op (``created`` False, missing run configs restored); planning
    different inputs into a directory that holds a sweep raises :class:`SweepError`.
    """
    sweep = build_sweep(root, mixtures, train_config, seed)
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
        cfg_path = sweep.run_config_path(run.run_id)
        if not cfg_path.exists():  # the trainer may rewrite it with its resolved form: never overwrite
            atomic_write_yaml(cfg_path, sweep.run_config(run))
    if created:
        atomic_write_json(path, sweep.to_json_obj())  # last: a sweep dir looks planned only when complete
    return sweep, created


def _differences(old: Sweep, new: Sweep) -> list[str]:
    out = []
    if old.config_hash != new.config_hash:
        changed = sorted(k for k in set(old.train_config) | set(new.train_config)
                         if old.train_config.get(k) != new.train_config.get(k))
        out.append(f"train config hash {old.config_hash} vs {new.config_hash}, fields differing: {changed}")
    if old.seed != new.seed:
        out.append(f"seed {old.seed} vs {new.seed}")
    if old.run_ids() != new.run_ids():
        a, b = set(old.run_ids()), set(new.run_ids())
        out.append(f"{len(old.runs)} planned runs vs {len(new.runs)} now ({len(b - a)} new, {len(a - b)} missing"
                   f"{', same runs in another order' if a == b else ''})")
    return out


def default_seed() -> int | None:
    """The trainer's default seed, when its config class is importable."""
    try:
        from ..train_config import TrainConfig
    except ImportError:
        return None
    for f in dataclasses.fields(TrainConfig):
        if f.name == "seed" and f.default is not dataclasses.MISSING:
            return int(f.default)
    return None


def plan_from_files(mixtures_path: str | os.PathLike, config_path: str | os.PathLike, root: str | os.PathLike,
                    seed: int | None = None) -> tuple[Sweep, bool]:
    """``sweep plan``: read the mixtures and the proxy config, then :func:`plan_sweep`."""
    mixtures = read_mixtures(mixtures_path)
    train_config, defaults = resolve_train_config(config_path)
    if seed is None:
        seed = defaults.get("seed", default_seed())
    if seed is None:
        raise ConfigError(f"{config_path}: no seed: set `seed:` in the config or pass --seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{config_path}: seed={seed!r} must be an integer")
    return plan_sweep(root, mixtures, train_config, seed)
