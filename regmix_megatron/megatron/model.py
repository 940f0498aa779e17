"""Build megatron-core's ``GPTModel`` in the LLaMA style of the RegMix paper.

RoPE, RMSNorm, SwiGLU (``gated_linear_unit=True`` + SiLU), no bias, untied input/output embeddings.

Layer spec: Transformer Engine (``get_gpt_layer_with_transformer_engine_spec``) when ``transformer_engine``
imports and CUDA is available (or when forced by ``precision.layer_spec``); otherwise megatron-core's local
spec (``get_gpt_layer_local_spec(normalization="RMSNorm")``, whose norms are ``torch.nn.RMSNorm``, apex or not).
:func:`plan_model` is pure (no torch/megatron import) so tests check what the GPU path WOULD build without a
GPU, for any compute capability: it refuses bf16 below 8.0 and FP8 where Transformer Engine's own check would
refuse it at the first forward pass (:func:`fp8_unsupported_reason`).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ConfigError
from ..recipe import Recipe

LOCAL_SPEC = "local"
TE_SPEC = "transformer_engine"


@dataclass(frozen=True)
class ModelPlan:
    """What :func:`build_model` will build: the layer spec and the TransformerConfig keyword arguments."""

    spec_name: str
    """``"local"`` or ``"transformer_engine"``."""
    config_kwargs: dict = field(default_factory=dict)
    """Keyword arguments for ``megatron.core.transformer.TransformerConfig`` (``params_dtype`` as a string)."""
    vocab_size: int = 0
    """Padded vocabulary size of the embedding/output layers."""
    max_sequence_length: int = 0
    rotary_base: int = 10000


def transformer_engine_import_error() -> Optional[str]:
    """None if ``transformer_engine.pytorch`` imports, else why not: the import error as ``Type: message`` (the
    PyPI meta package without its torch extension raises on import; a TE built against another torch fails to
    load its extension), kept so that whoever reads it can fix it."""
    try:
        import transformer_engine.pytorch  # noqa: F401
    except Exception as exc:  # whatever TE raises at import is the reason it cannot be used
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def transformer_engine_importable() -> bool:
    """True if ``transformer_engine.pytorch`` imports (:func:`transformer_engine_import_error` says why not)."""
    if importlib.util.find_spec("transformer_engine") is None:
        return False
    return transformer_engine_import_error() is None


#: The environment variable that makes torch.compile run the functions it wraps uncompiled
#: (``torch._dynamo.config.disable``).
COMPILE_DISABLE_ENV = "TORCH_COMPILE_DISABLE"


def compiled_fusions_unavailable_reason(environ: Optional[dict] = None) -> Optional[str]:
    """Why torch.compile could not build megatron-core's fused kernels here, or None if it can (or is turned off
    with ``TORCH_COMPILE_DISABLE=1``, when they run uncompiled).

    megatron-core wraps its bias-dropout-add and bias-SwiGLU fusions in ``torch.compile`` (``megatron/core/jit.py``);
    on a GPU, compiling them generates Triton kernels whose launcher Triton builds with a C compiler (``$CC``, else
    ``cc``/``gcc``/``clang`` on ``PATH``) against ``Python.h``, at the first training step."""
    import shutil
    import sysconfig

    environ = os.environ if environ is None else environ
    if environ.get(COMPILE_DISABLE_ENV) == "1":
        return None
    compilers = [environ["CC"].split()[0]] if environ.get("CC", "").strip() else ["cc", "gcc", "clang"]
    path = environ.get("PATH", "")
    found = [c for c in compilers if shutil.which(c, path=path)]
    header = Path(sysconfig.get_paths()["include"]) / "Python.h"
    looked_for = f"$CC={environ['CC']}" if environ.get("CC", "").strip() else "cc, gcc or clang"
    problems = ([] if found else [f"no C compiler ({looked_for} not found on PATH)"]) + \
        ([] if header.is_file() else [f"no {header}"])
    return "; ".join(problems) or None


def padded_vocab_size(vocab_size: int, multiple: int, tensor_parallel_size: int) -> int:
    step = multiple * tensor_parallel_size
    return ((vocab_size + step - 1) // step) * step


#: The GPU generations named in messages, by the first compute capability of each.
_ARCHITECTURES = ((10, 0, "Blackwell"), (9, 0, "Hopper"), (8, 9, "Ada"), (8, 0, "Ampere"), (7, 0, "Volta"))


def _version(text: Optional[str]) -> tuple:
    return tuple(int(part) for part in text.split(".")[:2]) if text else (0, 0)


def fp8_unsupported_reason(recipe: str, capability: tuple, cuda_version: Optional[str]) -> Optional[str]:
    """Why Transformer Engine would refuse FP8 recipe ``recipe`` on a GPU of ``capability`` with CUDA
    ``cuda_version`` (``torch.version.cuda``), or None if it would run it.

    The rule of TE's ``check_recipe_support`` (``transformer_engine/pytorch/quantization.py``; ``fp8.py`` in
    TE 1.x/2.x), by the TE recipe megatron-core maps each ``fp8_recipe`` to (``megatron/core/fp8_utils.py``):
    ``delayed`` (DelayedScaling) and ``tensorwise`` (Float8CurrentScaling) need compute capability >= 9.0, or 8.9
    with CUDA >= 12.1 (TE also wants cuBLASLt >= 12.1.3 there, which only TE can see); ``blockwise``
    (Float8BlockScaling) needs >= 9.0 and CUDA >= 12.9; ``mxfp8`` (MXFP8BlockScaling) needs >= 10.0 and,
    in current TE, < 12.0.
    """
    capability = tuple(capability)
    cuda = _version(cuda_version)
    if recipe == "mxfp8":
        if capability < (10, 0):
            return "MXFP8 needs compute capability 10.0 or higher (Blackwell)"
        if capability >= (12, 0):
            return "MXFP8 is not supported on compute capability 12.0+ by Transformer Engine yet"
        return None
    if recipe == "blockwise":
        if capability < (9, 0) or cuda < (12, 9):
            return "FP8 block scaling needs compute capability 9.0 or higher and CUDA 12.9 or newer"
        return None
    if capability >= (9, 0):
        return None
    if capability < (8, 9):
        return "FP8 needs compute capability 8.9 or higher (Ada, Hopper or newer)"
    if cuda < (12, 1):
        return "FP8 on compute capability 8.9 (Ada) needs CUDA 12.1 or newer"
    return None


def architecture(capability: tuple) -> str:
    """``"Ampere"`` for (8, 0), ...: the newest generation whose first capability is <= ``capability``."""
    for major, minor, name in _ARCHITECTURES:
        if tuple(capability) >= (major, minor):
            return name
    return "pre-Volta"


def _check_gpu_precision(prec, capability: tuple, cuda_version: Optional[str], gpu_name: str) -> None:
    where = f"this GPU ({gpu_name}, compute capability {capability[0]}.{capability[1]}, {architecture(capability)})"
    if prec.bf16 and tuple(capability) < (8, 0):
        raise ConfigError(f"precision.bf16=True is invalid on {where}: bf16 needs compute capability 8.0 or "
                          "higher (Ampere or newer); set precision.bf16 to false (fp32)")
    if prec.fp8 is not None:
        reason = fp8_unsupported_reason(prec.fp8_recipe, capability, cuda_version)
        if reason is not None:
            raise ConfigError(
                f"precision.fp8={prec.fp8!r} (fp8_recipe={prec.fp8_recipe!r}) is invalid on {where}: {reason}, "
                "so Transformer Engine would fail at the first forward pass; set precision.fp8 to null (bf16 "
                "without FP8)")


def _choose_spec(prec, *, cuda_available: bool, te_available: bool) -> str:
    """The layer spec for ``prec`` on this hardware, refusing precisions only Transformer Engine or a GPU can run."""
    if prec.layer_spec == "local":
        spec = LOCAL_SPEC
    elif prec.layer_spec == TE_SPEC:
        if not (cuda_available and te_available):
            raise ConfigError(
                "precision.layer_spec='transformer_engine' is invalid here: Transformer Engine needs a CUDA GPU "
                f"and an importable transformer_engine (cuda={cuda_available}, te={te_available}); "
                "use 'auto' or 'local'")
        spec = TE_SPEC
    else:
        spec = TE_SPEC if (cuda_available and te_available) else LOCAL_SPEC
    if prec.fp8 is not None and spec != TE_SPEC:
        raise ConfigError(f"precision.fp8={prec.fp8!r} is invalid here: FP8 needs Transformer Engine on a CUDA "
                          "GPU; set precision.fp8 to null on this machine")
    if prec.bf16 and not cuda_available:
        raise ConfigError("precision.bf16=True is invalid on CPU: bf16 is ~20-85x slower than fp32 on CPUs "
                          "without native bf16; set precision.bf16 to false (fp32) for CPU runs")
    return spec


def _check_compiled_fusions(spec: str, reason: Optional[str]) -> None:
    if spec == TE_SPEC and reason is not None:
        raise ConfigError(
            "the Transformer Engine layer spec fuses bias-dropout-add through torch.compile, which cannot build its "
            f"kernels here: {reason}. Install a C compiler and the Python headers (e.g. apt-get install gcc "
            f"python3-dev), or export {COMPILE_DISABLE_ENV}=1 to run the fusions uncompiled (slower, same result)")


def plan_model(cfg: Recipe, *, vocab_size: int, cuda_available: bool, te_available: bool,
               capability: Optional[tuple] = None, cuda_version: Optional[str] = None,
               gpu_name: str = "GPU", compiled_fusions_unavailable: Optional[str] = None) -> ModelPlan:
    """Choose the layer spec and the TransformerConfig for ``cfg`` on the given hardware (pure).

    On CUDA, ``capability`` (the GPU's compute capability) is required and ``cuda_version`` is
    ``torch.version.cuda``: precisions the GPU cannot run are refused here, with the fix, rather than inside
    Transformer Engine at the first step. ``compiled_fusions_unavailable``
    (:func:`compiled_fusions_unavailable_reason` on CUDA): the Transformer Engine spec, whose bias-dropout-add
    fusion torch.compile builds at the first step, is refused with the fix (the local spec compiles nothing)."""
    assert not cuda_available or capability is not None, "plan_model on CUDA needs the GPU's compute capability"
    m, prec, par = cfg.model, cfg.precision, cfg.parallel
    spec = _choose_spec(prec, cuda_available=cuda_available, te_available=te_available)
    if cuda_available:
        _check_gpu_precision(prec, capability, cuda_version, gpu_name)
        _check_compiled_fusions(spec, compiled_fusions_unavailable)
    kwargs: dict[str, Any] = dict(
        num_layers=m.num_layers,
        hidden_size=m.hidden_size,
        num_attention_heads=m.num_attention_heads,
        ffn_hidden_size=m.ffn_hidden_size,
        kv_channels=m.hidden_size // m.num_attention_heads,
        normalization="RMSNorm",
        layernorm_epsilon=m.norm_epsilon,
        gated_linear_unit=True,
        activation_func="silu",
        bias_activation_fusion=False,
        add_bias_linear=False,
        add_qkv_bias=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        init_method_std=m.init_method_std,
        apply_rope_fusion=False,
        masked_softmax_fusion=False,
        bias_dropout_fusion=False,
        persist_layer_norm=False,
        gradient_accumulation_fusion=False,
        tensor_model_parallel_size=par.tensor_model_parallel_size,
        pipeline_model_parallel_size=par.pipeline_model_parallel_size,
        sequence_parallel=False,
        use_cpu_initialization=(not cuda_available if par.use_cpu_initialization is None
                                else par.use_cpu_initialization),
        params_dtype="bfloat16" if prec.bf16 else "float32",
        pipeline_dtype="bfloat16" if prec.bf16 else "float32",
        bf16=prec.bf16,
        fp16=False,
    )
    if spec == TE_SPEC:
        kwargs.update(bias_activation_fusion=False, masked_softmax_fusion=True, bias_dropout_fusion=True,
                      persist_layer_norm=False, gradient_accumulation_fusion=False)
    if prec.fp8 is not None:
        kwargs.update(fp8=prec.fp8, fp8_recipe=prec.fp8_recipe, fp8_margin=0, fp8_amax_history_len=1024,
                      fp8_amax_compute_algo="max")
    vocab = padded_vocab_size(vocab_size, m.vocab_multiple, par.tensor_model_parallel_size)
    return ModelPlan(spec_name=spec, config_kwargs=kwargs, vocab_size=vocab, max_sequence_length=m.seq_length,
                     rotary_base=m.rotary_base)


def transformer_config(plan: ModelPlan):
    """The megatron ``TransformerConfig`` of a plan."""
    import torch
    import torch.nn.functional as F
    from megatron.core.transformer import TransformerConfig

    kwargs = dict(plan.config_kwargs)
    kwargs["params_dtype"] = getattr(torch, kwargs["params_dtype"])
    kwargs["pipeline_dtype"] = getattr(torch, kwargs["pipeline_dtype"])
    kwargs["activation_func"] = {"silu": F.silu}[kwargs["activation_func"]]
    return TransformerConfig(**kwargs)


def layer_spec(plan: ModelPlan):
    from megatron.core.models.gpt import gpt_layer_specs

    if plan.spec_name == TE_SPEC:
        return gpt_layer_specs.get_gpt_layer_with_transformer_engine_spec()
    return gpt_layer_specs.get_gpt_layer_local_spec(normalization="RMSNorm")


def match_norm_dtype(model, dtype) -> int:
    """Give torch norms the parameter dtype of the rest of the model; returns how many were cast.

    The local spec's norms are ``torch.nn.RMSNorm`` built by megatron's ``WrappedTorchNorm``, which ignores
    ``params_dtype``: in a bf16 model they would stay fp32. ``F.rms_norm`` with a bf16 input and an fp32 weight
    still runs (its output is bf16) but cannot use the fused kernel (torch warns "Mismatch dtype between input
    and weight ... Cannot dispatch to fused implementation", on CUDA as on CPU), and the model would then differ
    from what Megatron-LM trains (its ``Float16Module`` casts every parameter to bf16). Cast, the optimizer keeps
    fp32 main copies of them like of every bf16 parameter. Transformer Engine norms take ``params_dtype``
    themselves and are not touched."""
    import torch

    cast = 0
    for module in model.modules():
        if isinstance(module, (torch.nn.RMSNorm, torch.nn.LayerNorm)):
            if any(p.dtype != dtype for p in module.parameters()):
                module.to(dtype)
                cast += 1
    return cast


def build_model(plan: ModelPlan):
    """Build this pipeline stage's ``GPTModel`` (call after parallel_state is initialized and seeded)."""
    from megatron.core import parallel_state
    from megatron.core.models.gpt import GPTModel

    config = transformer_config(plan)
    model = GPTModel(
        config=config,
        transformer_layer_spec=layer_spec(plan),
        vocab_size=plan.vocab_size,
        max_sequence_length=plan.max_sequence_length,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        parallel_output=True,
        share_embeddings_and_output_weights=False,
        position_embedding_type="rope",
        rotary_percent=1.0,
        rotary_base=plan.rotary_base,
    )
    match_norm_dtype(model, config.params_dtype)
    return model


def count_parameters(model, *, tp_rank: int = 0) -> dict:
    """This rank's share of the parameters: total, embedding (input + output layers), non-embedding.

    Tensor-parallel shards count on every rank, replicated parameters (norms) only on tensor rank 0, so the
    sum over the model-parallel group is the model's size (see :func:`count_model_parameters`)."""
    total = emb = 0
    for name, p in model.named_parameters():
        if not getattr(p, "tensor_model_parallel", False) and tp_rank != 0:
            continue
        total += p.numel()
        if name.startswith("embedding.") or name.startswith("output_layer."):
            emb += p.numel()
    return {"total": total, "embedding": emb, "non_embedding": total - emb}


def count_model_parameters(model, device) -> dict:
    """Whole-model parameter counts (summed over the tensor- and pipeline-parallel ranks); ``device`` (a
    :class:`~regmix_megatron.megatron.device.Device`) places the all-reduce buffer where the group's backend
    needs it (CUDA for NCCL)."""
    import torch
    import torch.distributed as dist
    from megatron.core import parallel_state

    local = count_parameters(model, tp_rank=parallel_state.get_tensor_model_parallel_rank())
    group = parallel_state.get_model_parallel_group()
    t = device.collective_tensor([local["total"], local["embedding"]], dtype=torch.float64, group=group)
    dist.all_reduce(t, group=group)
    total, emb = int(t[0]), int(t[1])
    return {"total": total, "embedding": emb, "non_embedding": total - emb}
