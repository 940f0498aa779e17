"""The data stages of ``regmix-megatron run``: corpus -> tokenizer -> indexed (Megatron ``.bin/.idx`` and
``domains.json``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..fileio import is_temporary, sha256_file
from ..hashing import content_hash
from ..data.manifest import SPLITS
from .config import PipelineConfig, uses_imported_data
from .framework import StageContext, StageOutput, fingerprint_paths
from .stage_helpers import _clear


def _stat_fingerprint(root: Path) -> str:
    """Cheap fingerprint of a directory tree (relative names, sizes, modification times)."""
    rows = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not is_temporary(p, root):
            st = p.stat()
            rows.append((str(p.relative_to(root)), st.st_size, st.st_mtime_ns))
    return content_hash(rows, length=None)


def _path_fingerprint(path: Path) -> str:
    """:func:`_stat_fingerprint` of a directory, or of one file (name, size, modification time)."""
    if path.is_dir():
        return _stat_fingerprint(path)
    st = path.stat()
    return content_hash([path.name, st.st_size, st.st_mtime_ns], length=None)


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


def built_domains(cfg: PipelineConfig) -> tuple[list[str], list[str]]:
    """With ``build``: (the built-in domains to build, those of them built evaluation-only): ``corpus.domains``
    (the builder's default set when not given) and ``corpus.eval_only``, the extra domains left out."""
    from ..data.corpus.build import resolve_domains

    c = cfg.corpus
    listed = None if c.domains is None else [d for d in c.domains if d not in c.extra_domains]
    held_out = [d for d in c.eval_only if d not in c.extra_domains]
    names = sorted(set(resolve_domains(listed, "corpus.domains")) | set(resolve_domains(held_out, "corpus.eval_only")
                                                                      if held_out else ()))
    return names, sorted(held_out)


def wanted_domains(cfg: PipelineConfig) -> list[str] | None:
    """The corpus domains the pipeline uses: ``corpus.domains`` (with ``build``: the builder's default set when
    not given) plus the evaluation-only and extra ones; None: every domain of an existing corpus directory."""
    if cfg.corpus.source == "build":
        return sorted(set(built_domains(cfg)[0]) | set(cfg.corpus.extra_domains))
    return cfg.all_domains


def corpus_inputs(cfg: PipelineConfig) -> dict:
    """What the corpus is, never where it lies (a moved project resumes): the build settings (which domains are
    built evaluation-only, and the extra domains' content), or the listing of an existing corpus directory (names,
    sizes, modification times)."""
    c = cfg.corpus
    if c.source == "build":
        inputs = {"source": "build", "domains": wanted_domains(cfg), "max_mb_per_domain": c.max_mb}
        if c.eval_only:
            inputs["eval_only"] = sorted(c.eval_only)
        if c.extra_domains:
            inputs["extra_domains"] = {name: {"eval_only": name in c.eval_only, "content": _path_fingerprint(
                Path(extra.path))} for name, extra in sorted(c.extra_domains.items())}
        return inputs
    if uses_imported_data(cfg):  # the registry's content, not its path
        return {"source": "imported", "domains": wanted_domains(cfg), "eval_only": sorted(c.eval_only),
                "content": sha256_file(c.source)}
    return {"source": "directory", "domains": wanted_domains(cfg), "content": _stat_fingerprint(Path(c.source))}


def _imported_registry(cfg: PipelineConfig):
    """The ``domains.json`` of existing prefixes (``corpus.source``), restricted to ``corpus.domains`` and the
    evaluation-only ones, with ``corpus.eval_only`` (when given) as its evaluation-only domains."""
    from ..data.manifest import DomainRegistry

    registry = DomainRegistry.load(cfg.corpus.source)
    wanted = cfg.all_domains
    if wanted is not None:
        missing = sorted(set(wanted) - set(registry.all_names))
        if missing:
            raise DataError(f"corpus.domains/corpus.eval_only list {missing}, which {cfg.corpus.source} does not "
                            f"have; available: {list(registry.all_names)}")
        registry = DomainRegistry(domains=tuple(registry.get(n) for n in wanted), tokenizer=registry.tokenizer,
                                  path=registry.path)
    return registry.with_evaluation_only(cfg.corpus.eval_only) if cfg.corpus.eval_only else registry


def run_corpus(ctx: StageContext) -> StageOutput:
    c = ctx.config.corpus
    if uses_imported_data(ctx.config):
        registry = _imported_registry(ctx.config)
        ctx.config.target.check_domains(list(registry.all_names), where="target")
        tokens = int(registry.tokens_per_domain("train").sum())
        held_out = [d.name for d in registry.domains if d.evaluation_only]
        return StageOutput(files={"domains_json": str(Path(c.source).resolve())},
                           values={"domains": list(registry.all_names), "eval_only": held_out, "num_bytes": 0},
                           summary=f"{len(registry.all_names)} domains of existing prefixes ({tokens / 1e6:.2f}M "
                                   "train tokens)", fingerprint=sha256_file(c.source))
    wanted = wanted_domains(ctx.config)
    if c.source == "build":
        from ..data.corpus.build import build_corpus

        num_domains = len(wanted)
        done: list[str] = []

        def on_domain(name: str, entry: dict, reused: bool) -> None:
            done.append(name)
            ctx.progress.update(len(done) / num_domains, f"{name} {'reused' if reused else 'built'}")

        cache_dir = c.cache_dir if c.cache_dir is not None else ctx.out / "cache"
        names, held_out = built_domains(ctx.config)
        corpus_dir = Path(build_corpus(cache_dir, domains=names, max_mb_per_domain=c.max_mb, eval_only=held_out,
                                       on_domain=on_domain))
        _add_extra_domains(ctx, corpus_dir, on_domain)
    else:
        corpus_dir = Path(c.source)
    domains = corpus_domains(corpus_dir, wanted)
    missing = sorted(set(c.eval_only) - set(domains))
    if missing:
        raise DataError(f"corpus.eval_only lists {missing}, which {corpus_dir} does not have; available: {domains}")
    if len(set(domains) - set(c.eval_only)) < 2:
        raise DataError(f"{corpus_dir}: fewer than two training domains among {domains} besides the "
                        f"evaluation-only {c.eval_only}")
    ctx.config.target.check_domains(domains, where="target")
    num_bytes = sum((corpus_dir / d / f"{s}.jsonl").stat().st_size for d in domains for s in SPLITS
                    if (corpus_dir / d / f"{s}.jsonl").exists())
    fingerprint = content_hash({d: fingerprint_paths([corpus_dir / d]) for d in domains}, length=None)
    held_out = sorted(c.eval_only)
    return StageOutput(files={"corpus_dir": str(corpus_dir)},
                       values={"domains": domains, "eval_only": held_out, "num_bytes": num_bytes},
                       summary=f"{len(domains)} domains" + (f" ({', '.join(held_out)} evaluation-only)" if held_out
                                                            else "") + f", {num_bytes / 1e6:.1f} MB",
                       fingerprint=fingerprint)


def _add_extra_domains(ctx: StageContext, corpus_dir: Path, on_domain) -> None:
    """Add ``corpus.extra_domains`` to the built corpus (``regmix-megatron corpus add``'s rules)."""
    from ..data.corpus.build import CorpusSettings
    from ..data.corpus.user_domain import add_domain

    c = ctx.config.corpus
    for name, extra in sorted(c.extra_domains.items()):
        entry, reused = add_domain(corpus_dir, name, [extra.path], eval_only=name in c.eval_only,
                                   settings=CorpusSettings(max_mb_per_domain=c.max_mb))
        on_domain(name, entry, reused)


def tokenizer_inputs(cfg: PipelineConfig) -> dict:
    t = cfg.tokenizer
    if uses_imported_data(cfg):
        return {"imported": True}  # the registry records its tokenizer; the corpus stage's fingerprint covers it
    if t.type is not None:
        from ..data.tokenizer_types import identity_sha256

        spec = t.spec()
        return {"spec": spec.to_json(), "sha256": identity_sha256(spec.check())}
    if t.model is not None:  # the model's content, not its path
        return {"model_sha256": sha256_file(t.model)}
    return {"vocab_size": t.vocab_size, "seed": cfg.seed, "eval_only": sorted(cfg.corpus.eval_only)}


def run_tokenizer(ctx: StageContext) -> StageOutput:
    from ..data.tokenizer_training import TokenizerTrainConfig, adopt_tokenizer, train_tokenizer

    cfg: PipelineConfig = ctx.config
    out_dir = ctx.out / "tokenizer"
    if uses_imported_data(cfg) or cfg.tokenizer.type is not None:
        return _existing_tokenizer(ctx, out_dir)
    if cfg.tokenizer.model is not None:
        model = adopt_tokenizer(cfg.tokenizer.model, out_dir, overwrite=True)
    else:
        # trained on the training domains only: an evaluation-only domain stays unseen until it is evaluated
        training = [d for d in ctx.value("corpus", "domains") if d not in cfg.corpus.eval_only]
        model = train_tokenizer(ctx.path("corpus", "corpus_dir"), out_dir,
                                TokenizerTrainConfig(vocab_size=cfg.tokenizer.vocab_size, seed=cfg.seed),
                                domains=training, overwrite=True)
    return StageOutput(files={"model": str(model)}, fingerprint=sha256_file(model),
                       summary=f"{Path(model).name} (vocab {cfg.tokenizer.vocab_size})")


def _existing_tokenizer(ctx: StageContext, out_dir: Path) -> StageOutput:
    """A tokenizer that is not trained here: the one a ``domains.json`` records, or ``tokenizer.type``'s files.
    Its Megatron-LM flags go to ``OUT/tokenizer/tokenizer_spec.json`` for the indexed stage."""
    from ..fileio import atomic_write_json
    from ..data.tokenizer_types import identify_spec

    cfg: PipelineConfig = ctx.config
    if uses_imported_data(cfg):
        info = _imported_registry(cfg).tokenizer
        spec, sha256, vocab = info.spec, info.sha256, info.vocab_size
    else:
        ident = identify_spec(cfg.tokenizer.spec())
        spec, sha256, vocab = ident.spec, ident.sha256, ident.vocab_size
    path = atomic_write_json(out_dir / "tokenizer_spec.json", spec.to_json())
    return StageOutput(files={"model": str(Path(spec.tokenizer_model or spec.vocab_file)), "spec": str(path)},
                       fingerprint=sha256, summary=f"{spec.tokenizer_type} (vocab {vocab}; not trained here)")


def _tokenizer_for_indexing(ctx: StageContext):
    """The SentencePiece model the tokenizer stage trained or adopted, or the spec it recorded."""
    from ..fileio import read_json
    from ..data.tokenizer_types import TokenizerSpec

    files = ctx.upstream("tokenizer")["files"]
    if files.get("spec"):
        return TokenizerSpec.from_json(read_json(files["spec"]))
    return ctx.path("tokenizer", "model")


def _index_imported(ctx: StageContext, out_dir: Path) -> Path:
    """The imported registry, checked against its ``.idx`` files (counts unchanged since the import), saved as
    ``OUT/data/domains.json`` (restricted to ``corpus.domains``)."""
    from ..data.index_files import read_index

    registry = _imported_registry(ctx.config)
    for d in registry.domains:
        for split, prefixes in d.splits.items():
            for p in prefixes:
                counts = read_index(p.path)
                if (counts.num_tokens, counts.num_documents) != (p.num_tokens, p.num_documents):
                    raise DataError(f"{p.path}: {counts.num_tokens} tokens in {counts.num_documents} documents, but "
                                    f"{registry.path} records {p.num_tokens} in {p.num_documents}: the data changed "
                                    "since `domains import`; import it again")
    return registry.save(out_dir / "domains.json")


def run_indexed(ctx: StageContext) -> StageOutput:
    from ..data.manifest import DomainRegistry
    from ..data.preprocess import preprocess_corpus

    cfg: PipelineConfig = ctx.config
    out_dir = ctx.out / "data"
    _clear(out_dir, ctx.out)  # partial output of a killed run, or stale output of other inputs
    if uses_imported_data(cfg):
        manifest = _index_imported(ctx, out_dir)
    else:
        manifest = preprocess_corpus(ctx.path("corpus", "corpus_dir"), out_dir, _tokenizer_for_indexing(ctx),
                                     workers=cfg.preprocess.workers, domains=ctx.value("corpus", "domains"),
                                     eval_only=cfg.corpus.eval_only)
    registry = DomainRegistry.load(manifest)
    tokens = {d.name: d.num_tokens("train") for d in registry.training_domains}
    idx_files = [Path(p.path + ".idx") for d in registry.domains for ps in d.splits.values() for p in ps]
    fingerprint = fingerprint_paths([Path(manifest)] + sorted(idx_files))
    return StageOutput(files={"domains": str(manifest)},
                       values={"train_tokens": tokens,
                               "valid_tokens": {d.name: d.num_tokens("valid") for d in registry.domains}},
                       fingerprint=fingerprint,
                       summary=f"{sum(tokens.values()) / 1e6:.2f}M train tokens in {len(tokens)} training domains"
                               + (f", {len(registry.eval_only_names)} evaluation-only" if registry.eval_only_names
                                  else ""))


def verify_indexed(files: dict[str, Path]) -> None:
    """The indexed stage's check before it is skipped: every .bin/.idx pair against domains.json, its pointers
    included (once per prefix and process; a damaged pair makes the stage run again)."""
    from ..data.manifest import DomainRegistry

    DomainRegistry.load(files["domains"]).verify_files()


def _estimate_corpus(cfg: PipelineConfig) -> float:
    return 90.0 if cfg.corpus.source == "build" else 1.0


def _estimate_tokenizer(cfg: PipelineConfig) -> float:
    return 1.0 if cfg.tokenizer.model else (15.0 if cfg.corpus.source == "build" else 3.0)


def _estimate_indexed(cfg: PipelineConfig) -> float:
    if cfg.corpus.source == "build":
        return 8 * cfg.corpus.max_mb * 1.2 / cfg.preprocess.workers
    return 5.0
