"""The Megatron edge: the only subpackage that imports ``megatron.*`` (and reads Megatron's global args).

Owns everything that needs torch and megatron-core: the model (``model``, ``shims`` for CPU), the training
loop of one run (``train.run_training(RunConfig)``, checkpoints, per-domain validation), Megatron datasets and
the dataset provider for Megatron-LM's ``pretrain_gpt.py`` (``datasets``, ``indexed``, ``provider``,
``tokenizer``), and the in-process sweep worker (``sweep_runner``: the trainer behind ``sweep.attempt``'s
in-process runner). It may import the pure core and ``regmix_megatron.sweep``; nothing outside this
subpackage imports it at module level (commands import it inside their handlers; preprocessing calls
``indexed`` from inside a function to write ``.bin/.idx``).
"""
