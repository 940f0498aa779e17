"""Reports: one self-contained HTML page per report, and every figure in them.

Owns the page framework (:mod:`.page`: sections, tables, embedded PNGs, the atomic write), all figures
(:mod:`.figures`, matplotlib on the Agg backend), the RegMix sections of a fit and a search (:mod:`.regmix`) and
the pipeline's report (:mod:`.pipeline`). May import the pure core (results, target, regression, fileio) and
matplotlib/pandas; never ``regmix_megatron.pipeline``, ``.sweep``, ``.commands`` or ``.megatron`` (the pipeline
calls into this package, not the reverse). This ``__init__`` imports nothing.
"""
