"""The files of a search: what it reads besides the model, and what it writes.

Reads: the prior the pool is drawn around (:func:`load_prior`: a ``domains.json``, token counts per domain, or a
file of token shares such as a RegMix config; :func:`load_weights_file`, :func:`tokens_from_mapping`). Writes (:func:`search_and_write`, which also runs the search): ``mixture.json`` (the
result, :meth:`Mixture.save`), ``top_k.csv`` (:func:`write_top_k`), with a domains manifest the Megatron-LM files
(:func:`regmix_megatron.export.export_mixture`, in ``export/``), and last ``search.json`` (:func:`summarize`, format
:data:`FORMAT`: the predicted target of the result and of each baseline as ``predicted_loss`` and ``predicted_sd``
(null for a regressor without uncertainty), how many candidates were averaged and why (``top_k_choice``),
``within_caps``, bounds, timings). The output folder is written whole and in place
(:func:`regmix_megatron.output_folder.output_folder`; its ``outputs.json`` last, the export sub-folder with its own):
all of these files, or, after a failed or killed search, the previous ones or none. :func:`read_search` reads
``search.json`` of a complete folder.

Pure core: numpy, pandas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .errors import DataError, RegmixError
from .fileio import atomic_path, atomic_write_json, read_json, read_yaml
from .mixture import Mixture
from .search import (SearchConfig, SearchResult, TopKChoice, baseline_mixtures, check_within_bounds,
                     make_predict_fn, run_search)
from .target import Target

#: v2: ``predicted`` became ``predicted_loss`` beside ``predicted_sd``; ``top_k.k`` and ``top_k_choice``.
FORMAT = "regmix-megatron/search/v2"
#: The files of a search folder besides its export sub-folder.
SEARCH_FILES = ("mixture.json", "search.json", "top_k.csv")


def search_folder_files(export_dir: str, schedules: bool = False) -> tuple[str, ...]:
    """What a search folder holds (:class:`regmix_megatron.output_folder.Owned` patterns): the search files, the
    export sub-folder (a mixture export; for schedules a schedule export and ``static/``, the best static
    mixture's) and the export folder's old name, a link the ``search`` command keeps."""
    from .export import EXPORT_FILES, OLD_EXPORT_DIR, SCHEDULE_EXPORT_FILES

    if schedules:
        export = (*SCHEDULE_EXPORT_FILES, *(f"static/{name}" for name in EXPORT_FILES))
        return (*SEARCH_FILES, "schedule.json", *(f"{export_dir}/{p}" for p in export), OLD_EXPORT_DIR)
    return (*SEARCH_FILES, *(f"{export_dir}/{name}" for name in EXPORT_FILES), OLD_EXPORT_DIR)


def read_search(search_dir: str | Path) -> dict:
    """``search.json`` of a complete search folder (refused when incomplete:
    :func:`regmix_megatron.output_folder.read_outputs`), its format checked."""
    from .output_folder import read_outputs

    read_outputs(search_dir, "search folder")
    path = Path(search_dir) / "search.json"
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f"{path}: not a search summary (expected \"format\": \"{FORMAT}\"); run `search` again")
    return doc
#: Scale applied to a prior given as fractions, so it can stand in for token counts (share-based caps only).
PRIOR_TOKEN_SCALE = 1e12


@dataclass(frozen=True)
class SearchPrior:
    """What the search pool is drawn around: train tokens per domain (the regressor's order) and the natural
    mixture, from one of three sources."""

    tokens: np.ndarray
    mixture: Mixture
    registry: Any = None
    """The :class:`~regmix_megatron.manifest.DomainRegistry` when read from ``domains.json`` (enables export)."""
    shares_only: bool = False
    """The tokens are token shares scaled by :data:`PRIOR_TOKEN_SCALE`: epoch caps cannot be computed."""


def load_prior(domains: Sequence[str], *, domains_json: str | None = None, tokens_file: str | None = None,
               prior_file: str | None = None) -> SearchPrior:
    """The prior from exactly one of: a ``domains.json`` (exact token counts), a mapping domain -> training
    tokens, or a mixture file of token shares (e.g. a RegMix config)."""
    from .manifest import DomainRegistry

    domains = list(domains)
    if domains_json:
        registry = DomainRegistry.load(domains_json)
        registry.verify_files(full=False)  # its counts set the prior and the caps, and the result is exported from it
        return SearchPrior(registry.tokens_per_domain("train").astype("float64"),
                           Mixture.from_array(registry.names, registry.prior("train")), registry)
    if tokens_file:
        tokens = tokens_from_mapping(load_weights_file(tokens_file, "--tokens-per-domain"), domains,
                                     f"--tokens-per-domain {tokens_file}")
        return SearchPrior(tokens, Mixture.from_array(domains, tokens))
    shares = tokens_from_mapping(load_weights_file(prior_file, "--prior"), domains, f"--prior {prior_file}")
    tokens = shares / shares.sum() * PRIOR_TOKEN_SCALE
    return SearchPrior(tokens, Mixture.from_array(domains, tokens), shares_only=True)


def load_weights_file(path: str | Path, what: str = "prior") -> dict[str, float]:
    """A mapping domain -> number from JSON/YAML: a mixture file (``{"weights": {...}}`` or a plain mapping), a
    RegMix config (``{"train": {"train_the_pile_x": w}}``), or token counts. RegMix ``train_the_pile_`` /
    ``train_`` prefixes are stripped. No normalization here."""
    from .regression.data import regmix_domain

    path = Path(path)
    obj = read_yaml(path) if path.suffix in (".yaml", ".yml") else read_json(path)
    if isinstance(obj, Mapping):
        for key in ("weights", "train", "tokens_per_domain"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise DataError(f"{what} {path}: expected a mapping domain -> number (or {{'weights': {{...}}}})")
    out: dict[str, float] = {}
    for key, value in obj.items():
        name = regmix_domain(str(key)) or str(key)
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{what} {path}: value of {key!r} is {value!r}, not a number") from None
        if not math.isfinite(x) or x < 0:
            raise DataError(f"{what} {path}: value of {key!r} is {value!r}: use a finite number >= 0")
        if name in out:
            raise DataError(f"{what} {path}: domain {name!r} listed twice")
        out[name] = x
    return out


def tokens_from_mapping(values: Mapping[str, float], domains: Sequence[str], source: str,
                        scale: float = 1.0) -> np.ndarray:
    """Token counts (float64) over ``domains`` from a mapping; names must match exactly."""
    missing = sorted(set(domains) - set(values))
    unknown = sorted(set(values) - set(domains))
    if missing or unknown:
        raise DataError(f"{source}: domains do not match the model's: missing {missing}, unknown {unknown}; "
                        f"give a value for each of {list(domains)}")
    t = np.array([values[d] for d in domains], dtype=np.float64) * scale
    if t.sum() <= 0:
        raise DataError(f"{source}: all values are zero")
    return t


def predicted_json(estimate: Callable[[np.ndarray], Any], rows: np.ndarray) -> list[dict]:
    """``{"predicted_loss", "predicted_sd"}`` per row (sd None when the regressor gives no uncertainty)."""
    pred = estimate(np.atleast_2d(rows))
    sds = [None] * len(pred.mean) if pred.sd is None else [float(v) for v in pred.sd]
    return [{"predicted_loss": float(m), "predicted_sd": sd} for m, sd in zip(pred.mean, sds)]


def summarize(result: SearchResult, domains: Sequence[str], baselines: Mapping[str, Mixture],
              estimate: Callable[[np.ndarray], Any], config: SearchConfig, *, target: str,
              extra: Mapping[str, Any] | None = None) -> dict:
    """The JSON document written as ``search.json``; ``estimate`` is the regressor's ``predict_with_sd``."""
    domains = list(domains)
    base = {}
    names = list(baselines)
    rows = np.stack([baselines[n].as_array(domains) for n in names]) if names else np.empty((0, len(domains)))
    for name, w, pred in zip(names, rows, predicted_json(estimate, rows) if names else []):
        base[name] = {**pred, "weights": baselines[name].as_dict(),
                      "within_caps": bool(check_within_bounds(w, result.lower, result.upper)[0])}
    mine = predicted_json(estimate, result.mixture.as_array(domains))[0]
    sign = -1.0 if config.maximize else 1.0
    better = [n for n, b in base.items() if sign * result.predicted < sign * b["predicted_loss"]]
    choice = result.top_k
    doc = {
        "format": FORMAT,
        "target": target,
        "objective": "maximize" if config.maximize else "minimize",
        "config": {"num_candidates": config.num_candidates, "top_k": config.top_k,
                   "chunk_size": config.chunk_size, "seed": config.seed},
        "result": {"predicted_loss": result.predicted, "predicted_sd": mine["predicted_sd"],
                   "weights": result.mixture.as_dict(),
                   "hash": result.mixture.hash,
                   "within_caps": bool(check_within_bounds(result.mixture.as_array(domains), result.lower,
                                                           result.upper)[0])},
        "top_k": {"k": int(result.top_scores.shape[0]), "best": float(result.top_scores[0]),
                  "worst": float(result.top_scores[-1]), "mean": float(result.top_scores.mean())},
        "top_k_choice": (choice or TopKChoice(int(result.top_scores.shape[0]), "fixed", "given")).to_json(),
        "baselines": base,
        "result_beats": sorted(better),
        "domains": domains,
        "bounds": {"lower": dict(zip(domains, map(float, result.lower))),
                   "upper": dict(zip(domains, map(float, result.upper)))},
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
    }
    if extra:
        doc.update(extra)
    return doc


def write_top_k(result: SearchResult, domains: Sequence[str], path: str | Path,
                sd: np.ndarray | None = None) -> Path:
    """The top-k candidates (rank, pool position, predicted, its sd when known, weights) as CSV, atomically."""
    import pandas as pd

    frame = pd.DataFrame(result.top_rows, columns=list(domains))
    if sd is not None:
        frame.insert(0, "predicted_sd", sd)
    frame.insert(0, "predicted", result.top_scores)
    frame.insert(0, "pool_position", result.top_positions)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.17g")
    return Path(path)


def search_and_write(regressor: Any, tokens_per_domain: np.ndarray, sampler_config: Any, config: SearchConfig,
                     output_dir: str | Path, *, registry: Any = None, prior: Mixture | None = None,
                     extra_baselines: Mapping[str, Mixture] | None = None, fast: bool = True,
                     progress: Callable[[int, int], None] | None = None,
                     extra: Mapping[str, Any] | None = None, export_dir: str | None = None,
                     target: Target | None = None, path_map: Any = None) -> dict:
    """Run the search for a fitted ``regressor`` and write ``mixture.json``, ``search.json``, ``top_k.csv`` and,
    with a ``registry`` (:class:`~regmix_megatron.manifest.DomainRegistry`), the Megatron files under
    ``export_dir/`` (default ``export/``; ``path_map``, an :class:`~regmix_megatron.export.PathMap`, rewrites their
    paths for the cluster). ``tokens_per_domain`` is in the regressor's domain order; ``prior`` defaults to the token
    shares; ``target`` (for the ``target_only`` baseline) defaults to the one the model predicts. Returns the
    ``search.json`` document."""
    from .export import EXPORT_DIR
    from .output_folder import check_output_folder, output_folder, seal_folder

    domains = list(regressor.domains)
    out = Path(output_dir)
    export_dir = export_dir or EXPORT_DIR
    owned = search_folder_files(export_dir)
    check_output_folder(out, owned, "search output directory")  # before the work, not after
    if registry is not None:
        regressor.check_domains(registry.names, f"domains manifest {registry.path or ''}".strip())
    if prior is None:
        prior = Mixture.from_array(domains, tokens_per_domain)
    if target is None:
        target = regressor.definition
    baselines = baseline_mixtures(prior, target, extra_baselines)
    predict = make_predict_fn(regressor, fast=fast)
    if config.auto_top_k and not regressor.gives_uncertainty:
        raise RegmixError(f"top_k auto chooses k by the model's uncertainty, and the {regressor.kind} model gives "
                          "none: use the ensemble (search.regressor: ensemble, or fit --regressors ...,ensemble and "
                          "search --regressor ensemble) or a fixed top_k such as 100")
    result = run_search(predict, tokens_per_domain, domains, sampler_config, config, progress=progress,
                        estimate=regressor.predict_with_sd)
    files: dict[str, Any] = {"top_k": str(out / "top_k.csv"), "mixture": str(out / "mixture.json")}
    doc_extra: dict[str, Any] = {"regressor": regressor.kind, "model": getattr(regressor, "path", "") or None,
                                 "files": files}
    with output_folder(out, owned=owned, what="search output directory") as tmp:
        write_top_k(result, domains, tmp / "top_k.csv", sd=regressor.predict_with_sd(result.top_rows).sd)
        if registry is not None:
            from .export import write_mixture_files

            exported = write_mixture_files(registry, result.mixture.restrict(registry.names), tmp / export_dir,
                                           path_map=path_map, final_dir=out / export_dir)
            seal_folder(tmp / export_dir)
            files["export"] = {k: str(out / export_dir / name) for k, name in exported.items()}
        else:
            doc_extra["export_skipped"] = "no domains manifest given (no Megatron prefixes to write)"
        doc_extra.update(extra or {})
        doc = summarize(result, domains, baselines, regressor.predict_with_sd, config, target=regressor.target,
                        extra=doc_extra)
        result.mixture.save(tmp / "mixture.json")
        atomic_write_json(tmp / "search.json", doc)
    return doc


# ---- schedules --------------------------------------------------------------------------------------------------
def schedule_search_and_write(regressor: Any, tokens_per_domain: np.ndarray, domains: Sequence[str],
                              sampler_config: Any, fractions: Sequence[float], config: SearchConfig,
                              output_dir: str | Path, *, registry: Any = None, prior: Mixture | None = None,
                              fast: bool = True, progress: Callable[[int, int], None] | None = None,
                              export_dir: str | None = None, target: Target | None = None) -> dict:
    """The search over schedules for a regressor fitted on schedule features
    (:mod:`regmix_megatron.schedule_search`), and the best static mixture under the same model. Writes
    ``schedule.json`` (the winner), ``mixture.json`` (the best static mixture), ``top_k.csv`` (features), with a
    ``registry`` the Megatron files (``export_dir/``: :func:`regmix_megatron.export.export_schedule`, and
    ``export_dir/static/`` for the static mixture), and last ``search.json``: the :func:`summarize` document over the
    features (static baselines, ``regmix_static`` included, expressed as schedules whose phases are equal) plus
    ``schedule`` and ``static`` sections. Returns the document."""
    from .schedule import Schedule, feature_names
    from .schedule_search import run_schedule_search, run_static_search, within_joint_caps

    domains = list(domains)
    names = feature_names(domains, len(fractions))
    regressor.check_domains(names, f"schedule features of {len(fractions)} phases over {domains}")
    prior = prior if prior is not None else Mixture.from_array(domains, tokens_per_domain)
    predict = make_predict_fn(regressor, fast=fast)
    result, schedule, stats = run_schedule_search(predict, tokens_per_domain, domains, sampler_config, fractions,
                                                  config, progress=progress)
    static = run_static_search(predict, tokens_per_domain, domains, sampler_config, schedule.fractions, config)
    statics = {**baseline_mixtures(prior, target if target is not None else regressor.definition),
               "regmix_static": static.mixture}

    def as_features(m: Mixture) -> Mixture:
        return Mixture.from_array(names, Schedule.from_phases([(f, m) for f in schedule.fractions]).features(domains))

    from .export import EXPORT_DIR
    from .output_folder import output_folder, seal_folder

    sds = predicted_json(regressor.predict_with_sd, np.stack([result.mixture.as_array(names),
                                                              as_features(static.mixture).as_array(names)]))
    schedule_sd, static_sd = sds[0]["predicted_sd"], sds[1]["predicted_sd"]
    out = Path(output_dir)
    export_dir = export_dir or EXPORT_DIR
    owned = search_folder_files(export_dir, schedules=True)
    files: dict[str, Any] = {"top_k": str(out / "top_k.csv"), "schedule": str(out / "schedule.json"),
                             "mixture": str(out / "mixture.json")}
    with output_folder(out, owned=owned, what="search output directory") as tmp:
        write_top_k(result, names, tmp / "top_k.csv", sd=regressor.predict_with_sd(result.top_rows).sd)
        if registry is not None:
            from .export import write_mixture_files, write_schedule_files

            exported = write_schedule_files(registry, schedule.restrict(registry.names), tmp / export_dir,
                                            final_dir=out / export_dir)
            exported.update({f"static_{k}": f"static/{name}" for k, name in write_mixture_files(
                registry, static.mixture.restrict(registry.names), tmp / export_dir / "static",
                final_dir=out / export_dir / "static").items()})
            seal_folder(tmp / export_dir / "static")
            seal_folder(tmp / export_dir)
            files["export"] = {k: str(out / export_dir / rel) for k, rel in exported.items()}
        extra = {"regressor": regressor.kind, "model": getattr(regressor, "path", "") or None, "files": files,
                 "schedule": {"fractions": list(schedule.fractions), "hash": schedule.hash,
                              "phases": schedule.to_json_obj()["phases"], "predicted_loss": result.predicted,
                              "predicted_sd": schedule_sd,
                              "within_joint_caps": within_joint_caps(schedule, tokens_per_domain, sampler_config),
                              "pool": {"num_drawn": stats.num_drawn, "num_accepted": stats.num_accepted,
                                       "num_static_cap": stats.num_strict}},
                 "static": {"weights": static.mixture.as_dict(), "hash": static.mixture.hash,
                            "predicted_loss": static.predicted, "predicted_sd": static_sd}}
        doc = summarize(result, names, {k: as_features(m) for k, m in statics.items()}, regressor.predict_with_sd,
                        config, target=regressor.target, extra=extra)
        schedule.save(tmp / "schedule.json")
        static.mixture.save(tmp / "mixture.json")
        atomic_write_json(tmp / "search.json", doc)
    return doc
