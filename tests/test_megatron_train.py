"""Training on megatron-core (CPU, fp32, gloo) on the preprocessed corpus fixture.

Real runs of the ``tiny-test`` preset (2 layers, hidden 64, seq 64, 30 steps of 16 sequences): validation
losses fall, runs are reproducible, mixtures move per-domain losses in the expected direction, a SIGKILLed
run resumes to the same final losses, and a diverging run stops with a status instead of a result.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.training import domains_json_of, kill_when, subprocess_env, tiny_config
from regmix_megatron.errors import ConfigError
from regmix_megatron.data.manifest import DomainRegistry
from regmix_megatron.runs.run_config import build_run_config, load_run_config

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def domains(indexed_fixture) -> Path:
    return domains_json_of(indexed_fixture)


@pytest.fixture(scope="module")
def names(domains):
    """The training domains (what a mixture is over)."""
    return DomainRegistry.load(domains).names


@pytest.fixture(scope="module")
def evaluated(domains):
    """Every domain a run evaluates by default: the training domains and the evaluation-only qa."""
    registry = DomainRegistry.load(domains)
    assert registry.eval_only_names == ("qa",)
    return registry.all_names


def train(mapping, force=False):
    from regmix_megatron.megatron.train import run_training

    return run_training(build_run_config(mapping), force=force)


@pytest.fixture(scope="module")
def natural_run(domains, tmp_path_factory):
    out = tmp_path_factory.mktemp("natural")
    result = train(tiny_config(domains, out))
    return out, result


def result_domains(out: Path) -> str:
    return load_run_config(out / "config.yaml").domains


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_validation_losses_fall_and_outputs_are_complete(natural_run, names, evaluated):
    out, result = natural_run
    assert result["status"] == "completed"
    assert json.loads((out / "result.json").read_text()) == result
    for key in ("run_id", "mixture", "mixture_hash", "seed", "steps", "tokens", "val_loss", "val_loss_average",
                "split_loss", "elapsed_s", "tokens_per_s"):
        assert key in result
    assert set(result["val_loss"]) == set(evaluated)  # every domain, the evaluation-only qa too, none dropped
    assert set(result["split_loss"]["test"]) == set(evaluated)  # and its test split, once at the end
    assert set(result["mixture"]) == set(names) and "qa" not in result["mixture"]  # qa never in the blend
    assert result["steps"] == 30 and result["tokens"] == 30 * 16 * 64
    rows = read_metrics(out)
    evals = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in evals] == [15, 30]
    for r in rows:
        assert {"step", "train_loss", "lr", "tokens", "tokens_per_s"} <= set(r)
    uniform = math.log(DomainRegistry.load(result_domains(out)).tokenizer.vocab_size)  # loss at init ~ ln(vocab)
    for name in evaluated:
        first, last = evals[0]["val_loss"][name], evals[-1]["val_loss"][name]
        assert last < first, (name, first, last)
        assert last < uniform - 0.5, (name, last, uniform)
    assert evals[-1]["val_loss"] == result["val_loss"]
    assert math.isclose(result["val_loss_average"], sum(result["val_loss"].values()) / len(evaluated))
    assert all(abs(result["split_loss"]["test"][d] - result["val_loss"][d]) > 0 for d in evaluated)  # other tokens
    assert (out / "config.yaml").is_file()
    assert not (out / "status.json").exists()


@pytest.mark.slow
def test_same_seed_and_mixture_give_identical_losses(natural_run, domains, tmp_path):
    _, first = natural_run
    second = train(tiny_config(domains, tmp_path / "again"))
    assert second["val_loss"] == first["val_loss"]  # exact: fp32 on CPU with fixed seeds is deterministic
    assert second["mixture_hash"] == first["mixture_hash"] and second["run_id"] == first["run_id"]


@pytest.mark.slow
def test_more_weight_on_a_domain_lowers_its_loss(domains, names, tmp_path):
    a, b = names[0], names[1]
    def skewed(heavy):
        return {n: (0.8 if n == heavy else 0.2 / (len(names) - 1)) for n in names}
    on_a = train(tiny_config(domains, tmp_path / "a", mixture=skewed(a)))
    on_b = train(tiny_config(domains, tmp_path / "b", mixture=skewed(b)))
    assert on_a["val_loss"][a] < on_b["val_loss"][a]
    assert on_b["val_loss"][b] < on_a["val_loss"][b]
    assert on_a["mixture_hash"] != on_b["mixture_hash"]


@pytest.mark.slow
def test_finished_run_is_not_rerun_and_changed_config_is_refused(natural_run, domains):
    out, result = natural_run
    mtime = (out / "result.json").stat().st_mtime_ns
    again = train(tiny_config(domains, out))
    assert again == result and (out / "result.json").stat().st_mtime_ns == mtime
    with pytest.raises(ConfigError, match="different config"):
        train(tiny_config(domains, out, seed=2))


@pytest.mark.slow
def test_evaluate_scores_the_final_checkpoint_exactly_as_the_trainer_did(natural_run, tmp_path, capsys):
    from regmix_megatron.cli import main
    from regmix_megatron.runs.document_losses import DocumentLosses, read_document_losses

    out, result = natural_run
    assert main(["evaluate", str(out), "--split", "valid"]) == 0
    valid = json.loads((out / "evaluations" / "valid.json").read_text())
    assert valid["run_id"] == result["run_id"] and valid["step"] == 30 and valid["final"]
    assert valid["loss"] == result["val_loss"]  # same weights, same windows: the same floats
    trained = read_document_losses(out)
    for name, record in valid["documents"].items():  # and the same per-document losses
        assert record == trained.get("valid", name).to_json_obj(), name
        assert valid["num_documents"][name] == DocumentLosses.from_json_obj(record, name).num_documents
    assert main(["evaluate", str(out), "--split", "test", "--domains", "qa,code"]) == 0
    test = json.loads((out / "evaluations" / "test.json").read_text())
    assert test["loss"] == {d: result["split_loss"]["test"][d] for d in ("code", "qa")}
    assert test["documents"]["qa"] == trained.get("test", "qa").to_json_obj()
    assert "qa" in capsys.readouterr().out
    assert json.loads((out / "result.json").read_text()) == result  # scoring changes nothing of the run


@pytest.mark.slow
def test_per_document_losses_add_up_to_each_domains_loss(natural_run, evaluated):
    """``document_losses.json`` holds every evaluated domain on the validation split and the final test split; its
    per-document sums give the loss the trainer reports (computed as before: float32 sums per micro-batch) to float
    precision, over exactly the tokens it scored."""
    from regmix_megatron.runs.document_losses import read_document_losses

    out, result = natural_run
    documents = read_document_losses(out)
    assert documents.run_id == result["run_id"] and documents.step == 30
    assert {s: set(d) for s, d in documents.splits.items()} == {"valid": set(evaluated), "test": set(evaluated)}
    for split, losses in (("valid", result["val_loss"]), ("test", result["split_loss"]["test"])):
        for name, loss in losses.items():
            docs = documents.get(split, name)
            assert docs.total_tokens == result["evaluation_sizes"][split][name]["num_tokens"] == 2048
            assert docs.num_documents == result["evaluation_sizes"][split][name]["num_documents"] >= 1
            assert docs.mean_loss == pytest.approx(loss, rel=1e-6, abs=0), (split, name)
    assert result["validation_tokens"] == {name: 2048 for name in evaluated}


@pytest.mark.slow
def test_document_losses_are_written_before_the_completion_marker(domains, tmp_path, monkeypatch):
    from regmix_megatron.runs import run_dir as writer  # the run directory's writer, which the trainer calls
    from regmix_megatron.runs.document_losses import FILE_NAME, read_document_losses

    seen = {}
    write = writer.atomic_write_json

    def watching(path, obj, *args, **kwargs):
        if Path(path).name == "result.json":  # at that moment the per-document losses must be complete
            seen["documents"] = read_document_losses(Path(path).parent)
        return write(path, obj, *args, **kwargs)

    monkeypatch.setattr(writer, "atomic_write_json", watching)
    out = tmp_path / "run"
    result = train(tiny_config(domains, out, optim={"train_steps": 4}, eval={"eval_interval": 4,
                                                                              "num_tokens_by_domain": {"qa": "all"}},
                               checkpoint={"save": False}))
    assert seen["documents"].run_id == result["run_id"] and (out / FILE_NAME).is_file()
    qa = DomainRegistry.load(domains).get("qa")
    for split in ("valid", "test"):  # qa's whole split: every document, every token but the first
        docs = seen["documents"].get(split, "qa")
        assert docs.total_tokens == qa.num_tokens(split) - 1 == result["evaluation_sizes"][split]["qa"]["num_tokens"]
        assert len(docs.num_tokens) == qa.num_documents(split) == docs.num_documents
        expected = result["val_loss"]["qa"] if split == "valid" else result["split_loss"]["test"]["qa"]
        assert docs.mean_loss == pytest.approx(expected, rel=1e-6)
        assert seen["documents"].get(split, "code").total_tokens == 2048  # the other domains keep the default


def test_the_final_split_is_scored_on_its_own_sizes_and_the_evaluations_during_training_on_theirs(domains, tmp_path):
    """``eval.final_num_tokens_by_domain: {qa: all}``: the test split (final) on every qa document, the validation
    evaluations during training on the default sample."""
    out = tmp_path / "run"
    result = train(tiny_config(domains, out, optim={"train_steps": 4},
                               eval={"eval_interval": 4, "final_num_tokens_by_domain": {"qa": "all"}},
                               checkpoint={"save": False}))
    qa = DomainRegistry.load(domains).get("qa")
    sizes = result["evaluation_sizes"]
    assert sizes["test"]["qa"]["num_tokens"] == qa.num_tokens("test") - 1  # every token but the first
    assert sizes["valid"]["qa"]["num_tokens"] == 2048 == sizes["test"]["code"]["num_tokens"]


@pytest.mark.slow
def test_cheap_proxy_evaluates_only_what_it_is_asked_and_saves_nothing(domains, names, tmp_path):
    from regmix_megatron.cli import main

    out = tmp_path / "cheap"
    result = train(tiny_config(domains, out, optim={"train_steps": 10}, eval={"domains": ["code"]},
                               checkpoint={"save": False}))
    assert set(result["val_loss"]) == {"code", "qa"}  # qa, evaluation-only, is evaluated whatever eval.domains
    assert set(result["split_loss"]["test"]) == {"code", "qa"}
    assert not (out / "checkpoints").exists()
    assert main(["evaluate", str(out)]) == 2  # nothing to score: the run saved no checkpoint


def test_a_mixture_weighting_an_evaluation_only_domain_never_trains(domains, names, tmp_path):
    from regmix_megatron.errors import DataError

    config = build_run_config(tiny_config(domains, tmp_path / "leak", mixture={"code": 0.5, "qa": 0.5}))
    with pytest.raises(DataError, match=r"evaluation-only domain\(s\) \{'qa': 0.5\}"):
        config.resolve()
    resolved = build_run_config(tiny_config(domains, tmp_path / "ok", mixture={"code": 1.0, "qa": 0.0})).resolve()
    assert resolved.mixture.domains == tuple(names) and "qa" not in resolved.mixture.domains


@pytest.mark.slow
def test_diverged_run_writes_status_and_no_result(domains, tmp_path):
    from regmix_megatron.cli import main

    out = tmp_path / "diverged"
    config = tmp_path / "diverge.yaml"
    config.write_text(yaml.safe_dump(tiny_config(domains, out, optim={"lr": 1e30, "clip_grad": 0.0})))
    assert main(["train", str(config)]) == 3
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "diverged" and status["step"] >= 1
    assert not (out / "result.json").exists()


@pytest.mark.slow
def test_sigkill_then_resume_reaches_the_uninterrupted_losses(natural_run, domains, tmp_path):
    _, reference = natural_run
    out = tmp_path / "killed"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(domains, out)))
    cmd = [sys.executable, "-m", "regmix_megatron.cli", "train", str(config), "--set", "checkpoint.interval=5"]
    first = out / "checkpoints" / "step_0000005" / "meta.json"
    kill_when(cmd, first)
    assert first.exists(), "the run ended or timed out before its first checkpoint"
    assert not (out / "result.json").exists(), "the run finished before it could be killed"
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads((out / "result.json").read_text())
    # Tolerance: exact. Data order depends only on the step, and model/optimizer/scheduler/RNG state is restored
    # bit for bit, so fp32 CPU runs agree to the last bit (we assert abs diff <= 1e-6 to be explicit).
    for name, loss in reference["val_loss"].items():
        assert abs(resumed["val_loss"][name] - loss) <= 1e-6, (name, resumed["val_loss"][name], loss)
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == sorted({r["step"] for r in rows})  # no duplicated steps after resume
    assert rows[-1]["step"] == 30


# ---- schedules ---------------------------------------------------------------------------------------------------
def two_phase_schedule(names) -> dict:
    """Phase 1 (steps 0-14) natural-ish and broad, phase 2 (steps 15-29) mostly the first two domains."""
    main = {n: 1.0 / len(names) for n in names}
    final = {n: (0.45 if n in names[:2] else 0.1 / (len(names) - 2)) for n in names}
    return {"phases": [{"fraction": 0.5, "weights": main}, {"fraction": 0.5, "weights": final}]}


def scheduled_command(domains, names, root: Path) -> tuple[list[str], Path]:
    """``regmix-megatron train`` of the two-phase schedule in a subprocess (one thread, as every run of these tests
    that is compared bit for bit), checkpoints every 7 steps; the command and the run directory."""
    out = root / "run"
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(domains, out, schedule=two_phase_schedule(names))))
    return [sys.executable, "-m", "regmix_megatron.cli", "train", str(config), "--set", "checkpoint.interval=7"], out


@pytest.fixture(scope="module")
def scheduled_run(domains, names, tmp_path_factory):
    cmd, out = scheduled_command(domains, names, tmp_path_factory.mktemp("scheduled"))
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, json.loads((out / "result.json").read_text())


@pytest.mark.slow
def test_a_one_phase_schedule_reproduces_the_static_run(natural_run, domains, tmp_path):
    out, static = natural_run
    registry = DomainRegistry.load(domains)
    prior = dict(zip(registry.names, registry.prior("train").tolist()))
    one_phase = train(tiny_config(domains, tmp_path / "one-phase", schedule={"phases": [{"fraction": 1.0,
                                                                                         "weights": prior}]}))
    assert one_phase["val_loss"] == static["val_loss"]  # exact: the same samples in the same order
    assert one_phase["run_id"] == static["run_id"]  # a one-phase schedule is its mixture
    assert [r["train_loss"] for r in read_metrics(tmp_path / "one-phase")] == \
        [r["train_loss"] for r in read_metrics(out)]
    (phase,) = one_phase["phases"]
    assert (phase["start_step"], phase["end_step"]) == (0, 30)


@pytest.mark.slow
def test_a_scheduled_run_records_its_phases(scheduled_run, natural_run, names):
    out, result = scheduled_run
    schedule = two_phase_schedule(names)
    assert result["status"] == "completed" and result["schedule"]["phases"][1]["weights"] == \
        pytest.approx(schedule["phases"][1]["weights"])
    assert result["run_id"] != natural_run[1]["run_id"]
    first, second = result["phases"]
    assert (first["start_step"], first["end_step"], second["start_step"], second["end_step"]) == (0, 15, 15, 30)
    for row, phase in zip(result["phases"], schedule["phases"]):
        assert row["num_samples"] == 15 * 16
        for name, w in phase["weights"].items():
            assert abs(row["samples"][name] - w * row["num_samples"]) <= 2.0  # megatron's rounding
            assert row["realized"][name] == row["samples"][name] / row["num_samples"]
    overall = {n: 0.5 * (schedule["phases"][0]["weights"][n] + schedule["phases"][1]["weights"][n]) for n in names}
    assert result["mixture"] == pytest.approx(overall)  # the run's token shares over both phases
    assert [(r["step"], r["phase"]) for r in read_metrics(out) if "val_loss" in r] == [(15, 1), (30, 2)]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["mixture"] is None and saved["schedule"]["hash"] == result["schedule_hash"]


@pytest.mark.slow
def test_sigkill_across_the_phase_boundary_then_resume_gives_the_same_losses(scheduled_run, domains, names,
                                                                            tmp_path):
    """Checkpoints every 7 steps; killed after the one at step 14 (the boundary is at step 15), resumed there."""
    _, reference = scheduled_run
    cmd, out = scheduled_command(domains, names, tmp_path)
    before = out / "checkpoints" / "step_0000014" / "meta.json"
    kill_when(cmd, before)
    assert before.exists(), "the run ended or timed out before its checkpoint at step 14"
    assert not (out / "result.json").exists(), "the run finished before it could be killed"
    for later in (out / "checkpoints").glob("step_*"):
        if later.name > "step_0000014":
            shutil.rmtree(later)  # resume from step 14: before the boundary
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads((out / "result.json").read_text())
    assert "resumed from" in done.stderr and "step 14" in done.stderr
    assert resumed["val_loss"] == reference["val_loss"]  # bit-identical per-domain losses
    assert resumed["phases"] == reference["phases"]
    evals = {r["step"]: r["val_loss"] for r in read_metrics(out) if "val_loss" in r}
    assert evals[15] == next(r["val_loss"] for r in read_metrics(scheduled_run[0]) if r["step"] == 15)


# ---- process group timeout and CUDA RNG state (issue 22, item 5) -----------------------------------------------

_RECORD_TIMEOUT = """
import sys, torch.distributed as dist
from regmix_megatron.cli import main
seen, real = [], dist.init_process_group
def record(*args, **kwargs):
    seen.append(kwargs.get("timeout"))
    return real(*args, **kwargs)
dist.init_process_group = record
code = main(["train", sys.argv[1]])
print("timeout:", seen[0].total_seconds() / 60 if seen else None, "exit:", code)
"""


@pytest.mark.parametrize("launched", [False, True], ids=["one-process", "torchrun-env"])
def test_the_process_group_waits_as_long_as_the_recipe_says(domains, tmp_path, launched):
    """``parallel.distributed_timeout_minutes`` reaches ``init_process_group``, with and without torchrun's env://
    rendezvous variables; the default is longer than torch's 10 minutes."""
    from regmix_megatron.runs.recipe import DEFAULT_TIMEOUT_MINUTES, build_recipe

    assert build_recipe({"preset": "tiny-test"}).parallel.distributed_timeout_minutes == DEFAULT_TIMEOUT_MINUTES > 10
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_config(domains, tmp_path / "run", optim={"train_steps": 4},
                                                 eval={"eval_interval": 2, "num_tokens_per_domain": 256},
                                                 parallel={"distributed_timeout_minutes": 95})))
    env = subprocess_env()
    if launched:
        env.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29583")
    proc = subprocess.run([sys.executable, "-c", _RECORD_TIMEOUT, str(config)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert "timeout: 95.0 exit: 0" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_cuda_rng_state_is_this_ranks_gpu_only(monkeypatch):
    """A checkpoint holds the CUDA RNG state of the rank's own GPU; restoring touches only that GPU, also from a
    checkpoint of the earlier format (one state per visible GPU)."""
    import torch

    from regmix_megatron.megatron import device as devices
    from regmix_megatron.megatron import train as trainer

    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": (calls.append(("get", str(device))),
                                                                            torch.tensor([7]))[1])
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": calls.append(
        ("set", str(device), int(state[0]))))
    for every_gpu in ("get_rng_state_all", "set_rng_state_all"):
        monkeypatch.setattr(torch.cuda, every_gpu, lambda *a: pytest.fail(f"torch.cuda.{every_gpu} touches every GPU"))
    gpu1 = devices.Device(torch.device("cuda", 1), name="NVIDIA H100 80GB HBM3", capability=(9, 0))
    trainer.set_cuda_rng_state(trainer.cuda_rng_state(gpu1), gpu1)
    trainer.set_cuda_rng_state([torch.tensor([0]), torch.tensor([5])], gpu1)  # earlier checkpoints
    trainer.set_cuda_rng_state([torch.tensor([0])], gpu1)  # a checkpoint of fewer GPUs: nothing to restore
    assert calls == [("get", "cuda:1"), ("set", "cuda:1", 7), ("set", "cuda:1", 5)]
