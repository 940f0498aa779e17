"""``regmix-megatron export``: a mixture as the files Megatron-LM's command line reads.

Writes into ``--output-dir``: ``data_path.txt`` (the ``--data-path`` value), ``data_args.txt`` (for
``--data-args-path``), ``per_split_data_args.json`` (for ``--per-split-data-args-path``: weighted train
blend, every domain's valid/test prefixes unweighted), ``per_split_data_args_no_test.json``, ``megatron_args.txt``
(the Megatron-LM flags to paste) and ``mixture.json``. ``--path-prefix OLD=NEW`` maps this machine's paths to the
cluster's. Prints the flags. With ``--schedule FILE``: ``schedule.json`` (for the provider's ``--regmix-schedule``,
exact), ``phase<k>/`` with those files for each phase, and ``phases.json`` (each phase's first step with
``--train-iters``, Megatron-LM's ``--phase-transition-iterations``, and what a job per phase repeats or skips).
"""

from __future__ import annotations

import argparse

from .mixture_flags import add_renormalize
from .flags import add_renamed
from .numbers import count


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a mixture as Megatron-LM --data-path / --data-args-path / --per-split-data-args-path files",
        description="Export a mixture for Megatron-LM: zero-weight domains dropped, multi-prefix domains split by "
        "token count, weights written so they round-trip exactly. The mixture's domains must match domains.json.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--mixture", metavar="FILE",
                   help="mixture JSON/YAML ({domain: weight} or {'weights': {...}}), or FILE.jsonl:INDEX for line "
                        "INDEX (0-based) of `regmix-megatron sample` output")
    what.add_argument("--schedule", metavar="FILE",
                      help="schedule JSON/YAML (phases with fractions and weights): schedule.json for "
                           "--regmix-schedule, and per-phase files for a job per phase")
    p.add_argument("--train-iters", type=count, default=None, metavar="N",
                   help="with --schedule: the run's steps, to write each phase's first step")
    p.add_argument("--global-batch-size", type=count, default=None, metavar="N",
                   help="with --schedule and --train-iters: also estimate what a job per phase repeats")
    p.add_argument("--index", type=count, default=None,
                   help="with --mixture FILE.jsonl: the 0-based line to export (same as FILE.jsonl:INDEX)")
    add_renamed(p, "--domains-json", "--domains", dest="domains_json", required=True, metavar="DOMAINS_JSON",
                help="domains.json (from `preprocess` or `domains import`)")
    p.add_argument("--output-dir", required=True, metavar="DIR")
    add_renormalize(p)
    p.add_argument("--path-prefix", action="append", default=[], metavar="OLD=NEW",
                   help="rewrite paths starting with OLD to start with NEW in the written files (repeatable), e.g. "
                        "--path-prefix /home/me/data=/lustre/team/data")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """One export: a mixture (or a one-phase schedule) as its files; a schedule of several phases as
    ``schedule.json``, ``phase<k>/`` and ``phases.json``."""
    from ..data.manifest import DomainRegistry
    from ..errors import RegmixError
    from ..export.files import EXPORT_FOLDER_FILES, PathMap, export, read_phases
    from ..fileio import check_output_paths
    from ..mixtures.schedule import load_schedule, schedule_of
    from ..output_folder import check_output_folder

    check_output_paths({"--mixture": args.mixture, "--schedule": args.schedule, "--domains-json": args.domains_json},
                       dirs={"--output-dir": args.output_dir})
    for flag, value in (("--train-iters", args.train_iters), ("--global-batch-size", args.global_batch_size)):
        if value is not None and value <= 0:
            raise RegmixError(f"{flag} {value}: use a positive number")
    check_output_folder(args.output_dir, EXPORT_FOLDER_FILES, "--output-dir")  # before the work; errors name it
    flag, spec = ("--schedule", args.schedule) if args.schedule is not None else ("--mixture", _mixture_spec(args))
    registry = DomainRegistry.load(args.domains_json)
    path_map = PathMap.parse(args.path_prefix)
    value = _load_mixture(args, spec) if flag == "--mixture" else None
    try:
        if value is None:
            value = load_schedule(spec)
        files = export(registry, value, args.output_dir, train_iters=args.train_iters,
                       global_batch_size=args.global_batch_size, path_map=path_map, what="--output-dir")
    except RegmixError as exc:
        raise RegmixError(f"{flag} {spec} with --domains-json {args.domains_json}: {exc}") from None
    schedule = schedule_of(value)
    if schedule.is_static:
        print("\n".join(describe_export(schedule.mixtures[0], files)))
    else:
        print("\n".join(describe_phases(schedule, read_phases(args.output_dir), files)))
    return 0


def _mixture_spec(args: argparse.Namespace) -> str:
    """``--mixture`` with ``--index`` folded in (``FILE.jsonl:INDEX``)."""
    from ..errors import RegmixError

    spec = args.mixture
    if args.index is not None:
        if not spec.endswith(".jsonl"):
            raise RegmixError(f"--index {args.index} needs --mixture FILE.jsonl (a `sample` output), got {spec}")
        if args.index < 0:
            raise RegmixError(f"--index {args.index}: use a 0-based line number >= 0")
        spec = f"{spec}:{args.index}"
    return spec


def _load_mixture(args: argparse.Namespace, spec: str):
    """The ``--mixture`` (the one rule on its sum, ``--renormalize``)."""
    from ..errors import RegmixError
    from ..export.files import load_mixture_arg

    try:
        return load_mixture_arg(spec, renormalize=args.renormalize)
    except RegmixError as exc:
        raise RegmixError(f"--mixture: {exc}") from None


def describe_export(mixture, files: dict) -> list[str]:
    """The lines ``export`` and ``search`` print: the mixture, the files, and the Megatron-LM flags to paste."""
    from pathlib import Path

    dropped = [d for d, w in mixture.as_dict().items() if w == 0]
    lines = [f"mixture {mixture.hash}: " + ", ".join(f"{d} {w:.4f}" for d, w in
                                                   sorted(mixture.nonzero().items(), key=lambda kv: -kv[1]))
             + (f" (weight 0, dropped: {', '.join(dropped)})" if dropped else "")]
    lines.append(f"export files in {Path(files['megatron_args']).parent}/: "
                 + ", ".join(Path(p).name for p in files.values()))
    lines.append("Megatron-LM flags (pretrain_gpt.py; also in megatron_args.txt):")
    lines.append("  " + Path(files["megatron_args"]).read_text(encoding="utf-8").strip())
    return lines


def describe_phases(schedule, doc: dict, files: dict) -> list[str]:
    """The lines ``export`` prints for a schedule of several phases: each phase's files and first step, the exact
    path (the provider), a job per phase and what it repeats."""
    lines = [f"schedule {schedule.hash}: {schedule.num_phases} phases"]
    for row in doc["phases"]:
        steps = f", steps {row['start_step']}..{row['end_step'] - 1}" if "start_step" in row else ""
        lines.append(f"  phase {row['phase']}: fraction {row['fraction']:.4g}{steps}: {row['per_split_data_args']}")
    lines.append(f"exact (recommended): {doc['exact']['flags']} with regmix_megatron.megatron.provider")
    if "phase_transition_iterations" in doc:
        lines.append(f"a job per phase: --phase-transition-iterations {doc['phase_transition_iterations']} and each "
                     "phase's --per-split-data-args-path in turn")
    lines.append(f"warning: {doc['restart_warning']}")
    for name, r in (doc.get("restart_repeats") or {}).items():
        lines.append(f"  {name}: {r['drawn']:.0f} samples drawn over the run, about {r['repeated']:.0f} of them "
                     "served again by a job per phase")
    lines.append(f"files: {files['schedule']}, {files['phases']}")
    return lines
