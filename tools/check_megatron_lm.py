#!/usr/bin/env python
"""Check our dataset provider against a Megatron-LM checkout before a large run depends on it.

    python tools/check_megatron_lm.py --megatron-lm ~/Megatron-LM \\
        --regmix-domains runs/demo/data/domains.json --regmix-mixture runs/demo/search/export/mixture.json \\
        [-- any further pretrain_gpt.py flags]
    python tools/check_megatron_lm.py --megatron-lm ~/Megatron-LM \\
        --regmix-domains runs/demo/data/domains.json \\
        --per-split-data-args-path runs/demo/search/export/per_split_data_args.json

(``--regmix-schedule schedule.json`` instead of ``--regmix-mixture``: the scheduled train set, whose phases it
prints, each with its first step and its samples per domain.)

It goes through Megatron-LM's own code, single process, on CPU (gloo) or GPU:
``arguments.parse_args(extra_args_provider=add_regmix_args)``, ``validate_args``, ``set_global_variables``,
``training.build_train_valid_test_datasets(provider)`` (the sizes come from
``--train-iters``/``--eval-iters``, as in ``pretrain``), then ``build_pretraining_data_loader`` for the train
set, every validation set and the test set, and one batch from each. It prints the provider's requested vs
realized table, the dataset sizes, the samples each blend draws from each component (train and test) and the
batch shapes, and ends with ``OK``. The tokenizer flags are the ones recorded in ``domains.json``.

A fresh Megatron-LM checkout has no compiled dataset helpers (``megatron/core/datasets/helpers_cpp``;
Megatron-LM's ``pretrain`` compiles them at start-up): this tool builds them the same way, with this Python's
headers and pybind11 (``make -C megatron/core/datasets CPPFLAGS="$(python -m pybind11 --includes)"
LIBEXT=<this Python's extension suffix>``; ``regmix_megatron/megatron/checkout.py``, which ``make gpu-check``
shares). Where that cannot run, it uses the helpers compiled into the installed megatron-core wheel when their
source is identical to the checkout's, or says the exact command.

Needs what Megatron-LM's ``megatron.training`` imports besides megatron-core (e.g. ``six``, ``pydantic``,
``einops``): a missing one is named with the pip command. Without triton (CPU torch), the one megatron-core
module that ``megatron.training.initialize`` imports from it (batch-invariant kernels) is replaced by a module
whose functions raise; nothing here calls them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regmix_megatron.errors import run_guarded  # noqa: E402
from regmix_megatron.megatron.checkout import ensure_dataset_helpers, is_checkout  # noqa: E402

#: Model and schedule flags for a model that is never built: only the data path is exercised.
TINY = ["--num-layers", "2", "--hidden-size", "64", "--num-attention-heads", "2", "--micro-batch-size", "2",
        "--global-batch-size", "4", "--train-iters", "20", "--lr", "1e-3", "--eval-interval", "10",
        "--eval-iters", "2"]


def _without_triton() -> None:
    if importlib.util.find_spec("triton") is not None:
        return
    name = "megatron.core.transformer.custom_layers.batch_invariant_kernels"
    stub = types.ModuleType(name)

    def refuse(*args, **kwargs):
        raise RuntimeError(f"{name} needs triton, which is not installed")

    stub.enable_batch_invariant_mode = stub.is_batch_invariant_mode_enabled = refuse
    sys.modules[name] = stub


def _print_blend(label: str, dataset) -> None:
    """Samples a blend draws from each of its components, in blend order."""
    if dataset is None or not hasattr(dataset, "dataset_index"):
        return
    import numpy as np

    counts = np.bincount(np.asarray(dataset.dataset_index), minlength=len(dataset.datasets))
    print(f"{label} samples per component: "
          + ", ".join(f"{Path(d.dataset_path).parent.name}/{Path(d.dataset_path).name}={int(c)}"
                      for d, c in zip(dataset.datasets, counts)))


def _digest(dataset) -> str:
    """sha256 over every sample's tokens and labels, in order: two paths that agree on it agree sample for sample."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for i in range(len(dataset)):
        sample = dataset[i]
        for key in ("tokens", "labels"):
            h.update(np.asarray(sample[key], dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--megatron-lm", required=True, help="a Megatron-LM checkout (holds megatron/training/)")
    p.add_argument("--regmix-domains", required=True, help="domains.json of the data")
    p.add_argument("--regmix-mixture", help="mixture file (export/search output): check our provider")
    p.add_argument("--regmix-schedule", help="schedule file (schedule.json): check our provider's scheduled train set")
    p.add_argument("--per-split-data-args-path", metavar="JSON",
                   help="per_split_data_args.json from `regmix-megatron export`: check pretrain_gpt.py's own "
                        "provider on it instead (what examples/pretrain_gpt_1b_regmix.sh runs)")
    p.add_argument("--seq-length", type=int, default=64)
    p.add_argument("--no-multiple-validation-sets", dest="multiple", action="store_false",
                   help="one blended validation set instead of one per domain")
    p.add_argument("--no-build-helpers", dest="build_helpers", action="store_false",
                   help="do not compile the checkout's dataset helpers when missing (use megatron-core's own "
                        "compiled ones if the source is the same, else print the command)")
    p.add_argument("extra", nargs="*", help="further pretrain_gpt.py flags (after --)")
    return p


def _show_and_check(train, valid: list, test, margs, build_pretraining_data_loader) -> int:
    """Print what Megatron-LM built (sizes, blends, per-phase samples, sample digests, one batch of each loader)
    and check that a loader resumed at each phase boundary starts at that boundary's samples; 1 if not."""
    import numpy as np

    print(f"train: {type(train).__name__}, {len(train)} samples")
    _print_blend("train", train)
    for lo, hi in zip(getattr(train, "phase_starts", ()), getattr(train, "phase_starts", ())[1:]):
        counts = np.bincount(np.asarray(train.dataset_index[lo:hi]), minlength=len(train.datasets))
        print(f"train phase {train.phase_of(lo) + 1}: from step {lo // margs.global_batch_size}, samples "
              + ", ".join(f"{Path(d.dataset_path).parent.name}={int(c)}" for d, c in zip(train.datasets, counts)))
    print(f"valid: {len(valid)} set(s), {[len(v) for v in valid]} samples")
    print(f"test: {None if test is None else f'{type(test).__name__}, {len(test)} samples'}")
    _print_blend("test", test)
    digests = [("train", train)] + [(f"valid[{i}]", v) for i, v in enumerate(valid)] + [("test", test)]
    print("samples sha256: " + ", ".join(f"{k}={_digest(d) if d is not None else None}" for k, d in digests))
    loaders = [("train", train)] + [(f"valid[{i}]", v) for i, v in enumerate(valid)]
    for label, dataset in loaders + ([("test", test)] if test is not None else []):
        batch = next(iter(build_pretraining_data_loader(dataset, 0)))
        shapes = {k: tuple(v.shape) for k, v in batch.items() if hasattr(v, "shape")}
        print(f"{label} batch: {shapes}")
    for start in getattr(train, "phase_starts", ())[1:-1]:  # Megatron-LM resuming at a phase boundary
        batch = next(iter(build_pretraining_data_loader(train, start)))
        expected = np.stack([np.asarray(train[i]["tokens"]) for i in range(start, start + margs.micro_batch_size)])
        same = np.array_equal(batch["tokens"].numpy(), expected)
        print(f"train resumed at step {start // margs.global_batch_size} (consumed samples {start}): first "
              f"batch {'is' if same else 'is NOT'} samples {start}..{start + margs.micro_batch_size - 1}")
        if not same:
            return 1
    print("OK")
    return 0


def _single_rank_env() -> None:
    for key, value in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT="29571", RANK="0", WORLD_SIZE="1",
                           LOCAL_RANK="0").items():
        os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)

    if sum(x is not None for x in (args.regmix_mixture, args.regmix_schedule, args.per_split_data_args_path)) != 1:
        p.error("give one of --regmix-mixture or --regmix-schedule (our provider) or --per-split-data-args-path "
                "(pretrain_gpt.py's)")
    mlm = Path(args.megatron_lm).resolve()
    if not is_checkout(mlm):
        p.error(f"--megatron-lm {mlm}: no megatron/training/ there; give the root of a Megatron-LM checkout")
    from regmix_megatron.manifest import DomainRegistry

    registry = DomainRegistry.load(args.regmix_domains)
    helpers = ensure_dataset_helpers(mlm, build=args.build_helpers)
    print(f"dataset helpers: {helpers}")
    sys.path.insert(0, str(mlm))
    _single_rank_env()

    import torch

    from regmix_megatron.megatron import shims  # noqa: F401  (CPU: megatron-core's documented shims)

    _without_triton()
    try:
        from megatron.core import parallel_state
        from megatron.training import training
        from megatron.training.arguments import parse_args, validate_args
        from megatron.training.datasets.data_samplers import build_pretraining_data_loader
        from megatron.training.global_vars import set_global_variables
    except ModuleNotFoundError as exc:
        print(f"check_megatron_lm: Megatron-LM's training package needs {exc.name!r}: "
              f"pip install {exc.name} (into this environment), then run again", file=sys.stderr)
        return 2
    from regmix_megatron.megatron.provider import add_regmix_args, train_valid_test_datasets_provider

    flags = [*TINY, "--seq-length", str(args.seq_length), "--max-position-embeddings", str(args.seq_length),
             *registry.tokenizer.spec.megatron_flags()]
    if args.regmix_mixture or args.regmix_schedule:
        provider = train_valid_test_datasets_provider
        flags += (["--regmix-mixture", args.regmix_mixture] if args.regmix_mixture else
                  ["--regmix-schedule", args.regmix_schedule]) + ["--regmix-domains", args.regmix_domains]
    else:
        import pretrain_gpt  # the checkout's script; its pretrain() call runs only under __main__

        provider = pretrain_gpt.train_valid_test_datasets_provider
        flags += ["--per-split-data-args-path", args.per_split_data_args_path]
    if args.multiple:
        flags += ["--multiple-validation-sets", "--full-validation"]
    sys.argv = ["pretrain_gpt.py", *flags, *args.extra]
    margs = parse_args(extra_args_provider=add_regmix_args)
    validate_args(margs)
    set_global_variables(margs, build_tokenizer=bool(margs.legacy_tokenizer))  # pretrain_gpt.py's get_tokenizer()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend, rank=0, world_size=1)
    try:
        parallel_state.initialize_model_parallel()
        train, valid, test = training.build_train_valid_test_datasets(provider)
        return _show_and_check(train, valid if isinstance(valid, list) else [valid], test, margs,
                               build_pretraining_data_loader)
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(run_guarded("check_megatron_lm", main))
