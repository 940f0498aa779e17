"""regmix-megatron: RegMix data-mixture search for Megatron-LM."""

from setuptools import find_packages, setup

# The one list of pinned dependencies (requirements*.txt install this package with its extras).
#: The pure core (sampling, regression, search, manifests, mixtures, export, reports, the pipeline's orchestration):
#: `pip install regmix-megatron` alone runs sample, fit, search, export and report.
CORE = [
    "numpy==2.4.6",
    "lightgbm==4.7.0",
    "scikit-learn==1.9.1",
    "nltk==3.10.4",
    "sentencepiece==0.2.3",
    "PyYAML==6.0.4",
    "matplotlib==3.11.2",
    "pandas==3.1.1",
    "pyarrow==26.0.1",
    "numba==0.68.1",
    "llvmlite==0.50.0",
    "tqdm==4.70.1",
]
#: megatron-core without torch: for an environment that already has a CUDA torch (NVIDIA's PyTorch containers; `make
#: gpu-venv` installs `.[mcore,megatron-lm]` under constraints that keep the stack's torch). megatron-core 0.16.1
#: itself requires torch>=2.6.0.
MCORE = [
    "megatron-core==0.16.1",
]
#: The Megatron edge (preprocess to .bin/.idx, train, sweep, run): `pip install regmix-megatron[megatron]`.
#: On a CPU machine install torch==2.13.0 first (the Makefile does): an unpinned torch pulls a multi-GB CUDA build.
MEGATRON = [
    "torch==2.13.0",
    *MCORE,
]
#: Megatron-LM's own code (a checkout: `tools/check_megatron_lm.py`, gpu-check's Megatron-LM checks): what its
#: `megatron.training` imports besides megatron-core, and pybind11, with which its dataset helpers are compiled.
MEGATRON_LM = [
    "six==1.17.0",
    "pydantic==2.14.4",
    "einops==0.8.2",
    "pybind11==3.1.0",
]
#: Transformer Engine, in megatron-core 0.16.1's declared range (transformer-engine>=2.9.0a0,<2.12.0), for the CUDA 13
#: torch pinned above. Its torch extension ships as source only (every release on PyPI): it compiles against the
#: installed torch, so install it with `pip install --no-build-isolation` (needs nvcc, cuDNN headers, pybind11 and
#: 10-30 minutes); with a CUDA 12 torch use `transformer-engine[core_cu12,pytorch]==2.11.0`. NVIDIA's PyTorch
#: containers ship a prebuilt one (README). NVIDIA apex is not on PyPI: built from source
#: (https://github.com/NVIDIA/apex, `pip install -v --no-build-isolation ./apex`); nothing we run needs it.
GPU = [
    "transformer-engine[core_cu13,pytorch]==2.11.0",
]
#: Data tokenized with a HuggingFace tokenizer or tiktoken (megatron-core's own tokenizer classes need these):
#: `pip install regmix-megatron[megatron,tokenizers]`. SentencePiece and GPT-2 BPE need nothing more.
TOKENIZERS = [
    "transformers==4.57.6",
    "tokenizers==0.22.2",
    "tiktoken==0.12.0",
]
#: Tests (scipy is the independent reference for the metrics; the package itself does not use it; the tokenizer
#: tests build HuggingFace and tiktoken vocabularies).
DEV = [
    "pytest==9.2.0",
    "scipy==1.17.1",
    *TOKENIZERS,
    *MEGATRON_LM,
]

setup(
    name="regmix-megatron",
    version="0.1.0",
    description="Find the best pre-training data mixture by regression (RegMix) and feed it to Megatron-LM",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # The pins need it: numpy 2.4.6, scikit-learn 1.9.1, matplotlib 3.11.2, pandas 3.1.1, pyarrow 26.0.1 and scipy
    # 1.17.1 declare Requires-Python >=3.11 on PyPI (the rest >=3.10 or older).
    python_requires=">=3.11",
    packages=find_packages(include=["regmix_megatron", "regmix_megatron.*"]),
    include_package_data=True,
    package_data={"regmix_megatron": ["data/*", "data/punkt_en/*", "presets/*.yaml"]},
    install_requires=CORE,
    extras_require={
        "megatron": MEGATRON,
        "mcore": MCORE,
        "megatron-lm": MEGATRON_LM,
        "tokenizers": TOKENIZERS,
        "dev": DEV,
        "test": DEV,
        "gpu": GPU,
    },
    entry_points={"console_scripts": ["regmix-megatron=regmix_megatron.cli:main"]},
)
