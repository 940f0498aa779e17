"""Sweep throughput on this machine: proxies per hour, naive (one `regmix-megatron train` process per proxy)
vs optimized (`--reuse-process`: each worker process trains proxies back to back through `run_training`),
for 1 and 2 parallel runs, and the per-run overhead as a share of run time.

    .venv/bin/python bench/bench_sweep.py [--num-runs 8] [--steps 8] [--domains DOMAINS_JSON]

Without --domains it builds the corpus fixture's indexed datasets first (tokenizer + preprocess, like the
tests). Every configuration runs the same planned runs (same mixtures, config, seed) in its own sweep dir.
Prints a table and ends with ``ratio: <optimized proxies/hour over naive proxies/hour>`` at 2 parallel runs.
Timings are wall-clock and noisy when other jobs share the cores (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

CLI = [sys.executable, "-m", "regmix_megatron.cli"]


def build_fixture(work: Path) -> Path:
    from regmix_megatron.preprocess import preprocess_corpus
    from regmix_megatron.tokenizer import TokenizerTrainConfig, train_tokenizer

    corpus = REPO / "tests" / "fixtures" / "corpus"
    model = train_tokenizer(corpus, work / "tokenizer", TokenizerTrainConfig(vocab_size=1000,
                                                                           sample_bytes_per_domain=60_000, seed=0))
    return Path(preprocess_corpus(corpus, work / "indexed", model, workers=1))


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t0


def per_run_times(sweep_dir: Path) -> tuple[float, float]:
    """Mean wall time per attempt (worker's view) and mean train-loop time (trainer's elapsed_s)."""
    walls, loops = [], []
    for run_dir in sorted((sweep_dir / "runs").iterdir()):
        rec = json.loads((run_dir / "logs" / "attempt-1.json").read_text())
        walls.append(rec["ended_at"] - rec["started_at"])
        loops.append(json.loads((run_dir / "result.json").read_text())["elapsed_s"])
    return sum(walls) / len(walls), sum(loops) / len(loops)


def import_seconds() -> float:
    code = "import regmix_megatron.megatron.train"
    return min(run([sys.executable, "-c", code]) for _ in range(2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8, help="train steps per proxy (tiny-test preset)")
    parser.add_argument("--domains", default=None, help="domains.json (default: build the corpus fixture)")
    args = parser.parse_args()

    from sweep_fixtures import make_real_sweep_inputs

    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        work = Path(tmp)
        domains = Path(args.domains) if args.domains else build_fixture(work)
        mixtures, config, _ = make_real_sweep_inputs(work / "inputs", domains, args.num_runs)
        import yaml

        cfg = yaml.safe_load(config.read_text())
        cfg["optim"]["train_steps"] = args.steps
        cfg["eval"]["eval_interval"] = args.steps
        cfg["checkpoint"]["interval"] = args.steps
        config.write_text(yaml.safe_dump(cfg))
        t_import = import_seconds()
        rows = []
        for mode in ("naive", "optimized"):
            for parallel in (1, 2):
                sweep_dir = work / f"{mode}-{parallel}"
                run(CLI + ["sweep", "plan", "--mixtures", str(mixtures), "--config", str(config), "--output",
                           str(sweep_dir)])
                launch = CLI + ["sweep", "launch", str(sweep_dir), "--executor", "local", "--parallel",
                                str(parallel)] + (["--reuse-process"] if mode == "optimized" else [])
                load0 = os.getloadavg()[0]
                wall = run(launch)
                per_run_wall, per_run_loop = per_run_times(sweep_dir)
                rows.append({"mode": mode, "parallel": parallel, "wall_s": wall,
                             "proxies_per_hour": args.num_runs / wall * 3600, "per_run_wall_s": per_run_wall,
                             "train_loop_s": per_run_loop,
                             "overhead_share": 1 - per_run_loop / per_run_wall, "load": load0})
                print(f"{mode:9s} parallel={parallel}: {wall:6.1f} s for {args.num_runs} proxies", flush=True)

    print()
    print(f"{args.num_runs} proxies of the tiny-test preset, {args.steps} steps each; importing the trainer "
          f"(python + torch + megatron-core) takes {t_import:.1f} s per process")
    print(f"{'mode':10s} {'parallel':>8s} {'wall s':>8s} {'proxies/h':>10s} {'s/run':>7s} {'loop s':>7s} "
          f"{'overhead':>9s} {'load':>5s}")
    for r in rows:
        print(f"{r['mode']:10s} {r['parallel']:8d} {r['wall_s']:8.1f} {r['proxies_per_hour']:10.0f} "
              f"{r['per_run_wall_s']:7.2f} {r['train_loop_s']:7.2f} {r['overhead_share']:9.0%} {r['load']:5.1f}")
    print("s/run: wall time of one attempt (worker's view; in-process attempts exclude the one-time import); "
          "loop s: the trainer's train-loop time; overhead = 1 - loop/run")
    naive = next(r for r in rows if r["mode"] == "naive" and r["parallel"] == 2)
    best = next(r for r in rows if r["mode"] == "optimized" and r["parallel"] == 2)
    print(f"ratio: {best['proxies_per_hour'] / naive['proxies_per_hour']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
