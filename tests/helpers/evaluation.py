"""Constructed target-stage runs (``runs.json`` form) for the evaluation and report tests."""

from __future__ import annotations

from typing import Mapping, Sequence


def result(run_id: str, seed: int, valid: Mapping[str, float], test: Mapping[str, float]) -> dict:
    """A run's result.json as far as the evaluation reads it."""
    return {"run_id": run_id, "seed": seed, "val_loss": dict(valid), "split_loss": {"test": dict(test)}}


def runs(spec: Mapping[str, tuple[Mapping[str, float], Sequence[float], float | None]], domain: str = "a",
         other: float = 9.0) -> dict:
    """``{label: (mixture, [test loss of domain per seed], proxy valid loss or None)}`` -> runs.json ``runs``.

    Seeds are 1, 2, ...; each run's valid loss is its test loss + 0.5; every run also has a domain ``b`` with
    loss ``other``."""
    out = {}
    for label, (mixture, losses, proxy) in spec.items():
        target = {str(seed): {"run_id": f"{label}-{seed}", "run_dir": f"/runs/{label}-{seed}",
                              "result": result(f"{label}-{seed}", seed, {domain: x + 0.5, "b": other},
                                               {domain: x, "b": other})}
                  for seed, x in enumerate(losses, start=1)}
        out[label] = {"mixture": dict(mixture), "mixture_hash": f"h-{label}", "target": target,
                      "proxy": None if proxy is None else {"result": result(f"{label}-p", 1, {domain: proxy, "b": 9.5},
                                                                            {domain: proxy, "b": 9.5})}}
    return out


#: RegMix clearly better than natural and uniform (pooled seed sd 0.01), level with best_domain.
CLEAR_WIN = {
    "regmix": ({"x": 0.6, "y": 0.4}, [5.00, 5.01, 4.99], 6.0),
    "natural": ({"x": 0.3, "y": 0.7}, [5.30, 5.31, 5.29], 6.2),
    "uniform": ({"x": 0.5, "y": 0.5}, [5.20, 5.21, 5.19], 6.1),
    "best_domain": ({"x": 1.0, "y": 0.0}, [5.005], 6.05),
    "sweep:abcdef0123": ({"x": 0.1, "y": 0.9}, [5.6], 6.4),
}


# ---- per-document losses: documents that disagree ------------------------------------------------------------
#: The target's test documents: 20 from the FAQ and 20 chat dialogues, 100 tokens each.
SOURCES = ["faq"] * 20 + ["chat"] * 20


def document_profiles(seed: int = 0):
    """Per-document losses (a profile per label) on :data:`SOURCES`: documents differ a lot in how hard they are
    (sd 0.5); RegMix is much better on the FAQ (-0.28) and much worse on the chats (+0.24): 0.02 better on
    average, while the documents disagree by +-0.26; natural and uniform score every document alike (up to a
    shift)."""
    import numpy as np

    base = 5.0 + np.random.default_rng(seed).normal(0.0, 0.5, len(SOURCES))
    faq = np.array([s == "faq" for s in SOURCES])
    return {"regmix": base + np.where(faq, -0.28, 0.24), "natural": base.copy(), "uniform": base.copy()}


#: RegMix 0.02 better than natural with a tiny seed spread (pooled sd 0.001), 0.3 better than uniform.
DOCUMENTS_DISAGREE = {
    "regmix": ({"x": 0.6, "y": 0.4}, [5.000, 5.001, 4.999], 6.0),
    "natural": ({"x": 0.3, "y": 0.7}, [5.020, 5.021, 5.019], 6.2),
    "uniform": ({"x": 0.5, "y": 0.5}, [5.300, 5.301, 5.299], 6.1),
}


def document_losses(spec, profiles, domain: str = "a", split: str = "test") -> dict:
    """``{label: [RunDocumentLosses per seed]}`` whose per-document losses are the label's profile shifted so that
    each seed's mean is its test loss in ``spec`` (:func:`runs`' form): the documents agree with ``runs.json``."""
    import numpy as np

    from regmix_megatron.runs.document_losses import DocumentLosses, RunDocumentLosses

    out = {}
    for label, (_, losses, _) in spec.items():
        profile = np.asarray(profiles[label], dtype=np.float64)
        tokens = np.full(profile.size, 100, dtype=np.int64)
        out[label] = [RunDocumentLosses(f"{label}-{seed}", 80, {split: {domain: DocumentLosses(
            (profile - profile.mean() + x) * tokens, tokens)}}) for seed, x in enumerate(losses, start=1)]
    return out
