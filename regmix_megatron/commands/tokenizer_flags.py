"""Megatron-LM's tokenizer flags (``_add_tokenizer_args`` of Megatron-LM 0.16.1: names, meanings, defaults), shared
by ``preprocess``, ``tools/preprocess_data.py`` and ``domains import``; :func:`spec_from_args` turns them into a
:class:`~regmix_megatron.data.tokenizer_types.TokenizerSpec`. Flags that only matter to training (``--padded-vocab-size``)
are accepted and ignored, as Megatron-LM's preprocessing ignores them."""

from __future__ import annotations

import argparse
import logging

from ..data.tokenizer_types import DEFAULT_TYPE, MEGATRON_TYPES
from .numbers import count

logger = logging.getLogger(__name__)


def add_tokenizer_arguments(parser, *, model_help: str | None = None) -> None:
    g = parser.add_argument_group("tokenizer (Megatron-LM's flags)")
    g.add_argument("--tokenizer-type", default=None, choices=MEGATRON_TYPES, metavar="TYPE",
                   help=f"Megatron-LM tokenizer type (default {DEFAULT_TYPE}): SentencePieceTokenizer, "
                        "GPTSentencePieceTokenizer, Llama2Tokenizer (--tokenizer-model X.model), GPT2BPETokenizer "
                        "(--vocab-file vocab.json --merge-file merges.txt), HuggingFaceTokenizer (--tokenizer-model "
                        "DIR, a local tokenizer directory), TikTokenizer (--tokenizer-model vocab.json --vocab-size N)")
    g.add_argument("--tokenizer-model", metavar="PATH",
                   help=model_help or "SentencePiece .model (or a `tokenizer train` directory); HuggingFace tokenizer "
                                      "directory; tiktoken vocabulary .json")
    g.add_argument("--vocab-file", metavar="FILE", help="GPT-2 vocab.json (GPT2BPETokenizer)")
    g.add_argument("--merge-file", metavar="FILE", help="GPT-2 merges.txt (GPT2BPETokenizer)")
    g.add_argument("--vocab-size", type=count, default=None,
                   help="TikTokenizer: vocabulary size with special tokens (megatron-core's default 131072)")
    g.add_argument("--padded-vocab-size", type=count, default=None, help=argparse.SUPPRESS)
    g.add_argument("--vocab-extra-ids", type=count, default=0, help=argparse.SUPPRESS)
    g.add_argument("--tokenizer-metadata", default=None, help=argparse.SUPPRESS)
    g.add_argument("--tokenizer-special-tokens", nargs="+", default=None, metavar="TOKEN",
                   help="HuggingFace: additional special tokens; TikTokenizer: the special tokens")
    g.add_argument("--legacy-tokenizer", action="store_true",
                   help="Megatron-LM's legacy tokenizer system (GPT-2 BPE gives the same ids either way)")
    g.add_argument("--tiktoken-pattern", choices=("v1", "v2"), default=None, help="TikTokenizer split pattern")
    g.add_argument("--tiktoken-num-special-tokens", type=count, default=1000)
    g.add_argument("--tiktoken-special-tokens", nargs="+", default=None, help=argparse.SUPPRESS)
    g.add_argument("--tokenizer-sentencepiece-legacy", action="store_true", help=argparse.SUPPRESS)
    g.add_argument("--tokenizer-hf-use-fast", action="store_true", help="HuggingFace: load the fast tokenizer")
    g.add_argument("--tokenizer-hf-include-special-tokens", action="store_true",
                   help="HuggingFace: ids include the tokenizer's own special tokens (e.g. BOS)")
    g.add_argument("--trust-remote-code", action="store_true", help="HuggingFace: allow the directory's own code")


def spec_from_args(args: argparse.Namespace):
    """The :class:`TokenizerSpec` the flags name (refusing the flags whose meaning cannot be honoured)."""
    from ..data.tokenizer_types import TokenizerSpec
    from ..errors import RegmixError

    if getattr(args, "vocab_extra_ids", 0):
        raise RegmixError(f"--vocab-extra-ids {args.vocab_extra_ids}: T5 sentinel tokens are not supported for GPT "
                          "pre-training data; drop the flag")
    if getattr(args, "tokenizer_metadata", None):
        raise RegmixError("--tokenizer-metadata: a custom metadata file can change which tokenizer class Megatron "
                          "builds; not supported here: name the tokenizer with --tokenizer-type and its files")
    if getattr(args, "tiktoken_special_tokens", None):
        logger.warning("--tiktoken-special-tokens is unused by Megatron-LM 0.16.1 (it reads "
                       "--tokenizer-special-tokens); ignored")
    spec = TokenizerSpec.from_args(args)
    if args.tokenizer_type is None:
        spec = TokenizerSpec.from_args(argparse.Namespace(**{**vars(args), "tokenizer_type": DEFAULT_TYPE}))
    if spec.tokenizer_type not in ("GPT2BPETokenizer",) and not spec.tokenizer_model:
        raise RegmixError(f"--tokenizer-model is required for --tokenizer-type {spec.tokenizer_type}")
    return spec.resolved().check()
