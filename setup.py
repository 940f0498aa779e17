"""regmix-megatron: RegMix data-mixture search for Megatron-LM."""

from setuptools import find_packages, setup

RUNTIME = [
    "torch==2.13.0",
    "megatron-core==0.16.1",
    "numpy==2.4.6",
    "lightgbm==4.7.0",
    "scikit-learn==1.9.1",
    "scipy==1.17.1",
    "nltk==3.10.4",
    "sentencepiece==0.2.3",
    "PyYAML==6.0.4",
    "matplotlib==3.11.2",
    "pandas==3.1.1",
    "pyarrow==26.0.1",
    "numba==0.68.1",
    "submitit==1.5.4",
    "tqdm==4.70.1",
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
    package_data={"regmix_megatron": ["data/*", "data/punkt_en/*", "presets/*.yaml"]},
    install_requires=RUNTIME,
    extras_require={
        "dev": ["pytest==9.2.0"],
        "test": ["pytest==9.2.0"],
        # GPU only. Transformer Engine needs CUDA to build; NVIDIA apex is not on PyPI and is built from
        # source (https://github.com/NVIDIA/apex, `pip install -v --no-build-isolation ./apex`).
        "gpu": ["transformer-engine[pytorch]"],
    },
    entry_points={"console_scripts": ["regmix-megatron=regmix_megatron.cli:main"]},
)
