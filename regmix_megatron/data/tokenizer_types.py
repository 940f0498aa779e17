"""The tokenizers Megatron-LM users name with ``--tokenizer-type``: which files define one, its identity, its ids.

A :class:`TokenizerSpec` holds what Megatron-LM's ``--tokenizer-*`` flags say (``--tokenizer-type``,
``--tokenizer-model``, ``--vocab-file``, ``--merge-file``, ...), with Megatron-LM's meanings and defaults
(read in Megatron-LM ``core_v0.16.1``: ``megatron/core/tokenizers/`` and ``megatron/training/tokenizer/``).
:func:`load_text_tokenizer` gives the ids Megatron-LM's ``tools/preprocess_data.py`` writes for the same text:

- ``SentencePieceTokenizer``, ``GPTSentencePieceTokenizer``, ``Llama2Tokenizer`` (a SentencePiece ``.model``):
  Megatron-LM's default tokenizer system treats the three alike: ``encode_as_ids(text)``, EOD = the model's
  ``eos`` id, vocabulary = its pieces. With ``--legacy-tokenizer``, ``Llama2Tokenizer`` puts BOS before each
  sentence and ``SentencePieceTokenizer`` adds its own ``<EOD>``/``<CLS>``/... pieces: the latter is refused.
- ``GPT2BPETokenizer`` (``--vocab-file vocab.json --merge-file merges.txt``): GPT-2's byte-level BPE, EOD =
  ``<|endoftext|>``, vocabulary = the entries of ``vocab.json``. Computed here with the ``tokenizers`` package
  (merges read the way Megatron-LM's GPT-2 tokenizer reads them: the first line and the last are skipped).
  Megatron-LM 0.16.1's default system loads "gpt2" from the HuggingFace hub for this type (and cannot run
  offline); its ``--legacy-tokenizer`` reads the two files: both give GPT-2 BPE ids.
- ``HuggingFaceTokenizer`` (``--tokenizer-model DIR``, a local tokenizer directory) and ``TikTokenizer``
  (``--tokenizer-model vocab.json``, ``--vocab-size``, ``--tiktoken-pattern``): megatron-core's own tokenizer
  classes build them (``regmix_megatron.megatron.tokenizer_adapter``), so the ids are Megatron's by construction
  (``transformers``/``tiktoken`` installed; nothing is downloaded).

The identity (:class:`TokenizerIdentity`) recorded in ``domains.json``: the family, the files with one sha256
over their contents, the vocabulary size and the EOD id, and the Megatron-LM flags that name the tokenizer.

Pure core: sentencepiece and tokenizers are imported inside functions; HF/tiktoken go through the edge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from ..errors import DataError, RegmixError

MODEL_FILE = "tokenizer.model"
"""The SentencePiece model's name in a tokenizer directory (``regmix-megatron tokenizer train``)."""

#: Megatron-LM ``--tokenizer-type`` -> the family recorded as ``tokenizer.type`` in ``domains.json``.
FAMILIES = {
    "SentencePieceTokenizer": "sentencepiece",
    "GPTSentencePieceTokenizer": "sentencepiece",
    "Llama2Tokenizer": "sentencepiece",
    "GPT2BPETokenizer": "gpt2-bpe",
    "HuggingFaceTokenizer": "huggingface",
    "TikTokenizer": "tiktoken",
}
#: Types Megatron-LM accepts that GPT pre-training data does not use here, and why.
UNSUPPORTED = {
    "BertWordPieceLowerCase": "a BERT WordPiece vocabulary (BERT pre-training, not GPT)",
    "BertWordPieceCase": "a BERT WordPiece vocabulary (BERT pre-training, not GPT)",
    "MultimodalTokenizer": "a multimodal prompt format",
    "NullTokenizer": "no tokenizer (ids given as text)",
    "NullMultimodalTokenizer": "no tokenizer (ids given as text)",
    "SFTTokenizer": "a chat/SFT prompt format",
}
MEGATRON_TYPES = tuple(FAMILIES) + tuple(UNSUPPORTED)
DEFAULT_TYPE = "GPTSentencePieceTokenizer"
"""A SentencePiece model: the type whose ids and EOD are the same in Megatron-LM's default and legacy systems."""
GPT2_EOD = "<|endoftext|>"
#: Files of a HuggingFace tokenizer directory that define its ids (hashed for the identity; weights are not).
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                      "vocab.json", "vocab.txt", "merges.txt", "tokenizer.model", "spiece.model",
                      "sentencepiece.bpe.model", "config.json", "chat_template.jinja")
TIKTOKEN_DEFAULT_VOCAB_SIZE = 2 ** 17
"""megatron-core's default ``vocab_size`` for ``TikTokenizer`` when ``--vocab-size`` is not given."""


@dataclass(frozen=True)
class TokenizerSpec:
    """A tokenizer as Megatron-LM's flags name it. Field names are the flags' (``--tokenizer-type`` ->
    ``tokenizer_type``); paths are absolute once :meth:`resolved`."""

    tokenizer_type: str = DEFAULT_TYPE
    tokenizer_model: str | None = None
    """SentencePiece ``.model``; HuggingFace tokenizer directory; tiktoken vocabulary ``.json``."""
    vocab_file: str | None = None
    """GPT-2 ``vocab.json`` (``GPT2BPETokenizer``)."""
    merge_file: str | None = None
    """GPT-2 ``merges.txt`` (``GPT2BPETokenizer``)."""
    vocab_size: int | None = None
    """``--vocab-size``: the tiktoken vocabulary size (special tokens included)."""
    tokenizer_special_tokens: tuple[str, ...] | None = None
    tiktoken_pattern: str | None = None
    tiktoken_num_special_tokens: int = 1000
    tokenizer_hf_use_fast: bool = False
    tokenizer_hf_include_special_tokens: bool = False
    trust_remote_code: bool = False
    legacy_tokenizer: bool = False

    # ---- checks -----------------------------------------------------------------------------------
    @property
    def family(self) -> str:
        return FAMILIES[self.tokenizer_type]

    def check(self) -> "TokenizerSpec":
        """Refuse what Megatron-LM would refuse (or what cannot give its ids here), naming the flag."""
        t = self.tokenizer_type
        if t in UNSUPPORTED:
            raise RegmixError(f"--tokenizer-type {t}: {UNSUPPORTED[t]} is not supported for GPT pre-training "
                              f"data; use one of {list(FAMILIES)}")
        if t not in FAMILIES:
            from ..errors import did_you_mean

            raise RegmixError(f"--tokenizer-type {t!r} is not a Megatron-LM tokenizer type{did_you_mean(t, FAMILIES)}; "
                              f"use one of {list(FAMILIES)}")
        needs = {"sentencepiece": ("tokenizer_model",), "huggingface": ("tokenizer_model",),
                 "tiktoken": ("tokenizer_model",), "gpt2-bpe": ("vocab_file", "merge_file")}[self.family]
        for name in needs:
            if not getattr(self, name):
                raise RegmixError(f"--tokenizer-type {t} needs --{name.replace('_', '-')}")
        if self.family == "sentencepiece" and self.legacy_tokenizer and t == "SentencePieceTokenizer":
            raise RegmixError("--legacy-tokenizer with --tokenizer-type SentencePieceTokenizer adds Megatron's own "
                              "<CLS>/<SEP>/<EOD>/<MASK> pieces, which is not supported here: drop "
                              "--legacy-tokenizer (Megatron-LM's default system), or use GPTSentencePieceTokenizer")
        if self.tokenizer_special_tokens and self.family in ("sentencepiece", "gpt2-bpe"):
            raise RegmixError(f"--tokenizer-special-tokens with {t}: Megatron-LM refuses added special tokens for "
                              "SentencePiece models unless they are trained in; drop the flag")
        if self.family == "tiktoken":
            if self.tiktoken_pattern not in (None, "v1", "v2"):
                raise RegmixError(f"--tiktoken-pattern {self.tiktoken_pattern!r}: use v1 or v2")
            if self.legacy_tokenizer and self.tiktoken_pattern is None:
                raise RegmixError("--legacy-tokenizer with TikTokenizer needs --tiktoken-pattern v1 or v2")
        for role, path in self.paths().items():
            if not Path(path).exists():
                raise RegmixError(f"--{role.replace('_', '-')} {path}: no such file or directory")
            if role == "tokenizer_model" and self.family == "huggingface":
                if not Path(path).is_dir():
                    raise RegmixError(f"--tokenizer-model {path}: HuggingFaceTokenizer needs a local tokenizer "
                                      "directory (tokenizer.json / tokenizer_config.json ...); hub names are not "
                                      "fetched here: download it once and pass its directory")
            elif Path(path).is_dir() and not (self.family == "sentencepiece" and role == "tokenizer_model"):
                raise RegmixError(f"--{role.replace('_', '-')} {path} is a directory: give the file")
        return self

    def paths(self) -> dict[str, str]:
        """The path flags that are set: ``{field: path}``."""
        return {name: str(getattr(self, name)) for name in ("tokenizer_model", "vocab_file", "merge_file")
                if getattr(self, name)}

    def resolved(self, base: str | os.PathLike | None = None) -> "TokenizerSpec":
        """Paths made absolute (relative ones against ``base``, default the working directory); a SentencePiece
        directory from ``regmix-megatron tokenizer train`` becomes its ``tokenizer.model``."""
        base = Path(base) if base is not None else Path.cwd()
        changes = {}
        for name, value in self.paths().items():
            p = Path(os.path.expanduser(value))
            p = p if p.is_absolute() else base / p
            if name == "tokenizer_model" and self.tokenizer_type in FAMILIES and self.family == "sentencepiece" \
                    and p.is_dir():
                p = p / MODEL_FILE
            changes[name] = str(p.resolve())
        return replace(self, **changes)

    # ---- files and flags --------------------------------------------------------------------------
    def files(self) -> dict[str, Path]:
        """The files whose bytes define the ids: ``{name: path}`` (a HuggingFace directory's tokenizer files)."""
        out = {}
        for role, path in self.paths().items():
            p = Path(path)
            if p.is_dir():
                for name in HF_TOKENIZER_FILES:
                    if (p / name).is_file():
                        out[f"{role}/{name}"] = p / name
            else:
                out[role] = p
        if not out:
            raise DataError(f"{self.paths()}: no tokenizer files found (expected one of {list(HF_TOKENIZER_FILES)})")
        return out

    def megatron_flags(self, rewrite: Callable[[str], str] | None = None) -> list[str]:
        """Megatron-LM command-line flags naming this tokenizer (paths as in the spec, or through ``rewrite``)."""
        flags = ["--tokenizer-type", self.tokenizer_type]
        defaults = TokenizerSpec()
        for f in fields(self):
            if f.name == "tokenizer_type":
                continue
            value = getattr(self, f.name)
            if value == getattr(defaults, f.name):
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                flags.append(flag)
            elif isinstance(value, tuple):
                flags += [flag, *value]
            elif f.name in ("tokenizer_model", "vocab_file", "merge_file") and rewrite is not None:
                flags += [flag, rewrite(str(value))]
            else:
                flags += [flag, str(value)]
        if self.family == "gpt2-bpe" and not self.legacy_tokenizer:
            # Megatron-LM 0.16.1's default system builds GPT2BPETokenizer from the hub's "gpt2" (and passes the
            # vocab file as the merges file): only the legacy system reads both of these files.
            flags.append("--legacy-tokenizer")
        return flags

    def to_json(self, base: str | os.PathLike | None = None) -> dict:
        """The non-default fields; paths relative to ``base`` when given."""
        out: dict[str, Any] = {"tokenizer_type": self.tokenizer_type}
        defaults = TokenizerSpec()
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "tokenizer_type" or value == getattr(defaults, f.name):
                continue
            if f.name in ("tokenizer_model", "vocab_file", "merge_file") and base is not None:
                value = os.path.relpath(value, base)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], base: str | os.PathLike | None = None,
                  where: str = "tokenizer") -> "TokenizerSpec":
        """From :meth:`to_json` output or a user's YAML (keys as the flags, ``type``/``model`` as short forms)."""
        if not isinstance(obj, Mapping):
            raise DataError(f"{where}: expected a mapping of tokenizer settings, got {type(obj).__name__}")
        aliases = {"type": "tokenizer_type", "model": "tokenizer_model", "special_tokens": "tokenizer_special_tokens",
                   "legacy": "legacy_tokenizer", "hf_use_fast": "tokenizer_hf_use_fast",
                   "hf_include_special_tokens": "tokenizer_hf_include_special_tokens"}
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in obj.items():
            name = aliases.get(str(key).replace("-", "_"), str(key).replace("-", "_"))
            if name not in known:
                from ..errors import did_you_mean

                raise DataError(f"{where}: unknown key {key!r}{did_you_mean(name, sorted(known) + sorted(aliases))}; "
                                f"known: {sorted(known)}")
            if name == "tokenizer_special_tokens" and value is not None:
                value = tuple(str(v) for v in value)
            kwargs[name] = value
        spec = cls(**kwargs)
        return spec.resolved(base) if base is not None else spec

    @classmethod
    def from_args(cls, args: Any) -> "TokenizerSpec":
        """From a namespace with Megatron-LM's attribute names (ours, or Megatron-LM's own parsed args)."""
        kwargs = {}
        for f in fields(cls):
            value = getattr(args, f.name, None)
            if value is None:
                continue
            if f.name == "tokenizer_special_tokens":
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class TokenizerIdentity:
    """What ``domains.json`` records of a tokenizer (see ``manifest.TokenizerInfo``)."""

    type: str
    """The family: sentencepiece, gpt2-bpe, huggingface, tiktoken."""
    model: str
    """The main path: the ``.model``, the HF directory, the tiktoken ``.json``, GPT-2's ``vocab.json``."""
    sha256: str
    """A SentencePiece model's file sha256; for other types one sha256 over the files' names and contents."""
    vocab_size: int
    eod_id: int
    spec: TokenizerSpec = field(default_factory=TokenizerSpec)
    pad_id: int | None = None
    """What Megatron's tokenizer reports as ``pad`` (None when it has none; -1 for a SentencePiece model without)."""
    bos_id: int | None = None
    """A SentencePiece model's ``bos`` id (:func:`regmix_megatron.data.tokenizer_training.identify`); None for other types."""
    unk_id: int | None = None
    """A SentencePiece model's ``unk`` id (:func:`regmix_megatron.data.tokenizer_training.identify`); None for other types."""


def files_sha256(files: Mapping[str, Path]) -> str:
    """One sha256 over ``{name: sha256 of the file}`` (names sorted), for a tokenizer made of several files."""
    from ..fileio import sha256_file
    from ..hashing import content_hash

    return content_hash({name: sha256_file(path) for name, path in sorted(files.items())}, length=None)


def identity_sha256(spec: TokenizerSpec) -> str:
    """The sha256 recorded for ``spec``: a single file's own sha256, else :func:`files_sha256` of its files."""
    from ..fileio import sha256_file

    if spec.family == "sentencepiece":
        return sha256_file(spec.tokenizer_model)
    return files_sha256(spec.files())


def load_processor(model_path: str | os.PathLike):
    """A ``sentencepiece.SentencePieceProcessor`` for the model, with a clear error for a bad file."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    try:
        sp.Load(str(model_path))
    except (OSError, RuntimeError) as exc:
        raise DataError(f"{model_path}: not a SentencePiece model ({exc}); pass a .model file "
                        "written by SentencePiece to --tokenizer-model") from None
    return sp


# ---- ids ------------------------------------------------------------------------------------------------
class TextTokenizer(Protocol):
    """Token ids for text, as Megatron-LM's preprocessing computes them for one tokenizer."""

    eod: int
    vocab_size: int
    pad: int | None

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        ...


class SentencePieceIds:
    """``encode_as_ids`` of a SentencePiece model (Megatron's default system for all three SP types); with
    ``bos`` (legacy ``Llama2Tokenizer``) each text starts with the BOS id."""

    def __init__(self, model_path: str, bos: bool = False) -> None:
        self.sp = load_processor(model_path)
        self.eod = int(self.sp.eos_id())
        if self.eod < 0:
            raise DataError(f"{model_path}: the model has no end-of-sequence piece (eos_id=-1), so documents "
                            "cannot be separated; train one with `regmix-megatron tokenizer train`")
        self.vocab_size = int(self.sp.GetPieceSize())
        self.pad = int(self.sp.pad_id())
        self.bos = int(self.sp.bos_id()) if bos else None

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        out = self.sp.encode(list(texts), num_threads=1) if texts else []
        if self.bos is not None:
            out = [[self.bos, *ids] for ids in out]
        return out


class GPT2BPE:
    """GPT-2's byte-level BPE from ``vocab.json`` + ``merges.txt``, the ids of Megatron-LM's GPT-2 tokenizer."""

    def __init__(self, vocab_file: str, merge_file: str) -> None:
        try:
            from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        except ModuleNotFoundError:
            raise RegmixError("GPT2BPETokenizer needs the `tokenizers` package: pip install "
                              "'regmix-megatron[tokenizers]'") from None
        vocab = _read_vocab_json(vocab_file)
        if GPT2_EOD not in vocab:
            raise DataError(f"--vocab-file {vocab_file}: no {GPT2_EOD!r} entry, which Megatron-LM's GPT-2 "
                            "tokenizer uses as end of document; add it or use HuggingFaceTokenizer")
        try:
            text = Path(merge_file).read_text(encoding="utf-8")
        except (UnicodeDecodeError, IsADirectoryError) as exc:
            raise DataError(f"--merge-file {merge_file}: not a text merges file ({exc})") from None
        # Megatron-LM's GPT-2 tokenizer drops the first line (the "#version" header) and the last (empty after the
        # final newline); lines that are not a pair never match a pair of symbols.
        merges = [tuple(line.split()) for line in text.split("\n")[1:-1]]
        merges = [m for m in merges if len(m) == 2]
        try:
            model = models.BPE(vocab=vocab, merges=merges)
        except Exception as exc:  # the Rust side raises its own exception types
            raise DataError(f"--vocab-file {vocab_file} --merge-file {merge_file}: not a GPT-2 BPE ({exc})") from None
        self.tokenizer = Tokenizer(model)
        self.tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        self.tokenizer.decoder = decoders.ByteLevel()
        self.eod = int(vocab[GPT2_EOD])
        self.vocab_size = len(vocab)
        self.pad = None

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


def _read_vocab_json(path: str) -> dict[str, int]:
    from ..fileio import read_json

    vocab = read_json(path)
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise DataError(f"--vocab-file {path}: expected GPT-2's vocab.json (a JSON object token -> id)")
    return vocab


def load_text_tokenizer(spec: TokenizerSpec) -> TextTokenizer:
    """The ids Megatron-LM's ``tools/preprocess_data.py`` writes for ``spec`` (checked, paths resolved)."""
    spec = spec.check()
    if spec.family == "sentencepiece":
        return SentencePieceIds(spec.tokenizer_model,
                                bos=spec.legacy_tokenizer and spec.tokenizer_type == "Llama2Tokenizer")
    if spec.family == "gpt2-bpe":
        return GPT2BPE(spec.vocab_file, spec.merge_file)
    from ..megatron.text_ids import MegatronTextIds  # megatron-core's own HuggingFace and tiktoken classes

    return MegatronTextIds(spec)


def identify_spec(spec: TokenizerSpec) -> TokenizerIdentity:
    """Identity of ``spec`` (paths resolved against the working directory): files' sha256, vocabulary, EOD."""
    spec = spec.resolved().check()
    tok = load_text_tokenizer(spec)
    main = spec.tokenizer_model or spec.vocab_file
    return TokenizerIdentity(type=spec.family, model=str(main), sha256=identity_sha256(spec),
                             vocab_size=int(tok.vocab_size), eod_id=int(tok.eod), spec=spec,
                             pad_id=None if tok.pad is None else int(tok.pad))


def describe(spec: TokenizerSpec) -> str:
    """One line for messages: the Megatron-LM flags naming the tokenizer."""
    return " ".join(spec.megatron_flags())


__all__ = ["FAMILIES", "MEGATRON_TYPES", "TokenizerSpec", "TokenizerIdentity", "TextTokenizer", "GPT2BPE",
           "SentencePieceIds", "load_text_tokenizer", "identify_spec", "identity_sha256", "files_sha256", "describe"]
