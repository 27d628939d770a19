"""Packed training: fits trained together equal the fits trained alone.

Packing runs on Keras's JAX backend; under TensorFlow only the backend-free
rules run here, and .ci/run runs this module again under JAX (each_backend).
"""

import contextlib
import threading

import keras
import numpy as np
import pytest
from joblib import Parallel, delayed, parallel_config

from skmnist import MNISTClassifier
from skmnist._packing import (
    SearchEndedError,
    current_session,
    max_pack_for_memory,
    pack_slots,
    packed_fits,
    packing_pays,
    session_threads,
)

# Run again under Keras's JAX backend by .ci/run (see CONTRIBUTING.md).
pytestmark = pytest.mark.each_backend

jax_only = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="packing trains on the JAX backend (.ci/run reruns this under JAX)",
)


def test_pack_slots_waste_less_than_an_eighth():
    slots = [pack_slots(n) for n in (1, 2, 3, 9, 16, 17, 20, 33, 40, 100)]
    assert slots == [2, 2, 3, 9, 16, 18, 20, 36, 40, 104]
    assert all(n <= pack_slots(n) < n * 9 / 8 + 1 for n in range(2, 300))


def test_max_pack_follows_memory():
    # Each fit takes twice its bytes (its arrays and their stacked copy) out
    # of half the memory.
    assert max_pack_for_memory(100, fits=40, available=4000) == 10
    assert max_pack_for_memory(100, fits=4, available=4000) == 4
    assert max_pack_for_memory(10**12, fits=40, available=4000) == 1


def test_packing_pays_on_accelerators_unless_told(monkeypatch):
    import jax

    monkeypatch.delenv("SKMNIST_PACKING", raising=False)
    assert packing_pays() == (jax.default_backend() != "cpu")
    for setting, packs in [("always", True), ("never", False), (" Always ", True)]:
        monkeypatch.setenv("SKMNIST_PACKING", setting)
        assert packing_pays() is packs
    monkeypatch.setenv("SKMNIST_PACKING", "yes")
    with pytest.raises(ValueError, match="'auto'"):
        packing_pays()


def test_one_session_at_a_time():
    with packed_fits(4, 4) as first, packed_fits(4, 4) as second:
        assert current_session() is first
        assert second is None
    assert current_session() is None


def _fits(digits_flat, n_fits=4, widths=(32,), **params):
    """``n_fits`` classifiers of one architecture, each with its own rows,
    seed, learning rate and sample weights."""
    X, y = digits_flat
    rng = np.random.RandomState(0)
    jobs = []
    for i in range(n_fits):
        rows = rng.permutation(len(X))[: 1200 + 37 * i]  # folds differ in size
        weights = rng.uniform(0.5, 1.5, len(rows)).astype(np.float32)
        clf = MNISTClassifier(
            hidden_units=widths[i % len(widths)],
            epochs=3,
            batch_size=64,
            random_state=i,
            optimizer__learning_rate=1e-3 * (i + 1),
            **params,
        )
        jobs.append((clf, X[rows], y[rows], weights))
    return jobs


def _fit_in_threads(jobs, threads=None):
    """Fit ``jobs`` in the threads of a packing session, as a search does."""
    threads = threads or len(jobs)
    with packed_fits(len(jobs), threads) as session:
        backend = session_threads(session)
        with (
            parallel_config(backend=backend, n_jobs=threads),
            session.expecting(len(jobs)),
        ):
            Parallel(timeout=300)(
                delayed(clf.fit)(X, y, sample_weight=w) for clf, X, y, w in jobs
            )
    return session


def _assert_same_fits(packed, alone, atol=2e-5):
    for (p, *_), (a, *_) in zip(packed, alone, strict=True):
        for wp, wa in zip(p.model_.get_weights(), a.model_.get_weights(), strict=True):
            np.testing.assert_allclose(wp, wa, atol=atol, rtol=1e-4)
        assert p.n_iter_ == a.n_iter_
        np.testing.assert_allclose(p.loss_curve_, a.loss_curve_, rtol=1e-4)
        assert set(p.history_) == set(a.history_)


@jax_only
@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["no-dropout", "dropout"])
def test_packed_fits_equal_their_own_fits(digits_flat, dropout):
    packed = _fits(digits_flat, dropout=dropout)
    session = _fit_in_threads(packed)
    alone = _fits(digits_flat, dropout=dropout)
    for clf, X, y, w in alone:
        clf.fit(X, y, sample_weight=w)
    # They did train together: a pack of more than one fit ran.
    assert max(session.pack_sizes) > 1
    _assert_same_fits(packed, alone)


@jax_only
@pytest.mark.parametrize(
    "widths", [(16, 32, 24), ((16, 8), (32, 8), (32, 12))], ids=["one", "two"]
)
def test_networks_differing_in_width_train_in_one_pack(digits_flat, widths):
    packed = _fits(digits_flat, n_fits=3, widths=widths, alpha=1e-3)
    session = _fit_in_threads(packed)
    alone = _fits(digits_flat, n_fits=3, widths=widths, alpha=1e-3)
    for clf, X, y, w in alone:
        clf.fit(X, y, sample_weight=w)
    assert max(session.pack_sizes) == 3
    _assert_same_fits(packed, alone)


@jax_only
def test_dropout_networks_of_other_widths_train_apart(digits_flat):
    packed = _fits(digits_flat, n_fits=3, widths=(16, 32, 32), dropout=0.2)
    session = _fit_in_threads(packed)
    assert max(session.pack_sizes) == 2


@jax_only
def test_early_stopping_stops_each_fit_on_its_own(digits_flat):
    options = dict(early_stopping=True, n_iter_no_change=1, tol=0.5)
    packed = _fits(digits_flat, **options)
    for clf, *_ in packed:
        clf.set_params(epochs=6)
    _fit_in_threads(packed)
    alone = _fits(digits_flat, **options)
    for clf, X, y, w in alone:
        clf.set_params(epochs=6).fit(X, y, sample_weight=w)
    # tol=0.5 stops every fit early, before its epochs ran out.
    assert all(clf.n_iter_ < 6 for clf, *_ in packed)
    _assert_same_fits(packed, alone)
    for (p, *_), (a, *_) in zip(packed, alone, strict=True):
        assert p.validation_scores_ == a.validation_scores_


@jax_only
def test_a_fit_with_a_batch_callback_trains_beside_the_pack(digits_flat):
    batches = []
    callback = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batches.append(batch)
    )
    packed = _fits(digits_flat, n_fits=3)
    packed[0][0].set_params(callbacks=[callback])
    _fit_in_threads(packed)
    alone = _fits(digits_flat, n_fits=3)
    alone[0][0].set_params(callbacks=[callback])
    for clf, X, y, w in alone:
        clf.fit(X, y, sample_weight=w)
    # Model.fit's loop ran it: its callback saw every batch, in both runs.
    assert len(batches) == 2 * 3 * 19
    _assert_same_fits(packed[1:], alone[1:])


@jax_only
def test_a_lone_fit_in_a_session_does_not_wait(digits_flat):
    (clf, X, y, w), *_ = _fits(digits_flat, n_fits=1)
    with packed_fits(8, 8) as session, session.admitted():
        clf.fit(X, y, sample_weight=w)
    assert session.pack_sizes == [1, 1, 1]


@jax_only
def test_ftrl_networks_of_other_widths_train_apart(digits_flat):
    # Ftrl's accumulators start at 0.1: zero-padded ones would divide 0 by 0.
    packed = _fits(digits_flat, n_fits=3, widths=(16, 32, 32), optimizer="ftrl")
    session = _fit_in_threads(packed)
    assert max(session.pack_sizes) == 2
    alone = _fits(digits_flat, n_fits=3, widths=(16, 32, 32), optimizer="ftrl")
    for clf, X, y, w in alone:
        clf.fit(X, y, sample_weight=w)
    _assert_same_fits(packed, alone)


def test_a_fit_that_fails_its_checks_counts_as_started(digits_flat):
    X, y = digits_flat
    with packed_fits(2, 2) as session, session.expecting(1), session.admitted():
        with pytest.raises(ValueError, match="hidden_units"):
            MNISTClassifier(hidden_units=-3).fit(X, y)
        assert session._pending == 0


@jax_only
@pytest.mark.parametrize("of_the_search", [True, False], ids=["its-fit", "another"])
def test_fits_of_a_search_that_ended_stop_and_no_other(digits_flat, of_the_search):
    """A fit in a thread of the session stops when its search ends; a fit in
    any other thread (the user's, while a search runs) trains alone and on."""
    (clf, X, y, _), *_ = _fits(digits_flat, n_fits=1)
    in_epoch, go_on = threading.Event(), threading.Event()

    def pause(epoch, logs):
        in_epoch.set()
        go_on.wait(timeout=60)

    clf.set_params(callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=pause)])
    errors = []

    def fit(session):
        try:
            with session.admitted() if of_the_search else contextlib.nullcontext():
                clf.fit(X, y)
        except Exception as error:  # the assertion below reads it
            errors.append(error)

    with packed_fits(2, 2) as session:
        thread = threading.Thread(target=fit, args=(session,))
        thread.start()
        assert in_epoch.wait(timeout=120)
    go_on.set()  # the search has ended meanwhile
    thread.join(timeout=120)
    assert not thread.is_alive()
    if of_the_search:
        assert len(errors) == 1 and isinstance(errors[0], SearchEndedError)
    else:
        assert errors == [] and clf.n_iter_ == clf.epochs
        assert session.pack_sizes == []  # it never joined
