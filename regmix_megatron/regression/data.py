"""Regression data: mixture weights (features) and per-run metrics (targets), from two formats.

(a) Our sweep results table (:mod:`regmix_megatron.results`): ``results.csv`` / ``results.parquet`` with
    ``run_id``, ``weight/<domain>`` and ``val_loss/<domain>`` columns, one row per completed run.
(b) The RegMix published format: a mixture CSV (``index`` + ``train_the_pile_<domain>``) and a loss CSV
    (``index`` + ``metric/the_pile_<domain>_val_loss``) joined on ``index``.

Either way the result is a :class:`RunTable`: domains in canonical (sorted) order, a float64 weight matrix whose
rows are normalized exactly (``mixture.normalize_exact``) before they become features, and a table of metric
columns (any numeric column that is not a weight or an id). Metric columns are picked by name (or by domain name
when that is unambiguous); an optimization target (:class:`regmix_megatron.target.Target`: the average, one
domain, or a weighted sum) is computed from the per-domain loss columns by the target itself.

Every row follows the mixture rule (:func:`regmix_megatron.mixture.check_sum`): its weights sum to 1 within 1e-3,
else the file is refused naming the rows, unless the user passes ``--renormalize`` (the RegMix authors' published
CSVs are rounded to 3 decimals, so some of their rows sum to 0.996-1.003 and need it). In a results table, a
domain with a loss column but no weight column is refused when the weights then do not sum to 1 (its weight
would silently count as 0); when they do, it is an evaluation-only domain (evaluated, never trained on).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, RegmixError
from ..mixture import RENORMALIZE_FLAG, SUM_TOLERANCE, MixtureError, normalize_exact
from ..results import ID_COLUMNS as RESULT_ID_COLUMNS
from ..results import LOSS_PREFIX, WEIGHT_PREFIX, read_frame, read_results
from ..target import Target

logger = logging.getLogger(__name__)

#: RegMix published format: mixture columns and loss columns.
REGMIX_WEIGHT_PREFIXES = ("train_the_pile_", "train_")
REGMIX_LOSS_PATTERN = re.compile(r"^metric/(?:the_pile_)?(?P<domain>.+)_val_loss$")
#: Identifier columns that are neither features nor targets.
ID_COLUMNS = RESULT_ID_COLUMNS + ("index", "status")
#: Default: refuse a target whose fraction of NaN/inf values (excluded runs) exceeds this.
DEFAULT_MAX_NAN_FRACTION = 0.1


@dataclass(frozen=True)
class RunTable:
    """Runs with their mixtures (features) and metrics (candidate targets)."""

    domains: tuple[str, ...]
    """Canonical (sorted) domain order: the feature columns of :attr:`weights`."""
    weights: np.ndarray
    """(num_runs, num_domains) float64, each row >= 0 and summing to exactly 1."""
    metrics: pd.DataFrame
    """(num_runs, num_metrics) metric columns under their original names, same row order as ``weights``."""
    run_ids: tuple[str, ...]
    source: str
    """Human-readable origin (file names), used in error messages."""
    metric_domains: Mapping[str, str] = field(default_factory=dict)
    """Metric column -> domain name, for per-domain loss columns (``val_loss/x``, ``metric/the_pile_x_val_loss``)."""

    @property
    def num_runs(self) -> int:
        return int(self.weights.shape[0])

    @property
    def num_domains(self) -> int:
        return len(self.domains)

    def subset(self, rows: np.ndarray) -> "RunTable":
        rows = np.asarray(rows)
        return RunTable(
            domains=self.domains,
            weights=self.weights[rows],
            metrics=self.metrics.iloc[rows].reset_index(drop=True),
            run_ids=tuple(self.run_ids[i] for i in np.arange(self.num_runs)[rows]),
            source=self.source,
            metric_domains=dict(self.metric_domains),
        )

    # ---- targets ------------------------------------------------------------------------------------
    def resolve_target(self, name: str) -> str:
        """A metric column from its exact name, or from a domain name when exactly one loss column matches."""
        if name in self.metrics.columns:
            return name
        by_domain = [c for c, d in self.metric_domains.items() if d == name]
        if len(by_domain) == 1:
            return by_domain[0]
        raise DataError(
            f"{self.source}: no target column {name!r}; available: {list(self.metrics.columns)} "
            f"(or a domain name among {sorted(set(self.metric_domains.values()))}); fix --target"
        )

    def target_values(self, name: str) -> np.ndarray:
        """Float64 values of one metric column (``name`` resolved with :meth:`resolve_target`)."""
        column = self.resolve_target(name)
        return self.metrics[column].to_numpy(dtype=np.float64, na_value=np.nan)

    def domain_of(self, name: str) -> str | None:
        """The domain of a per-domain loss column, given by column or domain name; None if it is neither."""
        try:
            return self.metric_domains.get(self.resolve_target(name))
        except DataError:
            return None

    def loss_column(self, domain: str) -> str:
        """The table's loss column of ``domain`` (``val_loss/x``, ``metric/the_pile_x_val_loss``)."""
        columns = [c for c, d in self.metric_domains.items() if d == domain]
        if len(columns) != 1:
            raise DataError(f"{self.source}: {len(columns)} loss columns for domain {domain!r} ({columns}); "
                            "expected exactly one")
        return columns[0]

    def losses_by_domain(self) -> dict[str, np.ndarray]:
        """``{domain: float64 losses per run}`` from the per-domain loss columns."""
        if not self.metric_domains:
            raise DataError(f"{self.source}: no per-domain loss columns "
                            f"(expected {LOSS_PREFIX}<domain> or metric/the_pile_<domain>_val_loss); "
                            "pick a single column with --target")
        return {d: self.metrics[self.loss_column(d)].to_numpy(dtype=np.float64, na_value=np.nan)
                for d in dict.fromkeys(self.metric_domains.values())}

    def values_of(self, target: Target) -> np.ndarray:
        """The optimization target's value for every run (NaN where a loss it needs is not finite)."""
        return target.values(self.losses_by_domain(), where=self.source)


# ---- loading ----------------------------------------------------------------------------------------------
def _normalized_weights(raw: np.ndarray, domains: Sequence[str], run_ids: Sequence[str], source: str,
                        renormalize: bool = False) -> np.ndarray:
    if not np.all(np.isfinite(raw)):
        bad_row, bad_col = np.argwhere(~np.isfinite(raw))[0]
        raise DataError(f"{source}: weight of domain {domains[bad_col]!r} in run {run_ids[bad_row]!r} is not "
                        "finite: fix or drop that run")
    if np.any(raw < 0):
        bad_row, bad_col = np.argwhere(raw < 0)[0]
        raise DataError(f"{source}: negative weight {raw[bad_row, bad_col]} of domain {domains[bad_col]!r} in run "
                        f"{run_ids[bad_row]!r}: weights are token fractions >= 0")
    sums = raw.sum(axis=1)
    if np.any(sums <= 0):
        bad = int(np.argmax(sums <= 0))
        raise DataError(f"{source}: run {run_ids[bad]!r} has all weights zero: drop that run")
    off = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOLERANCE * (1 + 1e-9))
    if off.size and not renormalize:
        shown = ", ".join(f"run {run_ids[i]!r} sums to {sums[i]:.6g}" for i in off[:3])
        raise MixtureError(f"{source}: the mixture weights of {off.size} of {len(sums)} runs do not sum to 1 within "
                           f"{SUM_TOLERANCE:g} ({shown}{', ...' if off.size > 3 else ''}): fix the weights (is a "
                           f"domain column missing?), or pass {RENORMALIZE_FLAG} to rescale each run's weights to "
                           "sum to 1 on purpose")
    return np.stack([normalize_exact(row) for row in raw]) if raw.shape[0] else raw.astype(np.float64)


def _build(frame: pd.DataFrame, weight_columns: Mapping[str, str], metric_domains: Mapping[str, str],
           run_ids: Sequence[str], source: str, renormalize: bool = False) -> RunTable:
    """``weight_columns``: column -> domain. Reorders to canonical domain order and normalizes rows."""
    if not weight_columns:
        raise DataError(f"{source}: no mixture weight columns found (expected '{WEIGHT_PREFIX}<domain>' or "
                        "'train_the_pile_<domain>'); columns are " + str(list(frame.columns)))
    domains = sorted(weight_columns.values())
    if len(set(domains)) != len(domains):
        raise DataError(f"{source}: several weight columns map to the same domain: {dict(weight_columns)}")
    col_of = {d: c for c, d in weight_columns.items()}
    raw = frame[[col_of[d] for d in domains]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    weights = _normalized_weights(raw, domains, run_ids, source, renormalize)
    skip = set(weight_columns) | set(ID_COLUMNS)
    metric_cols = [c for c in frame.columns if c not in skip]
    metrics = pd.DataFrame(index=range(len(frame)))
    for c in metric_cols:
        values = pd.to_numeric(frame[c], errors="coerce")
        if values.notna().any() or c in metric_domains:
            metrics[c] = values.to_numpy(dtype=np.float64, na_value=np.nan)
    return RunTable(
        domains=tuple(domains),
        weights=weights,
        metrics=metrics,
        run_ids=tuple(str(r) for r in run_ids),
        source=source,
        metric_domains={c: d for c, d in metric_domains.items() if c in metrics.columns},
    )


def _weighted_domains(weight_names) -> set[str]:
    """The domains that have weights: the names, or the domains of a schedule's features (``p<k>/<domain>``)."""
    from ..schedule import parse_feature_names

    parsed = parse_feature_names(list(weight_names))
    return set(parsed[1]) if parsed is not None else set(weight_names)


def load_results_table(path: str | Path, *, renormalize: bool = False) -> RunTable:
    """Our sweep results table (CSV or Parquet, :func:`regmix_megatron.results.read_results`)."""
    results = read_results(path)
    missing = sorted(set(results.loss_columns.values()) - _weighted_domains(results.weight_columns.values()))
    if missing and not _rows_sum_to_one(results.frame[list(results.weight_columns)]):
        # a loss column without a weight column is an evaluation-only domain when the weights still sum to 1
        raise DataError(f"{results.source}: domain(s) {missing} have a '{LOSS_PREFIX}<domain>' column but no "
                        f"'{WEIGHT_PREFIX}<domain>' column: a mixture column is missing (its weight would count as "
                        "0); restore it (re-collect the sweep with `regmix-megatron sweep collect`)")
    return _build(results.frame, results.weight_columns, results.loss_columns, results.run_ids, results.source,
                  renormalize)


def _rows_sum_to_one(weights: pd.DataFrame) -> bool:
    sums = weights.apply(pd.to_numeric, errors="coerce").sum(axis=1)
    return bool(np.allclose(sums.to_numpy(dtype=np.float64), 1.0, atol=SUM_TOLERANCE))


def regmix_domain(column: str) -> str | None:
    """Domain of a RegMix mixture column (``train_the_pile_arxiv`` -> ``arxiv``), None if not one."""
    for prefix in REGMIX_WEIGHT_PREFIXES:
        if column.startswith(prefix) and len(column) > len(prefix):
            return column[len(prefix):]
    return None


def load_regmix_csvs(mixtures_path: str | Path, losses_path: str | Path, *, renormalize: bool = False) -> RunTable:
    """The RegMix published format: mixture CSV and loss CSV, joined on ``index``."""
    mixtures = read_frame(mixtures_path, "mixtures file")
    losses = read_frame(losses_path, "losses file")
    source = f"{mixtures_path} + {losses_path}"
    for frame, path, flag in ((mixtures, mixtures_path, "--mixtures"), (losses, losses_path, "--losses")):
        if "index" not in frame.columns:
            raise DataError(f"{path} ({flag}): no 'index' column to join mixtures and losses on; "
                            f"columns are {list(frame.columns)[:8]}...")
        dup = frame["index"][frame["index"].duplicated()].tolist()
        if dup:
            raise DataError(f"{path} ({flag}): duplicate index value(s) {dup[:5]}: each run must appear once")
    weight_columns = {c: regmix_domain(c) for c in mixtures.columns if regmix_domain(c)}
    if not weight_columns:
        raise DataError(f"{mixtures_path} (--mixtures): no 'train_the_pile_<domain>' mixture columns; columns are "
                        f"{list(mixtures.columns)}. Is it a loss file? Pass mixtures to --mixtures, losses to --losses")
    stray = [c for c in mixtures.columns if c != "index" and c not in weight_columns]
    if stray:
        raise DataError(f"{mixtures_path} (--mixtures): column(s) {stray} are not mixture weights "
                        "('train_the_pile_<domain>'): remove them")
    clash = sorted(set(losses.columns) & set(mixtures.columns) - {"index"})
    if clash:
        raise DataError(f"{losses_path} (--losses): column(s) {clash} also appear in {mixtures_path}: "
                        "the losses file must hold metrics only (did you pass the same file twice?)")
    only_m = sorted(set(mixtures["index"]) - set(losses["index"]))
    only_l = sorted(set(losses["index"]) - set(mixtures["index"]))
    if only_m or only_l:
        raise DataError(
            f"rows do not match: index value(s) {only_m[:5]}{'...' if len(only_m) > 5 else ''} "
            f"({len(only_m)}) only in {mixtures_path}, {only_l[:5]}{'...' if len(only_l) > 5 else ''} "
            f"({len(only_l)}) only in {losses_path}; give the mixtures and losses of the same runs"
        )
    frame = mixtures.merge(losses, on="index", how="inner", validate="one_to_one")
    metric_domains = {}
    for c in losses.columns:
        m = REGMIX_LOSS_PATTERN.match(str(c))
        if m:
            metric_domains[c] = m.group("domain")
    return _build(frame, weight_columns, metric_domains, frame["index"].astype(str).tolist(), source, renormalize)


def load_runs(results: str | Path | None = None, mixtures: str | Path | None = None,
              losses: str | Path | None = None, *, what: str = "training", renormalize: bool = False) -> RunTable:
    """Either a results table, or a mixtures + losses pair (exactly one of the two forms). Rows whose weights do
    not sum to 1 are refused unless ``renormalize`` (the ``--renormalize`` flag)."""
    if results is not None and (mixtures is not None or losses is not None):
        raise DataError(f"{what} data: give either a results table or --mixtures/--losses, not both")
    if results is not None:
        return load_results_table(results, renormalize=renormalize)
    if mixtures is None or losses is None:
        raise DataError(f"{what} data: a mixtures file needs its losses file and vice versa "
                        "(--mixtures FILE --losses FILE), or give a results table")
    return load_regmix_csvs(mixtures, losses, renormalize=renormalize)


# ---- checks -----------------------------------------------------------------------------------------------
def clean_target(values: np.ndarray, target: str, source: str,
                 max_nan_fraction: float = DEFAULT_MAX_NAN_FRACTION) -> np.ndarray:
    """Boolean mask of usable rows; NaN/inf values are excluded with a logged count, refused above the limit."""
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    num_bad = int((~ok).sum())
    if values.size == 0:
        raise DataError(f"{source}: no runs")
    if num_bad:
        fraction = num_bad / values.size
        if fraction > max_nan_fraction:
            raise DataError(
                f"{source}: target {target!r} is NaN/inf in {num_bad} of {values.size} runs "
                f"({fraction:.0%} > {max_nan_fraction:.0%}); rerun or drop the failed runs, or raise "
                "--max-nan-fraction if you accept fitting on the rest"
            )
        logger.warning("%s: excluded %d of %d runs whose %s is NaN/inf", source, num_bad, values.size, target)
    return ok


def mixture_groups(weights: np.ndarray) -> np.ndarray:
    """One group id per run (0, 1, ... in order of first appearance): runs whose feature rows are identical share
    one. The rows are exactly normalized mixtures (or, for a sweep of schedules, the schedule features, which
    determine the schedule), so a group is one mixture (one schedule hash): the noise-seed repeats of a sweep,
    or a run retrained under a new id. Cross-validation never splits a group (:mod:`.fitting`)."""
    weights = np.ascontiguousarray(np.asarray(weights, dtype=np.float64))
    if weights.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    rows = weights.view(np.dtype((np.void, weights.dtype.itemsize * weights.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # relabel groups by first appearance
    return order[inverse.ravel()].astype(np.int64)


def kfold_indices(num_runs: int, num_folds: int, seed: int, groups: np.ndarray | None = None) -> list[np.ndarray]:
    """Shuffled, seeded K-fold split: fold i's held-out row indices (sorted). With ``groups`` (a group id per row,
    :func:`mixture_groups`) whole groups are shuffled and split, so no group is
    on both sides of a fold; with every group a single row this is the plain split, fold for fold."""
    groups = np.arange(num_runs) if groups is None else np.asarray(groups)
    ids = np.unique(groups)
    if num_folds < 2:
        raise RegmixError(f"--cv-folds {num_folds}: use at least 2 folds (or 0 to skip cross-validation)")
    if num_folds > ids.size:
        what = "usable runs" if ids.size == num_runs else f"distinct mixtures (of {num_runs} usable runs)"
        raise RegmixError(f"--cv-folds {num_folds} exceeds the {ids.size} {what}: use fewer folds")
    order = ids[np.random.default_rng(seed).permutation(ids.size)]
    return [np.sort(np.flatnonzero(np.isin(groups, part))) for part in np.array_split(order, num_folds)]


def check_enough_runs(num_runs: int, num_domains: int, source: str) -> None:
    """A regression over D domain weights needs at least D + 1 runs to be determined at all."""
    if num_runs < num_domains + 1:
        raise DataError(
            f"{source}: {num_runs} usable runs for {num_domains} domains; a regression over {num_domains} "
            f"weights needs at least {num_domains + 1} runs (RegMix used 512 for 17 domains): run more proxies "
            "or merge domains"
        )
    if num_runs < 4 * num_domains:
        logger.warning("%s: only %d runs for %d domains; expect a weak fit (RegMix used ~30 runs per domain)",
                       source, num_runs, num_domains)


def align_domains(table: RunTable, domains: Sequence[str], what: str) -> RunTable:
    """``table`` re-expressed over ``domains`` (e.g. a test set over the training domains); differing sets raise."""
    domains = tuple(domains)
    if table.domains == domains:
        return table
    missing = sorted(set(domains) - set(table.domains))
    unknown = sorted(set(table.domains) - set(domains))
    if missing or unknown:
        raise DataError(f"{what} {table.source}: domains differ from the training data: missing {missing}, "
                        f"extra {unknown}; evaluate on runs over the same domains")
    order = [table.domains.index(d) for d in domains]
    return RunTable(domains=domains, weights=table.weights[:, order], metrics=table.metrics,
                    run_ids=table.run_ids, source=table.source, metric_domains=table.metric_domains)


def parse_target_weights(spec: str, flag: str = "--target-weights") -> dict[str, float]:
    """``"pile_cc=0.7,github=0.3"`` -> ``{"pile_cc": 0.7, "github": 0.3}``."""
    out: dict[str, float] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.rpartition("=")
        if not sep or not name:
            raise DataError(f"{flag}: {part!r} is not NAME=WEIGHT (e.g. {flag} pile_cc=0.7,github=0.3)")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise DataError(f"{flag}: weight {value!r} of {name!r} is not a number") from None
    if not out:
        raise DataError(f"{flag}: empty; give NAME=WEIGHT pairs separated by commas")
    return out
