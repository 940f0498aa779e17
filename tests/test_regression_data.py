"""Regression data (regmix_megatron/regression/data.py): both input formats into a RunTable, targets, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.regression import DOMAINS, regmix_csvs, results_table
from regmix_megatron.errors import DataError
from regmix_megatron.mixtures.mixture import normalize_exact
from regmix_megatron.regression.data import load_regmix_csvs, load_results_table, parse_target_weights
from regmix_megatron.regression.target import Target


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_results_table_loads_and_normalizes_exactly(tmp_path, suffix):
    path, frame = results_table(tmp_path / "results", suffix=suffix)
    table = load_results_table(path)
    assert table.domains == tuple(DOMAINS) and table.num_runs == 80
    np.testing.assert_allclose(table.weights.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    raw = frame[[f"weight/{d}" for d in DOMAINS]].to_numpy()
    np.testing.assert_array_equal(table.weights[5], normalize_exact(raw[5]))
    assert set(table.metric_domains.values()) == set(DOMAINS)
    np.testing.assert_allclose(table.target_values("web"), frame["val_loss/web"])
    assert table.resolve_target("val_loss/web") == "val_loss/web"


def test_regmix_csvs_join_on_index_not_row_order(tmp_path):
    m, l_, mix, loss = regmix_csvs(tmp_path)
    table = load_regmix_csvs(m, l_)
    assert table.domains == tuple(DOMAINS)
    first = loss.set_index("index").loc[mix["index"].iloc[0], "metric/the_pile_web_val_loss"]
    assert table.target_values("metric/the_pile_web_val_loss")[0] == first
    assert table.resolve_target("web") == "metric/the_pile_web_val_loss"
    assert table.loss_column("web") == "metric/the_pile_web_val_loss"
    assert table.domain_of("metric/the_pile_web_val_loss") == table.domain_of("web") == "web"
    assert table.domain_of("nope") is None


def test_optimization_targets_from_the_loss_columns(tmp_path):
    """The target module's value of each run, whatever the table's column names."""
    path, frame = results_table(tmp_path / "results")
    table = load_results_table(path)
    regmix = load_regmix_csvs(*regmix_csvs(tmp_path)[:2])
    weighted = Target.weighted({"web": 3, "code": 1})
    np.testing.assert_allclose(table.values_of(weighted), 0.75 * frame["val_loss/web"] + 0.25 * frame["val_loss/code"],
                               rtol=0, atol=1e-15)
    np.testing.assert_allclose(table.values_of(Target.average()),
                               frame[[f"val_loss/{d}" for d in DOMAINS]].mean(axis=1), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(table.values_of(Target.domain("wiki")), frame["val_loss/wiki"])
    for i in (0, 41):  # each row is exactly what the run's own losses give
        run = {d: frame[f"val_loss/{d}"][i] for d in DOMAINS}
        assert table.values_of(Target.average())[i] == Target.average().value(run)
        assert table.values_of(weighted)[i] == weighted.value(run)
    # the RegMix format's columns are named differently; the same runs give the same targets (rows reordered)
    order = [int(r) - 1 for r in regmix.run_ids]
    np.testing.assert_array_equal(regmix.values_of(weighted), table.values_of(weighted)[order])


def test_missing_target_lists_available(tmp_path):
    path, _ = results_table(tmp_path / "results")
    table = load_results_table(path)
    with pytest.raises(DataError, match=r"no target column 'val_loss/books'; available: \['val_loss/code'"):
        table.resolve_target("val_loss/books")
    with pytest.raises(DataError, match=r"no validation loss column for target domain\(s\) \['books'\]"):
        table.values_of(Target.domain("books"))


def test_mismatched_rows_name_files(tmp_path):
    m, l_, mix, loss = regmix_csvs(tmp_path)
    loss.iloc[:-3].to_csv(l_, index=False)
    with pytest.raises(DataError, match=r"rows do not match.*only in .*train_mix.csv"):
        load_regmix_csvs(m, l_)


def test_mismatched_columns(tmp_path):
    m, l_, mix, loss = regmix_csvs(tmp_path)
    mix.assign(extra=1.0).to_csv(m, index=False)
    with pytest.raises(DataError, match=r"column\(s\) \['extra'\] are not mixture weights"):
        load_regmix_csvs(m, l_)
    mix.to_csv(m, index=False)
    with pytest.raises(DataError, match="no 'train_the_pile_<domain>' mixture columns"):
        load_regmix_csvs(l_, m)  # swapped files
    with pytest.raises(DataError, match="no 'weight/<domain>' columns"):
        load_results_table(m)


def test_bad_weights_and_target_weights(tmp_path):
    path, frame = results_table(tmp_path / "results")
    frame.loc[3, "weight/web"] = -0.1
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"negative weight .* of domain 'web' in run 'r0-3'"):
        load_results_table(path)
    assert parse_target_weights("web=0.7, code=0.3") == {"web": 0.7, "code": 0.3}
    with pytest.raises(DataError, match="not NAME=WEIGHT"):
        parse_target_weights("web")
