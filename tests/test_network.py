"""The network MNISTClassifier builds: layers, initial weights, L2 penalty."""

import copy
import pickle

import keras
import numpy as np
import pytest

from skmnist._network import build_network, describe_network
from skmnist._random import draw_seeds

# Run again under Keras's JAX backend by .ci/run (see CONTRIBUTING.md).
pytestmark = pytest.mark.each_backend

SOFTMAX = keras.activations.get("softmax")
RELU = keras.activations.get("relu")


def _network(widths=(8,), dropout=0.0, alpha=0.0, seed=0):
    return build_network(
        np.random.RandomState(seed), 5, widths, RELU, dropout, (3, SOFTMAX), alpha
    )


def test_one_hidden_layer_is_the_network_of_earlier_releases():
    # Same layer names, variables and seeds as skmnist 0.1 drew them, so that
    # its files load as they are.
    model = _network(dropout=0.5, seed=3)
    assert [layer.name for layer in model.layers] == ["hidden", "dropout", "output"]
    hidden_seed, dropout_seed, output_seed = draw_seeds(np.random.RandomState(3), 3)
    assert model.get_layer("hidden").kernel_initializer.seed == hidden_seed
    assert model.get_layer("dropout").seed == dropout_seed
    assert model.get_layer("output").kernel_initializer.seed == output_seed


def test_deep_networks_have_dropout_after_every_hidden_layer():
    model = _network((8, 6, 4), dropout=0.2)
    assert [layer.name for layer in model.layers] == [
        "hidden",
        "dropout",
        "hidden_2",
        "dropout_2",
        "hidden_3",
        "dropout_3",
        "output",
    ]
    assert describe_network(model)["hidden_units"] == (8, 6, 4)
    assert describe_network(model)["dropout"] == 0.2
    # Independent seeds for every layer.
    seeds = [layer.kernel_initializer.seed for layer in model.layers[::2]]
    assert len(set(seeds)) == len(seeds)


def test_the_same_seed_gives_the_same_weights():
    first, second = _network((8, 4), seed=1), _network((8, 4), seed=1)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def _squares(model) -> float:
    return sum(
        float(np.sum(np.square(layer.kernel.numpy())))
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense)
    )


@pytest.mark.parametrize("rows", [1, 7, 32])
def test_the_penalty_is_scikit_learns(rows):
    """0.5 * alpha * sum of squared kernels (not biases) / rows in the batch."""
    alpha = 0.3
    model = _network((8, 4), alpha=alpha)
    plain = _network((8, 4), alpha=0.0)
    # Non-zero biases, which must not count.
    for network in (model, plain):
        for layer in network.layers:
            if isinstance(layer, keras.layers.Dense):
                layer.bias.assign(np.ones(layer.bias.shape, "float32"))
    model.compile(loss="sparse_categorical_crossentropy")
    plain.compile(loss="sparse_categorical_crossentropy")
    rng = np.random.RandomState(0)
    x = rng.rand(rows, 5).astype("float32")
    y = rng.randint(0, 3, rows)
    y_pred = plain(x)
    data_loss = float(plain.compute_loss(y=y, y_pred=y_pred))
    expected = data_loss + 0.5 * alpha * _squares(model) / rows
    assert float(model.compute_loss(y=y, y_pred=y_pred)) == pytest.approx(
        expected, rel=1e-6
    )
    with model.penalty_rows(128):
        assert float(model.compute_loss(y=y, y_pred=y_pred)) == pytest.approx(
            data_loss + 0.5 * alpha * _squares(model) / 128, rel=1e-6
        )


def test_alpha_survives_keras_serialisation():
    model = _network((8, 4), alpha=0.25)
    model.compile(loss="sparse_categorical_crossentropy")
    again = pickle.loads(pickle.dumps(model))
    assert type(again) is type(model)
    assert again.alpha == 0.25
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "copy",
    [lambda model: pickle.loads(pickle.dumps(model)), copy.deepcopy],
    ids=["pickle", "deepcopy"],
)
@pytest.mark.slow
def test_copies_go_on_with_the_random_streams_where_they_stopped(digits_flat, copy):
    """Keras's saving (scikeras's pickling and deep copies) leaves out the
    seed generators' states; an augmented network with dropout, continued
    after a copy, must draw what the original draws, not replay its first
    draws (the probe: 0.014 apart after pickle and partial_fit)."""
    from skmnist import MNISTClassifier

    X, y = digits_flat
    X, y = X[:300], y[:300]
    options = dict(augmentation=True, dropout=0.3, hidden_units=16, epochs=1)
    original = MNISTClassifier(**options, batch_size=64, random_state=0).fit(X, y)
    copied = MNISTClassifier(**options, batch_size=64, random_state=0).fit(X, y)
    copied.model_ = copy(copied.model_)
    states = [
        np.asarray(v.value) for v in original.model_.variables if "seed" in v.path
    ]
    assert len(states) == 2 and all(state[-1] > 0 for state in states)
    for classifier in (original, copied):
        classifier.partial_fit(X, y)
    np.testing.assert_array_equal(original.predict_proba(X), copied.predict_proba(X))
