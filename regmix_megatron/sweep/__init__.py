"""Sweeps: many proxy runs (mixtures x one proxy train config), locally or on SLURM, resumable.

Layout of a sweep directory (``SWEEP_DIR``)::

    sweep.json                  resolved proxy config, domains path, seed, the run list (written last)
    launch.json                 settings of the last launch (executor, max_attempts)
    runs/<run_id>/config.yaml   the train config of one run (mixture, seed, output_dir filled in)
    runs/<run_id>/result.json   written by the trainer, atomically, only on success
    runs/<run_id>/status.json   written by the trainer when a run diverged or failed
    runs/<run_id>/lock.json     held while an attempt runs: pid, host, SLURM job id, heartbeat
    runs/<run_id>/logs/attempt-<n>.{log,json}   output and record of every attempt (kept)
    slurm/                      generated sbatch scripts, run lists, SLURM task logs
    results.csv, results.parquet   the table ``sweep collect`` writes

Modules: ``plan`` (what to run), ``state`` (what happened, from the files), ``worker`` (run one run with
attempts, lock and heartbeat), ``local`` and ``slurm`` (executors), ``collect`` (the results table).
Nothing here imports megatron: runs are subprocesses of ``regmix-megatron train``.
"""
