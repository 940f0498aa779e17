"""Atomic, resumable training checkpoints.

Layout: ``<run>/checkpoints/step_0000100/`` holding one ``model_optim_rng_tp<T>_pp<P>.pt`` per model-parallel
rank (data-parallel rank 0 writes it; the other data-parallel ranks hold identical state) and ``meta.json``
(step, tokens, metrics rows so far, world layout). A checkpoint is written into ``.tmp-step_*`` and renamed
into place by rank 0 only after every rank has finished writing, and ``meta.json`` is written last, so a
directory named ``step_*`` with a ``meta.json`` is always complete. Only the newest ``keep_last`` are kept.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from ..fileio import atomic_path, atomic_write_json, read_json

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step_(\d{7})$")


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


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
        if m and (child / "meta.json").is_file():
            found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike, *, tp_size: int, pp_size: int) -> Path | None:
    """Newest complete checkpoint written with the same model-parallel layout (others are skipped with a
    warning: resharding across TP/PP sizes is not supported)."""
    for step, path in reversed(list_checkpoints(run_dir)):
        try:
            meta = read_json(path / "meta.json")
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
    """Collective: every rank calls it. ``state`` is this rank's torch-serializable state."""
    import torch

    root = checkpoint_dir(run_dir)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{step_dir_name(step)}"
    if is_rank0:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    barrier()
    if dp_rank == 0:
        with atomic_path(tmp / shard_name(tp_rank, pp_rank)) as path:
            torch.save(state, path)
    barrier()
    if is_rank0:
        atomic_write_json(tmp / "meta.json", meta)
        if final.exists():  # an older complete copy of the same step (e.g. re-run after --force)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        for _, old in list_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_shard(path: Path, tp_rank: int, pp_rank: int) -> dict:
    import torch

    return torch.load(path / shard_name(tp_rank, pp_rank), map_location="cpu", weights_only=False)


def remove_stale_temp(run_dir) -> None:
    root = checkpoint_dir(run_dir)
    if root.is_dir():
        for child in root.iterdir():
            if child.name.startswith(".tmp-"):
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
