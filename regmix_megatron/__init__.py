"""regmix-megatron: RegMix data-mixture search for Megatron-LM.

This package ``__init__`` imports nothing heavy. The pure core (mixtures, sampling, regression, search,
manifests) imports numpy/pandas/lightgbm only; ``regmix_megatron.megatron`` is the only subpackage that
imports ``megatron.*``.
"""

__version__ = "0.1.0"
