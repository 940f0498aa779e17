"""Sweeps: many proxy runs (mixtures x one proxy recipe), locally or on SLURM, resumable.

Owns the sweep directory and everything that happens in it: planning runs with content-derived ids (``plan``),
their state read from files only (``state``), the one attempt protocol of a run with its two runners, a
subprocess or a call in this process (``attempt``), the SLURM task entry point (``worker``), the executors
(``local``, ``slurm``), the one launch-and-wait that the CLI and the pipeline call (``launch``), and the
results table (``collect``). It may import the pure core (``recipe``, ``run_config``, ``mixture``,
``manifest``, ``fileio``, ``hashing``, ``configs``, ``errors``), numpy and pandas; never torch or megatron:
the trainer runs as ``regmix-megatron train`` subprocesses, or in the worker processes of
``regmix_megatron.megatron.sweep_runner``, which the local executor starts by module name.

Layout of a sweep directory (``SWEEP_DIR``)::

    sweep.json                  recipe, domains.json (relative path), seed, the run list (written last)
    launch.json                 settings of the last launch (executor, max_attempts)
    runs/<run_id>/config.yaml   the run config of one run (paths relative to the run directory)
    runs/<run_id>/result.json   written by the trainer, atomically, only on success
    runs/<run_id>/status.json   written by the trainer when a run diverged or failed
    runs/<run_id>/lock.json     held while an attempt runs: pid, host, SLURM job id, mode, heartbeat
    runs/<run_id>/logs/attempt-<n>.{log,json}   output and record of every attempt (kept)
    slurm/                      generated sbatch scripts, run lists, SLURM task logs
    results.csv, results.parquet   the table ``sweep collect`` writes
"""
