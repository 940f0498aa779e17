"""A training run's directory: the one owner of its file names, and of the readers and writers of its files
(pure: no torch, no Megatron; the trainer, the sweep, the evaluator and the report all go through here)::

    RUN_DIR/
      config.yaml               the resolved run config (mixture or schedule inline, paths relative to RUN_DIR):
                                written by `sweep plan` and again by the trainer (run_config.RunConfig)
      metrics.jsonl             one JSON row per logged step (step, train_loss, lr, ..., val_loss at evaluations)
      checkpoints/              megatron/checkpoint.py's layout (step_<n>/ with meta.json: a RunProgress)
      document_losses.json      per-document losses of the final evaluation (runs/document_losses.py's format)
      result.json               RunResult: written last, on success only: the run's completion marker
      status.json               RunStatus: a failed or diverged run (never beside a result.json of the same try)
      evaluations/<split>.json  `regmix-megatron evaluate` (regmix-megatron/run-evaluation/v1)
      tensorboard/              TensorBoard events when the recipe asks for them
      lock.json, logs/          the sweep's attempt protocol (runs/sweep/state.py, attempt.py)

A run that is killed leaves nothing that looks complete: ``result.json`` is written atomically after everything
else. A truncated or garbled ``result.json``, ``status.json`` or ``config.yaml`` says nothing about the run and is
set aside (``<name>.corrupt-<n>``); the run resumes from its checkpoints (:func:`existing_outcome`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping, Sequence

from ..configs import Field
from ..errors import ConfigError, DataError, RegmixError
from ..fileio import atomic_write_json, atomic_write_text, named_os_error, read_json, read_yaml, set_aside

if TYPE_CHECKING:
    from .document_losses import RunDocumentLosses
    from .run_config import ResolvedRun, RunConfig

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
RESULT_FILE = "result.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
DOCUMENT_LOSSES_FILE = "document_losses.json"
CHECKPOINTS_DIR = "checkpoints"
EVALUATIONS_DIR = "evaluations"
TENSORBOARD_DIR = "tensorboard"
LOCK_FILE = "lock.json"
LOGS_DIR = "logs"
#: The file names above, for the test that keeps them out of every other module.
NAMES = (CONFIG_FILE, RESULT_FILE, STATUS_FILE, METRICS_FILE, DOCUMENT_LOSSES_FILE, CHECKPOINTS_DIR,
         EVALUATIONS_DIR, TENSORBOARD_DIR, LOCK_FILE)

#: ``evaluations/<split>.json``'s format (written by ``regmix-megatron evaluate``).
EVALUATION_FORMAT = "regmix-megatron/run-evaluation/v1"

COMPLETED, FAILED, DIVERGED = "completed", "failed", "diverged"


@dataclass(frozen=True)
class RunDir:
    """Where each file of one run directory lies."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def result(self) -> Path:
        return self.path / RESULT_FILE

    @property
    def status(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def document_losses(self) -> Path:
        return self.path / DOCUMENT_LOSSES_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def logs(self) -> Path:
        return self.path / LOGS_DIR

    def evaluation(self, split: str) -> Path:
        """``evaluations/<split>.json``."""
        return self.path / EVALUATIONS_DIR / f"{split}.json"


# ---- typed reading helpers ------------------------------------------------------------------------------------
def _mapping(value: Field) -> dict:
    """A mapping with string keys, its values as they were read."""
    return {key: item.value for key, item in value.fields().items()}


def _extra(obj: Mapping, cls: type) -> dict:
    known = {f.name for f in fields(cls)}
    return {k: v for k, v in obj.items() if k not in known}


def _json_obj(record: Any, order: Sequence[str]) -> dict:
    """``record``'s fields in ``order`` (those that are None left out), then its ``extra`` keys as they were read."""
    out = {name: getattr(record, name) for name in order if getattr(record, name) is not None}
    return {**out, **record.extra}


# ---- result.json ------------------------------------------------------------------------------------------------
#: result.json's keys in the order the trainer writes them (a schedule run adds the last three).
_RESULT_ORDER = ("status", "run_id", "mixture", "mixture_hash", "seed", "steps", "tokens", "val_loss",
                 "val_loss_average", "split_loss", "train_loss", "elapsed_s", "tokens_per_s", "preset", "recipe_hash",
                 "num_parameters", "validation_tokens", "evaluation_sizes", "data_identity", "schedule",
                 "schedule_hash", "phases")


@dataclass(frozen=True)
class RunResult:
    """``result.json``: what a completed run records. Read with :meth:`from_json_obj` / :func:`read_result`; a
    field an older trainer did not write is None (and stays out of :meth:`to_json_obj`)."""

    status: Literal["completed"] = COMPLETED
    """Always ``completed`` (a failed or diverged run writes ``status.json`` instead)."""
    run_id: str | None = None
    """The run's id (:func:`regmix_megatron.runs.run_config.run_id`)."""
    mixture: Mapping[str, float] | None = None
    """The trained mixture ``{domain: weight}``; a schedule run's token shares over all phases."""
    mixture_hash: str | None = None
    """The mixture's hash."""
    seed: int | None = None
    """The run's seed."""
    steps: int | None = None
    """Optimizer steps trained."""
    tokens: int | None = None
    """Training tokens consumed."""
    val_loss: Mapping[str, Any] | None = None
    """Per evaluated domain, the loss of the last evaluation on ``eval.split`` (the validation split). Values are
    kept as written: the sweep's collector names a missing or non-finite one."""
    val_loss_average: float | None = None
    """Mean of ``val_loss`` over the evaluated domains."""
    split_loss: Mapping[str, Mapping[str, float]] | None = None
    """Per split of ``eval.final_splits`` (``test``), per domain, the loss of the final evaluation."""
    train_loss: float | None = None
    """Mean training loss of the last logged interval."""
    elapsed_s: float | None = None
    """Seconds spent in training steps (resumes included, start-up and evaluation not)."""
    tokens_per_s: float | None = None
    """``tokens / elapsed_s``."""
    preset: str | None = None
    """The recipe's preset."""
    recipe_hash: str | None = None
    """The recipe's hash (part of the run id)."""
    num_parameters: Mapping[str, int] | None = None
    """``{"total": n, "non_embedding": n}``."""
    validation_tokens: Mapping[str, int] | None = None
    """Tokens scored per domain by the validation evaluation."""
    evaluation_sizes: Mapping[str, Any] | None = None
    """Per split evaluated at the end, per domain, the tokens and documents scored."""
    data_identity: Mapping[str, Any] | None = None
    """What the run trained on (:func:`regmix_megatron.runs.run_config.data_identity`): the record that lets
    ``regmix-megatron evaluate --domains-json`` check rebuilt data against it."""
    schedule: Mapping[str, Any] | None = None
    """A schedule run's schedule (the schedule file form, with its ``hash``); None for a static mixture."""
    schedule_hash: str | None = None
    """The schedule's hash (a schedule run only)."""
    phases: Sequence[Mapping[str, Any]] | None = None
    """A schedule run's requested-vs-realized table, one row per phase (``start_step``, ``end_step``, ...)."""
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """Keys this reader does not know, kept as they were read."""

    @classmethod
    def from_json_obj(cls, obj: Any, where: str) -> "RunResult":
        """Read a parsed ``result.json`` (or the ``result`` a pipeline's ``runs.json`` embeds); a
        :class:`DataError` names ``where`` and the field when it is not a completed run's result."""
        doc = Field(obj, where, fix="it is not a completed run's result.json")
        status = obj.get("status", COMPLETED) if isinstance(obj, Mapping) else None
        if status != COMPLETED:
            doc.get("status").choice([COMPLETED])

        typed = {key: doc[key].maybe(read) for key, read in _RESULT_READERS.items()}
        return cls(**typed, extra=_extra(obj, cls))

    def to_json_obj(self) -> dict:
        """The file form, keys in the trainer's order: a result read from a file is written back as it was."""
        return _json_obj(self, _RESULT_ORDER)

    def losses(self, split: str, *, validation_split: str = "valid") -> Mapping[str, Any]:
        """Per-domain losses on ``split``: ``val_loss`` for the validation split, else ``split_loss[split]``."""
        if split == validation_split:
            return self.val_loss or {}
        losses = (self.split_loss or {}).get(split)
        if losses is None:
            raise DataError(f"run {self.run_id}: no {split} losses in its {RESULT_FILE} (eval.final_splits must "
                            f"include {split!r})")
        return losses


def _losses_by_split(value: Field) -> dict:
    return {split: _mapping(losses) for split, losses in value.fields().items()}


#: How each typed field of result.json is read.
_RESULT_READERS = {
    "run_id": Field.text, "mixture": _mapping, "mixture_hash": Field.text, "seed": Field.count, "steps": Field.count,
    "tokens": Field.count, "val_loss": _mapping, "val_loss_average": Field.number, "split_loss": _losses_by_split,
    "train_loss": Field.number, "elapsed_s": Field.number, "tokens_per_s": Field.number, "preset": Field.text,
    "recipe_hash": Field.text, "num_parameters": _mapping, "evaluation_sizes": _mapping, "data_identity": _mapping,
    "schedule": _mapping, "schedule_hash": Field.text, "phases": lambda value: [_mapping(p) for p in value.items()],
    "validation_tokens": _mapping,
}


def read_result(run_dir: str | os.PathLike) -> RunResult:
    """``RUN_DIR/result.json``, typed; a :class:`DataError` names the file when it is missing or not a completed
    run's result."""
    path = RunDir(run_dir).result
    return RunResult.from_json_obj(read_json(path), str(path))


def read_result_or_none(run_dir: str | os.PathLike) -> RunResult | None:
    """The run's result when ``result.json`` is there and a completed run's with its per-domain losses (the sweep's
    rule for a run that is done); None when it is missing, unreadable or incomplete."""
    obj = read_json_or_none(RunDir(run_dir).result)
    try:
        result = RunResult.from_json_obj(obj, RESULT_FILE) if isinstance(obj, dict) else None
    except DataError:
        return None
    return result if result is not None and result.val_loss is not None else None


def read_json_or_none(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing, unreadable (a directory, no permission) or not (yet)
    valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: JSONDecodeError, UnicodeDecodeError
        return None


# ---- status.json ------------------------------------------------------------------------------------------------
_STATUS_ORDER = ("status", "step", "train_loss", "grad_norm", "error", "run_id")


@dataclass(frozen=True)
class RunStatus:
    """``status.json``: a run that failed (it resumes from its last checkpoint when started again) or diverged (a
    NaN/inf loss or gradient norm: deterministic, so never retried)."""

    status: str
    """``failed`` or ``diverged`` (another word is read as written, and counts as a failure)."""
    step: int | None = None
    """The step it failed or diverged at."""
    train_loss: float | str | None = None
    """A diverged run's loss (``"nan"``/``"inf"`` when not finite)."""
    grad_norm: float | str | None = None
    """A diverged run's gradient norm (``"nan"``/``"inf"`` when not finite)."""
    error: str | None = None
    """A failed run's exception, ``Type: message``."""
    run_id: str | None = None
    """The run's id."""
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """Keys this reader does not know (e.g. ``reason``, ``message``), kept as they were read."""

    @classmethod
    def failed(cls, *, step: int, error: BaseException, run_id: str) -> "RunStatus":
        return cls(FAILED, step=step, error=f"{type(error).__name__}: {error}", run_id=run_id)

    @classmethod
    def diverged(cls, *, step: int, loss: float, grad_norm: float, run_id: str) -> "RunStatus":
        return cls(DIVERGED, step=step, train_loss=loss if math.isfinite(loss) else str(loss),
                   grad_norm=grad_norm if math.isfinite(grad_norm) else str(grad_norm), run_id=run_id)

    @classmethod
    def from_json_obj(cls, obj: Any, where: str) -> "RunStatus":
        doc = Field(obj, where, fix="it is not a status.json written by `regmix-megatron train`")
        return cls(status=str(doc["status"].text()), step=doc["step"].maybe(Field.count),
                   train_loss=obj.get("train_loss"), grad_norm=obj.get("grad_norm"),
                   error=None if obj.get("error") is None else str(obj["error"]),
                   run_id=None if obj.get("run_id") is None else str(obj["run_id"]), extra=_extra(obj, cls))

    def to_json_obj(self) -> dict:
        return _json_obj(self, _STATUS_ORDER)

    @property
    def is_diverged(self) -> bool:
        return self.status == DIVERGED

    def describe(self) -> str:
        """One line: the status and its reason/message/error/step."""
        obj = self.to_json_obj()
        parts = [str(self.status)]
        for key in ("reason", "message", "error", "step"):
            if obj.get(key) not in (None, ""):
                parts.append(f"{key}={obj[key]}")
        return " ".join(parts)


def write_status(run_dir: str | os.PathLike, status: RunStatus) -> Path:
    return atomic_write_json(RunDir(run_dir).status, status.to_json_obj())


def read_status_or_none(run_dir: str | os.PathLike) -> RunStatus | None:
    """``status.json`` when it is there and readable (a mapping with a ``status``), else None."""
    obj = read_json_or_none(RunDir(run_dir).status)
    try:
        return RunStatus.from_json_obj(obj, STATUS_FILE) if isinstance(obj, dict) else None
    except DataError:
        return None


# ---- metrics.jsonl and the resume state ---------------------------------------------------------------------
@dataclass
class RunProgress:
    """How far a run got: the counters a checkpoint's ``meta.json`` records to resume it, and the metrics rows so
    far (``metrics.jsonl``'s lines)."""

    step: int = 0
    """Optimizer steps done."""
    tokens: int = 0
    """Training tokens consumed."""
    train_time_s: float = 0.0
    """Seconds spent in training steps."""
    metrics: list = field(default_factory=list)
    """The logged rows, oldest first."""

    def checkpoint_meta(self, run_id: str, *, tensor_model_parallel_size: int, pipeline_model_parallel_size: int,
                        data_parallel_size: int) -> dict:
        """What a checkpoint records beside its shards (the run, its progress and the layout it was saved with)."""
        return {"step": self.step, "tokens": self.tokens, "train_time_s": self.train_time_s, "metrics": self.metrics,
                "run_id": run_id, "tensor_model_parallel_size": tensor_model_parallel_size,
                "pipeline_model_parallel_size": pipeline_model_parallel_size,
                "data_parallel_size": data_parallel_size}

    @classmethod
    def from_checkpoint_meta(cls, meta: Mapping[str, Any]) -> "RunProgress":
        return cls(step=int(meta["step"]), tokens=int(meta["tokens"]),
                   train_time_s=float(meta.get("train_time_s", 0.0)), metrics=list(meta["metrics"]))

    def last_evaluation(self) -> dict:
        """The newest row with validation losses."""
        return next(r for r in reversed(self.metrics) if "val_loss" in r)


def start_metrics(run_dir: str | os.PathLike) -> None:
    """A fresh run: an empty ``metrics.jsonl``."""
    atomic_write_text(RunDir(run_dir).metrics, "")


def rewrite_metrics(run_dir: str | os.PathLike, rows: Iterable[Mapping]) -> None:
    """A resumed run: ``metrics.jsonl`` as its checkpoint recorded it (rows logged after it are dropped)."""
    atomic_write_text(RunDir(run_dir).metrics, "".join(json.dumps(r) + "\n" for r in rows))


def append_metrics(run_dir: str | os.PathLike, row: Mapping) -> None:
    """One more row at the end of ``metrics.jsonl``."""
    path = RunDir(run_dir).metrics
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
    except OSError as exc:  # a full disk: name the file (the system does not)
        raise named_os_error(exc, path) from None


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """``metrics.jsonl``'s rows (a :class:`DataError` names the file and line of one that is not a JSON object)."""
    from ..fileio import read_text

    path = RunDir(run_dir).metrics
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {number} is not a JSON object (a metrics row)")
        rows.append(row)
    return rows


def evaluation_rows(run_dir: str | os.PathLike) -> list[tuple[int, dict]]:
    """``[(step, {domain: loss})]`` of the run's validation evaluations, from ``metrics.jsonl``."""
    return [(int(r["step"]), dict(r["val_loss"])) for r in read_metrics(run_dir) if "val_loss" in r]


# ---- what a finished run records ----------------------------------------------------------------------------
def completed_result(resolved: "ResolvedRun", progress: RunProgress, *, split_loss: Mapping[str, Mapping],
                     num_parameters: Mapping[str, int], validation_tokens: Mapping[str, int],
                     evaluation_sizes: Mapping,
                     phases: Sequence[Mapping] | None = None) -> RunResult:
    """The result of a run trained to its last step: its last evaluation (``progress``), the final splits'
    losses and what it trained on."""
    from .run_config import data_identity

    recipe = resolved.config.recipe
    final = progress.last_evaluation()
    schedule = resolved.schedule if resolved.scheduled else None  # the mixture: its token shares over all phases
    return RunResult(
        run_id=resolved.run_id, mixture=resolved.mixture.as_dict(), mixture_hash=resolved.mixture.hash,
        seed=resolved.config.seed, steps=progress.step, tokens=progress.tokens, val_loss=final["val_loss"],
        val_loss_average=final["val_loss_average"], split_loss=dict(split_loss), train_loss=final["train_loss"],
        elapsed_s=progress.train_time_s,
        tokens_per_s=progress.tokens / progress.train_time_s if progress.train_time_s > 0 else None,
        preset=recipe.preset, recipe_hash=recipe.hash, num_parameters=num_parameters,
        validation_tokens=validation_tokens, evaluation_sizes=dict(evaluation_sizes),
        data_identity=data_identity(resolved.registry),
        schedule=schedule.to_json_obj() if schedule is not None else None,
        schedule_hash=schedule.hash if schedule is not None else None,
        phases=phases if schedule is not None else None)


def write_completed(run_dir: str | os.PathLike, result: RunResult, documents: "RunDocumentLosses") -> Path:
    """The per-document losses, then ``result.json``: the completion marker is written last."""
    write_document_losses(run_dir, documents)
    return atomic_write_json(RunDir(run_dir).result, result.to_json_obj())


def write_document_losses(run_dir: str | os.PathLike, record: "RunDocumentLosses") -> Path:
    """Write ``RUN_DIR/document_losses.json`` atomically (compact: one number per document and list)."""
    return atomic_write_json(RunDir(run_dir).document_losses, record.to_json_obj(), indent=None)


def write_evaluation(run_dir: str | os.PathLike, split: str, doc: Mapping[str, Any]) -> Path:
    """``evaluations/<split>.json`` (``regmix-megatron evaluate``; ``doc`` in :data:`EVALUATION_FORMAT`)."""
    return atomic_write_json(RunDir(run_dir).evaluation(split), dict(doc))


# ---- the run config -----------------------------------------------------------------------------------------
def has_config(run_dir: str | os.PathLike) -> bool:
    return RunDir(run_dir).config.is_file()


def read_run_config(run_dir: str | os.PathLike) -> "RunConfig":
    """``RUN_DIR/config.yaml`` with the run directory as its ``output_dir`` (wherever the folder now lies)."""
    from .run_config import load_run_config

    return load_run_config(RunDir(run_dir).config, output_dir=run_dir)


# ---- starting a run in a directory ----------------------------------------------------------------------------
def prepare(run_dir: str | os.PathLike, resolved: "ResolvedRun") -> None:
    """Before training (rank 0): save the run's config and clear the status of an earlier attempt."""
    d = RunDir(run_dir)
    resolved.save_config(d.config)
    d.status.unlink(missing_ok=True)


def discard_outputs(run_dir: str | os.PathLike) -> None:
    """``--force``: drop the outcome, metrics, per-document losses, checkpoints and TensorBoard events."""
    d = RunDir(run_dir)
    for path in (d.result, d.status, d.metrics, d.document_losses):
        path.unlink(missing_ok=True)
    shutil.rmtree(d.checkpoints, ignore_errors=True)
    shutil.rmtree(d.tensorboard, ignore_errors=True)


def existing_outcome(resolved: "ResolvedRun", run_dir: str | os.PathLike,
                     checkpoint_metas: Iterable[Path] = ()) -> dict | None:
    """The outcome of an earlier run in ``run_dir`` to return without training again (``result.json``'s content,
    or a diverged run's ``status.json``), or None to start or resume. Refuses (:class:`ConfigError`) a directory
    that holds another run: a saved config that defines another run, or result, status or checkpoint records
    (``checkpoint_metas``: the ``meta.json`` of each checkpoint) of another run id."""
    d = RunDir(run_dir)
    set_aside_unreadable(d.path)
    changed = changed_fields(read_yaml(d.config) or {}, resolved) if d.config.is_file() else []
    others = sorted(recorded_run_ids(d.path, checkpoint_metas) - {resolved.run_id})
    if changed or others:
        why = (f"fields {changed} differ from {d.config}" if changed else
               f"it holds run {', '.join(others)}, this config is run {resolved.run_id}: recipe, seed and mixture "
               "match, so the data differs (domains.json counts or tokenizer)")
        raise ConfigError(f"output_dir={str(d.path)!r} holds a run with a different config ({why}): use another "
                          "output_dir, or --force to discard that run")
    if d.result.is_file():
        return read_result(d.path).to_json_obj()
    status = read_status_or_none(d.path)
    return status.to_json_obj() if status is not None and status.is_diverged else None


def recorded_run_ids(run_dir: str | os.PathLike, checkpoint_metas: Iterable[Path] = ()) -> set[str]:
    """The run ids this directory's outcome files and checkpoints were written for."""
    d = RunDir(run_dir)
    found = set()
    for path in [d.result, d.status, *checkpoint_metas]:
        obj = read_json_or_none(path) if path.is_file() else None
        if isinstance(obj, dict) and obj.get("run_id"):
            found.add(str(obj["run_id"]))
    return found


def changed_fields(saved: Mapping[str, Any], resolved: "ResolvedRun") -> list[str]:
    """Fields of a saved ``config.yaml`` that define another run than ``resolved`` (paths are not compared: the
    data is compared by content through the run id)."""
    from ..hashing import canonical_json
    from ..mixtures.mixture import Mixture
    from ..mixtures.schedule import Schedule
    from .recipe import IDENTITY_SECTIONS

    new = resolved.config.to_dict()
    changed = [k for k in (*IDENTITY_SECTIONS, "seed") if canonical_json(saved.get(k)) != canonical_json(new[k])]
    if saved.get("schedule") is not None or resolved.scheduled:
        try:
            same = Schedule.from_obj(saved["schedule"]).hash == resolved.schedule.hash
        except Exception:  # no schedule, or an unreadable one: not this run's
            same = False
        return sorted(changed + ([] if same else ["schedule"]))
    if isinstance(saved.get("mixture"), dict):
        try:
            same = Mixture.from_dict(saved["mixture"]).hash == resolved.mixture.hash
        except Exception:  # an unreadable mixture is not this run's
            same = False
        if not same:
            changed.append("mixture")
    return sorted(changed)


def set_aside_unreadable(run_dir: str | os.PathLike) -> None:
    """A truncated or garbled ``result.json`` (or one that is not a completed run's), ``status.json`` or saved
    ``config.yaml`` says nothing about the run: keep it for inspection as ``<name>.corrupt-<n>`` and go on (the
    run resumes from its checkpoints, and its id is still checked against theirs)."""
    d = RunDir(run_dir)
    for path, read in ((d.result, read_json), (d.status, read_json), (d.config, read_yaml)):
        if not path.exists():
            continue
        try:
            obj = read(path)
            ok = isinstance(obj, dict) and (path != d.result or RunResult.from_json_obj(obj, str(path)) is not None)
        except RegmixError:
            ok = False
        if not ok:
            moved = set_aside(path)
            log.warning("%s is unreadable or not a mapping: set aside as %s; the run resumes from its "
                        "checkpoints", path, moved.name)
