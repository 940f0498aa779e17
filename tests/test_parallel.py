"""Tensor and pipeline parallelism on CPU: ``torchrun --nproc-per-node 2`` with gloo.

TP=2 must reproduce the TP=1 losses (same initialization: weights are drawn in full on CPU and split, so
the only difference is the order of floating-point reductions; tolerance 1e-5 absolute, observed ~1e-7).
PP=2 (1F1B schedule, 2 micro-batches per step) must train: its losses fall.
Per-document losses (``document_losses.json``, written by rank 0, which under PP=2 is not the stage that computes
the losses): the same documents and token counts as TP=1; under TP=2 the same sums to 1e-5 per token; under PP=2
sums that add up to its own losses.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.training import REPO, domains_json_of, subprocess_env, tiny_config

pytestmark = pytest.mark.filterwarnings("ignore")

TOLERANCE = 1e-5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_tp2_reproduces_tp1_and_pp2_trains(indexed_fixture, tmp_path):
    from regmix_megatron.megatron.train import run_training
    from regmix_megatron.run_config import load_run_config

    domains = domains_json_of(indexed_fixture)
    mapping = tiny_config(domains, tmp_path / "unused", optim={"train_steps": 8}, log_interval=1,
                          eval={"eval_interval": 4, "num_tokens_per_domain": 1024}, checkpoint={"interval": 0})
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(mapping))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), str(REPO / "tests" / "helpers" / "parallel_train.py"), str(config),
           str(tmp_path)]
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # The TP=1 reference runs in this process meanwhile.
    tp1 = run_training(load_run_config(config, output_dir=tmp_path / "tp1"))
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]

    tp2 = json.loads((tmp_path / "tp2" / "result.json").read_text())
    for a, b in zip(metrics(tmp_path / "tp1"), metrics(tmp_path / "tp2"), strict=True):
        assert a["step"] == b["step"]
        assert abs(a["train_loss"] - b["train_loss"]) <= TOLERANCE, (a["step"], a["train_loss"], b["train_loss"])
    for name, loss in tp1["val_loss"].items():
        assert abs(tp2["val_loss"][name] - loss) <= TOLERANCE, (name, loss, tp2["val_loss"][name])
    assert tp2["num_parameters"] == tp1["num_parameters"]  # counted over the TP group, not per rank

    pp2_rows = metrics(tmp_path / "pp2")
    evals = [r for r in pp2_rows if "val_loss" in r]
    assert pp2_rows[-1]["train_loss"] < pp2_rows[0]["train_loss"] - 0.1
    assert evals[-1]["val_loss_average"] < evals[0]["val_loss_average"]
    pp2 = json.loads((tmp_path / "pp2" / "result.json").read_text())
    assert set(pp2["val_loss"]) == set(tp1["val_loss"])
    assert pp2["num_parameters"] == tp1["num_parameters"]
    assert_same_documents(tmp_path, tp1, pp2)


def assert_same_documents(out: Path, tp1: dict, pp2: dict) -> None:
    import numpy as np

    from regmix_megatron.document_losses import read_document_losses

    one, tp, pp = (read_document_losses(out / name) for name in ("tp1", "tp2", "pp2"))
    assert set(one.splits) == set(tp.splits) == set(pp.splits) == {"valid", "test"}
    for split, domains in one.splits.items():
        assert set(domains) == set(tp.splits[split]) == set(pp.splits[split])
        pp_losses = pp2["val_loss"] if split == "valid" else pp2["split_loss"][split]
        for name, ref in domains.items():
            tp_docs, pp_docs = tp.get(split, name), pp.get(split, name)
            assert np.array_equal(tp_docs.num_tokens, ref.num_tokens) and np.array_equal(pp_docs.num_tokens,
                                                                                          ref.num_tokens)
            assert np.all(np.abs(tp_docs.loss_sum - ref.loss_sum) <= TOLERANCE * ref.num_tokens), (split, name)
            assert (ref.loss_sum[ref.num_tokens > 0] > 0).all() and (pp_docs.loss_sum[ref.num_tokens > 0] > 0).all()
            assert abs(pp_docs.mean_loss - pp_losses[name]) <= 1e-6 * pp_losses[name], (split, name)
