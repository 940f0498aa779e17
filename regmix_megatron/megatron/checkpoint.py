"""Atomic, resumable training checkpoints, loaded as data only.

Layout: ``<run>/checkpoints/step_0000100/`` holding one ``model_optim_rng_tp<T>_pp<P>.pt`` per model-parallel
rank (data-parallel rank 0 writes it; the other data-parallel ranks hold identical state) and ``meta.json``
(step, tokens, metrics rows so far, world layout). A checkpoint is written into ``.tmp-step_*`` and renamed
into place by rank 0 only after every rank has finished writing, and ``meta.json`` is written last, so a
directory named ``step_*`` with a ``meta.json`` is always complete; a failed write (a full disk) removes its
``.tmp-step_*``. Only the newest ``keep_last`` are kept.

Loading never runs code from the file: shards are read with ``torch.load(..., weights_only=True)``, which
rebuilds tensors and plain Python data (dicts, lists, tuples, numbers, strings) and refuses any other object.
The trainer's state is exactly that: model, optimizer and scheduler state dicts, and the RNG states (Python's
tuple of ints, numpy's as a tensor and plain numbers, torch's and megatron's tracker states as tensors), so the
allow-list is empty. Shards written before numpy's state was stored that way hold one numpy array; for those
alone numpy's array-rebuilding globals are allowed (:data:`LEGACY_NUMPY_GLOBALS`), inside the one call. A shard
that asks for anything else is refused (:class:`CheckpointRefused`); a shard that cannot be read at all
(truncated, not a zip archive) is corrupt (:class:`CorruptCheckpoint`): the trainer sets that checkpoint aside
and resumes from the one before.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import re
import shutil
from pathlib import Path

from ..errors import RegmixError
from ..fileio import atomic_path, atomic_write_json, fsync_dir, read_json
from ..runs.run_dir import RunDir

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step_(\d{7})$")
#: Written last into a checkpoint's folder: the run's progress (:class:`~regmix_megatron.runs.run_dir.RunProgress`)
#: and the layout it was saved with.
META_FILE = "meta.json"
#: Globals a shard of the earlier format names (numpy's RNG state was a tuple holding a uint32 array; rebuilding
#: it also needs numpy's uint32 dtype class, :func:`_legacy_globals`).
LEGACY_NUMPY_GLOBALS = ("numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype")
#: A torch.save that fails with less free space than this on its file system is reported as a full disk.
_FULL_DISK_BYTES = 1 << 20


class CheckpointRefused(RegmixError):
    """A shard holds objects other than tensors and plain data: it was not written by this trainer."""


class CorruptCheckpoint(Exception):
    """A shard cannot be read (truncated, not a torch zip archive): set it aside and resume from an older one."""


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return RunDir(run_dir).checkpoints


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


def shard_name(tp_rank: int, pp_rank: int) -> str:
    return f"model_optim_rng_tp{tp_rank}_pp{pp_rank}.pt"


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints (``meta.json`` present), oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        m = _STEP_DIR.match(child.name)
        if m and (child / META_FILE).is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike, *, tp_size: int, pp_size: int) -> Path | None:
    """Newest complete checkpoint written with the same model-parallel layout (others are skipped with a
    warning: resharding across TP/PP sizes is not supported)."""
    for step, path in reversed(list_checkpoints(run_dir)):
        try:
            meta = read_json(path / META_FILE)
        except Exception as exc:  # a corrupt meta.json: skip that checkpoint
            log.warning("skipping checkpoint %s: %s", path, exc)
            continue
        if meta.get("tensor_model_parallel_size") != tp_size or meta.get("pipeline_model_parallel_size") != pp_size:
            log.warning("skipping checkpoint %s: written with TP=%s PP=%s, this run uses TP=%d PP=%d", path,
                        meta.get("tensor_model_parallel_size"), meta.get("pipeline_model_parallel_size"),
                        tp_size, pp_size)
            continue
        missing = [shard_name(t, p) for t in range(tp_size) for p in range(pp_size)
                   if not (path / shard_name(t, p)).is_file()]
        if missing:
            log.warning("skipping checkpoint %s: missing %s", path, missing)
            continue
        return path
    return None


def save_checkpoint(run_dir, step: int, *, state: dict, meta: dict, tp_rank: int, pp_rank: int, dp_rank: int,
                    is_rank0: bool, keep_last: int, barrier) -> Path:
    """Collective: every rank calls it. ``state`` is this rank's torch-serializable state. A rank whose write
    fails (a full disk) removes the temporary checkpoint and raises (an ``OSError`` naming the shard)."""
    root = checkpoint_dir(run_dir)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{step_dir_name(step)}"
    if is_rank0:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    barrier()
    try:
        if dp_rank == 0:
            _save_shard(state, tmp / shard_name(tp_rank, pp_rank), final / shard_name(tp_rank, pp_rank))
        barrier()
        if is_rank0:
            atomic_write_json(tmp / META_FILE, meta)
            if final.exists():  # an older complete copy of the same step (e.g. re-run after --force)
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(root)
            for _, old in list_checkpoints(run_dir)[:-keep_last]:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # frees the space a full disk needs for status.json
        raise
    barrier()
    return final


def _save_shard(state: dict, path: Path, final: Path) -> None:
    """``torch.save`` atomically; torch reports a full disk as a RuntimeError ("unexpected pos ..."): say so.

    The error is raised outside the ``except`` block, after a collection: torch's file writer, held by the
    traceback's frames, keeps the partial file open, and a deleted file's space only returns when it is closed
    (the space the run's ``status.json`` then needs)."""
    import gc

    import torch

    with atomic_path(path) as tmp:
        failure = ""
        try:
            torch.save(state, tmp)
        except RuntimeError as exc:
            failure = str(exc)
        if failure:
            gc.collect()
            free = shutil.disk_usage(tmp.parent).free
            if free < _FULL_DISK_BYTES:
                raise OSError(errno.ENOSPC, f"No space left on device ({free} bytes free; torch: {failure})",
                              str(final))
            raise RuntimeError(f"torch.save of {final} failed: {failure}")


def load_shard(path: Path, tp_rank: int, pp_rank: int) -> dict:
    """This rank's shard of the checkpoint in ``path``, as data only (see the module docstring). Raises
    :class:`CheckpointRefused` (it asks for code or foreign objects) or :class:`CorruptCheckpoint`."""
    import torch

    shard = path / shard_name(tp_rank, pp_rank)
    try:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(shard))
    except Exception as exc:  # not a zip archive, truncated, missing member
        raise CorruptCheckpoint(f"{shard}: cannot be read ({type(exc).__name__}: {exc})") from None
    foreign = sorted(needed - set(LEGACY_NUMPY_GLOBALS))
    if foreign:
        raise CheckpointRefused(_refusal(shard, f"it names {', '.join(foreign[:5])}"))
    try:
        with torch.serialization.safe_globals(_legacy_globals() if needed else []):
            state = torch.load(shard, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        detail = text.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation", 1)[0]
        raise CheckpointRefused(_refusal(shard, " ".join(detail.split())[:300])) from None
    except Exception as exc:  # truncated data, bad zip member
        raise CorruptCheckpoint(f"{shard}: cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CorruptCheckpoint(f"{shard}: not a trainer checkpoint (no model state)")
    return state


def _refusal(shard: Path, why: str) -> str:
    return (f"{shard}: refused to load: it holds objects other than tensors and plain data ({why}), which this "
            "trainer never writes, so it was not written by regmix-megatron or was altered; loading it could run "
            f"code. Delete {shard.parent} (training resumes from the checkpoint before it), or pass --force to "
            "train from scratch")


def _legacy_globals() -> list:
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def remove_stale_temp(run_dir) -> None:
    root = checkpoint_dir(run_dir)
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith(".tmp-"):
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
