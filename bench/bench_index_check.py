#!/usr/bin/env python
"""Cost of the full ``.idx`` check (:func:`regmix_megatron.data.index_files.check_pointers`: every pointer against the
lengths, O(sequences)) against the cheap one (:func:`check_prefix`: header and sizes).

    python bench/bench_index_check.py [--num-sequences 20000000] [--repeats 3]

Writes a synthetic Megatron ``.bin/.idx`` pair of ``--num-sequences`` sequences (random lengths 1..2048, uint16
tokens; the ``.bin`` is sparse, so it takes no disk) into a temp folder, then times each check ``--repeats`` times
from the page cache (the process-level memo of checked files is cleared before each run). Ends with
``ns per sequence: <full check>``.
"""

import argparse
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_pair(prefix: Path, num_sequences: int, seed: int = 0) -> None:
    from regmix_megatron.data.index_files import IDX_MAGIC, IDX_VERSION

    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 2049, size=num_sequences, dtype=np.int64)
    pointers = np.concatenate(([0], np.cumsum(lengths[:-1]))) * 2  # uint16 tokens: 2 bytes each
    docs = np.arange(num_sequences + 1, dtype=np.int64)
    with open(f"{prefix}.idx", "wb") as fh:
        fh.write(struct.pack("<9sQBQQ", IDX_MAGIC, IDX_VERSION, 8, num_sequences, num_sequences + 1))
        lengths.astype(np.int32).tofile(fh)
        pointers.astype(np.int64).tofile(fh)
        docs.tofile(fh)
    with open(f"{prefix}.bin", "wb") as fh:
        fh.truncate(int(lengths.sum()) * 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-sequences", type=int, default=20_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from regmix_megatron.data import index_files

    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "data_text_document"
        write_pair(prefix, args.num_sequences)
        size_mb = os.path.getsize(f"{prefix}.idx") / 1e6
        for name, check in (("cheap (header and sizes)", index_files.check_prefix),
                            ("full (every pointer)", index_files.check_pointers)):
            times = []
            for _ in range(args.repeats):
                index_files._POINTERS_CHECKED.clear()
                start = time.perf_counter()
                check(str(prefix))
                times.append(time.perf_counter() - start)
            print(f"{name}: best {min(times) * 1e3:.2f} ms, mean {np.mean(times) * 1e3:.2f} ms "
                  f"({args.num_sequences:,} sequences, .idx {size_mb:.0f} MB)")
        print(f"ns per sequence: {min(times) / args.num_sequences * 1e9:.2f}")


if __name__ == "__main__":
    main()
