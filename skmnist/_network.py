"""The Keras network of :class:`skmnist.MNISTClassifier`: layers, initial weights
and scikit-learn's L2 penalty.

The network is ``Dense -> [Dropout] -> ... -> Dense(output)``, one ``Dense`` per
width of ``hidden_units``. Its layers are named ``hidden``, ``hidden_2``, ... and
``dropout``, ``dropout_2``, ... and ``output``: a one-hidden-layer network is
exactly the one earlier releases built and saved, so their files load as they are.

The penalty is ``MLPClassifier``'s, not Keras's ``kernel_regularizer``: a Keras
regularizer adds ``l2 * sum(W**2)`` to each batch's mean loss whatever the rows
of the batch, while scikit-learn adds ``0.5 * alpha * sum(W**2) / rows``. The
rows of a batch are known only while training it, so the penalty is added where
the loss is computed (:meth:`MLPNetwork.compute_loss`).
"""

import contextlib

import keras
import numpy as np

import skmnist._scikeras_without_tensorflow  # noqa: F401 (before scikeras)

# isort: split
import scikeras  # noqa: F401 (its pickling hooks on keras.Model, extended below)

from skmnist._augmentation import DigitDistortion
from skmnist._dropout import Dropout
from skmnist._random import draw_seeds


@keras.saving.register_keras_serializable(package="skmnist")
class MLPNetwork(keras.Sequential):
    """A ``Sequential`` network whose training loss carries scikit-learn's
    penalty ``0.5 * alpha * sum(||W||^2) / rows`` over its kernels (not biases).

    ``alpha`` is a plain attribute: the compiled training functions read it when
    they are traced, so models that differ in it do not share them.
    """

    alpha: float = 0.0
    # The rows the penalty is divided by, where they are not those of ``y``:
    # a masked batch (padding rows of a compiled step), or validation, whose
    # loss is reported as that of a training batch.
    _penalty_rows = None

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if not self.alpha:
            return loss
        rows = self._penalty_rows
        if rows is None:
            rows = keras.ops.shape(y)[0]
        squares = sum(
            keras.ops.sum(keras.ops.square(layer.kernel))
            for layer in self.layers
            if isinstance(layer, keras.layers.Dense)
        )
        rows = keras.ops.cast(rows, loss.dtype)
        return loss + keras.ops.cast(0.5 * self.alpha, loss.dtype) * squares / rows

    # Keras's own serialisation (pickle and joblib of the estimator, Model.save)
    # keeps alpha.
    def get_config(self) -> dict:
        return {**super().get_config(), "alpha": self.alpha}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        alpha = config.pop("alpha", 0.0)
        model = super().from_config(config, custom_objects=custom_objects)
        model.alpha = float(alpha)
        return model

    # Keras's saving, which scikeras pickles and deep-copies a model with,
    # leaves out the random states of dropout and augmentation (variables, not
    # weights): an unpickled model would replay the random draws it has used.
    # They travel beside it, as skmnist.save keeps them.
    def __reduce__(self):
        rebuild, arguments = super().__reduce__()
        return _with_random_states, (rebuild, arguments, self._random_states())

    def __deepcopy__(self, memo):
        copy = super().__deepcopy__(memo)
        _set_random_states(copy, self._random_states())
        return copy

    def _random_states(self) -> list[np.ndarray]:
        return [
            np.asarray(variable.value) for variable in _random_state_variables(self)
        ]

    @contextlib.contextmanager
    def penalty_rows(self, rows):
        """Divide the penalty by ``rows`` (a number or a traced scalar) inside."""
        previous, self._penalty_rows = self._penalty_rows, rows
        try:
            yield
        finally:
            self._penalty_rows = previous


# scikeras 0.13 pickles a model after registering its class under ">" + its
# name (it looks the class up among the custom objects' names, never finds it,
# and registers it again without a package); a fresh process must know that
# name too to unpickle the estimator.
keras.saving.register_keras_serializable(package="", name="MLPNetwork")(MLPNetwork)


def _random_state_variables(model: keras.Model) -> list:
    """The variables of ``model`` that are no weights: the states of its seed
    generators (dropout's, augmentation's), in the network's order."""
    weights = {id(weight) for weight in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def _set_random_states(model: keras.Model, states: list[np.ndarray]) -> None:
    for variable, state in zip(_random_state_variables(model), states, strict=True):
        variable.assign(state)


def _with_random_states(rebuild, arguments, states) -> keras.Model:
    """Unpickle a model as scikeras does, then give it back its random states."""
    model = rebuild(*arguments)
    _set_random_states(model, states)
    return model


def build_network(
    random_state: np.random.RandomState,
    n_features: int,
    widths: tuple[int, ...],
    activation,
    dropout: float,
    output: tuple,
    alpha: float = 0.0,
    augmentation: dict | None = None,
) -> MLPNetwork:
    """The network ``n_features -> widths -> output``, initialised from
    ``random_state`` (Glorot uniform kernels, zero biases, drawn by NumPy).

    ``output`` is ``(units, activation)``. The first hidden layer draws the same
    seeds as the one-hidden-layer network of earlier releases. ``augmentation``,
    :class:`~skmnist._augmentation.DigitDistortion`'s arguments but the seed,
    puts that layer first, seeded by the last draw from ``random_state``: the
    weights are those of the network without it.
    """
    hidden_seed, dropout_seed, output_seed = draw_seeds(random_state, 3)
    more_seeds = draw_seeds(random_state, 2 * (len(widths) - 1))
    pairs = zip(more_seeds[::2], more_seeds[1::2], strict=True)
    seeds = [(hidden_seed, dropout_seed), *pairs]
    layers = [keras.Input((n_features,))]
    if augmentation is not None:
        (distortion_seed,) = draw_seeds(random_state, 1)
        layers.append(
            DigitDistortion(**augmentation, seed=distortion_seed, name="augmentation")
        )
    kernel_seeds = []
    for number, (width, (kernel_seed, mask_seed)) in enumerate(
        zip(widths, seeds, strict=True), start=1
    ):
        suffix = "" if number == 1 else f"_{number}"
        hidden = keras.layers.Dense(
            width,
            activation=activation,
            kernel_initializer=_glorot_uniform(kernel_seed),
            bias_initializer=_zeros,
            name=f"hidden{suffix}",
        )
        layers.append(hidden)
        kernel_seeds.append((hidden, kernel_seed))
        if dropout > 0:
            layers.append(Dropout(dropout, seed=mask_seed, name=f"dropout{suffix}"))
    units, output_activation = output
    output_layer = keras.layers.Dense(
        units,
        activation=output_activation,
        kernel_initializer=_glorot_uniform(output_seed),
        bias_initializer=_zeros,
        name="output",
    )
    layers.append(output_layer)
    kernel_seeds.append((output_layer, output_seed))
    model = MLPNetwork(layers, name="mnist_mlp")  # builds the weights
    model.alpha = float(alpha)
    # The layers' configs name the distribution the weights were drawn from, as
    # Keras's own initializers would (Model.save, get_config).
    for layer, seed in kernel_seeds:
        layer.kernel_initializer = keras.initializers.GlorotUniform(seed)
        layer.bias_initializer = keras.initializers.Zeros()
    return model


def describe_network(model: keras.Model) -> dict:
    """The hidden widths, activation, dropout rate, output and augmentation of a
    network that :func:`build_network` built."""
    hidden = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense) and layer.name != "output"
    ]
    dropout = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)
    ]
    output = model.get_layer("output")
    distortion = [layer for layer in model.layers if isinstance(layer, DigitDistortion)]
    return {
        "hidden_units": tuple(layer.units for layer in hidden),
        "activation": hidden[0].activation,
        "dropout": dropout[0].rate if dropout else 0.0,
        "output": (output.units, output.activation),
        "augmentation": distortion[0].distortion_config() if distortion else None,
    }


def _glorot_uniform(seed: int):
    """Keras's Glorot uniform initialisation, drawn by NumPy from ``seed``.

    Keras's own initializers draw on the backend: on JAX every new weight shape
    compiles a random-number program (about a second each on a small CPU), which
    made a new architecture's first fit slow. NumPy draws the same distribution
    at once, and gives the same weights on every backend for one seed.
    """

    def initializer(shape, dtype=None):
        fan_in, fan_out = shape
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        values = np.random.RandomState(seed).uniform(-limit, limit, size=shape)
        return values.astype(dtype or "float32")

    return initializer


def _zeros(shape, dtype=None):
    # NumPy's, for the reason given in _glorot_uniform.
    return np.zeros(shape, dtype=dtype or "float32")
