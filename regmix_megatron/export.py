"""A mixture as the files Megatron-LM's command line reads (pure: no megatron import).

For a :class:`~regmix_megatron.mixture.Mixture` over the domains of a
:class:`~regmix_megatron.manifest.DomainRegistry`:

- ``--data-path "w1 p1 w2 p2 ..."``: the training blend as one token string (:func:`format_data_path`);
- ``--data-args-path FILE``: the same tokens in a file, one ``weight prefix`` pair per line (Megatron-LM reads
  the file and splits it on whitespace);
- ``--per-split-data-args-path FILE.json``: ``{"train": [w1, p1, ...], "valid": [p, ...], "test": [p, ...]}``:
  train is the weighted blend; valid and test list every domain's prefixes of that split *unweighted*, for
  ``--multiple-validation-sets`` (one validation loss per prefix). Megatron requires all three keys.
  Evaluation-only domains (``domains.json``) appear in valid and test only: never in a training blend (a
  mixture giving one weight is refused).

Rules: zero-weight domains are dropped from weighted blends (Megatron asserts every weight > 0); a domain
stored in several prefixes has its weight split across them in proportion to their token counts; weights are
written with ``repr`` so ``float(text)`` gives back the exact float. Mixtures whose domain set differs from the
registry's are refused. Megatron's blend parser silently misreads lists whose prefixes look like numbers or
contain whitespace, so such prefixes are refused here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from .errors import DataError
from .fileio import atomic_write_json, atomic_write_text
from .manifest import SPLITS, DomainRegistry
from .mixture import Mixture, read_mixture_at

DATA_PATH_FILE = "data_path.txt"
DATA_ARGS_FILE = "data_args.txt"
PER_SPLIT_FILE = "per_split_data_args.json"
MIXTURE_FILE = "mixture.json"


def _check_prefix(prefix: str) -> str:
    if not prefix or any(c.isspace() for c in prefix):
        raise DataError(f"prefix {prefix!r} is empty or contains whitespace: Megatron-LM splits blend lists on "
                        "whitespace; move the data to a path without spaces")
    try:
        float(prefix)
    except ValueError:
        return prefix
    raise DataError(f"prefix {prefix!r} parses as a number, so Megatron would read it as a weight: rename it")


def blend_for_split(registry: DomainRegistry, mixture: Mixture, split: str = "train",
                    source: str = "mixture") -> tuple[list[str], list[float]]:
    """``(prefixes, weights)`` of the weighted blend of ``split``: zero-weight domains dropped, multi-prefix
    domains split by token count. Weights are > 0 and sum to 1 (up to float rounding)."""
    if split not in SPLITS:
        raise DataError(f"split {split!r}: use one of {list(SPLITS)}")
    mixture = registry.check_mixture(mixture, source)
    prefixes: list[str] = []
    weights: list[float] = []
    for name, weight in mixture.nonzero().items():
        domain = registry.get(name)
        parts = [p for p in domain.prefixes(split) if p.num_tokens > 0]
        total = sum(p.num_tokens for p in parts)
        if not parts or total <= 0:
            raise DataError(f"{source}: domain {name!r} has weight {weight!r} but no {split} tokens in "
                            f"{registry.path or 'the manifest'}: give it data or weight 0")
        for p in parts:
            w = weight * p.num_tokens / total if len(parts) > 1 else weight
            if not (w > 0 and math.isfinite(w)):
                raise DataError(f"{source}: prefix {p.path} of domain {name!r} gets weight {w!r}")
            prefixes.append(_check_prefix(p.path))
            weights.append(w)
    return prefixes, weights


def domain_prefixes(registry: DomainRegistry, split: str) -> list[str]:
    """Every domain's prefixes of ``split`` in canonical domain order (unweighted; for
    ``--multiple-validation-sets``). A domain without data in this split raises: it would vanish silently."""
    out = []
    empty = [d.name for d in registry.domains if not d.prefixes(split)]
    if empty:
        raise DataError(f"domain(s) {empty} have no {split} prefixes in {registry.path or 'the manifest'}: "
                        f"every domain needs a {split} set (re-run preprocessing)")
    for d in registry.domains:
        out.extend(_check_prefix(p.path) for p in d.prefixes(split))
    return out


def blend_tokens(prefixes: Sequence[str], weights: Sequence[float]) -> list[str]:
    """The flat ``[w1, p1, w2, p2, ...]`` list Megatron's ``get_blend_from_list`` reads (weights via repr)."""
    if len(prefixes) != len(weights) or not prefixes:
        raise DataError(f"{len(prefixes)} prefixes but {len(weights)} weights")
    out = []
    for p, w in zip(prefixes, weights):
        out.extend([repr(float(w)), _check_prefix(p)])
    return out


def format_data_path(registry: DomainRegistry, mixture: Mixture, split: str = "train") -> str:
    """The value of ``--data-path`` for this mixture (one string, whitespace separated)."""
    return " ".join(blend_tokens(*blend_for_split(registry, mixture, split)))


def format_data_args(registry: DomainRegistry, mixture: Mixture, split: str = "train") -> str:
    """The contents of a ``--data-args-path`` file: one ``weight prefix`` pair per line."""
    prefixes, weights = blend_for_split(registry, mixture, split)
    return "".join(f"{repr(float(w))} {p}\n" for p, w in zip(prefixes, weights))


def per_split_data_args(registry: DomainRegistry, mixture: Mixture) -> dict:
    """The object of a ``--per-split-data-args-path`` JSON file (keys train, valid, test, all present)."""
    return {
        "train": blend_tokens(*blend_for_split(registry, mixture, "train")),
        "valid": domain_prefixes(registry, "valid"),
        "test": domain_prefixes(registry, "test"),
    }


def export_mixture(registry: DomainRegistry, mixture: Mixture, output_dir: str | Path) -> dict[str, Path]:
    """Write every format into ``output_dir`` atomically; returns ``{kind: path}``."""
    output_dir = Path(output_dir)
    files = {
        "data_path": (DATA_PATH_FILE, format_data_path(registry, mixture) + "\n"),
        "data_args": (DATA_ARGS_FILE, format_data_args(registry, mixture)),
    }
    per_split = per_split_data_args(registry, mixture)
    out = {}
    for kind, (name, text) in files.items():
        out[kind] = atomic_write_text(output_dir / name, text)
    out["per_split_data_args"] = atomic_write_json(output_dir / PER_SPLIT_FILE, per_split)
    out["mixture"] = mixture.save(output_dir / MIXTURE_FILE)
    return out


def load_mixture_arg(spec: str, *, tolerance: float | None = None) -> Mixture:
    """A mixture given on the command line: a mixture file (JSON/YAML), or ``FILE.jsonl:INDEX`` (mixture
    ``INDEX`` of a ``regmix-megatron sample`` output, 0-based)."""
    path_text, sep, index_text = spec.rpartition(":")
    if sep and path_text.endswith(".jsonl") and index_text.isdigit():
        return read_mixture_at(path_text, int(index_text))
    if spec.endswith(".jsonl"):
        raise DataError(f"{spec}: a JSONL file holds many mixtures: pick one with {spec}:INDEX (0-based)")
    kwargs = {} if tolerance is None else {"tolerance": tolerance}
    return Mixture.load(spec, **kwargs)


__all__ = [
    "blend_for_split", "domain_prefixes", "blend_tokens", "format_data_path", "format_data_args",
    "per_split_data_args", "export_mixture", "load_mixture_arg"
]
