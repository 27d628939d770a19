"""The same random_state gives the same model whether the compiled epochs or
``Model.fit`` trains it (skmnist/_keras_fit.py).

A callback that acts on single batches (``TerminateOnNaN``) sends a fit to
``Model.fit``. That fit used to present the rows in another order (Keras's own
shuffle of a once-shuffled copy), and on TensorFlow the compiled epochs' XLA tier
drew other dropout masks than a graph: one harmless callback moved
``predict_proba`` by as much as 0.25 on load_digits. Both tiers of the TensorFlow
compiled epochs are covered (by the number of batches, which picks the tier),
with dropout and with a last, smaller batch. This module's tests run under the
process's backend; ``.ci/run`` runs them again under JAX (``each_backend``).
"""

import math

import keras
import numpy as np
import pytest

from skmnist import MNISTClassifier, _training
from skmnist._dropout import Dropout
from skmnist._keras_fit import _PermutedBatches, fit_with_keras_loop
from skmnist._training import epoch_runner, fit_compiled_epochs

pytestmark = pytest.mark.each_backend

# The bound of the bug report: max |difference| of predict_proba, on the CPU.
TOLERANCE = 1e-5

# load_digits's 1,797 rows are 113 batches of 16, or 225 of 8, the last one of
# 5 rows: 3 epochs make 339 batches (TensorFlow's graph tier) or 675 (its XLA
# tier; see _training._XLA_MIN_BATCHES).
N_DIGITS, EPOCHS = 1797, 3
TIER_BATCH_SIZES = {"graph": 16, "xla": 8}


def _fit_both_ways(X, y, sample_weight=None, **params):
    """predict_proba of the fit by the compiled epochs and of the same fit with a
    batch callback, which Model.fit trains."""
    params = {"hidden_units": 32, "epochs": EPOCHS, "random_state": 0, **params}
    compiled = MNISTClassifier(**params)
    keras_loop = MNISTClassifier(**params, callbacks=[keras.callbacks.TerminateOnNaN()])
    return [
        clf.fit(X, y, sample_weight=sample_weight).predict_proba(X)
        for clf in (compiled, keras_loop)
    ]


def _max_difference(a, b) -> float:
    return float(np.abs(a - b).max())


@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("tier", ["graph", "xla"])
@pytest.mark.slow
def test_a_batch_callback_leaves_the_model_unchanged(digits_flat, tier, dropout):
    X, y = digits_flat
    batch_size = TIER_BATCH_SIZES[tier]
    batches = math.ceil(N_DIGITS / batch_size) * EPOCHS
    assert len(X) == N_DIGITS and len(X) % batch_size  # a last, smaller batch
    # Still each tier's side of the threshold, if it moves.
    assert (batches >= _training._XLA_MIN_BATCHES) == (tier == "xla")
    compiled, keras_loop = _fit_both_ways(X, y, batch_size=batch_size, dropout=dropout)
    assert _max_difference(compiled, keras_loop) <= TOLERANCE


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.slow
def test_sample_weights_follow_their_rows(digits_flat, shuffle):
    X, y = digits_flat
    weights = np.random.RandomState(1).uniform(0.1, 3, len(X)).astype(np.float32)
    compiled, keras_loop = _fit_both_ways(X, y, weights, batch_size=16, shuffle=shuffle)
    assert _max_difference(compiled, keras_loop) <= TOLERANCE


@pytest.mark.slow
def test_continued_training_takes_the_same_path(digits_flat):
    """warm_start trains on from initial_epoch > 0, with a seed of its own."""
    X, y = digits_flat
    params = {"hidden_units": 16, "epochs": 2, "batch_size": 32, "random_state": 3}
    fits = []
    for callbacks in (None, [keras.callbacks.TerminateOnNaN()]):
        clf = MNISTClassifier(**params, warm_start=True, callbacks=callbacks)
        fits.append(clf.fit(X, y).fit(X, y).predict_proba(X))
        assert int(clf.model_.optimizer.iterations) == 2 * 2 * math.ceil(len(X) / 32)
    assert _max_difference(*fits) <= TOLERANCE


class RecordCalls(keras.callbacks.Callback):
    """Acts on batches (so Model.fit trains) and records the loop it sees."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch", epoch, 0))

    def on_train_batch_end(self, batch, logs=None):
        name, epoch, batches = self.calls[-1]
        self.calls[-1] = (name, epoch, batches + 1)

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("logs", epoch, sorted(logs)))


@pytest.mark.slow
def test_callbacks_see_model_fit_s_loop(digits_flat):
    X, y = digits_flat
    X_train, y_train, X_val, y_val = X[:1500], y[:1500], X[1500:], y[1500:]
    recorder = RecordCalls()
    params = {"hidden_units": 16, "batch_size": 64, "random_state": 0}
    stop = {"monitor": "loss", "min_delta": 0.1, "patience": 0}
    fits = []
    for callbacks in (
        [keras.callbacks.EarlyStopping(**stop)],
        [keras.callbacks.EarlyStopping(**stop), recorder],
    ):
        clf = MNISTClassifier(
            **params, epochs=20, callbacks=callbacks, fit__validation_freq=2
        )
        clf.fit(X_train, y_train, validation_data=(X_val, y_val))
        fits.append(clf)
    compiled, keras_loop = fits
    epochs = len(keras_loop.history_["loss"])
    assert 2 <= epochs < 20  # stopped early, by EarlyStopping
    assert len(compiled.history_["loss"]) == epochs
    assert len(keras_loop.history_["val_loss"]) == epochs // 2
    assert (
        _max_difference(compiled.predict_proba(X), keras_loop.predict_proba(X))
        <= TOLERANCE
    )
    trained = ["accuracy", "loss"]
    validated = [*trained, "val_accuracy", "val_loss"]
    per_epoch = [
        [("epoch", e, math.ceil(1500 / 64)), ("logs", e, [trained, validated][e % 2])]
        for e in range(epochs)
    ]
    assert recorder.calls == [
        "train_begin",
        *(call for epoch in per_epoch for call in epoch),
        "train_end",
    ]


def test_each_epoch_reads_the_next_permutation():
    """Batch i is batch i % len of epoch i // len, whichever order Keras asks
    for batches in (its prefetching, or its first batches read twice)."""
    n_samples, batch_size = 10, 4
    x = np.arange(n_samples, dtype=np.float32)[:, None] * [1, -1]
    y, weights = np.arange(n_samples) % 3, np.arange(n_samples) / 10
    batches = _PermutedBatches((x, y, weights), batch_size, np.random.RandomState(7))
    assert len(batches) == 3 and batches.num_batches is None
    expected = np.random.RandomState(7)
    orders = [expected.permutation(n_samples) for _ in range(3)]
    asked = [0, 1, 0, *range(9)]
    for index in [*asked, 2, 0]:
        xb, yb, wb = batches[index]
        epoch, batch = divmod(index, 3)
        rows = orders[epoch][batch * batch_size : (batch + 1) * batch_size]
        assert len(rows) == (2 if batch == 2 else 4)
        np.testing.assert_array_equal(xb, x[rows])
        np.testing.assert_array_equal(yb, y[rows])
        np.testing.assert_array_equal(wb, weights[rows])
    in_order = _PermutedBatches((x, y, None), batch_size, None)
    assert len(in_order[4]) == 2  # no sample weights: (x, y)
    np.testing.assert_array_equal(in_order[4][1], y[4:8])


@pytest.mark.slow
def test_model_fit_compiles_with_xla_where_the_compiled_epochs_do(monkeypatch):
    """On TensorFlow, XLA and a graph round differently, and many batches make
    much of a last bit: with the compiled epochs' threshold, Model.fit runs the
    XLA tier's very arithmetic (exactly, full batches only here: the tier runs
    its last, smaller batch as a graph)."""
    rng = np.random.RandomState(0)
    X = rng.rand(256, 20).astype(np.float32)
    y = X[:, :4].argmax(axis=1)
    monkeypatch.setattr(_training, "_XLA_MIN_BATCHES", 0)

    def make_model():
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [
                keras.Input((20,)),
                keras.layers.Dense(16, activation="relu"),
                Dropout(0.3, seed=3),
                keras.layers.Dense(4, activation="softmax"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    args = {"batch_size": 16, "epochs": 3, "shuffle": True, "verbose": 0}
    compiled = make_model()
    fit_compiled_epochs(
        epoch_runner(compiled), X, y, random_state=np.random.RandomState(5), **args
    )
    keras_loop = make_model()
    fit_with_keras_loop(
        keras_loop, X, y, None, random_state=np.random.RandomState(5), seeded=True,
        fit_args=args, xla_min_batches=_training._XLA_MIN_BATCHES,
    )  # fmt: skip
    for got, want in zip(keras_loop.get_weights(), compiled.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's dropout masks"
)
@pytest.mark.slow
def test_dropout_masks_are_the_same_under_xla():
    import tensorflow as tf

    x = tf.constant(np.random.RandomState(0).rand(37, 53).astype(np.float32))
    for rate in (0.3, 0.5, 0.9):
        masks = []
        for layer_class, xla in (
            (keras.layers.Dropout, False),  # Keras's own masks in a graph
            (Dropout, False),
            (Dropout, True),
        ):
            layer = layer_class(rate, seed=1234)
            drop = tf.function(lambda t, d=layer: d(t, training=True), jit_compile=xla)
            # Three calls: the seed moves on as training does.
            masks.append(np.stack([drop(x).numpy() for _ in range(3)]))
        for other in masks[1:]:
            np.testing.assert_array_equal(other, masks[0])
        assert abs(float((masks[0] == 0).mean()) - rate) < 0.02


def test_dropout_is_keras_s_when_not_training_and_saves_as_itself():
    layer = Dropout(0.5, seed=1)
    x = np.ones((4, 6), np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is Dropout and restored.rate == 0.5
