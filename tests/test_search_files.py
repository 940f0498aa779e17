"""What a search reads and writes (regmix_megatron/search_files.py), through the ``search`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.search import DOMAINS, TOKENS, fitted_model, write_registry
from regmix_megatron.cli import main
from regmix_megatron.errors import DataError
from regmix_megatron.mixture import Mixture
from regmix_megatron.regression.models import LinearRegressor
from regmix_megatron.search_files import PRIOR_TOKEN_SCALE, load_prior, load_weights_file, tokens_from_mapping


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


def test_prior_from_each_source(tmp_path):
    (tmp_path / "tokens.yaml").write_text("".join(f"{d}: {int(t)}\n" for d, t in zip(DOMAINS, TOKENS)))
    (tmp_path / "regmix.yaml").write_text("train:\n" + "".join(f"  train_the_pile_{d}: {t / TOKENS.sum()}\n"
                                                             for d, t in zip(DOMAINS, TOKENS)))
    counts = load_prior(DOMAINS, tokens_file=str(tmp_path / "tokens.yaml"))
    assert counts.tokens.tolist() == TOKENS.tolist() and not counts.shares_only and counts.registry is None
    shares = load_prior(DOMAINS, prior_file=str(tmp_path / "regmix.yaml"))  # RegMix prefixes stripped
    assert shares.shares_only and shares.tokens.sum() == pytest.approx(PRIOR_TOKEN_SCALE)
    assert shares.mixture.as_array(DOMAINS) == pytest.approx(counts.mixture.as_array(DOMAINS), abs=1e-12)
    assert load_weights_file(tmp_path / "regmix.yaml")["code"] == pytest.approx(2 / 30)
    with pytest.raises(DataError, match=r"missing \['wiki'\], unknown \['www'\]"):
        tokens_from_mapping({**{d: 1 for d in DOMAINS[:-1]}, "www": 1}, DOMAINS, "--prior p")


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
