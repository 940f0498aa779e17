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
#: The Megatron edge (preprocess to .bin/.idx, train, sweep, run): `pip install regmix-megatron[megatron]`.
#: On a CPU machine install torch==2.13.0 first (the Makefile does): an unpinned torch pulls a multi-GB CUDA build.
MEGATRON = [
    "torch==2.13.0",
    "megatron-core==0.16.1",
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
]

setup(
    name="regmix-megatron",
    version="0.1.0",
    description="Find the best pre-training data mixture by regression (RegMix) and feed it to Megatron-LM",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["regmix_megatron", "regmix_megatron.*"]),
    include_package_data=True,
    package_data={"regmix_megatron": ["data/punkt_en/*", "runs/presets/*.yaml", "data/corpus/README.md"]},
    install_requires=CORE,
    extras_require={
        "megatron": MEGATRON,
        "tokenizers": TOKENIZERS,
        "dev": DEV,
        "test": DEV,
        # GPU only. Transformer Engine needs CUDA to build; NVIDIA apex is not on PyPI and is built from
        # source (https://github.com/NVIDIA/apex, `pip install -v --no-build-isolation ./apex`).
        "gpu": ["transformer-engine[pytorch]"],
    },
    entry_points={"console_scripts": ["regmix-megatron=regmix_megatron.cli:main"]},
)
