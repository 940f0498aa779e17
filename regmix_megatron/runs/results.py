"""The results table of a sweep: its columns, its writer and its reader (the one home of this file schema).

``results.csv`` / ``results.parquet``, one row per completed run. Columns, in this order: ``run_id``,
``mixture_hash``, ``seed``; ``weight/<domain>`` for every training domain in canonical (sorted) order; then
``val_loss/<domain>`` for every evaluated domain (the training domains the runs evaluated and every
evaluation-only domain, which has a loss column and no weight column). A sweep of schedules has the schedule
features ``weight/p<k>/<domain>`` (:func:`regmix_megatron.mixtures.schedule.feature_names`) as its weight columns and its
schedule hashes as ``mixture_hash``. Weights are token fractions (each row sums to 1); losses are the
validation losses of the run's ``result.json``. The CSV writes floats with 17 significant digits, so both files
round-trip exactly. Written by ``sweep collect`` (:func:`write_table`); read by the regression
(:mod:`regmix_megatron.regression.data`) and the report with :func:`read_results`.

Pure core: pandas (imported when a table is built or read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import DataError

RESULTS_CSV = "results.csv"
RESULTS_PARQUET = "results.parquet"
#: The identifier columns, first in every table.
ID_COLUMNS = ("run_id", "mixture_hash", "seed")
#: Column prefix of mixture weights.
WEIGHT_PREFIX = "weight/"
#: Column prefix of per-domain validation losses.
LOSS_PREFIX = "val_loss/"


def weight_column(domain: str) -> str:
    return WEIGHT_PREFIX + domain


def loss_column(domain: str) -> str:
    return LOSS_PREFIX + domain


def columns(domains: Sequence[str], loss_domains: Sequence[str] | None = None,
            weight_names: Sequence[str] | None = None) -> list[str]:
    """Every column of a table with weights over ``domains`` and losses of ``loss_domains`` (default: the
    same domains), in file order; ``weight_names`` are the weight columns' names when they are not the domains
    (schedule features)."""
    loss_domains = domains if loss_domains is None else loss_domains
    weights = domains if weight_names is None else weight_names
    return list(ID_COLUMNS) + [weight_column(d) for d in weights] + [loss_column(d) for d in loss_domains]


def domains_of(names: Iterable[str], prefix: str) -> dict[str, str]:
    """``{column: domain}`` of the columns named ``<prefix><domain>`` (file order)."""
    return {c: c[len(prefix):] for c in names if isinstance(c, str) and c.startswith(prefix) and len(c) > len(prefix)}


# ---- writing ----------------------------------------------------------------------------------------------
def make_table(rows: Iterable[Mapping[str, Any]], domains: Sequence[str], loss_domains: Sequence[str] | None = None,
               weight_names: Sequence[str] | None = None):
    """A table from rows ``{"run_id", "mixture_hash", "seed", "weights": {domain: w}, "val_loss": {domain: l}}``,
    weights over ``domains`` (keyed by ``weight_names`` when given: schedule features) and losses of
    ``loss_domains`` (default: ``domains``).

    Every row must give a weight and a loss for every one of them (a run with a hole is not a row)."""
    import pandas as pd

    loss_domains = domains if loss_domains is None else loss_domains
    weights = list(domains if weight_names is None else weight_names)
    records = []
    for row in rows:
        record = {"run_id": row["run_id"], "mixture_hash": row["mixture_hash"], "seed": row["seed"]}
        record.update({weight_column(d): float(row["weights"][d]) for d in weights})
        record.update({loss_column(d): float(row["val_loss"][d]) for d in loss_domains})
        records.append(record)
    table = pd.DataFrame(records, columns=columns(domains, loss_domains, weight_names))
    table["seed"] = table["seed"].astype("int64")
    return table


def write_table(table, csv_path: str | Path, parquet_path: str | Path | None = None, atomic: bool = True) -> None:
    """Write the CSV (17 significant digits) and optionally the Parquet file, both or neither
    (``atomic=False``: write straight to the paths, which the caller made temporary)."""
    if not atomic:
        from ..fileio import named_as

        with named_as(csv_path):  # a full disk: the error names the file that failed
            table.to_csv(csv_path, index=False, float_format="%.17g")
        if parquet_path is not None:
            with named_as(parquet_path):
                table.to_parquet(parquet_path, index=False)
        return
    from ..fileio import atomic_files

    paths = [p for p in (parquet_path, csv_path) if p is not None]
    with atomic_files(*paths) as temps:
        write_table(table, temps[-1], temps[0] if parquet_path is not None else None, atomic=False)


# ---- reading ----------------------------------------------------------------------------------------------
def read_frame(path: str | Path, what: str = "table"):
    """A CSV or Parquet file (by suffix) as a DataFrame, with errors naming the file (any tabular input)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} {path}: file not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{what} {path}: cannot read ({type(exc).__name__}: {exc}); "
                        "give a CSV or Parquet file") from None


@dataclass(frozen=True)
class Results:
    """A results table as read: the frame and what its columns mean."""

    frame: Any
    """The table (pandas DataFrame) as stored."""
    weight_columns: Mapping[str, str]
    """``{column: domain}`` of the ``weight/`` columns."""
    loss_columns: Mapping[str, str]
    """``{column: domain}`` of the ``val_loss/`` columns."""
    run_ids: tuple[str, ...]
    source: str

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.weight_columns.values())

    def losses(self) -> dict[str, np.ndarray]:
        """``{domain: float64 losses per row}`` (non-numbers become NaN)."""
        import pandas as pd

        return {d: pd.to_numeric(self.frame[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                for c, d in self.loss_columns.items()}


def read_results(path: str | Path) -> Results:
    """Read ``results.csv`` / ``results.parquet``; refuses a file without ``weight/`` columns or with a
    ``run_id`` listed twice. Without a ``run_id`` column the rows are numbered."""
    frame = read_frame(path, "results table")
    source = str(path)
    weights = domains_of(frame.columns, WEIGHT_PREFIX)
    if not weights:
        raise DataError(f"{source}: no '{WEIGHT_PREFIX}<domain>' columns; columns are {list(frame.columns)}. "
                        "Is this a RegMix-format mixture CSV? Then read it with its losses file "
                        "(fit --mixtures FILE --losses FILE)")
    if "run_id" in frame.columns:
        dup = frame["run_id"][frame["run_id"].duplicated()].astype(str).tolist()
        if dup:
            raise DataError(f"{source}: duplicate run_id(s) {dup[:5]}: each run must appear once")
        run_ids = tuple(frame["run_id"].astype(str).tolist())
    else:
        run_ids = tuple(str(i) for i in range(len(frame)))
    return Results(frame=frame, weight_columns=weights, loss_columns=domains_of(frame.columns, LOSS_PREFIX),
                   run_ids=run_ids, source=source)
