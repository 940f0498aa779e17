#!/usr/bin/env python
"""Train a SentencePiece BPE tokenizer on a domain-balanced sample of a corpus directory.

    python tools/train_tokenizer.py --input CORPUS_DIR --output-dir tok --vocab-size 8000
    python tools/train_tokenizer.py --tokenizer-model existing.model --output-dir tok   # adopt, metadata only

Writes tok/tokenizer.model, tok/tokenizer_metadata.json (read by megatron-core's
MegatronTokenizer.from_pretrained) and tok/tokenizer_info.json. Same engine as `regmix-megatron tokenizer train`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regmix_megatron.cli import run_tool  # noqa: E402
from regmix_megatron.commands.tokenizer import add_train_arguments, run_train  # noqa: E402


def main(argv=None) -> int:
    return run_tool("train_tokenizer.py", __doc__, add_train_arguments, run_train, argv)


if __name__ == "__main__":
    sys.exit(main())
