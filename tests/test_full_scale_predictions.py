"""Every compared mixture predicted by the search's model (regmix_megatron/full_scale/predictions.py), with a
constructed model whose predictions are known."""

from __future__ import annotations

import numpy as np
import pytest

from regmix_megatron.errors import RegmixError
from regmix_megatron.full_scale.predictions import compared_features, predict_compared
from regmix_megatron.regression.models import Prediction

DOMAINS = ["code", "math", "web"]
COEF = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0])  # a linear model over two phases' features


def linear(rows: np.ndarray) -> Prediction:
    rows = np.atleast_2d(rows)
    return Prediction(rows @ COEF[: rows.shape[1]], sd=0.01 * rows.sum(axis=1))


RUNS = {
    "regmix": {"mixture": {"code": 0.5, "math": 0.2, "web": 0.3}},
    "natural": {"mixture": {"code": 0.2, "math": 0.2, "web": 0.6}},
    "best_domain": {"mixture": {"code": 1.0, "math": 0.0, "web": 0.0}},
    "sweep:abc": {"mixture": {"code": 0.1, "math": 0.6, "web": 0.3}},
}


def test_every_compared_mixture_gets_a_prediction_the_searchs_own_kept():
    known, known_sd = {"regmix": 1.75, "natural": 9.9, "uniform": 2.0}, {"regmix": None, "natural": 0.5}
    predicted, sd = predict_compared(RUNS, linear, DOMAINS, (1.0,), known=known, known_sd=known_sd)
    assert set(predicted) == set(sd) == set(RUNS)  # uniform was not compared: left out
    assert predicted["regmix"] == 1.75 and sd["regmix"] is None  # the search's, as it recorded them
    assert predicted["natural"] == 9.9 and sd["natural"] == 0.5
    assert predicted["best_domain"] == pytest.approx(1.0) and sd["best_domain"] == pytest.approx(0.01)
    assert predicted["sweep:abc"] == pytest.approx(0.1 + 1.2 + 0.9)
    alone, _ = predict_compared(RUNS, linear, DOMAINS, (1.0,))
    assert alone["natural"] == pytest.approx(0.2 + 0.4 + 1.8)  # without the search's: the model's


def test_a_spread_gives_every_compared_mixture_its_sd_the_searchs_labels_too():
    """A model without an sd (its refits give one, ``spread``): every label's sd comes from it, on the same features
    the predictions use; the search's predictions are still kept."""
    known, known_sd = {"regmix": 1.75}, {"regmix": None}
    seen = []

    def spread(rows):
        seen.append(rows)
        return 0.1 * rows[:, 0]

    predicted, sd = predict_compared(RUNS, lambda rows: Prediction(rows @ COEF[:3]), DOMAINS, (1.0,), known=known,
                                     known_sd=known_sd, spread=spread)
    assert predicted["regmix"] == 1.75 and predicted["sweep:abc"] == pytest.approx(0.1 + 1.2 + 0.9)
    assert len(seen) == 1 and seen[0].shape == (4, 3)  # one call, every label
    assert sd == pytest.approx({"regmix": 0.05, "natural": 0.02, "best_domain": 0.1, "sweep:abc": 0.01})


def test_a_static_mixture_in_a_search_over_phases_is_the_schedule_that_uses_it_in_every_phase():
    schedule = {"phases": [{"fraction": 0.25, "weights": {"code": 1.0}},
                           {"fraction": 0.75, "weights": {"math": 0.5, "web": 0.5}}]}
    runs = {"regmix": {"mixture": {"code": 0.25, "math": 0.375, "web": 0.375}, "schedule": schedule},
            "natural": RUNS["natural"]}
    np.testing.assert_allclose(compared_features(runs["regmix"], DOMAINS, (0.25, 0.75)),
                               [0.25, 0, 0, 0, 0.375, 0.375])
    np.testing.assert_allclose(compared_features(runs["natural"], DOMAINS, (0.25, 0.75)),
                               [0.05, 0.05, 0.15, 0.15, 0.15, 0.45])
    predicted, _ = predict_compared(runs, linear, DOMAINS, (0.25, 0.75))
    assert predicted["regmix"] == pytest.approx(0.25 + 7.5 + 11.25)
    with pytest.raises(RegmixError, match=r"phases \[0.25, 0.75\] are not the model's \[0.5, 0.5\]"):
        predict_compared(runs, linear, DOMAINS, (0.5, 0.5))
