"""Step 6, export: a mixture or schedule as the files Megatron-LM's command line reads."""
