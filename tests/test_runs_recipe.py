"""The training recipe: presets load and resolve, overrides, validation errors name field + value + fix, and
its hash covers what a run computes, nothing else."""

from pathlib import Path

import pytest

from regmix_megatron.errors import ConfigError
from regmix_megatron.runs.recipe import (
    IDENTITY_SECTIONS,
    PRESET_DIR,
    Recipe,
    build_recipe,
    list_presets,
    load_preset,
    parse_overrides,
)


def test_all_presets_load():
    names = list_presets()
    for required in ("regmix-1m", "regmix-60m", "regmix-1b", "cpu-proxy", "cpu-target", "tiny-test"):
        assert required in names
    for name in names:
        cfg = build_recipe({"preset": name}, source=name)
        assert isinstance(cfg, Recipe)
        assert cfg.preset == name


def test_paper_shapes():
    one_m = build_recipe({"preset": "regmix-1m"})
    m, o = one_m.model, one_m.optim
    assert (m.num_layers, m.hidden_size, m.num_attention_heads, m.ffn_hidden_size, m.seq_length) == (2, 256, 8, 512,
                                                                                                     2048)
    assert (o.global_batch_size, o.train_steps, o.lr, o.lr_schedule, o.num_warmup_steps) == (512, 1000, 4e-4,
                                                                                             "constant", 100)
    assert (o.adam_beta1, o.adam_beta2, o.weight_decay, o.clip_grad) == (0.9, 0.95, 0.1, 1.0)
    assert one_m.precision.bf16
    sixty = build_recipe({"preset": "regmix-60m"}).model
    assert (sixty.num_layers, sixty.hidden_size, sixty.num_attention_heads, sixty.ffn_hidden_size) == (10, 768, 8,
                                                                                                       1536)
    big = build_recipe({"preset": "regmix-1b"})
    assert (big.model.num_layers, big.model.hidden_size, big.model.num_attention_heads,
            big.model.ffn_hidden_size) == (22, 2048, 16, 5632)
    assert big.optim.lr_schedule == "cosine" and big.optim.min_lr == 1e-5
    assert big.optim.num_warmup_steps == round(0.04 * big.optim.train_steps)
    tokens = big.optim.train_steps * big.optim.global_batch_size * big.model.seq_length
    assert abs(tokens - 25e9) / 25e9 < 1e-3


def test_cpu_presets_are_fp32_local():
    for name in ("cpu-proxy", "cpu-target", "tiny-test"):
        cfg = build_recipe({"preset": name})
        assert not cfg.precision.bf16 and cfg.precision.fp8 is None and cfg.precision.layer_spec == "local"
        assert cfg.model.vocab_size is None  # taken from the tokenizer
        assert cfg.model.seq_length <= 256


@pytest.mark.parametrize("patch, words", [
    ({"optim": {"lr_schedule": "linear"}}, ["optim.lr_schedule", "'linear'", "cosine"]),
    ({"optim": {"global_batch_size": 10, "micro_batch_size": 4}}, ["optim.global_batch_size", "10", "multiple"]),
    ({"model": {"num_attention_heads": 3}}, ["model.num_attention_heads", "3", "divide"]),
    ({"parallel": {"pipeline_model_parallel_size": 3}}, ["parallel.pipeline_model_parallel_size", "3"]),
    ({"optim": {"warmup_steps": 5, "warmup_fraction": 0.1}}, ["warmup_fraction", "not both"]),
    ({"precision": {"fp8": "e5m2"}}, ["precision.fp8", "hybrid"]),
    ({"precision": {"fp8": "hybrid", "layer_spec": "local"}}, ["precision.fp8", "Transformer Engine"]),
    ({"eval": {"eval_interval": 0}}, ["eval.eval_interval", "0"]),
    ({"preset": "nope"}, ["preset", "'nope'", "tiny-test"]),
])
def test_validation_errors_name_field_value_fix(patch, words):
    with pytest.raises(ConfigError) as err:
        build_recipe({"preset": "tiny-test", **patch})
    for w in words:
        assert w in str(err.value)


def test_unknown_field_and_bad_type():
    with pytest.raises(ConfigError, match="learning_rate"):
        build_recipe({"preset": "tiny-test", "optim": {"learning_rate": 1.0}})
    with pytest.raises(ConfigError, match="train_steps"):
        build_recipe({"preset": "tiny-test", "optim": {"train_steps": "many"}})


def test_parse_overrides_errors():
    with pytest.raises(ConfigError, match="--set"):
        parse_overrides(["optim.lr"])
    assert parse_overrides(["a.b=1e30", "c=true", "d=[1, 2]"]) == {"a": {"b": 1e30}, "c": True, "d": [1, 2]}


def test_presets_are_package_data():
    assert PRESET_DIR == Path(__file__).parents[1] / "regmix_megatron" / "runs" / "presets"
    setup = (Path(__file__).parents[1] / "setup.py").read_text()
    assert "runs/presets/*.yaml" in setup


def test_a_recipe_needs_no_paths_and_refuses_run_fields():
    recipe = build_recipe({"preset": "tiny-test", "optim": {"train_steps": 7}})
    flat = recipe.to_dict()
    assert not {"domains", "mixture", "seed", "output_dir", "run_id"} & set(flat)
    assert recipe.num_train_tokens == 7 * recipe.optim.global_batch_size * recipe.model.seq_length
    for field in ("domains", "output_dir", "seed"):
        with pytest.raises(ConfigError, match=field):
            build_recipe({"preset": "tiny-test", field: "x"})


def test_the_recipe_hash_follows_what_a_run_computes():
    base = build_recipe({"preset": "tiny-test"})
    assert base.hash == build_recipe({"preset": "tiny-test"}).hash and len(base.hash) == 16
    assert set(base.identity()) == set(IDENTITY_SECTIONS)
    for changed in ({"optim": {"lr": 1e-3}}, {"model": {"num_layers": 4}}, {"eval": {"num_tokens_per_domain": 64}},
                    {"precision": {"layer_spec": "auto"}}):
        assert build_recipe({"preset": "tiny-test", **changed}).hash != base.hash, changed
    # how a run executes is not what it computes: layout, checkpoints, logging and the preset's name
    for same in ({"parallel": {"num_threads": 2}}, {"checkpoint": {"interval": 3}}, {"log_interval": 1},
                 {"tensorboard": True}):
        assert build_recipe({"preset": "tiny-test", **same}).hash == base.hash, same
    spelled_out = dict(base.to_dict(), preset=None)
    assert build_recipe(spelled_out).hash == base.hash


def test_an_unset_per_domain_evaluation_size_keeps_every_recipe_hash():
    """Run ids of recipes without ``eval.num_tokens_by_domain`` stay what they were before the field existed (the
    hashes below are those of commit acb8f0c); setting it is a new recipe."""
    before = {"tiny-test": "c06c04a40e04cf3c", "cpu-proxy": "4b60466c9f39c79c", "cpu-target": "66eae6ede69c316e",
              "regmix-1m": "60cdfd52253f7a0d"}
    for name, old in before.items():
        recipe = build_recipe({"preset": name})
        assert recipe.hash == old, name
        assert "num_tokens_by_domain" not in recipe.to_dict()["eval"]  # config.yaml as before, too
        assert "final_num_tokens_by_domain" not in recipe.to_dict()["eval"]
        assert build_recipe({"preset": name, "eval": {"final_num_tokens_by_domain": {}}}).hash == old
        assert build_recipe({"preset": name, "eval": {"num_tokens_by_domain": {}}}).hash == old  # empty = unset
    sized = build_recipe({"preset": "tiny-test", "eval": {"num_tokens_by_domain": {"qa": "all"}}})
    assert sized.hash != before["tiny-test"]
    assert build_recipe(dict(sized.to_dict(), preset=None)).hash == sized.hash  # the saved form loads back


def test_per_domain_evaluation_sizes_are_checked_and_canonical():
    recipe = build_recipe({"preset": "tiny-test", "eval": {"num_tokens_by_domain": {"qa": "all", "code": "1e4"}}})
    assert recipe.eval.num_tokens_by_domain == {"code": 10000, "qa": "all"}
    assert list(recipe.eval.num_tokens_by_domain) == ["code", "qa"]  # sorted: the order changes nothing
    assert recipe.eval.num_tokens_for("qa") == "all" and recipe.eval.num_tokens_for("code") == 10000
    assert recipe.eval.num_tokens_for("math") == recipe.eval.num_tokens_per_domain == 2048
    for bad, match in (({"qa": 0}, r"eval\.num_tokens_by_domain\.qa=0 is invalid: .*'all'"),
                       ({"qa": "everything"}, r"eval\.num_tokens_by_domain\.qa='everything'"),
                       ({"qa": 2.5}, r"eval\.num_tokens_by_domain\.qa=2\.5"),
                       ({"qa": True}, r"eval\.num_tokens_by_domain\.qa=True"),
                       (["qa"], r"eval\.num_tokens_by_domain=\['qa'\] is invalid: use a mapping"),
                       ({"": 5}, r"eval\.num_tokens_by_domain=.*use a mapping")):
        with pytest.raises(ConfigError, match=match):
            build_recipe({"preset": "tiny-test", "eval": {"num_tokens_by_domain": bad}})


def test_recipe_overrides_are_checked_once_against_the_recipes_fields():
    import typing

    from helpers.field_docs import undocumented_fields
    from regmix_megatron.runs.recipe import (CheckpointConfig, EvalConfig, ModelConfig, OptimConfig, ParallelConfig,
                                             PrecisionConfig, Recipe, RecipeOverrides)

    overrides = RecipeOverrides.from_dict({"optim": {"train_steps": 300}, "log_interval": 5},
                                          source="p.yaml: proxy.overrides")
    recipe = overrides.recipe("tiny-test")
    assert recipe == build_recipe({"preset": "tiny-test", "optim": {"train_steps": 300}, "log_interval": 5})
    assert overrides.merged({"optim": {"lr": 1e-3}}).fields == {"optim": {"train_steps": 300, "lr": 1e-3},
                                                                "log_interval": 5}
    assert overrides.fields == {"optim": {"train_steps": 300}, "log_interval": 5}  # a value: merging copies
    with pytest.raises(ConfigError, match=r"p\.yaml: proxy\.overrides\.optim\.train_step is invalid: OptimConfig has "
                                          r"no field 'train_step'; did you mean 'train_steps'\?"):
        RecipeOverrides.from_dict({"optim": {"train_step": 3}}, source="p.yaml: proxy.overrides")
    with pytest.raises(ConfigError, match=r"proxy\.overrides\.seed is invalid: Recipe has no field 'seed'"):
        RecipeOverrides.from_dict({"seed": 3}, source="p.yaml: proxy.overrides")
    with pytest.raises(ConfigError, match=r"proxy\.overrides\.preset is invalid: the preset has its own field"):
        RecipeOverrides.from_dict({"preset": "tiny-test"}, source="p.yaml: proxy.overrides")
    with pytest.raises(ConfigError, match=r"proxy\.overrides\.eval=3 is invalid: give a mapping of EvalConfig"):
        RecipeOverrides.from_dict({"eval": 3}, source="p.yaml: proxy.overrides")
    with pytest.raises(ConfigError, match=r"optim\.lr_schedule='linear' is invalid: use 'constant' or 'cosine'"):
        RecipeOverrides.from_dict({"optim": {"lr_schedule": "linear"}}).recipe("tiny-test")  # values: with the preset
    hints = typing.get_type_hints(OptimConfig)
    assert typing.get_args(hints["lr_schedule"]) == ("constant", "cosine")
    for cls in (ModelConfig, OptimConfig, EvalConfig, ParallelConfig, PrecisionConfig, CheckpointConfig, Recipe,
                RecipeOverrides):
        assert undocumented_fields(cls) == [], cls.__name__


def test_final_splits_may_be_evaluated_on_more_tokens_than_the_evaluations_during_training():
    """``eval.final_num_tokens_by_domain``: the test split that judges the comparison on every document of the
    target, the validation evaluations during training on a cheap sample; a new recipe (hash), checked like
    ``num_tokens_by_domain``."""
    recipe = build_recipe({"preset": "tiny-test", "eval": {"num_tokens_by_domain": {"qa": 4096},
                                                           "final_num_tokens_by_domain": {"qa": "all"}}})
    ev = recipe.eval
    assert ev.final_splits == ["test"] and ev.split == "valid"
    assert ev.num_tokens_for("qa", "test") == "all"  # the final split: every document
    assert ev.num_tokens_for("qa", "valid") == ev.num_tokens_for("qa") == 4096  # during training: the sample
    assert ev.num_tokens_for("code", "test") == ev.num_tokens_per_domain  # other domains: as before
    only_final = build_recipe({"preset": "tiny-test", "eval": {"final_num_tokens_by_domain": {"qa": "all"}}})
    assert only_final.hash != build_recipe({"preset": "tiny-test"}).hash
    assert only_final.eval.num_tokens_for("qa", "valid") == only_final.eval.num_tokens_per_domain
    assert build_recipe(dict(only_final.to_dict(), preset=None)).hash == only_final.hash  # saved form loads back
    with pytest.raises(ConfigError, match=r"eval\.final_num_tokens_by_domain\.qa=0 is invalid: .*'all'"):
        build_recipe({"preset": "tiny-test", "eval": {"final_num_tokens_by_domain": {"qa": 0}}})
