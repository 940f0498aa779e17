"""Benchmark: predicting a search pool with LightGBM's ``Booster.predict`` vs our exact compiled evaluator.

Fits LightGBM with the paper's settings (1000 rounds, learning rate 0.01) on the RegMix reference training runs
(``../shared/regmix_reference``; if absent, on synthetic data of the same shape: 512 x 17, said so in the
output), draws 1,000,000 Dirichlet candidates, predicts them with both (same thread count), prints both times,
the maximum absolute difference, and ends with ``ratio: <plain_time / fast_time>`` (wall clock, higher is better); process CPU times are printed too
because the machine is shared.
numba's compile time (or on-disk cache load) is measured and reported separately, not in the fast time.

    .venv/bin/python bench/bench_search.py [--num-candidates 1000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REFERENCE = REPO / ".." / "shared" / "regmix_reference"


def training_data() -> tuple[np.ndarray, np.ndarray, str]:
    mixtures, losses = REFERENCE / "train_mixture_1m.csv", REFERENCE / "train_pile_loss_1m.csv"
    if mixtures.exists() and losses.exists():
        from regmix_megatron.regression.data import load_regmix_csvs

        table = load_regmix_csvs(mixtures, losses, renormalize=True)  # published rows sum to 0.996-1.003
        return (table.weights, table.target_values("metric/the_pile_pile_cc_val_loss"),
                "RegMix reference (512 runs x 17 domains, target Pile-CC loss)")
    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.full(17, 0.3), size=512)
    y = 5.0 - 1.5 * x[:, 0] + 0.4 * np.sin(6 * x[:, 1]) + 0.3 * x[:, 2] * x[:, 3] + 0.02 * rng.standard_normal(512)
    return x, y, "SYNTHETIC data of the reference's shape (512 x 17): reference data not found at " + str(REFERENCE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-candidates", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    import lightgbm as lgb
    import numba

    from regmix_megatron.regression import fastpredict

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    x, y, what = training_data()
    print(f"data: {what}")
    params = {"objective": "regression", "learning_rate": 0.01, "deterministic": True, "force_row_wise": True,
              "num_threads": args.threads, "verbose": -1, "seed": 0}
    t = time.perf_counter()
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=1000)
    print(f"fit: {booster.num_trees()} trees in {time.perf_counter() - t:.2f} s")

    t = time.perf_counter()
    compile_s = fastpredict.warmup()
    predictor = fastpredict.FastPredictor(booster)
    print(f"numba compile/cache load: {compile_s:.2f} s; model compiled to arrays in "
          f"{time.perf_counter() - t - compile_s:.2f} s ({predictor.forest.num_nodes} internal nodes, "
          f"max {predictor.forest.max_leaves} leaves/tree, {predictor.forest.node_mask.dtype} bitvectors)")

    rng = np.random.default_rng(1)
    prior = np.full(x.shape[1], 1.0 / x.shape[1])
    candidates = rng.dirichlet(prior * x.shape[1], size=args.num_candidates)
    print(f"candidates: {args.num_candidates:,} Dirichlet draws over {x.shape[1]} domains; threads: {args.threads}")

    print(f"load average before timing: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(other jobs share the machine: wall times are noisy; process CPU time shown too)")
    t, c = time.perf_counter(), time.process_time()
    plain = booster.predict(candidates, num_threads=args.threads)
    plain_s, plain_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"lightgbm Booster.predict: {plain_s:.2f} s wall, {plain_cpu:.2f} s CPU "
          f"({args.num_candidates / plain_s:,.0f} candidates/s)")

    t, c = time.perf_counter(), time.process_time()
    fast = predictor.predict(candidates)
    fast_s, fast_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"fastpredict (bitvectors): {fast_s:.2f} s wall, {fast_cpu:.2f} s CPU "
          f"({args.num_candidates / fast_s:,.0f} candidates/s)")
    print(f"load average after timing: {os.getloadavg()[0]:.1f}; CPU-time ratio: {plain_cpu / fast_cpu:.2f}")

    diff = float(np.max(np.abs(plain - fast)))
    print(f"max abs diff: {diff:.3g} ({'identical' if diff == 0.0 else 'DIFFERENT'}; required <= 1e-9)")
    if diff > 1e-9:
        print("ERROR: predictions differ", file=sys.stderr)
        return 1
    print(f"ratio: {plain_s / fast_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
