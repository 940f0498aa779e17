"""The Megatron edge: the only subpackage that imports ``megatron.*`` (and reads Megatron's global args).

Owns training (the model, the training loop, checkpoints, per-domain evaluation), the blended datasets and the
Megatron-LM provider, the indexed ``.bin/.idx`` files and the tokenizer adapter. May import torch, megatron-core
and the pure core (mixture, manifest, export, train_config, ...); the core never imports it at import time (it
may call into it from inside a function, as preprocessing does to write ``.bin/.idx``).
"""
