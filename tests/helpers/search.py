"""A small real LightGBM model over five domains, for the search tests."""

from __future__ import annotations

import numpy as np

from regmix_megatron.regression.models import LightGBMRegressor

DOMAINS = ["books", "code", "news", "web", "wiki"]
TOKENS = np.array([4e6, 2e6, 1e6, 20e6, 3e6])


def fitted_model() -> LightGBMRegressor:
    """Loss falls with code and news, rises with web (so the search pushes code and news to their caps)."""
    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.ones(5), size=150)
    y = 4 - 1.5 * x[:, 1] - 0.8 * x[:, 2] + 0.5 * x[:, 3] + 0.01 * rng.standard_normal(150)
    return LightGBMRegressor(DOMAINS, "val_loss/code", num_rounds=80, learning_rate=0.1).fit(x, y)


def fitted_ensemble():
    """The same loss as :func:`fitted_model`, fit by the ensemble (fast LightGBM members, 4 bootstrap refits)."""
    from regmix_megatron.regression.models import make_regressor

    rng = np.random.default_rng(0)
    x = rng.dirichlet(np.ones(5), size=150)
    y = 4 - 1.5 * x[:, 1] - 0.8 * x[:, 2] + 0.5 * x[:, 3] + 0.2 * x[:, 1] ** 2 + 0.01 * rng.standard_normal(150)
    return make_regressor("ensemble", DOMAINS, "val_loss/code", num_bootstrap=4, num_rounds=80,
                          learning_rate=0.1).fit(x, y)


def write_registry(root):
    """A domains.json over :data:`DOMAINS` with :data:`TOKENS` train tokens, and .bin/.idx pairs that hold exactly
    those counts (search and export check the data before they write); the registry."""
    from helpers.indexed_files import write_registry_files
    from regmix_megatron.manifest import Domain, DomainRegistry, PrefixInfo, TokenizerInfo

    def prefix(d, split, n):
        return PrefixInfo(path=str(root / "data" / d / f"{split}_text_document"), num_documents=10,
                          num_sequences=10, num_tokens=int(n))

    registry = DomainRegistry(
        domains=tuple(Domain(d, {"train": (prefix(d, "train", t),), "valid": (prefix(d, "valid", 1000),),
                                 "test": (prefix(d, "test", 1000),)}) for d, t in zip(DOMAINS, TOKENS)),
        tokenizer=TokenizerInfo("sentencepiece", str(root / "spm.model"), "0" * 64, 1000, 2))
    registry.save(root / "domains.json")
    write_registry_files(root / "domains.json")
    return registry
