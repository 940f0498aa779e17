"""The Megatron edge: the only subpackage that imports ``megatron.*`` (and reads Megatron's global args).

Owns everything that needs torch and megatron-core: the model (``model``, ``shims`` for CPU), the training
loop of one run (``train.run_training(RunConfig)``, checkpoints, per-domain validation), Megatron datasets and
the dataset provider for Megatron-LM's ``pretrain_gpt.py`` (``datasets``, ``indexed``, ``provider``,
``tokenizer``), and the in-process sweep worker (``sweep_runner``: the trainer behind ``sweep.attempt``'s
in-process runner). It may import the pure core and ``regmix_megatron.runs.sweep``; nothing outside this
subpackage imports it at module level (commands import it inside their handlers; preprocessing calls
``indexed`` from inside a function to write ``.bin/.idx``).
"""

import logging as _logging
import warnings as _warnings

#: Messages megatron-core prints at import on machines without Transformer Engine/apex (its fallbacks work; the
#: messages tell the user nothing they can act on), silenced before any ``megatron.*`` import of this package.
QUIET_WARNINGS = (r"Transformer Engine and Apex are not installed.*", r".*Apex is not installed.*",
                  r".*Transformer Engine is not installed.*", r"Apex is not installed.*")
QUIET_LOGGERS = ("megatron.core.distributed.fsdp",)


def quiet_library_messages() -> None:
    """Silence megatron-core's import-time fallback warnings and INFO lines (idempotent)."""
    for pattern in QUIET_WARNINGS:
        _warnings.filterwarnings("ignore", message=pattern, category=UserWarning)
    for name in QUIET_LOGGERS:
        _logging.getLogger(name).setLevel(_logging.WARNING)


quiet_library_messages()
