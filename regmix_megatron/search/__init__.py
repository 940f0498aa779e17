"""Step 5, search: simulate a large pool of candidate mixtures, predict them, average the top-k; the search's files."""
