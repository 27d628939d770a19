import subprocess
import sys
import warnings

import joblib
import keras
import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    check_cv,
    cross_val_score,
)
from sklearn.utils import get_tags

import skmnist
from skmnist import MNISTClassifier

# Run again under Keras's JAX backend by .ci/run (see CONTRIBUTING.md).
pytestmark = pytest.mark.each_backend

FAST = {
    "hidden_units": 64,
    "epochs": 5,
    "batch_size": 32,
    "optimizer__learning_rate": 0.003,
}


@pytest.mark.backend_independent
def test_defaults_are_the_seed_notebook():
    clf = MNISTClassifier()
    params = clf.get_params()
    assert params["hidden_units"] == 512
    assert params["activation"] == "relu"
    assert params["optimizer"] == "rmsprop"
    assert params["loss"] == "sparse_categorical_crossentropy"
    assert params["epochs"] == 5
    assert params["batch_size"] == 128
    assert params["dropout"] == 0
    assert params["augmentation"] is False
    assert params["verbose"] == 0


@pytest.mark.slow
def test_network_is_built_from_the_data(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(epochs=1).fit(X, y)
    hidden, output = clf.model_.layers
    assert clf.n_features_in_ == 64
    assert clf.model_.input_shape == (None, 64)
    assert (hidden.units, hidden.activation.__name__) == (512, "relu")
    assert (output.units, output.activation.__name__) == (10, "softmax")
    assert isinstance(clf.model_.optimizer, keras.optimizers.RMSprop)


@pytest.mark.backend_independent
def test_is_a_classifier_to_scikit_learn():
    clf = MNISTClassifier()
    assert is_classifier(clf)
    tags = get_tags(clf)
    assert tags.estimator_type == "classifier"
    assert tags.target_tags.required
    assert tags.classifier_tags.multi_class


@pytest.mark.backend_independent
@pytest.mark.slow
def test_integer_cv_stratifies(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, random_state=0)
    assert isinstance(check_cv(3, y, classifier=is_classifier(clf)), StratifiedKFold)
    scores = cross_val_score(clf, X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.min() > 0.8


def test_fit_emits_no_warnings(digits_flat):
    X, y = digits_flat
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MNISTClassifier(**FAST).fit(X, y).predict(X)


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "meta_estimator",
    [
        lambda clf: CalibratedClassifierCV(clf, cv=3),
        lambda clf: VotingClassifier(
            [("mlp", clf), ("lr", LogisticRegression(max_iter=500))], voting="soft"
        ),
        lambda clf: StackingClassifier(
            [("mlp", clf)], final_estimator=LogisticRegression(max_iter=500), cv=3
        ),
    ],
    ids=["calibrated", "soft-voting", "stacking"],
)
@pytest.mark.slow
def test_works_inside_meta_estimators(meta_estimator, digits_flat):
    X, y = digits_flat
    model = meta_estimator(MNISTClassifier(**FAST, random_state=0)).fit(X, y)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert model.score(X, y) > 0.85


@pytest.mark.backend_independent
def test_roc_auc_ovr_scoring(digits_flat):
    X, y = digits_flat
    scores = cross_val_score(
        MNISTClassifier(**FAST, random_state=0), X, y, cv=2, scoring="roc_auc_ovr"
    )
    assert scores.min() > 0.9


# -- random_state ------------------------------------------------------------


@pytest.mark.slow
def test_same_random_state_same_probabilities(digits_flat):
    X, y = digits_flat
    first = MNISTClassifier(**FAST, dropout=0.2, random_state=3).fit(X, y)
    second = MNISTClassifier(**FAST, dropout=0.2, random_state=3).fit(X, y)
    other = MNISTClassifier(**FAST, dropout=0.2, random_state=4).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert not np.array_equal(first.predict_proba(X), other.predict_proba(X))


@pytest.mark.slow
def test_seeded_fit_has_no_global_side_effect(digits_flat):
    """scikeras's seeded fit switches TensorFlow op determinism on for the whole
    process; every later unseeded fit then fails with "Random ops require a seed"."""
    from tensorflow.python.framework import config

    X, y = digits_flat
    numpy_state = np.random.get_state()
    MNISTClassifier(**FAST, random_state=0).fit(X, y)
    assert not config.is_op_determinism_enabled()
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()
    unseeded = MNISTClassifier(**FAST, dropout=0.5).fit(X, y)
    assert unseeded.score(X, y) > 0.8
    # Unseeded fits stay random.
    again = MNISTClassifier(**FAST, dropout=0.5).fit(X, y)
    assert not np.array_equal(unseeded.predict_proba(X), again.predict_proba(X))


def test_results_do_not_depend_on_earlier_fits(digits_flat):
    X, y = digits_flat
    reference = MNISTClassifier(**FAST, random_state=7).fit(X, y).predict_proba(X)
    MNISTClassifier(**FAST, random_state=1).fit(X[:500], y[:500])
    MNISTClassifier(hidden_units=16, epochs=2).fit(X, y)
    repeat = MNISTClassifier(**FAST, random_state=7).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(reference, repeat)


def test_live_estimators_never_share_state(digits_flat):
    X, y = digits_flat
    first = MNISTClassifier(**FAST, random_state=0).fit(X, y)
    before = first.predict_proba(X)
    second = MNISTClassifier(**FAST, random_state=1).fit(X[::-1], y[::-1])
    assert first.model_ is not second.model_
    np.testing.assert_array_equal(first.predict_proba(X), before)


def test_warm_start_continues_training(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, warm_start=True, random_state=0).fit(X, y)
    first_fit = clf.history_["loss"]
    clf.fit(X, y)
    # As in scikeras, history_ restarts; the weights do not.
    assert len(clf.history_["loss"]) == FAST["epochs"]
    assert clf.history_["loss"][0] < first_fit[-1] < first_fit[0]


# -- training options ----------------------------------------------------------


def test_history_records_each_epoch(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, validation_split=0.2).fit(X, y)
    assert set(clf.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == FAST["epochs"] for values in clf.history_.values())
    assert clf.history_["loss"][-1] < clf.history_["loss"][0]


@pytest.mark.slow
def test_keras_early_stopping_callback_on_validation_data(digits_flat):
    X, y = digits_flat
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=2, restore_best_weights=True
    )
    X_val, y_val = X[-500:], y[-500:]
    clf = MNISTClassifier(
        hidden_units=32,
        epochs=300,
        callbacks=[stop],
        optimizer__learning_rate=0.05,
        random_state=0,
    ).fit(X[:-500], y[:-500], validation_data=(X_val, y_val))
    val_loss = clf.history_["val_loss"]
    assert len(val_loss) < 300
    assert clf.validation_loss_curve_ == pytest.approx(val_loss)
    # restore_best_weights acts after the last epoch; the estimator has its result.
    best = keras.losses.sparse_categorical_crossentropy(y_val, clf.predict_proba(X_val))
    assert float(np.mean(best)) == pytest.approx(min(val_loss), rel=1e-4)


def test_learning_rate_is_routed_to_the_optimizer(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(epochs=1, optimizer__learning_rate=0.0123).fit(X, y)
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(0.0123)


def test_dropout_adds_a_dropout_layer(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, dropout=0.3).fit(X, y)
    assert any(isinstance(layer, keras.layers.Dropout) for layer in clf.model_.layers)


def test_quiet_by_default_and_progress_bar_with_verbose(digits_flat, capfd):
    X, y = digits_flat
    MNISTClassifier(**FAST).fit(X, y)
    assert "loss" not in capfd.readouterr().out
    MNISTClassifier(**FAST, verbose=1).fit(X, y)
    assert "accuracy" in capfd.readouterr().out


# -- labels and weights ----------------------------------------------------------


@pytest.mark.backend_independent
def test_string_labels(digits_flat):
    X, y = digits_flat
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )[y]
    clf = MNISTClassifier(**FAST, random_state=0).fit(X, names)
    assert set(clf.classes_) == set(names)
    assert clf.predict(X[:5]).dtype.kind in "OU"
    assert clf.score(X, names) > 0.8


def test_two_classes(digits_flat):
    X, y = digits_flat
    binary = np.where(y < 5, "low", "high")
    clf = MNISTClassifier(**FAST, random_state=0).fit(X, binary)
    assert clf.predict_proba(X).shape == (len(X), 2)
    assert clf.score(X, binary) > 0.8


@pytest.mark.backend_independent
@pytest.mark.slow
def test_twenty_six_classes():
    rng = np.random.RandomState(0)
    centers = rng.rand(26, 20) * 10
    labels = rng.randint(0, 26, 2000)
    X = (centers[labels] + rng.randn(2000, 20) * 0.1).astype(np.float32)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))[labels]
    clf = MNISTClassifier(hidden_units=64, epochs=20, random_state=0).fit(X, letters)
    assert clf.n_classes_ == 26
    assert clf.predict_proba(X).shape == (2000, 26)
    assert clf.score(X, letters) > 0.9


def test_sample_weight_is_used_and_not_modified(digits_flat):
    X, y = digits_flat
    weights = np.where(y == 3, 100.0, 1.0)
    original = weights.copy()
    weighted = MNISTClassifier(**FAST, class_weight="balanced", random_state=0)
    weighted.fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(weights, original)
    plain = MNISTClassifier(**FAST, random_state=0).fit(X, y)
    # Heavily weighted 3s pull the predictions towards 3.
    assert (weighted.predict(X) == 3).sum() > (plain.predict(X) == 3).sum()


def test_class_weight_dict_shifts_predictions(digits_flat):
    X, y = digits_flat
    favour_seven = {label: 1.0 for label in range(10)} | {7: 50.0}
    weighted = MNISTClassifier(**FAST, class_weight=favour_seven, random_state=0)
    plain = MNISTClassifier(**FAST, random_state=0)
    assert (weighted.fit(X, y).predict(X) == 7).sum() > (
        plain.fit(X, y).predict(X) == 7
    ).sum()


# -- predictions ----------------------------------------------------------------


def test_predict_proba_matches_keras_predict(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, random_state=0).fit(X, y)
    np.testing.assert_allclose(
        clf.predict_proba(X), clf.model_.predict(X, verbose=0), atol=1e-5
    )
    np.testing.assert_array_equal(
        clf.predict(X), clf.classes_[clf.model_.predict(X, verbose=0).argmax(axis=1)]
    )


def test_one_sample_gives_a_row_of_probabilities(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST).fit(X, y)
    assert clf.predict_proba(X[:1]).shape == (1, 10)
    assert clf.predict(X[:1]).shape == (1,)


def test_binary_crossentropy_uses_one_sigmoid_unit(digits_flat):
    X, y = digits_flat
    odd = y % 2
    clf = MNISTClassifier(**FAST, loss="binary_crossentropy", random_state=0)
    clf.fit(X, odd)
    assert clf.model_.layers[-1].units == 1
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    assert clf.score(X, odd) > 0.8


@pytest.mark.backend_independent
def test_clone_is_unfitted_with_same_params(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST).fit(X, y)
    copy = clone(clf)
    assert copy.get_params()["optimizer__learning_rate"] == 0.003
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "model_")


@pytest.mark.slow
def test_joblib_round_trip_in_a_fresh_process(digits_flat, tmp_path):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, random_state=0).fit(X, y)
    path = tmp_path / "clf.joblib"
    joblib.dump(clf, path)
    np.save(tmp_path / "X.npy", X)
    script = (
        "import joblib, numpy as np, sys; "
        f"clf = joblib.load({str(path)!r}); "
        f"np.save({str(tmp_path / 'proba.npy')!r}, "
        f"clf.predict_proba(np.load({str(tmp_path / 'X.npy')!r})))"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), clf.predict_proba(X))


# -- errors ---------------------------------------------------------------------


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "params, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"hidden_units": 0}, "hidden_units"),
        ({"dropout": 1.0}, "dropout"),
        ({"validation_split": 1.5}, "validation_split"),
    ],
)
def test_invalid_hyper_parameters_are_named(params, message, digits_flat):
    X, y = digits_flat
    with pytest.raises(ValueError, match=message):
        MNISTClassifier(**params).fit(X, y)


@pytest.mark.backend_independent
def test_one_class_is_refused(digits_flat):
    X, _ = digits_flat
    with pytest.raises(ValueError, match="one class only"):
        MNISTClassifier(epochs=1).fit(X, np.zeros(len(X)))


DIGIT_NAMES = ["zero", "one", "two", "three", "four"]
DIGIT_NAMES += ["five", "six", "seven", "eight", "nine"]


# -- the contract a careful user relies on (issue 11) ------------------------------


@pytest.mark.backend_independent
def test_numpy_scalars_are_accepted_as_hyper_parameters(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(
        hidden_units=np.int64(16),
        dropout=np.float32(0.1),
        epochs=np.int64(2),
        batch_size=np.int32(64),
        validation_split=np.float64(0.1),
        shuffle=np.bool_(True),
        optimizer__learning_rate=np.float32(0.01),
        random_state=np.int64(0),
    ).fit(X, y)
    assert clf.model_.get_layer("hidden").units == 16
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(0.01)
    assert len(clf.history_["val_loss"]) == 2


@pytest.mark.slow
def test_an_optimizer_instance_is_configuration_never_shared(digits_flat):
    X, y = digits_flat
    # An architecture no other test uses: no cached workspace can hide the bug.
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    params = {"hidden_units": 13, "epochs": 2, "optimizer": optimizer}
    first = MNISTClassifier(**params, random_state=0).fit(X, y)
    second = clone(first).fit(X, y)
    assert not optimizer.built and int(optimizer.iterations) == 0
    assert first.model_.optimizer is not second.model_.optimizer is not optimizer
    assert isinstance(first.model_.optimizer, keras.optimizers.Adam)
    assert float(first.model_.optimizer.learning_rate) == pytest.approx(0.01)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    grid = [keras.optimizers.SGD(0.1), keras.optimizers.Adam(0.01)]
    search = GridSearchCV(
        MNISTClassifier(hidden_units=13, epochs=2, batch_size=32, random_state=0),
        {"optimizer": grid},
        cv=2,
    ).fit(X, y)
    assert search.cv_results_["mean_test_score"].min() > 0.25  # chance: 0.1
    assert not any(optimizer.built for optimizer in grid)


@pytest.mark.backend_independent
def test_validation_data_labels_are_encoded_as_y(digits_flat):
    X, y = digits_flat
    X_train, y_train, X_val, y_val = X[:1200], y[:1200], X[1200:], y[1200:]
    names = np.array(list("abcdefghij"))
    for labels in (
        lambda v: v + 1,
        lambda v: names[v],
        lambda v: np.array([3, 7, 42, 5, 6, 8, 9, 10, 11, 12])[v],
    ):
        clf = MNISTClassifier(**FAST, random_state=0)
        clf.fit(X_train, labels(y_train), validation_data=(X_val, labels(y_val)))
        assert clf.history_["val_accuracy"][-1] == pytest.approx(
            clf.score(X_val, labels(y_val)), abs=1e-6
        )
    routed = MNISTClassifier(**FAST, fit__validation_data=(X_val, y_val + 1))
    routed.fit(X_train, y_train + 1)
    assert routed.history_["val_accuracy"][-1] == pytest.approx(
        routed.score(X_val, y_val + 1), abs=1e-6
    )
    with pytest.raises(ValueError, match=r"validation_data has labels .*\[99\]"):
        clf.fit(X_train, y_train, validation_data=(X_val, np.full(len(X_val), 99)))


def test_partial_fit_sorts_classes_and_refuses_a_changed_set(digits_flat):
    X, y = digits_flat
    names = np.array(DIGIT_NAMES)
    clf = MNISTClassifier(**FAST, random_state=0)
    for _ in range(5):
        clf.partial_fit(X, names[y], classes=names)
    assert clf.classes_.tolist() == sorted(names)
    assert get_scorer("roc_auc_ovr")(clf, X, names[y]) > 0.95
    np.testing.assert_array_equal(
        clf.predict(X), clf.classes_[clf.predict_proba(X).argmax(axis=1)]
    )
    clf.partial_fit(X, names[y], classes=names[::-1])  # the same set: fine
    with pytest.raises(ValueError, match="not the same as the classes"):
        clf.partial_fit(X, names[y], classes=[*names, "ten"])
    with pytest.raises(ValueError, match=r"y has labels .*'ten'"):
        clf.partial_fit(X[:2], ["ten", "one"])
    numeric = MNISTClassifier(**FAST).partial_fit(
        X, y, classes=[9, 3, 1, 0, 2, 4, 5, 6, 7, 8]
    )
    assert numeric.classes_.tolist() == list(range(10))


@pytest.mark.backend_independent
def test_partial_fit_refuses_balanced_class_weight(digits_flat):
    X, y = digits_flat
    with pytest.raises(ValueError, match="'balanced' is not supported for partial_fit"):
        MNISTClassifier(**FAST, class_weight="balanced").partial_fit(
            X, y, classes=np.arange(10)
        )


def test_class_weight_does_not_weight_the_validation_loss(digits_flat):
    X, y = digits_flat
    heavy = {label: 1.0 for label in range(10)} | {3: 20.0}
    X_val, y_val = X[-300:], y[-300:]
    clf = MNISTClassifier(**FAST, class_weight=heavy, random_state=0).fit(
        X[:-300], y[:-300], validation_data=(X_val, y_val)
    )
    unweighted = keras.losses.sparse_categorical_crossentropy(
        y_val, clf.predict_proba(X_val)
    )
    assert clf.history_["val_loss"][-1] == pytest.approx(
        float(np.mean(unweighted)), rel=1e-4
    )


def _max_weight_change(clf, fit):
    before = [w.copy() for w in clf.model_.get_weights()]
    fit()
    after = clf.model_.get_weights()
    return max(float(np.abs(a - b).max()) for a, b in zip(after, before, strict=True))


def test_continued_training_uses_a_changed_learning_rate(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(
        hidden_units=32, epochs=2, optimizer__learning_rate=0.1, random_state=0
    ).fit(X, y)
    clf.set_params(warm_start=True)
    assert _max_weight_change(clf, lambda: clf.fit(X, y)) > 1e-2
    clf.set_params(optimizer__learning_rate=1e-9)
    assert _max_weight_change(clf, lambda: clf.fit(X, y)) < 1e-5
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(1e-9)
    clf.set_params(optimizer__learning_rate=0.1)
    assert _max_weight_change(clf, lambda: clf.partial_fit(X, y)) > 1e-2
    clf.set_params(optimizer__learning_rate=1e-9)
    assert _max_weight_change(clf, lambda: clf.partial_fit(X, y)) < 1e-5
    # The optimizer's update count goes on: its state was carried over.
    assert int(clf.model_.optimizer.iterations) == 8 * int(np.ceil(len(X) / 128))


def test_warm_start_fits_do_not_replay_the_same_shuffle(digits_flat, monkeypatch):
    from skmnist import _training

    orders = []
    runner_class = _training._EPOCH_RUNNERS[keras.backend.backend()]
    run_epoch = runner_class.run_epoch

    def spy(self, data, order, batch_size):
        orders.append(order.copy())
        run_epoch(self, data, order, batch_size)

    monkeypatch.setattr(runner_class, "run_epoch", spy)
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, warm_start=True, random_state=0)
    clf.fit(X, y)
    clf.fit(X, y)
    assert len(orders) == 2 * FAST["epochs"]
    first, second = orders[: FAST["epochs"]], orders[FAST["epochs"] :]
    assert not any(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    # Still reproducible: the same sequence of fits gives the same orders.
    orders.clear()
    clone(clf).fit(X, y).fit(X, y)
    np.testing.assert_array_equal(
        np.concatenate(orders), np.concatenate(first + second)
    )


@pytest.mark.slow
def test_same_random_state_same_model_with_a_batch_callback(digits_flat):
    """On JAX, Model.fit drew one more shuffle on a new workspace, so the first fit
    in a process differed from later ones with the same random_state."""
    X, y = digits_flat
    # An architecture no other test uses: the first fit builds a new workspace.
    params = {"hidden_units": 19, "epochs": 3, "batch_size": 32, "random_state": 5}
    fits = [
        MNISTClassifier(**params, callbacks=[keras.callbacks.TerminateOnNaN()])
        .fit(X, y)
        .predict_proba(X)
        for _ in range(3)
    ]
    np.testing.assert_array_equal(fits[0], fits[1])
    np.testing.assert_array_equal(fits[1], fits[2])


def test_categorical_crossentropy_on_two_classes(digits_flat):
    X, y = digits_flat
    labels = np.where(y < 5, "low", "high")
    clf = MNISTClassifier(**FAST, loss="categorical_crossentropy", random_state=0)
    clf.fit(X, labels)
    assert clf.model_.get_layer("output").units == 2
    assert clf.predict_proba(X).shape == (len(X), 2)
    assert set(clf.predict(X)) <= {"low", "high"}
    assert clf.score(X, labels) > 0.8


@pytest.mark.backend_independent
def test_binary_crossentropy_on_more_classes_says_what_to_use(digits_flat):
    X, y = digits_flat
    with pytest.raises(ValueError, match=r"is for two classes.*sparse_categorical"):
        MNISTClassifier(**FAST, loss="binary_crossentropy").fit(X, y)


def test_a_fitted_network_predicts_until_refitted(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    clf.set_params(hidden_units=7, dropout=0.4, activation="tanh")
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    assert clf.score(X, y) > 0.8
    with pytest.raises(ValueError, match="hidden_units, dropout, activation changed"):
        clf.set_params(warm_start=True).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    clf.set_params(warm_start=False).fit(X, y)
    assert clf.model_.get_layer("hidden").units == 7


@pytest.mark.backend_independent
def test_repr_shows_what_the_user_set():
    assert repr(MNISTClassifier()) == "MNISTClassifier()"
    clf = MNISTClassifier(hidden_units=64, optimizer__learning_rate=0.01)
    assert (
        repr(clf) == "MNISTClassifier(hidden_units=64, optimizer__learning_rate=0.01)"
    )
    clf.set_params(validation_batch_size=256)
    assert "validation_batch_size=256" in repr(clf)
    assert clone(clf).get_params()["validation_batch_size"] == 256


def test_warm_start_fit_keeps_classes_and_names_unknown_labels(digits_flat, tmp_path):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, warm_start=True, random_state=0).fit(X, y + 1)
    clf.fit(X[y < 5], y[y < 5] + 1)  # continued training on some of the classes
    assert clf.classes_.tolist() == list(range(1, 11))
    assert get_scorer("roc_auc_ovr")(clf, X, y + 1) > 0.9
    # save never writes a file that load refuses (classes_ was None here).
    skmnist.save(clf, tmp_path / "warm.skmnist")
    loaded = skmnist.load(tmp_path / "warm.skmnist")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(ValueError, match=r"y has labels .*\[0\]"):
        clf.fit(X, y)


@pytest.mark.parametrize("method", ["warm_start", "partial_fit"])
@pytest.mark.parametrize(
    "first, then",
    [
        ("sparse_categorical_crossentropy", "categorical_crossentropy"),
        ("categorical_crossentropy", "sparse_categorical_crossentropy"),
    ],
)
def test_continued_training_after_switching_the_cross_entropy(
    digits_flat, method, first, then
):
    # Both losses train the same softmax network; only the labels' encoding
    # (class indices or one-hot rows) differs.
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, loss=first, random_state=0).fit(X, y + 1)
    clf.set_params(loss=then)
    if method == "warm_start":
        clf.set_params(warm_start=True).fit(X, y + 1)
    else:
        clf.partial_fit(X, y + 1)
    assert len(clf.history_["loss"]) >= 1
    assert clf.score(X, y + 1) > 0.8
    assert clf.predict_proba(X[:3]).shape == (3, 10)


def test_partial_fit_class_weight_dict_may_name_classes_absent_from_a_batch(
    digits_flat,
):
    X, y = digits_flat
    weights = {0: 2.0, 9: 5.0}  # unnamed classes weigh 1, as in scikit-learn
    clf = MNISTClassifier(**FAST, class_weight=weights, random_state=0)
    clf.partial_fit(X[y < 5], y[y < 5], classes=np.arange(10))
    clf.partial_fit(X[y >= 5], y[y >= 5])
    assert clf.classes_.tolist() == list(range(10))


def test_loss_arguments_are_routed_to_a_loss_given_by_name(digits_flat):
    # scikeras turns a loss name into a function, which takes no loss__ arguments.
    X, y = digits_flat
    clf = MNISTClassifier(
        **FAST,
        loss="sparse_categorical_crossentropy",
        loss__ignore_class=np.int64(3),
    ).fit(X, y)
    assert clf.model_.loss.get_config()["ignore_class"] == 3
    with pytest.raises(ValueError, match=r"loss='no_such_loss' .*keras.losses"):
        MNISTClassifier(**FAST, loss="no_such_loss", loss__axis=-1).fit(X, y)


# -- saved state (issue 13, item 1) ---------------------------------------------


@pytest.mark.parametrize("random_state", [None, 3])
def test_the_saved_state_restores_a_classifier_without_a_file(
    digits_flat, random_state
):
    # _saved_state and _restore deal in plain values only (skmnist.save and
    # load put them in a file), and restoring neither touches the estimator's
    # random_state nor draws from NumPy's global generator.
    X, y = digits_flat
    params = {**FAST, "dropout": 0.2, "random_state": random_state}
    clf = MNISTClassifier(**params).fit(X[:300], y[:300])
    attributes, weights = clf._saved_state()
    assert all(isinstance(weight, np.ndarray) for weight in weights)
    restored = MNISTClassifier(**params)
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    restored._restore(attributes, weights)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    assert restored._random_state == clf._random_state and restored._seed == clf._seed
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(ValueError, match="weight bytes, more than"):
        MNISTClassifier(**{**params, "hidden_units": 10**6})._restore(
            attributes, weights
        )
    with pytest.raises(ValueError, match="shape"):
        MNISTClassifier(**params)._restore(attributes, weights[::-1])


# -- what MLPClassifier users tune -------------------------------------------


@pytest.mark.slow
def test_hidden_units_takes_a_sequence_of_widths(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(
        hidden_units=np.array([24, 12]),
        dropout=0.1,
        epochs=8,
        optimizer__learning_rate=0.01,
        random_state=0,
    ).fit(X, y)
    assert [layer.name for layer in clf.model_.layers] == [
        "hidden",
        "dropout",
        "hidden_2",
        "dropout_2",
        "output",
    ]
    assert [clf.model_.get_layer(name).units for name in ("hidden", "hidden_2")] == [
        24,
        12,
    ]
    assert clf.score(X, y) > 0.8
    # The network is checked against the parameters, whatever their type.
    clf.set_params(hidden_units=(24, 12), warm_start=True).fit(X, y)
    clf.set_params(hidden_units=[24])
    with pytest.raises(ValueError, match="hidden_units changed"):
        clf.fit(X, y)


@pytest.mark.slow
def test_a_grid_lists_widths_and_depths(digits_flat):
    X, y = digits_flat
    grid = {"hidden_units": [8, (8, 4), np.array([6, 3])]}
    search = GridSearchCV(
        MNISTClassifier(epochs=1, random_state=0), grid, cv=2, refit=True
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 3
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


@pytest.mark.backend_independent
def test_hidden_layer_sizes_names_hidden_units():
    with pytest.raises(TypeError, match=r"hidden_layer_sizes.*hidden_units"):
        MNISTClassifier(hidden_layer_sizes=(512,))


@pytest.mark.backend_independent
def test_misspelled_parameters_are_refused():
    with pytest.raises(TypeError, match="'hiden_units'"):
        MNISTClassifier(hiden_units=5)
    with pytest.raises(TypeError, match="'hiden_units'"):
        skmnist.make_mnist_pipeline(hiden_units=5)
    # Routed and scikeras parameters are still accepted.
    MNISTClassifier(optimizer__learning_rate=1e-3, fit__validation_freq=2, model=None)
    with pytest.raises(ValueError, match="Invalid parameter 'hiden_units'") as error:
        MNISTClassifier().set_params(hiden_units=4)
    assert "constructor" not in str(error.value)
    assert "hidden_units" in str(error.value)  # the valid names are listed


@pytest.mark.backend_independent
def test_partial_fit_needs_classes_on_the_first_call(digits_flat):
    X, y = digits_flat
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MNISTClassifier(**FAST).partial_fit(X[:50], y[:50])


def test_predict_log_proba_is_the_log_of_predict_proba(digits, digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, random_state=0).fit(X, y)
    np.testing.assert_allclose(
        clf.predict_log_proba(X[:20]), np.log(clf.predict_proba(X[:20])), rtol=1e-6
    )
    images, labels = digits
    pipe = skmnist.make_mnist_pipeline(**FAST, random_state=0)
    pipe.set_params(scale__max_value=16).fit(images, labels)
    assert pipe.predict_log_proba(images[:3]).shape == (3, 10)


@pytest.mark.slow
def test_early_stopping_ends_with_the_best_epoch(digits_flat):
    X, y = digits_flat
    X_val, y_val = X[-400:], y[-400:]
    clf = MNISTClassifier(
        hidden_units=16,
        epochs=200,
        early_stopping=True,
        n_iter_no_change=3,
        optimizer__learning_rate=0.01,
        random_state=0,
    ).fit(X[:-400], y[:-400], validation_data=(X_val, y_val))
    assert clf.n_iter_ < 200
    assert len(clf.validation_scores_) == len(clf.loss_curve_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None
    # The model is that of the best epoch: the earliest of the best scores,
    # then n_iter_no_change + 1 epochs without an improvement of tol.
    best_epoch = clf.validation_scores_.index(clf.best_validation_score_)
    assert clf.n_iter_ == best_epoch + 1 + 3 + 1 or clf.n_iter_ > best_epoch + 4
    assert clf.score(X_val, y_val) == pytest.approx(clf.best_validation_score_)
    assert len(clf.validation_loss_curve_) == clf.n_iter_
    assert clf.history_["val_loss"] == pytest.approx(clf.validation_loss_curve_)
    assert clf.t_ == clf.n_iter_ * (len(X) - 400)


def test_without_early_stopping_every_epoch_is_trained(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, random_state=0).fit(X, y)
    assert clf.n_iter_ == 5
    assert clf.loss_curve_ == pytest.approx(clf.history_["loss"])
    assert clf.loss_ == clf.loss_curve_[-1]
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None
    assert clf.best_validation_score_ is None
    assert clf.validation_loss_curve_ is None
    assert "val_loss" not in clf.history_


def test_continued_training_carries_the_curves_on(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, warm_start=True, random_state=0).fit(X, y)
    clf.fit(X, y)
    assert clf.n_iter_ == 5  # this call's, as in MLPClassifier
    assert len(clf.loss_curve_) == 10
    clf.partial_fit(X, y)
    assert (clf.n_iter_, len(clf.loss_curve_)) == (1, 11)
    assert clf.t_ == 11 * len(X)
    clf.set_params(warm_start=False).fit(X, y)
    assert len(clf.loss_curve_) == 5


def test_validation_fraction_holds_out_a_stratified_seeded_split(digits_flat):
    X, y = digits_flat
    params = {**FAST, "validation_fraction": 0.2, "random_state": 0}
    first = MNISTClassifier(**params).fit(X, y)
    second = MNISTClassifier(**params).fit(X, y)
    assert first.history_["val_accuracy"] == second.history_["val_accuracy"]
    n_validation = int(np.ceil(0.2 * len(X)))
    assert first.t_ == 5 * (len(X) - n_validation)
    other = MNISTClassifier(**{**params, "random_state": 1}).fit(X, y)
    assert other.history_["val_loss"] != first.history_["val_loss"]


@pytest.mark.backend_independent
def test_early_stopping_needs_validation_rows(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, early_stopping=True, validation_fraction=0.0)
    with pytest.raises(ValueError, match="early_stopping=True needs validation rows"):
        clf.fit(X, y)


def test_validation_split_is_deprecated_onto_validation_fraction(digits_flat):
    X, y = digits_flat
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default warns about nothing
        plain = MNISTClassifier(**FAST, validation_fraction=0.25, random_state=0)
        plain.fit(X, y)
    with pytest.warns(FutureWarning, match="validation_split was deprecated"):
        old = MNISTClassifier(**FAST, validation_split=0.25, random_state=0).fit(X, y)
    assert old.history_["val_loss"] == plain.history_["val_loss"]
    with pytest.warns(FutureWarning, match="validation_fraction=0.25"):
        MNISTClassifier(**FAST, random_state=0).fit(X, y, validation_split=0.25)
    both = MNISTClassifier(**FAST, validation_split=0.2, validation_fraction=0.2)
    with pytest.raises(ValueError, match="both set"):
        both.fit(X, y)


def test_the_adaptive_schedule_divides_the_learning_rate_by_five(digits_flat):
    X, y = digits_flat
    # tol=10: no epoch improves on the first one; the count passes
    # n_iter_no_change=1 at the third and fifth epochs.
    clf = MNISTClassifier(
        **{**FAST, "optimizer__learning_rate": 0.01},
        learning_rate_schedule="adaptive",
        n_iter_no_change=1,
        tol=10.0,
        random_state=0,
    ).fit(X, y)
    assert clf.n_iter_ == 5  # without early stopping, nothing stops
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(0.01 / 25)


def test_a_keras_schedule_gives_the_learning_rate(digits_flat):
    X, y = digits_flat
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.5)
    clf = MNISTClassifier(**{**FAST, "optimizer__learning_rate": None})
    del clf.optimizer__learning_rate
    clf.set_params(learning_rate_schedule=schedule, random_state=0).fit(X, y)
    steps = int(clf.model_.optimizer.iterations)
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(
        0.01 * 0.5 ** (steps / 10), rel=1e-4
    )
    # Configuration: the estimator's own schedule is not the one trained with.
    assert clf.learning_rate_schedule is schedule
    assert clone(clf).learning_rate_schedule is not schedule
    conflicting = MNISTClassifier(
        **FAST, learning_rate_schedule=schedule, random_state=0
    )
    with pytest.raises(ValueError, match="optimizer__learning_rate"):
        conflicting.fit(X, y)


@pytest.mark.slow
def test_continued_training_after_a_schedule_ended_says_it_changes_nothing(
    digits_flat,
):
    """The robust recipe's CosineDecay is 0 after the fit it was sized for:
    continued training warns, rather than growing a loss curve with the same
    weights (the probe's finding); a schedule that goes on trains again."""
    X, y = digits_flat
    X, y = X[:256], y[:256]
    ended = keras.optimizers.schedules.CosineDecay(0.01, 2 * 4)  # 2 epochs of 4
    clf = MNISTClassifier(
        hidden_units=16, epochs=2, batch_size=64, optimizer="adam", random_state=0
    )
    clf.set_params(learning_rate_schedule=ended).fit(X, y)
    before = clf.model_.get_weights()
    with pytest.warns(UserWarning, match=r"rate of 0 after the 8 updates") as caught:
        clf.partial_fit(X, y)
    assert caught[0].filename == __file__
    for a, b in zip(before, clf.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # Another optimizer starts counting again: its schedule has not ended.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.set_params(optimizer="sgd").partial_fit(X, y)
    assert not np.array_equal(before[0], clf.model_.get_weights()[0])
    clf.set_params(optimizer="adam")
    before = clf.model_.get_weights()
    goes_on = keras.optimizers.schedules.CosineDecay(0.01, 100)
    clf.set_params(learning_rate_schedule=goes_on, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.fit(X, y)
    assert not np.array_equal(before[0], clf.model_.get_weights()[0])


@pytest.mark.slow
def test_alpha_is_scikit_learns_penalty(digits_flat):
    X, y = digits_flat
    X, y = X[:100], y[:100]
    alpha = 0.5
    # One full batch and a learning rate of 0: the loss of the only epoch is
    # that of the initial weights, which stay.
    clf = MNISTClassifier(
        hidden_units=(16, 8),
        epochs=1,
        batch_size=100,
        alpha=alpha,
        optimizer="sgd",
        optimizer__learning_rate=0.0,
        random_state=0,
    ).fit(X, y)
    data_loss = float(
        np.mean(keras.losses.sparse_categorical_crossentropy(y, clf.predict_proba(X)))
    )
    squares = sum(
        float(np.sum(layer.kernel.numpy() ** 2))
        for layer in clf.model_.layers
        if isinstance(layer, keras.layers.Dense)
    )
    assert clf.loss_curve_[0] == pytest.approx(
        data_loss + 0.5 * alpha * squares / 100, rel=1e-5
    )
    # And it shrinks the weights.
    params = {**FAST, "random_state": 0}
    plain = MNISTClassifier(**params).fit(X, y)
    shrunk = MNISTClassifier(**params, alpha=1.0).fit(X, y)

    def norm(clf):
        return np.linalg.norm(clf.model_.get_layer("hidden").kernel.numpy())

    assert norm(shrunk) < 0.8 * norm(plain)


@pytest.mark.slow
def test_early_stopping_in_cross_validation_with_weights(digits_flat):
    X, y = digits_flat
    weights = np.random.RandomState(0).uniform(0.5, 2, len(y))
    clf = MNISTClassifier(
        **{**FAST, "epochs": 30},
        early_stopping=True,
        n_iter_no_change=2,
        class_weight="balanced",
        random_state=0,
    )
    scores = cross_val_score(
        clf, X, y, cv=3, n_jobs=2, params={"sample_weight": weights}
    )
    assert np.all(scores > 0.8)


def test_continued_training_may_switch_early_stopping_on_and_off(digits_flat):
    X, y = digits_flat
    params = {**FAST, "epochs": 2, "random_state": 0}
    clf = MNISTClassifier(**params, early_stopping=True, warm_start=True)
    clf.partial_fit(X, y, classes=np.arange(10))  # partial_fit never stops early
    assert clf.validation_scores_ is None and clf.best_loss_ is not None
    clf.fit(X, y)
    assert len(clf.validation_scores_) == 2 and clf.best_loss_ is None
    assert len(clf.loss_curve_) == 3
    clf.set_params(early_stopping=False).fit(X, y)
    assert clf.validation_scores_ is None
    assert clf.best_loss_ == min(clf.loss_curve_[-2:])
    assert len(clf.loss_curve_) == 5


def test_partial_fit_goes_on_from_the_adapted_learning_rate(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(
        **{**FAST, "optimizer__learning_rate": 0.1},
        optimizer="sgd",
        learning_rate_schedule="adaptive",
        tol=100.0,
        n_iter_no_change=1,
        random_state=0,
    )
    rates = []
    for _ in range(6):
        clf.partial_fit(X, y, classes=np.arange(10))
        rates.append(float(clf.model_.optimizer.learning_rate))
    # MLPClassifier's sequence: each division lasts into the next calls.
    assert rates == pytest.approx([0.1, 0.1, 0.02, 0.02, 0.004, 0.004])
    # A starting rate set since applies: this call starts from it (and,
    # its count passing n_iter_no_change again, divides it).
    clf.set_params(optimizer__learning_rate=0.05).partial_fit(X, y)
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(0.01)


@pytest.mark.backend_independent
def test_adaptive_needs_a_rate_it_can_divide(digits_flat):
    X, y = digits_flat
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.5)
    clf = MNISTClassifier(
        hidden_units=8,
        optimizer=keras.optimizers.SGD(schedule),
        learning_rate_schedule="adaptive",
    )
    with pytest.raises(ValueError, match="schedule of its own"):
        clf.fit(X, y)


@pytest.mark.backend_independent
def test_validation_weights_that_weigh_nothing_are_refused(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, early_stopping=True)
    with pytest.raises(ValueError, match="not all zero"):
        clf.fit(X, y, validation_data=(X[:50], y[:50], np.zeros(50)))
    assert not hasattr(clf, "history_")  # refused before training


def test_a_class_of_one_sample_gives_a_plain_random_split(digits_flat):
    X, y = digits_flat
    labels = np.array(list("abcdefghij"))[y]
    keep = np.r_[np.flatnonzero(y != 9), np.flatnonzero(y == 9)[:1]]
    clf = MNISTClassifier(**FAST, early_stopping=True, random_state=0)
    with pytest.warns(UserWarning, match=r"\['j'\] have one sample only"):
        clf.fit(X[keep], labels[keep])
    assert clf.n_iter_ >= 1


def test_verbose_says_when_the_rate_is_divided_and_training_stops(digits_flat, capsys):
    X, y = digits_flat
    MNISTClassifier(
        **{**FAST, "epochs": 8},
        early_stopping=True,
        learning_rate_schedule="adaptive",
        n_iter_no_change=1,
        tol=1.0,
        verbose=2,
        random_state=0,
    ).fit(X, y)
    out = capsys.readouterr().out
    assert "did not improve more than tol=1.0 for 1 consecutive epochs" in out
    assert "Learning rate set to 0.0006" in out


def test_mlpclassifier_activation_names_are_keras_s(digits_flat):
    X, y = digits_flat
    for name, keras_name in (("logistic", "sigmoid"), ("identity", "linear")):
        clf = MNISTClassifier(hidden_units=8, epochs=1, activation=name).fit(X, y)
        assert clf.model_.get_layer("hidden").activation.__name__ == keras_name


def test_a_refused_fit_keeps_the_fitted_model(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**FAST, random_state=0).fit(X, y)
    before = clf.predict_proba(X)
    with pytest.raises(ValueError, match="not all zero"):
        clf.fit(X, y, validation_data=(X[:100], y[:100], np.zeros(100)))
    clf.set_params(early_stopping=True, validation_fraction=0.0)
    with pytest.raises(ValueError, match="needs validation rows"):
        clf.fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), before)
    fresh = MNISTClassifier(
        hidden_units=8,
        optimizer=keras.optimizers.SGD(
            keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.5)
        ),
        learning_rate_schedule="adaptive",
    )
    with pytest.raises(ValueError, match="schedule of its own"):
        fresh.partial_fit(X, y, classes=np.arange(10))
    assert not hasattr(fresh, "model_")


def test_the_adapted_rate_lasts_only_while_partial_fit_goes_on(digits_flat, tmp_path):
    X, y = digits_flat
    clf = MNISTClassifier(
        hidden_units=8,
        optimizer="sgd",
        optimizer__learning_rate=0.1,
        learning_rate_schedule="adaptive",
        tol=100.0,
        n_iter_no_change=1,
        random_state=0,
    )
    for _ in range(5):
        clf.partial_fit(X, y, classes=np.arange(10))
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(0.004)
    # Saved and loaded, it goes on from the same rate.
    skmnist.save(clf, tmp_path / "adapted.skmnist")
    loaded = skmnist.load(tmp_path / "adapted.skmnist")
    loaded.partial_fit(X, y)
    assert float(loaded.model_.optimizer.learning_rate) == pytest.approx(0.004)
    # A call that starts from optimizer__learning_rate forgets it: the next
    # division (the count still passes n_iter_no_change) is of 0.1, not 0.004.
    clf.set_params(learning_rate_schedule="constant").partial_fit(X, y)
    clf.set_params(learning_rate_schedule="adaptive").partial_fit(X, y)
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(0.02)
