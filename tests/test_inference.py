"""The compiled forward pass behind predict and predict_proba."""

import keras
import numpy as np
import pytest

from skmnist import MNISTClassifier
from skmnist._inference import forward_pass


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.RandomState(0)
    X = rng.rand(300, 20).astype(np.float32)
    y = X[:, :3].argmax(axis=1)
    return MNISTClassifier(hidden_units=32, epochs=2, random_state=0).fit(X, y)


@pytest.mark.parametrize("n_samples", [1, 2, 3, 100, 8192, 8193, 10_000])
def test_predict_proba_equals_keras_predict(fitted, n_samples):
    X = np.random.RandomState(n_samples).rand(n_samples, 20).astype(np.float32)
    expected = fitted.model_.predict(X, verbose=0)
    proba = fitted.predict_proba(X)
    assert proba.shape == (n_samples, 3)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba, expected, rtol=1e-5, atol=1e-6)


def test_rows_do_not_depend_on_the_rest_of_the_batch(fitted):
    X = np.random.RandomState(0).rand(50, 20).astype(np.float32)
    alone = np.vstack([fitted.predict_proba(X[i : i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(fitted.predict_proba(X), alone, rtol=1e-5, atol=1e-7)


def test_one_compiled_program_per_power_of_two_rows(fitted):
    forward = forward_pass(fitted._architecture_key(), fitted._build_template)
    X = np.random.RandomState(0).rand(100, 20).astype(np.float32)
    for n_samples in range(1, 101):
        fitted.predict_proba(X[:n_samples])
    rows = {shape[0] for shape in forward.batch_shapes}
    assert rows >= {1, 2, 4, 8, 16, 32, 64, 128}
    assert all(n & (n - 1) == 0 for n in rows) and max(rows) <= 8192
    if keras.backend.backend() == "tensorflow":
        assert {shape[0] for shape in forward._run._concrete} == rows


def test_models_of_one_architecture_share_it_with_their_own_weights(fitted):
    X = np.random.RandomState(1).rand(20, 20).astype(np.float32)
    y = X[:, :3].argmax(axis=1)
    other = MNISTClassifier(hidden_units=32, epochs=2, random_state=1).fit(X, y)
    assert forward_pass(other._architecture_key(), None) is forward_pass(
        fitted._architecture_key(), None
    )
    np.testing.assert_allclose(
        other.predict_proba(X), other.model_.predict(X, verbose=0), rtol=1e-5
    )
    assert not np.allclose(other.predict_proba(X), fitted.predict_proba(X))


def test_weights_changed_through_keras_are_used(fitted):
    X = np.random.RandomState(2).rand(5, 20).astype(np.float32)
    before = fitted.predict_proba(X)
    weights = fitted.model_.get_weights()
    try:
        fitted.model_.set_weights([w * 0.5 for w in weights])
        after = fitted.predict_proba(X)
        np.testing.assert_allclose(
            after, fitted.model_.predict(X, verbose=0), rtol=1e-5, atol=1e-7
        )
        assert not np.allclose(after, before)
    finally:
        fitted.model_.set_weights(weights)
