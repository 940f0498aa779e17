#!/usr/bin/env python
"""Tokenize JSONL into Megatron indexed datasets (.bin/.idx), with Megatron-LM's flag names.

    # one JSONL file -> out/my_text_document.{bin,idx}
    python tools/preprocess_data.py --input docs.jsonl --output-prefix out/my \\
        --tokenizer-model tok/tokenizer.model --workers 2 --append-eod
    # a corpus directory -> OUT/<domain>/<split>_text_document.{bin,idx} + OUT/domains.json
    python tools/preprocess_data.py --input CORPUS_DIR --output-prefix OUT \\
        --tokenizer-model tok/ --workers 2 --append-eod

Written with megatron-core's IndexedDatasetBuilder; the same engine as `regmix-megatron preprocess`.
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regmix_megatron.commands.preprocess import add_megatron_arguments, run_megatron_style  # noqa: E402
from regmix_megatron.errors import RegmixError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_megatron_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        return run_megatron_style(args)
    except RegmixError as exc:
        print(f"preprocess_data.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
