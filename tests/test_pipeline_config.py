"""The pipeline config (regmix_megatron/pipeline/config.py): errors name field and fix, paths, the target."""

from __future__ import annotations

import re

import pytest

from regmix_megatron.errors import ConfigError
from regmix_megatron.pipeline.config import PipelineConfig, load_pipeline_config
from regmix_megatron.regression.target import Target
from helpers.pipeline_configs import write_config


def test_config_errors_name_field_and_fix(tmp_path):
    cases = [
        ({"target": "average", "full_scale": {"baselines": ["natural", "target_only"]}}, "full_scale.baselines"),
        ({"full_scale": {"baselines": ["natural", "best"]}}, "full_scale.baselines"),
        ({"sample": {"num_samples": 2}}, "sample.num_samples"),
        ({"sample": {"num_proxies": 2}}, "sample.num_samples"),  # the old name still works (and is checked)
        ({"search": {"num_candidates": 10, "top_k": 20}}, "search.top_k"),
        ({"search": {"num_candidates": "lots"}}, "num_candidates"),
        ({"search": {"pool_size": 10, "num_candidates": 10}}, "pool_size"),  # old and new name together
        ({"executor": {"kind": "kubernetes"}}, "executor.kind"),
        ({"proxy": {"preset": "cpu-proxy", "overrides": {"seed": 3}}}, "proxy.overrides"),
        ({"corpus": {"source": "no/such/dir"}}, "corpus.source"),
        ({"proxy": {"preset": "huge"}}, "preset"),
        ({"proxy": {"overrides": {"optim": {"lr": -1}}}}, "optim.lr"),
        ({"sample": {"sampler": {"temperature": "hot"}}}, "temperature"),
        ({"nonsense": 1}, "nonsense"),
        ({"target": "qa", "corpus": {"eval_only": ["qa"]}, "full_scale": {"baselines": ["target_only"]}},
         "full_scale.baselines"),  # target_only would train on the held-out domain
        ({"corpus": {"eval_only": ["qa", "qa"]}}, "corpus.eval_only"),
        ({"corpus": {"domains": ["code", "qa"], "eval_only": ["qa"]}}, "corpus.domains"),
        ({"full_scale": {"seeds": 0}}, "full_scale.seeds"),
        ({"full_scale": {"rank_threshold": 2}}, "full_scale.rank_threshold"),
        ({"full_scale": {"threshold_sd": 0}}, "full_scale.threshold_sd"),
        ({"proxy": {"noise_mixtures": -1}}, "proxy.noise_mixtures"),
        ({"search": {"regressor": "forest"}}, "search.regressor"),
        ({"full_scale": {"overrides": {"eval": {"final_splits": []}}}}, "full_scale.overrides"),
        ({"proxy": {"overrides": {"eval": {"split": "test", "final_splits": []}}}}, "proxy.overrides"),
        ({"target": {"qa": 0.7, "reference": -1}}, "target.reference"),
    ]
    for data, needle in cases:
        with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
            load_pipeline_config(write_config(tmp_path, data))


def test_config_resolves_paths_against_file(tmp_path):
    (tmp_path / "corp").mkdir()
    cfg = load_pipeline_config(write_config(tmp_path, {"output_dir": "out", "corpus": {"source": "corp"}}))
    assert cfg.output_dir == str(tmp_path / "out")
    assert cfg.corpus.source == str(tmp_path / "corp")
    assert load_pipeline_config(write_config(tmp_path, {}), output_dir=str(tmp_path / "x")).output_dir == \
        str(tmp_path / "x")
    assert PipelineConfig(target="code").target == Target.domain("code")


def test_the_target_is_a_domain_the_average_or_weights(tmp_path):
    cfg = load_pipeline_config(write_config(tmp_path, {"target": "average"}))
    assert cfg.target == Target.average()
    assert cfg.full_scale.baselines == ["natural", "uniform", "best_domain", "best_sweep"]
    cfg = load_pipeline_config(write_config(tmp_path, {"target": "code", "full_scale": {"baselines": ["target_only"]}}))
    assert cfg.full_scale.baselines == ["target_only"]
    cfg = load_pipeline_config(write_config(tmp_path, {
        "target": {"qa": 0.7, "reference": 0.3}, "corpus": {"domains": ["code", "reference"], "eval_only": ["qa"]}}))
    assert cfg.target == Target.weighted({"qa": 0.7, "reference": 0.3})
    assert cfg.all_domains == ["code", "qa", "reference"] and cfg.seeds == [1234, 1235, 1236]
    with pytest.raises(ConfigError, match=r"PipelineConfig\.target='web' is invalid: \['web'\] not among the "
                                          r"domains \['code', 'math'\]"):
        load_pipeline_config(write_config(tmp_path, {"target": "web", "corpus": {"domains": ["code", "math"]}}))
    with pytest.raises(ConfigError, match=r"PipelineConfig\.target"):
        load_pipeline_config(write_config(tmp_path, {"target": ""}))


def test_sampler_slurm_prefixes_and_overrides_are_parsed_once_into_their_types(tmp_path):
    from regmix_megatron.export.files import PathMap
    from regmix_megatron.mixtures.sampler_config import SamplerConfig
    from regmix_megatron.pipeline.config import run_recipe
    from regmix_megatron.runs.recipe import RecipeOverrides
    from regmix_megatron.runs.sweep.slurm import SlurmOptions

    cfg = load_pipeline_config(write_config(tmp_path, {"seed": 5, "sample": {"num_samples": 8,
                                                                              "sampler": {"temperature": 0.7}}}))
    sampler = cfg.sample.sampler
    assert isinstance(sampler, SamplerConfig)
    assert (sampler.num_samples, sampler.seed, sampler.temperature) == (8, 5, 0.7)
    assert sampler.target_tokens is None  # the budget only matters with an epoch cap
    assert cfg.sample.sampler_fields == {"temperature": 0.7}  # as written: the fingerprint and the saved file
    capped = load_pipeline_config(write_config(tmp_path, {"sample": {"sampler": {"max_epochs": 2.0}}}))
    assert capped.sample.sampler.target_tokens == run_recipe(capped, "full_scale").num_train_tokens
    cfg = load_pipeline_config(write_config(tmp_path, {"executor": {"kind": "slurm", "num_parallel": 3,
                                                                     "max_retries": 2,
                                                                     "slurm": {"partition": "cpu"}},
                                                        "export": {"path_prefix": {"data/": "/lustre/data"}},
                                                        "proxy": {"overrides": {"optim": {"train_steps": 70}}}}))
    options = cfg.executor.slurm
    assert isinstance(options, SlurmOptions)
    assert (options.partition, options.throttle, options.max_attempts) == ("cpu", 3, 3)
    assert cfg.export.path_prefix == PathMap(((str(tmp_path / "data"), "/lustre/data"),))  # resolved, then parsed
    assert isinstance(cfg.proxy.overrides, RecipeOverrides) and run_recipe(cfg, "proxy").optim.train_steps == 70
    saved = cfg.to_dict()  # the forms a user writes
    assert saved["executor"]["slurm"] == {"partition": "cpu"}
    assert saved["export"]["path_prefix"] == {str(tmp_path / "data"): "/lustre/data"}
    assert saved["proxy"]["overrides"] == {"optim": {"train_steps": 70}}
    again = load_pipeline_config(write_config(tmp_path, saved))
    assert again.to_dict() == saved and again.executor.slurm == options and again.export.path_prefix == \
        cfg.export.path_prefix
    with pytest.raises(ConfigError, match=r"executor\.slurm=\['qos'\] is invalid: unknown SLURM option"):
        load_pipeline_config(write_config(tmp_path, {"executor": {"kind": "slurm", "slurm": {"qos": "high"}}}))


def test_a_wrong_sampler_slurm_or_prefix_field_names_the_file_and_the_field(tmp_path):
    cases = [({"sample": {"sampler": {"temperature": 20}}}, r"sample\.sampler: sampler\.temperature=20\.0 is invalid: use "
                                                            r"a number in \[0, 10\]"),
             ({"sample": {"sampler": {"temprature": 0.7}}}, r"sample\.sampler: unknown field\(s\) \['temprature'\].*did "
                                                            r"you mean"),
             ({"executor": {"slurm": {"mem": "4 GB"}}}, r"executor\.slurm\.mem='4 GB' is invalid"),
             ({"export": {"path_prefix": {"/data": ""}}}, r"export\.path_prefix\./data='' is invalid: map a path"),
             ({"proxy": {"overrides": {"optim": {"train_step": 3}}}}, r"proxy\.overrides\.optim\.train_step is invalid")]
    for data, pattern in cases:
        path = write_config(tmp_path, data)
        with pytest.raises(ConfigError, match=re.escape(str(path)) + r".*" + pattern):
            load_pipeline_config(path)


def test_the_target_is_parsed_once_and_saved_as_written(tmp_path):
    for written in ("average", "qa", {"qa": 0.7, "reference": 0.3}):
        cfg = load_pipeline_config(write_config(tmp_path, {"target": written}))
        assert cfg.target == Target.parse(written)  # a Target from load on
        assert cfg.to_dict()["target"] == written  # the saved config writes what the user wrote
        assert load_pipeline_config(write_config(tmp_path, cfg.to_dict())).target == cfg.target


def test_the_old_targets_key_loads_with_a_warning_as_full_scale(tmp_path, caplog):
    section = {"preset": "tiny-test", "seeds": 2, "baselines": ["natural", "uniform"],
               "overrides": {"optim": {"train_steps": 60}}}
    old = load_pipeline_config(write_config(tmp_path, {"target": "qa", "targets": section}))
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert warnings == [f"{tmp_path / 'cfg.yaml'}: 'targets' is deprecated, use 'full_scale'"]
    new = load_pipeline_config(write_config(tmp_path, {"target": "qa", "full_scale": section}))
    assert old == new and old.to_dict() == new.to_dict()
    assert "targets" not in new.to_dict()  # saved under the new key
    with pytest.raises(ConfigError, match=r"has both 'targets' and 'full_scale': keep 'full_scale'"):
        load_pipeline_config(write_config(tmp_path, {"targets": section, "full_scale": section}))


def test_an_output_folder_with_the_old_stage_name_is_refused_with_the_fix(tmp_path):
    from regmix_megatron.errors import RegmixError
    from regmix_megatron.pipeline import run_pipeline

    out = tmp_path / "out"
    (out / "stages").mkdir(parents=True)
    (out / "stages" / "targets.json").write_text("{}")
    cfg = load_pipeline_config(write_config(tmp_path, {}), output_dir=str(out))
    with pytest.raises(RegmixError, match=r"stage 'targets' is now 'full_scale'.*give a new output_dir.*delete"):
        run_pipeline(cfg, until="corpus")
    assert not (out / "config.yaml").exists()  # refused before anything is written


def test_old_key_names_still_work_with_a_warning_and_numbers_take_suffixes(tmp_path, caplog):
    cfg = load_pipeline_config(write_config(tmp_path, {"sample": {"num_proxies": 8}, "search": {"pool_size": "1e5"},
                                                        "executor": {"max_retries": 2}}))
    assert (cfg.sample.num_samples, cfg.search.num_candidates, cfg.executor.max_attempts) == (8, 100_000, 3)
    assert sum("deprecated" in r.getMessage() for r in caplog.records) == 3
    new = load_pipeline_config(write_config(tmp_path, {"sample": {"num_samples": 8},
                                                        "search": {"num_candidates": "100k"},
                                                        "executor": {"max_attempts": 3}}))
    assert new.to_dict() == cfg.to_dict()
    million = load_pipeline_config(write_config(tmp_path, {"search": {"num_candidates": "1M"}}))
    assert million.search.num_candidates == 10**6


def test_unknown_keys_get_a_did_you_mean(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['num_candidate'\].*did you mean 'num_candidates'"):
        load_pipeline_config(write_config(tmp_path, {"search": {"num_candidate": 10}}))


def test_proxies_evaluate_only_the_targets_domains(tmp_path):
    from regmix_megatron.pipeline.config import run_recipe

    cfg = load_pipeline_config(write_config(tmp_path, {"target": {"qa": 0.7, "reference": 0.3}}))
    assert run_recipe(cfg, "proxy").eval.domains == ["qa", "reference"]  # cheaper: the fit needs no other loss
    assert run_recipe(cfg, "full_scale").eval.domains is None  # target runs evaluate every domain
    assert run_recipe(cfg, "full_scale").eval.final_splits == ["test"]
    cfg = load_pipeline_config(write_config(tmp_path, {"target": "average"}))
    assert run_recipe(cfg, "proxy").eval.domains is None  # the average needs every domain
    cfg = load_pipeline_config(write_config(tmp_path, {"target": "qa",
                                                        "proxy": {"overrides": {"eval": {"domains": ["x"]}}}}))
    assert run_recipe(cfg, "proxy").eval.domains == ["x"]  # an explicit choice is kept


def test_schedule_section(tmp_path):
    from regmix_megatron.errors import ConfigError
    from regmix_megatron.pipeline.config import PipelineConfig, ScheduleSection
    from regmix_megatron.pipeline.search_stages import sample_inputs

    assert PipelineConfig().schedule_fractions is None
    cfg = PipelineConfig(schedule=ScheduleSection(phases=[0.8, 0.2]))
    assert cfg.schedule_fractions == (0.8, 0.2)
    assert sample_inputs(cfg)["schedule"] == [0.8, 0.2]
    assert "schedule" not in sample_inputs(PipelineConfig())  # a static pipeline keeps its fingerprints
    for phases, match in (([0.8, 0.3], "sum to 1.1: make them sum to 1"), ([1.0], "give 2 to 9 positive"),
                          ([0.5, -0.5, 1.0], "give 2 to 9 positive"), ("0.8,0.2", "give 2 to 9 positive")):
        with pytest.raises(ConfigError, match=f"schedule.phases=.* is invalid: .*{match}"):
            ScheduleSection(phases=phases)


def test_extra_domains_beside_the_built_corpus_are_parsed_once_and_join_eval_only(tmp_path):
    from regmix_megatron.pipeline.config import ExtraDomain
    from regmix_megatron.pipeline.data_stages import built_domains, corpus_inputs, wanted_domains

    (tmp_path / "my_texts").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    cfg = load_pipeline_config(write_config(tmp_path, {
               "target": "mytexts",
               "corpus": {"source": "build", "eval_only": ["qa"], "max_mb_per_domain": 5,
                          "extra_domains": {"mytexts": {"path": "my_texts", "eval_only": True},
                                            "notes": {"path": "notes.txt"}}}}))
    assert cfg.corpus.extra_domains == {"mytexts": ExtraDomain(path=str(tmp_path / "my_texts"), eval_only=True),
                                        "notes": ExtraDomain(path=str(tmp_path / "notes.txt"))}
    assert cfg.corpus.eval_only == ["qa", "mytexts"]
    assert built_domains(cfg) == (sorted([*DEFAULT_BUILT, "qa"]), ["qa"])  # the extras are not built
    assert wanted_domains(cfg) == sorted([*DEFAULT_BUILT, "qa", "mytexts", "notes"])
    inputs = corpus_inputs(cfg)
    assert inputs["extra_domains"]["mytexts"]["eval_only"] and not inputs["extra_domains"]["notes"]["eval_only"]
    (tmp_path / "notes.txt").write_text("changed text")  # an input's change reruns the corpus stage
    assert corpus_inputs(cfg) != inputs
    again = load_pipeline_config(write_config(tmp_path, cfg.to_dict()))  # the resolved config loads as it is
    assert again.corpus.extra_domains == cfg.corpus.extra_domains and again.corpus.eval_only == cfg.corpus.eval_only


DEFAULT_BUILT = ["changelogs", "code", "legal", "literature", "math", "reference", "speeches", "techdocs"]


def test_extra_domains_and_the_cap_are_refused_where_they_would_be_ignored(tmp_path):
    (tmp_path / "corp").mkdir()
    (tmp_path / "my_texts").mkdir()
    cases = [
        ({"corpus": {"source": "corp", "max_mb_per_domain": 5}},
         r"corpus\.max_mb_per_domain=5\.0 is invalid: it caps what `source: build` builds.*remove it"),
        ({"corpus": {"source": "corp", "extra_domains": {"mine": {"path": "my_texts"}}}},
         r"corpus\.extra_domains=\['mine'\] is invalid: extra domains go beside the built corpus.*corpus add"),
        ({"corpus": {"extra_domains": {"qa": {"path": "my_texts"}}}}, r"corpus\.extra_domains.*'qa' is a built-in"),
        ({"corpus": {"extra_domains": {"my texts": {"path": "my_texts"}}}},
         r"corpus\.extra_domains.*letters, digits"),
        ({"corpus": {"extra_domains": {"mine": "my_texts"}}},
         r"corpus\.extra_domains\.mine='my_texts' is invalid: give a mapping"),
        ({"corpus": {"extra_domains": {"mine": {"path": "nowhere"}}}},
         r"corpus\.extra_domains\.mine\.path=.*nowhere.*existing file or directory"),
        ({"corpus": {"extra_domains": {"mine": {"path": "my_texts", "evaluation_only": True}}}},
         r"unknown field\(s\) \['evaluation_only'\] for ExtraDomain.*eval_only"),
        ({"corpus": {"extra_domains": ["mine"]}}, r"corpus\.extra_domains=\['mine'\] is invalid: give a mapping"),
    ]
    for data, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            load_pipeline_config(write_config(tmp_path, data))


def test_the_ensemble_and_top_k_auto(tmp_path):
    cfg = load_pipeline_config(write_config(tmp_path, {"search": {"regressor": "ensemble", "top_k": "auto",
                                                                   "num_bootstrap": 4}}))
    assert (cfg.search.regressor, cfg.search.top_k, cfg.search.num_bootstrap) == ("ensemble", "auto", 4)
    assert load_pipeline_config(write_config(tmp_path, {})).search.num_bootstrap == 10
    cases = [
        ({"search": {"top_k": "auto"}}, "search.top_k='auto' is invalid: 'auto' chooses k by the model's "
                                        "uncertainty, which only the ensemble gives: set search.regressor: ensemble"),
        ({"search": {"regressor": "lightgbm", "top_k": "auto"}}, "(it is 'lightgbm')"),
        ({"search": {"top_k": "most"}}, "search.top_k='most' is invalid: use a number between 1 and "
                                        "search.num_candidates (1000000), or 'auto'"),
        ({"search": {"regressor": "ensemble", "num_bootstrap": -1}}, "search.num_bootstrap=-1 is invalid"),
        ({"search": {"regressor": "ensemble", "top_k": "auto"}, "schedule": {"phases": [0.8, 0.2]}},
         "search.top_k='auto' is invalid: a schedule search averages a fixed number"),
    ]
    for data, needle in cases:
        with pytest.raises(ConfigError, match=re.escape(needle)):
            load_pipeline_config(write_config(tmp_path, data))
