"""The schedule sections of a report, on run directories written the way the trainer writes them."""

from __future__ import annotations

import json

from regmix_megatron.report.page import build_report
from regmix_megatron.report.schedule import (
    labelled_run_dirs,
    phase_boundaries,
    phase_table_rows,
    schedule_sections,
    validation_curve,
)


def write_run(path, losses_by_step, phases=None):
    path.mkdir(parents=True)
    rows = [{"step": s, "train_loss": 1.0} for s in range(1, 41)]
    for row in rows:
        if row["step"] in losses_by_step:
            row["val_loss"] = losses_by_step[row["step"]]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "result.json").write_text(json.dumps({"status": "completed", "phases": phases}))
    return path


PHASES = [
    {"phase": 1, "fraction": 0.75, "start_sample": 0, "end_sample": 480, "start_step": 0, "end_step": 30,
     "num_samples": 480, "requested": {"a": 1.0, "b": 0.0}, "realized": {"a": 1.0, "b": 0.0},
     "samples": {"a": 480, "b": 0}},
    {"phase": 2, "fraction": 0.25, "start_sample": 480, "end_sample": 640, "start_step": 30, "end_step": 40,
     "num_samples": 160, "requested": {"a": 0.25, "b": 0.75}, "realized": {"a": 0.25, "b": 0.75},
     "samples": {"a": 40, "b": 120}},
]


def test_curves_boundaries_and_phase_table(tmp_path):
    losses = {s: {"a": 6 - s / 20, "b": 6 - s / 40} for s in (10, 20, 30, 40)}
    scheduled = write_run(tmp_path / "scheduled", losses, PHASES)
    static = write_run(tmp_path / "static", {s: {"a": v["a"], "b": v["b"] + 0.1} for s, v in losses.items()})
    assert validation_curve(scheduled) == [(s, losses[s]) for s in (10, 20, 30, 40)]
    result = json.loads((scheduled / "result.json").read_text())
    assert phase_boundaries(result["phases"]) == [30]
    rows = phase_table_rows(result["phases"])
    assert [(r["phase"], r["domain"]) for r in rows] == [("1 (steps 0..29)", "a"), ("2 (steps 30..39)", "a"),
                                                         ("2 (steps 30..39)", "b")]  # b has no weight in phase 1
    sections = schedule_sections({"regmix": scheduled, "regmix_static": static}, highlight="b")
    (section,) = sections
    assert "step 30" in section.html and "Requested vs realized" in section.html
    assert section.images[0][0] == "phase_curves.png" and section.images[0][1][:4] == b"\x89PNG"
    page = build_report(sections, tmp_path / "report.html", title="t", png_dir=tmp_path / "png")
    assert (tmp_path / "png" / "phase_curves.png").is_file() and page.is_file()
    runs_json = {"runs": {"regmix": {"target": {"run_dir": str(scheduled)}}, "natural": {"target": None}}}
    assert labelled_run_dirs(runs_json, ["regmix", "regmix_static", "natural"]) == {"regmix": str(scheduled)}
    relative = {"runs": {"regmix": {"target": {"1234": {"run_dir": scheduled.name}, "1235": {"run_dir": "x"}}}}}
    assert labelled_run_dirs(relative, ["regmix"], root=scheduled.parent) == {"regmix": str(scheduled)}
