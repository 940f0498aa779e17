"""Search over schedules: a known optimum is found phase by phase, caps hold, the static search uses the same
model, and the files (schedule, static mixture, Megatron exports, search.json) are written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.search import DOMAINS, TOKENS, write_registry
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.regression.models import LinearRegressor
from regmix_megatron.mixtures.sampler_config import SamplerConfig
from regmix_megatron.mixtures.schedule import Schedule, feature_names, load_schedule
from regmix_megatron.mixtures.caps import joint_upper
from regmix_megatron.search.schedule_candidates import run_schedule_search, run_static_search, static_predictor
from regmix_megatron.search.candidates import SearchConfig

FRACTIONS = (0.8, 0.2)
NAMES = feature_names(DOMAINS, 2)


def loss(x: np.ndarray) -> np.ndarray:
    """Lower with news early and code late; web hurts in both phases."""
    x = np.atleast_2d(x)
    col = {n: i for i, n in enumerate(NAMES)}
    return 4 - 1.0 * x[:, col["p1/news"]] - 2.0 * x[:, col["p2/code"]] + 0.5 * (x[:, col["p1/web"]] + x[:, col["p2/web"]])


SAMPLER = SamplerConfig(seed=5, cap_multiplier=None, max_epochs=1.0, target_tokens=6_000_000)


def test_the_known_optimum_is_found_phase_by_phase():
    result, schedule, _ = run_schedule_search(loss, TOKENS, DOMAINS, SAMPLER, FRACTIONS,
                                              SearchConfig(num_candidates=20_000, top_k=50, chunk_size=4096, seed=1))
    first, second = (m.as_dict() for m in schedule.mixtures)
    assert first["news"] > second["news"] and second["code"] > first["code"]
    assert np.all(schedule.overall().as_array() <= joint_upper(TOKENS, SAMPLER) + 1e-12)
    assert result.predicted == pytest.approx(float(loss(schedule.features())[0]))
    assert result.predicted <= np.median(result.top_scores) + 0.05
    static = run_static_search(loss, TOKENS, DOMAINS, SAMPLER, FRACTIONS,
                               SearchConfig(num_candidates=20_000, top_k=50, chunk_size=4096, seed=1))
    assert static.predicted == pytest.approx(float(static_predictor(loss, FRACTIONS)(static.mixture.as_array())[0]))
    assert result.predicted < static.predicted  # a schedule can do what no single mixture can here
    again, same, _ = run_schedule_search(loss, TOKENS, DOMAINS, SAMPLER, FRACTIONS,
                                         SearchConfig(num_candidates=20_000, top_k=50, chunk_size=4096, seed=1))
    assert same.hash == schedule.hash  # deterministic (seed and chunk size define the pool, as for mixtures)


def test_search_and_write_files(tmp_path):
    from regmix_megatron.mixtures.sampler import sample
    from regmix_megatron.search.outputs import schedule_search_and_write

    registry = write_registry(tmp_path)
    runs = sample(TOKENS, SamplerConfig(num_samples=40, seed=2), FRACTIONS, domains=DOMAINS)
    x = np.stack([s.features(DOMAINS) for s in runs])
    model = LinearRegressor(NAMES, "val_loss/code").fit(x, loss(x))
    doc = schedule_search_and_write(model, TOKENS, DOMAINS, SAMPLER, FRACTIONS,
                                    SearchConfig(num_candidates=5000, top_k=20, chunk_size=2000, seed=1),
                                    tmp_path / "out", registry=registry, export_dir="export")
    out = tmp_path / "out"
    schedule = load_schedule(out / "schedule.json")
    static = Mixture.load(out / "mixture.json")
    assert json.loads((out / "search.json").read_text()) == doc
    assert doc["schedule"]["hash"] == schedule.hash and doc["static"]["hash"] == static.hash
    assert doc["domains"] == NAMES and doc["result"]["within_caps"] and doc["schedule"]["within_joint_caps"]
    assert set(doc["baselines"]) == {"natural", "uniform", "target_only", "regmix_static"}
    assert doc["baselines"]["regmix_static"]["predicted_loss"] == pytest.approx(doc["static"]["predicted_loss"])
    assert doc["result"]["weights"] == pytest.approx(dict(zip(NAMES, schedule.features(DOMAINS))))
    assert load_schedule(out / "export" / "schedule.json").hash == schedule.hash
    assert (out / "export" / "phase2" / "per_split_data_args.json").is_file()
    assert Mixture.load(out / "export" / "static" / "mixture.json").hash == static.hash
    assert Schedule.from_mixture(static).hash == static.hash
