"""The files a search writes, and the typed reader of ``search.json``.

A search folder (:func:`search_folder`, written whole and in place: :func:`regmix_megatron.output_folder.output_folder`,
its ``outputs.json`` last) holds ``mixture.json`` (the best static mixture: for a search of one phase, the result),
for several phases ``schedule.json`` (the best schedule), ``top_k.csv`` (:func:`write_top_k`; its columns the
features, one phase: the domains) and ``search.json`` (:func:`summarize`, format :data:`FORMAT`: the predicted
target of the result and of each baseline as ``predicted_loss`` and ``predicted_sd`` (null for a regressor without
uncertainty), how many candidates were averaged and why (``top_k_choice``), ``within_caps``, bounds, timings; for
several phases ``schedule`` and ``static`` sections). :func:`write_search_files` writes them into the staging
folder. Other steps write into the same folder with the search, whole with it: the export step its sub-folder
(the ``search`` command and the pipeline's search stage compose the two; ``also_owned`` names the sub-folder's
files), so a search folder and its export never mix two searches. :func:`read_search` reads ``search.json`` of a
complete folder as a :class:`SearchSummary`.

Pure core: numpy, pandas.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..configs import Field
from ..errors import DataError
from ..fileio import atomic_path, atomic_write_json, read_json
from ..mixtures.caps import within_joint_caps
from ..mixtures.mixture import Mixture
from ..mixtures.schedule import Schedule
from .pool import SearchConfig, SearchOutcome, SearchResult, check_within_bounds
from .top_k import TopKChoice

#: v2: ``predicted`` became ``predicted_loss`` beside ``predicted_sd``; ``top_k.k`` and ``top_k_choice``.
FORMAT = "regmix-megatron/search/v2"
SUMMARY_FILE = "search.json"
MIXTURE_FILE = "mixture.json"
SCHEDULE_FILE = "schedule.json"
TOP_K_FILE = "top_k.csv"
#: The files of a search folder besides what other steps write into it (its export sub-folder).
SEARCH_FILES = (MIXTURE_FILE, SUMMARY_FILE, TOP_K_FILE)


def search_folder_files(also_owned: Sequence[str] = ()) -> tuple[str, ...]:
    """What a search folder holds (:class:`regmix_megatron.output_folder.Owned` patterns): the search's files
    (``schedule.json`` for several phases) and ``also_owned``, what other steps write into it with the search."""
    return (*SEARCH_FILES, SCHEDULE_FILE, *also_owned)


def check_search_folder(output_dir: str | Path, also_owned: Sequence[str] = ()) -> None:
    """Refuse a search folder the search cannot write whole, before the work (a file, read-only, foreign files)."""
    from ..output_folder import check_output_folder

    check_output_folder(output_dir, search_folder_files(also_owned), "search output directory")


@contextlib.contextmanager
def search_folder(output_dir: str | Path, also_owned: Sequence[str] = ()) -> Iterator[Path]:
    """The search folder written whole and in place: yields the staging folder, where the search's files
    (:func:`write_search_files`) and ``also_owned`` (another step's, e.g. the export sub-folder) are written; when the
    block ends they all move into ``output_dir`` and ``outputs.json`` is written last."""
    from ..output_folder import output_folder

    with output_folder(output_dir, owned=search_folder_files(also_owned), what="search output directory") as stage:
        yield stage


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


def read_top1(path: str | Path, domains: Sequence[str]) -> Mixture:
    """The best predicted candidate (rank 1) of a ``top_k.csv`` of one phase (its columns the ``domains``)."""
    import pandas as pd

    frame = pd.read_csv(path)
    missing = sorted(set(domains) - set(frame.columns))
    if frame.empty or "rank" not in frame.columns or missing:
        raise DataError(f"{path}: expected the columns rank and {list(domains)} with at least one row (missing "
                        f"{missing or 'rows'}); run the search again")
    row = frame.loc[frame["rank"].idxmin()]
    return Mixture.from_array(list(domains), [float(row[d]) for d in domains], source=f"{path}: rank 1")


def write_search_files(stage: Path, output_dir: str | Path, outcome: SearchOutcome, regressor: Any,
                       baselines: Mapping[str, Mixture], config: SearchConfig, *, tokens_per_domain: np.ndarray,
                       sampler_config: Any, exported: Mapping[str, str] | None = None,
                       extra: Mapping[str, Any] | None = None) -> "SearchSummary":
    """The search's files of ``outcome`` written into ``stage`` (a :func:`search_folder` staging folder;
    ``output_dir`` is where they will live): ``top_k.csv``, ``mixture.json``, for several phases ``schedule.json``,
    and ``search.json``. ``baselines`` are static mixtures over the domains (for several phases the best static
    mixture joins them as ``regmix_static``, and all are compared as schedules whose phases are equal);
    ``exported`` lists what the export step wrote into the folder (``{kind: path relative to output_dir}``), None
    when it wrote nothing; ``extra`` is added to ``search.json``. Returns its :class:`SearchSummary`."""
    out = Path(output_dir)
    best, names, several = outcome.best, outcome.feature_names, len(outcome.fractions) > 1
    files: dict[str, Any] = {"top_k": str(out / TOP_K_FILE)}
    if several:
        files["schedule"] = str(out / SCHEDULE_FILE)
    files["mixture"] = str(out / MIXTURE_FILE)
    write_top_k(best, names, stage / TOP_K_FILE, sd=regressor.predict_with_sd(best.top_rows).sd)
    doc_extra: dict[str, Any] = {"regressor": regressor.kind, "model": getattr(regressor, "path", "") or None,
                                 "files": files}
    if exported is not None:
        files["export"] = {k: str(out / rel) for k, rel in exported.items()}
    else:
        doc_extra["export_skipped"] = "no domains manifest given (no Megatron prefixes to write)"
    if several:
        baselines = {**baselines, "regmix_static": outcome.static_mixture}
        doc_extra.update(_schedule_sections(outcome, regressor, tokens_per_domain, sampler_config))
    doc_extra.update(extra or {})
    as_features = {k: _as_features(m, outcome) for k, m in baselines.items()}
    doc = summarize(best, names, as_features, regressor.predict_with_sd, config, target=regressor.target,
                    extra=doc_extra)
    if several:
        outcome.schedule.save(stage / SCHEDULE_FILE)
    outcome.static_mixture.save(stage / MIXTURE_FILE)
    atomic_write_json(stage / SUMMARY_FILE, doc)
    return SearchSummary.from_json(doc, str(out / SUMMARY_FILE))


def _as_features(mixture: Mixture, outcome: SearchOutcome) -> Mixture:
    """A static mixture as the features of the schedule that uses it in every phase (one phase: the mixture)."""
    schedule = Schedule.from_phases([(f, mixture) for f in outcome.fractions])
    return Mixture.from_array(outcome.feature_names, schedule.features(outcome.domains))


def _schedule_sections(outcome: SearchOutcome, regressor: Any, tokens_per_domain: np.ndarray,
                       sampler_config: Any) -> dict:
    """``search.json``'s ``schedule`` (the best schedule) and ``static`` (the best static mixture) sections."""
    best, static, schedule = outcome.best, outcome.static, outcome.schedule
    names = outcome.feature_names
    sds = predicted_json(regressor.predict_with_sd, np.stack([best.mixture.as_array(names),
                                                              _as_features(static.mixture, outcome).as_array(names)]))
    stats = best.stats
    return {"schedule": {"fractions": list(schedule.fractions), "hash": schedule.hash,
                         "phases": schedule.to_json_obj()["phases"], "predicted_loss": best.predicted,
                         "predicted_sd": sds[0]["predicted_sd"],
                         "within_joint_caps": within_joint_caps(schedule, tokens_per_domain, sampler_config),
                         "pool": {"num_drawn": stats.num_drawn, "num_accepted": stats.num_accepted,
                                  "num_static_cap": stats.num_strict}},
            "static": {"weights": static.mixture.as_dict(), "hash": static.mixture.hash,
                       "predicted_loss": static.predicted, "predicted_sd": sds[1]["predicted_sd"]}}


# ---- the typed reader --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Predicted:
    """A mixture (over the domains, or a schedule's features) and the model's prediction for it."""

    predicted_loss: float
    predicted_sd: float | None
    """None for a regressor without uncertainty."""
    weights: dict[str, float]
    within_caps: bool | None = None
    hash: str | None = None

    @classmethod
    def read(cls, f: Field) -> "Predicted":
        f.mapping()
        return cls(predicted_loss=_number(f["predicted_loss"]),
                   predicted_sd=None if f.get("predicted_sd").value is None else _number(f["predicted_sd"]),
                   weights={k: _number(v) for k, v in f["weights"].fields().items()},
                   within_caps=None if "within_caps" not in f.mapping() else f["within_caps"].flag(),
                   hash=None if "hash" not in f.mapping() else f["hash"].text())


@dataclass(frozen=True)
class SchedulePick:
    """``search.json``'s ``schedule`` section: the best schedule of a search of several phases."""

    fractions: tuple[float, ...]
    hash: str
    phases: tuple[dict, ...]
    predicted_loss: float
    predicted_sd: float | None
    within_joint_caps: bool
    pool: dict

    @classmethod
    def read(cls, f: Field) -> "SchedulePick":
        return cls(fractions=tuple(_number(x) for x in f["fractions"].items()), hash=f["hash"].text(),
                   phases=tuple(p.mapping() for p in f["phases"].items()),
                   predicted_loss=_number(f["predicted_loss"]),
                   predicted_sd=None if f.get("predicted_sd").value is None else _number(f["predicted_sd"]),
                   within_joint_caps=f["within_joint_caps"].flag(), pool=f["pool"].mapping())


@dataclass(frozen=True)
class SearchSummary:
    """``search.json`` read (:func:`read_search`) or as written (:func:`write_search_files`)."""

    target: str
    """The fit's column name of the target the model predicts."""
    objective: str
    """``minimize`` or ``maximize``."""
    domains: tuple[str, ...]
    """What the weights are over: the domains, or for several phases the schedule features."""
    result: Predicted
    baselines: dict[str, Predicted]
    result_beats: tuple[str, ...]
    top_k: int
    """How many candidates were averaged."""
    top_k_choice: TopKChoice
    num_candidates: int
    seed: int
    upper: dict[str, float]
    """The per-domain (per-feature) caps the search kept."""
    regressor: str | None
    files: dict
    schedule: SchedulePick | None = None
    static: Predicted | None = None
    """Several phases: the best static mixture under the same model."""
    doc: dict | None = None
    """The whole document as written (its extra keys: ``model``, ``seconds``, a command's record)."""

    @classmethod
    def from_json(cls, doc: Any, where: str) -> "SearchSummary":
        f = Field(doc, where, "run `search` again")
        if f.get("format").value != FORMAT:
            raise DataError(f"{where}: not a search summary (expected \"format\": \"{FORMAT}\"); run `search` again")
        choice = f["top_k_choice"]
        return cls(
            target=f["target"].text(), objective=f["objective"].choice(("minimize", "maximize")),
            domains=tuple(d.text() for d in f["domains"].items()), result=Predicted.read(f["result"]),
            baselines={k: Predicted.read(v) for k, v in f["baselines"].fields().items()},
            result_beats=tuple(b.text() for b in f["result_beats"].items()), top_k=f["top_k"]["k"].count(),
            top_k_choice=TopKChoice(choice["k"].count(), choice["rule"].text(), choice["reason"].text(),
                                    tuple(t.mapping() for t in choice.get("tried", []).items())),
            num_candidates=f["config"]["num_candidates"].count(), seed=f["config"]["seed"].count(),
            upper={k: _number(v) for k, v in f["bounds"]["upper"].fields().items()},
            regressor=f.get("regressor").value, files=f.get("files", {}).mapping(),
            schedule=SchedulePick.read(f["schedule"]) if f.get("schedule").value is not None else None,
            static=Predicted.read(f["static"]) if f.get("static").value is not None else None, doc=doc)

    def to_json(self) -> dict:
        return dict(self.doc or {})

    @property
    def export_files(self) -> dict[str, str] | None:
        """``{kind: path}`` of the export the search folder holds (``files.export``; ``files.megatron`` before
        the folder's rename), None without one."""
        return self.files.get("export") or self.files.get("megatron") or None

    def predicted(self) -> dict[str, float]:
        """``regmix`` (the result) and every baseline: the predicted target."""
        return {"regmix": self.result.predicted_loss, **{k: b.predicted_loss for k, b in self.baselines.items()}}

    def predicted_sd(self) -> dict[str, float | None]:
        """``regmix`` and every baseline: the sd of the prediction (None without uncertainty)."""
        return {"regmix": self.result.predicted_sd, **{k: b.predicted_sd for k, b in self.baselines.items()}}


def _number(f: Field) -> float:
    if isinstance(f.value, bool) or not isinstance(f.value, (int, float)):
        raise DataError(f"{f.where}: field {f.path!r} must be a number, not {f.value!r}"
                        + (f"; {f.fix}" if f.fix else ""))
    return float(f.value)


def read_search(search_dir: str | Path) -> SearchSummary:
    """``search.json`` of a complete search folder (refused when incomplete:
    :func:`regmix_megatron.output_folder.read_outputs`), read as a :class:`SearchSummary` (errors name the field)."""
    from ..output_folder import read_outputs

    read_outputs(search_dir, "search folder")
    path = Path(search_dir) / SUMMARY_FILE
    return SearchSummary.from_json(read_json(path), str(path))


__all__ = ["FORMAT", "SEARCH_FILES", "search_folder_files", "check_search_folder", "search_folder",
           "write_search_files", "predicted_json", "summarize", "write_top_k", "read_top1", "Predicted",
           "SchedulePick", "SearchSummary", "read_search"]
