"""User-facing errors. ``assert`` is for internal invariants only; bad input raises these.

:func:`did_you_mean` / :func:`close_matches`: the "did you mean ...?" of a mistyped subcommand, flag, config key or
name, for the messages of these errors.

The CLI's one error boundary (``cli.main``) prints ``error: ...`` and exits 2 for a :class:`RegmixError` and for
the operating-system errors a user causes or can fix (:func:`os_error_message`: a missing or unreadable file, a
directory where a file is expected, a full disk, a read-only file system); anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import difflib
import errno
import sys
from typing import Callable, Iterable


class RegmixError(ValueError):
    """Bad user input or state. The message names the file/field/flag, the value, and the fix."""


class ConfigError(RegmixError):
    """A config field is invalid."""


class DataError(RegmixError):
    """An input file (JSONL, CSV, .idx, manifest) is malformed or inconsistent."""


#: errno -> (what happened, what to do). The operating-system errors that are the user's to fix.
_OS_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free space (or write elsewhere) and run the command again; "
                   "outputs are written whole or not at all, so nothing partial was kept"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota (or write elsewhere) and run the command "
                   "again; outputs are written whole or not at all, so nothing partial was kept"),
    errno.EACCES: ("permission denied", "fix the file's permissions or use a path you may read and write"),
    errno.EPERM: ("operation not permitted", "fix the file's permissions or use a path you may read and write"),
    errno.EROFS: ("read-only file system", "write to a writable location"),
    errno.ENOENT: ("no such file or directory", "check the path"),
    errno.EISDIR: ("is a directory, where a file is expected", "give the path of a file"),
    errno.ENOTDIR: ("a path component is not a directory", "check the path"),
    errno.ENAMETOOLONG: ("file name too long", "use a shorter path"),
    errno.EIO: ("input/output error", "check the device (dmesg) and run the command again"),
}


def os_error_message(exc: BaseException) -> str | None:
    """``<file>: <what happened> (<strerror>): <fix>`` for an OS error a user can fix, None for any other
    exception (a bug: it keeps its traceback)."""
    if not isinstance(exc, OSError) or exc.errno not in _OS_ERRORS:
        return None
    what, fix = _OS_ERRORS[exc.errno]
    where = exc.filename if exc.filename is not None else "(file not named by the system)"
    if exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}"
    return f"{where}: {what}: {fix}"


def run_guarded(prog: str, call: Callable[[], int | None], verbose: bool = False) -> int:
    """The one error boundary of every entry point (``regmix-megatron``, ``tools/*.py``, the sweep workers):
    ``call()``'s exit code; a user-facing failure (a :class:`RegmixError`, or an OS error the user can fix:
    :func:`os_error_message`) prints ``<prog>: error: ...`` and gives 2 (with ``verbose`` also the traceback);
    Ctrl-C gives 130; any other exception is a bug and propagates with its traceback."""
    try:
        return int(call() or 0)
    except RegmixError as exc:
        error, message = exc, str(exc)
    except OSError as exc:
        error, message = exc, os_error_message(exc)
        if message is None:
            raise
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    if verbose:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def close_matches(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The choices closest to ``word`` (case-insensitive, ``-``/``_`` alike), best first."""
    norm = {c.lower().replace("-", "_"): c for c in choices}
    found = difflib.get_close_matches(word.lower().replace("-", "_"), list(norm), n=n, cutoff=0.6)
    return [norm[f] for f in found]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` (or ``'x' or 'y'``), or ``""`` when nothing is close."""
    found = close_matches(word, choices)
    if not found:
        return ""
    return "; did you mean " + " or ".join(repr(f) for f in found) + "?"
