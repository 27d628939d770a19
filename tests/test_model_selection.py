"""skmnist's searches and cross-validation are scikit-learn's, but for time.

Each test runs the same search through scikit-learn's class and skmnist's and
compares what a user reads. Under TensorFlow skmnist's run scikit-learn's loop
unpacked; .ci/run runs this module again under JAX (each_backend), where
they pack (the tests check that they did).
"""

import warnings

import keras
import numpy as np
import pytest
import sklearn
from joblib import parallel_config, register_parallel_backend
from joblib._parallel_backends import ThreadingBackend
from sklearn import model_selection as sk
from sklearn.exceptions import FitFailedWarning

from skmnist import MNISTClassifier, load, save
from skmnist import model_selection as packed
from skmnist._packing import PackingSession

# Run again under Keras's JAX backend by .ci/run (see CONTRIBUTING.md).
pytestmark = pytest.mark.each_backend

PACKS = keras.backend.backend() == "jax"


@pytest.fixture(autouse=True)
def packing_on_this_cpu(monkeypatch):
    """Pack here too: by default searches pack on accelerators only."""
    monkeypatch.setenv("SKMNIST_PACKING", "always")


@pytest.fixture
def packs_run(monkeypatch):
    """The sizes of the packs trained (fits per pack), as they run."""
    sizes = []
    train_pack = PackingSession._train_pack

    def recording(self, requests):
        sizes.append(len(requests))
        return train_pack(self, requests)

    monkeypatch.setattr(PackingSession, "_train_pack", recording)
    return sizes


def _classifier(**params):
    return MNISTClassifier(
        hidden_units=16, epochs=2, batch_size=64, random_state=0, **params
    )


def _same_results(ours, theirs, atol=1e-4):
    assert set(ours.cv_results_) == set(theirs.cv_results_)
    for key, value in theirs.cv_results_.items():
        if key.startswith(("mean_test", "split", "rank", "std_test")):
            np.testing.assert_allclose(ours.cv_results_[key], value, atol=atol)
        elif key.startswith("param"):
            assert list(ours.cv_results_[key]) == list(value), key
    if hasattr(theirs, "best_params_"):
        assert ours.best_params_ == theirs.best_params_


def _assert_packed(sizes):
    if PACKS:
        assert sizes and max(sizes) > 1, sizes
    else:
        assert sizes == []


@pytest.mark.parametrize(
    ("ours", "theirs", "options"),
    [
        (packed.GridSearchCV, sk.GridSearchCV, {}),
        (
            packed.RandomizedSearchCV,
            sk.RandomizedSearchCV,
            {"n_iter": 3, "random_state": 0},
        ),
    ],
    ids=["grid", "randomized"],
)
@pytest.mark.slow
def test_a_search_gives_scikit_learns_results(
    digits_flat, packs_run, ours, theirs, options
):
    X, y = digits_flat
    grid = {
        "hidden_units": [16, (16, 8)],  # architectures mixed
        "optimizer__learning_rate": [1e-3, 3e-3],
    }
    search = ours(_classifier(), grid, cv=3, **options).fit(X, y)
    _assert_packed(packs_run)
    _same_results(search, theirs(_classifier(), grid, cv=3, **options).fit(X, y))
    # The refit is an ordinary fitted classifier.
    assert search.best_estimator_.model_ is not None
    assert search.score(X, y) > 0.5


@pytest.mark.slow
def test_multimetric_scoring_with_string_labels(digits_flat, packs_run):
    X, y = digits_flat
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])[y]  # fmt: skip
    options = dict(
        scoring={"acc": "accuracy", "nll": "neg_log_loss"},
        refit="acc",
        cv=3,
        return_train_score=True,
    )
    grid = {"batch_size": [32, 64]}
    search = packed.GridSearchCV(_classifier(), grid, **options).fit(X, names)
    _assert_packed(packs_run)
    _same_results(search, sk.GridSearchCV(_classifier(), grid, **options).fit(X, names))
    assert set(search.predict(X[:5])) <= set(names)


def test_a_failing_candidate_scores_error_score(digits_flat):
    X, y = digits_flat
    grid = {"hidden_units": [16, -3]}
    with pytest.warns(FitFailedWarning):
        search = packed.GridSearchCV(_classifier(), grid, cv=3).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores[0]) and np.isnan(scores[1])
    with pytest.raises(ValueError, match="hidden_units"):
        packed.GridSearchCV(_classifier(), grid, cv=3, error_score="raise").fit(X, y)


def _weighted_classifier():
    return (
        _classifier()
        .set_fit_request(sample_weight=True)
        .set_score_request(sample_weight=False)
    )


@pytest.mark.slow
def test_sample_weight_through_metadata_routing(digits_flat, packs_run):
    X, y = digits_flat
    weights = np.random.RandomState(0).uniform(0.2, 2.0, len(y))
    grid = {"optimizer__learning_rate": [1e-3, 3e-3]}
    with sklearn.config_context(enable_metadata_routing=True):
        searches = [
            cls(_weighted_classifier(), grid, cv=3)
            for cls in (packed.GridSearchCV, sk.GridSearchCV)
        ]
        for search in searches:
            search.fit(X, y, sample_weight=weights)
    _assert_packed(packs_run)
    _same_results(*searches)
    unweighted = sk.GridSearchCV(_classifier(), grid, cv=3).fit(X, y)
    # The weights reached the fits.
    assert not np.allclose(
        searches[0].cv_results_["mean_test_score"],
        unweighted.cv_results_["mean_test_score"],
    )


@pytest.mark.slow
def test_cross_validate_returns_ordinary_fitted_estimators(
    digits_flat, packs_run, tmp_path
):
    X, y = digits_flat
    ours = packed.cross_validate(_classifier(), X, y, cv=4, return_estimator=True)
    _assert_packed(packs_run)
    theirs = sk.cross_validate(_classifier(), X, y, cv=4, return_estimator=True)
    np.testing.assert_allclose(ours["test_score"], theirs["test_score"], atol=1e-4)
    path = tmp_path / "fold.skmnist"
    save(ours["estimator"][2], path)
    np.testing.assert_array_equal(
        load(path).predict_proba(X), ours["estimator"][2].predict_proba(X)
    )
    np.testing.assert_allclose(
        packed.cross_val_score(_classifier(), X, y, cv=4), theirs["test_score"],
        atol=1e-4,
    )  # fmt: skip


class _ChosenBackend(ThreadingBackend):
    """A joblib backend of the caller's own (as dask's is)."""


def test_a_joblib_backend_the_caller_chose_runs_the_fits(digits_flat, packs_run):
    register_parallel_backend("skmnist-test-chosen", _ChosenBackend)
    X, y = digits_flat
    with parallel_config(backend="skmnist-test-chosen", n_jobs=2):
        search = packed.GridSearchCV(_classifier(), {"batch_size": [32, 64]}, cv=3)
        search.fit(X, y)
    assert packs_run == []


@pytest.mark.slow
def test_n_jobs_is_left_as_the_user_set_it(digits_flat):
    X, y = digits_flat
    search = packed.GridSearchCV(_classifier(), {"batch_size": [32, 64]}, cv=3)
    search.set_params(n_jobs=3)
    # Threads, not loky's processes (each would import Keras) where unpacked.
    with warnings.catch_warnings(), parallel_config(backend="threading"):
        warnings.simplefilter("error", FitFailedWarning)
        search.fit(X, y)
    assert search.get_params()["n_jobs"] == 3


@pytest.mark.parametrize("setting", ["auto", "never"])
def test_a_cpu_search_runs_scikit_learns_loop(digits_flat, packs_run, monkeypatch,
                                               setting):  # fmt: skip
    monkeypatch.setenv("SKMNIST_PACKING", setting)
    X, y = digits_flat
    packed.GridSearchCV(_classifier(), {"batch_size": [32, 64]}, cv=3).fit(X, y)
    assert packs_run == []


def test_an_unknown_packing_setting_is_named(digits_flat, monkeypatch):
    monkeypatch.setenv("SKMNIST_PACKING", "sometimes")
    X, y = digits_flat
    search = packed.GridSearchCV(_classifier(), {"batch_size": [32, 64]}, cv=3)
    if PACKS:
        with pytest.raises(ValueError, match="SKMNIST_PACKING='sometimes'"):
            search.fit(X, y)
    else:  # not a packing backend: the setting is not read
        search.fit(X, y)


@pytest.mark.slow
def test_scikit_learns_search_loop_is_what_packing_hooks_into(digits_flat):
    """Packing announces the fits of each ``evaluate_candidates`` call from
    ``_run_search``, scikit-learn's extension point for searches, using
    ``n_splits_``: fail loudly if scikit-learn stops calling it so."""
    calls = []

    class Recording(packed.GridSearchCV):
        def _run_search(self, evaluate_candidates, callback_ctx=None):
            calls.append(self.n_splits_)
            return super()._run_search(evaluate_candidates, callback_ctx)

    X, y = digits_flat
    Recording(_classifier(), {"batch_size": [32, 64]}, cv=3).fit(X, y)
    assert calls == [3]


@pytest.mark.slow
def test_fits_at_once_follow_the_free_memory(digits_flat, packs_run, monkeypatch):
    from skmnist import _packing
    from skmnist._architecture import count_weights
    from skmnist._training import padded_rows

    X, y = digits_flat
    per_fit = _packing.fit_bytes(padded_rows(len(X)), 64, count_weights(64, (16,), 10))
    # Room for three fits: each takes twice its bytes, out of half the memory.
    monkeypatch.setattr(_packing, "available_device_bytes", lambda: 12 * per_fit)
    grid = {"optimizer__learning_rate": [1e-3, 2e-3, 3e-3]}
    search = packed.GridSearchCV(_classifier(), grid, cv=3).fit(X, y)
    if PACKS:
        assert max(packs_run) == 3
    _same_results(search, sk.GridSearchCV(_classifier(), grid, cv=3).fit(X, y))


@pytest.mark.slow
def test_odd_arguments_behave_as_in_scikit_learn(digits_flat):
    from scipy import sparse
    from sklearn.model_selection import KFold, LeaveOneGroupOut

    X, y = digits_flat
    X, y = X[:300], y[:300]
    # An iterable of splits, read once by scikit-learn, not before it.
    ours = packed.GridSearchCV(_classifier(), {"batch_size": [32, 64]},
                               cv=KFold(3).split(X, y)).fit(X, y)  # fmt: skip
    theirs = sk.GridSearchCV(_classifier(), {"batch_size": [32, 64]},
                             cv=KFold(3).split(X, y)).fit(X, y)  # fmt: skip
    _same_results(ours, theirs)
    scores = packed.cross_validate(_classifier(), X, y, cv=KFold(3).split(X, y))
    assert len(scores["test_score"]) == 3
    # An empty grid: one candidate.
    assert len(packed.GridSearchCV(_classifier(), {}, cv=3).fit(X, y).cv_results_[
        "params"]) == 1  # fmt: skip
    # Sparse features.
    packed.GridSearchCV(_classifier(), {"batch_size": [32, 64]}, cv=3).fit(
        sparse.csr_matrix(X), y
    )
    # Groups routed by metadata routing.
    groups = np.arange(len(y)) % 3
    with sklearn.config_context(enable_metadata_routing=True):
        routed = packed.cross_validate(
            _classifier(), X, y, cv=LeaveOneGroupOut(), params={"groups": groups}
        )
    assert len(routed["test_score"]) == 3
    # What scikit-learn refuses, refused as it does.
    for call in (
        lambda module: module.cross_val_score(_classifier(), X, y, return_estimator=1),
        lambda module: module.cross_validate(_classifier(), X, y, cv="bad"),
        lambda module: module.cross_validate(_classifier(), X, y, n_jobs=2.5),
        lambda module: module.GridSearchCV(_classifier(), {}, n_jobs="two").fit(X, y),
    ):
        with pytest.raises(Exception) as theirs:
            call(sk)
        with pytest.raises(type(theirs.value)) as ours:
            call(packed)
        # (Python words an unexpected keyword with the function's name.)
        assert str(theirs.value) in str(ours.value)
