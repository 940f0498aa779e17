"""TrainConfig: presets load and resolve, overrides, validation errors name field + value + fix."""

from pathlib import Path

import pytest
import yaml

from regmix_megatron.errors import ConfigError
from regmix_megatron.train_config import (
    PRESET_DIR,
    TrainConfig,
    build_train_config,
    list_presets,
    load_preset,
    load_train_config,
    parse_overrides,
)

BASE = {"domains": "data/domains.json", "output_dir": "runs/x"}


def test_all_presets_load():
    names = list_presets()
    for required in ("regmix-1m", "regmix-60m", "regmix-1b", "cpu-proxy", "cpu-target", "tiny-test"):
        assert required in names
    for name in names:
        cfg = build_train_config({**BASE, "preset": name}, source=name)
        assert isinstance(cfg, TrainConfig)
        assert cfg.preset == name


def test_paper_shapes():
    one_m = build_train_config({**BASE, "preset": "regmix-1m"})
    m, o = one_m.model, one_m.optim
    assert (m.num_layers, m.hidden_size, m.num_attention_heads, m.ffn_hidden_size, m.seq_length) == (2, 256, 8, 512,
                                                                                                     2048)
    assert (o.global_batch_size, o.train_steps, o.lr, o.lr_schedule, o.num_warmup_steps) == (512, 1000, 4e-4,
                                                                                             "constant", 100)
    assert (o.adam_beta1, o.adam_beta2, o.weight_decay, o.clip_grad) == (0.9, 0.95, 0.1, 1.0)
    assert one_m.precision.bf16
    sixty = build_train_config({**BASE, "preset": "regmix-60m"}).model
    assert (sixty.num_layers, sixty.hidden_size, sixty.num_attention_heads, sixty.ffn_hidden_size) == (10, 768, 8,
                                                                                                       1536)
    big = build_train_config({**BASE, "preset": "regmix-1b"})
    assert (big.model.num_layers, big.model.hidden_size, big.model.num_attention_heads,
            big.model.ffn_hidden_size) == (22, 2048, 16, 5632)
    assert big.optim.lr_schedule == "cosine" and big.optim.min_lr == 1e-5
    assert big.optim.num_warmup_steps == round(0.04 * big.optim.train_steps)
    tokens = big.optim.train_steps * big.optim.global_batch_size * big.model.seq_length
    assert abs(tokens - 25e9) / 25e9 < 1e-3


def test_cpu_presets_are_fp32_local():
    for name in ("cpu-proxy", "cpu-target", "tiny-test"):
        cfg = build_train_config({**BASE, "preset": name})
        assert not cfg.precision.bf16 and cfg.precision.fp8 is None and cfg.precision.layer_spec == "local"
        assert cfg.model.vocab_size is None  # taken from the tokenizer
        assert cfg.model.seq_length <= 256


def test_run_config_overrides_preset_and_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"preset": "tiny-test", "domains": "idx/domains.json", "output_dir": "out",
                                    "mixture": {"a": 0.5, "b": 0.5}, "optim": {"train_steps": 7}}))
    cfg = load_train_config(path, overrides=parse_overrides(["optim.lr=1e-2", "seed=9", "model.num_layers=4"]))
    assert cfg.optim.train_steps == 7 and cfg.optim.lr == 1e-2 and cfg.seed == 9 and cfg.model.num_layers == 4
    assert cfg.optim.micro_batch_size == load_preset("tiny-test")["optim"]["micro_batch_size"]  # merged, not replaced
    assert cfg.domains == str((tmp_path / "idx/domains.json").resolve())
    assert cfg.output_dir == str((tmp_path / "out").resolve())
    assert cfg.mixture == {"a": 0.5, "b": 0.5}
    cfg2 = load_train_config(path, output_dir=tmp_path / "elsewhere")
    assert cfg2.output_dir == str((tmp_path / "elsewhere").resolve())


@pytest.mark.parametrize("patch, words", [
    ({"optim": {"lr_schedule": "linear"}}, ["optim.lr_schedule", "'linear'", "cosine"]),
    ({"optim": {"global_batch_size": 10, "micro_batch_size": 4}}, ["optim.global_batch_size", "10", "multiple"]),
    ({"model": {"num_attention_heads": 3}}, ["model.num_attention_heads", "3", "divide"]),
    ({"parallel": {"pipeline_model_parallel_size": 3}}, ["parallel.pipeline_model_parallel_size", "3"]),
    ({"optim": {"warmup_steps": 5, "warmup_fraction": 0.1}}, ["warmup_fraction", "not both"]),
    ({"precision": {"fp8": "e5m2"}}, ["precision.fp8", "hybrid"]),
    ({"precision": {"fp8": "hybrid", "layer_spec": "local"}}, ["precision.fp8", "Transformer Engine"]),
    ({"eval": {"eval_interval": 0}}, ["eval.eval_interval", "0"]),
    ({"output_dir": ""}, ["output_dir", "--output-dir"]),
    ({"preset": "nope"}, ["preset", "'nope'", "tiny-test"]),
])
def test_validation_errors_name_field_value_fix(patch, words):
    with pytest.raises(ConfigError) as err:
        build_train_config({**BASE, "preset": "tiny-test", **patch})
    for w in words:
        assert w in str(err.value)


def test_unknown_field_and_bad_type():
    with pytest.raises(ConfigError, match="learning_rate"):
        build_train_config({**BASE, "preset": "tiny-test", "optim": {"learning_rate": 1.0}})
    with pytest.raises(ConfigError, match="train_steps"):
        build_train_config({**BASE, "preset": "tiny-test", "optim": {"train_steps": "many"}})


def test_parse_overrides_errors():
    with pytest.raises(ConfigError, match="--set"):
        parse_overrides(["optim.lr"])
    assert parse_overrides(["a.b=1e30", "c=true", "d=[1, 2]"]) == {"a": {"b": 1e30}, "c": True, "d": [1, 2]}


def test_presets_are_package_data():
    assert PRESET_DIR == Path(__file__).parents[1] / "regmix_megatron" / "presets"
    setup = (Path(__file__).parents[1] / "setup.py").read_text()
    assert "presets/*.yaml" in setup


def test_train_command_prints_resolved_config_and_names_bad_flags(tmp_path, capsys):
    from regmix_megatron.cli import main

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"preset": "cpu-proxy", "domains": "idx/domains.json", "output_dir": "out"}))
    assert main(["train", str(path), "--set", "optim.train_steps=70", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["train_steps"] == 70 and printed["model"]["seq_length"] == 128
    assert main(["train", str(path), "--set", "optim.lr", "--print-config"]) == 2
    assert "--set" in capsys.readouterr().err
    assert main(["train", str(path), "--set", "optim.lr_schedule=linear", "--print-config"]) == 2
    assert "optim.lr_schedule" in capsys.readouterr().err
