"""One progress bar across all stages, in estimated seconds of work, so its ETA spans the whole run.

CLI only (``regmix-megatron run``); the library uses :class:`~.framework.Progress`, which only logs. The bar is
:class:`regmix_megatron.progress.ProgressBar` (plain lines when the output is not a terminal). Each stage has an
estimate (seconds) from the config; stages report the fraction they have done. A skipped stage's estimate is
removed from the total instead of counted as done, so the rate (and the ETA) reflects real work only.
"""

from __future__ import annotations

import sys

from ..progress import ProgressBar
from .framework import Progress


class BarProgress(Progress):
    def __init__(self, file=None) -> None:
        self.file = file or sys.stderr
        self.bar: ProgressBar | None = None
        self.weights: dict[str, float] = {}
        self.current: str | None = None
        self.done_in_stage = 0.0

    def begin(self, stages):
        self.weights = {name: max(float(w), 0.1) for name, w in stages}
        total = sum(self.weights.values())
        self.bar = ProgressBar(round(total, 1), desc="pipeline", unit="s~", file=self.file,
                               bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}")

    def start_stage(self, name):
        self.current = name
        self.done_in_stage = 0.0
        if self.bar is not None:
            self.bar.set_description(f"pipeline [{name}]")
            self.bar.set_note("")

    def update(self, fraction, note=""):
        if self.bar is None or self.current is None:
            return
        target = self.weights.get(self.current, 0.0) * min(max(float(fraction), 0.0), 1.0)
        if target > self.done_in_stage:
            self.bar.update(round(target - self.done_in_stage, 3))
            self.done_in_stage = target
        if note:
            self.bar.set_note(note)

    def end_stage(self, name, status, seconds):
        if self.bar is None:
            return
        weight = self.weights.get(name, 0.0)
        if status == "skipped":
            self.bar.set_total(round(max(self.bar.total - weight, self.bar.n, 0.1), 3))
        elif status == "done":
            self.bar.update(round(weight - self.done_in_stage, 3) if name == self.current else weight)
        self.bar.write(f"  {name}: {status}" + (f" ({seconds:.1f} s)" if status != "skipped" else ""))
        self.current = None
        self.done_in_stage = 0.0

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
