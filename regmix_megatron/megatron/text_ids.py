"""The ids of ``HuggingFaceTokenizer`` and ``TikTokenizer`` through megatron-core's own classes.

:class:`MegatronTextIds` builds megatron-core's ``MegatronTokenizer.from_pretrained`` with the arguments
Megatron-LM's ``build_tokenizer`` (0.16.1, default system) passes for the same flags; with ``--legacy-tokenizer``
the legacy wrappers' behaviour (HuggingFace: ``tokenizer(text).input_ids`` with a fast tokenizer; tiktoken:
``encode_ordinary``). ``spec`` is a :class:`regmix_megatron.data.tokenizer_types.TokenizerSpec`; this module does not
import it (``tokenizer_types`` calls this one: no cycle).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import DataError, RegmixError

if TYPE_CHECKING:
    from ..data.tokenizer_types import TokenizerSpec

_LIBRARIES = {"huggingface": "huggingface", "tiktoken": "tiktoken", "sentencepiece": "sentencepiece"}


def _quiet_libraries() -> None:
    """megatron-core's tokenizers log their vocabulary at INFO; transformers warns about long documents (they
    are split into sequences later, so the warning says nothing)."""
    logging.getLogger("megatron.core.tokenizers").setLevel(logging.WARNING)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
    except ModuleNotFoundError:
        pass


def _from_pretrained(spec: TokenizerSpec):
    """megatron-core's tokenizer for ``spec``, built the way Megatron-LM 0.16.1's ``build_tokenizer`` does."""
    from megatron.core.tokenizers import MegatronTokenizer

    family = spec.family
    kwargs: dict[str, Any] = {}
    if family == "huggingface":
        kwargs = {"vocab_file": spec.vocab_file, "merges_file": spec.merge_file,
                  "additional_special_tokens": list(spec.tokenizer_special_tokens or []),
                  "use_fast": spec.tokenizer_hf_use_fast or spec.legacy_tokenizer,
                  "trust_remote_code": spec.trust_remote_code,
                  "include_special_tokens": spec.tokenizer_hf_include_special_tokens or spec.legacy_tokenizer}
    elif family == "tiktoken":
        if spec.tiktoken_pattern:
            kwargs["pattern"] = spec.tiktoken_pattern
        if spec.vocab_size:
            kwargs["vocab_size"] = spec.vocab_size
        kwargs["num_special_tokens"] = spec.tiktoken_num_special_tokens
        kwargs["special_tokens"] = list(spec.tokenizer_special_tokens) if spec.tokenizer_special_tokens else None
    elif family == "sentencepiece":
        kwargs = {"legacy": False, "special_tokens": None}
    else:
        raise RegmixError(f"{spec.tokenizer_type}: megatron-core has no offline class for it")
    _quiet_libraries()
    try:
        return MegatronTokenizer.from_pretrained(tokenizer_path=spec.tokenizer_model,
                                                 metadata_path={"library": _LIBRARIES[family], "model_type": "gpt"},
                                                 **kwargs)
    except ModuleNotFoundError as exc:
        raise RegmixError(f"{spec.tokenizer_type} needs the {exc.name!r} package: pip install "
                          "'regmix-megatron[tokenizers]'") from None
    except (AssertionError, ValueError, KeyError, OSError) as exc:
        raise DataError(f"{spec.tokenizer_type} {spec.tokenizer_model}: megatron-core could not build the tokenizer "
                        f"({type(exc).__name__}: {str(exc)[:300]})") from None


class MegatronTextIds:
    """Ids of a HuggingFace or tiktoken tokenizer through megatron-core's class (see the module docstring)."""

    def __init__(self, spec: TokenizerSpec) -> None:
        self.spec = spec
        self.tokenizer = _from_pretrained(spec)
        self.eod = self.tokenizer.eod
        if self.eod is None or self.eod < 0:
            raise DataError(f"{spec.tokenizer_model}: the tokenizer has no end-of-sequence token (eos_token), so "
                            "documents cannot be separated; set eos_token in its tokenizer_config.json")
        self.vocab_size = int(self.tokenizer.vocab_size)
        self.pad = _pad_of(self.tokenizer)
        inner = self.tokenizer._tokenizer
        if spec.family == "tiktoken" and spec.legacy_tokenizer:
            self._encode = inner.tokenizer.encode_ordinary  # the legacy wrapper ignores special-token text
        else:
            self._encode = self.tokenizer.tokenize

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(self._encode(t)) for t in texts]


def _pad_of(tokenizer) -> int | None:
    try:
        pad = tokenizer.pad
    except Exception:  # megatron's tokenizers raise various errors for "no pad token"
        return None
    return None if pad is None else int(pad)
