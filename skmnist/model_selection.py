"""scikit-learn's searches and cross-validation, with skmnist's fits trained in packs.

:class:`GridSearchCV`, :class:`RandomizedSearchCV`, :func:`cross_validate` and
:func:`cross_val_score` are scikit-learn's own: the same constructors and
signatures, the same folds, scoring, refit, ``cv_results_``, ``error_score``,
metadata routing and fitted estimators. They differ only in how the fits of an
:class:`~skmnist.MNISTClassifier` (alone or ending a ``Pipeline``) run on Keras's
JAX backend on a GPU or other accelerator (or wherever
``SKMNIST_PACKING=always``; see :func:`skmnist._packing.packing_pays`): at once,
in threads of this process, with the compiled epochs of fits of one
architecture and batch size trained together as one program
(:mod:`skmnist._packing`). A fit's result is its own, whatever it was packed
with.

Why subclasses rather than a joblib backend: a backend sees one fit at a time,
as joblib dispatches them, and cannot know which fits will come to share a
program; the search knows how many fits it is about to start, which lets a pack
wait for them, and which estimator they train, which tells it whether packing
applies at all. Everything else is left to scikit-learn's loop, unchanged: what
cannot be packed (another backend, a callback acting on single batches, which
needs Keras's own ``Model.fit`` loop, a joblib backend the caller chose, such
as dask) runs exactly as with scikit-learn's classes. Callbacks acting on
epochs, early stopping and ``warm_start`` are packed: each fit runs them in its
own thread between its epochs, as when it trains alone.

``n_jobs`` in a packed search is the number of fits trained at once (threads of
this process; all of them, up to what memory holds, with ``None`` or ``-1``),
not of processes: the device's cores already serve every fit of a pack.
"""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from numbers import Integral

import numpy as np
from sklearn import model_selection as _sklearn
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

__all__ = ["GridSearchCV", "RandomizedSearchCV", "cross_val_score", "cross_validate"]

# The packing session of the search running in this thread (not another
# thread's, which the fits of a concurrent search may share).
_own_session: ContextVar = ContextVar("skmnist_packing_session", default=None)


class _PackedSearch:
    """What :class:`GridSearchCV` and :class:`RandomizedSearchCV` add to
    scikit-learn's: :meth:`fit` trains the fits in packs where it can."""

    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters, as scikit-learn's ``fit``; fits
        of an ``MNISTClassifier`` on the JAX backend train in packs."""
        if isinstance(self, _sklearn.GridSearchCV):
            grids, candidates = self.param_grid, _sklearn.ParameterGrid
        else:
            grids, candidates = self.param_distributions, None
        n_splits = _count_splits(self.cv, self.estimator, X, y, params)
        try:
            n_fits = n_splits * (
                len(candidates(grids)) if candidates else int(self.n_iter)
            )
        except Exception:  # the search's own fit reports what is wrong
            n_fits = 0
        with _packing(self.estimator, X, n_fits, self.n_jobs, grids) as threads:
            if threads is None:
                return super().fit(X, y, **params)
            n_jobs, self.n_jobs = self.n_jobs, threads
            try:
                return super().fit(X, y, **params)
            finally:
                self.n_jobs = n_jobs

    def _run_search(self, evaluate_candidates, callback_ctx=None):
        session = _own_session.get()
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


def cross_validate(
    estimator,
    X,
    y=None,
    *,
    groups=None,
    scoring=None,
    cv=None,
    n_jobs=None,
    verbose=0,
    params=None,
    pre_dispatch="2*n_jobs",
    return_train_score=False,
    return_estimator=False,
    return_indices=False,
    error_score=np.nan,
) -> dict:
    """scikit-learn's ``cross_validate``, training skmnist's folds in a pack.

    The arguments and the result are those of
    :func:`sklearn.model_selection.cross_validate`; only ``n_jobs`` means, for
    packed fits, the number of folds trained at once (see
    :mod:`skmnist.model_selection`).
    """
    options = _options(locals())
    return _cross_validation(_sklearn.cross_validate, estimator, X, y, n_jobs, options)


def cross_val_score(
    estimator,
    X,
    y=None,
    *,
    groups=None,
    scoring=None,
    cv=None,
    n_jobs=None,
    verbose=0,
    params=None,
    pre_dispatch="2*n_jobs",
    error_score=np.nan,
) -> np.ndarray:
    """scikit-learn's ``cross_val_score``, training skmnist's folds in a pack.

    The arguments and the result are those of
    :func:`sklearn.model_selection.cross_val_score`; only ``n_jobs`` means, for
    packed fits, the number of folds trained at once (see
    :mod:`skmnist.model_selection`).
    """
    options = _options(locals())
    return _cross_validation(_sklearn.cross_val_score, estimator, X, y, n_jobs, options)


def _options(arguments: dict) -> dict:
    """The keyword arguments a function was called with, to pass on, without
    those :func:`_cross_validation` takes apart."""
    return {
        name: value
        for name, value in arguments.items()
        if name not in {"estimator", "X", "y", "n_jobs"}
    }


def _cross_validation(function, estimator, X, y, n_jobs, options: dict):
    """``function`` (scikit-learn's) called as given, its folds packed."""
    route = dict(options.get("params") or {})
    if options["groups"] is not None:
        route["groups"] = options["groups"]
    n_fits = _count_splits(options["cv"], estimator, X, y, route)
    with _packing(estimator, X, n_fits, n_jobs) as threads:
        if threads is None:
            return function(estimator, X, y, n_jobs=n_jobs, **options)
        with _own_session.get().expecting(n_fits):
            return function(estimator, X, y, n_jobs=threads, **options)


def _count_splits(cv, estimator, X, y, params: dict) -> int:
    """The folds of ``cv``, or 0 where not known before fitting without
    consuming them (an iterable of splits) or where ``cv`` is wrong (the
    search's own validation reports it): packs then wait for fits only as
    long as their grace period."""
    if not (cv is None or isinstance(cv, Integral) or hasattr(cv, "get_n_splits")):
        return 0
    try:
        cv = _sklearn.check_cv(cv, y, classifier=is_classifier(estimator))
        return int(cv.get_n_splits(X, y, params.get("groups")))
    except Exception:
        return 0


@contextlib.contextmanager
def _packing(estimator, X, n_fits: int, n_jobs, grids=()) -> Iterator[int | None]:
    """A packing session for ``n_fits`` fits of ``estimator`` on ``X`` with
    parameters from ``grids``, giving the number of threads to run them in;
    None where they cannot be packed."""
    classifier = _packed_classifier(estimator)
    if (
        classifier is None
        or n_fits < 2
        # What scikit-learn refuses, it refuses itself.
        or not (n_jobs is None or (isinstance(n_jobs, Integral) and n_jobs != 0))
    ):
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

    shape = X.shape if hasattr(X, "shape") else np.shape(X)  # sparse too
    n_rows, n_features = int(shape[0]), int(np.prod(shape[1:]))
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

        from skmnist._packing import session_threads

        token = _own_session.set(session)
        try:
            with parallel_config(backend=session_threads(session), n_jobs=threads):
                yield threads
        finally:
            _own_session.reset(token)


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
