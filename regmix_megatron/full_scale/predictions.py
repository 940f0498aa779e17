"""The fit model's prediction for every compared mixture, so the evaluation sets each measured loss beside what
the model the search used expected of it.

The search predicts its pick and the built-in baselines (``search.json``); the compared mixtures picked from the
sweep (``best_domain``, ``best_sweep``, ``sweep:<run id>``) it never saw as candidates. :func:`predict_compared`
predicts each compared mixture of the target stage's ``runs.json`` with the same model (``estimate``: its
``predict_with_sd``), as the search featurizes it: a schedule's features phase by phase; a static mixture in a
search over several phases as the schedule that uses it in every phase. Where the search recorded a prediction,
that one is kept (it is the same model's).

Pure core: numpy and the mixture values.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..mixtures.mixture import Mixture
from ..mixtures.schedule import Schedule

#: ``{label: value}`` of the predictions and of their sd (None: the regressor gives no uncertainty).
Predictions = tuple[dict[str, float], dict[str, float | None]]


def compared_features(record: Mapping, domains: Sequence[str], fractions: Sequence[float], *,
                      where: str = "runs.json") -> np.ndarray:
    """The regression features of one ``runs.json`` record (its ``schedule``, else its ``mixture``) for a model
    over ``len(fractions)`` phases of ``domains``."""
    if record.get("schedule"):
        schedule = Schedule.from_obj(record["schedule"], source=f"{where}: schedule")
    else:
        schedule = Schedule.from_mixture(Mixture.from_dict(record["mixture"], source=f"{where}: mixture"))
    if schedule.is_static and len(fractions) > 1:
        schedule = Schedule.from_phases([(f, schedule.mixtures[0]) for f in fractions], source=where)
    if not np.allclose(schedule.fractions, fractions):
        raise DataError(f"{where}: its phases {list(schedule.fractions)} are not the model's {list(fractions)}: "
                        "the runs were trained for another search; run the pipeline's search and targets again")
    return schedule.features(domains)


def predict_compared(runs: Mapping[str, Mapping], estimate: Callable[[np.ndarray], Any], domains: Sequence[str],
                     fractions: Sequence[float], *, known: Mapping[str, float] | None = None,
                     known_sd: Mapping[str, float | None] | None = None,
                     spread: Callable[[np.ndarray], np.ndarray] | None = None) -> Predictions:
    """``(predicted, predicted_sd)`` for every label of ``runs`` (``runs.json``'s ``runs``): ``known`` (the
    search's) where it has the label, else ``estimate`` on :func:`compared_features`. ``spread``: for a model that
    gives no sd, the sd at the given features (its bootstrap refits); when given, it is every label's sd, the
    search's labels too."""
    known, known_sd = dict(known or {}), dict(known_sd or {})
    missing = [lab for lab in runs if lab not in known]
    needed = list(runs) if spread is not None else missing
    rows = {lab: compared_features(runs[lab], domains, fractions, where=f"runs.json: runs.{lab}") for lab in needed}
    predicted = {lab: float(known[lab]) for lab in runs if lab in known}
    predicted_sd = {lab: known_sd.get(lab) for lab in runs if lab in known}
    if missing:
        pred = estimate(np.stack([rows[lab] for lab in missing]))
        for k, lab in enumerate(missing):
            predicted[lab] = float(pred.mean[k])
            predicted_sd[lab] = None if pred.sd is None else float(pred.sd[k])
    if spread is not None:
        sd = spread(np.stack([rows[lab] for lab in runs]))
        predicted_sd = {lab: float(v) for lab, v in zip(runs, sd)}
    return predicted, predicted_sd
