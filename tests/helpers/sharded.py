"""A registry with one domain's training documents re-sharded into two prefixes (25% / 75% of its documents)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from regmix_megatron.data.manifest import Domain, DomainRegistry, PrefixInfo


def shard_domain(registry: DomainRegistry, name: str, root: Path) -> DomainRegistry:
    """``registry`` with domain ``name``'s train split written as two shards under ``root`` with megatron-core's
    ``IndexedDatasetBuilder`` (the first quarter of its documents, then the rest)."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder

    (source,) = registry.get(name).prefixes("train")
    data = IndexedDataset(source.path)
    num_docs = len(data.document_indices) - 1
    cut = num_docs // 4
    shards = []
    for k, (lo, hi) in enumerate(((0, cut), (cut, num_docs))):
        prefix = Path(root) / f"{name}_train_{k}_text_document"
        builder = IndexedDatasetBuilder(str(prefix) + ".bin", dtype=data.index.dtype)
        num_tokens = 0
        for doc in range(lo, hi):
            seqs = range(data.document_indices[doc], data.document_indices[doc + 1])
            tokens = [np.asarray(data[i]) for i in seqs]
            builder.add_document(np.concatenate(tokens), [len(t) for t in tokens])
            num_tokens += sum(len(t) for t in tokens)
        builder.finalize(str(prefix) + ".idx")
        shards.append(PrefixInfo(str(prefix), hi - lo, hi - lo, num_tokens))
    assert sum(p.num_tokens for p in shards) == source.num_tokens
    domains = tuple(Domain(d.name, {**d.splits, "train": tuple(shards)}) if d.name == name else d
                    for d in registry.domains)
    return DomainRegistry(domains=domains, tokenizer=registry.tokenizer, path=registry.path)
