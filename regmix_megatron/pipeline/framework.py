"""Resumable stages: each records the hash of its inputs, is skipped when they match, redone when they change.

A :class:`Stage` declares a function of the config that returns its *config inputs* (a JSON-able subset), the
upstream stages whose outputs it reads, and a ``run`` function returning a :class:`StageOutput`. The input hash
is :func:`regmix_megatron.hashing.content_hash` (all 64 hex digits) of
``{"config": <subset>, "upstream": {stage: output fingerprint}}``, so a stage is redone exactly when its own
settings changed or an upstream stage produced different outputs.

On completion the runner writes ``OUT/stages/<name>.json`` atomically::

    {"format": "regmix-megatron/stage/v1", "stage": "fit", "input_hash": "...", "inputs": {...},
     "outputs": {"files": {"model": "fit/model.txt", ...}, "values": {...}, "summary": "rho=0.93"},
     "fingerprint": "...", "seconds": 1.2, "finished_at": "2026-11-25T03:00:00Z"}

A stage is *skipped* when its record exists, the recorded input hash equals the current one, every file it
listed still exists and, for a stage with a ``verify`` check (the indexed datasets: :mod:`regmix_megatron.data.index_files`),
its files pass it; a stage whose files fail is run again. Before a stage (re)runs its record is deleted, so a run killed mid-stage never looks
complete; when a rerun changes a stage's fingerprint, the records of all later stages are deleted too.
Stages resume their own work (training runs have checkpoints, sweeps skip finished runs).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from ..errors import RegmixError
from ..fileio import atomic_write_json, is_temporary, read_json
from ..hashing import content_hash

if TYPE_CHECKING:
    from .config import PipelineConfig

log = logging.getLogger(__name__)

RECORD_FORMAT = "regmix-megatron/stage/v1"
SUMMARY_FORMAT = "regmix-megatron/run-summary/v1"


@dataclass
class StageOutput:
    """What a stage produced: files (paths relative to the output dir, or absolute outside it), JSON values
    for downstream stages, a one-line human summary, and a fingerprint of the content."""

    files: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    fingerprint: str = ""
    """Content hash of the outputs; default: hash of ``files`` contents and ``values``."""

    def to_json_obj(self) -> dict:
        return {"files": dict(self.files), "values": self.values, "summary": self.summary}


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: Callable[[PipelineConfig], dict]
    """config -> the JSON-able subset of the config this stage depends on."""
    run: Callable[["StageContext"], StageOutput]
    after: tuple[str, ...] = ()
    """Upstream stages whose outputs this stage reads."""
    estimate_s: Callable[[PipelineConfig], float] = lambda cfg: 1.0
    """Rough expected seconds (weights the progress display)."""
    description: str = ""
    verify: Callable[[dict[str, Path]], None] | None = None
    """A cheap check of a completed stage's files (absolute paths by key), run before it is skipped; a
    :class:`RegmixError` it raises makes the stage run again instead (its files are damaged)."""


@dataclass
class StageResult:
    stage: str
    status: str
    """done | skipped | failed | not run"""
    seconds: float
    summary: str = ""
    files: dict[str, str] = field(default_factory=dict)


class Progress:
    """Progress across stages. This base class only logs; the CLI passes a tqdm-backed subclass."""

    def begin(self, stages: Sequence[tuple[str, float]]) -> None:
        """Called once with every stage that may run and its estimated seconds."""

    def start_stage(self, name: str) -> None:
        log.info("stage %s: running", name)

    def update(self, fraction: float, note: str = "") -> None:
        """Fraction (0..1) of the current stage done."""

    def reestimate(self, remaining_s: float) -> None:
        """The seconds the current stage still needs, as measured (e.g. the per-run time of its finished runs x
        the runs left): it replaces the config's estimate, and later stages of the same kind are scaled alike."""

    def end_stage(self, name: str, status: str, seconds: float) -> None:
        log.info("stage %s: %s (%.1f s)", name, status, seconds)

    def close(self) -> None:
        pass


@dataclass
class StageContext:
    config: PipelineConfig
    out: Path
    records: dict[str, dict]
    progress: Progress
    stage: str = ""

    def upstream(self, name: str) -> dict:
        """The recorded outputs (``files`` with absolute paths, ``values``) of an upstream stage."""
        rec = self.records.get(name)
        if rec is None:
            raise RegmixError(f"stage {self.stage!r} needs stage {name!r}, which has not completed")
        out = dict(rec["outputs"])
        out["files"] = {k: str(self.resolve(v)) for k, v in out["files"].items()}
        return out

    def path(self, name: str, key: str) -> Path:
        return Path(self.upstream(name)["files"][key])

    def value(self, name: str, key: str) -> Any:
        return self.upstream(name)["values"][key]

    def resolve(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else self.out / q

    def relative(self, p: str | os.PathLike) -> str:
        """A path as stored in a record: relative to the output dir when inside it."""
        q = Path(p).resolve()
        try:
            return str(q.relative_to(self.out.resolve()))
        except ValueError:
            return str(q)


# ---- fingerprints ---------------------------------------------------------------------------------------
def fingerprint_paths(paths: Iterable[str | os.PathLike]) -> str:
    """SHA-256 over the content of files (directories walked in sorted order, hidden temp files ignored)."""
    h = hashlib.sha256()
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()
                                                     and not is_temporary(p, root))
        for f in files:
            rel = f.name if f == root else str(f.relative_to(root))
            h.update(rel.encode() + b"\0")
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            h.update(b"\0")
    return h.hexdigest()


# ---- records --------------------------------------------------------------------------------------------
def record_path(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.json"


def read_record(out: Path, name: str) -> dict | None:
    path = record_path(out, name)
    if not path.exists():
        return None
    try:
        rec = read_json(path)
    except RegmixError:
        return None
    if not isinstance(rec, dict) or rec.get("format") != RECORD_FORMAT:
        return None
    return rec


def stage_inputs(stage: Stage, config: PipelineConfig, records: Mapping[str, dict]) -> dict:
    upstream = {}
    for name in stage.after:
        rec = records.get(name)
        if rec is None:
            raise RegmixError(f"stage {stage.name!r} needs stage {name!r} first")
        upstream[name] = rec["fingerprint"]
    return {"config": stage.inputs(config), "upstream": upstream}


def is_complete(rec: dict | None, input_hash: str, out: Path) -> bool:
    """The record matches these inputs and every file it lists is still there."""
    if rec is None or rec.get("input_hash") != input_hash:
        return False
    for p in rec["outputs"]["files"].values():
        q = Path(p) if os.path.isabs(p) else out / p
        if not q.exists():
            return False
    return True


# ---- runner ---------------------------------------------------------------------------------------------
def run_stages(stages: Sequence[Stage], config: PipelineConfig, out: str | os.PathLike, *, until: str | None = None,
               force: Iterable[str] = (), progress: Progress | None = None) -> list[StageResult]:
    """Run ``stages`` in order (up to and including ``until``), skipping those whose inputs are unchanged.

    ``force`` names stages to redo even when their inputs match. Writes ``OUT/stages/<name>.json`` per stage
    and ``OUT/stages/summary.json`` for this invocation. Re-raises a stage's exception after recording it.
    """
    out = Path(out)
    names = [s.name for s in stages]
    selected = _select(stages, names, until, set(force))
    progress = progress or Progress()
    progress.begin([(s.name, float(s.estimate_s(config))) for s in selected])
    records: dict[str, dict] = {}
    results: list[StageResult] = []
    failed: BaseException | None = None
    for stage in selected:
        inputs = stage_inputs(stage, config, records)
        input_hash = content_hash(inputs, length=None)
        old = read_record(out, stage.name)
        if stage.name not in force and is_complete(old, input_hash, out) and _verified(stage, old, out):
            records[stage.name] = old
            results.append(StageResult(stage.name, "skipped", 0.0, old["outputs"].get("summary", ""),
                                       old["outputs"]["files"]))
            progress.end_stage(stage.name, "skipped", 0.0)
            continue
        result, failed = _run_stage(stage, config, out, records, progress, inputs, input_hash, old, names)
        results.append(result)
        if failed is not None:
            break
    for stage in selected[len(results):]:
        results.append(StageResult(stage.name, "not run", 0.0))
    progress.close()
    write_summary(out, results)
    if failed is not None:
        raise failed
    return results


def _verified(stage: Stage, rec: dict, out: Path) -> bool:
    """Whether a completed stage's files pass its own check (always, for a stage without one)."""
    if stage.verify is None:
        return True
    files = {k: (Path(v) if os.path.isabs(v) else out / v) for k, v in rec["outputs"]["files"].items()}
    try:
        stage.verify(files)
    except RegmixError as exc:
        log.warning("stage %s: its outputs fail their check, so it runs again: %s", stage.name, exc)
        return False
    return True


def _select(stages: Sequence[Stage], names: list[str], until: str | None, force: set[str]) -> list[Stage]:
    """The stages up to ``until``, after checking the names given."""
    if len(set(names)) != len(names):
        raise RegmixError(f"duplicate stage names in {names}")
    unknown = sorted(force - set(names))
    if unknown:
        raise RegmixError(f"--force-stage {unknown[0]!r} is not a stage; stages: {names}")
    if until is not None and until not in names:
        raise RegmixError(f"--until {until!r} is not a stage; stages: {names}")
    return list(stages) if until is None else list(stages)[: names.index(until) + 1]


def _run_stage(stage: Stage, config: PipelineConfig, out: Path, records: dict[str, dict], progress: Progress, inputs: dict,
               input_hash: str, old: dict | None, names: list[str]) -> tuple[StageResult, BaseException | None]:
    """Run one stage and record it (its old record is deleted first; the records of later stages too when its
    fingerprint changed). Returns its result, and the exception if it failed."""
    record_path(out, stage.name).unlink(missing_ok=True)
    progress.start_stage(stage.name)
    ctx = StageContext(config=config, out=out, records=records, progress=progress, stage=stage.name)
    t0 = time.monotonic()
    try:
        output = stage.run(ctx)
    except BaseException as exc:
        seconds = time.monotonic() - t0
        progress.end_stage(stage.name, "failed", seconds)
        return StageResult(stage.name, "failed", seconds, f"{type(exc).__name__}: {exc}"), exc
    seconds = time.monotonic() - t0
    files = {k: ctx.relative(v) for k, v in output.files.items()}
    fingerprint = output.fingerprint or content_hash(
        {"files": fingerprint_paths(ctx.resolve(v) for v in files.values()), "values": output.values},
        length=None)
    rec = {
        "format": RECORD_FORMAT,
        "stage": stage.name,
        "input_hash": input_hash,
        "inputs": inputs,
        "outputs": {"files": files, "values": output.values, "summary": output.summary},
        "fingerprint": fingerprint,
        "seconds": round(seconds, 3),
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if old is not None and old.get("fingerprint") != fingerprint:
        for later in names[names.index(stage.name) + 1:]:
            record_path(out, later).unlink(missing_ok=True)
    atomic_write_json(record_path(out, stage.name), rec)
    records[stage.name] = rec
    progress.end_stage(stage.name, "done", seconds)
    return StageResult(stage.name, "done", seconds, output.summary, files), None


def write_summary(out: Path, results: Sequence[StageResult]) -> Path:
    return atomic_write_json(out / "stages" / "summary.json", {
        "format": SUMMARY_FORMAT,
        "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stages": [{"stage": r.stage, "status": r.status, "seconds": round(r.seconds, 3), "summary": r.summary,
                    "files": r.files} for r in results],
    })


def format_summary(results: Sequence[StageResult]) -> str:
    """A plain-text table: stage, status, seconds, key output."""
    rows = [("stage", "status", "seconds", "key output")]
    for r in results:
        rows.append((r.stage, r.status, f"{r.seconds:.1f}", r.summary))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for j, row in enumerate(rows):
        lines.append("  ".join(row[i].ljust(widths[i]) if i != 2 else row[i].rjust(widths[i])
                               for i in range(3)) + "  " + row[3])
        if j == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 10)
    total = sum(r.seconds for r in results)
    lines.append(f"total {total:.1f} s")
    return "\n".join(lines)


def read_summary_results(out: str | os.PathLike) -> list[StageResult]:
    """The results of the last invocation, from ``OUT/stages/summary.json`` (empty if absent)."""
    path = Path(out) / "stages" / "summary.json"
    if not path.exists():
        return []
    obj = read_json(path)
    return [StageResult(r["stage"], r["status"], float(r["seconds"]), r.get("summary", ""), r.get("files", {}))
            for r in obj.get("stages", [])]
