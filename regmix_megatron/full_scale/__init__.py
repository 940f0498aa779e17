"""Step 7, full-scale runs: which mixtures are trained at target scale, their evaluation and verdicts."""
