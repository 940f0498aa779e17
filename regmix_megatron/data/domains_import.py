"""``domains.json`` from Megatron ``.bin/.idx`` prefixes that already exist (``regmix-megatron domains import``).

A team's data is often tokenized already, with its own tokenizer. This writes the manifest every later step
reads (sample, sweep, fit, search, export, the dataset provider), without re-tokenizing: exact token counts
from each ``.idx`` (:mod:`regmix_megatron.data.index_files`), and the tokenizer the user names with Megatron-LM's
flags (type, files, one sha256 over the files, vocabulary size, EOD id), so the trainer and the provider can
check that they use the same one.

The mapping of domains to prefixes, as YAML (paths relative to the file)::

    tokenizer:                          # Megatron-LM's tokenizer flags, as keys
      type: GPT2BPETokenizer
      vocab_file: tokenizer/vocab.json
      merge_file: tokenizer/merges.txt
    domains:
      web:
        train: [data/web_00_text_document, data/web_01_text_document]
        valid: data/web_valid_text_document
        test: data/web_test_text_document
      code: {train: data/code_text_document, valid: data/code_valid_text_document}

or on the command line, ``--prefix web:train=data/web_00_text_document`` (repeatable). Every domain needs
``train`` and ``valid`` prefixes (the proxies' per-domain validation losses are what the regression fits);
``test`` is optional, for all domains or none. Checks: each pair is complete and consistent, no prefix is listed
twice, token ids in (a prefix of) each ``.bin`` are below the vocabulary size, and documents end with the EOD id
(a warning when none of the first ones do: ``--append-eod`` was probably not used).

Pure core (numpy, PyYAML).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import DataError, RegmixError
from ..fileio import read_yaml
from .index_files import last_tokens, max_token_id, read_index, token_dtype
from .manifest import SPLITS, Domain, DomainRegistry, PrefixInfo, TokenizerInfo
from .tokenizer_types import TokenizerIdentity, TokenizerSpec, identify_spec

logger = logging.getLogger(__name__)

_DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
REQUIRED_SPLITS = ("train", "valid")
#: Tokens of each ``.bin`` scanned for ids outside the vocabulary (0: none; None: all).
DEFAULT_SCAN_TOKENS = 1_000_000


@dataclass(frozen=True)
class ImportSpec:
    """Domains -> split -> prefixes (absolute, without extension), and the tokenizer (None: given by flags)."""

    prefixes: Mapping[str, Mapping[str, tuple[str, ...]]]
    tokenizer: TokenizerSpec | None = None
    source: str = "--prefix"


def _strip_extension(path: str) -> str:
    for ext in (".bin", ".idx"):
        if path.endswith(ext):
            return path[: -len(ext)]
    return path


def _absolute(path: str, base: Path) -> str:
    p = Path(os.path.expanduser(_strip_extension(str(path))))
    return str((p if p.is_absolute() else base / p).resolve())


def load_import_spec(path: str | os.PathLike) -> ImportSpec:
    """The YAML mapping (see the module docstring); paths relative to the file's directory."""
    path = Path(path)
    obj = read_yaml(path)
    where = str(path)
    if not isinstance(obj, Mapping) or "domains" not in obj:
        raise DataError(f"{where}: expected a mapping with 'domains' (and 'tokenizer'); see "
                        "`regmix-megatron domains import --help`")
    unknown = sorted(set(obj) - {"domains", "tokenizer"})
    if unknown:
        from ..errors import did_you_mean

        raise DataError(f"{where}: unknown key(s) {unknown}{did_you_mean(unknown[0], ['domains', 'tokenizer'])}; "
                        "use 'domains' and 'tokenizer'")
    base = path.resolve().parent
    tokenizer = (TokenizerSpec.from_json(obj["tokenizer"], base=base, where=f"{where}: tokenizer")
                 if obj.get("tokenizer") is not None else None)
    domains = obj["domains"]
    if not isinstance(domains, Mapping) or not domains:
        raise DataError(f"{where}: 'domains' must map each domain name to its splits, e.g. "
                        "{web: {train: [prefix, ...], valid: prefix}}")
    prefixes: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, splits in domains.items():
        if not isinstance(splits, Mapping):
            raise DataError(f"{where}: domain {name!r}: expected a mapping split -> prefix(es), got {splits!r}")
        prefixes[str(name)] = {}
        for split, value in splits.items():
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, Sequence) or not values or not all(isinstance(v, str) for v in values):
                raise DataError(f"{where}: {name}.{split}: give a prefix or a list of prefixes")
            prefixes[str(name)][str(split)] = tuple(_absolute(v, base) for v in values)
    return ImportSpec(prefixes=prefixes, tokenizer=tokenizer, source=where)


def parse_prefix_args(items: Sequence[str], base: str | os.PathLike | None = None) -> ImportSpec:
    """``DOMAIN:SPLIT=PREFIX[,PREFIX...]`` items (``--prefix``, repeatable) as an :class:`ImportSpec`."""
    base = Path(base) if base is not None else Path.cwd()
    prefixes: dict[str, dict[str, list[str]]] = {}
    for item in items:
        m = re.fullmatch(r"([^:=]+):([^:=]+)=(.+)", item)
        if not m:
            raise RegmixError(f"--prefix {item!r}: use DOMAIN:SPLIT=PREFIX (e.g. web:train=data/web_text_document)")
        name, split, paths = m.groups()
        prefixes.setdefault(name, {}).setdefault(split, []).extend(_absolute(p, base) for p in paths.split(","))
    return ImportSpec(prefixes={n: {s: tuple(v) for s, v in d.items()} for n, d in prefixes.items()})


def check_layout(spec: ImportSpec) -> None:
    """Names, splits, required splits, test for all-or-none, no prefix listed twice."""
    seen: dict[str, str] = {}
    with_test = [n for n, s in spec.prefixes.items() if s.get("test")]
    for name, splits in spec.prefixes.items():
        if not _DOMAIN_NAME.match(name):
            raise DataError(f"{spec.source}: domain name {name!r} must be letters, digits, '_', '.', '-'")
        bad = sorted(set(splits) - set(SPLITS))
        if bad:
            from ..errors import did_you_mean

            raise DataError(f"{spec.source}: domain {name!r}: unknown split(s) {bad}"
                            f"{did_you_mean(bad[0], SPLITS)}; use {list(SPLITS)}")
        missing = [s for s in REQUIRED_SPLITS if not splits.get(s)]
        if missing:
            raise DataError(f"{spec.source}: domain {name!r} has no {'/'.join(missing)} prefixes; every domain needs "
                            "train (to sample and train on) and valid (its validation loss is what the regression "
                            "fits) prefixes")
        for split, paths in splits.items():
            for p in paths:
                if p in seen:
                    raise DataError(f"{spec.source}: prefix {p} is listed twice ({seen[p]} and {name}.{split})")
                seen[p] = f"{name}.{split}"
    if with_test and len(with_test) != len(spec.prefixes):
        lacking = sorted(set(spec.prefixes) - set(with_test))
        raise DataError(f"{spec.source}: domains {lacking} have no test prefixes but {with_test} do; give test "
                        "prefixes for every domain or for none (Megatron-LM's test split lists them all)")
    if len(spec.prefixes) < 2:
        raise DataError(f"{spec.source}: {len(spec.prefixes)} domain(s); a mixture needs at least two")


def _check_prefix(prefix: str, ident: TokenizerIdentity, scan_tokens: int | None) -> PrefixInfo:
    counts = read_index(prefix)
    expected = token_dtype(ident.vocab_size)
    if counts.dtype != expected().dtype.name:
        logger.warning("%s: token ids stored as %s, but Megatron-LM writes %s for a vocabulary of %d: was it "
                       "tokenized with another tokenizer?", prefix, counts.dtype, expected().dtype.name,
                       ident.vocab_size)
    if scan_tokens != 0:
        top = max_token_id(prefix, counts.dtype, scan_tokens)
        if top >= ident.vocab_size:
            raise DataError(f"{prefix}: token id {top} is outside the vocabulary of {ident.spec.tokenizer_type} "
                            f"({ident.vocab_size} ids): the data was tokenized with another tokenizer; name that "
                            "one")
    return PrefixInfo(path=prefix, num_documents=counts.num_documents, num_sequences=counts.num_sequences,
                      num_tokens=counts.num_tokens)


def import_domains(spec: ImportSpec, output: str | os.PathLike, *, scan_tokens: int | None = DEFAULT_SCAN_TOKENS,
                   overwrite: bool = False) -> DomainRegistry:
    """Check the prefixes against the tokenizer and write ``output`` (a ``domains.json``); returns the registry."""
    if spec.tokenizer is None:
        raise RegmixError("name the tokenizer the data was made with: --tokenizer-type and its files (or a "
                          "'tokenizer:' mapping in the YAML)")
    output = Path(output)
    if output.is_dir():
        raise RegmixError(f"--output {output} is a directory: give the file to write, e.g. {output}/domains.json")
    if output.exists() and not overwrite:
        raise RegmixError(f"--output {output} exists; pass --overwrite to replace it")
    check_layout(spec)
    from ..fileio import check_output_paths

    check_output_paths({"prefix": [f"{p}{ext}" for splits in spec.prefixes.values() for paths in splits.values()
                                   for p in paths for ext in (".bin", ".idx")]}, files={"--output": output})
    ident = identify_spec(spec.tokenizer)
    domains = []
    for name, splits in sorted(spec.prefixes.items()):
        infos = {split: tuple(_check_prefix(p, ident, scan_tokens) for p in paths)
                 for split, paths in splits.items() if paths}
        domains.append(Domain(name=name, splits=infos))
        ends = [t for p in splits["train"] for t in last_tokens(p, read_index(p).dtype, 20)]
        if ends and ident.eod_id not in ends:
            logger.warning("%s: none of the first documents of %s.train ends with the EOD id %d: was the data "
                           "preprocessed without --append-eod, or with another tokenizer?", spec.source, name,
                           ident.eod_id)
    registry = DomainRegistry(domains=tuple(domains), tokenizer=TokenizerInfo.from_identity(ident))
    empty = [d.name for d in registry.domains if d.num_tokens("train") == 0]
    if empty:
        raise DataError(f"{spec.source}: domain(s) {empty} have no training tokens")
    from .manifest import check_prefix_paths

    check_prefix_paths(registry, spec.source)  # a path every training run would refuse: refused now
    registry.save(output)
    return DomainRegistry.load(output)


def describe_registry(registry: DomainRegistry) -> list[str]:
    """Lines for the terminal: each domain's role and tokens per split, and the tokenizer's Megatron-LM flags."""
    lines = [f"{'domain':<16}{'role':>10}" + "".join(f"{s + ' tokens':>16}" for s in SPLITS) + f"{'prefixes':>10}"]
    for d in registry.domains:
        role = "eval-only" if d.evaluation_only else "train"
        lines.append(f"{d.name:<16}{role:>10}" + "".join(f"{d.num_tokens(s):>16,}" for s in SPLITS)
                     + f"{sum(len(p) for p in d.splits.values()):>10}")
    t = registry.tokenizer
    lines.append(f"tokenizer: {' '.join(t.spec.megatron_flags())} (vocab {t.vocab_size}, eod {t.eod_id}, "
                 f"sha256 {t.sha256[:12]}...)")
    return lines


__all__ = ["ImportSpec", "load_import_spec", "parse_prefix_args", "import_domains", "describe_registry",
           "check_layout"]
