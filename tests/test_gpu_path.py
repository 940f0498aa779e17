"""The trainer's GPU path on a CPU (issue 15, items 1 and 2): one device per run, and every tensor that meets the
model or a collective is created on it or moved to it.

A training run (training steps and per-domain evaluation) with :class:`helpers.devices.RecordingDevice` as the
run's device: every model input, loss input and collective argument of our code must be a tensor the device
placed or created. On a GPU, a tensor that is not is a CPU tensor meeting a CUDA model (the embedding indexing a
CUDA weight with CPU indices) or an NCCL collective (which has no CPU support).
"""

from __future__ import annotations

import pytest
import torch

from helpers.devices import RecordingDevice, guard_trainer
from helpers.training import domains_json_of, tiny_config
from regmix_megatron.megatron import device as devices
from regmix_megatron.runs.run_config import build_run_config, load_run_config

pytestmark = pytest.mark.filterwarnings("ignore")


def test_every_batch_loss_input_and_collective_is_on_the_models_device(indexed_fixture, tmp_path, monkeypatch):
    from regmix_megatron.megatron.train import run_training

    mapping = tiny_config(domains_json_of(indexed_fixture), tmp_path / "run", optim={"train_steps": 4},
                          eval={"eval_interval": 2, "num_tokens_per_domain": 1024}, checkpoint={"interval": 0})
    recorder = RecordingDevice()
    with devices.use(recorder), guard_trainer(recorder, monkeypatch) as counts:
        result = run_training(build_run_config(mapping))
    assert result["status"] == "completed"
    assert len(recorder.modules) == 1  # the model was placed through the run's device
    assert counts["forward_train"] == 4 * 2 and counts["forward_eval"] > 0  # 4 steps x 2 micro-batches; evals
    assert counts["loss"] == counts["forward_train"] + counts["forward_eval"]
    assert counts["all_reduce:count_model_parameters"] == 1
    final = sum(len(losses) for losses in (result.get("split_loss") or {}).values())  # the final test-split pass
    assert counts["all_reduce:_reduce_sums"] == 4 + 2 * len(result["val_loss"]) + final  # steps; domains x evals


def test_collective_buffers_follow_the_backend(monkeypatch):
    import torch.distributed as dist

    gpu = devices.Device(torch.device("cuda", 1), name="NVIDIA H100", capability=(9, 0))
    assert gpu.backend == "nccl" and gpu.is_cuda
    barriers = []
    monkeypatch.setattr(dist, "barrier", lambda **kwargs: barriers.append(kwargs))
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
    assert gpu.collective_device() == torch.device("cuda", 1)  # NCCL takes CUDA tensors only
    gpu.barrier()
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    assert gpu.collective_device() == torch.device("cpu")
    gpu.barrier()
    assert barriers == [{"device_ids": [1]}, {}]  # NCCL told its GPU; gloo on the CPU
    cpu = devices.current()  # this machine
    assert not cpu.is_cuda and cpu.backend == "gloo" and cpu.capability is None


def test_use_points_current_at_a_device_and_restores_it():
    before = devices.current()
    recorder = RecordingDevice()
    with devices.use(recorder):
        assert devices.current() is recorder and devices.select(0) is recorder
    assert devices.current() == before


def test_trainer_refuses_fp8_on_an_a100_before_building_anything(monkeypatch, tmp_path):
    """The trainer hands its device's compute capability to the plan (issue 15, item 6): on a (pretended) A100
    with Transformer Engine, the 1B target's FP8 is refused with the fix before a tensor touches the GPU."""
    from regmix_megatron.errors import ConfigError
    from regmix_megatron.megatron import train

    from helpers.launch_shells import EXAMPLES

    train.init_distributed(1, 1)
    cfg = load_run_config(EXAMPLES / "target_1b.yaml", output_dir=tmp_path / "run",
                          overrides={"parallel": {"tensor_model_parallel_size": 1,
                                                    "pipeline_model_parallel_size": 1}})
    monkeypatch.setattr(train, "transformer_engine_importable", lambda: True)
    a100 = devices.Device(torch.device("cuda", 0), name="NVIDIA A100-SXM4-80GB", capability=(8, 0))
    with devices.use(a100):
        run = train._Run(cfg.recipe, seed=cfg.seed, output_dir=cfg.output_dir)
        assert run.device is a100 and run.cuda
        refusal = r"precision.fp8='hybrid' .*\(NVIDIA A100-SXM4-80GB, compute capability 8\.0"
        with pytest.raises(ConfigError, match=refusal):
            run.build_model_and_optimizer(vocab_size=1000)
