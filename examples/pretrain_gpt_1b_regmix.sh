#!/usr/bin/env bash
# 1B target run with Megatron-LM's own pretrain_gpt.py on the RegMix mixture, on a SLURM GPU cluster.
#
# NOT VERIFIED ON GPU. Written for Megatron-LM's command line (flag names checked against
# megatron/training/arguments.py and megatron/training/config/*.py of Megatron-LM's main branch, 2026-11);
# this project's machine has no GPU. What was checked on CPU: the exported data files round-trip through
# megatron-core's own blend parsing (tests/test_export.py), and, with a Megatron-LM core_v0.16.1 checkout, this
# script's exact flags and environment pass Megatron-LM's parse_args + validate_args for its 32 ranks with the GPU
# architecture check answering Hopper (tests/test_launch_shells.py). On a GPU machine run `make gpu-check` first.
#
# What it trains: the paper's 1B model (22 layers, hidden 2048, 16 heads, SwiGLU FFN 5632, RoPE, RMSNorm, no
# bias, untied embeddings), 25B tokens (23842 steps x 512 sequences x 2048 tokens), AdamW (0.9, 0.95), weight
# decay 0.1, clip 1.0, cosine LR 4e-4 -> 1e-5 with 4% warmup; bf16 weights with FP8 (hybrid) matmuls through
# Transformer Engine; tensor parallel 2 x pipeline parallel 2, data parallel over the rest.
#
# What it reads: the files the pipeline wrote (regmix-megatron run ... or `regmix-megatron search`):
#   $REGMIX_RUN/search/export/per_split_data_args.json  train = the weighted RegMix blend; valid/test = every
#                                                      domain's prefix, unweighted (one validation loss each)
#   $REGMIX_RUN/tokenizer/tokenizer.model               the SentencePiece model the data was tokenized with
# The prefixes inside the JSON are absolute paths: the data must sit at the same path on every node (shared
# file system), or re-export with `regmix-megatron export` on the cluster.
#
# Usage:  sbatch examples/pretrain_gpt_1b_regmix.sh        (edit the #SBATCH lines and the paths first)
# A baseline (natural, uniform, ...) is the same command with another exported per-split file:
#   regmix-megatron export --mixture runs/demo/targets/mixtures/natural.json \
#       --domains-json runs/demo/data/domains.json --output-dir runs/demo/export_natural
#   REGMIX_DATA_ARGS=runs/demo/export_natural/per_split_data_args.json sbatch examples/pretrain_gpt_1b_regmix.sh
#SBATCH --job-name=regmix-1b
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=2-00:00:00
#SBATCH --exclusive
#SBATCH --output=regmix-1b-%j.log
set -euo pipefail

MEGATRON_LM=${MEGATRON_LM:-$HOME/Megatron-LM}          # a checkout of NVIDIA/Megatron-LM
REGMIX_RUN=${REGMIX_RUN:-$PWD/runs/demo}              # output_dir of `regmix-megatron run`
SAVE_DIR=${SAVE_DIR:-$PWD/runs/megatron_1b_regmix}
DATA_ARGS=${REGMIX_DATA_ARGS:-$REGMIX_RUN/search/export/per_split_data_args.json}
TOKENIZER=$REGMIX_RUN/tokenizer/tokenizer.model
MEGATRON_DATA_ARGS=$SAVE_DIR/per_split_data_args.json   # DATA_ARGS without its test split (see below)

GPUS_PER_NODE=${SLURM_GPUS_ON_NODE:-8}
NNODES=${SLURM_NNODES:-1}
MASTER_ADDR=$(scontrol show hostnames "${SLURM_JOB_NODELIST:-localhost}" 2>/dev/null | head -n 1 || echo localhost)
MASTER_PORT=${MASTER_PORT:-29500}

# Megatron-LM's validate_args refuses tensor (or context) parallelism on compute capability < 10 (Hopper and
# older) unless CUDA_DEVICE_MAX_CONNECTIONS=1: one hardware queue, so each tensor-parallel (and sequence-parallel)
# communication kernel is scheduled ahead of the compute it overlaps. srun passes the environment on to every
# task.
export CUDA_DEVICE_MAX_CONNECTIONS=1

MODEL=(
    --num-layers 22 --hidden-size 2048 --num-attention-heads 16 --ffn-hidden-size 5632
    --seq-length 2048 --max-position-embeddings 2048
    --position-embedding-type rope --rotary-base 10000
    --normalization RMSNorm --swiglu --disable-bias-linear --untie-embeddings-and-output-weights
    --attention-dropout 0.0 --hidden-dropout 0.0 --init-method-std 0.02
)
# Rank 0 builds the blend's index files while the other ranks wait in a collective: on 25B tokens over many
# prefixes that can outlast Megatron-LM's default 10-minute timeout; raise it further for larger data.
PARALLEL=(
    --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --sequence-parallel
    --use-distributed-optimizer --overlap-grad-reduce --overlap-param-gather
    --distributed-timeout-minutes "${DISTRIBUTED_TIMEOUT_MINUTES:-60}"
)
PRECISION=(
    --bf16
    --transformer-impl transformer_engine
    --fp8-format hybrid --fp8-recipe delayed --fp8-amax-history-len 1024 --fp8-amax-compute-algo max
)
# FP8 needs compute capability >= 8.9 (Ada, Hopper or newer); on an A100 delete the --fp8-* flags (bf16 only).
# Gradient-accumulation fusion (Megatron-LM's default) needs APEX's fused_weight_gradient_mlp_cuda kernel: the
# output layer is megatron-core's ColumnParallelLinear, which raises at model build without it (Transformer
# Engine's layers fuse on their own). Off, unless GRADIENT_ACCUMULATION_FUSION=1 where APEX was built with
# --cpp_ext --cuda_ext (as in NVIDIA's PyTorch containers); a little faster there.
# Megatron-LM compiles its bias-SwiGLU and bias-dropout-add fusions with torch.compile at start-up, which needs a C
# compiler and Python.h on every node; without them, export TORCH_COMPILE_DISABLE=1 (the fusions run uncompiled).
[[ "${GRADIENT_ACCUMULATION_FUSION:-0}" == 1 ]] || PRECISION+=(--no-gradient-accumulation-fusion)
OPTIM=(
    --micro-batch-size 4 --global-batch-size 512 --train-iters 23842
    --lr 4e-4 --min-lr 1e-5 --lr-decay-style cosine --lr-warmup-fraction 0.04
    --optimizer adam --adam-beta1 0.9 --adam-beta2 0.95 --adam-eps 1e-8 --weight-decay 0.1 --clip-grad 1.0
    --seed 1234
)
DATA=(
    --per-split-data-args-path "$MEGATRON_DATA_ARGS"
    --multiple-validation-sets                 # one validation loss per domain prefix in "valid"
    --full-validation                          # Megatron-LM requires it with --multiple-validation-sets:
                                               # each evaluation covers every domain's whole valid split, so
                                               # --eval-iters would be ignored (not given)
    --tokenizer-type GPTSentencePieceTokenizer --tokenizer-model "$TOKENIZER"
    --data-cache-path "$SAVE_DIR/data_cache" --num-workers 2
)
LOGGING=(
    --log-interval 10 --eval-interval 1000
    --save "$SAVE_DIR/checkpoints" --load "$SAVE_DIR/checkpoints" --save-interval 1000
    --tensorboard-dir "$SAVE_DIR/tensorboard"
)

mkdir -p "$SAVE_DIR"
test -f "$DATA_ARGS" || { echo "missing $DATA_ARGS: run the pipeline (or regmix-megatron search) first" >&2; exit 2; }
# Drop the test split: after training, Megatron-LM (core_v0.16.1) evaluates the test set through the
# validation code, which with --multiple-validation-sets takes len() of the single test iterator and raises
# TypeError (after the last checkpoint is saved). The per-domain validation losses are the result we want.
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d["test"] = None; json.dump(d, open(sys.argv[2], "w"), indent=1)' \
    "$DATA_ARGS" "$MEGATRON_DATA_ARGS"

# One torchrun per node; torchrun starts one process per GPU.
srun --ntasks-per-node=1 torchrun \
    --nnodes "$NNODES" --nproc-per-node "$GPUS_PER_NODE" \
    --rdzv-backend c10d --rdzv-endpoint "$MASTER_ADDR:$MASTER_PORT" --rdzv-id "${SLURM_JOB_ID:-regmix}" \
    "$MEGATRON_LM/pretrain_gpt.py" \
    "${MODEL[@]}" "${PARALLEL[@]}" "${PRECISION[@]}" "${OPTIM[@]}" "${DATA[@]}" "${LOGGING[@]}"
