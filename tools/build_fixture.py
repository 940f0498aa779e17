#!/usr/bin/env python
"""Cut the committed test fixture ``tests/fixtures/corpus/`` from a built corpus.

    regmix-megatron corpus build --cache-dir .cache
    python tools/build_fixture.py --cache-dir .cache          # same as `regmix-megatron corpus fixture`
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from regmix_megatron.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["corpus", "fixture", *sys.argv[1:]]))
