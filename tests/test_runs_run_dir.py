"""A run directory's files: names (one owner), typed readers that give back what they read, the trainer's status
records, the metrics and resume state, and what an earlier run in the directory means for a new start."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from regmix_megatron.errors import ConfigError, DataError
from regmix_megatron.runs import run_dir as rd
from regmix_megatron.runs.run_config import build_run_config, load_run_config

REPO = Path(__file__).resolve().parents[1]

#: A result.json as the trainer writes it for a static mixture (key order included).
STATIC_RESULT = {
    "status": "completed", "run_id": "0123456789abcdef", "mixture": {"a": 0.25, "b": 0.75}, "mixture_hash": "9" * 16,
    "seed": 1234, "steps": 30, "tokens": 30720, "val_loss": {"a": 5.5, "b": 6.25, "qa": 7.0},
    "val_loss_average": 6.25, "split_loss": {"test": {"a": 5.6, "b": 6.2, "qa": 7.1}}, "train_loss": 5.9,
    "elapsed_s": 12.5, "tokens_per_s": 2457.6, "preset": "tiny-test", "recipe_hash": "8" * 16,
    "num_parameters": {"total": 1000, "non_embedding": 100}, "validation_tokens": {"a": 1024, "b": 1024, "qa": 1024},
    "evaluation_sizes": {"valid": {"a": {"num_tokens": 1024, "num_documents": 3}}},
    "data_identity": {"tokenizer": {"type": "sentencepiece"}, "domains": {}},
}
PHASES = [{"phase": 1, "start_step": 0, "end_step": 20, "requested": {"a": 1.0}},
          {"phase": 2, "start_step": 20, "end_step": 30, "requested": {"b": 1.0}}]
SCHEDULE_RESULT = {**STATIC_RESULT, "schedule": {"format": "regmix-megatron/schedule/v1", "hash": "7" * 16,
                                                 "phases": []},
                   "schedule_hash": "7" * 16, "phases": PHASES}


def test_the_layout_of_a_run_directory(tmp_path):
    d = rd.RunDir(tmp_path)
    assert (d.config.name, d.result.name, d.status.name, d.metrics.name, d.document_losses.name) == (
        "config.yaml", "result.json", "status.json", "metrics.jsonl", "document_losses.json")
    assert d.checkpoints == tmp_path / "checkpoints" and d.evaluation("test") == tmp_path / "evaluations" / "test.json"
    assert (d.lock.name, d.logs.name, d.tensorboard.name) == ("lock.json", "logs", "tensorboard")


@pytest.mark.parametrize("doc", [STATIC_RESULT, SCHEDULE_RESULT, {**STATIC_RESULT, "future_field": [1, 2]}])
def test_a_result_read_is_written_back_byte_for_byte(tmp_path, doc):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    result = rd.read_result(tmp_path)
    assert result.val_loss == doc["val_loss"] and result.seed == 1234 and result.split_loss["test"]["qa"] == 7.1
    assert (result.schedule_hash, result.phases) == (doc.get("schedule_hash"), doc.get("phases"))
    from regmix_megatron.fileio import atomic_write_json  # the trainer's writer of result.json

    atomic_write_json(tmp_path / "again.json", result.to_json_obj())
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_result_losses_by_split():
    result = rd.RunResult.from_json_obj(STATIC_RESULT, "result.json")
    assert result.losses("valid") == STATIC_RESULT["val_loss"] and result.losses("test")["a"] == 5.6
    with pytest.raises(DataError, match="no train losses in its result.json"):
        result.losses("train")


def test_a_result_that_is_not_a_completed_runs_is_refused_naming_the_field(tmp_path):
    with pytest.raises(DataError, match=r"r\.json: field 'status' must be one of \['completed'\], not str 'diverged'"):
        rd.RunResult.from_json_obj({**STATIC_RESULT, "status": "diverged"}, "r.json")
    with pytest.raises(DataError, match=r"field 'split_loss\.test' must be a mapping, not list"):
        rd.RunResult.from_json_obj({**STATIC_RESULT, "split_loss": {"test": [1.0]}}, "r.json")
    with pytest.raises(DataError, match=r"field 'seed' must be an integer >= 0"):
        rd.RunResult.from_json_obj({**STATIC_RESULT, "seed": "1234"}, "r.json")
    # what the sweep counts as done: a completed run's result with its per-domain losses
    assert rd.read_result_or_none(tmp_path) is None
    (tmp_path / "result.json").write_text('{"status": "comp')
    assert rd.read_result_or_none(tmp_path) is None
    (tmp_path / "result.json").write_text(json.dumps({"status": "completed"}))
    assert rd.read_result_or_none(tmp_path) is None
    (tmp_path / "result.json").write_text(json.dumps({"status": "completed", "val_loss": {}}))
    assert rd.read_result_or_none(tmp_path).val_loss == {}


def test_statuses_are_written_as_the_trainer_always_wrote_them(tmp_path):
    failed = rd.RunStatus.failed(step=7, error=OSError(28, "No space left on device"), run_id="r1")
    assert list(failed.to_json_obj().items()) == [("status", "failed"), ("step", 7),
                                                  ("error", "OSError: [Errno 28] No space left on device"),
                                                  ("run_id", "r1")]
    diverged = rd.RunStatus.diverged(step=4, loss=float("nan"), grad_norm=3.5, run_id="r1")
    assert list(diverged.to_json_obj().items()) == [("status", "diverged"), ("step", 4), ("train_loss", "nan"),
                                                    ("grad_norm", 3.5), ("run_id", "r1")]
    rd.write_status(tmp_path, diverged)
    read = rd.read_status_or_none(tmp_path)
    assert read == diverged and read.is_diverged and read.describe() == "diverged step=4"
    (tmp_path / "status.json").write_text('{"status": "fai')
    assert rd.read_status_or_none(tmp_path) is None


def test_a_status_is_described_in_one_line_and_unreadable_json_is_none(tmp_path):
    status = rd.RunStatus.from_json_obj({"status": "failed", "step": 4, "error": "ValueError: x", "reason": ""}, "s")
    assert status.describe() == "failed error=ValueError: x step=4"
    path = tmp_path / "half.json"
    path.write_text('{"status": "comp')  # being written by someone else
    assert rd.read_json_or_none(path) is None and rd.read_json_or_none(tmp_path / "missing.json") is None
    path.write_text(json.dumps({"a": 1}))
    assert rd.read_json_or_none(path) == {"a": 1}


def test_metrics_and_the_resume_state(tmp_path):
    rows = [{"step": 1, "train_loss": 7.0}, {"step": 2, "train_loss": 6.5, "val_loss": {"a": 6.0}}]
    rd.start_metrics(tmp_path)
    assert rd.read_metrics(tmp_path) == []
    for row in rows:
        rd.append_metrics(tmp_path, row)
    assert rd.read_metrics(tmp_path) == rows and rd.evaluation_rows(tmp_path) == [(2, {"a": 6.0})]
    progress = rd.RunProgress(step=2, tokens=64, train_time_s=1.5, metrics=rows[:1])
    meta = progress.checkpoint_meta("r1", tensor_model_parallel_size=1, pipeline_model_parallel_size=2,
                                    data_parallel_size=1)
    assert rd.RunProgress.from_checkpoint_meta(json.loads(json.dumps(meta))) == progress
    rd.rewrite_metrics(tmp_path, progress.metrics)  # a resume drops the rows logged after its checkpoint
    assert rd.read_metrics(tmp_path) == rows[:1]
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"metrics\.jsonl: line 2 is not a JSON object"):
        rd.read_metrics(tmp_path)


def _resolved(tmp_path, seed=1):
    from sweep_fixtures import write_domains_json

    domains = write_domains_json(tmp_path / "project" / "data")
    out = tmp_path / "project" / "run"
    return build_run_config({"preset": "tiny-test", "domains": str(domains), "output_dir": str(out),
                             "seed": seed}).resolve(), domains, out


def test_what_a_finished_run_records(tmp_path):
    resolved, _, out = _resolved(tmp_path)
    row = {"step": 3, "train_loss": 6.0, "val_loss": {"arxiv": 6.5}, "val_loss_average": 6.5}
    progress = rd.RunProgress(step=3, tokens=3 * 16 * 64, train_time_s=2.0, metrics=[{"step": 2}, row])
    result = rd.completed_result(resolved, progress, split_loss={"test": {"arxiv": 6.6}},
                                 num_parameters={"total": 10, "non_embedding": 5}, validation_tokens={"arxiv": 1024},
                                 evaluation_sizes={"valid": {}, "test": {}})
    doc = result.to_json_obj()
    assert list(doc) == [k for k in rd._RESULT_ORDER if k not in ("schedule", "schedule_hash", "phases")]
    assert (doc["run_id"], doc["seed"], doc["mixture_hash"]) == (resolved.run_id, 1, resolved.mixture.hash)
    assert doc["val_loss"] == row["val_loss"] and doc["tokens_per_s"] == progress.tokens / 2.0
    assert doc["recipe_hash"] == resolved.config.recipe.hash and doc["preset"] == "tiny-test"
    assert rd.RunResult.from_json_obj(json.loads(json.dumps(doc)), "result.json") == result  # it reads back


def test_a_run_directory_is_checked_by_content_not_by_path(tmp_path):
    """A finished run moved with a copy of its data is the same run; other data under the same path is not."""
    resolved, domains, out = _resolved(tmp_path)
    resolved.save_config(out / "config.yaml")
    (out / "result.json").write_text(json.dumps({"status": "completed", "run_id": resolved.run_id}))
    moved = Path(shutil.copytree(tmp_path / "project", tmp_path / "moved"))
    again = load_run_config(moved / "run" / "config.yaml").resolve()
    assert again.config.domains == str(moved / "data" / "domains.json")
    assert rd.existing_outcome(again, moved / "run")["run_id"] == resolved.run_id
    obj = json.loads(domains.read_text())
    obj["domains"][0]["splits"]["train"][0]["num_tokens"] += 5
    domains.write_text(json.dumps(obj))
    with pytest.raises(ConfigError, match="the data differs"):
        rd.existing_outcome(load_run_config(out / "config.yaml").resolve(), out)
    rd.discard_outputs(out)  # --force
    assert rd.existing_outcome(load_run_config(out / "config.yaml").resolve(), out) is None
    assert not (out / "result.json").exists()


def test_an_earlier_outcome_another_run_or_a_garbled_file(tmp_path):
    resolved, _, out = _resolved(tmp_path)
    rd.prepare(out, resolved)
    assert rd.read_run_config(out).seed == 1 and rd.existing_outcome(resolved, out) is None
    rd.write_status(out, rd.RunStatus.diverged(step=3, loss=float("inf"), grad_norm=1.0, run_id=resolved.run_id))
    assert rd.existing_outcome(resolved, out) == {"status": "diverged", "step": 3, "train_loss": "inf",
                                                  "grad_norm": 1.0, "run_id": resolved.run_id}
    rd.prepare(out, resolved)  # a new start clears the old status
    assert not (out / "status.json").exists()
    (out / "result.json").write_text('{"status": "completed", "val_')  # killed mid-write by hand
    assert rd.existing_outcome(resolved, out) is None and (out / "result.json.corrupt-1").exists()
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"run_id": "another"}))
    with pytest.raises(ConfigError, match=f"it holds run another, this config is run {resolved.run_id}"):
        rd.existing_outcome(resolved, out, [meta])
    other, _, _ = _resolved(tmp_path / "other", seed=2)
    with pytest.raises(ConfigError, match=r"fields \['seed'\] differ"):
        rd.existing_outcome(other, out)


# ---- one owner ------------------------------------------------------------------------------------------------
#: Literals that name something else than a run directory's file, with the reason.
NOT_A_RUN_DIRECTORY = {
    ("regmix_megatron/pipeline/__init__.py", "config.yaml"): "the pipeline's own OUT/config.yaml",
    ("regmix_megatron/gpu_check/megatron_lm.py", "checkpoints"): "Megatron-LM's --save folder of its own run",
}


def run_dir_literals(root: Path) -> list[tuple[str, int, str]]:
    """Every string literal in the package, tools/ and bench/ that names a run directory's file (alone or as a
    path component, e.g. ``"*/result.json"``), outside runs/run_dir.py. Dict keys, subscripts, docstrings and
    prose (a message or help text: a literal with whitespace) are not file names."""
    found = []
    for folder in ("regmix_megatron", "tools", "bench"):
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel == "regmix_megatron/runs/run_dir.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or any(
                        c.isspace() for c in node.value):
                    continue
                parent = parents.get(node)
                if (isinstance(parent, ast.Expr) or (isinstance(parent, ast.Dict) and node in parent.keys)
                        or (isinstance(parent, ast.Subscript) and parent.slice is node)):
                    continue
                for name in set(node.value.split("/")) & set(rd.NAMES):
                    if (rel, name) not in NOT_A_RUN_DIRECTORY:
                        found.append((rel, node.lineno, name))
    return found


def test_no_run_directory_file_name_is_spelled_outside_its_owner():
    found = run_dir_literals(REPO)
    assert not found, "use the constants of regmix_megatron/runs/run_dir.py: " + "; ".join(
        f"{path}:{line} {name!r}" for path, line, name in found)


def test_the_completion_marker_is_written_after_the_per_document_losses(tmp_path, monkeypatch):
    import numpy as np

    from regmix_megatron.runs.document_losses import DocumentLosses, RunDocumentLosses, read_document_losses

    seen = []
    write = rd.atomic_write_json

    def watching(path, obj, *args, **kwargs):
        if Path(path).name == "result.json":
            seen.append(read_document_losses(Path(path).parent).run_id)
        return write(path, obj, *args, **kwargs)

    monkeypatch.setattr(rd, "atomic_write_json", watching)
    documents = RunDocumentLosses(run_id="r1", step=3, splits={"valid": {"a": DocumentLosses(
        loss_sum=np.array([1.5, 2.0]), num_tokens=np.array([1, 2]))}})
    rd.write_completed(tmp_path, rd.RunResult.from_json_obj(STATIC_RESULT, "r"), documents)
    assert seen == ["r1"] and rd.read_result(tmp_path).to_json_obj() == STATIC_RESULT
