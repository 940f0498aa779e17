"""The pipeline's progress bar (regmix_megatron/commands/pipeline_bar.py): one bar over all stages in estimated
seconds; a skipped stage leaves the total, a finished one fills its share."""

from __future__ import annotations

import io

from regmix_megatron.commands.pipeline_bar import BarProgress


def test_skipped_stages_leave_the_total_and_done_stages_fill_their_share():
    out = io.StringIO()  # not a terminal: plain lines
    progress = BarProgress(file=out)
    progress.begin([("corpus", 10.0), ("sweep", 80.0), ("report", 10.0)])
    assert progress.bar.total == 100.0
    progress.end_stage("corpus", "skipped", 0.0)
    assert progress.bar.total == 90.0 and progress.bar.n == 0
    progress.start_stage("sweep")
    progress.update(0.5, "sweep: 3/6 runs done")
    assert progress.bar.n == 40.0
    progress.update(0.25)  # never backwards
    assert progress.bar.n == 40.0
    progress.end_stage("sweep", "done", 12.3)
    assert progress.bar.n == 80.0
    progress.close()
    lines = out.getvalue().splitlines()
    assert "  corpus: skipped" in lines and "  sweep: done (12.3 s)" in lines
    assert any(line.endswith("sweep: 3/6 runs done") for line in lines)
    assert "\r" not in out.getvalue()


def test_reestimates_keep_the_bar_moving_and_the_total_at_the_measured_pace():
    """Runs faster than estimated (the demo's targets stage): after each re-estimate, later updates still move the
    bar, and what is left on it is the measured remaining time (plus the later training stage, scaled)."""
    progress = BarProgress(file=io.StringIO())
    progress.begin([("sweep", 100.0), ("full_scale", 100.0)])
    progress.start_stage("sweep")
    progress.update(0.5)
    assert progress.bar.n == 50.0
    progress.reestimate(20.0)  # half the runs left, 20 s at the measured pace: the stage's pace is 40 per unit
    assert progress.bar.n == 50.0 and progress.bar.total == 50.0 + 20.0 + 40.0  # targets scaled by 40/100
    progress.update(0.75)
    assert progress.bar.n == 60.0  # 50 + 0.25 x 40: not stuck below what was already shown
    progress.reestimate(5.0)  # faster still: 5 s left for the last quarter
    assert progress.bar.total == 60.0 + 5.0 + 40.0
    progress.update(0.875)
    assert progress.bar.n == 62.5
    progress.end_stage("sweep", "done", 1.0)
    assert progress.bar.n == 65.0
    progress.start_stage("full_scale")  # already calibrated by the sweep's pace; a slower measure raises the total
    progress.update(0.5)
    assert progress.bar.n == 85.0
    progress.reestimate(60.0)
    assert progress.bar.total == 85.0 + 60.0
    progress.update(1.0)
    assert progress.bar.n == 145.0 and progress.bar.n <= progress.bar.total
    progress.close()
