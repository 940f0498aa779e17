"""What a search writes (regmix_megatron/search/outputs.py), through the ``search`` command and, for schedules, the
pipeline's composition of the search and its export; ``search.json``'s typed reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.search import DOMAINS, TOKENS, fitted_model, write_registry
from regmix_megatron.cli import main
from regmix_megatron.errors import DataError
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.mixtures.sampler_config import SamplerConfig
from regmix_megatron.mixtures.schedule import Schedule, feature_names, load_schedule
from regmix_megatron.regression.models import LinearRegressor
from regmix_megatron.search.outputs import SearchSummary, read_search
from regmix_megatron.search.pool import SearchConfig


@pytest.fixture(scope="module")
def model():
    return fitted_model()


def test_search_command_writes_mixture_export_and_json(tmp_path, model):
    write_registry(tmp_path)
    model_path = model.save(tmp_path / "model" / "lightgbm.txt")
    Mixture.from_dict({"web": 0.7, "code": 0.3}).save(tmp_path / "hand.json")
    out = tmp_path / "out"
    rc = main(["search", "--model", str(model_path), "--domains", str(tmp_path / "domains.json"),
               "--num-candidates", "3000", "--top-k", "20", "--chunk-size", "1000", "--max-epochs", "1.2",
               "--target-tokens", "10M", "--cap-multiplier", "none", "--baseline-mixture", str(tmp_path / "hand.json"),
               "--output-dir", str(out)])
    assert rc == 0
    doc = json.loads((out / "search.json").read_text())
    assert doc["result"]["within_caps"] and set(doc["baselines"]) == {"natural", "uniform", "target_only", "hand"}
    result = Mixture.load(out / "mixture.json")
    assert result.hash == doc["result"]["hash"]
    upper = doc["bounds"]["upper"]
    assert all(w <= upper[d] + 1e-12 for d, w in result.as_dict().items())
    per_split = json.loads((out / "megatron" / "per_split_data_args.json").read_text())
    assert set(per_split) == {"train", "valid", "test"}
    # a model over other domains is refused, naming the file
    other = LinearRegressor(["a", "b"], "t").fit(np.eye(2)[[0, 1, 0]], np.array([1.0, 2.0, 1.0]))
    other.save(tmp_path / "other.json")
    rc = main(["search", "--model", str(tmp_path / "other.json"), "--domains", str(tmp_path / "domains.json"),
               "--output-dir", str(tmp_path / "bad")])
    assert rc == 2 and not (tmp_path / "bad" / "mixture.json").exists()
    doc_top = np.loadtxt(out / "top_k.csv", delimiter=",", skiprows=1)
    assert doc_top.shape == (20, 3 + len(DOMAINS)) and list(doc_top[:, 0]) == list(range(1, 21))
    assert doc["sampler"]["max_epochs"] == 1.2 and doc["sampler"]["cap_multiplier"] is None


def test_share_prior_refuses_epoch_caps(tmp_path, model, capsys):
    model_path = model.save(tmp_path / "lightgbm.txt")
    Mixture.from_array(DOMAINS, TOKENS).save(tmp_path / "prior.json")
    rc = main(["search", "--model", str(model_path), "--prior", str(tmp_path / "prior.json"), "--max-epochs", "1",
               "--target-tokens", "1M", "--output-dir", str(tmp_path / "out")])
    assert rc == 2 and "--prior gives token shares" in capsys.readouterr().err
    rc = main(["search", "--model", str(model_path), "--prior", str(tmp_path / "prior.json"), "--top-k", "0",
               "--output-dir", str(tmp_path / "out")])
    assert rc == 2 and "--top-k=0 is invalid" in capsys.readouterr().err
    rc = main(["search", "--model", str(model_path), "--prior", str(tmp_path / "prior.json"), "--temperature",
               "99", "--output-dir", str(tmp_path / "out")])
    assert rc == 2 and "--temperature (sampler.temperature)=99.0 is invalid" in capsys.readouterr().err


def test_search_json_records_predicted_loss_and_sd_and_the_chosen_k(tmp_path, model, capsys):
    """With the ensemble: ``predicted_loss`` and ``predicted_sd`` for the result and every baseline, the k that
    ``--top-k auto`` chose and why, an sd per averaged candidate in top_k.csv. With LightGBM: sd null, and
    ``--top-k auto`` refused (it has no uncertainty to choose by)."""
    import pandas as pd

    from helpers.search import fitted_ensemble

    write_registry(tmp_path)
    ensemble_path = fitted_ensemble().save(tmp_path / "model" / "ensemble.json")
    Mixture.from_dict({"web": 0.7, "code": 0.3}).save(tmp_path / "hand.json")
    common = ["--domains", str(tmp_path / "domains.json"), "--num-candidates", "3000", "--chunk-size", "1000",
              "--baseline-mixture", str(tmp_path / "hand.json")]
    rc = main(["search", "--model", str(ensemble_path), *common, "--top-k", "auto", "--output-dir",
               str(tmp_path / "out")])
    assert rc == 0
    doc = json.loads((tmp_path / "out" / "search.json").read_text())
    assert doc["format"] == "regmix-megatron/search/v2" and doc["regressor"] == "ensemble"
    entries = [doc["result"], *doc["baselines"].values()]
    assert set(doc["baselines"]) == {"natural", "uniform", "target_only", "hand"}
    assert all(isinstance(e["predicted_loss"], float) and e["predicted_sd"] > 0 for e in entries)
    assert "predicted" not in doc["result"]
    choice = doc["top_k_choice"]
    assert doc["config"]["top_k"] == "auto" and choice["rule"] == "auto" and choice["k"] == doc["top_k"]["k"]
    assert choice["k"] in [t["k"] for t in choice["tried"]] and "within 1 sd" in choice["reason"]
    top = pd.read_csv(tmp_path / "out" / "top_k.csv")
    assert len(top) == choice["k"] and np.all(top["predicted_sd"] > 0)
    printed = capsys.readouterr().out
    assert f"mean of the best {choice['k']} of 3,000" in printed and "+- " in printed and "top-k:" in printed

    lgbm_path = model.save(tmp_path / "model" / "lightgbm.txt")
    rc = main(["search", "--model", str(lgbm_path), *common, "--top-k", "20", "--output-dir", str(tmp_path / "o2")])
    assert rc == 0
    doc = json.loads((tmp_path / "o2" / "search.json").read_text())
    assert all(e["predicted_sd"] is None for e in [doc["result"], *doc["baselines"].values()])
    assert doc["top_k_choice"]["rule"] == "fixed" and doc["top_k"]["k"] == 20
    assert "predicted_sd" not in pd.read_csv(tmp_path / "o2" / "top_k.csv").columns
    rc = main(["search", "--model", str(lgbm_path), *common, "--top-k", "auto", "--output-dir", str(tmp_path / "o3")])
    assert rc == 2 and "the lightgbm model gives none: use the ensemble" in capsys.readouterr().err
    assert not (tmp_path / "o3" / "search.json").exists()
    with pytest.raises(SystemExit):
        main(["search", "--model", str(lgbm_path), *common, "--top-k", "many", "--output-dir", str(tmp_path / "o4")])
    assert "'many': give a whole number of candidates (e.g. 100) or auto" in capsys.readouterr().err


FRACTIONS = (0.8, 0.2)
NAMES = feature_names(DOMAINS, 2)
SAMPLER = SamplerConfig(seed=5, cap_multiplier=None, max_epochs=1.0, target_tokens=6_000_000)


def loss(x: np.ndarray) -> np.ndarray:
    """Lower with news early and code late; web hurts in both phases."""
    x = np.atleast_2d(x)
    col = {n: i for i, n in enumerate(NAMES)}
    return 4 - 1.0 * x[:, col["p1/news"]] - 2.0 * x[:, col["p2/code"]] + 0.5 * (x[:, col["p1/web"]] + x[:, col["p2/web"]])


def test_a_schedule_search_writes_the_schedule_the_static_mixture_and_both_exports(tmp_path):
    from regmix_megatron.mixtures.sampler import sample

    registry = write_registry(tmp_path)
    runs = sample(TOKENS, SamplerConfig(num_samples=40, seed=2), FRACTIONS, domains=DOMAINS)
    x = np.stack([s.features(DOMAINS) for s in runs])
    model = LinearRegressor(NAMES, "val_loss/code").fit(x, loss(x))
    out = tmp_path / "out"
    summary = search_and_export(model, registry, SAMPLER, SearchConfig(num_candidates=5000, top_k=20, chunk_size=2000,
                                                                       seed=1), out, fractions=FRACTIONS)
    doc = summary.to_json()
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
    assert read_search(out) == summary and summary.schedule.hash == schedule.hash
    assert summary.static.hash == static.hash and summary.predicted()["regmix_static"] == summary.static.predicted_loss


def search_and_export(model, registry, sampler, config, out, *, fractions=(1.0,), baselines=None):
    """The search and its export into one search folder, composed as the ``search`` command and the pipeline's
    search stage compose them."""
    from regmix_megatron.export.files import search_export_files, write_search_export
    from regmix_megatron.search.baselines import baseline_mixtures
    from regmix_megatron.search.outputs import check_search_folder, search_folder, write_search_files
    from regmix_megatron.search.pool import search_model

    names = list(registry.names)
    tokens = registry.tokens_per_domain("train").astype(float)
    check_search_folder(out, search_export_files())
    if baselines is None:
        baselines = baseline_mixtures(Mixture.from_array(names, registry.prior("train")), model.definition)
    outcome = search_model(model, tokens, sampler, config, domains=names, fractions=fractions)
    with search_folder(out, search_export_files()) as stage:
        exported = write_search_export(registry, outcome.schedule, outcome.static_mixture, stage, final_dir=out)
        return write_search_files(stage, out, outcome, model, baselines, config, tokens_per_domain=tokens,
                                  sampler_config=sampler, exported=exported)


def test_a_one_phase_search_writes_exactly_the_mixture_search_files(tmp_path, model):
    """The composition of the one search and the one export for one phase: the files of a mixture search, the same
    as the ``search`` command writes for the same model, prior and pool (no schedule.json, no static/)."""
    registry = write_registry(tmp_path)
    model_path = model.save(tmp_path / "model" / "lightgbm.txt")
    out = tmp_path / "one"
    config = SearchConfig(num_candidates=3000, top_k=20, chunk_size=1000, seed=0)
    summary = search_and_export(model, registry, SamplerConfig(), config, out)
    assert summary.schedule is None and summary.static is None and not (out / "schedule.json").exists()
    assert not (out / "export" / "static").exists() and (out / "export" / "per_split_data_args.json").is_file()
    rc = main(["search", "--model", str(model_path), "--domains", str(tmp_path / "domains.json"), "--num-candidates",
               "3000", "--top-k", "20", "--chunk-size", "1000", "--output-dir", str(tmp_path / "cli")])
    assert rc == 0
    cli = read_search(tmp_path / "cli")
    assert (cli.result, cli.baselines, cli.domains, cli.upper) == (summary.result, summary.baselines, summary.domains,
                                                                   summary.upper)
    for name in ("mixture.json", "top_k.csv", "export/mixture.json", "export/data_path.txt",
                 "export/per_split_data_args.json"):
        assert (out / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    assert sorted(p.name for p in (out / "export").iterdir()) == sorted(p.name for p in (tmp_path / "cli" / "export")
                                                                       .iterdir())


def test_the_typed_reader_names_the_field(tmp_path, model):
    write_registry(tmp_path)
    model_path = model.save(tmp_path / "model" / "lightgbm.txt")
    out = tmp_path / "out"
    assert main(["search", "--model", str(model_path), "--domains", str(tmp_path / "domains.json"),
                 "--num-candidates", "2000", "--top-k", "10", "--chunk-size", "1000", "--output-dir", str(out)]) == 0
    summary = read_search(out)
    doc = json.loads((out / "search.json").read_text())
    assert summary.to_json() == doc and summary.top_k == 10 and summary.top_k_choice.rule == "fixed"
    assert summary.result.hash == Mixture.load(out / "mixture.json").hash and summary.result.predicted_sd is None
    assert summary.export_files == doc["files"]["export"] and summary.predicted()["regmix"] == doc["result"][
        "predicted_loss"]
    doc["result"]["predicted_loss"] = "low"
    with pytest.raises(DataError, match=r"search.json: field 'result.predicted_loss' must be a number, not 'low'"):
        SearchSummary.from_json(doc, str(out / "search.json"))
    with pytest.raises(DataError, match=r"not a search summary"):
        SearchSummary.from_json({"format": "x"}, "s.json")
