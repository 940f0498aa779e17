"""CPU shims for megatron-core 0.16.1: let GPTModel, its pipeline schedules, DDP and optimizer run on CPU.

megatron-core assumes CUDA in a handful of places (see ``shared/notes/megatron.md``). :func:`apply_cpu_shims`
patches exactly those, once, and only when CUDA is NOT available; on a GPU machine it does nothing, so the
GPU path runs megatron-core unmodified.

What is patched on CPU:

1. ``torch.cuda.current_device()`` answers ``"cpu"`` and ``torch.cuda.synchronize()`` is a no-op (RoPE and
   tensor-parallel layers place buffers on the "current device"; pipeline p2p synchronizes).
2. Modules that create tensors with a literal ``device="cuda"`` (pipeline schedules, p2p, gradient clipping,
   optimizers, grad buffers, the local multi-tensor helpers) see a ``torch`` whose tensor factories map
   ``"cuda"`` to ``"cpu"``; everything else is forwarded to the real ``torch``.
3. ``clip_grad_by_total_norm_fp32`` asserts ``torch.cuda.FloatTensor`` grads: replaced by a CPU version with
   the same semantics (scale every grad by ``max_norm / (total_norm + 1e-6)`` when that is < 1).
4. The CUDA RNG states tracker (used for initialization and dropout) is replaced by one keeping CPU
   generator states: :func:`seed_model_parallel` is the CPU counterpart of
   ``tensor_parallel.model_parallel_cuda_manual_seed`` (which asserts CUDA).
"""

from __future__ import annotations

import contextlib
import importlib
import types

import torch

_APPLIED = False

#: Modules whose module-level ``torch`` gets the CPU-redirecting proxy.
_CUDA_LITERAL_MODULES = (
    "megatron.core.pipeline_parallel.schedules",
    "megatron.core.pipeline_parallel.p2p_communication",
    "megatron.core.optimizer.clip_grads",
    "megatron.core.optimizer.optimizer",
    "megatron.core.optimizer.grad_scaler",
    "megatron.core.distributed.param_and_grad_buffer",
    "megatron.core.distributed.distributed_data_parallel",
    "megatron.core.utils",
    "megatron.core.transformer.utils",
)

_FACTORIES = ("zeros", "ones", "empty", "full", "tensor", "arange", "zeros_like", "ones_like", "empty_like",
              "full_like", "randn", "rand")


def cuda_available() -> bool:
    return torch.cuda.is_available()


def _cpu_device(device):
    if device is None:
        return None
    if isinstance(device, torch.device):
        return torch.device("cpu") if device.type == "cuda" else device
    if isinstance(device, int):
        return torch.device("cpu")
    if isinstance(device, str) and device.startswith("cuda"):
        return "cpu"
    return device


class _CpuTorch(types.ModuleType):
    """Forwards to ``torch``; tensor factories get ``device="cuda"`` rewritten to ``"cpu"``."""

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        value = getattr(torch, name)
        if name in _FACTORIES:
            def factory(*args, __f=value, **kwargs):
                if "device" in kwargs:
                    kwargs["device"] = _cpu_device(kwargs["device"])
                return __f(*args, **kwargs)
            return factory
        return value


def _current_device_cpu():
    return "cpu"


def _synchronize_noop(device=None):
    return None


class CpuRNGStatesTracker:
    """Same interface as megatron's ``CudaRNGStatesTracker`` but keeps CPU generator states."""

    def __init__(self, *args, **kwargs):
        self.reset()

    def is_initialized(self):
        return self._is_initialized

    def reset(self):
        self._is_initialized = False
        self.states_ = {}
        self.seeds_ = set()

    def get_states(self):
        return {k: v.clone() for k, v in self.states_.items()}

    def set_states(self, states):
        self._is_initialized = True
        self.states_ = {k: v.clone() for k, v in states.items()}

    def add(self, name, seed):
        self._is_initialized = True
        if seed in self.seeds_:
            raise RuntimeError(f"seed {seed} already exists")
        self.seeds_.add(seed)
        if name in self.states_:
            raise RuntimeError(f"rng state {name} already exists")
        orig = torch.get_rng_state()
        torch.manual_seed(seed)
        self.states_[name] = torch.get_rng_state()
        torch.set_rng_state(orig)

    @contextlib.contextmanager
    def fork(self, name="model-parallel-rng"):
        if name not in self.states_:
            raise RuntimeError(f"rng state {name} is not added")
        orig = torch.get_rng_state()
        torch.set_rng_state(self.states_[name])
        try:
            yield
        finally:
            self.states_[name] = torch.get_rng_state()
            torch.set_rng_state(orig)


def _clip_grad_by_total_norm_cpu(parameters, max_norm, total_norm, use_decoupled_grad=False):
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    attr = "decoupled_grad" if use_decoupled_grad else "grad"
    grads = [getattr(p, attr).detach() for p in parameters if getattr(p, attr, None) is not None]
    clip_coeff = max_norm / (total_norm + 1.0e-6)
    if clip_coeff < 1.0 and grads:
        torch._foreach_mul_(grads, clip_coeff)


def apply_cpu_shims() -> bool:
    """Patch megatron-core for CPU once (idempotent). Returns True if patches are active, False on CUDA."""
    global _APPLIED
    if cuda_available():
        return False
    if _APPLIED:
        return True
    torch.cuda.current_device = _current_device_cpu
    torch.cuda.synchronize = _synchronize_noop
    proxy = _CpuTorch()
    for name in _CUDA_LITERAL_MODULES:
        module = importlib.import_module(name)
        module.torch = proxy
    clip_grads = importlib.import_module("megatron.core.optimizer.clip_grads")
    optimizer = importlib.import_module("megatron.core.optimizer.optimizer")
    clip_grads.clip_grad_by_total_norm_fp32 = _clip_grad_by_total_norm_cpu
    optimizer.clip_grad_by_total_norm_fp32 = _clip_grad_by_total_norm_cpu
    _APPLIED = True
    return True


def seed_model_parallel(seed: int) -> None:
    """Seed python/numpy/torch and megatron's model-parallel RNG tracker (CPU tracker on CPU)."""
    import random

    import numpy as np
    from megatron.core import parallel_state, tensor_parallel
    from megatron.core.tensor_parallel import random as mp_random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if cuda_available():
        torch.cuda.manual_seed(seed)
        tensor_parallel.model_parallel_cuda_manual_seed(seed)
        return
    tracker = CpuRNGStatesTracker()
    tp_rank = parallel_state.get_tensor_model_parallel_rank()
    # Same seeds as megatron: data-parallel regions `seed`, tensor-parallel regions `seed + 2718 + tp_rank`,
    # experts `seed + 1024 + 100 * ep_rank + etp_rank` (ep = etp = 0 here: no MoE).
    tracker.add(mp_random._DATA_PARALLEL_RNG_TRACKER_NAME, seed)
    tracker.add(mp_random._MODEL_PARALLEL_RNG_TRACKER_NAME, seed + 2718 + tp_rank)
    tracker.add(mp_random._EXPERT_PARALLEL_RNG_TRACKER_NAME, seed + 1024)
    mp_random._CUDA_RNG_STATE_TRACKER = tracker
    mp_random._CUDA_RNG_STATE_TRACKER_INITIALIZED = True
