"""Plug a RegMix mixture into a Megatron-LM ``pretrain_gpt.py``-style script.

Usage in a training script (Megatron-LM's ``megatron.training.pretrain``)::

    from regmix_megatron.megatron.provider import add_regmix_args, train_valid_test_datasets_provider

    pretrain(train_valid_test_datasets_provider, model_provider, ModelType.encoder_or_decoder, forward_step,
             extra_args_provider=add_regmix_args)

and run it with ``--regmix-mixture mixture.json --regmix-domains domains.json [--regmix-max-epochs 4]``
(instead of ``--data-path``), or ``--regmix-schedule schedule.json`` instead of ``--regmix-mixture`` to train
phases with their own blends (docs/SCHEDULES.md: one dataset for the whole run, exact across phases and resumes). Only :func:`train_valid_test_datasets_provider` reads Megatron's global args
(lazily, via ``megatron.training.get_args``); everything else takes a plain namespace, so
:func:`build_datasets_from_args` runs (and is tested) without ``megatron.training``.

What the provider does: loads the registry and the mixture, refuses a mixture whose domains differ from the
registry's training domains or that gives weight to an evaluation-only domain, and a tokenizer (``--tokenizer-model``) whose sha256 differs from the one the data was tokenized
with, builds the training blend with megatron-core's ``BlendedMegatronDatasetBuilder(GPTDataset, ...)``,
warns when a domain would be repeated more than ``--regmix-max-epochs`` times, and logs the requested vs
realized per-domain token fractions read from the blended dataset's index (per phase for a schedule). Validation: with
``--multiple-validation-sets`` one dataset per domain (every domain, unweighted: one loss per domain, identical
tokens whatever the mixture), otherwise the mixture's blend of the validation prefixes. Test: every domain's test
prefixes blended by dataset size, whatever the mixture: what ``pretrain_gpt.py`` builds from the ``test`` list of
our ``per_split_data_args.json``, so both paths evaluate the same test set.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any, Sequence

from ..data.manifest import DomainRegistry
from ..errors import ConfigError, DataError
from ..export.files import load_mixture_arg
from ..mixtures.domains import check_trainable
from ..mixtures.schedule import Schedule, load_schedule
from . import datasets as ds
from .train_dataset import build_train_dataset, log_train_table

logger = logging.getLogger(__name__)

#: The mixture rule's flag, with the provider's prefix (``--renormalize`` elsewhere).
RENORMALIZE_FLAG_PROVIDER = "--regmix-renormalize"


def add_regmix_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Megatron-LM ``extra_args_provider``: adds the ``regmix`` argument group and returns the parser."""
    group = parser.add_argument_group(title="regmix")
    group.add_argument("--regmix-mixture", type=str, default=None,
                       help="Mixture file (JSON/YAML {domain: weight}, or sample output FILE.jsonl:INDEX) "
                            "to train on; replaces --data-path.")
    group.add_argument("--regmix-schedule", type=str, default=None,
                       help="Schedule file (schedule.json: phases, each a fraction of the training tokens with its "
                            "own mixture) to train on instead of --regmix-mixture; replaces --data-path.")
    group.add_argument("--regmix-domains", type=str, default=None,
                       help="domains.json written by `regmix-megatron preprocess` (prefixes, token counts, "
                            "tokenizer sha256).")
    group.add_argument("--regmix-max-epochs", type=float, default=None,
                       help="Warn when the mixture repeats a domain's training tokens more than this many times.")
    group.add_argument(RENORMALIZE_FLAG_PROVIDER, action="store_true",
                       help="Rescale a --regmix-mixture whose weights do not sum to 1 (within 1e-3) so that they "
                            "do, on purpose (default: refuse it).")
    return parser


def _is_dataset_built_on_rank() -> bool:
    """Megatron's convention: first/last pipeline stage, tensor-parallel rank 0 (all ranks when model
    parallelism is not initialized)."""
    from megatron.core import parallel_state as mpu

    if not mpu.model_parallel_is_initialized():
        return True
    return ((mpu.is_pipeline_first_stage() or mpu.is_pipeline_last_stage())
            and mpu.get_tensor_model_parallel_rank() == 0)


def _check_tokenizer(args: Any, registry: DomainRegistry) -> None:
    """Refuse Megatron-LM tokenizer flags that name another tokenizer than the one the data was made with
    (type family, and the sha256 over its files); no tokenizer flags: nothing to check."""
    from ..data.tokenizer_types import FAMILIES, TokenizerSpec, describe, identity_sha256

    given = TokenizerSpec.from_args(args)
    if not (given.tokenizer_model or given.vocab_file) or given.tokenizer_type not in FAMILIES:
        return
    recorded = registry.tokenizer
    if given.family != recorded.type:
        raise DataError(f"--tokenizer-type {given.tokenizer_type}: the data in --regmix-domains {registry.path} was "
                        f"made with {describe(recorded.spec)}; pass {' '.join(recorded.spec.megatron_flags())}")
    actual = identity_sha256(given.resolved())
    if actual != recorded.sha256:
        raise DataError(
            f"{describe(given)}: sha256 {actual[:12]}... differs from the tokenizer the data in "
            f"--regmix-domains {registry.path} was built with ({recorded.sha256[:12]}..., "
            f"{describe(recorded.spec)}): use that tokenizer or re-run preprocessing with this one")


def load_schedule_and_registry(args: Any) -> tuple[Schedule, DomainRegistry]:
    """The registry (``--regmix-domains``, its files checked) and what the run trains, checked against it: the
    schedule of ``--regmix-schedule``, or the mixture of ``--regmix-mixture`` (its one-phase schedule)."""
    if not getattr(args, "regmix_domains", None):
        raise ConfigError("--regmix-domains is required: the domains.json written by `regmix-megatron preprocess`")
    if getattr(args, "regmix_schedule", None) and getattr(args, "regmix_mixture", None):
        raise ConfigError("--regmix-mixture and --regmix-schedule are both set: give one (a one-phase schedule is "
                          "its mixture)")
    if not getattr(args, "regmix_schedule", None) and not getattr(args, "regmix_mixture", None):
        raise ConfigError("--regmix-mixture (or --regmix-schedule) is required: a mixture file (regmix-megatron "
                          "export/search output)")
    registry = DomainRegistry.load(args.regmix_domains)
    registry.verify_files()
    if getattr(args, "regmix_schedule", None):
        schedule = load_schedule(str(args.regmix_schedule))
        registry.check_domains(schedule.domains, f"--regmix-schedule {args.regmix_schedule}")
        return schedule, registry
    mixture = load_mixture_arg(str(args.regmix_mixture), renormalize=bool(getattr(args, "regmix_renormalize", False)),
                               flag=RENORMALIZE_FLAG_PROVIDER)
    return Schedule.from_mixture(check_trainable(registry, mixture, f"--regmix-mixture {args.regmix_mixture}")), \
        registry


def build_datasets_from_args(args: Any, train_val_test_num_samples: Sequence[int | None], *,
                             tokenizer: Any = None) -> tuple[Any, Any, Any]:
    """Build ``(train, valid, test)`` from a plain namespace with the fields Megatron-LM's args have:
    ``regmix_mixture`` (or ``regmix_schedule``), ``regmix_domains, regmix_max_epochs, seq_length, seed`` and
    optionally ``tokenizer_model, data_cache_path, multiple_validation_sets, full_validation, reset_position_ids,
    reset_attention_mask, eod_mask_loss, mid_level_dataset_surplus, global_batch_size, rampup_batch_size``.
    ``tokenizer`` defaults to the one recorded in the registry (loaded and checked by sha256). With a schedule,
    a blended validation/test set (no ``--multiple-validation-sets``) blends the schedule's overall token shares."""
    schedule, registry = load_schedule_and_registry(args)
    _check_tokenizer(args, registry)
    if tokenizer is None:
        from .tokenizer_adapter import load_registry_tokenizer

        tokenizer = load_registry_tokenizer(registry)
    if len(train_val_test_num_samples) != 3:
        raise ConfigError(f"train_val_test_num_samples={list(train_val_test_num_samples)}: give three sizes")
    num_train, num_valid, num_test = train_val_test_num_samples
    surplus = getattr(args, "mid_level_dataset_surplus", None)
    options = ds.DatasetOptions(
        seq_length=int(args.seq_length), seed=int(args.seed), tokenizer=tokenizer,
        path_to_cache=getattr(args, "data_cache_path", None),
        reset_position_ids=bool(getattr(args, "reset_position_ids", False)),
        reset_attention_mask=bool(getattr(args, "reset_attention_mask", False)),
        eod_mask_loss=bool(getattr(args, "eod_mask_loss", False)),
        mid_level_dataset_surplus=0.005 if surplus is None else float(surplus),
        is_built_on_rank=_is_dataset_built_on_rank)
    train = None
    if num_train:
        # phases start on steps unless the batch size ramps up
        gbs = None if getattr(args, "rampup_batch_size", None) else getattr(args, "global_batch_size", None)
        train = build_train_dataset(registry, schedule, num_samples=int(num_train), options=options,
                                    global_batch_size=gbs, max_epochs=getattr(args, "regmix_max_epochs", None))
        if train is not None and _is_dataset_built_on_rank():
            log_train_table(train, registry, schedule, seq_length=options.seq_length, global_batch_size=gbs)

    valid = None
    if getattr(args, "multiple_validation_sets", False):
        full = bool(getattr(args, "full_validation", False))
        if full or num_valid:
            pairs = ds.build_validation_datasets(registry, options, split="valid",
                                                 num_samples=None if full else int(num_valid))
            valid = [d for _, d in pairs]
            logger.info("validation: one dataset per domain, in order %s", [n for n, _ in pairs])
    elif num_valid:
        valid = build_train_dataset(registry, schedule.overall(), split="valid", num_samples=int(num_valid),
                                    options=options)

    test = None
    if num_test:
        test = ds.build_unweighted_dataset(registry, options, split="test", num_samples=int(num_test))
    return train, valid, test


def check_megatron_lm_args(args: Any) -> None:
    """Refuse flags that conflict with this provider: Megatron's own data flags (silently ignored otherwise),
    and ``--multiple-validation-sets`` without ``--full-validation``, which Megatron-LM's ``pretrain`` refuses
    only after the datasets are built (as of 0.16.1)."""
    for name in ("data_path", "data_args_path", "per_split_data_args_path", "train_data_path"):
        if getattr(args, name, None):
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} is set: this dataset provider takes the blend from --regmix-mixture FILE "
                              f"and --regmix-domains domains.json; drop {flag}, or use pretrain_gpt.py's own "
                              f"provider, which reads {flag} (files from `regmix-megatron export`)")
    if (getattr(args, "multiple_validation_sets", False) and not getattr(args, "full_validation", False)
            and not getattr(args, "skip_train", False)):
        raise ConfigError("--multiple-validation-sets without --full-validation: Megatron-LM evaluates one "
                          "validation set per domain only over each whole set; add --full-validation (or drop "
                          "--multiple-validation-sets for a single blended validation set)")
    if getattr(args, "regmix_schedule", None) and getattr(args, "phase_transition_iterations", None):
        raise ConfigError("--phase-transition-iterations is set with --regmix-schedule: Megatron-LM would then build "
                          "each phase's data afresh (sized for the phase, read from its start); the schedule already "
                          "trains every phase from one dataset of the whole run: drop --phase-transition-iterations")


def train_valid_test_datasets_provider(train_val_test_num_samples: Sequence[int | None], vp_stage: int | None = None):
    """Megatron-LM ``pretrain`` datasets provider (the form ``pretrain_gpt.py`` passes), reading the global
    args lazily. ``vp_stage`` is accepted for newer Megatron-LM versions and unused."""
    from megatron.training import get_args

    args = get_args()
    check_megatron_lm_args(args)
    return build_datasets_from_args(args, train_val_test_num_samples)


# Megatron-LM builds datasets on every rank that needs them (see pretrain_gpt.py).
train_valid_test_datasets_provider.is_distributed = True  # type: ignore[attr-defined]

__all__ = ["add_regmix_args", "train_valid_test_datasets_provider", "build_datasets_from_args",
           "check_megatron_lm_args", "load_schedule_and_registry"]
