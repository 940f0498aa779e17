"""A folder of outputs, written whole and in place: the folder the user gave is never replaced.

:func:`output_folder` yields a staging folder *inside* the output folder; the writer fills it; then every file is
moved into place with one rename each (files of the previous version that the new one lacks are removed), and
``outputs.json`` (:data:`OUTPUTS_FILE`), the list of the folder's files with their sizes and sha256, is written
last. The folder itself is never renamed, so a symlinked folder keeps its link (and the files land where it
points), a mount point stays mounted, and a read-only folder is refused (exit 2, naming it) instead of being
swapped for a writable one (style.md, rule 14).

Whole or nothing:

- A failure or a kill while the outputs are staged leaves the previous outputs and their ``outputs.json`` as they
  were; the staging folder is removed (or, after a kill, by the next write).
- Before the first rename, ``outputs.json`` is replaced by a journal that says ``"complete": false`` and lists
  what moves where; nested ``outputs.json`` files (an export folder inside a search folder: :func:`seal_folder`)
  of the folders about to change go first. Readers (:func:`read_outputs`) refuse a folder whose marker is
  missing or says incomplete, so a half-updated folder never looks complete. The moves are renames and removals
  only (no space needed); a write killed among them is finished by the next write into the folder, from its
  journal, before that write starts its own.

Pure core: the standard library (and :mod:`regmix_megatron.fileio`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .errors import DataError, os_error_message
from .fileio import (
    TMP_PREFIX,
    atomic_write_json,
    fsync_dir,
    fsync_file,
    named_os_error,
    read_json,
    sha256_file,
    temp_target_name,
)

#: The completion marker of an output folder, written last: the list of its files (size and sha256 each). A folder
#: whose marker is missing, or says ``"complete": false``, is not a complete output (:func:`read_outputs`).
OUTPUTS_FILE = "outputs.json"
OUTPUTS_FORMAT = "regmix-megatron/outputs/v1"
#: The staging folder a write fills inside the output folder (a temporary entry: readers ignore it).
STAGE_PREFIX = f"{TMP_PREFIX}stage."
#: Directories a file system keeps at its root (ext4), so at the root of a volume given as the output folder:
#: neither ours nor the user's files.
MOUNT_ENTRIES = ("lost+found",)


class Owned:
    """The entries a writer owns in its output folder: patterns over paths relative to the folder, one
    :mod:`fnmatch` pattern per ``/``-separated level (``"phase[0-9]*/data_path.txt"``); a last level ``**`` owns
    the entry above it and everything under it (``"models/**"``). ``outputs.json`` is owned in every folder
    that holds owned entries."""

    def __init__(self, patterns: Iterable[str]):
        self.patterns = tuple(tuple(p.split("/")) for p in patterns)

    def owns(self, rel: str) -> bool:
        """Whether the writer owns the entry ``rel`` (a file, a link, or a directory it owns whole)."""
        parts = tuple(rel.split("/"))
        if parts[-1] == OUTPUTS_FILE and (len(parts) == 1 or self.may_hold("/".join(parts[:-1]))):
            return True
        return any(_matches(p, parts) for p in self.patterns)

    def may_hold(self, rel: str) -> bool:
        """Whether the directory ``rel`` may hold owned entries (walk into it)."""
        parts = tuple(rel.split("/"))
        return any(_matches(p, parts) or (len(p) > len(parts) and _matches(p[:len(parts)], parts))
                   for p in self.patterns)


def _matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    import fnmatch

    if pattern and pattern[-1] == "**":
        head = pattern[:-1]
        return len(parts) >= len(head) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, head))
    return len(parts) == len(pattern) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, pattern))


def _as_owned(owned: "Owned | Iterable[str]") -> Owned:
    return owned if isinstance(owned, Owned) else Owned(owned)


def check_output_folder(path: str | os.PathLike, owned: "Owned | Iterable[str]", what: str) -> None:
    """Refuse an output folder its writer cannot write whole, before any work: a path that is a file or a dangling
    link, a read-only or unwritable folder, or one holding entries the writer does not own (``owned``)."""
    folder = Path(path)
    if folder.is_symlink() and not folder.exists():
        raise DataError(f"{what} {folder} is a link to {os.readlink(folder)}, which does not exist: create the "
                        "folder it points to, or give another folder")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise DataError(f"{what} {folder} is a file, not a folder: give the path of a folder (new or one this "
                        "command wrote)")
    check_writable(folder, what)
    foreign = _foreign_entries(folder, _as_owned(owned))
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise DataError(f"{what} {folder} holds files that this command does not write ({shown}): give a new or "
                        "empty folder, or move them out (the command rewrites its own files in the folder, and "
                        f"{OUTPUTS_FILE} lists them)")


def check_writable(folder: Path, what: str) -> None:
    """Refuse a folder that is read-only (no write permission bit, as ``chmod a-w`` leaves it, even for root) or
    that this process may not write (permissions, a read-only file system)."""
    mode = folder.stat().st_mode
    if not mode & 0o222 or not os.access(folder, os.W_OK | os.X_OK):
        import stat as stat_module

        how = "read-only" if not mode & 0o222 else "not writable by this user (or on a read-only file system)"
        raise DataError(f"{what} {folder} is {how} (mode {stat_module.filemode(mode)}): the command writes its "
                        f"outputs into it; make it writable (chmod u+w {folder}) or give another folder")


def _foreign_entries(folder: Path, owned: Owned) -> list[str]:
    """Entries of ``folder`` (walking the directories that may hold owned entries) the writer does not own;
    temporary entries and a volume's own ``lost+found`` excluded. Links are entries, never followed."""
    foreign, stack = [], [""]
    while stack:
        where = stack.pop()
        with os.scandir(folder / where if where else folder) as entries:
            for entry in entries:
                rel = f"{where}/{entry.name}" if where else entry.name
                if entry.name.startswith(TMP_PREFIX) or (not where and entry.name in MOUNT_ENTRIES
                                                         and entry.is_dir(follow_symlinks=False)):
                    continue
                if owned.owns(rel):
                    continue
                if entry.is_dir(follow_symlinks=False) and owned.may_hold(rel):
                    stack.append(rel)
                else:
                    foreign.append(rel)
    return sorted(foreign)


def _owned_files(folder: Path, owned: Owned) -> list[str]:
    """The files (not links) the writer owns in ``folder``, relative: what a new version replaces or removes."""
    out, stack = [], [""]
    while stack:
        where = stack.pop()
        try:
            entries = list(os.scandir(folder / where if where else folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            rel = f"{where}/{entry.name}" if where else entry.name
            if entry.name.startswith(TMP_PREFIX) or entry.is_symlink():
                continue
            if entry.is_dir(follow_symlinks=False):
                if owned.may_hold(rel) or owned.owns(rel):
                    stack.append(rel)
            elif owned.owns(rel):
                out.append(rel)
    return sorted(out)


def _tree_files(root: Path) -> list[str]:
    """Every file and link under ``root``, relative, ``/``-separated, sorted (links are not followed)."""
    out, stack = [], [""]
    while stack:
        where = stack.pop()
        with os.scandir(root / where if where else root) as entries:
            for entry in entries:
                rel = f"{where}/{entry.name}" if where else entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append(rel)
                else:
                    out.append(rel)
    return sorted(out)


def _file_entry(path: Path) -> dict:
    if path.is_symlink():
        return {"link": os.readlink(path)}
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def seal_folder(path: str | os.PathLike) -> Path:
    """Write ``outputs.json`` (complete) into a folder whose files are all written: the completion marker of a
    part of a larger output (an export folder inside a search's staging folder), or of a folder written by
    other means. Returns the marker's path."""
    folder = Path(path)
    files = {rel: _file_entry(folder / rel) for rel in _tree_files(folder)
             if rel != OUTPUTS_FILE and not any(p.startswith(TMP_PREFIX) for p in rel.split("/"))}
    return atomic_write_json(folder / OUTPUTS_FILE, {"format": OUTPUTS_FORMAT, "complete": True, "files": files})


@contextlib.contextmanager
def output_folder(path: str | os.PathLike, *, owned: "Owned | Iterable[str]",
                  what: str = "output directory") -> Iterator[Path]:
    """Yield an empty staging folder inside the output folder ``path``; write the outputs there. When the block
    succeeds, every file is moved into ``path`` (one rename each; files of the previous version that the new one
    lacks are removed) and ``outputs.json`` is written last. ``path`` itself is never replaced: a link, a mount
    point, its permissions and owner stay as they are.

    Whole or nothing: a failed or killed block leaves the previous outputs and their ``outputs.json`` as they were
    (the staging folder is removed, or ignored and removed by the next write). While the files are moved,
    ``outputs.json`` says ``"complete": false`` (and so do nested ones: :func:`seal_folder`), so a reader
    (:func:`read_outputs`) never takes a half-updated folder for a complete one; a write killed in that window is
    finished by the next write into the folder, before its own. One writer per folder (a second is refused
    while the first holds the folder's lock, where the file system supports it).

    ``path`` must be absent, or a writable folder holding only entries the writer ``owned``
    (:func:`check_output_folder`; ``what`` names it in errors, e.g. ``"--output-dir"``)."""
    folder = Path(path)
    owned = _as_owned(owned)
    check_output_folder(folder, owned, what)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise named_os_error(exc, folder) from None
    with _folder_lock(folder, what):
        _finish_interrupted(folder)
        _remove_leftovers(folder)
        check_output_folder(folder, owned, what)
        try:
            stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=folder))
        except OSError as exc:
            _undo_create(folder, created)
            raise named_os_error(exc, folder) from None
        try:
            yield stage
            journal = _seal_stage(folder, stage, owned, what)
        except BaseException as exc:
            shutil.rmtree(stage, ignore_errors=True)
            _undo_create(folder, created)
            if isinstance(exc, OSError):
                raise _renamed_into(exc, stage, folder) from None
            raise
        try:
            _apply(folder, journal)
        except OSError as exc:
            raise DataError(f"{what} {folder}: the new outputs are written but could not all be moved into place "
                            f"({os_error_message(exc) or exc}); {OUTPUTS_FILE} marks the folder incomplete until "
                            "the command runs again") from None


def _undo_create(folder: Path, created: bool) -> None:
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def _folder_lock(folder: Path, what: str) -> Iterator[None]:
    """An exclusive ``flock`` on the folder for the write (none where the file system has no such locks)."""
    import fcntl

    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{what} {folder} is being written by another process: wait for it to end, or give "
                            "another folder") from None
        except OSError:
            pass  # no flock here (some network file systems): one writer per folder is then the user's to keep
        yield
    finally:
        os.close(fd)


def _seal_stage(folder: Path, stage: Path, owned: Owned, what: str) -> dict:
    """After the block: fsync the staged files, write the final ``outputs.json`` into the stage and the journal
    (``"complete": false``, what moves where, what goes) into the folder. Nothing in the folder changes before
    the journal, and after it only renames and removals follow (no space needed)."""
    files = _tree_files(stage)
    stray = [rel for rel in files if not owned.owns(rel)]
    assert not stray, f"the writer of {folder} staged files it does not own: {stray}"
    for rel in files:
        if not (stage / rel).is_symlink():
            fsync_file(stage / rel)
    manifest = {rel: _file_entry(stage / rel) for rel in files}
    remove = [rel for rel in _owned_files(folder, owned) if rel not in manifest and rel != OUTPUTS_FILE]
    for parent in sorted({(folder / rel).parent for rel in [*manifest, *remove]}):
        if parent.is_dir() and not parent.is_symlink():
            check_writable(parent, what)
    journal = {"format": OUTPUTS_FORMAT, "complete": False, "stage": stage.name, "files": manifest,
               "remove": remove}
    made: list[Path] = []
    try:
        for directory in sorted({p for rel in manifest for p in (folder / rel).parents if folder in p.parents},
                                key=lambda p: len(p.parts)):
            if not directory.exists():  # before the journal: the moves then need no new directory
                directory.mkdir()
                made.append(directory)
        atomic_write_json(stage / OUTPUTS_FILE, {"format": OUTPUTS_FORMAT, "complete": True, "files": manifest})
        atomic_write_json(folder / OUTPUTS_FILE, journal)
    except BaseException:
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    return journal


def _is_marker(rel: str) -> bool:
    return rel.rsplit("/", 1)[-1] == OUTPUTS_FILE


def _apply(folder: Path, journal: Mapping[str, Any]) -> None:
    """Move a sealed stage's files into ``folder`` (idempotent: a second pass after a kill finishes the first).
    Order: nested markers of folders about to change go first, then the data, the removals, the nested markers,
    and ``outputs.json`` (complete) last."""
    stage = folder / journal["stage"]
    files = list(journal["files"])
    markers = sorted((r for r in files if _is_marker(r)), key=lambda r: -r.count("/"))
    for rel in markers:
        if os.path.lexists(stage / rel):
            _remove_entry(folder / rel)
    for rel in sorted(journal["remove"], key=lambda r: not _is_marker(r)):
        _remove_entry(folder / rel)
        _prune_empty(folder, (folder / rel).parent)
    for rel in (r for r in files if not _is_marker(r)):
        _move(stage / rel, folder / rel)
    for rel in markers:
        _move(stage / rel, folder / rel)
    for parent in sorted({(folder / rel).parent for rel in files}, key=lambda p: -len(p.parts)):
        fsync_dir(parent)
    _move(stage / OUTPUTS_FILE, folder / OUTPUTS_FILE)
    fsync_dir(folder)
    shutil.rmtree(stage, ignore_errors=True)


def _move(src: Path, dst: Path) -> None:
    if not os.path.lexists(src):
        return  # moved by the pass a kill interrupted
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)  # an owned directory where the new version has a file
    os.replace(src, dst)


def _remove_entry(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _prune_empty(folder: Path, directory: Path) -> None:
    """Remove ``directory`` and its parents below ``folder`` while they are empty (an old version's ``phase3/``)."""
    while directory != folder and folder in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def _finish_interrupted(folder: Path) -> None:
    """Finish a write into ``folder`` that was killed while it moved its files into place (its journal and
    staging folder are there), so the folder holds that write's outputs whole before the next write starts."""
    marker = folder / OUTPUTS_FILE
    try:
        doc = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    stage = doc.get("stage") if isinstance(doc, dict) and doc.get("complete") is False else None
    if isinstance(stage, str) and stage.startswith(STAGE_PREFIX) and "/" not in stage and (folder / stage).is_dir():
        import logging

        logging.getLogger(__name__).warning("%s: finishing the write that was interrupted while it moved its files "
                                            "into place", folder)
        _apply(folder, doc)


def _remove_leftovers(folder: Path) -> None:
    """The temporary entries of killed writes (staging folders, temp files) at the top of ``folder``."""
    for stale in folder.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() and not stale.is_symlink() else \
            stale.unlink(missing_ok=True)


def read_outputs(path: str | os.PathLike, what: str = "output folder") -> dict:
    """The ``outputs.json`` of a complete output folder; a :class:`DataError` naming the folder and the fix when
    it has none (an interrupted first write, or a folder from before this marker), says it is incomplete (a write
    under way, or killed while it moved its files), or a file it lists is missing or has another size."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{what} {folder}: " + ("not a folder" if folder.exists() else "not found")
                        + ": give the folder the command wrote")
    marker = folder / OUTPUTS_FILE
    again = "run the command that writes it again"
    if not marker.is_file():
        raise DataError(f"{what} {folder} has no {OUTPUTS_FILE}, the list of its outputs written last: it is "
                        f"incomplete (its first write was interrupted) or was written by an older version; {again}")
    doc = read_json(marker)
    if not isinstance(doc, dict) or doc.get("format") != OUTPUTS_FORMAT or not isinstance(doc.get("files"), dict):
        raise DataError(f"{marker}: not an outputs list (expected \"format\": \"{OUTPUTS_FORMAT}\" and \"files\"); "
                        f"{again}")
    if doc.get("complete") is not True:
        raise DataError(f"{what} {folder} is incomplete ({OUTPUTS_FILE} says so): a write into it is under way, or "
                        f"was interrupted while it moved its files into place; wait for it, or {again} (it "
                        "finishes the interrupted write first)")
    changed = [rel for rel, entry in doc["files"].items() if not _still_there(folder / rel, entry)]
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise DataError(f"{what} {folder}: {changed[0]}{more} is missing or changed since {OUTPUTS_FILE} listed "
                        f"it; {again}")
    return doc


def _still_there(path: Path, entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    if "link" in entry:
        return path.is_symlink()
    try:
        return path.is_file() and path.stat().st_size == entry.get("bytes")
    except OSError:
        return False


def _renamed_into(exc: OSError, tmp: Path, path: Path) -> OSError:
    """An error about a file inside the staging folder, told about the file it was to become."""
    name = exc.filename
    if name is None or exc.errno is None:
        return named_os_error(exc, path)
    try:
        rel = Path(name).relative_to(tmp)
    except ValueError:
        return exc
    return OSError(exc.errno, exc.strerror, str(path / temp_target_name(rel)))
