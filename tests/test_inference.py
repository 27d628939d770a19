"""The forward passes behind predict and predict_proba: the compiled one, and
NumPy's for a few rows, which must give what Keras gives for every network the
classifier builds, from the weights the model has at each call."""

import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pandas as pd
import pytest
import sklearn

import skmnist
from skmnist import MNISTClassifier, PixelScaler, make_mnist_pipeline
from skmnist._compat import read_variable
from skmnist._inference import (
    NUMPY_MAX_ROWS,
    _numpy_activations,
    _numpy_layers,
    forward_pass,
    predict_outputs,
)
from skmnist._network import build_network, describe_network

# Run again under Keras's JAX backend by .ci/run (see CONTRIBUTING.md).
pytestmark = pytest.mark.each_backend


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.RandomState(0)
    X = rng.rand(300, 20).astype(np.float32)
    y = X[:, :3].argmax(axis=1)
    return MNISTClassifier(hidden_units=32, epochs=2, random_state=0).fit(X, y)


@pytest.mark.parametrize("n_samples", [1, 2, 3, 100, 8192, 8193, 10_000])
@pytest.mark.slow
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


@pytest.mark.slow
def test_one_compiled_program_per_power_of_two_rows(fitted):
    forward = forward_pass(fitted._architecture_key(), fitted._build_template)
    X = np.random.RandomState(0).rand(100, 20).astype(np.float32)
    for n_samples in range(1, 101):
        forward(fitted.model_, X[:n_samples])
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


# -- the NumPy pass ------------------------------------------------------------

# Keras's activations by name, and MLPClassifier's names for two of them; those
# that a Dense layer cannot call with its defaults (glu halves the units,
# threshold needs its arguments) are no activation the classifier can use.
ACTIVATIONS = sorted(
    {
        name
        for name in dir(keras.activations)
        if not name.startswith("_")
        and name not in {"get", "serialize", "deserialize", "glu", "threshold"}
    }
    | {"logistic", "identity"}
)
# The activations the NumPy pass leaves to the compiled pass.
COMPILED_ONLY = {
    "celu",
    "hard_shrink",
    "log_softmax",
    "soft_shrink",
    "sparse_plus",
    "sparse_sigmoid",
    "sparsemax",
    "squareplus",
}


def _keras_activation(name):
    name = {"logistic": "sigmoid", "identity": "linear"}.get(name, name)
    return keras.activations.get(name)


def _network(activation="relu", widths=(12,), dropout=0.0, output=(3, "softmax")):
    return build_network(
        np.random.RandomState(0),
        10,
        widths,
        _keras_activation(activation),
        dropout,
        (output[0], keras.activations.get(output[1])),
    )


def _compiled(model):
    # Keyed as the classifier keys them, and by LoRA, which they never have.
    network = describe_network(model)
    key = ("test", model.layers[0].lora_enabled, *network.values())
    return forward_pass(key, lambda: model)


def _inputs(n_rows, seed=0):
    # Spread over both signs, so that every branch of every activation is used.
    return np.random.RandomState(seed).normal(0, 3, (n_rows, 10)).astype(np.float32)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.slow
def test_numpy_pass_equals_keras_for_every_activation(activation):
    model = _network(activation)
    X = _inputs(NUMPY_MAX_ROWS)
    expected = keras.ops.convert_to_numpy(model(X, training=False))
    assert (_numpy_layers(model) is None) == (activation in COMPILED_ONLY)
    for rows in (1, 2, NUMPY_MAX_ROWS):
        outputs = predict_outputs(model, X[:rows], lambda: _compiled(model))
        assert outputs.shape == (rows, 3) and outputs.dtype == np.float32
        np.testing.assert_allclose(outputs, expected[:rows], rtol=1e-5, atol=1e-6)


def test_every_numpy_activation_is_a_keras_one():
    implemented = set(ACTIVATIONS) - COMPILED_ONLY
    assert set(_numpy_activations()) == {_keras_activation(n) for n in implemented}


@pytest.mark.parametrize(
    "widths, dropout, output",
    [
        ((12,), 0.0, (3, "softmax")),
        ((12,), 0.5, (3, "softmax")),
        ((16, 8, 4), 0.0, (3, "softmax")),
        ((16, 8), 0.3, (3, "softmax")),
        ((12,), 0.0, (1, "sigmoid")),  # binary_crossentropy
        ((12, 6), 0.2, (1, "sigmoid")),
        ((12,), 0.0, (2, "softmax")),  # categorical_crossentropy, two classes
    ],
    ids=["seed", "dropout", "deep", "deep-dropout", "binary", "deep-binary", "two"],
)
def test_numpy_pass_equals_the_compiled_pass(widths, dropout, output):
    model = _network("relu", widths, dropout, output)
    X = _inputs(NUMPY_MAX_ROWS + 1, seed=1)
    compiled = _compiled(model)(model, X)
    for rows in (1, 3, NUMPY_MAX_ROWS):
        outputs = predict_outputs(model, X[:rows], lambda: pytest.fail("compiled"))
        np.testing.assert_allclose(outputs, compiled[:rows], rtol=1e-5, atol=1e-6)
    # One more row than the NumPy pass takes: the compiled pass.
    np.testing.assert_array_equal(
        predict_outputs(model, X, lambda: _compiled(model)), compiled
    )


def test_each_row_of_a_small_batch_is_its_outputs_alone():
    model = _network()
    X = _inputs(NUMPY_MAX_ROWS)
    fail = lambda: pytest.fail("compiled")  # noqa: E731
    batch = predict_outputs(model, X, fail)
    alone = np.vstack([predict_outputs(model, row[None], fail) for row in X])
    np.testing.assert_array_equal(batch, alone)


def test_networks_the_numpy_pass_does_not_know_take_the_compiled_pass():
    model = _network()
    X = _inputs(2)
    expected = keras.ops.convert_to_numpy(model(X, training=False))
    model.layers[0].enable_lora(2)  # its kernel is now kernel + a @ b
    model.layers[0].lora_kernel_b.assign(np.ones((2, 12), np.float32))
    assert _numpy_layers(model) is None
    lora = keras.ops.convert_to_numpy(model(X, training=False))
    assert not np.allclose(lora, expected)
    np.testing.assert_allclose(
        predict_outputs(model, X, lambda: _compiled(model)), lora, rtol=1e-5
    )


def test_overflow_gives_what_keras_gives_without_a_warning():
    model = _network("exponential")
    X = np.full((1, 10), 1e4, np.float32)
    expected = keras.ops.convert_to_numpy(model(X, training=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outputs = predict_outputs(model, X, lambda: pytest.fail("compiled"))
    np.testing.assert_array_equal(np.isnan(outputs), np.isnan(expected))


# -- the weights of the moment ------------------------------------------------


def _one_row_matches_keras(clf, X):
    """One row and a small batch, through the NumPy pass, against Keras."""
    expected = clf.model_.predict(X[:NUMPY_MAX_ROWS], verbose=0)
    np.testing.assert_allclose(clf.predict_proba(X[:1]), expected[:1], rtol=1e-5)
    np.testing.assert_allclose(
        clf.predict_proba(X[:NUMPY_MAX_ROWS]), expected, rtol=1e-5, atol=1e-7
    )
    return clf.predict_proba(X[:1])


@pytest.mark.parametrize(
    "params, n_classes",
    [
        ({"loss": "binary_crossentropy"}, 2),
        ({"loss": "categorical_crossentropy"}, 2),
        ({"hidden_units": (16, 8), "dropout": 0.3, "activation": "tanh"}, 3),
        ({"activation": "logistic", "dropout": 0.5}, 3),
    ],
    ids=["binary", "categorical", "deep-dropout", "logistic"],
)
@pytest.mark.slow
def test_classifier_small_batches_equal_keras(params, n_classes):
    rng = np.random.RandomState(7)
    X = rng.rand(120, 20).astype(np.float32)
    y = X[:, :n_classes].argmax(axis=1)
    settings = {"hidden_units": 16, "epochs": 2, "random_state": 0, **params}
    clf = MNISTClassifier(**settings).fit(X, y)
    expected = clf.model_.predict(X[:NUMPY_MAX_ROWS], verbose=0)
    if expected.shape[1] == 1:  # one sigmoid unit: the probability of classes_[1]
        expected = np.hstack([1 - expected, expected])
    for rows in (1, NUMPY_MAX_ROWS):
        proba = clf.predict_proba(X[:rows])
        assert proba.shape == (rows, n_classes) and proba.dtype == np.float32
        np.testing.assert_allclose(proba, expected[:rows], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        clf.predict(X[:NUMPY_MAX_ROWS]), clf.classes_[expected.argmax(axis=1)]
    )


@pytest.mark.slow
def test_predictions_follow_every_change_of_the_weights(tmp_path):
    rng = np.random.RandomState(3)
    X = rng.rand(200, 20).astype(np.float32)
    y = X[:, :3].argmax(axis=1)
    clf = MNISTClassifier(hidden_units=16, epochs=1, random_state=0).fit(X, y)
    seen = [_one_row_matches_keras(clf, X)]

    def changed():
        seen.append(_one_row_matches_keras(clf, X))
        assert not np.allclose(seen[-1], seen[-2])

    clf.partial_fit(X, y)
    changed()
    clf.set_params(warm_start=True).fit(X, y)
    changed()
    clf.set_params(warm_start=False, random_state=1).fit(X, y)  # a new model_
    changed()
    clf.model_.set_weights([w * 0.5 for w in clf.model_.get_weights()])
    changed()
    kernel = clf.model_.get_layer("hidden").kernel
    kernel.assign(kernel.value * 2)
    changed()
    # Written inside Keras's compiled training step, not through Python.
    clf.model_.fit(X, y, epochs=1, verbose=0)
    changed()
    # Another model, with its own weights; the original keeps its own.
    skmnist.save(clf, tmp_path / "clf.skmnist")
    loaded = skmnist.load(tmp_path / "clf.skmnist")
    np.testing.assert_array_equal(_one_row_matches_keras(loaded, X), seen[-1])
    loaded.partial_fit(X, y)
    assert not np.allclose(_one_row_matches_keras(loaded, X), seen[-1])
    np.testing.assert_array_equal(clf.predict_proba(X[:1]), seen[-1])
    unpickled = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(_one_row_matches_keras(unpickled, X), seen[-1])


def test_weights_read_are_a_snapshot_that_later_writes_leave_alone(fitted):
    model = fitted.model_
    weights = model.get_weights()
    layers = _numpy_layers(model)
    kernel = layers[0][0]
    before = kernel.copy()
    assert not kernel.flags.writeable
    try:
        model.set_weights([w + 1 for w in weights])
        np.testing.assert_array_equal(kernel, before)
        np.testing.assert_array_equal(_numpy_layers(model)[0][0], before + 1)
    finally:
        model.set_weights(weights)


def test_concurrent_predictions_of_single_rows(fitted):
    X = np.random.RandomState(4).rand(64, 20).astype(np.float32)
    serial = [fitted.predict_proba(X[i : i + 1]) for i in range(len(X))]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(
            pool.map(lambda i: fitted.predict_proba(X[i : i + 1]), range(len(X)))
        )
    for expected, got in zip(serial, concurrent, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_predictions_while_another_thread_trains():
    # Each prediction sees the weights before or after an update, never a mix.
    rng = np.random.RandomState(5)
    X = rng.rand(300, 20).astype(np.float32)
    y = X[:, :3].argmax(axis=1)
    clf = MNISTClassifier(hidden_units=16, epochs=1, random_state=0).fit(X, y)
    with ThreadPoolExecutor(max_workers=1) as pool:
        training = pool.submit(lambda: [clf.partial_fit(X, y) for _ in range(3)])
        while not training.done():
            proba = clf.predict_proba(X[:2])
            np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
        training.result()
    _one_row_matches_keras(clf, X)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's variables"
)
def test_tensorflow_variables_are_read_the_same_without_private_api():
    import tensorflow as tf

    variable = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
    fast, public = read_variable(variable), read_variable(variable, private=False)
    np.testing.assert_array_equal(fast, public)
    assert np.shares_memory(fast, public)  # the variable's buffer, not a copy
    assert not fast.flags.writeable and not public.flags.writeable
    variable.assign_add(tf.ones((2, 3)))
    np.testing.assert_array_equal(fast, public)
    np.testing.assert_array_equal(fast, np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(read_variable(variable), fast + 1)


# -- input checked once, as scikit-learn checks it ------------------------------


def test_pipeline_one_image_equals_keras(digits):
    images, labels = digits
    pipe = make_mnist_pipeline(hidden_units=16, epochs=1, random_state=0)
    pipe.fit(images[:200] * 15, labels[:200])
    scaled = images[:NUMPY_MAX_ROWS].reshape(NUMPY_MAX_ROWS, -1) * np.float32(15 / 255)
    expected = pipe[-1].model_.predict(scaled.astype(np.float32), verbose=0)
    for rows in (1, NUMPY_MAX_ROWS):
        np.testing.assert_allclose(
            pipe.predict_proba(images[:rows] * 15), expected[:rows], rtol=1e-5
        )


def test_feature_names_are_checked_as_scikit_learn_checks_them(digits_flat):
    X, y = digits_flat
    columns = [f"p{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X[:100], columns=columns)
    clf = MNISTClassifier(hidden_units=8, epochs=1, random_state=0).fit(frame, y[:100])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict_proba(X[:1])
    scaler = PixelScaler(max_value=1).fit(frame)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        scaler.transform(X[:1])
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict_proba(frame.rename(columns={"p0": "q"}).iloc[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = clf.predict_proba(frame.iloc[:1])
    np.testing.assert_allclose(proba, clf.model_.predict(X[:1], verbose=0), rtol=1e-5)


def test_scikit_learn_config_is_followed(fitted):
    X = np.random.RandomState(6).rand(2, 20).astype(np.float32)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        fitted.predict_proba(X)
    with sklearn.config_context(assume_finite=True):
        proba = fitted.predict_proba(X)  # not checked, as scikit-learn does
    assert np.isnan(proba[0]).all() and np.isfinite(proba[1]).all()
