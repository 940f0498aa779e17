"""The one progress bar of the command line: tqdm on a terminal, plain lines otherwise.

:class:`ProgressBar` draws a tqdm bar when both stdout and its own stream (stderr by default) are terminals. When
either is not (a log file, CI, a pipe) it prints plain lines instead of bar redraws: one when it starts, one
each time the count crosses another tenth of the total, one for a changed note at most every
:data:`PLAIN_NOTE_INTERVAL_S` seconds, and one when it closes; each with the estimated time left. Library code
reports progress through callbacks; only the CLI makes bars.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

#: Plain mode prints a line each time another 1/PLAIN_STEPS of the total has been done.
PLAIN_STEPS = 10
#: Plain mode prints a changed note at most this often (a sweep's "3/24 runs done" is not a log line per run).
PLAIN_NOTE_INTERVAL_S = 30.0


def is_interactive(stream: TextIO | None = None) -> bool:
    """True when stdout and ``stream`` (default stderr) are both terminals."""
    stream = stream if stream is not None else sys.stderr
    return _isatty(sys.stdout) and _isatty(stream)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class ProgressBar:
    """A count of ``total`` things (``unit``). ``update``/``update_to`` advance it, ``set_note`` shows a short
    status beside it, ``write`` prints a line without breaking the bar, ``close`` ends it."""

    def __init__(self, total: float, *, desc: str, unit: str = "it", initial: float = 0, file: TextIO | None = None,
                 unit_scale: bool = False, bar_format: str | None = None, interactive: bool | None = None) -> None:
        self.file = file if file is not None else sys.stderr
        self.desc = desc
        self.unit = unit
        self.total = total
        self.n = initial
        self.note = ""
        self._bar = None
        self._printed_step = -1
        self._started = time.monotonic()
        self._initial = initial
        self._last_line = 0.0
        if interactive if interactive is not None else is_interactive(self.file):
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, unit_scale=unit_scale,
                             file=self.file, dynamic_ncols=True, bar_format=bar_format)
        else:
            self._print_plain(force=True)

    @property
    def interactive(self) -> bool:
        return self._bar is not None

    def update(self, n: float = 1) -> None:
        self.update_to(self.n + n)

    def update_to(self, n: float) -> None:
        """Set the count to ``n`` (never backwards)."""
        if n <= self.n:
            return
        if self._bar is not None:
            self._bar.update(n - self.n)
        self.n = n
        self._print_plain()

    def set_total(self, total: float) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def set_description(self, desc: str) -> None:
        self.desc = desc
        if self._bar is not None:
            self._bar.set_description(desc)

    def set_note(self, note: str) -> None:
        if note == self.note:
            return
        self.note = note
        if self._bar is not None:
            self._bar.set_postfix_str(note)
        elif time.monotonic() - self._last_line >= PLAIN_NOTE_INTERVAL_S:
            self._print_plain(force=True)

    def write(self, line: str) -> None:
        """A line of text above the bar (a plain line when there is no bar)."""
        if self._bar is not None:
            self._bar.write(line, file=self.file)
        else:
            print(line, file=self.file, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._printed_step != -2:
            self._print_plain(force=True)
            self._printed_step = -2

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- plain lines ------------------------------------------------------------------------------------
    def _print_plain(self, force: bool = False) -> None:
        if self._bar is not None or self._printed_step == -2:
            return
        step = int(self.n * PLAIN_STEPS / self.total) if self.total else 0
        if not force and step <= self._printed_step:
            return
        self._printed_step = max(step, self._printed_step)
        self._last_line = time.monotonic()
        percent = f" ({100.0 * self.n / self.total:.0f}%{self._eta()})" if self.total else ""
        note = f" {self.note}" if self.note else ""
        print(f"{self.desc}: {_count(self.n)}/{_count(self.total)} {self.unit}{percent}{note}", file=self.file,
              flush=True)

    def _eta(self) -> str:
        """``, ETA ...`` from the rate so far (nothing before there is a rate, or when done)."""
        done = self.n - self._initial
        elapsed = time.monotonic() - self._started
        if done <= 0 or elapsed < 1.0 or self.n >= self.total:
            return ""
        return f", ETA {_duration(elapsed / done * (self.total - self.n))}"


def _count(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:,.1f}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _AboveBarHandler(logging.StreamHandler):
    """Writes log records above a tqdm bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def route_logging_above_bars() -> None:
    """On a terminal, replace the root logger's stream handlers (set up by the CLI) by ones that print above
    the bar; elsewhere (plain lines) leave them as they are."""
    if not is_interactive():
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler:
            new = _AboveBarHandler(handler.stream)
            new.setFormatter(handler.formatter)
            new.setLevel(handler.level)
            root.removeHandler(handler)
            root.addHandler(new)
