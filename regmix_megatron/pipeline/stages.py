"""The ten stages of ``regmix-megatron run``, each a thin call into the module that owns the work.

corpus -> tokenizer -> indexed -> sample -> sweep -> fit -> search -> targets -> evaluate -> report

Every stage writes under ``OUT/<stage>/`` (the corpus may live in a shared cache outside OUT). The inputs a stage
declares are the config fields that change its output; settings that only change speed (workers, parallelism)
are left out, so changing them does not redo work.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import DataError, RegmixError
from ..fileio import sha256_file
from .config import AVERAGE, PipelineConfig, run_tokens, train_config
from .framework import Stage, StageContext, StageOutput, canonical_hash, fingerprint_paths

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


# ---- helpers --------------------------------------------------------------------------------------------
def _stat_fingerprint(root: Path) -> str:
    """Cheap fingerprint of a directory tree (relative names, sizes, modification times)."""
    rows = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith(".tmp-"):
            st = p.stat()
            rows.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return canonical_hash(rows)


def corpus_domains(corpus_dir: Path, wanted: list[str] | None) -> list[str]:
    """Domains present in a corpus directory (those with a train.jsonl), filtered and checked."""
    present = sorted(p.name for p in corpus_dir.iterdir() if (p / "train.jsonl").is_file()) \
        if corpus_dir.is_dir() else []
    if not present:
        raise DataError(f"{corpus_dir}: no <domain>/train.jsonl found; corpus.source must point at a corpus "
                        "directory laid out as <domain>/{train,valid,test}.jsonl")
    if wanted is None:
        return present
    missing = sorted(set(wanted) - set(present))
    if missing:
        raise DataError(f"corpus.domains lists {missing}, which {corpus_dir} does not have; available: {present}")
    return sorted(wanted)


def _clear(path: Path, out: Path) -> None:
    """Remove a stage's own output directory (only ever inside OUT) before it is rebuilt."""
    path = path.resolve()
    if out.resolve() not in path.parents:
        raise RegmixError(f"refusing to delete {path}: not inside the output directory {out}")
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


# ---- corpus ---------------------------------------------------------------------------------------------
def corpus_inputs(cfg: PipelineConfig) -> dict:
    c = cfg.corpus
    if c.source == "build":
        return {"source": "build", "domains": c.domains, "max_mb_per_domain": c.max_mb_per_domain,
                "cache_dir": c.cache_dir}
    return {"source": c.source, "domains": c.domains, "content": _stat_fingerprint(Path(c.source))}


def run_corpus(ctx: StageContext) -> StageOutput:
    c = ctx.config.corpus
    if c.source == "build":
        from ..corpus.build import build_corpus

        kwargs: dict[str, Any] = {"domains": c.domains, "max_mb_per_domain": c.max_mb_per_domain}
        cache_dir = c.cache_dir if c.cache_dir is not None else ctx.out / "cache"
        corpus_dir = Path(build_corpus(cache_dir, **kwargs))
    else:
        corpus_dir = Path(c.source)
    domains = corpus_domains(corpus_dir, c.domains)
    num_bytes = sum((corpus_dir / d / f"{s}.jsonl").stat().st_size for d in domains for s in SPLITS
                    if (corpus_dir / d / f"{s}.jsonl").exists())
    fingerprint = canonical_hash({d: fingerprint_paths([corpus_dir / d]) for d in domains})
    return StageOutput(files={"corpus_dir": str(corpus_dir)}, values={"domains": domains, "num_bytes": num_bytes},
                       summary=f"{len(domains)} domains, {num_bytes / 1e6:.1f} MB", fingerprint=fingerprint)


# ---- tokenizer ------------------------------------------------------------------------------------------
def tokenizer_inputs(cfg: PipelineConfig) -> dict:
    t = cfg.tokenizer
    if t.model is not None:
        return {"model": t.model, "sha256": sha256_file(t.model)}
    return {"vocab_size": t.vocab_size, "seed": cfg.seed}


def run_tokenizer(ctx: StageContext) -> StageOutput:
    from ..tokenizer import TokenizerTrainConfig, adopt_tokenizer, train_tokenizer

    cfg: PipelineConfig = ctx.config
    out_dir = ctx.out / "tokenizer"
    if cfg.tokenizer.model is not None:
        model = adopt_tokenizer(cfg.tokenizer.model, out_dir, overwrite=True)
    else:
        model = train_tokenizer(ctx.path("corpus", "corpus_dir"), out_dir,
                                TokenizerTrainConfig(vocab_size=cfg.tokenizer.vocab_size, seed=cfg.seed),
                                domains=ctx.value("corpus", "domains"), overwrite=True)
    return StageOutput(files={"model": str(model)}, fingerprint=sha256_file(model),
                       summary=f"{Path(model).name} (vocab {cfg.tokenizer.vocab_size})")


# ---- indexed datasets -----------------------------------------------------------------------------------
def run_indexed(ctx: StageContext) -> StageOutput:
    from ..manifest import DomainRegistry
    from ..preprocess import preprocess_corpus

    cfg: PipelineConfig = ctx.config
    out_dir = ctx.out / "data"
    _clear(out_dir, ctx.out)  # partial output of a killed run, or stale output of other inputs
    manifest = preprocess_corpus(ctx.path("corpus", "corpus_dir"), out_dir, ctx.path("tokenizer", "model"),
                                 workers=cfg.preprocess.workers, domains=ctx.value("corpus", "domains"))
    registry = DomainRegistry.load(manifest)
    tokens = {d.name: d.num_tokens("train") for d in registry.domains}
    fingerprint = fingerprint_paths([Path(manifest)] + sorted(Path(out_dir).rglob("*.idx")))
    return StageOutput(files={"domains": str(manifest)},
                       values={"train_tokens": tokens,
                               "valid_tokens": {d.name: d.num_tokens("valid") for d in registry.domains}},
                       fingerprint=fingerprint,
                       summary=f"{sum(tokens.values()) / 1e6:.2f}M train tokens in {len(tokens)} domains")


# ---- estimates (seconds on 2 cores; they only weight the progress bar) -----------------------------------
def _estimate_corpus(cfg: PipelineConfig) -> float:
    return 90.0 if cfg.corpus.source == "build" else 1.0


def _estimate_tokenizer(cfg: PipelineConfig) -> float:
    return 1.0 if cfg.tokenizer.model else (15.0 if cfg.corpus.source == "build" else 3.0)


def _estimate_indexed(cfg: PipelineConfig) -> float:
    if cfg.corpus.source == "build":
        return 8 * cfg.corpus.max_mb_per_domain * 1.2 / cfg.preprocess.workers
    return 5.0


def build_stages() -> list[Stage]:
    """The pipeline's stages in order."""
    return [
        Stage("corpus", corpus_inputs, run_corpus, (), _estimate_corpus,
              "per-domain JSONL (built, or an existing directory)"),
        Stage("tokenizer", tokenizer_inputs, run_tokenizer, ("corpus",), _estimate_tokenizer,
              "SentencePiece BPE trained on a domain-balanced sample (or an existing model)"),
        Stage("indexed", lambda cfg: {}, run_indexed, ("corpus", "tokenizer"), _estimate_indexed,
              "Megatron .bin/.idx per domain and split, and domains.json"),
    ]


STAGE_NAMES = ("corpus", "tokenizer", "indexed", "sample", "sweep", "fit", "search", "targets", "evaluate",
               "report")
