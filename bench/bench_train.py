"""Training throughput of our megatron-core path vs a plain PyTorch model of the same architecture and batch.

For each proxy shape: tokens/s of a full optimizer step (forward + backward over the micro-batches of the
global batch, gradient clipping, AdamW) through ``regmix_megatron.megatron.train`` (GPTModel, local spec,
Megatron DDP, megatron-core's forward-backward schedule and optimizer, CPU shims), and through
``bench/plain_gpt.py`` (torch modules, SDPA attention, torch AdamW), on the same synthetic token batches.
MFU = achieved model FLOP/s / fp32 matmul peak measured here; model FLOPs per token =
6 * N (parameters except the input embedding) + 12 * layers * hidden * seq_length (attention scores and
values, forward + backward).

Usage: ``python bench/bench_train.py [--steps 6] [--rounds 2] [--threads N] [--shapes cpu-proxy] [--profile]``.
Ends with ``ratio: <geometric mean over shapes of megatron tokens/s / plain tokens/s>``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from plain_gpt import PlainGPT  # noqa: E402

#: (label, preset, overrides, vocab size). regmix-1m keeps the paper's model shape at a CPU-sized batch.
SHAPES = (
    ("cpu-proxy", "cpu-proxy", {}, 4096),
    ("regmix-1m@seq512", "regmix-1m",
     {"model": {"seq_length": 512}, "optim": {"global_batch_size": 8, "micro_batch_size": 4},
      "precision": {"bf16": False, "layer_spec": "local"}}, 32000),
)


def matmul_peak_flops(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t))
    return best


class SyntheticBatches:
    """Same interface as train.StepBatches; fixed random tokens (identical for both implementations)."""

    def __init__(self, vocab: int, seq: int, global_batch: int, micro_batch: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.data = torch.randint(0, vocab, (global_batch, seq + 1), generator=g)
        self.micro_batch_size = micro_batch
        self.num_microbatches = global_batch // micro_batch
        self.position_ids = torch.arange(seq).unsqueeze(0).expand(micro_batch, -1)

    def for_step(self, step: int):
        for j in range(self.num_microbatches):
            rows = self.data[j * self.micro_batch_size:(j + 1) * self.micro_batch_size]
            yield {"tokens": rows[:, :-1].contiguous(), "labels": rows[:, 1:].contiguous(),
                   "loss_mask": torch.ones(rows.shape[0], rows.shape[1] - 1), "position_ids": self.position_ids}


#: The seed of both models (the runs are timed, not compared loss for loss).
SEED = 0


def megatron_runner(cfg, vocab, batches):
    from regmix_megatron.megatron.train import _Run, init_distributed

    init_distributed(1, 1)
    run = _Run(cfg, seed=SEED, output_dir=".")
    run.build_model_and_optimizer(vocab)
    run.batches = batches

    def step():
        loss, _ = run.train_step()
        run.progress.step += 1
        return loss
    return step, run


def plain_runner(cfg, vocab, batches):
    torch.manual_seed(SEED)
    m, o = cfg.model, cfg.optim
    model = PlainGPT(vocab, m.num_layers, m.hidden_size, m.num_attention_heads, m.ffn_hidden_size, m.seq_length,
                     eps=m.norm_epsilon, init_std=m.init_method_std)
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=o.lr,
                            betas=(o.adam_beta1, o.adam_beta2), eps=o.adam_eps)

    def step():
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for batch in batches.for_step(0):
            loss = model(batch["tokens"], batch["labels"]) / batches.num_microbatches
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip_grad)
        opt.step()
        return total
    return step, model


def time_steps(step, num_steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(num_steps):
        step()
    return (time.perf_counter() - t) / num_steps


def model_flops_per_token(model: PlainGPT, cfg) -> tuple[float, int]:
    n = sum(p.numel() for p in model.parameters()) - model.embedding.weight.numel()
    m = cfg.model
    return 6.0 * n + 12.0 * m.num_layers * m.hidden_size * m.seq_length, n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed optimizer steps per round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (best round is kept)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table of one step each")
    parser.add_argument("--shapes", default=",".join(s[0] for s in SHAPES),
                        help=f"comma-separated subset of {[s[0] for s in SHAPES]}")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from regmix_megatron.runs.recipe import build_recipe, merge_mappings

    peak = matmul_peak_flops()
    print(f"threads {torch.get_num_threads()}; fp32 matmul peak (1024^3, best of 10): {peak / 1e9:.1f} GFLOP/s")
    header = (f"{'shape':<18} {'impl':<9} {'tokens/step':>11} {'s/step':>8} {'tokens/s':>10} {'GFLOP/s':>8} "
              f"{'MFU':>6} {'loss':>7}")
    rows, ratios = [], []
    chosen = args.shapes.split(",")
    for label, preset, overrides, vocab in SHAPES:
        if label not in chosen:
            continue
        cfg = build_recipe(merge_mappings({"preset": preset, "optim": {"warmup_steps": 0}}, overrides))
        m, o = cfg.model, cfg.optim
        batches = SyntheticBatches(vocab, m.seq_length, o.global_batch_size, o.micro_batch_size)
        tokens_per_step = o.global_batch_size * m.seq_length
        mega_step, run = megatron_runner(cfg, vocab, batches)
        plain_step, plain_model = plain_runner(cfg, vocab, batches)
        flops_per_token, n_params = model_flops_per_token(plain_model, cfg)
        best = {"megatron": math.inf, "plain": math.inf}
        for _ in range(args.rounds):
            best["megatron"] = min(best["megatron"], time_steps(mega_step, args.steps))
            best["plain"] = min(best["plain"], time_steps(plain_step, args.steps))
        losses = {"megatron": mega_step(), "plain": plain_step()}
        for impl in ("megatron", "plain"):
            tps = tokens_per_step / best[impl]
            rows.append(f"{label:<18} {impl:<9} {tokens_per_step:>11d} {best[impl]:>8.3f} {tps:>10.0f} "
                        f"{tps * flops_per_token / 1e9:>8.2f} {tps * flops_per_token / peak:>6.1%} "
                        f"{losses[impl]:>7.3f}")
        ratios.append(best["plain"] / best["megatron"])
        print(f"{label}: vocab {vocab}, {n_params} params (w/o input embedding), "
              f"{flops_per_token / 1e6:.2f} MFLOP/token; megatron/plain = {ratios[-1]:.3f}", flush=True)
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            for impl, step in (("megatron", mega_step), ("plain", plain_step)):
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    step()
                print(f"--- profile {label} {impl}")
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
        del run, plain_model
    print(header)
    print("\n".join(rows))
    ratio = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"ratio: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
