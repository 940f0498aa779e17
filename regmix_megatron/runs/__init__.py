"""Step 3, proxy runs: how a run is trained (recipe), one run (config, id, run directory), sweeps of runs
and their results table, and the seed noise of runs."""
