"""The results table (regmix_megatron/runs/results.py): columns, writer and reader round-trip exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from regmix_megatron.errors import DataError
from regmix_megatron.mixtures.mixture import Mixture
from regmix_megatron.runs.results import RESULTS_CSV, RESULTS_PARQUET, columns, make_table, read_results, write_table

DOMAINS = ("code", "legal", "math")


def _rows(num_runs: int = 5, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(num_runs):
        m = Mixture.from_array(DOMAINS, rng.dirichlet(np.ones(len(DOMAINS))))
        rows.append({"run_id": f"run{i:02d}", "mixture_hash": m.hash, "seed": 7, "weights": m.as_dict(),
                     "val_loss": {d: float(x) for d, x in zip(DOMAINS, rng.uniform(3, 7, len(DOMAINS)))}})
    return rows


def test_columns_in_file_order():
    assert columns(DOMAINS) == ["run_id", "mixture_hash", "seed", "weight/code", "weight/legal", "weight/math",
                                "val_loss/code", "val_loss/legal", "val_loss/math"]


@pytest.mark.parametrize("name", [RESULTS_CSV, RESULTS_PARQUET])
def test_written_table_reads_back_exactly(tmp_path, name):
    rows = _rows()
    table = make_table(rows, DOMAINS)
    assert list(table.columns) == columns(DOMAINS) and table["seed"].dtype == np.int64
    write_table(table, tmp_path / RESULTS_CSV, tmp_path / RESULTS_PARQUET)
    back = read_results(tmp_path / name)
    assert back.domains == DOMAINS and back.run_ids == tuple(r["run_id"] for r in rows)
    assert back.weight_columns == {f"weight/{d}": d for d in DOMAINS}
    assert back.loss_columns == {f"val_loss/{d}": d for d in DOMAINS}
    losses = back.losses()
    for i, row in enumerate(rows):  # 17 significant digits in the CSV: every float comes back bit for bit
        assert {d: losses[d][i] for d in DOMAINS} == row["val_loss"]
        assert {d: back.frame[f"weight/{d}"][i] for d in DOMAINS} == row["weights"]
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave no temp file


def test_reader_refuses_tables_it_cannot_use(tmp_path):
    pd.DataFrame({"index": [0], "train_the_pile_x": [1.0]}).to_csv(tmp_path / "regmix.csv", index=False)
    with pytest.raises(DataError, match=r"no 'weight/<domain>' columns.*--mixtures FILE --losses FILE"):
        read_results(tmp_path / "regmix.csv")
    table = make_table(_rows(2), DOMAINS)
    table.loc[1, "run_id"] = table.loc[0, "run_id"]
    table.to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(DataError, match=r"duplicate run_id\(s\) \['run00'\]"):
        read_results(tmp_path / "dup.csv")
    with pytest.raises(DataError, match="results table .*missing.csv: file not found"):
        read_results(tmp_path / "missing.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot read"):
        read_results(tmp_path / "bad.parquet")


def test_rows_without_ids_are_numbered(tmp_path):
    make_table(_rows(3), DOMAINS).drop(columns=["run_id"]).to_csv(tmp_path / "t.csv", index=False)
    assert read_results(tmp_path / "t.csv").run_ids == ("0", "1", "2")
