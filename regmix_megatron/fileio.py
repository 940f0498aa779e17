"""Atomic file writes, and reads whose errors name the file and the fix.

One file: :func:`atomic_path` (a temp file in the same directory, fsync, then rename). Several files that belong
together: :func:`atomic_files` (all written to temp files first, then renamed into place). A directory of outputs:
:func:`atomic_dir` (written as a temp directory beside it, then swapped in as a whole). A killed or failed write
leaves at most hidden ``.tmp-*`` entries behind, never a complete-looking output. Write errors from the system
(a full disk, a read-only file system) are re-raised with the target path in ``OSError.filename``, so the CLI can
name the file.

Reads (:func:`read_text`, :func:`read_json`, :func:`read_yaml`) turn a missing file, a directory where a file is
expected, a file that cannot be read and a binary file into a :class:`~regmix_megatron.errors.DataError` that
names the file. :func:`set_aside` keeps a corrupt file for inspection under ``<name>.corrupt-<n>``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import yaml

from .errors import DataError

#: Prefix of every temporary entry our writers create; readers and fingerprints ignore such entries.
TMP_PREFIX = ".tmp-"


def named_os_error(exc: OSError, path: str | os.PathLike) -> OSError:
    """``exc`` with ``path`` as its file name when the system gave none (``write`` on a full disk does not)."""
    if exc.filename is not None or exc.errno is None:
        return exc
    named = OSError(exc.errno, exc.strerror, str(path))
    named.__cause__ = exc
    return named


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    ``suffix`` is appended to the temp name (some writers insist on an extension, e.g. ``.png``).
    On any exception the temp file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise named_os_error(exc, path) from None
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the final file the permissions a plain open() would (0666 minus umask).
    os.chmod(tmp_path, 0o666 & ~_current_umask())
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError):
            raise named_os_error(exc, path) from None
        raise


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable (best effort: some file systems refuse directory fsync)."""
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


@contextlib.contextmanager
def atomic_files(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Temporary paths for several files that belong together (e.g. ``results.csv`` and ``results.parquet``):
    only when every one of them was written are they renamed into place, in the order given (give the file
    readers look for first, last). On any exception every temp file is removed and no target is touched."""
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{target.name}.", suffix=target.suffix, dir=target.parent)
            os.close(fd)
            os.chmod(tmp, 0o666 & ~_current_umask())
            temps.append(Path(tmp))
        yield list(temps)
        for tmp, target in zip(temps, targets):
            try:
                _fsync_file(tmp)
            except OSError as exc:
                raise named_os_error(exc, target) from None
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    except BaseException as exc:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if isinstance(exc, OSError) and targets:
            raise named_os_error(exc, targets[0]) from None
        raise


Owned = Callable[[str], bool]


def _owned_predicate(owned: Iterable[str] | Owned | None) -> Owned:
    if owned is None:
        return lambda name: True
    if callable(owned):
        return owned
    names = set(owned)
    return names.__contains__


def check_replaceable(path: str | os.PathLike, owned: Iterable[str] | Owned | None, what: str) -> None:
    """Refuse to replace ``path`` when it is not a directory, or holds entries its writer does not own
    (``owned``: the names it writes, or a predicate; None: the caller owns the whole directory)."""
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise DataError(f"{what} {path} exists and is not a directory: give the path of a directory")
    is_owned = _owned_predicate(owned)
    foreign = sorted(p.name for p in path.iterdir() if not p.name.startswith(TMP_PREFIX) and not is_owned(p.name))
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise DataError(f"{what} {path} holds files that this command does not write ({shown}): give a new or "
                        "empty directory (the command replaces the directory as a whole, so that a failed write "
                        "leaves nothing half-written)")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, owned: Iterable[str] | Owned | None,
               what: str = "output directory") -> Iterator[Path]:
    """Yield an empty temporary directory beside ``path``; when the block succeeds, its content replaces
    ``path`` as a whole (``path`` is briefly absent, never half old and half new). On any exception the
    temporary directory is removed and ``path`` is left as it was.

    ``path`` must be absent or a directory whose entries its writer owns (:func:`check_replaceable`); leftovers
    of killed writes (``.tmp-<name>.*`` beside it) are removed first: one writer per output directory.
    """
    path = Path(path)
    check_replaceable(path, owned, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f"{TMP_PREFIX}{path.name}.*"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent))
    except OSError as exc:
        raise named_os_error(exc, path) from None
    os.chmod(tmp, 0o777 & ~_current_umask())
    try:
        yield tmp
        for f in sorted(tmp.rglob("*")):
            if f.is_file():
                _fsync_file(f)
        check_replaceable(path, owned, what)
        _swap_in(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise _renamed_into(exc, tmp, path) from None
        raise


def _renamed_into(exc: OSError, tmp: Path, path: Path) -> OSError:
    """An error about a file inside the temporary directory, told about the file it was to become."""
    name = exc.filename
    if name is None or exc.errno is None:
        return named_os_error(exc, path)
    try:
        rel = Path(name).relative_to(tmp)
    except ValueError:
        return exc
    return OSError(exc.errno, exc.strerror, str(path / rel))


def _swap_in(new: Path, path: Path) -> None:
    """Rename ``new`` onto ``path``; an existing ``path`` is renamed away first and deleted after."""
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{path.name}.old.", dir=path.parent))
        os.rmdir(old)
        os.rename(path, old)
    try:
        os.rename(new, path)
    except BaseException:
        if old is not None:
            os.rename(old, path)
        raise
    fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


# ---- reading ----------------------------------------------------------------------------------------------
def read_text(path: str | os.PathLike, what: str = "") -> str:
    """The UTF-8 text of a file; a missing file, a directory, an unreadable or a binary file raise a
    :class:`DataError` naming the file (``what``, e.g. ``"--config"``, says which input it is)."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{label}: is a directory, where a file is expected: give the path of the file") from None
    except PermissionError:
        raise DataError(f"{label}: permission denied: make it readable or give another file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: not a text file (byte {exc.start} is not UTF-8): is it the right file?") \
            from None
    except OSError as exc:
        raise DataError(f"{label}: cannot be read ({exc.strerror or exc})") from None


def read_json(path: str | os.PathLike, what: str = "") -> Any:
    """Read JSON, with an error that names the file and position on failure."""
    path = Path(path)
    text = read_text(path, what)
    label = f"{what} {path}" if what else str(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{label}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise DataError(f"{label}: JSON nested too deeply to read") from None


def read_yaml(path: str | os.PathLike, what: str = "") -> Any:
    path = Path(path)
    text = read_text(path, what)
    label = f"{what} {path}" if what else str(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{label}: invalid YAML: {exc}") from None
    except RecursionError:
        raise DataError(f"{label}: YAML nested too deeply to read") from None


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a corrupt file (or directory) to ``<name>.corrupt-<n>`` beside it (the first free ``n``), kept for
    inspection; returns the new path."""
    path = Path(path)
    for n in range(1, 10_000):
        target = path.with_name(f"{path.name}.corrupt-{n}")
        if not target.exists() and not target.is_symlink():
            os.replace(path, target)
            return target
    raise OSError(errno.EEXIST, "too many set-aside copies", str(path))


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()
