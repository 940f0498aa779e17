"""Model plan (layer spec + TransformerConfig) on CPU and on a simulated GPU + Transformer Engine machine,
and the LLaMA-style GPTModel actually built on CPU."""

import os
from pathlib import Path

import pytest

from regmix_megatron.errors import ConfigError
from regmix_megatron.megatron.model import (
    COMPILE_DISABLE_ENV,
    LOCAL_SPEC,
    TE_SPEC,
    compiled_fusions_unavailable_reason,
    fp8_unsupported_reason,
    padded_vocab_size,
    plan_model,
    transformer_config,
    transformer_engine_import_error,
    transformer_engine_importable,
)
from regmix_megatron.recipe import build_recipe
from regmix_megatron.run_config import load_run_config

H100, A100 = (9, 0), (8, 0)


def cfg_of(preset, **sections):
    return build_recipe({"preset": preset, **sections})


def test_cpu_plan_is_local_fp32_llama_style():
    plan = plan_model(cfg_of("tiny-test"), vocab_size=1000, cuda_available=False, te_available=False)
    kw = plan.config_kwargs
    assert plan.spec_name == LOCAL_SPEC
    assert kw["normalization"] == "RMSNorm" and kw["gated_linear_unit"] and kw["activation_func"] == "silu"
    assert not kw["add_bias_linear"] and not kw["add_qkv_bias"]
    assert kw["params_dtype"] == "float32" and not kw["bf16"] and "fp8" not in kw
    assert kw["use_cpu_initialization"] and kw["hidden_dropout"] == 0.0 and kw["attention_dropout"] == 0.0
    assert plan.vocab_size == 1024 and plan.max_sequence_length == 64


def test_auto_spec_on_gpu_with_transformer_engine_bf16_fp8():
    cfg = cfg_of("regmix-1b", precision={"bf16": True, "fp8": "hybrid", "layer_spec": "auto"},
                 parallel={"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2})
    plan = plan_model(cfg, vocab_size=32000, cuda_available=True, te_available=True, capability=H100)
    kw = plan.config_kwargs
    assert plan.spec_name == TE_SPEC
    assert kw["bf16"] and kw["params_dtype"] == "bfloat16" and kw["fp8"] == "hybrid" and kw["fp8_recipe"] == "delayed"
    assert not kw["use_cpu_initialization"]
    assert kw["tensor_model_parallel_size"] == 2 and kw["pipeline_model_parallel_size"] == 2
    assert plan.vocab_size % (64 * 2) == 0
    # The TransformerConfig the GPU path would build constructs here too (no GPU needed for the dataclass).
    tc = transformer_config(plan)
    assert tc.fp8 == "hybrid" and tc.bf16 and str(tc.params_dtype) == "torch.bfloat16"
    assert tc.normalization == "RMSNorm" and tc.gated_linear_unit and not tc.add_bias_linear
    assert (tc.num_layers, tc.hidden_size, tc.num_attention_heads, tc.ffn_hidden_size) == (22, 2048, 16, 5632)


def test_auto_spec_falls_back_to_local_without_te_or_cuda():
    cfg = cfg_of("regmix-1m")  # bf16 preset
    assert plan_model(cfg, vocab_size=50000, cuda_available=True, te_available=False,
                      capability=H100).spec_name == LOCAL_SPEC
    with pytest.raises(ConfigError, match="precision.bf16"):
        plan_model(cfg, vocab_size=50000, cuda_available=False, te_available=False)
    fp8 = cfg_of("regmix-1b", precision={"fp8": "hybrid"})
    with pytest.raises(ConfigError, match="precision.fp8"):
        plan_model(fp8, vocab_size=50000, cuda_available=True, te_available=False, capability=H100)
    forced = cfg_of("tiny-test", precision={"layer_spec": "transformer_engine"})
    with pytest.raises(ConfigError, match="layer_spec"):
        plan_model(forced, vocab_size=1000, cuda_available=False, te_available=False)


def test_transformer_engine_not_importable_here():
    # This machine has no CUDA: the PyPI transformer-engine meta package (if present) raises on import.
    import torch

    if not torch.cuda.is_available():
        assert not (transformer_engine_importable() and torch.cuda.is_available())


def test_padded_vocab():
    assert padded_vocab_size(1000, 64, 1) == 1024
    assert padded_vocab_size(1024, 64, 2) == 1024
    assert padded_vocab_size(1025, 64, 2) == 1152


def test_built_cpu_model_is_llama_style():
    import torch

    from regmix_megatron.megatron.device import current
    from regmix_megatron.megatron.model import build_model, count_model_parameters
    from regmix_megatron.megatron.shims import seed_model_parallel
    from regmix_megatron.megatron.train import init_distributed

    init_distributed(1, 1)
    seed_model_parallel(0)
    cfg = cfg_of("tiny-test")
    plan = plan_model(cfg, vocab_size=1000, cuda_available=False, te_available=False)
    model = build_model(plan)
    names = dict(model.named_parameters())
    assert not any(n.endswith(".bias") for n in names)  # no bias anywhere
    assert isinstance(model.decoder.final_layernorm, torch.nn.RMSNorm)
    assert isinstance(model.decoder.layers[0].input_layernorm, torch.nn.RMSNorm)
    fc1 = names["decoder.layers.0.mlp.linear_fc1.weight"]
    assert tuple(fc1.shape) == (2 * 128, 64)  # SwiGLU: gate and up projections fused
    emb = names["embedding.word_embeddings.weight"]
    out = names["output_layer.weight"]
    assert emb.data_ptr() != out.data_ptr()  # untied embeddings
    assert model.position_embedding_type == "rope"
    counts = count_model_parameters(model, current())
    assert counts["embedding"] == 2 * 1024 * 64
    tokens = torch.randint(0, 1000, (2, 64))
    pos = torch.arange(64).unsqueeze(0).expand(2, -1)
    loss = model(tokens, pos, None, labels=tokens)
    assert loss.shape == (2, 64) and torch.isfinite(loss).all()
    assert abs(loss.mean().item() - torch.log(torch.tensor(1024.0)).item()) < 0.5  # near-uniform at init


# ---- precision the GPU can run (issue 15, items 5 and 6) ---------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def plan_on(cfg, capability, cuda_version="12.4", te_available=True):
    return plan_model(cfg, vocab_size=1000, cuda_available=True, te_available=te_available, capability=capability,
                      cuda_version=cuda_version, gpu_name="NVIDIA test GPU")


def test_fp8_target_is_refused_at_plan_time_on_a_gpu_without_fp8():
    cfg = load_run_config(EXAMPLES / "target_1b.yaml", output_dir="out").recipe  # bf16 + FP8 hybrid, TE spec
    with pytest.raises(ConfigError) as err:
        plan_on(cfg, A100)
    message = str(err.value)
    for words in ("precision.fp8='hybrid'", "compute capability 8.0", "Ampere", "8.9", "set precision.fp8 to null"):
        assert words in message, (words, message)
    assert plan_on(cfg, H100).config_kwargs["fp8"] == "hybrid"
    assert plan_on(cfg, (8, 9), cuda_version="12.1").config_kwargs["fp8"] == "hybrid"  # Ada, CUDA >= 12.1
    with pytest.raises(ConfigError, match="CUDA 12.1"):
        plan_on(cfg, (8, 9), cuda_version="12.0")
    without_fp8 = cfg_of("regmix-1b", precision={"fp8": None, "layer_spec": "transformer_engine"})
    assert "fp8" not in plan_on(without_fp8, A100).config_kwargs  # bf16 alone runs on Ampere


@pytest.mark.parametrize("recipe, capability, cuda, runs", [
    ("delayed", (8, 6), "12.4", False), ("delayed", (8, 9), "12.1", True), ("delayed", (9, 0), "11.8", True),
    ("tensorwise", (8, 0), "12.4", False), ("tensorwise", (9, 0), "12.4", True),
    ("blockwise", (9, 0), "12.8", False), ("blockwise", (9, 0), "12.9", True), ("blockwise", (8, 9), "12.9", False),
    ("mxfp8", (9, 0), "12.9", False), ("mxfp8", (10, 0), "12.9", True), ("mxfp8", (12, 0), "12.9", False),
])
def test_fp8_rule_follows_transformer_engine(recipe, capability, cuda, runs):
    assert (fp8_unsupported_reason(recipe, capability, cuda) is None) == runs


def test_bf16_is_refused_before_ampere():
    with pytest.raises(ConfigError, match=r"precision.bf16=True is invalid on this GPU .*7.0.*Volta"):
        plan_on(cfg_of("regmix-1m"), (7, 0), te_available=False)
    assert plan_on(cfg_of("regmix-1m"), A100, te_available=False).config_kwargs["bf16"]


def test_bf16_local_spec_model_is_bf16_throughout():
    """The local spec's norms (torch.nn.RMSNorm) ignore params_dtype; left fp32 in a bf16 model, F.rms_norm
    cannot use its fused kernel and warns. Built here on CPU from the plan a GPU without TE would use."""
    import warnings

    import torch

    from regmix_megatron.megatron.model import build_model
    from regmix_megatron.megatron.shims import seed_model_parallel
    from regmix_megatron.megatron.train import init_distributed

    init_distributed(1, 1)
    seed_model_parallel(0)
    plan = plan_on(cfg_of("tiny-test", precision={"bf16": True, "layer_spec": "auto"}), A100, te_available=False)
    assert plan.spec_name == LOCAL_SPEC and plan.config_kwargs["params_dtype"] == "bfloat16"
    model = build_model(plan)
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert set(dtypes.values()) == {torch.bfloat16}, {n: d for n, d in dtypes.items() if d != torch.bfloat16}
    tokens = torch.randint(0, 1000, (2, 64))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = model(tokens, torch.arange(64).unsqueeze(0).expand(2, -1), None, labels=tokens)
    assert not [w for w in caught if "Mismatch dtype" in str(w.message)]
    assert torch.isfinite(loss.float()).all()


def test_transformer_engine_import_error_is_kept_not_swallowed():
    error = transformer_engine_import_error()
    assert error is not None and error.startswith(("ModuleNotFoundError: ", "ImportError: ", "RuntimeError: "))
    assert "transformer_engine" in error  # what failed to import, as Python said it


def test_compiled_fusions_need_a_c_compiler_and_python_h_unless_compile_is_off(tmp_path):
    import shutil

    assert shutil.which("gcc") is not None  # this machine has one: the real PATH finds it
    assert compiled_fusions_unavailable_reason({"PATH": os.environ["PATH"]}) is None
    empty = {"PATH": str(tmp_path)}
    assert compiled_fusions_unavailable_reason(empty) == "no C compiler (cc, gcc or clang not found on PATH)"
    assert "$CC=/nowhere/cc" in compiled_fusions_unavailable_reason({**empty, "CC": "/nowhere/cc"})
    assert compiled_fusions_unavailable_reason({**empty, COMPILE_DISABLE_ENV: "1"}) is None  # they run uncompiled


def test_transformer_engine_spec_is_refused_on_a_gpu_where_torch_compile_cannot_build():
    te = cfg_of("regmix-1m", precision={"bf16": True, "layer_spec": "transformer_engine"})
    gpu = dict(vocab_size=1000, cuda_available=True, te_available=True, capability=H100, cuda_version="12.8")
    with pytest.raises(ConfigError, match=r"torch\.compile.*no C compiler.*TORCH_COMPILE_DISABLE=1"):
        plan_model(te, **gpu, compiled_fusions_unavailable="no C compiler (cc, gcc or clang not found on PATH)")
    assert plan_model(te, **gpu).config_kwargs["bias_dropout_fusion"] is True
    local = cfg_of("regmix-1m", precision={"bf16": True, "layer_spec": "local"})  # compiles nothing
    plan = plan_model(local, **gpu, compiled_fusions_unavailable="no C compiler")
    assert plan.spec_name == LOCAL_SPEC and plan.config_kwargs["bias_dropout_fusion"] is False
