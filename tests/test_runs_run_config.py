"""A run: recipe + data + mixture + seed + output directory; the flat file form; the content-derived run id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from regmix_megatron.errors import ConfigError, DataError
from regmix_megatron.data.manifest import DomainRegistry
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.runs.recipe import build_recipe, load_preset, parse_overrides
from regmix_megatron.runs.run_config import (
    RunConfig,
    build_run_config,
    data_identity,
    evaluation_num_tokens,
    load_run_config,
    run_id,
    run_identity,
    training_data_differences,
)

from sweep_fixtures import DOMAINS, write_domains_json


@pytest.fixture
def domains_json(tmp_path) -> Path:
    return write_domains_json(tmp_path / "data")


def _run(domains_json: Path, tmp_path: Path, **fields) -> RunConfig:
    data = {"preset": "tiny-test", "domains": str(domains_json), "output_dir": str(tmp_path / "out"), "seed": 3,
            "mixture": {"arxiv": 0.5, "code": 0.25, "web": 0.25}}
    return build_run_config({**data, **fields})


def test_a_flat_run_file_splits_into_run_fields_and_recipe(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"preset": "tiny-test", "domains": "idx/domains.json", "output_dir": "out",
                                    "mixture": {"a": 0.5, "b": 0.5}, "optim": {"train_steps": 7}}))
    cfg = load_run_config(path, overrides=parse_overrides(["optim.lr=1e-2", "seed=9", "model.num_layers=4"]))
    assert cfg.recipe.optim.train_steps == 7 and cfg.recipe.optim.lr == 1e-2 and cfg.recipe.model.num_layers == 4
    assert cfg.seed == 9 and cfg.mixture == {"a": 0.5, "b": 0.5}
    # merged over the preset, not replacing its section
    assert cfg.recipe.optim.micro_batch_size == load_preset("tiny-test")["optim"]["micro_batch_size"]
    assert cfg.domains == str((tmp_path / "idx/domains.json").resolve())  # relative to the file
    assert cfg.output_dir == str((tmp_path / "out").resolve())
    assert load_run_config(path, output_dir=tmp_path / "elsewhere").output_dir == str((tmp_path / "elsewhere"))
    flat = cfg.to_dict()
    assert list(flat)[:5] == ["preset", "domains", "mixture", "seed", "output_dir"]
    assert build_run_config(flat).to_dict() == flat  # the file form round-trips


@pytest.mark.parametrize("patch, words", [
    ({"output_dir": ""}, ["output_dir", "--output-dir"]),
    ({"domains": ""}, ["domains", "regmix-megatron preprocess"]),
    ({"seed": -1}, ["seed", "-1"]),
    ({"run_id": "abc"}, ["run_id", "computed from"]),
    ({"optimizer": {}}, ["optimizer", "known fields"]),
    ({"optim": {"lr_schedule": "linear"}}, ["optim.lr_schedule", "cosine"]),
])
def test_run_config_errors_name_field_value_fix(patch, words):
    with pytest.raises(ConfigError) as err:
        build_run_config({"preset": "tiny-test", "domains": "d.json", "output_dir": "o", **patch})
    for w in words:
        assert w in str(err.value)


def test_the_mixture_is_resolved_over_the_registry(domains_json, tmp_path):
    natural = _run(domains_json, tmp_path, mixture=None).resolve()
    registry = DomainRegistry.load(domains_json)
    assert natural.mixture.as_array(registry.names).tolist() == registry.prior().tolist()
    partial = _run(domains_json, tmp_path, mixture={"code": 1.0}).resolve().mixture
    assert partial.domains == DOMAINS and partial.as_dict() == {"arxiv": 0.0, "code": 1.0, "web": 0.0}
    with pytest.raises(DataError, match=r"\['nope'\]"):
        _run(domains_json, tmp_path, mixture={"nope": 1.0}).resolve()


def test_the_run_id_is_content_and_survives_moving_the_data(domains_json, tmp_path):
    first = _run(domains_json, tmp_path).resolve()
    assert len(first.run_id) == 16
    assert first.run_id == run_id(first.config.recipe, first.registry, first.mixture, 3)
    # another folder, another output dir, the same content: the same run
    moved_dir = tmp_path / "moved" / "deeper"
    moved_dir.mkdir(parents=True)
    moved = shutil.copy(domains_json, moved_dir / "domains.json")
    again = _run(Path(moved), tmp_path / "other", output_dir=str(tmp_path / "x")).resolve()
    assert again.run_id == first.run_id
    # a mixture given as a file is the same mixture as inline
    mixture_file = Mixture.from_dict(first.config.mixture).save(tmp_path / "m.json")
    assert _run(domains_json, tmp_path, mixture=str(mixture_file)).resolve().run_id == first.run_id
    # the run's placement and execution are not its identity
    assert _run(domains_json, tmp_path, checkpoint={"interval": 1}, log_interval=1).resolve().run_id == first.run_id


def test_the_run_id_changes_with_recipe_seed_mixture_and_data(domains_json, tmp_path):
    base = _run(domains_json, tmp_path).resolve().run_id
    assert _run(domains_json, tmp_path, optim={"lr": 1e-3}).resolve().run_id != base
    assert _run(domains_json, tmp_path, seed=4).resolve().run_id != base
    assert _run(domains_json, tmp_path, mixture={"arxiv": 0.25, "code": 0.5, "web": 0.25}).resolve().run_id != base
    for edit in (lambda o: o["domains"][0]["splits"]["train"][0].update(num_tokens=1001),
                 lambda o: o["domains"][2]["splits"]["valid"][0].update(num_documents=11),
                 lambda o: o["tokenizer"].update(sha256="1" * 64)):
        obj = json.loads(domains_json.read_text())
        edit(obj)
        other = tmp_path / f"edited-{len(list(tmp_path.glob('edited-*')))}" / "domains.json"
        other.parent.mkdir()
        other.write_text(json.dumps(obj))
        assert _run(other, tmp_path).resolve().run_id != base


def test_data_identity_holds_counts_and_tokenizer_not_paths(domains_json):
    registry = DomainRegistry.load(domains_json)
    text = json.dumps(data_identity(registry))
    assert str(domains_json.parent) not in text and "spm.model" not in text and "_text_document" not in text
    identity = run_identity(build_recipe({"preset": "tiny-test"}), registry,
                            Mixture.from_array(registry.names, registry.prior()), 1)
    assert set(identity) == {"data", "mixture", "recipe", "seed"}


def test_a_saved_run_config_is_relative_and_loads_to_the_same_run(domains_json, tmp_path):
    resolved = _run(domains_json, tmp_path, mixture=None).resolve()
    out = tmp_path / "out"
    path = resolved.save_config(out / "config.yaml")
    saved = yaml.safe_load(path.read_text())
    assert saved["output_dir"] == "." and not Path(saved["domains"]).is_absolute()
    assert saved["mixture"] == resolved.mixture.as_dict()  # the resolved mixture, inline
    reloaded = load_run_config(path).resolve()
    assert reloaded.run_id == resolved.run_id and reloaded.config.output_dir == str(out.resolve())
    # a folder holding the run and the data moves as a whole
    shutil.copytree(tmp_path, tmp_path.parent / f"{tmp_path.name}-moved")
    moved = load_run_config(tmp_path.parent / f"{tmp_path.name}-moved" / "out" / "config.yaml").resolve()
    assert moved.run_id == resolved.run_id


# ---- schedules ---------------------------------------------------------------------------------------------------
def test_a_run_of_a_schedule(domains_json, tmp_path):
    from regmix_megatron.mixtures.schedule import Schedule

    main = {"arxiv": 0.5, "code": 0.25, "web": 0.25}
    final = {"arxiv": 0.1, "code": 0.8, "web": 0.1}
    phases = {"phases": [{"fraction": 0.75, "weights": main}, {"fraction": 0.25, "weights": final}]}
    resolved = _run(domains_json, tmp_path, mixture=None, schedule=phases).resolve()
    schedule = Schedule.from_obj(phases)
    assert resolved.schedule == schedule
    assert resolved.mixture.as_dict() == pytest.approx({"arxiv": 0.4, "code": 0.3875, "web": 0.2125})
    static = _run(domains_json, tmp_path).resolve()
    assert resolved.run_id != static.run_id
    assert resolved.identity()["schedule"] == schedule.hash and "mixture" not in resolved.identity()
    # a one-phase schedule is its mixture: same run id
    one = _run(domains_json, tmp_path, mixture=None, schedule={"phases": [{"fraction": 1.0, "weights": main}]})
    assert one.resolve().run_id == static.run_id

    # the file form: schedule inline (with its hash), mixture empty; read back, the same run
    resolved.save_config(tmp_path / "out" / "config.yaml")
    saved = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert saved["mixture"] is None and saved["schedule"]["hash"] == schedule.hash
    assert load_run_config(tmp_path / "out" / "config.yaml").resolve().run_id == resolved.run_id
    assert "schedule" not in _run(domains_json, tmp_path).to_dict()  # a static run's file is unchanged

    # a schedule file, relative to the config file
    schedule.save(tmp_path / "schedule.json")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"preset": "tiny-test", "domains": str(domains_json), "output_dir": "out",
                                    "seed": 3, "schedule": "schedule.json"}))
    assert load_run_config(path).resolve().run_id == resolved.run_id


def test_schedule_refusals(domains_json, tmp_path):
    phases = {"phases": [{"fraction": 0.5, "weights": {"arxiv": 1.0}}, {"fraction": 0.5, "weights": {"web": 1.0}}]}
    with pytest.raises(ConfigError, match="train.schedule=.* give either mixture .* or schedule"):
        _run(domains_json, tmp_path, schedule=phases)
    bad = {"phases": [{"fraction": 0.5, "weights": {"arxiv": 1.0}}, {"fraction": 0.6, "weights": {"web": 1.0}}]}
    with pytest.raises(ConfigError, match="train.schedule: .*sum to 1.1, not 1"):
        _run(domains_json, tmp_path, mixture=None, schedule=bad).resolve()
    unknown = {"phases": [{"fraction": 1.0, "weights": {"books": 1.0}}]}
    with pytest.raises(DataError, match=r"train.schedule names domain\(s\) \['books'\]"):
        _run(domains_json, tmp_path, mixture=None, schedule=unknown).resolve()


def _with_eval_only(domains_json: Path, name: str) -> DomainRegistry:
    obj = json.loads(domains_json.read_text())
    next(d for d in obj["domains"] if d["name"] == name)["evaluation_only"] = True
    domains_json.write_text(json.dumps(obj))
    return DomainRegistry.load(domains_json)


def test_per_domain_evaluation_sizes_name_only_evaluated_domains(domains_json, tmp_path):
    registry = _with_eval_only(domains_json, "web")
    cfg = _run(domains_json, tmp_path, mixture=None, eval={"domains": ["code"], "num_tokens_by_domain": {"web": "all"}})
    assert evaluation_num_tokens(cfg.recipe, registry) == {"code": 2048, "web": "all"}  # web: evaluation-only
    cfg = _run(domains_json, tmp_path, mixture=None, eval={"domains": ["code"], "num_tokens_by_domain": {"arxiv": 64}})
    with pytest.raises(DataError, match=r"eval\.num_tokens_by_domain names \['arxiv'\], which this run does not "
                                        r"evaluate.*add them to eval\.domains"):
        evaluation_num_tokens(cfg.recipe, registry)
    cfg = _run(domains_json, tmp_path, mixture=None, eval={"domains": ["code"],
                                                           "final_num_tokens_by_domain": {"web": "all"}})
    assert evaluation_num_tokens(cfg.recipe, registry, "test") == {"code": 2048, "web": "all"}
    assert evaluation_num_tokens(cfg.recipe, registry, "valid") == {"code": 2048, "web": 2048}
    cfg = _run(domains_json, tmp_path, mixture=None, eval={"domains": ["code"],
                                                           "final_num_tokens_by_domain": {"arxiv": 64}})
    with pytest.raises(DataError, match=r"eval\.final_num_tokens_by_domain names \['arxiv'\]"):
        evaluation_num_tokens(cfg.recipe, registry, "test")


def test_training_data_differences_ignore_evaluation_only_domains(domains_json):
    trained = data_identity(_with_eval_only(domains_json, "web"))
    assert training_data_differences(trained, trained) == []
    other_eval = json.loads(json.dumps(trained))
    other_eval["domains"]["web"]["valid"] = [[400, 400, 99999]]  # rebuilt evaluation-only splits
    other_eval["domains"]["essays"] = {"valid": [[3, 3, 300]], "evaluation_only": True}  # a new one
    assert training_data_differences(trained, other_eval) == []
    changed = json.loads(json.dumps(trained))
    changed["domains"]["code"]["train"] = [[10, 10, 1001]]
    changed["tokenizer"]["sha256"] = "1" * 64
    assert training_data_differences(trained, changed) == [
        "the tokenizer differs (sha256, vocabulary or end-of-document id)",
        "training domain 'code' has other documents or token counts"]
    flipped = json.loads(json.dumps(trained))
    flipped["domains"]["code"]["evaluation_only"] = True  # no longer trained on: not the same training data
    assert training_data_differences(trained, flipped) == [
        "the training domains differ (['arxiv', 'code'] trained, ['arxiv'] given)"]
