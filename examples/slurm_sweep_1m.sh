#!/usr/bin/env bash
# RegMix at the paper's 1M-proxy scale on a GPU SLURM cluster: 512 proxy runs as one job array.
#
# NOT VERIFIED ON GPU: the sweep machinery (plan, job array, retries, collect) is tested on a real single-node
# SLURM cluster on CPU with the tiny-test preset; this file's GPU settings (bf16, --gres, time/memory) are
# what we expect a GPU cluster to need, not something we ran.
#
# What one proxy is (preset regmix-1m): 2 layers, hidden 256, 8 heads, SwiGLU FFN 512, seq 2048,
# global batch 512, 1000 steps (~1B tokens), LR 4e-4 constant after 100 warmup steps, bf16.
# On one modern GPU such a run takes on the order of an hour; 512 of them are ~512 GPU-hours.
#
# Run from the login node, in the Python environment where regmix-megatron is installed:
#   bash examples/slurm_sweep_1m.sh
# Re-running it is safe: planning is idempotent, finished runs are skipped, interrupted ones resume from their
# checkpoints, and failed runs are retried up to MAX_ATTEMPTS times (logs kept per attempt).
set -euo pipefail

# ---- EDIT: your data, your cluster ------------------------------------------------------------------------
DOMAINS_JSON=${DOMAINS_JSON:-/path/to/indexed/domains.json}   # from `regmix-megatron preprocess`
WORK=${WORK:-$PWD/regmix-1m}            # where mixtures, the sweep and the results table go (shared filesystem)
PARTITION=${PARTITION:-gpu}             # your GPU partition
ACCOUNT=${ACCOUNT:-}                    # your allocation/account, if your cluster needs one
QOS=${QOS:-}                            # optional QoS
GPUS_PER_TASK=${GPUS_PER_TASK:-1}       # a 1M proxy fits one GPU; >1 launches each run with torchrun (data parallel)
CPUS_PER_TASK=${CPUS_PER_TASK:-8}       # dataloader/index building threads; threads are sized from this
MEM=${MEM:-64G}                         # host memory per task
TIME_LIMIT=${TIME_LIMIT:-04:00:00}      # per task; a run cut by the limit resumes on the next launch
THROTTLE=${THROTTLE:-64}                # array tasks running at once (be nice to your colleagues)
NUM_PROXIES=${NUM_PROXIES:-512}         # the paper's sweep size
SEED=${SEED:-1234}                      # the same seed for every proxy (proxies differ only by mixture)
MAX_ATTEMPTS=${MAX_ATTEMPTS:-3}

mkdir -p "$WORK"

# ---- 1. the proxy train config: the paper's 1M proxy, bf16 on GPU -------------------------------------------
cat >"$WORK/proxy-1m.yaml" <<EOF
preset: regmix-1m
domains: $DOMAINS_JSON
seed: $SEED
precision: {bf16: true}
# every proxy is evaluated on the same fixed validation tokens of every domain (eval.num_tokens_per_domain)
EOF

# ---- 2. 512 mixtures from the RegMix sampler (Dirichlet around the tempered token prior, epoch caps) --------
if [[ ! -s "$WORK/mixtures.jsonl" ]]; then
    regmix-megatron sample --domains-json "$DOMAINS_JSON" --num-samples "$NUM_PROXIES" --seed 0 \
        --output "$WORK/mixtures.jsonl"
fi

# ---- 3. plan: one run directory per mixture, ids from (mixture hash, config hash, seed) ---------------------
regmix-megatron sweep plan --mixtures "$WORK/mixtures.jsonl" --config "$WORK/proxy-1m.yaml" \
    --output "$WORK/sweep" --seed "$SEED"

# ---- 4. launch: one job array over the pending runs ---------------------------------------------------------
SLURM_FLAGS=(--executor slurm --partition "$PARTITION" --gpus-per-task "$GPUS_PER_TASK"
             --cpus-per-task "$CPUS_PER_TASK" --mem "$MEM" --time "$TIME_LIMIT" --throttle "$THROTTLE"
             --max-attempts "$MAX_ATTEMPTS" --job-name regmix-1m)
[[ -n "$ACCOUNT" ]] && SLURM_FLAGS+=(--account "$ACCOUNT")
[[ -n "$QOS" ]] && SLURM_FLAGS+=(--sbatch-arg=--qos="$QOS")

# Look before you leap: print the generated sbatch script (nothing is submitted).
regmix-megatron sweep launch "$WORK/sweep" "${SLURM_FLAGS[@]}" --dry-run | head -40

# Submit. Drop --wait to return right away and watch with `regmix-megatron sweep status "$WORK/sweep"`.
regmix-megatron sweep launch "$WORK/sweep" "${SLURM_FLAGS[@]}" --wait || true

# ---- 5. collect: results.csv / results.parquet (weights + every per-domain validation loss) -----------------
regmix-megatron sweep status "$WORK/sweep"
regmix-megatron sweep collect "$WORK/sweep"
echo "next: regmix-megatron fit $WORK/sweep/results.parquet ..."
