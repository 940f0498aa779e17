"""A stand-in accelerator for tests of the GPU path on a CPU.

:class:`RecordingDevice` computes on the CPU but owns what is placed or created through it: every such tensor
gets a fresh storage that the device keeps alive, and :meth:`RecordingDevice.owns` tells whether a tensor lives
in one of them (views included). A tensor that bypassed the device (a batch never moved, a collective buffer
created with ``torch.tensor``) is not owned: on a GPU that tensor would be on the CPU while the model is on
CUDA. :func:`guard_trainer` installs the checks on the trainer's forward inputs, loss inputs and collectives.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from itertools import chain

import torch

from regmix_megatron.megatron.device import Device


class RecordingDevice(Device):
    def __init__(self, name: str = "fake-accelerator"):
        super().__init__(torch.device("cpu"), name=name, capability=None)
        object.__setattr__(self, "kept", [])
        object.__setattr__(self, "storages", set())
        object.__setattr__(self, "modules", [])

    def _own(self, tensor: torch.Tensor) -> torch.Tensor:
        owned = tensor.clone()
        self.kept.append(owned)
        self.storages.add(owned.untyped_storage().data_ptr())
        return owned

    def owns(self, tensor: torch.Tensor) -> bool:
        return tensor.untyped_storage().data_ptr() in self.storages

    def place(self, tensor):
        return self._own(super().place(tensor))

    def collective_tensor(self, values, *, dtype, group=None):
        return self._own(super().collective_tensor(values, dtype=dtype, group=group))

    def place_module(self, module):
        module = super().place_module(module)
        for tensor in chain(module.parameters(), module.buffers()):
            self.storages.add(tensor.untyped_storage().data_ptr())

        def outputs_live_here(mod, args, output):  # what the model computes is on the model's device
            for t in output if isinstance(output, (tuple, list)) else [output]:
                if isinstance(t, torch.Tensor):
                    self.kept.append(t.detach())
                    self.storages.add(t.untyped_storage().data_ptr())

        module.register_forward_hook(outputs_live_here)
        self.modules.append(module)
        return module


def _tensors(values):
    for v in values:
        if isinstance(v, torch.Tensor):
            yield v


@contextmanager
def guard_trainer(device: RecordingDevice, monkeypatch):
    """Check, during a training run, that every tensor given to the model's forward (training and evaluation),
    to the loss function and to a collective called from our code is owned by ``device``. Yields the counts of
    checked calls: ``forward_train``, ``forward_eval``, ``loss``, and one per calling function of a collective."""
    import torch.distributed as dist

    from regmix_megatron.megatron import train

    counts: dict = {}

    def count(key):
        counts[key] = counts.get(key, 0) + 1

    def check(what, tensors):
        for t in tensors:
            assert device.owns(t), f"{what}: a tensor of shape {tuple(t.shape)} is not on the model's device"

    original_place_module = device.place_module

    def place_module(module):
        module = original_place_module(module)

        def inputs_on_device(mod, args, kwargs):
            check("model input", chain(_tensors(args), _tensors(kwargs.values())))
            count("forward_train" if mod.training else "forward_eval")

        module.register_forward_pre_hook(inputs_on_device, with_kwargs=True)
        return module

    object.__setattr__(device, "place_module", place_module)
    loss_func = train._loss_func

    def checked_loss(loss_mask, output_tensor):
        check("loss input", [loss_mask, output_tensor])
        count("loss")
        return loss_func(loss_mask, output_tensor)

    monkeypatch.setattr(train, "_loss_func", checked_loss)
    for name in ("all_reduce", "broadcast", "all_gather", "all_gather_into_tensor", "reduce_scatter_tensor"):
        collective = getattr(dist, name)

        def checked(*args, __name=name, __collective=collective, **kwargs):
            caller = sys._getframe(1)
            if caller.f_globals.get("__name__", "").startswith("regmix_megatron"):
                check(f"{__name} in {caller.f_code.co_name}", chain(_tensors(args), _tensors(kwargs.values())))
                count(f"{__name}:{caller.f_code.co_name}")
            return __collective(*args, **kwargs)

        monkeypatch.setattr(dist, name, checked)
    try:
        yield counts
    finally:
        object.__delattr__(device, "place_module")
