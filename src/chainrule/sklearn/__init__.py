"""scikit-learn estimators trained by chainrule: ``MLPClassifier`` and ``MLPRegressor`` (level 8).

Drop-in for sklearn's own MLPs (the same parameter names, defaults, initial
weights, batches and stopping rule; with plain SGD the same weights to float64
round-off), plus what those refuse: ``dropout``, ``sample_weight`` and
``class_weight``, every chainrule ``loss`` convention, chainrule's optimizers
(``solver``, ``optimizer_options``), ``device`` and ``threads``. They pass
``sklearn.utils.estimator_checks`` and work in ``Pipeline``, ``GridSearchCV``
(with joblib's processes or on a Dask cluster), ``cross_val_score`` and ``clone``.

Examples
--------
>>> from sklearn.datasets import load_iris
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from chainrule.sklearn import MLPClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = make_pipeline(StandardScaler(), MLPClassifier((16,), learning_rate_init=0.02, random_state=0))
>>> clf.fit(X, y)[-1].n_iter_ < 200  # stopped by sklearn's rule: no gain of tol in 10 epochs
True
>>> clf.score(X, y) > 0.95
True

A fitted estimator is saved in chainrule's safetensors format (never pickle) with
``clf.save(path)`` and read back with ``MLPClassifier.load(path)``; the estimator
itself pickles, which is how joblib ships it to worker processes.
"""

from chainrule.sklearn._estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
