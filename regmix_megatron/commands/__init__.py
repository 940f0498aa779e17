"""The command line: one module per ``regmix-megatron`` subcommand, each with ``register(subparsers)``.

Owns the flags, their help and their error messages, and nothing else: a handler parses, calls the module that
owns the work (the sampler, the search, the export, regression, pipeline, sweep, the Megatron edge ...) and prints.
It may import any part of the package, but only inside the handler (so ``--help`` stays fast); nothing imports it
except ``cli.py``.
"""
