"""Regression from mixture weights to target metrics (RegMix step 4), pure numpy/pandas/lightgbm/sklearn.

- :mod:`.data`: load runs (our results table, or the RegMix published CSVs) into a :class:`RunTable`.
- :mod:`.models`: the :class:`Regressor` interface, :class:`LightGBMRegressor`, :class:`LinearRegressor`.
- :mod:`.metrics`: Spearman (headline), Pearson, MSE.
- :mod:`.fitting`: fit several regressors x targets, K-fold CV, test evaluation, output files.
- :mod:`.fastpredict`: exact, fast evaluation of a LightGBM model on many candidate mixtures (numba).

Part of the pure core: imports numpy, pandas, lightgbm, scikit-learn, numba and the core modules (``target``,
``results``, ``mixture``, ``fileio``); never the pipeline, sweep, report, commands or Megatron. Import submodules
directly; this package ``__init__`` stays light.
"""
