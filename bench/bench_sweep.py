"""Sweep throughput on this machine: proxies per hour with the proxy settings the demo used before issue 10
("before": every domain evaluated, checkpoints saved, no test split) against the settings it uses now ("now":
only the target's domains evaluated plus the evaluation-only ones, the test split scored once at the end, no
checkpoint written), for the same proxies (same model, steps, mixtures and seed), 2 single-thread workers that
train runs back to back (``--reuse-process``).

    .venv/bin/python bench/bench_sweep.py [--num-runs 8] [--steps 32] [--domains DOMAINS_JSON --target DOMAIN]

Without --domains it builds the corpus fixture's indexed datasets first (tokenizer + preprocess, qa
evaluation-only, like the tests) and targets qa. Prints a table and ends with ``ratio: <now proxies/hour over
before proxies/hour>``. Timings are wall-clock and noisy when other jobs share the cores (the load average at
the start and end of each launch is printed): compare ratios measured under similar loads.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLI = [sys.executable, "-m", "regmix_megatron.cli"]


def build_fixture(work: Path) -> Path:
    from regmix_megatron.data.preprocess import preprocess_corpus
    from regmix_megatron.data.tokenizer_training import TokenizerTrainConfig, train_tokenizer

    corpus = REPO / "tests" / "fixtures" / "corpus"
    training = sorted(p.name for p in corpus.iterdir() if (p / "train.jsonl").is_file() and p.name != "qa")
    model = train_tokenizer(corpus, work / "tokenizer", TokenizerTrainConfig(vocab_size=1000,
                                                                           sample_bytes_per_domain=60_000, seed=0),
                            domains=training)
    return Path(preprocess_corpus(corpus, work / "indexed", model, workers=1, eval_only=["qa"]))


def settings(steps: int, target: str) -> dict[str, dict]:
    """The two proxy recipes: the demo's before issue 10 and now (same model, steps and tokens)."""
    common = {"preset": "cpu-proxy", "optim": {"train_steps": steps, "warmup_steps": 4}}
    before = {**common, "eval": {"eval_interval": steps, "num_tokens_per_domain": 8192, "final_splits": []},
              "checkpoint": {"interval": steps // 2}}
    now = {**common, "eval": {"eval_interval": steps, "num_tokens_per_domain": 8192, "domains": [target]},
           "checkpoint": {"save": False}}
    return {"before": before, "now": now}


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t0


def loop_seconds(sweep_dir: Path) -> float:
    """Mean train-loop time per run (the trainer's elapsed_s)."""
    from regmix_megatron.runs.run_dir import read_result
    from regmix_megatron.runs.sweep.plan import Sweep

    sweep = Sweep.load(sweep_dir)
    loops = [read_result(sweep.run_dir(run_id)).elapsed_s for run_id in sweep.run_ids()]
    return sum(loops) / len(loops)


def num_checkpoints(sweep_dir: Path) -> int:
    """The checkpoints the sweep's runs kept."""
    from regmix_megatron.megatron.checkpoint import list_checkpoints
    from regmix_megatron.runs.sweep.plan import Sweep

    sweep = Sweep.load(sweep_dir)
    return sum(len(list_checkpoints(sweep.run_dir(run_id))) for run_id in sweep.run_ids())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=32, help="train steps per proxy (cpu-proxy model)")
    parser.add_argument("--domains", default=None, help="domains.json (default: build the corpus fixture)")
    parser.add_argument("--target", default="qa", help="the target domain (evaluated by the 'now' proxies)")
    args = parser.parse_args()

    from regmix_megatron.data.manifest import DomainRegistry
    from regmix_megatron.mixtures.mixture import Mixture, write_mixtures
    from regmix_megatron.mixtures.sampler import sample_rows
    from regmix_megatron.mixtures.sampler_config import SamplerConfig

    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        work = Path(tmp)
        domains = Path(args.domains) if args.domains else build_fixture(work)
        registry = DomainRegistry.load(domains)
        rows = sample_rows(registry.tokens_per_domain(), SamplerConfig(num_samples=args.num_runs, seed=0),
                           domains=registry.names)[:, 0]
        mixtures = write_mixtures(work / "mixtures.jsonl", [Mixture.from_array(registry.names, r) for r in rows])
        results = []
        for name, recipe in settings(args.steps, args.target).items():
            config = work / f"{name}.yaml"
            config.write_text(yaml.safe_dump({**recipe, "domains": str(domains), "seed": 1234}))
            sweep_dir = work / name
            run(CLI + ["sweep", "plan", "--mixtures", str(mixtures), "--config", str(config), "--output",
                       str(sweep_dir)])
            load0 = os.getloadavg()[0]
            wall = run(CLI + ["sweep", "launch", str(sweep_dir), "--executor", "local", "--parallel", "2",
                              "--threads-per-run", "1", "--reuse-process"])
            results.append({"name": name, "wall_s": wall, "per_hour": args.num_runs / wall * 3600,
                            "loop_s": loop_seconds(sweep_dir), "load": (load0, os.getloadavg()[0]),
                            "checkpoints": num_checkpoints(sweep_dir)})
            print(f"{name:7s}: {wall:6.1f} s for {args.num_runs} proxies", flush=True)

    print()
    print(f"{args.num_runs} cpu-proxy runs of {args.steps} steps x 32 x 128 tokens, 2 single-thread workers "
          f"(reuse-process), target {args.target}")
    print(f"{'settings':9s} {'wall s':>8s} {'proxies/h':>10s} {'loop s/run':>11s} {'ckpts':>6s} {'load':>11s}")
    for r in results:
        print(f"{r['name']:9s} {r['wall_s']:8.1f} {r['per_hour']:10.0f} {r['loop_s']:11.2f} {r['checkpoints']:6d} "
              f"{r['load'][0]:5.1f}-{r['load'][1]:<5.1f}")
    print("before: every domain evaluated, checkpoints every steps/2, no test split; now: the target's domains "
          "(+ evaluation-only) evaluated, test scored once at the end, no checkpoint")
    before, now = results
    print(f"ratio: {now['per_hour'] / before['per_hour']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
