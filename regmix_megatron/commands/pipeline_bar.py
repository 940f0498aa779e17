"""One progress bar across all stages, in estimated seconds of work, so its ETA spans the whole run.

CLI only (``regmix-megatron run``); the library uses :class:`~.framework.Progress`, which only logs. The bar is
:class:`regmix_megatron.commands.progress_bar.ProgressBar` (plain lines when the output is not a terminal). Each stage has an
estimate (seconds) from the config; stages report the fraction they have done. A skipped stage's estimate is
removed from the total instead of counted as done, so the rate (and the ETA) reflects real work only. Once runs
of a training stage finish, the stage reports its measured total (:meth:`BarProgress.reestimate`: the per-run
times measured so far x the runs left); the later training stage is scaled by the same measured/estimated ratio,
so the ETA follows measured times rather than the config's FLOP estimate.
"""

from __future__ import annotations

import sys

from ..pipeline.framework import Progress
from .progress_bar import ProgressBar

#: Stages whose time is training runs (the estimate of one calibrates the other).
TRAINING_STAGES = ("sweep", "full_scale")


class BarProgress(Progress):
    def __init__(self, file=None) -> None:
        self.file = file or sys.stderr
        self.bar: ProgressBar | None = None
        self.weights: dict[str, float] = {}
        self.current: str | None = None
        self.done_in_stage = 0.0
        self._fraction = 0.0
        self._anchor = (0.0, 0.0)
        self._pace = 0.0

    def begin(self, stages):
        self.weights = {name: max(float(w), 0.1) for name, w in stages}
        self.calibrated: set[str] = set()
        total = sum(self.weights.values())
        self.bar = ProgressBar(round(total, 1), desc="pipeline", unit="s~", file=self.file,
                               bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}")

    def start_stage(self, name):
        self.current = name
        self.done_in_stage = 0.0
        self._fraction = 0.0
        self._anchor = (0.0, 0.0)  # (fraction, bar units) where the stage's current pace starts
        self._pace = self.weights.get(name, 0.0)  # bar units per unit of the stage's fraction
        if self.bar is not None:
            self.bar.set_description(f"pipeline [{name}]")
            self.bar.set_note("")

    def update(self, fraction, note=""):
        if self.bar is None or self.current is None:
            return
        self._fraction = max(self._fraction, min(max(float(fraction), 0.0), 1.0))
        f0, u0 = self._anchor
        target = u0 + (self._fraction - f0) * self._pace
        if target > self.done_in_stage:
            self.bar.update(round(target - self.done_in_stage, 3))
            self.done_in_stage = target
        if note:
            self.bar.set_note(note)

    def reestimate(self, remaining_s):
        """The current stage has ``remaining_s`` seconds left: what it has done so far stays on the bar, the rest
        of its fraction now maps onto ``remaining_s``, and the total follows (re-estimating again is fine)."""
        if self.bar is None or self.current is None or self.current not in self.weights:
            return
        fraction = self._fraction
        if fraction >= 0.98:
            return
        old = self.weights[self.current]
        remaining = max(float(remaining_s), 0.0)
        self._anchor = (fraction, self.done_in_stage)
        self._pace = remaining / (1.0 - fraction)  # the stage's whole length at the measured pace
        self.weights[self.current] = max(self.done_in_stage + remaining, 0.1)
        if self.current in TRAINING_STAGES and self.current not in self.calibrated:
            self.calibrated.add(self.current)
            for later in TRAINING_STAGES[TRAINING_STAGES.index(self.current) + 1:]:
                if later in self.weights and later not in self.calibrated:
                    self.weights[later] *= max(self._pace, 0.1) / old
        done_before = self.bar.n - self.done_in_stage
        self.bar.set_total(round(max(done_before + sum(w for k, w in self.weights.items() if k in self._left()),
                                     self.bar.n, 0.1), 3))

    def _left(self) -> list[str]:
        """The current stage and the ones after it (the only ones whose weights are not spent yet)."""
        names = list(self.weights)
        return names[names.index(self.current):] if self.current in names else names

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
