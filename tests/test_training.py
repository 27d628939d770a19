"""The compiled epoch loop keeps Model.fit's semantics (both backends: see
.ci/run, which runs this module again under KERAS_BACKEND=jax)."""

import os
import signal
import threading
import time
from collections import OrderedDict

import keras
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from skmnist import FitInterruptedWarning, MNISTClassifier, _training, _workspace
from skmnist._training import epoch_runner, fit_compiled_epochs, runs_compiled_epochs

# Run again under Keras's JAX backend by .ci/run (see CONTRIBUTING.md).
pytestmark = pytest.mark.each_backend

N_SAMPLES, N_FEATURES, N_CLASSES = 300, 20, 4
BATCH_SIZE = 32  # 300 = 9 full batches and a last batch of 12

# TensorFlow trains small fits as a graph and large ones with XLA (see
# _training._XLA_MIN_BATCHES); JAX always with XLA.
TIERS = ["graph", "xla"] if keras.backend.backend() == "tensorflow" else ["xla"]


@pytest.fixture(params=TIERS)
def tier(request, monkeypatch):
    """Every fit of the test runs in this tier, whatever its size."""
    threshold = 0 if request.param == "xla" else np.iinfo(np.int64).max
    monkeypatch.setattr(_training, "_XLA_MIN_BATCHES", threshold)
    return request.param


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.rand(N_SAMPLES, N_FEATURES).astype(np.float32)
    y = (X[:, :N_CLASSES].argmax(axis=1)).astype(np.int64)
    weights = rng.uniform(0.5, 2, N_SAMPLES).astype(np.float32)
    return X, y, weights


def make_model(dropout=0.0):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((N_FEATURES,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(dropout, seed=3),
            keras.layers.Dense(N_CLASSES, activation="softmax"),
        ]
    )
    model.compile(
        optimizer="rmsprop",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _assert_compiled_epochs_match_model_fit(
    build, X, y, sample_weight, *, batch_size, epochs
) -> keras.Model:
    """Train a model from ``build()`` with ``Model.fit`` and another with the
    compiled epochs, in the same order; assert equal weights and history, and
    return the compiled one."""
    reference = build()
    expected = reference.fit(
        X, y, sample_weight=sample_weight, batch_size=batch_size, epochs=epochs,
        shuffle=False, verbose=0,
    )  # fmt: skip
    model = build()
    history = fit_compiled_epochs(
        epoch_runner(model), X, y, sample_weight,
        random_state=np.random.RandomState(0), batch_size=batch_size,
        epochs=epochs, shuffle=False,
    )  # fmt: skip
    for got, want in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert set(history.history) == set(expected.history)
    for name, values in expected.history.items():
        np.testing.assert_allclose(history.history[name], values, rtol=1e-4)
    return model


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.slow
def test_compiled_epochs_train_as_model_fit_does(data, weighted, tier):
    X, y, weights = data
    sample_weight = weights if weighted else None
    model = _assert_compiled_epochs_match_model_fit(
        make_model, X, y, sample_weight, batch_size=BATCH_SIZE, epochs=3
    )
    assert int(model.optimizer.iterations) == 3 * 10


def test_every_sample_is_seen_once_per_epoch_in_a_fresh_order(data, monkeypatch):
    X, y, _ = data
    model = make_model()
    runner = epoch_runner(model)
    orders = []
    run_epoch = runner.run_epoch

    def spy(data, order, batch_size):
        orders.append(order.copy())
        run_epoch(data, order, batch_size)

    monkeypatch.setattr(runner, "run_epoch", spy)
    fit_compiled_epochs(
        runner, X, y, random_state=np.random.RandomState(0), batch_size=BATCH_SIZE,
        epochs=3,
    )  # fmt: skip
    assert len(orders) == 3
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(N_SAMPLES))
    assert not np.array_equal(orders[0], orders[1])
    assert int(model.optimizer.iterations) == 3 * 10


@pytest.mark.slow
def test_validation_and_validation_freq(data):
    X, y, _ = data
    model = make_model()
    history = fit_compiled_epochs(
        epoch_runner(model), X[:200], y[:200], random_state=np.random.RandomState(0),
        batch_size=BATCH_SIZE, epochs=4, validation_data=(X[200:], y[200:]),
        validation_freq=2,
    )  # fmt: skip
    assert len(history.history["loss"]) == 4
    assert len(history.history["val_loss"]) == 2  # after epochs 2 and 4
    expected = model.evaluate(X[200:], y[200:], verbose=0, return_dict=True)
    assert history.history["val_loss"][-1] == pytest.approx(expected["loss"])


class CountCalls(keras.callbacks.Callback):
    def __init__(self, stop_after_epoch=None):
        super().__init__()
        self.epochs = []
        self.stop_after_epoch = stop_after_epoch

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((epoch, sorted(logs)))
        if epoch == self.stop_after_epoch:
            self.model.stop_training = True


class CountBatches(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def test_epoch_callbacks_run_every_epoch_and_can_stop_training(data):
    X, y, _ = data
    counter = CountCalls(stop_after_epoch=1)
    clf = MNISTClassifier(hidden_units=8, epochs=5, callbacks=[counter])
    assert runs_compiled_epochs({"callbacks": [counter]})
    clf.fit(X, y)
    assert counter.epochs == [(0, ["accuracy", "loss"]), (1, ["accuracy", "loss"])]
    assert len(clf.history_["loss"]) == 2


def test_batch_callbacks_get_every_batch_from_keras_fit(data):
    X, y, _ = data
    counter = CountBatches()
    assert not runs_compiled_epochs({"callbacks": [counter]})
    MNISTClassifier(
        hidden_units=8, epochs=2, batch_size=BATCH_SIZE, callbacks=[counter]
    ).fit(X, y)
    assert counter.batches == 2 * 10


def test_routed_fit_steps_per_epoch_takes_effect(data):
    X, y, _ = data
    # 300 rows at batch 32 are 10 steps per epoch: 2 per epoch is the routing.
    clf = MNISTClassifier(
        hidden_units=8, epochs=2, batch_size=BATCH_SIZE, fit__steps_per_epoch=2
    ).fit(X, y)
    assert int(clf.model_.optimizer.iterations) == 2 * 2


def test_routed_fit_validation_freq_takes_effect(data):
    X, y, _ = data
    clf = MNISTClassifier(
        hidden_units=8, epochs=4, validation_split=0.2, fit__validation_freq=2
    ).fit(X, y)
    assert len(clf.history_["loss"]) == 4
    assert len(clf.history_["val_loss"]) == 2  # after epochs 2 and 4


def test_routed_fit_batch_size_overrides_batch_size(data):
    X, y, _ = data
    clf = MNISTClassifier(hidden_units=8, epochs=1, fit__batch_size=50).fit(X, y)
    assert int(clf.model_.optimizer.iterations) == 300 // 50


def test_routing_survives_set_settingspipelines_and_clone(data):
    X, y, _ = data
    pipe = Pipeline([("clf", MNISTClassifier(hidden_units=8, epochs=2))])
    pipe.set_params(
        clf__batch_size=BATCH_SIZE,
        clf__fit__steps_per_epoch=3,
        clf__optimizer="sgd",
        clf__optimizer__learning_rate=0.0321,
        clf__optimizer__momentum=0.5,
        clf__callbacks=[CountCalls],
        clf__callbacks__stop_after_epoch=0,
    )
    fitted = clone(pipe).fit(X, y).named_steps["clf"]
    optimizer = fitted.model_.optimizer
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert float(optimizer.learning_rate) == pytest.approx(0.0321)
    assert optimizer.momentum == 0.5
    # CountCalls(stop_after_epoch=0) stops after one epoch of 3 steps.
    assert len(fitted.history_["loss"]) == 1
    assert int(optimizer.iterations) == 3


def test_routed_metrics_and_loss_parameters_reach_keras(data):
    X, y, _ = data
    clf = MNISTClassifier(
        hidden_units=8,
        epochs=1,
        metrics=[keras.metrics.SparseTopKCategoricalAccuracy],
        metrics__k=2,
        metrics__name="top2",
        loss=keras.losses.SparseCategoricalCrossentropy,
        loss__ignore_class=3,
    ).fit(X, y)
    assert set(clf.history_) == {"loss", "top2"}
    assert clf.model_.loss.ignore_class == 3


class InterruptAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_the_completed_epochs(data):
    X, y, _ = data
    params = {"hidden_units": 8, "batch_size": BATCH_SIZE, "random_state": 0}
    clf = MNISTClassifier(epochs=5, callbacks=[InterruptAtEpoch(2)], **params)
    with (
        pytest.raises(KeyboardInterrupt),
        pytest.warns(FitInterruptedWarning, match="interrupted after 2 of 5 epochs"),
    ):
        clf.fit(X, y)
    assert len(clf.history_["loss"]) == 2
    two_epochs = MNISTClassifier(epochs=2, **params).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), two_epochs.predict_proba(X))
    # A second fit starts from scratch, as if the first had not happened.
    clf.set_params(callbacks=None)
    clf.fit(X, y)
    fresh = MNISTClassifier(epochs=5, **params).fit(X, y)
    assert len(clf.history_["loss"]) == 5
    np.testing.assert_array_equal(clf.predict_proba(X), fresh.predict_proba(X))


class FailAtEpoch(InterruptAtEpoch):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("a callback failed")


def test_an_error_leaves_weights_and_history_in_step(data):
    X, y, _ = data
    params = {"hidden_units": 8, "batch_size": BATCH_SIZE, "random_state": 0}
    clf = MNISTClassifier(epochs=5, callbacks=[FailAtEpoch(3)], **params)
    with pytest.raises(RuntimeError, match="a callback failed"):
        clf.fit(X, y)
    assert len(clf.history_["loss"]) == 3
    three_epochs = MNISTClassifier(epochs=3, **params).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), three_epochs.predict_proba(X))


class SigintAfterFirstEpoch(keras.callbacks.Callback):
    """Sends a real SIGINT, asynchronously, once training is under way, and stops
    training after ``limit_s`` seconds if the signal never arrives."""

    def __init__(self, limit_s):
        super().__init__()
        self.deadline = time.monotonic() + limit_s

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        if time.monotonic() > self.deadline:
            self.model.stop_training = True


@pytest.fixture
def python_sigint_handling():
    """Ctrl-C raising KeyboardInterrupt, as in a foreground Python, also where
    the test runs as a background job that ignores SIGINT (nohup, ``&``)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT to this process")
@pytest.mark.slow
def test_a_real_sigint_stops_training(data, python_sigint_handling):
    X, y, _ = data
    clf = MNISTClassifier(
        hidden_units=8,
        epochs=100_000,
        batch_size=BATCH_SIZE,
        callbacks=[SigintAfterFirstEpoch(limit_s=60)],
    )
    with (
        pytest.raises(KeyboardInterrupt),
        pytest.warns(FitInterruptedWarning, match="Training interrupted"),
    ):
        clf.fit(X, y)
    epochs = len(clf.history_["loss"])
    assert 0 < epochs < 100_000
    assert clf.predict(X).shape == (N_SAMPLES,)


def test_lambda_callbacks_with_batch_hooks_get_every_batch(data):
    X, y, _ = data
    batches = []
    counter = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batches.append(batch)
    )
    assert not runs_compiled_epochs({"callbacks": [counter]})
    epoch_only = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: None)
    assert runs_compiled_epochs({"callbacks": [epoch_only]})
    clf = MNISTClassifier(hidden_units=8, epochs=2, batch_size=BATCH_SIZE)
    clf.set_params(callbacks=[counter]).fit(X, y)
    assert len(batches) == 2 * 10


@pytest.mark.slow
def test_dropout_draws_as_many_masks_as_model_fit(data, tier):
    X, y, _ = data
    reference = make_model(dropout=0.5)
    reference.fit(X, y, batch_size=BATCH_SIZE, epochs=2, shuffle=False, verbose=0)
    model = make_model(dropout=0.5)
    fit_compiled_epochs(
        epoch_runner(model), X, y, random_state=np.random.RandomState(0),
        batch_size=BATCH_SIZE, epochs=2, shuffle=False,
    )  # fmt: skip
    seed_states = [np.asarray(v) for v in model.non_trainable_variables]
    expected = [np.asarray(v) for v in reference.non_trainable_variables]
    assert seed_states and all(map(np.array_equal, seed_states, expected))
    assert int(model.optimizer.iterations) == int(reference.optimizer.iterations)
    assert not np.array_equal(model.get_weights()[0], make_model().get_weights()[0])


@pytest.mark.slow
def test_fewer_samples_than_one_batch(data, tier):
    X, y, _ = data
    model = make_model()
    fit_compiled_epochs(
        epoch_runner(model), X[:20], y[:20], random_state=np.random.RandomState(0),
        batch_size=BATCH_SIZE, epochs=2,
    )  # fmt: skip
    assert int(model.optimizer.iterations) == 2


def _weighted_data(n_samples, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.rand(n_samples, N_FEATURES).astype(np.float32)
    y = (X[:, :N_CLASSES].argmax(axis=1)).astype(np.int64)
    return X, y, rng.uniform(0.5, 2, n_samples).astype(np.float32)


@pytest.mark.parametrize(
    "n_samples, batch_size, weighted",
    [
        (1, 128, True),  # one row
        (127, 128, False),  # one batch short of full
        (129, 128, True),  # a full batch and one row
        (1001, 128, False),  # 7 full batches and 105 rows
        (1025, 128, True),  # more rows than a block of 1024: the next block
        (127, 1000, True),  # batch larger than the data
    ],
)
@pytest.mark.slow
def test_any_number_of_rows_trains_as_model_fit_does(
    n_samples, batch_size, weighted, tier
):
    X, y, weights = _weighted_data(n_samples)
    sample_weight = weights if weighted else None
    model = _assert_compiled_epochs_match_model_fit(
        make_model, X, y, sample_weight, batch_size=batch_size, epochs=2
    )
    steps = -(-n_samples // batch_size)
    assert int(model.optimizer.iterations) == 2 * steps


@pytest.mark.slow
def test_weighted_metrics_and_a_summed_loss_in_the_last_batch(tier):
    # 300 rows at batch 128: a last batch of 44 rows. A "sum" loss is not
    # averaged over rows, and weighted metrics count the sample weights.
    X, y, weights = _weighted_data(300)

    def compiled():
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [
                keras.Input((N_FEATURES,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(N_CLASSES, activation="softmax"),
            ]
        )
        model.compile(
            optimizer="sgd",
            loss=keras.losses.SparseCategoricalCrossentropy(reduction="sum"),
            metrics=["accuracy"],
            weighted_metrics=[
                "accuracy",
                keras.metrics.SparseCategoricalCrossentropy(),
            ],
        )
        return model

    _assert_compiled_epochs_match_model_fit(
        compiled, X, y, weights, batch_size=128, epochs=2
    )


def _with_and_without_model_fit(params, X, y, **fit_params):
    """The estimator trained by the compiled epochs, and by ``Model.fit`` (which
    a callback acting on batches selects), in the same order of samples."""
    compiled = MNISTClassifier(**params, fit__shuffle=False).fit(X, y, **fit_params)
    keras_fit = MNISTClassifier(
        **params, fit__shuffle=False, callbacks=[CountBatches()]
    ).fit(X, y, **fit_params)
    return compiled, keras_fit


@pytest.mark.slow
def test_class_and_sample_weights_with_a_partial_last_batch(tier):
    X, y, weights = _weighted_data(1001)
    params = {"hidden_units": 8, "epochs": 2, "batch_size": 128, "random_state": 0}
    compiled, keras_fit = _with_and_without_model_fit(
        {**params, "class_weight": {0: 3.0, 1: 0.5, 2: 1.0, 3: 2.0}},
        X, y, sample_weight=weights,
    )  # fmt: skip
    np.testing.assert_allclose(
        compiled.predict_proba(X), keras_fit.predict_proba(X), rtol=1e-4, atol=1e-5
    )
    assert compiled.history_.keys() == keras_fit.history_.keys()
    for name, values in keras_fit.history_.items():
        np.testing.assert_allclose(compiled.history_[name], values, rtol=1e-4)


@pytest.mark.slow
def test_validation_split_with_a_partial_last_batch(tier):
    X, y, _ = _weighted_data(1001)
    params = {"hidden_units": 8, "epochs": 2, "batch_size": 128, "random_state": 0}
    compiled, keras_fit = _with_and_without_model_fit(
        {**params, "validation_split": 0.1}, X, y
    )
    assert set(compiled.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for name, values in keras_fit.history_.items():
        np.testing.assert_allclose(compiled.history_[name], values, rtol=1e-4)


def _mean_of_the_batch(y_true, y_pred):
    # One value for the whole batch: a mask cannot take padding rows out of it.
    return keras.ops.mean(keras.ops.max(y_pred, axis=-1))


def _mean_loss_of_the_batch(y_true, y_pred):
    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y_true, y_pred))


class CountRows(keras.metrics.Metric):
    """Counts the rows it sees, whatever their sample weight."""

    def __init__(self, name="rows", **kwargs):
        super().__init__(name=name, **kwargs)
        self.rows = self.add_variable(shape=(), initializer="zeros", name="rows")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.rows.assign_add(keras.ops.sum(keras.ops.ones_like(y_true, "float32")))

    def result(self):
        return keras.ops.convert_to_tensor(self.rows)


@pytest.mark.parametrize(
    "settings",
    [
        {"metrics": [_mean_of_the_batch]},
        {"loss": _mean_loss_of_the_batch},
        {"metrics": ["accuracy", _mean_of_the_batch], "loss": _mean_loss_of_the_batch},
    ],
    ids=["metric", "loss", "both"],
)
def test_the_users_own_losses_and_metrics_never_see_the_padding(settings):
    # On JAX, the last batch is a full-size batch with a mask, which only
    # Keras's own losses and metrics are known to honour row by row.
    X, y, _ = _weighted_data(45)
    params = {"hidden_units": 8, "epochs": 2, "batch_size": 32, "random_state": 0}
    compiled, keras_fit = _with_and_without_model_fit({**params, **settings}, X, y)
    assert compiled.history_.keys() == keras_fit.history_.keys()
    for name, values in keras_fit.history_.items():
        np.testing.assert_allclose(compiled.history_[name], values, rtol=1e-4)
    np.testing.assert_allclose(
        compiled.predict_proba(X), keras_fit.predict_proba(X), rtol=1e-4, atol=1e-5
    )


def test_a_metric_that_ignores_sample_weight_counts_the_real_rows():
    X, y, _ = _weighted_data(45)
    model = make_model()
    model.compile(
        optimizer="rmsprop", loss="sparse_categorical_crossentropy",
        metrics=[CountRows()],
    )  # fmt: skip
    history = fit_compiled_epochs(
        epoch_runner(model), X, y, random_state=np.random.RandomState(0),
        batch_size=BATCH_SIZE, epochs=1,
    )  # fmt: skip
    assert history.history["rows"] == [45.0]


@pytest.fixture
def workspaces(monkeypatch):
    """The workspaces (epoch runners) MNISTClassifier builds from now on, none
    idle before: a test run in both tiers must not find the other's."""
    monkeypatch.setattr(_workspace, "_idle_workspaces", OrderedDict())
    built = []
    build = MNISTClassifier._build_workspace

    def spy(self):
        built.append(build(self))
        return built[-1]

    monkeypatch.setattr(MNISTClassifier, "_build_workspace", spy)
    return built


@pytest.mark.slow
def test_a_new_number_of_rows_reuses_the_compiled_programs(workspaces, tier):
    # Other hidden sizes than any other test: a workspace of its own.
    params = {"hidden_units": 17, "epochs": 1, "batch_size": 100, "random_state": 0}
    X, y, _ = _weighted_data(1024)
    MNISTClassifier(**params).fit(X[:1001], y[:1001])
    (runner,) = workspaces
    traces = runner.traces
    assert traces > 0
    for n_samples in (1003, 1024, 950, 1001):
        # New remainders (3, 24, 50 rows) and new numbers of full batches.
        MNISTClassifier(**params).fit(X[:n_samples], y[:n_samples])
    assert len(workspaces) == 1
    assert runner.traces == traces


@pytest.mark.slow
def test_a_new_learning_rate_reuses_the_workspace_and_takes_effect(workspaces, tier):
    X, y, _ = _weighted_data(500)
    params = {"hidden_units": 23, "epochs": 2, "batch_size": 64, "random_state": 0}
    first = MNISTClassifier(**params, optimizer__learning_rate=1e-3).fit(X, y)
    (runner,) = workspaces
    traces = runner.traces
    compiled, keras_fit = _with_and_without_model_fit(
        {**params, "optimizer__learning_rate": 0.05}, X, y
    )
    assert len(workspaces) == 1
    assert runner.traces == traces
    assert float(compiled.model_.optimizer.learning_rate) == pytest.approx(0.05)
    np.testing.assert_allclose(
        compiled.predict_proba(X), keras_fit.predict_proba(X), rtol=1e-4, atol=1e-5
    )
    assert not np.allclose(compiled.predict_proba(X), first.predict_proba(X))


@pytest.mark.slow
def test_the_size_of_a_fit_alone_chooses_graph_or_xla(monkeypatch):
    X, y, _ = _weighted_data(300)
    monkeypatch.setattr(_training, "_XLA_MIN_BATCHES", 15)
    small_fits_use_xla = "graph" not in TIERS
    tiers = []
    runner_class = _training._EPOCH_RUNNERS[keras.backend.backend()]
    run_epoch = runner_class.run_epoch

    def spy(self, data, order, batch_size):
        tiers.append(data.xla)
        run_epoch(self, data, order, batch_size)

    monkeypatch.setattr(runner_class, "run_epoch", spy)
    params = {"hidden_units": 19, "batch_size": 64, "random_state": 0}
    small = MNISTClassifier(**params, epochs=2).fit(X, y)  # 2 x 5 batches
    assert tiers == [small_fits_use_xla] * 2
    tiers.clear()
    MNISTClassifier(**params, epochs=3).fit(X, y)  # 3 x 5 batches
    assert tiers == [True] * 3
    tiers.clear()
    # The same small fit after the XLA programs exist: the same tier, and the
    # same model.
    again = MNISTClassifier(**params, epochs=2).fit(X, y)
    assert tiers == [small_fits_use_xla] * 2
    np.testing.assert_array_equal(again.predict_proba(X), small.predict_proba(X))
    # Continued training counts the epochs it trains.
    tiers.clear()
    again.partial_fit(X, y)
    assert tiers == [small_fits_use_xla]


@pytest.mark.slow
def test_validation_compiles_nothing_for_a_new_number_of_rows(workspaces, tier):
    # Validation is one forward pass over rows padded to a power of two, not
    # Model.evaluate, which compiles its step for every new last batch.
    params = {
        "hidden_units": 19,
        "epochs": 2,
        "batch_size": 64,
        "early_stopping": True,
        "validation_fraction": 0.2,
        "random_state": 0,
    }
    X, y, _ = _weighted_data(1024)
    first = MNISTClassifier(**params).fit(X[:700], y[:700])
    (runner,) = workspaces
    traces, shapes = runner.traces, set(runner.forward.batch_shapes)
    for n_samples in (650, 760, 800):  # 130, 152 and 160 validation rows
        MNISTClassifier(**params).fit(X[:n_samples], y[:n_samples])
    assert len(workspaces) == 1
    assert runner.traces == traces
    assert runner.forward.batch_shapes == shapes
    assert len(first.validation_scores_) == 2
