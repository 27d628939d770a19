"""scikit-learn's searches and cross-validation, with skmnist's fits trained in packs.

:class:`GridSearchCV`, :class:`RandomizedSearchCV`, :func:`cross_validate` and
:func:`cross_val_score` are scikit-learn's own: the same constructors and
signatures, the same folds, scoring, refit, ``cv_results_``, ``error_score``,
metadata routing and fitted estimators. They differ only in how the fits of an
:class:`~skmnist.MNISTClassifier` (alone or ending a ``Pipeline``) run on Keras's
JAX backend: at once, in threads of this process, with the compiled epochs of
fits of one architecture and batch size trained together as one program
(:mod:`skmnist._packing`). A fit's result is its own, whatever it was packed
with.

Why subclasses rather than a joblib backend: a backend sees one fit at a time,
as joblib dispatches them, and cannot know which fits will come to share a
program; the search knows how many fits it is about to start, which lets a pack
wait for them, and which estimator they train, which tells it whether packing
applies at all. Everything else is left to scikit-learn's loop, unchanged: what
cannot be packed (another backend, callbacks, ``warm_start``, a joblib backend
the caller chose, such as dask) runs exactly as with scikit-learn's classes.

``n_jobs`` in a packed search is the number of fits trained at once (threads of
this process; all of them, up to what memory holds, with ``None`` or ``-1``),
not of processes: the device's cores already serve every fit of a pack.
"""

import contextlib
from collections.abc import Iterator
from numbers import Integral

import numpy as np
from sklearn import model_selection as _sklearn
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

__all__ = ["GridSearchCV", "RandomizedSearchCV", "cross_val_score", "cross_validate"]


class _PackedSearch:
    """What :class:`GridSearchCV` and :class:`RandomizedSearchCV` add to
    scikit-learn's: :meth:`fit` trains the fits in packs where it can."""

    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters, as scikit-learn's ``fit``; fits
        of an ``MNISTClassifier`` on the JAX backend train in packs."""
        n_fits = _count_fits(self, X, y, params)
        grids = getattr(self, "param_grid", None) or self.param_distributions
        with _packing(self.estimator, X, n_fits, self.n_jobs, grids) as threads:
            if threads is None:
                return super().fit(X, y, **params)
            n_jobs, self.n_jobs = self.n_jobs, threads
            try:
                return super().fit(X, y, **params)
            finally:
                self.n_jobs = n_jobs

    def _run_search(self, evaluate_candidates, callback_ctx=None):
        from skmnist._packing import current_session

        session = current_session()
        if session is not None:
            plain = evaluate_candidates

            def evaluate_candidates(candidate_params, cv=None, *args, **kwargs):
                candidate_params = list(candidate_params)
                with session.expecting(len(candidate_params) * self.n_splits_):
                    return plain(candidate_params, cv, *args, **kwargs)

        if callback_ctx is None:
            return super()._run_search(evaluate_candidates)
        return super()._run_search(evaluate_candidates, callback_ctx=callback_ctx)


class GridSearchCV(_PackedSearch, _sklearn.GridSearchCV):
    """scikit-learn's ``GridSearchCV``, training skmnist's fits in packs.

    The constructor, attributes and methods are scikit-learn's
    (:class:`sklearn.model_selection.GridSearchCV`); only ``n_jobs`` means, for
    packed fits, the number of fits trained at once (see
    :mod:`skmnist.model_selection`).

    Examples
    --------
    >>> from skmnist import make_mnist_pipeline
    >>> from skmnist.model_selection import GridSearchCV
    >>> search = GridSearchCV(
    ...     make_mnist_pipeline(epochs=2, random_state=0),
    ...     {"clf__hidden_units": [128, 512]},
    ...     cv=5,
    ... )
    """


class RandomizedSearchCV(_PackedSearch, _sklearn.RandomizedSearchCV):
    """scikit-learn's ``RandomizedSearchCV``, training skmnist's fits in packs.

    The constructor, attributes and methods are scikit-learn's
    (:class:`sklearn.model_selection.RandomizedSearchCV`); only ``n_jobs``
    means, for packed fits, the number of fits trained at once (see
    :mod:`skmnist.model_selection`).

    Examples
    --------
    >>> from scipy.stats import loguniform
    >>> from skmnist import make_mnist_pipeline
    >>> from skmnist.model_selection import RandomizedSearchCV
    >>> search = RandomizedSearchCV(
    ...     make_mnist_pipeline(epochs=2, random_state=0),
    ...     {"clf__optimizer__learning_rate": loguniform(1e-4, 1e-2)},
    ...     n_iter=8,
    ...     random_state=0,
    ... )
    """


def cross_validate(estimator, X, y=None, *, n_jobs=None, **kwargs) -> dict:
    """scikit-learn's ``cross_validate``, training skmnist's folds in a pack.

    The arguments and the result are those of
    :func:`sklearn.model_selection.cross_validate`; only ``n_jobs`` means, for
    packed fits, the number of folds trained at once (see
    :mod:`skmnist.model_selection`).
    """
    cv = _sklearn.check_cv(kwargs.get("cv"), y, classifier=is_classifier(estimator))
    groups = kwargs.get("groups")
    with _packing(estimator, X, cv.get_n_splits(X, y, groups), n_jobs) as threads:
        if threads is None:
            return _sklearn.cross_validate(estimator, X, y, n_jobs=n_jobs, **kwargs)
        from skmnist._packing import current_session

        with current_session().expecting(cv.get_n_splits(X, y, groups)):
            return _sklearn.cross_validate(estimator, X, y, n_jobs=threads, **kwargs)


def cross_val_score(estimator, X, y=None, *, scoring=None, **kwargs) -> np.ndarray:
    """scikit-learn's ``cross_val_score``, training skmnist's folds in a pack
    (see :func:`cross_validate`)."""
    from sklearn.metrics import check_scoring

    scorer = check_scoring(estimator, scoring=scoring)
    return cross_validate(estimator, X, y, scoring={"score": scorer}, **kwargs)[
        "test_score"
    ]


def _count_fits(search, X, y, params) -> int:
    """The fits of ``search``'s cross-validation, or 0 where not known before
    fitting (the packs then wait for fits only as long as the grace period)."""
    try:
        cv = _sklearn.check_cv(search.cv, y, classifier=is_classifier(search.estimator))
        n_splits = cv.get_n_splits(X, y, params.get("groups"))
        if isinstance(search, _sklearn.GridSearchCV):
            return len(_sklearn.ParameterGrid(search.param_grid)) * n_splits
        return search.n_iter * n_splits
    except Exception:  # the search's own fit reports what is wrong
        return 0


@contextlib.contextmanager
def _packing(estimator, X, n_fits: int, n_jobs, grids=()) -> Iterator[int | None]:
    """A packing session for ``n_fits`` fits of ``estimator`` on ``X`` with
    parameters from ``grids``, giving the number of threads to run them in;
    None where they cannot be packed."""
    classifier = _packed_classifier(estimator)
    if classifier is None or n_fits < 2:
        yield None
        return
    from skmnist._packing import (
        available_device_bytes,
        fit_bytes,
        max_pack_for_memory,
        packed_fits,
        packing_pays,
    )

    if not packing_pays():
        yield None
        return
    from skmnist._training import padded_rows

    n_rows, n_features = len(X), int(np.prod(np.shape(X)[1:]))
    fits = n_fits
    if isinstance(n_jobs, Integral) and n_jobs > 0:
        fits = min(fits, int(n_jobs))
    weights = _largest_network(classifier, n_features, grids)
    threads = max_pack_for_memory(
        fit_bytes(padded_rows(n_rows), n_features, weights),
        fits,
        available_device_bytes(),
    )
    if threads < 2:
        yield None
        return
    with packed_fits(max_pack=threads, threads=threads) as session:
        if session is None:  # another search is packing
            yield None
            return
        from joblib import parallel_config

        with parallel_config(backend="threading", n_jobs=threads):
            yield threads


def _packed_classifier(estimator):
    """The ``MNISTClassifier`` that ``estimator`` trains, if its fits can be
    packed here: on the JAX backend, unless the caller chose a joblib backend
    of their own."""
    import keras

    from skmnist._classifier import MNISTClassifier
    from skmnist._compat import joblib_backend_chosen

    if isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    if (
        not isinstance(estimator, MNISTClassifier)
        or keras.backend.backend() != "jax"
        or joblib_backend_chosen()
    ):
        return None
    return estimator


def _largest_network(classifier, n_features: int, grids) -> int:
    """Weights of the largest network among ``classifier``'s and those the
    ``hidden_units`` lists of ``grids`` give it."""
    from skmnist._architecture import count_weights, hidden_layer_widths

    candidates = [classifier.hidden_units]
    for grid in [grids] if isinstance(grids, dict) else grids or ():
        for name, values in grid.items():
            if name.rpartition("__")[2] == "hidden_units" and isinstance(
                values, list | tuple
            ):
                candidates.extend(values)
    largest = 0
    for hidden_units in candidates:
        try:
            widths = hidden_layer_widths(hidden_units)
        except (TypeError, ValueError):  # the fit reports it
            continue
        largest = max(largest, count_weights(n_features, widths, 10))
    return largest
