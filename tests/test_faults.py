"""Fault injection on the corpus fixture: what a hostile or unlucky user does to the files, the disk and the
processes. Every test asserts the outcome: recovered, with results identical to an undisturbed run, or a clear
exit-2 error naming the file or flag, with nothing partial left behind.

- A checkpoint whose unpickling would run code (its payload would create a file): refused, the file never appears.
- A truncated checkpoint, result.json, status.json, lock or attempt record: set aside (``.corrupt-<n>``), redone.
- A truncated ``.bin``, a corrupt ``.idx`` header, an edited ``domains.json`` count: refused before training; the
  pipeline redoes its indexed stage instead of skipping it.
- A full disk (a tiny tmpfs; skipped with a message where it cannot be mounted) under ``train``, ``export``,
  ``search``, ``fit`` and ``sweep collect``: exit 2 naming the file, the previous outputs whole, no temp files.
- SIGKILL of the trainer while it writes a checkpoint: the resumed run ends where the undisturbed one does.
- A sweep folder and a pipeline folder copied elsewhere: every run id kept, nothing re-run.
- Mixtures of every format that do not sum to 1: refused, naming the flag that rescales them on purpose.
- Every format we load is data (YAML via safe_load, JSON, LightGBM text): a YAML tag that would call a function
  is refused; no code path loads pickles.

(SLURM option injection lives with the SLURM executor: tests/test_sweep_slurm.py; the error boundary itself in
tests/test_errors.py; kills at each rename of the write protocols in tests/test_fileio.py.)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from regmix_megatron import cli
from regmix_megatron.data.manifest import DomainRegistry

from helpers.cli import CLI, run_cli
from helpers.training import domains_json_of, subprocess_env
from sweep_fixtures import PROXY_OVERRIDES, make_real_sweep_inputs, planned, mechanics_train  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore")
REPO = Path(__file__).resolve().parents[1]
#: A short run with two checkpoints (steps 2 and 4), both kept.
SHORT = {"preset": "tiny-test", "seed": 3, "optim": {"train_steps": 4, "warmup_steps": 1},
         "eval": {"eval_interval": 2, "num_tokens_per_domain": 1024}, "checkpoint": {"interval": 2, "keep_last": 2}}


def _config(tmp_path: Path, domains_json: Path, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict(SHORT, domains=str(domains_json))))
    return path


def _train(config: Path, out: Path, *extra: str) -> tuple[int, str]:
    """``regmix-megatron train`` in this process (imports paid once); exit code and stderr."""
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main(["train", str(config), "--output-dir", str(out), *extra])
    return rc, err.getvalue()


def _val_loss(out: Path) -> dict:
    return json.loads((out / "result.json").read_text())["val_loss"]


def _visible(root: Path) -> list[str]:
    """Every file and directory under ``root``, relative, temp entries included (to show none is left)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def domains(indexed_fixture) -> Path:
    return domains_json_of(indexed_fixture)


@pytest.fixture(scope="module")
def finished_run(domains, tmp_path_factory):
    """The undisturbed run every recovery is compared with: (its config, its run directory)."""
    base = tmp_path_factory.mktemp("finished")
    config = _config(base, domains)
    rc, err = _train(config, base / "run")
    assert rc == 0, err
    return config, base / "run"


def _copy_run(finished_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished_run[1], out)
    return out


# ---- checkpoints -------------------------------------------------------------------------------------------
class CreatesAFile:
    """Unpickling this calls ``open(path, "w")``: the stand-in for any code an attacker would run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.slow
def test_a_checkpoint_that_would_run_code_ends_the_resume_in_a_clear_error(finished_run, tmp_path):
    import torch

    from regmix_megatron.megatron import checkpoint as ckpt

    out = _copy_run(finished_run, tmp_path)
    (out / "result.json").unlink()  # so that the trainer resumes from the newest checkpoint
    marker = tmp_path / "payload-ran"
    shard = out / "checkpoints" / "step_0000004" / ckpt.shard_name(0, 0)
    state = ckpt.load_shard(shard.parent, 0, 0)
    state["rng"]["python"] = CreatesAFile(marker)
    torch.save(state, shard)  # someone with write access to the shared run directory
    rc, err = _train(finished_run[0], out)
    assert rc == 2 and "Traceback" not in err
    assert re.search(r"error: .*step_0000004/model_optim_rng_tp0_pp0\.pt: refused to load: it holds objects other "
                     r"than tensors and plain data .*could run code", err), err
    assert not marker.exists()
    assert not (out / "result.json").exists()
    assert json.loads((out / "status.json").read_text())["status"] == "failed"


@pytest.mark.slow
def test_a_truncated_checkpoint_and_result_are_set_aside_and_the_run_recovers_identically(finished_run, tmp_path):
    from regmix_megatron.megatron import checkpoint as ckpt

    out = _copy_run(finished_run, tmp_path)
    shard = out / "checkpoints" / "step_0000004" / ckpt.shard_name(0, 0)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    result = out / "result.json"
    result.write_text(result.read_text()[:40])
    rc, err = _train(finished_run[0], out)
    assert rc == 0, err
    assert _val_loss(out) == _val_loss(finished_run[1])  # resumed from step 2, bit for bit
    assert (out / "result.json.corrupt-1").read_text().startswith("{")
    assert (out / "checkpoints" / "step_0000004.corrupt-1").is_dir()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step_0000002", "step_0000004", "step_0000004.corrupt-1"]


def _mount_tiny_disk(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {proc.stderr.strip()}")


@contextlib.contextmanager
def tiny_disk(path: Path, size: str):
    """A tmpfs of ``size`` at ``path`` (skips the test where it cannot be mounted); unmounted at the end."""
    _mount_tiny_disk(path, size)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(disk: Path) -> None:
    """Use up every free byte of ``disk``."""
    with contextlib.suppress(OSError), open(disk / "filler", "wb") as fh:  # (already full: open fails)
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()


@pytest.mark.slow
def test_train_on_a_full_disk_stops_with_a_status_and_resumes_identically(finished_run, tmp_path):
    """Room for the config and the metrics, not for the first checkpoint (~2.6 MB)."""
    with tiny_disk(tmp_path / "disk", "1500k") as disk:
        out = disk / "run"
        rc, err = _train(finished_run[0], out)
        assert rc == 2 and "Traceback" not in err
        assert re.search(r"error: .*checkpoints/step_0000002/model_optim_rng_tp0_pp0\.pt: no space left on the "
                         r"device: free space", err), err
        status = json.loads((out / "status.json").read_text())
        assert status["status"] == "failed" and "No space left" in status["error"]
        assert _visible(out) == ["checkpoints", "config.yaml", "metrics.jsonl", "status.json"]
        moved = tmp_path / "run"
        shutil.copytree(out, moved)  # more space: the same run, resumed elsewhere
    rc, err = _train(finished_run[0], moved)
    assert rc == 0, err
    assert _val_loss(moved) == _val_loss(finished_run[1])


@pytest.mark.slow
def test_a_kill_while_a_checkpoint_is_written_resumes_identically(finished_run, tmp_path):
    import torch

    out = tmp_path / "run"
    cmd = CLI + ["train", str(finished_run[0]), "--output-dir", str(out)]
    env = dict(subprocess_env(), OMP_NUM_THREADS=str(torch.get_num_threads()))  # as the in-process reference run
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints, seen = out / "checkpoints", ""
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline and not seen:
        with contextlib.suppress(FileNotFoundError):
            seen = next((p.name for p in os.scandir(checkpoints) if p.name.startswith((".tmp-step", "step_"))), "")
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert seen, "the run ended or timed out before writing a checkpoint"
    assert not (out / "result.json").exists()
    for step in checkpoints.glob("step_*"):  # whatever the kill hit, a step directory is whole
        assert (step / "meta.json").is_file() and any(step.glob("*.pt")), step
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _val_loss(out) == _val_loss(finished_run[1])
    assert not [p for p in checkpoints.iterdir() if p.name.startswith(".tmp-")]


# ---- the data ------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("damage, named", [
    ("truncate_bin", r"code/train_text_document\.bin: \d+ bytes, but .* the \.bin is truncated"),
    ("corrupt_idx_header", r"math/valid_text_document\.idx: not a Megatron index"),
    ("edit_count", r"domain 'legal' train prefix .* records \(documents, sequences, tokens\)"),
])
def test_damaged_data_stops_training_before_anything_is_written(indexed_fixture, tmp_path, damage, named):
    data = Path(shutil.copytree(indexed_fixture.output_dir, tmp_path / "data"))
    if damage == "truncate_bin":
        path = data / "code" / "train_text_document.bin"
        path.write_bytes(path.read_bytes()[:-6])
    elif damage == "corrupt_idx_header":
        path = data / "math" / "valid_text_document.idx"
        path.write_bytes(b"\0" * 9 + path.read_bytes()[9:])
    else:
        obj = json.loads((data / "domains.json").read_text())
        legal = next(d for d in obj["domains"] if d["name"] == "legal")
        legal["splits"]["train"][0]["num_tokens"] -= 500
        (data / "domains.json").write_text(json.dumps(obj))
    config = _config(tmp_path, data / "domains.json")
    rc, err = _train(config, tmp_path / "run")
    assert rc == 2 and "Traceback" not in err and re.search(named, err), err
    assert "rerun preprocessing" in err or "regenerate domains.json" in err
    assert not (tmp_path / "run").exists()
    for argv in (["sample", "--domains", str(data / "domains.json"), "--output", str(tmp_path / "m.jsonl")],
                 ["export", "--mixture", str(tmp_path / "m.json"), "--domains", str(data / "domains.json"),
                  "--output-dir", str(tmp_path / "export")]):
        (tmp_path / "m.json").write_text(json.dumps({d: 1 / 8 for d in DomainRegistry.load(data).names}))
        assert cli.main(argv) == 2
        assert not (tmp_path / "m.jsonl").exists() and not (tmp_path / "export").exists()


# ---- sweeps ------------------------------------------------------------------------------------------------
def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli(*args, check=check, env=subprocess_env(), timeout=1800)


@pytest.fixture(scope="module")
def finished_sweep(indexed_fixture, tmp_path_factory):
    """A 3-run sweep of the real trainer, launched locally to the end and collected; (sweep dir, results)."""
    import pandas as pd

    base = tmp_path_factory.mktemp("sweep")
    mixtures, config, _ = make_real_sweep_inputs(base, domains_json_of(indexed_fixture), 3, seed=4)
    sweep = base / "sweep"
    _cli("sweep", "plan", "--mixtures", str(mixtures), "--config", str(config), "--output", str(sweep))
    _cli("sweep", "launch", str(sweep), "--executor", "local", "--parallel", "2")
    _cli("sweep", "collect", str(sweep))
    return sweep, pd.read_csv(sweep / "results.csv")


def _attempts(sweep: Path) -> dict[str, list]:
    from regmix_megatron.runs.sweep import state as st

    return {p.name: st.attempt_records(p) for p in sorted((sweep / "runs").iterdir())}


@pytest.mark.slow
def test_corrupt_run_files_are_set_aside_and_the_runs_redone_identically(finished_sweep, tmp_path):
    import pandas as pd

    sweep = Path(shutil.copytree(finished_sweep[0], tmp_path / "sweep"))
    a, b, c = sorted((sweep / "runs").iterdir())
    (a / "result.json").write_text((a / "result.json").read_text()[:30])  # truncated
    (a / "lock.json").write_bytes(b"\x00\x17garbage")
    (b / "result.json").unlink()
    (b / "status.json").write_text('{"status": "fai')
    (b / "logs" / "attempt-1.json").write_text("{")
    (c / "result.json").unlink()
    (c / "config.yaml").write_text("preset: [unclosed\n")
    before = _attempts(finished_sweep[0])
    proc = _cli("sweep", "launch", str(sweep), "--executor", "local", "--parallel", "1")
    assert "done=3 running=0 failed=0 pending=0" in proc.stdout
    for note in (f"run {a.name}: result.json is unreadable", f"run {b.name}: status.json is unreadable",
                 f"run {b.name}: logs/attempt-1.json is unreadable", f"run {c.name}: config.yaml is unreadable"):
        assert note in proc.stderr, (note, proc.stderr[-3000:])
    for path in (a / "result.json.corrupt-1", a / "lock.json.corrupt-1", b / "status.json.corrupt-1",
                 b / "logs" / "attempt-1.json.corrupt-1", c / "config.yaml.corrupt-1"):
        assert path.exists(), path  # kept for inspection
    after = _attempts(sweep)
    for run in (a, b, c):  # one more attempt each, none failed: a corrupt file costs no attempt
        assert len(after[run.name]) == len(before[run.name]) + 1
        assert after[run.name][-1]["outcome"] == "completed"
        assert not [r for r in after[run.name] if r.get("outcome") == "failed"]
        assert "# before this attempt: " in (run / "logs" / f"attempt-{len(after[run.name])}.log").read_text()
    _cli("sweep", "collect", str(sweep))
    pd.testing.assert_frame_equal(pd.read_csv(sweep / "results.csv"), finished_sweep[1])


@pytest.mark.slow
def test_a_copied_sweep_folder_keeps_its_run_ids_and_reruns_nothing(finished_sweep, tmp_path):
    """Copied elsewhere on its own (its data stays where it was): the finished copy launches nothing; a
    half-finished copy (one run lost its result, as if killed after its last checkpoint) trains only that run,
    from its checkpoint, to the same losses."""
    import pandas as pd

    from regmix_megatron.runs.sweep.plan import Sweep

    for name, lose_one in (("finished", False), ("half", True)):
        copy = Path(shutil.copytree(finished_sweep[0], tmp_path / name / "moved sweep"))
        assert Sweep.load(copy).run_ids() == Sweep.load(finished_sweep[0]).run_ids()
        lost = sorted((copy / "runs").iterdir())[1]
        if lose_one:
            (lost / "result.json").unlink()
        before = _attempts(copy)
        proc = _cli("sweep", "launch", str(copy), "--executor", "local", "--parallel", "2")
        assert "done=3 running=0 failed=0 pending=0" in proc.stdout
        after = _attempts(copy)
        for run_id, records in after.items():
            assert len(records) == len(before[run_id]) + (1 if lose_one and run_id == lost.name else 0), run_id
        if lose_one:
            log = (lost / "logs" / f"attempt-{len(after[lost.name])}.log").read_text()
            assert "resumed from" in log and "not there (the folder was moved)" in log
        _cli("sweep", "collect", str(copy))
        pd.testing.assert_frame_equal(pd.read_csv(copy / "results.csv"), finished_sweep[1])


# ---- the pipeline ------------------------------------------------------------------------------------------
def _statuses(out: Path) -> dict[str, str]:
    return {s["stage"]: s["status"] for s in json.loads((out / "stages" / "summary.json").read_text())["stages"]}


@pytest.mark.slow
def test_a_copied_pipeline_folder_resumes_and_damaged_data_redoes_the_indexed_stage(tmp_path):
    config = REPO / "examples" / "fixture.yaml"
    out = tmp_path / "first"
    _cli("run", str(config), "--output-dir", str(out), "--until", "indexed", "--no-progress")
    copy = Path(shutil.copytree(out, tmp_path / "elsewhere" / "copy"))
    _cli("run", str(config), "--output-dir", str(copy), "--until", "sample", "--no-progress")
    assert _statuses(copy) == {"corpus": "skipped", "tokenizer": "skipped", "indexed": "skipped", "sample": "done"}
    _cli("run", str(config), "--output-dir", str(copy), "--until", "sample", "--no-progress")
    assert set(_statuses(copy).values()) == {"skipped"}
    mixtures = (copy / "sample" / "mixtures.jsonl").read_bytes()
    # a truncated .bin: the indexed stage is redone, not skipped; its outputs equal, later stages stay skipped
    data = copy / "data" / "literature" / "train_text_document.bin"
    data.write_bytes(data.read_bytes()[:-10])
    proc = _cli("run", str(config), "--output-dir", str(copy), "--until", "sample", "--no-progress")
    assert "stage indexed: its outputs fail their check, so it runs again" in proc.stderr
    assert _statuses(copy) == {"corpus": "skipped", "tokenizer": "skipped", "indexed": "done", "sample": "skipped"}
    assert DomainRegistry.load(copy / "data" / "domains.json").verify_files() > 0
    assert (copy / "sample" / "mixtures.jsonl").read_bytes() == mixtures


# ---- full disk under the other writers -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_full_disk_under_export_search_fit_and_collect_keeps_the_previous_outputs(indexed_fixture, planned,
                                                                                    tmp_path):
    from helpers.regression import results_table
    from regmix_megatron.runs.sweep import state as st  # noqa: F401

    domains_json = domains_json_of(indexed_fixture)
    names = DomainRegistry.load(domains_json).names
    (tmp_path / "m.json").write_text(json.dumps({d: 1 / len(names) for d in names}))
    table, _ = results_table(tmp_path / "results")
    for run in planned.runs:  # a collectable sweep (the stand-in trainer's results)
        mechanics_train(planned.run_dir(run.run_id))
    with tiny_disk(tmp_path / "disk", "16m") as disk:
        sweep = Path(shutil.copytree(planned.root, disk / "sweep"))
        jobs = {
            "export": ["export", "--mixture", str(tmp_path / "m.json"), "--domains", str(domains_json),
                       "--output-dir", str(disk / "export")],
            "fit": ["fit", "--results", str(table), "--target", "web", "--regressors", "linear", "--output-dir",
                    str(disk / "fit")],
            "search": ["search", "--fit-dir", str(disk / "fit"), "--regressor", "linear", "--prior",
                       str(tmp_path / "prior.json"), "--num-candidates", "2000", "--chunk-size", "500",
                       "--top-k", "10", "--output-dir", str(disk / "search")],
            "collect": ["sweep", "collect", str(sweep)],
        }
        (tmp_path / "prior.json").write_text(json.dumps({"code": 1, "news": 1, "web": 2, "wiki": 1}))
        for name, argv in jobs.items():  # first with room: the outputs a full disk must not damage
            assert cli.main(argv) == 0, name
        snapshot = {p: p.read_bytes() for p in disk.rglob("*") if p.is_file()}
        _fill(disk)
        for name, argv in jobs.items():
            proc = _cli(*argv, check=False)
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, (name, proc.stderr[-2000:])
            assert "no space left on the device" in proc.stderr and str(disk) in proc.stderr, (name, proc.stderr)
        (disk / "filler").unlink(missing_ok=True)
        assert {p: p.read_bytes() for p in disk.rglob("*") if p.is_file()} == snapshot  # whole, untouched
        assert not [p for p in disk.rglob("*") if p.name.startswith(".tmp-")]


# ---- mixtures: one rule for every format ---------------------------------------------------------------------
def test_every_mixture_input_follows_the_sum_rule(indexed_fixture, tmp_path, capsys):
    import argparse

    from helpers.regression import regmix_csvs, results_table
    from regmix_megatron.errors import RegmixError
    from regmix_megatron.mixtures.mixture import Mixture

    domains_json = domains_json_of(indexed_fixture)
    names = DomainRegistry.load(domains_json).names
    half = {d: 0.5 / len(names) for d in names}  # sums to 0.5
    (tmp_path / "half.json").write_text(json.dumps(half))
    (tmp_path / "half.yaml").write_text(yaml.safe_dump({"weights": half}))
    (tmp_path / "half.jsonl").write_text(json.dumps(half) + "\n")
    near = dict(half, **{names[0]: half[names[0]] + 0.4995})  # sums to 0.9995: within 1e-3
    (tmp_path / "near.json").write_text(json.dumps(near))

    def refused(argv, flag="--renormalize"):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert re.search(rf"sum to [0-9.]+, more than 0\.001 away from 1: fix the weights, or pass {flag}", err) or \
            re.search(rf"do not sum to 1 within 0\.001 .*pass {flag}", err), err
        return err

    out = str(tmp_path / "export")
    for spec in ("half.json", "half.yaml", "half.jsonl:0"):
        refused(["export", "--mixture", str(tmp_path / spec), "--domains", str(domains_json), "--output-dir", out])
        assert cli.main(["export", "--mixture", str(tmp_path / spec), "--domains", str(domains_json),
                         "--output-dir", out, "--renormalize"]) == 0
        assert Mixture.load(Path(out) / "mixture.json").as_dict() == Mixture.from_dict(half, renormalize=True).as_dict()
    assert cli.main(["export", "--mixture", str(tmp_path / "near.json"), "--domains", str(domains_json),
                     "--output-dir", out]) == 0
    # mixtures JSONL (sweep plan) and an inline mixture (a run config)
    proxy = tmp_path / "proxy.yaml"
    proxy.write_text(yaml.safe_dump({"preset": "tiny-test", "domains": str(domains_json)}))
    refused(["sweep", "plan", "--mixtures", str(tmp_path / "half.jsonl"), "--config", str(proxy), "--output",
             str(tmp_path / "sweep")])
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({"preset": "tiny-test", "domains": str(domains_json), "mixture": half,
                                   "output_dir": str(tmp_path / "r")}))
    from regmix_megatron.runs.run_config import load_run_config
    with pytest.raises(RegmixError, match="sum to 0.5.*pass --renormalize"):
        load_run_config(run).resolve()
    assert cli.main(["train", str(run), "--renormalize", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)["mixture"]
    assert abs(sum(printed.values()) - 1) < 1e-12
    # rows of a results table and of the RegMix CSV format; a missing domain column
    table, frame = results_table(tmp_path / "results")
    weights = [c for c in frame.columns if c.startswith("weight/")]
    frame[weights] = frame[weights] * 2.0
    frame.to_csv(tmp_path / "double.csv", index=False)
    refused(["fit", "--results", str(tmp_path / "double.csv"), "--target", "web", "--regressors", "linear"])
    m, l_, mix, _ = regmix_csvs(tmp_path)
    mix.drop(columns=["train_the_pile_wiki"]).to_csv(m, index=False)  # a domain column missing
    refused(["fit", "--mixtures", str(m), "--losses", str(l_), "--target", "web", "--regressors", "linear"])
    assert cli.main(["fit", "--mixtures", str(m), "--losses", str(l_), "--target", "web", "--regressors", "linear",
                     "--renormalize"]) == 0
    capsys.readouterr()
    # a baseline mixture of search, and the dataset provider's mixture
    fit_dir = tmp_path / "fit"
    assert cli.main(["fit", "--results", str(table), "--target", "web", "--regressors", "linear", "--output-dir",
                     str(fit_dir)]) == 0
    (tmp_path / "base.json").write_text(json.dumps({"code": 0.2, "news": 0.2, "web": 0.2, "wiki": 0.2}))
    (tmp_path / "prior.json").write_text(json.dumps({"code": 1, "news": 1, "web": 1, "wiki": 1}))
    search = ["search", "--fit-dir", str(fit_dir), "--regressor", "linear", "--prior", str(tmp_path / "prior.json"),
              "--num-candidates", "1000", "--chunk-size", "500", "--top-k", "10", "--baseline-mixture",
              str(tmp_path / "base.json"), "--output-dir", str(tmp_path / "search")]
    err = refused(search)
    assert "--baseline-mixture" in err
    assert cli.main(search + ["--renormalize"]) == 0
    from regmix_megatron.megatron.provider import load_schedule_and_registry
    args = argparse.Namespace(regmix_domains=str(domains_json), regmix_mixture=str(tmp_path / "half.json"))
    with pytest.raises(RegmixError, match="pass --regmix-renormalize"):
        load_schedule_and_registry(args)
    args.regmix_renormalize = True
    assert abs(sum(load_schedule_and_registry(args)[0].mixtures[0].weights) - 1) < 1e-12


# ---- every loaded format is data -------------------------------------------------------------------------------
def test_every_loaded_format_is_data(tmp_path, capsys):
    """YAML is read with safe_load (a tag that would call a function is an error and calls nothing), JSON is
    JSON, a LightGBM model is text for LightGBM's parser, and no code in the package or its tools loads a pickle
    or evaluates text."""
    from regmix_megatron.errors import RegmixError
    from regmix_megatron.mixtures.mixture import Mixture
    from regmix_megatron.regression.models import load_regressor

    marker = tmp_path / "ran"
    call = f"!!python/object/apply:builtins.open [{str(marker)!r}, w]"
    for name, text in (("run.yaml", f"preset: {call}\n"), ("m.yaml", f"weights: {call}\n"),
                       ("pipeline.yaml", f"corpus: {{source: {call}}}\n")):
        (tmp_path / name).write_text(text)
    assert cli.main(["train", str(tmp_path / "run.yaml"), "--print-config"]) == 2
    assert cli.main(["run", str(tmp_path / "pipeline.yaml")]) == 2
    assert "invalid YAML" in capsys.readouterr().err
    with pytest.raises(RegmixError, match="invalid YAML"):
        Mixture.load(tmp_path / "m.yaml")
    (tmp_path / "model.txt").write_text("tree\nversion=v4\nnum_class=__import__('os')\n")
    (tmp_path / "model.txt.meta.json").write_text(json.dumps({"format": "regmix-megatron/regressor/v1",
                                                              "kind": "lightgbm", "domains": ["a", "b"],
                                                              "target": "t"}))
    with pytest.raises(RegmixError):
        load_regressor(tmp_path / "model.txt")
    assert not marker.exists()
    pattern = re.compile(r"weights_only=False|shell=True|yaml\.load\(|pickle\.loads?\(|eval\(")
    offenders = [f"{p}:{i}" for folder in ("regmix_megatron", "tools") for p in sorted((REPO / folder).rglob("*.py"))
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


# ---- issue 23: output folders as users have them -----------------------------------------------------------
def _fixture_results(path: Path, names, n: int = 40, seed: int = 0) -> Path:
    """A results table over the fixture's training domains (made-up losses), for fit and search with export."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(len(names)), size=n)
    frame = pd.DataFrame({"run_id": [f"r{i}" for i in range(n)], "mixture_hash": [f"h{i}" for i in range(n)],
                          "seed": 0})
    for i, d in enumerate(names):
        frame[f"weight/{d}"] = w[:, i]
    for i, d in enumerate(names):
        frame[f"val_loss/{d}"] = 4.0 - w[:, i] + 0.3 * w[:, (i + 1) % len(names)] + 0.01 * rng.standard_normal(n)
    frame.to_csv(path, index=False, float_format="%.17g")
    return path


def _jobs(tmp_path: Path, domains_json: Path, out: Path, version: int) -> dict[str, list[str]]:
    """Each command that writes an output folder, writing into ``out``; ``version`` 1 and 2 give other content."""
    names = DomainRegistry.load(domains_json).names
    mixture = tmp_path / f"m{version}.json"
    mixture.write_text(json.dumps({d: (2.0 if i == version else 1.0) for i, d in enumerate(names)}))
    table = tmp_path / "results.csv"
    if not table.exists():
        _fixture_results(table, names)
        assert cli.main(["fit", "--results", str(table), "--target", names[0], "--regressors", "linear",
                         "--output-dir", str(tmp_path / "fit")]) == 0
    return {
        "export": ["export", "--mixture", str(mixture), "--domains", str(domains_json), "--output-dir", str(out),
                   "--renormalize"],
        "search": ["search", "--fit-dir", str(tmp_path / "fit"), "--regressor", "linear", "--domains-json",
                   str(domains_json), "--num-candidates", "2000", "--chunk-size", "500", "--top-k", "10",
                   "--seed", str(version), "--output-dir", str(out)],
        "fit": ["fit", "--results", str(table), "--target", names[version], "--regressors", "linear",
                "--output-dir", str(out)],
    }


def _run(argv, capsys) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _check_content(command: str, out: Path, version: int, names) -> None:
    """The folder holds the outputs of ``version``, complete, and its flags name files that exist and hold them."""
    from regmix_megatron.export.files import read_megatron_args
    from regmix_megatron.output_folder import read_outputs
    from regmix_megatron.regression.fitting import read_fit_metrics

    read_outputs(out)
    if command == "fit":
        assert set(read_fit_metrics(out).targets) == {f"val_loss/{names[version]}"}
        return
    export = out / "export" if command == "search" else out
    flags = read_megatron_args(export).split()
    per_split = Path(flags[flags.index("--per-split-data-args-path") + 1])
    mixture = json.loads((export / "mixture.json").read_text())["weights"]
    assert per_split == (export / "per_split_data_args_no_test.json").resolve() and per_split.is_file()
    blend = json.loads(per_split.read_text())["train"]
    assert [float(w) for w in blend[0::2]] == [w for w in mixture.values() if w > 0]
    if command == "export":
        assert max(mixture, key=mixture.get) == names[version]


@pytest.mark.parametrize("command", ["export", "search", "fit"])
def test_a_symlinked_output_folder_keeps_its_link_and_the_flags_name_the_new_files(domains, tmp_path, capsys,
                                                                                   command):
    """It was replaced by a real folder, the link's target kept the old export, and the printed flags named it."""
    names = DomainRegistry.load(domains).names
    target = tmp_path / "volume" / "outputs"
    target.mkdir(parents=True)
    out = tmp_path / "out"
    out.symlink_to(target)
    for version in (1, 2):
        rc, printed, err = _run(_jobs(tmp_path, domains, out, version)[command], capsys)
        assert rc == 0, err
        assert out.is_symlink() and os.readlink(out) == str(target)
        _check_content(command, target, version, names)
    if command != "fit":
        flags = (target / ("export" if command == "search" else "") / "megatron_args.txt").read_text().strip()
        assert flags in printed and str(target) in flags  # the flags printed are those of the new files
    if command == "search":
        assert os.readlink(target / "megatron") == "export"  # the export folder's old name, kept as a link


@pytest.mark.parametrize("command", ["export", "search", "fit"])
def test_a_read_only_output_folder_is_refused_and_keeps_its_mode(domains, tmp_path, capsys, command):
    """It was swapped for a new writable folder, with exit 0."""
    out = tmp_path / "out"
    assert _run(_jobs(tmp_path, domains, out, 1)[command], capsys)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    inode = out.stat().st_ino
    out.chmod(0o555)
    try:
        rc, _, err = _run(_jobs(tmp_path, domains, out, 2)[command], capsys)
        assert rc == 2 and "Traceback" not in err
        assert re.search(rf"error: .*{re.escape(str(out))} is read-only \(mode dr-xr-xr-x\)", err), err
        assert out.stat().st_ino == inode and (out.stat().st_mode & 0o777) == 0o555
    finally:
        out.chmod(0o755)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("command", ["export", "search", "fit"])
def test_a_mount_point_output_folder_stays_mounted_and_gets_the_outputs(domains, tmp_path, capsys, command):
    """A container volume: renaming it fails with EBUSY, which came out as a traceback."""
    out = tmp_path / "volume"
    out.mkdir()
    if subprocess.run(["mount", "--bind", str(out), str(out)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (needs root); tests/test_output_folder.py covers a folder that "
                    "cannot be renamed")
    try:
        names = DomainRegistry.load(domains).names
        for version in (1, 2):
            rc, _, err = _run(_jobs(tmp_path, domains, out, version)[command], capsys)
            assert rc == 0 and "Traceback" not in err, err
            _check_content(command, out, version, names)
        with open("/proc/self/mountinfo") as fh:
            assert any(line.split()[4] == str(out) for line in fh)
    finally:
        subprocess.run(["umount", "-l", str(out)], capture_output=True)


def _schedule_file(path: Path, names, phases) -> Path:
    path.write_text(json.dumps({"phases": [{"fraction": f, "weights": {d: (3.0 if i == k else 1.0) / (len(names) + 2)
                                                                          for i, d in enumerate(names)}}
                                           for k, f in enumerate(phases)]}))
    return path


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_failed_schedule_export_leaves_every_file_as_it_was(domains, tmp_path, capsys, monkeypatch):
    """A stray file in phase2/, and a disk that fills while phase 2 is written: the new schedule.json stood beside
    the old phases.json and phase folders, and the error said nothing partial was kept."""
    from regmix_megatron.export import files as export_module

    names = DomainRegistry.load(domains).names
    out = tmp_path / "export"
    old = ["export", "--schedule", str(_schedule_file(tmp_path / "a.json", names, [0.5, 0.3, 0.2])),
           "--domains", str(domains), "--output-dir", str(out), "--train-iters", "100"]
    new = ["export", "--schedule", str(_schedule_file(tmp_path / "b.json", names, [0.8, 0.2])),
           "--domains", str(domains), "--output-dir", str(out), "--train-iters", "100"]
    assert _run(old, capsys)[0] == 0
    (out / "phase2" / "notes.txt").write_text("mine")
    before = _snapshot(out)
    rc, _, err = _run(new, capsys)
    assert rc == 2 and "holds files that this command does not write (phase2/notes.txt)" in err
    assert _snapshot(out) == before
    (out / "phase2" / "notes.txt").unlink()
    before = _snapshot(out)
    real = export_module.atomic_write_json

    def full_at_phase2(path, obj, *args, **kwargs):
        if Path(path).parent.name == "phase2":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, obj, *args, **kwargs)

    monkeypatch.setattr(export_module, "atomic_write_json", full_at_phase2)
    rc, _, err = _run(new, capsys)
    assert rc == 2 and "no space left on the device" in err and "Traceback" not in err
    assert _snapshot(out) == before and not [p for p in out.rglob(".tmp-*")]
    monkeypatch.undo()
    assert _run(new, capsys)[0] == 0 and not (out / "phase3").exists()
    assert json.loads((out / "phases.json").read_text())["schedule_hash"] == \
        json.loads((out / "schedule.json").read_text())["hash"]


def _killed_at(kill_at: int, argv: list[str]) -> int:
    """Run ``regmix-megatron ARGV`` in a forked process that dies (``os._exit(9)``, no cleanup, like SIGKILL) at
    its ``kill_at``-th rename into the output folder (renames inside its staging folder not counted); its exit
    status (0 when the write needed fewer renames)."""
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 1
        try:
            real, count = os.replace, [0]

            def replace(src, dst):
                if ".tmp-stage." not in str(dst):
                    count[0] += 1
                    if count[0] == kill_at:
                        os._exit(9)
                return real(src, dst)

            os.replace = replace
            code = cli.main(argv)
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_killed_schedule_export_is_all_old_or_all_new(domains, tmp_path, capsys):
    """Killed at every rename into the folder (the process ends there, nothing cleans up): the folder, its phases,
    phases.json and schedule.json read as the old export or as incomplete, never as a complete mix; the next
    export finishes the killed one and writes its own."""
    from regmix_megatron.export.files import read_phases
    from regmix_megatron.output_folder import read_outputs

    names = DomainRegistry.load(domains).names
    a = _schedule_file(tmp_path / "a.json", names, [0.5, 0.3, 0.2])
    b = _schedule_file(tmp_path / "b.json", names, [0.8, 0.2])
    num_kills = 0
    for kill_at in range(1, 60):
        out = tmp_path / f"export{kill_at}"
        argv = ["export", "--schedule", str(a), "--domains", str(domains), "--output-dir", str(out)]
        assert _run(argv, capsys)[0] == 0
        argv[2] = str(b)
        status = _killed_at(kill_at, argv)
        capsys.readouterr()
        if status == 0:
            break  # the write needs fewer renames than this: every point was tried
        assert status == 9
        num_kills += 1
        try:
            phases = read_phases(out)
        except Exception as exc:  # incomplete: refused, and named as such
            assert "incomplete" in str(exc) or "no outputs.json" in str(exc), exc
        else:
            schedule = json.loads((out / "schedule.json").read_text())["hash"]
            assert phases["schedule_hash"] == schedule and len(phases["phases"]) == 3  # whole and old
            for k in (1, 2, 3):
                read_outputs(out / f"phase{k}")
        assert _run(argv, capsys)[0] == 0  # the next export: whole and new
        assert read_phases(out)["schedule_hash"] == json.loads((out / "schedule.json").read_text())["hash"]
        assert len(read_phases(out)["phases"]) == 2 and not (out / "phase3").exists()
    assert num_kills >= 10  # the journal, every file, every marker of a three-to-two-phase export


# ---- issue 23: inputs stay inputs --------------------------------------------------------------------------
def test_an_output_that_is_or_holds_an_input_is_refused(domains, tmp_path, capsys):
    """``sample --output`` equal to its domains.json and ``fit --metrics-json`` equal to its results table exited 0
    and destroyed the input; ``train --output-dir FILE`` gave a FileExistsError traceback."""
    data = tmp_path / "data"
    shutil.copytree(Path(domains).parent, data)
    copy = data / "domains.json"
    table = _fixture_results(tmp_path / "results.csv", DomainRegistry.load(copy).names)
    inputs = {p: p.read_bytes() for p in (copy, table)}
    cases = [
        (["sample", "--domains-json", str(copy), "--num-samples", "4", "--output", str(copy)],
         rf"--output {copy} is also the input --domains-json {copy}"),
        (["fit", "--results", str(table), "--target", "code", "--regressors", "linear", "--metrics-json", str(table)],
         rf"--metrics-json {table} is also the input --results {table}"),
        (["export", "--mixture", str(tmp_path / "m.json"), "--domains-json", str(copy), "--output-dir", str(data)],
         rf"--output-dir {data} holds the input --domains-json {copy}"),
        (["fit", "--results", str(table), "--target", "code", "--output-dir", str(tmp_path)],
         rf"--output-dir {tmp_path} holds the input --results {table}"),
        (["train", str(tmp_path / "run.yaml"), "--output-dir", str(table)],
         rf"--output-dir {table} is a file, not a folder"),
        (["sweep", "plan", "--mixtures", str(tmp_path / "m.jsonl"), "--config", str(tmp_path / "run.yaml"),
          "--output-dir", str(table)], rf"--output-dir {table} is a file, not a folder"),
    ]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(dict(SHORT, domains=str(copy))))
    for argv, message in cases:
        rc, _, err = _run(argv, capsys)
        assert rc == 2 and "Traceback" not in err and re.search(message, err), (argv, err)
    assert {p: p.read_bytes() for p in inputs} == inputs


# ---- issue 23: one strict reader for every config and mixture -----------------------------------------------
def test_a_key_given_twice_in_an_inline_mixture_or_a_config_is_refused(domains, tmp_path, capsys):
    """The last value won silently (mixture files refused it already)."""
    names = DomainRegistry.load(domains).names
    weights = "".join(f"  {d}: {1 / len(names)}\n" for d in names)
    run = tmp_path / "run.yaml"
    run.write_text(f"preset: tiny-test\ndomains: {domains}\nmixture:\n{weights}  {names[0]}: 0.5\n")
    rc, _, err = _run(["train", str(run), "--print-config"], capsys)
    assert rc == 2 and re.search(rf"run\.yaml: \['{names[0]}'\] listed more than once in one mapping \(lines 4 and "
                                 rf"{4 + len(names)}\)", err), err
    run.write_text(f"preset: tiny-test\ndomains: {domains}\noptim: {{lr: 0.001, lr: 0.1}}\n")
    assert _run(["train", str(run), "--print-config"], capsys)[0] == 2
    table = _fixture_results(tmp_path / "results.csv", names)
    assert _run(["fit", "--results", str(table), "--target", names[0], "--regressors", "linear", "--output-dir",
                 str(tmp_path / "fit")], capsys)[0] == 0
    base = tmp_path / "base.json"
    base.write_text("{" + ", ".join(f'"{d}": {1 / len(names)}' for d in names) + f', "{names[1]}": 0.9}}')
    rc, _, err = _run(["search", "--fit-dir", str(tmp_path / "fit"), "--regressor", "linear", "--domains-json",
                       str(domains), "--num-candidates", "1000", "--chunk-size", "500", "--top-k", "10",
                       "--baseline-mixture", str(base), "--output-dir", str(tmp_path / "search")], capsys)
    assert rc == 2 and f"['{names[1]}'] listed more than once" in err and "Traceback" not in err
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("output_dir: out\nseed: 1\nseed: 2\n")
    rc, _, err = _run(["run", str(pipeline)], capsys)
    assert rc == 2 and "['seed'] listed more than once" in err


@pytest.mark.parametrize("splits", [[], None, {"train": 3}, {"training": []}])
def test_a_domains_json_of_another_structure_names_the_field(domains, tmp_path, capsys, splits):
    """A v1 domains.json with splits as a list or null gave an AttributeError traceback."""
    doc = json.loads(Path(domains).read_text())
    doc["domains"][1]["splits"] = splits
    bad = tmp_path / "domains.json"
    bad.write_text(json.dumps(doc))
    rc, _, err = _run(["sample", "--domains-json", str(bad), "--num-samples", "4", "--output",
                       str(tmp_path / "m.jsonl")], capsys)
    assert rc == 2 and "Traceback" not in err
    assert re.search(rf"{re.escape(str(bad))}: field 'domains\[1\]\.splits(\.train|\.training)?' must be ", err), err


def _spaced_copy(domains, tmp_path) -> Path:
    data = tmp_path / "my data"
    shutil.copytree(Path(domains).parent, data)
    return data / "domains.json"


def test_data_under_a_path_with_spaces_is_refused_up_front_and_a_path_prefix_rescues_an_export(domains, tmp_path,
                                                                                               capsys):
    """sample and sweep plan accepted it and every training run failed; export --path-prefix checked the local
    path before rewriting it."""
    spaced = _spaced_copy(domains, tmp_path)
    names = DomainRegistry.load(spaced).names
    tokenizer = DomainRegistry.load(domains).tokenizer.model
    rc, _, err = _run(["sample", "--domains-json", str(spaced), "--num-samples", "4", "--output",
                       str(tmp_path / "m.jsonl")], capsys)
    assert rc == 2 and "contains whitespace" in err and not (tmp_path / "m.jsonl").exists()
    (tmp_path / "m.jsonl").write_text(json.dumps({d: 1 / len(names) for d in names}) + "\n")
    (tmp_path / "proxy.yaml").write_text(yaml.safe_dump({"preset": "tiny-test", "domains": str(spaced)}))
    rc, _, err = _run(["sweep", "plan", "--mixtures", str(tmp_path / "m.jsonl"), "--config",
                       str(tmp_path / "proxy.yaml"), "--output-dir", str(tmp_path / "sweep")], capsys)
    assert rc == 2 and "contains whitespace" in err and not (tmp_path / "sweep" / "sweep.json").exists()
    spec = tmp_path / "spec.yaml"
    registry = DomainRegistry.load(spaced)
    spec.write_text(yaml.safe_dump({
        "tokenizer": {"type": "GPTSentencePieceTokenizer", "model": tokenizer},
        "domains": {d.name: {s: [p.path for p in d.prefixes(s)] for s in ("train", "valid")}
                    for d in registry.training_domains[:2]}}))
    rc, _, err = _run(["domains", "import", "--spec", str(spec), "--output", str(tmp_path / "imported.json")], capsys)
    assert rc == 2 and "contains whitespace" in err and not (tmp_path / "imported.json").exists()
    export = ["export", "--mixture", str(tmp_path / "m.jsonl:0"), "--domains", str(spaced), "--output-dir",
              str(tmp_path / "export")]
    rc, _, err = _run(export, capsys)
    assert rc == 2 and "contains whitespace" in err and "--path-prefix" in err
    tokenizer_dir = str(Path(registry.tokenizer.model).parent)
    rc, printed, err = _run(export + ["--path-prefix", f"{spaced.parent}=/lustre/data", "--path-prefix",
                                      f"{tokenizer_dir}=/lustre/tokenizer"], capsys)
    assert rc == 0, err
    per_split = json.loads((tmp_path / "export" / "per_split_data_args.json").read_text())
    assert all(p.startswith("/lustre/data/") for p in per_split["train"][1::2] + per_split["valid"])


def test_a_byte_flipped_in_the_middle_of_an_idx_is_refused_at_import_and_before_training(domains, tmp_path,
                                                                                        capsys):
    """Header and sizes agreed, so it passed `domains import` and trained without a warning."""
    from regmix_megatron.errors import DataError

    data = tmp_path / "data"
    shutil.copytree(Path(domains).parent, data)
    registry = DomainRegistry.load(data / "domains.json")
    code = registry.get("code").prefixes("train")[0].path
    idx = Path(code + ".idx")
    raw = bytearray(idx.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    idx.write_bytes(bytes(raw))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "tokenizer": {"type": "GPTSentencePieceTokenizer", "model": DomainRegistry.load(domains).tokenizer.model},
        "domains": {d.name: {s: [p.path for p in d.prefixes(s)] for s in ("train", "valid")}
                    for d in registry.training_domains[:3]}}))
    rc, _, err = _run(["domains", "import", "--spec", str(spec), "--output", str(tmp_path / "imported.json")], capsys)
    assert rc == 2 and "Traceback" not in err and re.search(rf"{re.escape(str(idx))}: the pointer of sequence \d+ is "
                                                            r"\d+, but the lengths before it put it at byte", err), err
    registry.verify_files(full=False)  # the cheap check (sample, export) cannot see it ...
    with pytest.raises(DataError, match="the index is corrupt"):
        registry.verify_files()  # ... the check before training does (the trainer's and the provider's)


def test_a_single_training_domain_gets_its_own_message(domains, tmp_path, capsys):
    """It said the bounds left too little room."""
    data = tmp_path / "data"
    shutil.copytree(Path(domains).parent, data)
    registry = DomainRegistry.load(data / "domains.json")
    registry.with_evaluation_only(registry.all_names[1:]).save(data / "domains.json")
    rc, _, err = _run(["sample", "--domains-json", str(data / "domains.json"), "--num-samples", "4", "--output",
                       str(tmp_path / "m.jsonl")], capsys)
    assert rc == 2 and f"one training domain ('{registry.all_names[0]}'): every mixture over one domain is the " \
                       "same" in err and "bounds" not in err, err


# ---- issue 23: smaller points --------------------------------------------------------------------------------
def test_ctrl_c_while_the_cli_starts_ends_quietly(monkeypatch, capsys, tmp_path):
    """SIGINT while the command modules were imported printed a raw KeyboardInterrupt traceback."""
    import importlib

    real = importlib.import_module

    def interrupted(name, *args, **kwargs):
        if name == "regmix_megatron.commands.fit":
            raise KeyboardInterrupt
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", interrupted)
    assert cli.main(["fit", "--help"]) == 130
    assert capsys.readouterr().err == "regmix-megatron: interrupted\n"
    monkeypatch.undo()
    hook = ("import sys\n"  # Ctrl-C while Python imports a command module, in a process of its own
            "class Interrupt:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'regmix_megatron.commands.search':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupt())\nfrom regmix_megatron.cli import main\nsys.exit(main())\n")
    proc = subprocess.run([*CLI[:1], "-c", hook, "sample", "--help"], capture_output=True, text=True,
                          env=subprocess_env())
    assert proc.returncode == 130 and proc.stderr == "regmix-megatron: interrupted\n", proc.stderr


def test_a_full_disk_while_sample_and_collect_write_names_the_file_that_failed(domains, planned, tmp_path,
                                                                              monkeypatch, capsys):
    """collect named excluded.json whichever of its files failed; sample named its hidden temporary file."""
    import pandas as pd

    for run in planned.runs:
        mechanics_train(planned.run_dir(run.run_id))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file name

    for method, name in (("to_parquet", "results.parquet"), ("to_csv", "results.csv")):
        monkeypatch.setattr(pd.DataFrame, method, full)
        rc, _, err = _run(["sweep", "collect", str(planned.root)], capsys)
        assert rc == 2 and f"error: {planned.root / name}: no space left on the device" in err, err
        monkeypatch.undo()
    from regmix_megatron import fileio

    real = fileio.Path.write_text

    def full_for_jsonl(self, *args, **kwargs):
        if ".jsonl" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(fileio.Path, "write_text", full_for_jsonl)
    out = tmp_path / "m.jsonl"
    rc, _, err = _run(["sample", "--domains-json", str(domains), "--num-samples", "4", "--output", str(out)], capsys)
    assert rc == 2 and f"error: {out}: no space left on the device" in err and ".tmp-" not in err, err
