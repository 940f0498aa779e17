"""The pipeline's progress bar (regmix_megatron/pipeline/progress.py): one bar over all stages in estimated
seconds; a skipped stage leaves the total, a finished one fills its share."""

from __future__ import annotations

import io

from regmix_megatron.pipeline.progress import BarProgress


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
