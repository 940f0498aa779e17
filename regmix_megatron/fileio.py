"""Atomic file writes, and reads whose errors name the file and the fix.

One file: :func:`atomic_path` (a temp file in the same directory, fsync, then rename). Several files that belong
together: :func:`atomic_files` (all written to temp files first, then renamed into place). A folder of outputs:
:mod:`regmix_megatron.output_folder` (files staged inside the folder, moved in one rename each, and
``outputs.json`` written last; the folder itself is never replaced). A killed or
failed write leaves at most hidden ``.tmp-*`` entries behind, never a complete-looking output. Write errors from
the system (a full disk, a read-only file system) are re-raised with the target path in ``OSError.filename``, so
the CLI can name the file (:func:`named_as` names one the system left unnamed).

Reads (:func:`read_text`, :func:`read_json`, :func:`read_yaml`) turn a missing file, a directory where a file is
expected, a file that cannot be read and a binary file into a :class:`~regmix_megatron.errors.DataError` that
names the file. :func:`set_aside` keeps a corrupt file for inspection under ``<name>.corrupt-<n>``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

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
        fsync_file(tmp_path)
        os.replace(tmp_path, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError):
            raise named_os_error(exc, path) from None
        raise


def fsync_file(path: Path) -> None:
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
                fsync_file(tmp)
            except OSError as exc:
                raise named_os_error(exc, target) from None
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    except BaseException as exc:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if isinstance(exc, OSError) and targets:
            raise _named_among(exc, targets) from None
        raise


def _named_among(exc: OSError, targets: list[Path]) -> OSError:
    """``exc`` told about the target whose temporary file (or a temp of that temp) it names, so the error names
    the file that failed; without a file name (``write`` on a full disk), about the targets together."""
    if exc.errno is None:
        return exc
    if exc.filename is not None:
        path = Path(exc.filename)
        for target in targets:
            if path.parent == target.parent and temp_target_name(Path(path.name)).name == target.name:
                return OSError(exc.errno, exc.strerror, str(target))
        return exc
    return OSError(exc.errno, exc.strerror, "one of " + ", ".join(map(str, targets)))


@contextlib.contextmanager
def named_as(path: str | os.PathLike) -> Iterator[None]:
    """An ``OSError`` raised in the block without a file name (``write`` on a full disk) gets ``path``."""
    try:
        yield
    except OSError as exc:
        raise named_os_error(exc, path) from None


def is_temporary(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path`` (under ``root``) is, or lies inside, a temporary entry of our writers."""
    return any(part.startswith(TMP_PREFIX) for part in Path(path).relative_to(root).parts)


def temp_target_name(rel: Path) -> Path:
    """A temp file's target name: ``.tmp-<name>.<8 random>[suffix]`` (:func:`atomic_path`) -> ``<name>``, also
    for a temp of a temp; other names unchanged."""
    import re

    name = rel.name
    while (m := re.fullmatch(rf"{re.escape(TMP_PREFIX)}(.+)\.[a-z0-9_]{{8}}(\.[^.]*)?", name)):
        name = m.group(1)
    return rel.with_name(name)

# ---- inputs stay inputs ---------------------------------------------------------------------------------------
def check_output_paths(inputs: Mapping[str, Any], *, files: Mapping[str, Any] | None = None,
                       dirs: Mapping[str, Any] | None = None, own_records: Iterable[str] = ()) -> None:
    """The one check that a command's outputs cannot overwrite its inputs, called by every command before it
    reads or writes anything. Each mapping goes from a label (the flag, e.g. ``--output``) to a path, a list of
    paths or None. Refused (:class:`DataError` naming both paths): an output file that is an input; an output
    folder that is an input or holds one; an output folder that is a file; an output file that is a folder.
    ``own_records``: file names directly inside an output folder that may be inputs (a run's own ``config.yaml``,
    which the command reads back and rewrites). ``FILE.jsonl:INDEX`` inputs are checked as ``FILE.jsonl``."""
    given = [(label, _resolved(p)) for label, p in _path_items(inputs)]
    for label, path in _path_items(files or {}):
        if Path(path).is_dir():
            raise DataError(f"{label} {path} is a folder: give the path of a file")
        target = _resolved(path)
        for in_label, source in given:
            if _same_file(target, source):
                raise DataError(f"{label} {path} is also the input {in_label} {source}: the command would overwrite "
                                "its own input; write the output elsewhere")
    for label, path in _path_items(dirs or {}):
        if Path(path).exists() and not Path(path).is_dir():
            raise DataError(f"{label} {path} is a file, not a folder: give the path of a folder")
        target = _resolved(path)
        for in_label, source in given:
            if _same_file(target, source):
                raise DataError(f"{label} {path} is also the input {in_label} {source}: the command would write "
                                "into its own input; give another folder")
            if target in source.parents and not (source.parent == target and source.name in set(own_records)):
                raise DataError(f"{label} {path} holds the input {in_label} {source}: the command would write over "
                                "or beside its own input; give a folder that holds none of the inputs")


def _path_items(mapping: Mapping[str, Any]) -> list[tuple[str, str]]:
    import re

    out = []
    for label, value in mapping.items():
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            if item is None or str(item) == "":
                continue
            text = str(item)
            m = re.fullmatch(r"(.+\.jsonl):\d+", text)
            if m and not os.path.exists(text):
                text = m.group(1)
            out.append((label, text))
    return out


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(path))).resolve()


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # hard links, another mount of the same file system
    except OSError:
        return False


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
def file_or_in_folder(path: str | os.PathLike, name: str) -> Path:
    """``path`` when it names a file, ``path / name`` when it is a folder: the inputs that accept a file or the
    folder that holds it under its usual name (``evaluation.json`` or the pipeline's output folder)."""
    path = Path(path)
    return path / name if path.is_dir() else path


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
    """Read JSON strictly (:func:`parse_json`), with errors that name the file (and ``what``)."""
    path = Path(path)
    return parse_json(read_text(path, what), f"{what} {path}" if what else str(path))


def read_yaml(path: str | os.PathLike, what: str = "") -> Any:
    """Read YAML strictly (:func:`parse_yaml`), with errors that name the file (and ``what``)."""
    path = Path(path)
    return parse_yaml(read_text(path, what), f"{what} {path}" if what else str(path))


def parse_json(text: str, label: str) -> Any:
    """The one JSON reader of inputs: a key listed twice in an object is refused (``json`` would keep the last
    value silently); errors name ``label`` (the file, or the flag) and the position."""
    try:
        return json.loads(text, object_pairs_hook=no_duplicate_keys(label))
    except json.JSONDecodeError as exc:
        raise DataError(f"{label}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise DataError(f"{label}: JSON nested too deeply to read") from None


def parse_yaml(text: str, label: str) -> Any:
    """The one YAML reader of inputs: ``yaml.safe_load``'s data types (no tags that build objects), and a key
    listed twice in a mapping is refused, naming its lines (YAML readers keep the last value silently)."""
    loader = _StrictLoader(text)  # a SafeLoader: plain data only
    try:
        return loader.get_single_data()
    except _DuplicateKey as exc:
        raise DataError(f"{label}: {exc}") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{label}: invalid YAML: {exc}") from None
    except RecursionError:
        raise DataError(f"{label}: YAML nested too deeply to read") from None
    finally:
        loader.dispose()


def no_duplicate_keys(label: str):
    """A ``json.loads`` ``object_pairs_hook`` that refuses a key listed twice in one object."""
    def hook(pairs):
        keys = [k for k, _ in pairs]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise DataError(f"{label}: {dup} listed more than once in one object: list each key once (the value "
                            "given last would silently win)")
        return dict(pairs)

    return hook


class _DuplicateKey(yaml.YAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key listed twice in one mapping (merge keys ``<<`` excepted: they are
    meant to be overridden)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = lines.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first != key_node.start_mark.line + 1:
                    raise _DuplicateKey(f"[{key!r}] listed more than once in one mapping (lines {first} and "
                                        f"{key_node.start_mark.line + 1}): list each key once (the value given "
                                        "last would silently win)")
        return super().construct_mapping(node, deep=deep)


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
