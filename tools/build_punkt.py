#!/usr/bin/env python
"""Rebuild the shipped Punkt sentence-splitting model from a corpus directory.

    python tools/build_punkt.py --corpus-dir .cache/corpus            # -> regmix_megatron/data/punkt_en/

NLTK's pretrained punkt data cannot be downloaded here, so we train nltk's unsupervised PunktTrainer on
English prose domains of our own corpus (deterministic: documents in file order, the same bytes per domain)
and save the parameters as punkt_tab text files (no pickle).
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regmix_megatron.errors import RegmixError  # noqa: E402
from regmix_megatron.data.corpus_reader import discover_corpus, iter_documents  # noqa: E402
from regmix_megatron.data.sentences import DEFAULT_PUNKT_DIR, save_punkt, train_punkt  # noqa: E402

PROSE_DOMAINS = "literature,speeches,legal,reference,techdocs,qa"


def sample_texts(corpus_dir: Path, domains: list[str], bytes_per_domain: int) -> list[str]:
    found = discover_corpus(corpus_dir, splits=("train",))
    texts = []
    for name in domains:
        if name not in found:
            logging.warning("%s: no domain %r, skipped", corpus_dir, name)
            continue
        num_bytes = 0
        for _, doc in iter_documents(found[name]["train"]):
            if num_bytes >= bytes_per_domain:
                break
            texts.append(doc["text"])
            num_bytes += len(doc["text"].encode("utf-8"))
    return texts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus-dir", required=True, help="corpus directory of <domain>/<split>.jsonl")
    p.add_argument("--domains", default=PROSE_DOMAINS, help=f"prose domains to learn from (default {PROSE_DOMAINS})")
    p.add_argument("--bytes-per-domain", type=int, default=1_000_000, help="train bytes read per domain")
    p.add_argument("--output-dir", default=str(DEFAULT_PUNKT_DIR), help="where the punkt_tab files go")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        texts = sample_texts(Path(args.corpus_dir), args.domains.split(","), args.bytes_per_domain)
        if not texts:
            raise RegmixError(f"--corpus-dir {args.corpus_dir}: none of --domains {args.domains} has text")
        params = train_punkt(texts)
        out = save_punkt(params, args.output_dir)
    except RegmixError as exc:
        print(f"build_punkt.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {len(params.abbrev_types)} abbreviations, {len(params.collocations)} collocations, "
          f"{len(params.sent_starters)} sentence starters, {len(params.ortho_context)} word types "
          f"from {sum(len(t) for t in texts) / 1e6:.1f}M characters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
