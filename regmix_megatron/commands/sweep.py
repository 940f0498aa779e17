"""``regmix-megatron sweep plan|launch|status|collect``: many proxy runs, locally or on SLURM, one table."""

from __future__ import annotations

import sys
import time

from .mixture_flags import add_renormalize
from .flags import add_renamed
from .numbers import count


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="plan, launch, watch and collect a sweep of proxy runs",
                              description=__doc__)
    sub = p.add_subparsers(dest="sweep_command", metavar="ACTION")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    plan = sub.add_parser("plan", help="mixtures x one proxy train config -> SWEEP_DIR with a run list")
    plan.add_argument("--mixtures", required=True, help="mixtures.jsonl (from `regmix-megatron sample`)")
    plan.add_argument("--config", required=True, help="the proxy run config (YAML: preset and recipe fields; `domains:` required)")
    add_renamed(plan, "--output-dir", "--output", dest="output_dir", required=True, metavar="SWEEP_DIR",
                help="the sweep directory")
    plan.add_argument("--seed", type=count, default=None, help="seed of every run (default: the config's)")
    add_renormalize(plan, "each --mixtures line's")
    plan.set_defaults(func=_plan)

    launch = sub.add_parser("launch", help="run the pending runs (skips done ones, resumes interrupted ones)")
    launch.add_argument("sweep_dir", metavar="SWEEP_DIR")
    launch.add_argument("--executor", choices=("local", "slurm"), default="local")
    launch.add_argument("--max-attempts", type=count, default=3,
                        help="attempts per run before it counts as failed (default 3)")
    launch.add_argument("--dry-run", action="store_true", help="print the exact commands/script; run nothing")
    g = launch.add_argument_group("local executor")
    add_renamed(g, "--num-parallel", "--parallel", dest="num_parallel", type=count, default=None,
                   help="runs at once (default: cores // --threads-per-run)")
    g.add_argument("--threads-per-run", type=count, default=1, help="CPU threads per run (default 1)")
    g.add_argument("--reuse-process", action="store_true",
                   help="each worker is one process training runs back to back (imports paid once per "
                        "worker, not per run; fastest for small proxies)")
    g.add_argument("--no-wait", dest="wait_for_held", action="store_false",
                   help="return without waiting for runs held by another live worker (default: wait for them, "
                        "and train them here if their holder dies)")
    g = launch.add_argument_group("slurm executor")
    g.add_argument("--cpus-per-task", type=count, default=1)
    g.add_argument("--mem", default=None, help="memory per task, e.g. 8G")
    g.add_argument("--time", default=None, help="time limit per task, e.g. 02:00:00")
    g.add_argument("--gpus-per-task", type=count, default=0, help=">1 launches the run with torchrun")
    g.add_argument("--partition", default=None)
    g.add_argument("--account", default=None)
    g.add_argument("--throttle", type=count, default=32, help="array tasks running at once (default 32)")
    g.add_argument("--job-name", default="regmix-sweep")
    g.add_argument("--sbatch-arg", action="append", default=[], metavar="--OPTION=VALUE",
                   help="extra #SBATCH option, repeatable (e.g. --sbatch-arg=--qos=high)")
    g.add_argument("--wait", action="store_true",
                   help="block until no run is pending: wait for the job array, then resubmit runs whose task was "
                        "interrupted (time limit, preemption)")
    launch.set_defaults(func=_launch)

    status = sub.add_parser("status", help="done/running/failed/pending counts, progress, failed runs")
    status.add_argument("sweep_dir", metavar="SWEEP_DIR")
    status.add_argument("--all", dest="all_runs", action="store_true", help="list every run")
    status.set_defaults(func=_status)

    collect = sub.add_parser("collect", help="write results.csv and results.parquet (completed runs)")
    collect.add_argument("sweep_dir", metavar="SWEEP_DIR")
    collect.add_argument("--allow-incomplete", action="store_true",
                         help="collect even if some runs are still pending or running")
    collect.set_defaults(func=_collect)


def _plan(args) -> int:
    from ..fileio import check_output_paths
    from ..runs.sweep.plan import plan_from_files

    check_output_paths({"--mixtures": args.mixtures, "--config": args.config}, dirs={"--output-dir": args.output_dir})

    sweep, created = plan_from_files(args.mixtures, args.config, args.output_dir, seed=args.seed,
                                     renormalize=args.renormalize)
    verb = "planned" if created else "already planned (unchanged)"
    print(f"{verb}: {len(sweep.runs)} run(s) in {sweep.root} (recipe {sweep.recipe_hash}, seed {sweep.seed})")
    print(f"next: regmix-megatron sweep launch {sweep.root} --executor local|slurm")
    return 0


def _launch(args) -> int:
    from ..errors import ConfigError
    from ..runs.sweep import state as st
    from ..runs.sweep.launch import launch
    from ..runs.sweep.plan import Sweep
    from ..runs.sweep.slurm import last_job_id

    sweep = Sweep.load(args.sweep_dir)
    if args.max_attempts < 1:
        raise ConfigError(f"--max-attempts={args.max_attempts} is invalid: use 1 or more")
    options = _local_options(args) if args.executor == "local" else _slurm_options(args)
    if args.dry_run:
        return _dry_run(sweep, options)
    states = st.read_sweep_state(sweep, options.max_attempts)
    pending = [rid for rid, s in states.items() if s.status == st.PENDING]
    if args.executor == "slurm" and not pending:
        print("nothing to launch: no pending runs")
        return _summarize(sweep, states)
    if args.executor == "slurm" and not args.wait:
        launch(sweep, options, wait=False)
        print(f"submitted job array {last_job_id(sweep)}: {len(pending)} task(s)")
        print(f"watch: regmix-megatron sweep status {sweep.root}")
        return 0
    counts = st.count_statuses(states.values())
    bar = _bar(total=len(sweep.runs), initial=counts[st.DONE] + counts[st.FAILED])

    def on_progress(states, ended) -> None:
        counts = st.count_statuses(states.values())
        bar.set_note(f"running={counts[st.RUNNING]}, failed={counts[st.FAILED]}")
        bar.update_to(counts[st.DONE] + counts[st.FAILED])
        if ended is not None and ended.status != st.DONE:
            bar.write(describe_ended(ended))

    try:
        final = launch(sweep, options, on_progress=on_progress)
    finally:
        bar.close()
    return _summarize(sweep, final)


def describe_ended(state) -> str:
    """The line ``sweep launch`` prints when this launch is done with a run that did not succeed: failed for good,
    or left pending (stopped). A run another launch holds has not ended: it is listed in the summary instead."""
    from ..runs.sweep import state as st

    why = state.reason or ("stopped before it ended" if state.status == st.PENDING else "no reason recorded")
    return f"run {state.run_id}: {state.status} ({why}); log {state.log_path}"


def _local_options(args):
    from ..runs.sweep.local import LocalOptions

    return LocalOptions(parallel=args.num_parallel, threads_per_run=args.threads_per_run, max_attempts=args.max_attempts,
                        reuse_process=args.reuse_process, wait_for_held=args.wait_for_held)


def _slurm_options(args):
    from ..runs.sweep.slurm import SlurmOptions

    return SlurmOptions(cpus_per_task=args.cpus_per_task, mem=args.mem, time=args.time,
                        gpus_per_task=args.gpus_per_task, partition=args.partition, account=args.account,
                        throttle=args.throttle, job_name=args.job_name, max_attempts=args.max_attempts,
                        extra_sbatch_args=tuple(args.sbatch_arg))


def _dry_run(sweep, options) -> int:
    """Print the exact commands (local) or the job script (SLURM) a launch would run; run nothing."""
    from ..runs.sweep.local import LocalOptions, describe_local
    from ..runs.sweep.slurm import submit

    if isinstance(options, LocalOptions):
        print("\n".join(describe_local(sweep, options)))
        return 0
    planned = submit(sweep, options, dry_run=True)
    if planned is None:
        print("nothing to launch: no pending runs")
        return 0
    print(f"# would write {planned.runs_path} ({len(planned.run_ids)} run ids, one per line) and "
          f"{planned.script_path}:")
    print(planned.script)
    print(f"# then run: {' '.join(planned.sbatch_command())}")
    return 0


def _bar(total: int, initial: int):
    from .progress_bar import ProgressBar

    return ProgressBar(total, initial=initial, unit="run", desc="sweep", file=sys.stderr)


def _summarize(sweep, states) -> int:
    from ..runs.sweep import state as st

    counts = st.count_statuses(states.values())
    print(" ".join(f"{k}={v}" for k, v in counts.items()) + f" of {len(sweep.runs)} runs")
    _print_failed_and_held(states)
    if counts[st.FAILED] or counts[st.PENDING]:
        return 1
    return 0


def _print_failed_and_held(states) -> None:
    """A line for each failed run (its reason and log) and each run another launch holds (its host and pid)."""
    from ..runs.sweep import state as st

    for s in states.values():
        if s.status == st.FAILED:
            print(f"  failed {s.run_id}: {s.reason}; log {s.log_path}")
        elif s.status == st.RUNNING:
            lock = s.lock or {}
            print(f"  held by another launch {s.run_id}: host {lock.get('host', '?')}, pid {lock.get('pid', '?')} "
                  "trains it (this launch did not wait for it)")


def _status(args) -> int:
    from tqdm import tqdm

    from ..runs.sweep import state as st
    from ..runs.sweep.plan import Sweep

    sweep = Sweep.load(args.sweep_dir)
    states = st.read_sweep_state(sweep)
    counts = st.count_statuses(states.values())
    total = len(sweep.runs)
    print(f"sweep {sweep.root}: {total} runs")
    print("  ".join(f"{k}: {counts[k]}" for k in st.STATUSES))
    print(tqdm.format_meter(counts[st.DONE] + counts[st.FAILED], total, 0, ncols=80, unit="run",
                            prefix="finished", bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}"))
    now = time.time()
    for s in states.values():
        if s.status == st.RUNNING and s.lock:
            lk = s.lock
            print(f"  running {s.run_id}: attempt {lk.get('attempt', '?')} on {lk.get('host')} pid "
                  f"{lk.get('pid')}" + (f" job {lk['jobid']}" if lk.get("jobid") else "")
                  + f", for {now - float(lk.get('started_at', now)):.0f} s; log {s.log_path}")
    _print_failed_and_held(states)
    if args.all_runs:
        for s in states.values():
            print(f"  {s.run_id} {s.status} attempts={s.num_attempts}" + (f" ({s.reason})" if s.reason else ""))
    return 0


def _collect(args) -> int:
    from ..runs.sweep.collect import collect
    from ..runs.sweep.plan import Sweep

    sweep = Sweep.load(args.sweep_dir)
    out = collect(sweep, allow_incomplete=args.allow_incomplete)
    print(f"wrote {out.csv_path} and {out.parquet_path}: {len(out.table)} run(s), "
          f"{len(sweep.domain_names)} domain(s)")
    for e in out.excluded:
        print(f"  excluded {e.run_id} ({e.status}): {e.reason}; log {e.log_path}")
    return 0
