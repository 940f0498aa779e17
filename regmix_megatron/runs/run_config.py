"""One training run: a recipe plus the run's own data, mixture, seed and output directory; its identity and id.

A run config file is a flat YAML mapping, what ``regmix-megatron train`` reads and what it saves (resolved)
into every run directory::

    preset: cpu-proxy
    domains: out/indexed/domains.json      # the registry written by `regmix-megatron preprocess`
    mixture: mixtures/m0001.json           # a mixture file, an inline mapping domain -> weight, or omitted
    # schedule: schedule.json              # or: phases with their own mixtures (a file or {phases: [...]})
    seed: 1234
    output_dir: runs/m0001
    optim: {train_steps: 300}              # every other field is the recipe's: it overrides the preset

The run fields (:data:`RUN_FIELDS`) make the :class:`RunConfig`; everything else is its
:class:`~regmix_megatron.runs.recipe.Recipe`. Relative paths are resolved against the file's directory.

**Run id.** A run is defined by what it computes: the data, the mixture, the recipe and the seed. Its id is
``content_hash(run_identity(...))`` over the hash of :func:`data_identity` (tokenizer sha256, vocabulary, and
the exact document and token counts of every domain's prefixes, never a path), the mixture hash (a schedule of
several phases: the schedule hash; a one-phase schedule has its mixture's hash), the recipe hash and the seed. The sweep names run directories by it and the trainer records it in ``result.json``, so
moving a project folder or a copy of ``domains.json`` keeps every id.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

from ..configs import check, config_to_dict, load_config
from ..errors import ConfigError, DataError
from ..fileio import atomic_write_yaml, read_yaml
from ..hashing import content_hash
from ..data.manifest import DomainRegistry
from ..mixtures.domains import check_trainable
from ..mixtures.mixture import Mixture
from ..mixtures.schedule import Schedule, ScheduleError, schedule_of
from .recipe import Recipe, build_recipe, merge_mappings

#: Fields of a run config file that belong to the run, not to its recipe.
RUN_FIELDS = ("domains", "mixture", "schedule", "seed", "output_dir")
DEFAULT_SEED = 1234


@dataclass
class RunConfig:
    """A recipe and the run's own fields. Build it with :func:`build_run_config` / :func:`load_run_config`."""

    recipe: Recipe
    domains: str
    """Path of domains.json (or its directory)."""
    mixture: Union[str, dict, None] = None
    """A mixture file (JSON/YAML) or an inline mapping domain -> weight. None: the natural (token) prior."""
    seed: int = DEFAULT_SEED
    output_dir: str = ""
    """The run directory."""
    schedule: Union[str, dict, None] = None
    """Instead of ``mixture``: a schedule file (``schedule.json``) or an inline ``{phases: [{fraction, weights},
    ...]}``; the run trains phase by phase (docs/SCHEDULES.md)."""

    def __post_init__(self) -> None:
        assert isinstance(self.recipe, Recipe), type(self.recipe)
        check(isinstance(self.domains, str) and bool(self.domains), "train", "domains", self.domains,
              "give the path of domains.json written by `regmix-megatron preprocess`")
        check(isinstance(self.output_dir, str) and bool(self.output_dir), "train", "output_dir",
              self.output_dir, "give a run directory (or pass --output-dir)")
        check(self.mixture is None or isinstance(self.mixture, (str, Mapping)), "train", "mixture",
              self.mixture, "give a mixture file path or a mapping domain -> weight")
        check(self.schedule is None or isinstance(self.schedule, (str, Mapping)), "train", "schedule",
              self.schedule, "give a schedule file path or a mapping {phases: [{fraction, weights}, ...]}")
        check(self.schedule is None or self.mixture is None, "train", "schedule", self.schedule,
              "give either mixture (one blend for the whole run) or schedule (phases), not both")
        check(isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0, "train", "seed",
              self.seed, "use an integer >= 0")

    def resolve(self) -> "ResolvedRun":
        """Load the registry and the schedule (a mixture: the one-phase schedule; pure file reads): what the run id
        is computed from."""
        registry = DomainRegistry.load(self.domains)
        if self.schedule is not None:
            return ResolvedRun(config=self, registry=registry, schedule=self.resolve_schedule(registry))
        return ResolvedRun(config=self, registry=registry,
                           schedule=Schedule.from_mixture(self.resolve_mixture(registry)))

    def resolve_schedule(self, registry: DomainRegistry) -> Schedule:
        """The run's schedule over exactly the registry's domains (missing domains get weight 0)."""
        try:
            schedule = schedule_of(self.schedule, source="train.schedule")
        except ScheduleError as exc:
            raise ConfigError(f"train.schedule: {exc}") from None
        unknown = sorted(set(schedule.domains) - set(registry.names))
        if unknown:
            raise DataError(f"train.schedule names domain(s) {unknown} that are not in {registry.path}; "
                            f"known domains: {list(registry.names)}")
        return schedule.restrict(registry.names)

    def resolve_mixture(self, registry: DomainRegistry) -> Mixture:
        """The run's mixture over exactly the registry's training domains (missing ones get weight 0; a weight on
        an evaluation-only domain is refused)."""
        if self.mixture is None:
            return Mixture.from_array(registry.names, registry.prior())
        if isinstance(self.mixture, str):
            mixture = Mixture.load(self.mixture)
        else:
            mixture = Mixture.from_dict(dict(self.mixture), source="train.mixture")
        unknown = sorted(set(mixture.domains) - set(registry.all_names))
        if unknown:
            raise DataError(f"train.mixture names domain(s) {unknown} that are not in {registry.path}; "
                            f"known domains: {list(registry.names)}")
        return check_trainable(registry, mixture.restrict(sorted(set(registry.names) | set(mixture.domains))),
                                      "train.mixture")

    def to_dict(self, relative_to: str | os.PathLike | None = None) -> dict:
        """The flat file form (run fields first, then the recipe's); with ``relative_to``, paths are written
        relative to that directory (where the file goes), so a folder that moves as a whole stays valid."""
        def path(value: str) -> str:
            return os.path.relpath(Path(value).resolve(), Path(relative_to).resolve()) if relative_to else value

        mixture = path(self.mixture) if isinstance(self.mixture, str) else config_to_dict(self.mixture)
        recipe = self.recipe.to_dict()
        out = {"preset": recipe.pop("preset"), "domains": path(self.domains), "mixture": mixture}
        if self.schedule is not None:  # only then: a static run's file is as it always was
            out["schedule"] = path(self.schedule) if isinstance(self.schedule, str) else config_to_dict(self.schedule)
        return {**out, "seed": self.seed, "output_dir": path(self.output_dir), **recipe}

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ResolvedRun:
    """A run config with its registry and what it trains loaded: everything its identity needs."""

    config: RunConfig
    registry: DomainRegistry
    schedule: Schedule
    """What the run trains: its schedule (a static run: the one-phase schedule of its mixture, same hash)."""

    @property
    def mixture(self) -> Mixture:
        """The run's token shares over all phases (:meth:`Schedule.overall`; a static run: its mixture)."""
        return self.schedule.overall()

    @property
    def scheduled(self) -> bool:
        """Whether the run config gives a schedule: then its files record it (``config.yaml``'s ``schedule``,
        ``result.json``'s ``schedule`` and ``phases``) whatever its number of phases, as the user wrote it."""
        return self.config.schedule is not None

    def identity(self) -> dict:
        return run_identity(self.config.recipe, self.registry, self.schedule, self.config.seed)

    @property
    def run_id(self) -> str:
        return content_hash(self.identity())

    def save_config(self, path: str | os.PathLike) -> Path:
        """Write the run config file with the mixture (or schedule) inline and paths relative to the file's
        directory."""
        path = Path(path)
        config = self.config.replace(**trained_fields(self.schedule, as_schedule=self.scheduled))
        return atomic_write_yaml(path, config.to_dict(relative_to=path.parent))


def trained_fields(schedule: Schedule, *, as_schedule: bool = False) -> dict:
    """What a run trains as a run config writes it: ``mixture`` (inline weights) for a static run, ``schedule``
    (its file form) for several phases or when the run was given as a schedule (``as_schedule``); the other field
    None."""
    if schedule.is_static and not as_schedule:
        return {"mixture": schedule.mixtures[0].as_dict(), "schedule": None}
    return {"mixture": None, "schedule": schedule.to_json_obj()}


def trained_schedule(config: RunConfig, source: str) -> Schedule | None:
    """The schedule a run config's ``mixture`` or ``schedule`` field gives inline (a mixture: its one-phase
    schedule); None for a file path or the natural prior (they need the registry: :meth:`RunConfig.resolve`)."""
    if isinstance(config.schedule, Mapping):
        return schedule_of(dict(config.schedule), source=source)
    if config.schedule is None and isinstance(config.mixture, Mapping):
        return Schedule.from_mixture(Mixture.from_dict(dict(config.mixture), source=source))
    return None


def evaluated_domains(recipe: Recipe, registry: DomainRegistry) -> tuple[str, ...]:
    """The domains a run of ``recipe`` evaluates: ``eval.domains`` (default every domain) plus every
    evaluation-only domain, in canonical order. Unknown names raise :class:`DataError`."""
    wanted = recipe.eval.domains
    if wanted is None:
        return registry.all_names
    unknown = sorted(set(wanted) - set(registry.all_names))
    if unknown:
        raise DataError(f"eval.domains names {unknown}, which {registry.path or 'domains.json'} does not have; "
                        f"domains: {list(registry.all_names)}")
    keep = set(wanted) | set(registry.eval_only_names)
    return tuple(d for d in registry.all_names if d in keep)


def evaluation_num_tokens(recipe: Recipe, registry: DomainRegistry, split: str | None = None) -> dict:
    """The domains a run of ``recipe`` evaluates (:func:`evaluated_domains`), each with the tokens it evaluates on
    ``split`` (None: ``eval.split``; a count, or ``all``: the whole split). ``eval.num_tokens_by_domain`` or
    ``eval.final_num_tokens_by_domain`` naming a domain the run does not evaluate raises :class:`DataError`."""
    names = evaluated_domains(recipe, registry)
    for key in ("num_tokens_by_domain", "final_num_tokens_by_domain"):
        extra = sorted(set(getattr(recipe.eval, key) or {}) - set(names))
        if extra:
            raise DataError(f"eval.{key} names {extra}, which this run does not evaluate (evaluated: "
                            f"{list(names)}, from {registry.path or 'domains.json'} and eval.domains): remove them, "
                            "or add them to eval.domains")
    return {name: recipe.eval.num_tokens_for(name, split) for name in names}


# ---- identity ---------------------------------------------------------------------------------------------
def data_identity(registry: DomainRegistry) -> dict:
    """What the data of a run is, without where it lies: the tokenizer's sha256, vocabulary and end-of-document
    id, and for every domain and split the document, sequence and token counts of each prefix, in order (and
    whether the domain is evaluation-only: that changes what a run evaluates and may train on)."""
    t = registry.tokenizer
    return {
        "tokenizer": {"type": t.type, "sha256": t.sha256, "vocab_size": t.vocab_size, "eod_id": t.eod_id},
        "domains": {d.name: {**{split: [[p.num_documents, p.num_sequences, p.num_tokens] for p in prefixes]
                                for split, prefixes in sorted(d.splits.items())},
                             **({"evaluation_only": True} if d.evaluation_only else {})}
                    for d in registry.domains},
    }


def training_data_differences(trained: dict, new: dict) -> list[str]:
    """How the data identity ``new`` differs from ``trained`` (two :func:`data_identity` records) in what a run
    trained on: the tokenizer, the training domains and their prefixes' counts. Evaluation-only domains may differ,
    appear or go. Empty: ``new`` holds the same training data."""
    def training(identity: dict) -> dict:
        return {n: d for n, d in identity["domains"].items() if not d.get("evaluation_only")}

    out = []
    if trained["tokenizer"] != new["tokenizer"]:
        out.append("the tokenizer differs (sha256, vocabulary or end-of-document id)")
    a, b = training(trained), training(new)
    if sorted(a) != sorted(b):
        out.append(f"the training domains differ ({sorted(a)} trained, {sorted(b)} given)")
    out += [f"training domain {n!r} has other documents or token counts" for n in sorted(set(a) & set(b))
            if a[n] != b[n]]
    return out


def run_identity(recipe: Recipe, registry: DomainRegistry | dict, mixture: Mixture | Schedule, seed: int) -> dict:
    """The content a run id is the hash of: data (a registry, or its :func:`data_identity` record), mixture (or
    schedule of several phases) and recipe hashes, and the seed. A one-phase schedule is its mixture: same
    identity."""
    key = "schedule" if isinstance(mixture, Schedule) and not mixture.is_static else "mixture"
    data = registry if isinstance(registry, dict) else data_identity(registry)
    return {"data": content_hash(data), key: mixture.hash, "recipe": recipe.hash, "seed": int(seed)}


def run_id(recipe: Recipe, registry: DomainRegistry, mixture: Mixture | Schedule, seed: int) -> str:
    """The id of the run of ``recipe`` on ``registry``'s data with ``mixture`` (or a schedule) and ``seed``."""
    return content_hash(run_identity(recipe, registry, mixture, seed))


# ---- loading ----------------------------------------------------------------------------------------------
def build_run_config(data: Mapping[str, Any] | None, *, source: str = "<config>",
                     overrides: Mapping[str, Any] | None = None,
                     base_dir: str | os.PathLike | None = None) -> RunConfig:
    """Resolve a flat mapping (+ overrides) into a validated :class:`RunConfig`.

    Relative ``domains``/``mixture``/``schedule``/``output_dir`` paths are resolved against ``base_dir`` (the config
    file's directory) when given.
    """
    data = dict(data or {})
    if overrides:
        data = merge_mappings(data, overrides)
    if "run_id" in data:
        raise ConfigError(f"{source}: train.run_id={data['run_id']!r} is invalid: a run's id is computed from its "
                          "data, mixture, recipe and seed; remove the field")
    known = set(RUN_FIELDS) | {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {unknown} for a run config; known fields: {sorted(known)}")
    run = {k: data.pop(k) for k in RUN_FIELDS if k in data}
    if base_dir is not None:
        for key in RUN_FIELDS:
            if key != "seed" and isinstance(run.get(key), str) and run[key] and not Path(run[key]).is_absolute():
                run[key] = str((Path(base_dir) / run[key]).resolve())
    recipe = build_recipe(data, source=source)
    return load_config(RunConfig, dict(run, recipe=recipe), source=source)


def load_run_config(path: str | os.PathLike | Mapping[str, Any], *, overrides: Mapping[str, Any] | None = None,
                    output_dir: str | os.PathLike | None = None) -> RunConfig:
    """From a YAML file (or a mapping). ``output_dir`` (the CLI's --output-dir) wins over the file."""
    if isinstance(path, Mapping):
        data, source, base_dir = dict(path), "<config>", None
    else:
        path = Path(path)
        data = read_yaml(path) or {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: a training config must be a mapping")
        source, base_dir = str(path), path.parent
    overrides = dict(overrides or {})
    if output_dir is not None:
        overrides["output_dir"] = str(Path(output_dir).resolve())
    return build_run_config(data, source=source, overrides=overrides, base_dir=base_dir)
