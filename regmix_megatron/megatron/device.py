"""Where this process's tensors live: one object decides, the trainer asks it for everything.

:func:`current` gives this process's :class:`Device` (the CUDA device torch has selected, else the CPU). The
trainer takes it once and creates or moves, through it, every tensor that meets the model or a collective:

- the model (:meth:`Device.place_module`), before DDP and the optimizer are built on it;
- every micro-batch, in training and evaluation alike (:meth:`Device.place_batch`);
- every buffer it hands to a collective (:meth:`Device.collective_tensor`), on the device the process group's
  backend works on: NCCL only takes CUDA tensors, gloo takes CPU ones.

Tests point :func:`current` at a recording subclass (:func:`use`) and check that nothing bypasses it, which is how a
CPU tensor meeting a CUDA model or an NCCL collective is caught without a GPU.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch


@dataclass(frozen=True)
class Device:
    """One process's device: a CUDA device (with its name and compute capability) or the CPU."""

    torch_device: torch.device
    name: str = "cpu"
    capability: Optional[tuple] = None
    """CUDA compute capability ``(major, minor)``; None on CPU."""

    @property
    def is_cuda(self) -> bool:
        return self.torch_device.type == "cuda"

    @property
    def backend(self) -> str:
        """The process-group backend for this device: ``nccl`` on CUDA, ``gloo`` on CPU."""
        return "nccl" if self.is_cuda else "gloo"

    def place(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.torch_device, non_blocking=True)

    def place_batch(self, batch: dict) -> dict:
        """A micro-batch (name -> tensor) with every tensor on this device."""
        return {key: self.place(value) for key, value in batch.items()}

    def place_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.to(self.torch_device)

    def collective_device(self, group=None) -> torch.device:
        """The device a collective over ``group`` (None: the default group) needs its tensors on."""
        import torch.distributed as dist

        return torch.device("cpu") if dist.get_backend(group) == "gloo" else self.torch_device

    def collective_tensor(self, values: Sequence[float], *, dtype: torch.dtype, group=None) -> torch.Tensor:
        """A new tensor holding ``values`` on :meth:`collective_device` of ``group``."""
        return torch.tensor(list(values), dtype=dtype, device=self.collective_device(group))

    def barrier(self) -> None:
        """``dist.barrier`` of the default group, on :meth:`collective_device` (NCCL needs to know which GPU
        runs its barrier, else it guesses from the rank)."""
        import torch.distributed as dist

        device = self.collective_device()
        if device.type == "cuda":
            dist.barrier(device_ids=[device.index])
        else:
            dist.barrier()


_OVERRIDE: Optional[Device] = None


def current() -> Device:
    """This process's device: the one set with :func:`use` if any, else torch's current CUDA device, else CPU."""
    if _OVERRIDE is not None:
        return _OVERRIDE
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        return Device(torch.device("cuda", index), name=torch.cuda.get_device_name(index),
                      capability=tuple(torch.cuda.get_device_capability(index)))
    return Device(torch.device("cpu"))


def select(local_rank: Optional[int]) -> Device:
    """Make GPU ``local_rank`` torch's current device (one process per GPU under torchrun); return
    :func:`current`. Without CUDA, or with a device set by :func:`use`, nothing is selected."""
    if _OVERRIDE is None and local_rank is not None and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    return current()


@contextlib.contextmanager
def use(device: Device) -> Iterator[Device]:
    """Within the block, :func:`current` is ``device`` (tests: a recording device)."""
    global _OVERRIDE
    previous, _OVERRIDE = _OVERRIDE, device
    try:
        yield device
    finally:
        _OVERRIDE = previous
