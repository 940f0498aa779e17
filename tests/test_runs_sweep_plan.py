"""Planning a sweep: content-derived run ids, idempotent re-planning, refusals, and a sweep folder that moves."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from regmix_megatron.errors import DataError, RegmixError
from regmix_megatron.data.manifest import DomainRegistry
from regmix_megatron.runs.run_config import load_run_config, run_id
from regmix_megatron.mixtures.mixture import read_mixtures
from regmix_megatron.runs.sweep.plan import Sweep, SweepError, plan_from_files, plan_sweep

from helpers.indexed_files import write_registry_files
from sweep_fixtures import (DOMAINS, planned, random_mixtures, write_domains_json,  # noqa: F401
                            write_mixtures, write_proxy_config)


def test_plan_ids_are_deterministic_and_replanning_is_idempotent(tmp_path, planned):
    sweep = planned
    registry = DomainRegistry.load(sweep.domains_path)
    assert len(sweep.runs) == 4 and len(set(sweep.run_ids())) == 4
    for run in sweep.runs:
        assert run.run_id == run_id(sweep.recipe, registry, run.mixture, 7)
        cfg = yaml.safe_load(sweep.run_config_path(run.run_id).read_text())
        assert cfg["mixture"] == run.mixture.as_dict() and cfg["seed"] == 7 and "run_id" not in cfg
        assert cfg["output_dir"] == "."  # relative to the run directory, like every path in it
        # the run config is a valid config of the real trainer, and it is the same run
        resolved = load_run_config(sweep.run_config_path(run.run_id)).resolve()
        assert resolved.run_id == run.run_id and resolved.config.output_dir == str(sweep.run_dir(run.run_id))
    before = (sweep.root / "sweep.json").read_bytes()
    again, created = plan_from_files(tmp_path / "mixtures.jsonl", tmp_path / "proxy.yaml", tmp_path / "sweep")
    assert not created and again.run_ids() == sweep.run_ids()
    assert (sweep.root / "sweep.json").read_bytes() == before
    assert Sweep.load(sweep.root).run_ids() == sweep.run_ids()
    assert Sweep.load(sweep.root).recipe.to_dict() == sweep.recipe.to_dict()
    # another seed is another set of runs
    other, _ = plan_from_files(tmp_path / "mixtures.jsonl", tmp_path / "proxy.yaml", tmp_path / "other", seed=8)
    assert not set(other.run_ids()) & set(sweep.run_ids())


def test_a_moved_sweep_folder_keeps_its_run_ids_and_replans_as_itself(tmp_path, planned):
    moved = tmp_path.parent / f"{tmp_path.name}-moved"
    shutil.copytree(tmp_path, moved)  # the whole project: data, mixtures, config, sweep
    again = Sweep.load(moved / "sweep")
    assert again.run_ids() == planned.run_ids()
    assert again.domains_path == str((moved / "data" / "domains.json").resolve())
    same, created = plan_from_files(moved / "mixtures.jsonl", moved / "proxy.yaml", moved / "sweep")
    assert not created and same.run_ids() == planned.run_ids()
    for rid in planned.run_ids():
        assert load_run_config(again.run_config_path(rid)).resolve().run_id == rid
    # the same data under another path, planned afresh: the same ids
    elsewhere = shutil.copytree(tmp_path / "data", tmp_path / "data-copy") / "domains.json"
    fresh, _ = plan_sweep(tmp_path / "fresh", [r.mixture for r in planned.runs], planned.recipe, elsewhere, 7)
    assert fresh.run_ids() == planned.run_ids()


def test_the_run_ids_follow_the_token_counts(tmp_path, planned):
    obj = json.loads((tmp_path / "data" / "domains.json").read_text())
    obj["domains"][1]["splits"]["train"][0]["num_tokens"] += 1
    (tmp_path / "data2").mkdir()
    (tmp_path / "data2" / "domains.json").write_text(json.dumps(obj))
    write_registry_files(tmp_path / "data2" / "domains.json")  # other data: its files hold the new count
    other, _ = plan_sweep(tmp_path / "other", [r.mixture for r in planned.runs], planned.recipe,
                          tmp_path / "data2" / "domains.json", 7)
    assert not set(other.run_ids()) & set(planned.run_ids())
    with pytest.raises(SweepError, match="planned runs"):  # into the first sweep: refused
        plan_sweep(planned.root, [r.mixture for r in planned.runs], planned.recipe,
                   tmp_path / "data2" / "domains.json", 7)


def test_planning_other_inputs_into_a_sweep_dir_is_refused(tmp_path, planned):
    write_mixtures(tmp_path / "more.jsonl", random_mixtures(DOMAINS, 5, seed=1))
    with pytest.raises(SweepError, match="already holds a different sweep"):
        plan_from_files(tmp_path / "more.jsonl", tmp_path / "proxy.yaml", planned.root)
    write_proxy_config(tmp_path / "proxy2.yaml", planned.domains_path, optim={"train_steps": 5})
    with pytest.raises(SweepError, match=r"fields differing: \['optim'\]"):
        plan_from_files(tmp_path / "mixtures.jsonl", tmp_path / "proxy2.yaml", planned.root)
    with pytest.raises(SweepError, match="seed 7 vs 9"):
        plan_from_files(tmp_path / "mixtures.jsonl", tmp_path / "proxy.yaml", planned.root, seed=9)
    (tmp_path / "notasweep").mkdir()
    (tmp_path / "notasweep" / "x.txt").write_text("x")
    with pytest.raises(SweepError, match="not a sweep directory"):
        plan_from_files(tmp_path / "mixtures.jsonl", tmp_path / "proxy.yaml", tmp_path / "notasweep")


def test_a_sweep_of_an_earlier_format_or_an_edited_one_is_refused(planned):
    path = planned.root / "sweep.json"
    obj = json.loads(path.read_text())
    path.write_text(json.dumps(dict(obj, format="regmix-megatron/sweep/v1")))
    with pytest.raises(SweepError, match="earlier version"):  # the pipeline plans such a sweep afresh
        Sweep.load(planned.root)
    obj["recipe"]["optim"]["lr"] = 1.0
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError, match="recipe hash"):
        Sweep.load(planned.root)


def test_mixture_file_errors_name_the_line(tmp_path):
    m = random_mixtures(DOMAINS, 2)
    good = json.dumps(m[0].to_json_obj())
    p = tmp_path / "m.jsonl"
    p.write_text(good + "\n" + good + "\n")
    with pytest.raises(DataError, match=r"m.jsonl:2: the same mixture as line 1"):
        read_mixtures(p)
    bad = dict(m[1].to_json_obj(), hash="0123456789abcdef")
    p.write_text(good + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"m.jsonl:2: stated hash"):
        read_mixtures(p)
    p.write_text(good + "\n{oops\n")
    with pytest.raises(DataError, match=r"m.jsonl:2: invalid JSON"):
        read_mixtures(p)
    p.write_text(json.dumps({"weights": {"arxiv": 0.5, "nope": 0.5}}) + "\n")
    domains_json = write_domains_json(tmp_path / "d")
    cfg = write_proxy_config(tmp_path / "c.yaml", domains_json)
    with pytest.raises(DataError, match=r"unknown \['nope'\], missing \['code', 'web'\]"):
        plan_from_files(p, cfg, tmp_path / "s")


def test_plan_validates_the_proxy_config_with_the_trainer(tmp_path):
    domains_json = write_domains_json(tmp_path / "d")
    mixtures = write_mixtures(tmp_path / "m.jsonl", random_mixtures(DOMAINS, 2))
    cfg = write_proxy_config(tmp_path / "c.yaml", domains_json, optim={"train_steps": -1})
    with pytest.raises(RegmixError, match=r"optim.train_steps=-1"):
        plan_from_files(mixtures, cfg, tmp_path / "s")
    cfg = write_proxy_config(tmp_path / "c2.yaml", tmp_path / "missing.json")
    with pytest.raises(RegmixError, match=r"domains=.*does not exist"):
        plan_from_files(mixtures, cfg, tmp_path / "s")
    cfg = write_proxy_config(tmp_path / "c3.yaml", domains_json, seed="seven")
    with pytest.raises(RegmixError, match=r"seed='seven'"):
        plan_from_files(mixtures, cfg, tmp_path / "s")
    # per-run fields in the proxy config are set by the sweep: ignored, not an error
    cfg = write_proxy_config(tmp_path / "c4.yaml", domains_json, output_dir="x", mixture={"arxiv": 1.0})
    sweep, _ = plan_from_files(mixtures, cfg, tmp_path / "s")
    assert len(sweep.runs) == 2 and sweep.seed == 7


def test_a_sound_run_config_is_kept_for_mixture_and_schedule_runs_alike(tmp_path):
    """restore_run_config compares what a config.yaml trains with the plan, mixture or schedule: a schedule run's sound
    config.yaml is kept (it was set aside as config.yaml.corrupt-1 and rewritten at every attempt before), and one
    that trains another schedule is set aside."""
    from regmix_megatron.mixtures.mixture import Mixture
    from regmix_megatron.mixtures.schedule import Schedule
    from regmix_megatron.runs.sweep.plan import build_sweep

    domains_json = write_domains_json(tmp_path / "data")
    from regmix_megatron.runs.sweep.plan import read_proxy_config

    recipe = read_proxy_config(write_proxy_config(tmp_path / "proxy.yaml", domains_json))[0]
    a = Mixture.from_array(DOMAINS, [0.2, 0.3, 0.5])
    b = Mixture.from_array(DOMAINS, [0.6, 0.3, 0.1])
    two = Schedule.from_phases([(0.5, a), (0.5, b)])
    sweep, _ = plan_sweep(tmp_path / "s", [a, two], recipe, domains_json, 7)
    for run in sweep.runs:
        assert sweep.restore_run_config(run.run_id) == []
        assert not list(sweep.run_dir(run.run_id).glob("config.yaml.corrupt-*"))
    other = build_sweep(tmp_path / "o", [Schedule.from_phases([(0.5, b), (0.5, a)])], recipe, domains_json, 7)
    scheduled = next(r for r in sweep.runs if not r.schedule.is_static)
    other.write_run_config(other.runs[0])
    shutil.copy(other.run_config_path(other.runs[0].run_id), sweep.run_config_path(scheduled.run_id))
    assert "defines another run" in sweep.restore_run_config(scheduled.run_id)[0]
    assert load_run_config(sweep.run_config_path(scheduled.run_id)).resolve().run_id == scheduled.run_id
