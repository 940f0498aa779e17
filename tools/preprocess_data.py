#!/usr/bin/env python
"""Tokenize JSONL into Megatron indexed datasets (.bin/.idx) with Megatron-LM's flags, meanings and defaults.

    # one JSONL file -> out/my_text_document.{bin,idx}
    python tools/preprocess_data.py --input docs.jsonl --output-prefix out/my \\
        --tokenizer-type SentencePieceTokenizer --tokenizer-model tok/tokenizer.model --workers 2 --append-eod
    python tools/preprocess_data.py --input docs.jsonl --output-prefix out/my --tokenizer-type GPT2BPETokenizer \\
        --vocab-file gpt2/vocab.json --merge-file gpt2/merges.txt --workers 2 --append-eod
    python tools/preprocess_data.py --input docs.jsonl --output-prefix out/my \\
        --tokenizer-type HuggingFaceTokenizer --tokenizer-model path/to/hf-tokenizer-dir --workers 2 --append-eod
    # a corpus directory -> OUT/<domain>/<split>_text_document.{bin,idx} + OUT/domains.json
    python tools/preprocess_data.py --input CORPUS_DIR --output-prefix OUT \\
        --tokenizer-model tok/ --workers 2 --append-eod

Written with megatron-core's IndexedDatasetBuilder; the same engine as `regmix-megatron preprocess`. For the same
input and flags the .bin/.idx are byte-identical to Megatron-LM 0.16.1's own tool (tests/test_megatron_lm.py);
--tokenizer-type defaults to SentencePieceTokenizer here (Megatron-LM has no default).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regmix_megatron.cli import run_tool  # noqa: E402
from regmix_megatron.commands.preprocess import add_megatron_arguments, run_megatron_style  # noqa: E402


def main(argv=None) -> int:
    return run_tool("preprocess_data.py", __doc__, add_megatron_arguments, run_megatron_style, argv)


if __name__ == "__main__":
    sys.exit(main())
