"""``regmix-megatron train CONFIG``: train one model on megatron-core (a proxy or the target run).

Exit codes: 0 completed (or already completed), 2 bad config/data, 3 diverged (NaN/inf loss; ``status.json``
holds the step, no ``result.json`` is written). Multi-process: ``torchrun --nproc-per-node N -m
regmix_megatron.cli train CONFIG`` (or the ``regmix-megatron`` script under torchrun).
"""

from __future__ import annotations

import argparse

from .mixture_flags import add_renormalize


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a GPT model on megatron-core with a data mixture; per-domain validation loss",
        description="Train (or resume) one run: preset + config + --set overrides; writes config.yaml, "
        "metrics.jsonl, checkpoints/ and, on success, result.json into the output directory.",
    )
    p.add_argument("config", help="run config YAML (preset, domains, mixture, seed, output_dir, recipe overrides)")
    p.add_argument("--output-dir", default=None, help="run directory (overrides output_dir of the config)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.SUB=VALUE",
                   help="override a config field, e.g. --set optim.train_steps=200 (repeatable; YAML values)")
    p.add_argument("--force", action="store_true",
                   help="discard a previous result/checkpoints in the output directory and train from scratch")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    add_renormalize(p, "the run's mixture")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import logging
    import os

    import yaml

    from ..fileio import check_output_paths
    from ..runs.recipe import parse_overrides
    from ..runs.run_config import load_run_config
    from ..runs.run_dir import CONFIG_FILE, DIVERGED, RunDir, RunResult, RunStatus

    check_output_paths({"CONFIG": args.config}, dirs={"--output-dir": args.output_dir}, own_records=(CONFIG_FILE,))
    overrides = parse_overrides(args.overrides, flag="--set")
    cfg = load_run_config(args.config, overrides=overrides, output_dir=args.output_dir)
    check_output_paths({"CONFIG": args.config, "domains": cfg.domains,
                        "mixture": cfg.mixture if isinstance(cfg.mixture, str) else None,
                        "schedule": cfg.schedule if isinstance(cfg.schedule, str) else None},
                       dirs={"the run directory (--output-dir, or output_dir in CONFIG)": cfg.output_dir},
                       own_records=(CONFIG_FILE,))
    if args.renormalize and cfg.mixture is not None:  # rescaled here, then inline: the run records what it trains
        from ..mixtures.mixture import Mixture

        mixture = Mixture.load(cfg.mixture, renormalize=True) if isinstance(cfg.mixture, str) else \
            Mixture.from_dict(dict(cfg.mixture), renormalize=True, source=f"{args.config}: mixture")
        cfg = cfg.replace(mixture=mixture.as_dict())
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0

    from ..megatron.train import EXIT_DIVERGED, run_training, shutdown_distributed

    rank0 = os.environ.get("RANK", "0") == "0"
    if not getattr(args, "verbose", False):
        logging.getLogger("megatron.core").setLevel(logging.WARNING)  # its per-parameter INFO listing
    if not rank0:
        logging.getLogger().setLevel(logging.WARNING)  # rank 0 logs
    result = run_training(cfg, force=args.force)
    shutdown_distributed()  # under torchrun: leave the process group cleanly
    files = RunDir(cfg.output_dir)
    if result.get("status") == DIVERGED:
        if rank0:
            print(f"diverged at step {RunStatus.from_json_obj(result, str(files.status)).step}: see {files.status}")
        return EXIT_DIVERGED
    if rank0:
        done = RunResult.from_json_obj(result, str(files.result))
        losses = ", ".join(f"{k} {v:.4f}" for k, v in done.val_loss.items())
        print(f"{done.status}: {done.steps} steps, {done.tokens} tokens; val loss {losses}")
    return 0
