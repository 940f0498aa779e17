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
    from regmix_megatron.megatron.provider import load_mixture_and_registry
    args = argparse.Namespace(regmix_domains=str(domains_json), regmix_mixture=str(tmp_path / "half.json"))
    with pytest.raises(RegmixError, match="pass --regmix-renormalize"):
        load_mixture_and_registry(args)
    args.regmix_renormalize = True
    assert abs(sum(load_mixture_and_registry(args)[0].weights) - 1) < 1e-12


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
