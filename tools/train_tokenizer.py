#!/usr/bin/env python
"""Train a SentencePiece BPE tokenizer on a domain-balanced sample of a corpus directory.

    python tools/train_tokenizer.py --input CORPUS_DIR --output-dir tok --vocab-size 8000
    python tools/train_tokenizer.py --tokenizer-model existing.model --output-dir tok   # adopt, metadata only

Writes tok/tokenizer.model, tok/tokenizer_metadata.json (read by megatron-core's
MegatronTokenizer.from_pretrained) and tok/tokenizer_info.json. Same engine as `regmix-megatron tokenizer train`.
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regmix_megatron.commands.tokenizer import add_train_arguments, run_train  # noqa: E402
from regmix_megatron.errors import RegmixError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        return run_train(args)
    except RegmixError as exc:
        print(f"train_tokenizer.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
