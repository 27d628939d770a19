"""The forward passes behind ``predict`` and ``predict_proba``.

``Model.predict`` traces a function per model and dispatches per batch through
Keras's input pipeline, which for one small image costs far more than the
arithmetic. Here one compiled function per architecture serves every model of
it, reading the weights of the model at each call, and inputs are padded to a
power of two rows, so that the number of compiled programs stays bounded
whatever the batch sizes (the cache is bounded too, see :mod:`skmnist._caches`).

For a few rows even that compiled call costs more than the products themselves
(some 0.25 ms on a 2-core CPU, against 0.05 ms for one image through the seed
network), so :func:`predict_outputs` computes up to :data:`NUMPY_MAX_ROWS` rows
with NumPy, from the weights as they are at that call: zero-copy NumPy views of
the variables (TensorFlow lends a read variable's buffer and copies on write any
buffer still lent; a JAX array is immutable and keeps the NumPy copy it makes
once). Nothing is cached that could go stale: weights changed by ``fit``,
``partial_fit``, ``set_weights``, loading, a Keras ``fit`` of ``model_`` or any
other thread are those of the next prediction, and no lock is needed. On
TensorFlow that costs a read op per variable (with the seed network, 0.1 to 0.2
ms of a one-image prediction): a cache invalidated on skmnist's own events would
save it, but would not see a write through Keras (``model_.set_weights``) or
inside a compiled function, which TensorFlow reports to no one. Networks the
NumPy pass does not know (an activation it does not implement, another dtype
policy, LoRA, quantized layers, TensorFlow variables on a GPU, where each read
would copy them to the host) take the compiled pass.
"""

import functools
from collections import OrderedDict
from collections.abc import Callable, Hashable

import keras
import numpy as np
import scipy.special

from skmnist._augmentation import DigitDistortion
from skmnist._caches import lock, quiet_expected_retracing_warnings, remember
from skmnist._compat import call_concrete_function, read_variable
from skmnist._dropout import Dropout

# Up to this many rows NumPy is faster than the compiled pass for the seed
# network on a 2-core CPU, on either backend (the crossover lies between 8 and 16
# rows, lower on a loaded machine).
NUMPY_MAX_ROWS = 8

_inference_functions: "OrderedDict[Hashable, Callable]" = OrderedDict()


def predict_outputs(
    model: keras.Model, X: np.ndarray, compiled: Callable[[], "CompiledForwardPass"]
) -> np.ndarray:
    """Outputs of ``model`` for ``X``, a float32 array of at least one row: by
    NumPy for at most :data:`NUMPY_MAX_ROWS` rows of a network it can run, else
    by ``compiled()``, the compiled pass of the model's architecture."""
    if len(X) <= NUMPY_MAX_ROWS:
        layers = _numpy_layers(model)
        if layers is not None:
            return _numpy_forward(layers, X)
    return compiled()(model, X)


def forward_pass(
    key: Hashable, build_template: Callable[[], keras.Model]
) -> "CompiledForwardPass":
    """The compiled forward pass for the architecture ``key``, shared by every
    model of that key; ``build_template`` makes a model of it the first time."""
    with lock:
        forward = _inference_functions.get(key)
    if forward is None:
        forward = CompiledForwardPass(build_template())
        with lock:
            remember(_inference_functions, key, forward)
    return forward


class CompiledForwardPass:
    """Inference for models of one architecture, compiled once per batch shape.

    Batches are padded to a power of two rows (at most ``max_rows``, larger inputs
    go in chunks), so whatever the number of samples, at most
    ``log2(max_rows) + 1`` programs are compiled per architecture: predicting on
    1, 3 and 7 samples does not compile three times. Weights are read from the
    model passed at each call, never captured, so one compiled function serves
    every model of the architecture; calls are thread-safe.
    """

    def __init__(self, template: keras.Model, max_rows: int = 8192):
        self.max_rows = max_rows
        self.batch_shapes: set[tuple[int, ...]] = set()  # those compiled so far
        self._run = _compile_forward_pass(template)

    def __call__(self, model: keras.Model, X: np.ndarray) -> np.ndarray:
        """Outputs of ``model`` for ``X``, a float32 array of at least one row."""
        trainable = model.trainable_variables
        non_trainable = model.non_trainable_variables
        outputs = []
        for start in range(0, len(X), self.max_rows):
            chunk = X[start : start + self.max_rows]
            rows = len(chunk)
            padded_rows = 1 << (rows - 1).bit_length()
            if padded_rows != rows:
                chunk = np.concatenate(
                    [chunk, np.zeros((padded_rows - rows, *chunk.shape[1:]), X.dtype)]
                )
            self.batch_shapes.add(chunk.shape)
            outputs.append(self._run(trainable, non_trainable, chunk)[:rows])
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)


def _compile_forward_pass(model: keras.Model) -> Callable:
    """``(trainable, non_trainable, x) -> ndarray`` for the backend in use."""

    def forward(trainable, non_trainable, x):
        y, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return y

    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _TensorFlowForwardPass(forward)
    if backend == "jax":
        import jax

        forward = jax.jit(forward)

    def run(trainable, non_trainable, x):
        values = ([v.value for v in trainable], [v.value for v in non_trainable])
        return keras.ops.convert_to_numpy(forward(*values, x))

    return run


class _TensorFlowForwardPass:
    """An XLA-compiled forward pass taking the variables themselves as inputs.

    Calling a ``tf.function`` binds and converts its arguments in Python, which
    costs more than the arithmetic for one image; its concrete function for one
    input shape, called with the variables' resource handles, does not.
    """

    def __init__(self, forward: Callable):
        import tensorflow as tf

        quiet_expected_retracing_warnings()
        self._tf = tf
        self._function = tf.function(forward, jit_compile=True)
        self._concrete = {}

    def __call__(self, trainable, non_trainable, x: np.ndarray) -> np.ndarray:
        tf = self._tf
        concrete = self._concrete.get(x.shape)
        if concrete is None:
            with lock:
                if x.shape not in self._concrete:
                    self._concrete[x.shape] = self._function.get_concrete_function(
                        [v.value for v in trainable],
                        [v.value for v in non_trainable],
                        tf.TensorSpec(x.shape, x.dtype),
                    )
                concrete = self._concrete[x.shape]
        outputs = call_concrete_function(
            concrete,
            [v.value for v in trainable],
            [v.value for v in non_trainable],
            tf.constant(x),
        )
        return outputs.numpy()


# -- the NumPy pass ----------------------------------------------------------


def _numpy_forward(layers: list[tuple], X: np.ndarray) -> np.ndarray:
    # Rows of one row each: one vector-matrix product per row. A matrix product
    # of a few rows spreads over BLAS's threads, and on a loaded CPU waits tens
    # of milliseconds for them; and so each row's outputs are those it has alone.
    outputs = X[:, np.newaxis, :]
    # As Keras's pass, overflows give inf or nan without a warning.
    with np.errstate(all="ignore"):
        for kernel, bias, activation in layers:
            outputs = outputs @ kernel  # a new array, which the rest may overwrite
            if bias is not None:
                outputs += bias
            outputs = activation(outputs)
    return outputs[:, 0, :]


def _numpy_layers(model: keras.Model) -> list[tuple] | None:
    """``(kernel, bias, activation)`` of each ``Dense`` layer of ``model``, as
    NumPy arrays (the bias None without one) and functions; None where the
    NumPy pass would not compute what Keras does."""
    read = _VARIABLE_READERS.get(keras.backend.backend())
    if read is None:
        return None
    activations = _numpy_activations()
    layers = []
    for layer in model.layers:
        kind = type(layer)
        # Dropout and the distortions do nothing at inference; other layers are
        # not the networks skmnist builds.
        if kind is Dropout or kind is keras.layers.Dropout or kind is DigitDistortion:
            continue
        # Quantized layers have another policy ("int8_from_float32").
        if (
            kind is not keras.layers.Dense
            or layer.dtype_policy.name != "float32"
            or getattr(layer, "lora_enabled", False)
        ):
            return None
        activation = activations.get(layer.activation)
        if activation is None:
            return None
        kernel = read(layer.kernel)
        bias = read(layer.bias) if layer.use_bias else None
        if kernel is None or (layer.use_bias and bias is None):
            return None
        layers.append((kernel, bias, activation))
    return layers


def _tensorflow_value(variable) -> np.ndarray | None:
    """The variable's value now, a view of its buffer (an update of the variable
    while the view lives goes to a new buffer: TensorFlow copies on write); None
    on a GPU."""
    value = variable.value
    if ":CPU:" not in value.device:
        return None
    return read_variable(value)


def _jax_value(variable) -> np.ndarray:
    # Assigning a variable replaces its immutable array, whose NumPy copy is
    # made once and kept on the array.
    return np.asarray(variable.value)


_VARIABLE_READERS = {"tensorflow": _tensorflow_value, "jax": _jax_value}


@functools.cache
def _numpy_activations() -> dict[Callable, Callable[[np.ndarray], np.ndarray]]:
    """NumPy versions of Keras's activations, with Keras's default arguments,
    by the Keras function; each may overwrite its float32 argument."""
    a = keras.activations

    def relu(x):
        return np.maximum(x, 0, out=x)

    def sigmoid(x):
        return scipy.special.expit(x, out=x)

    def softplus(x):
        return np.logaddexp(x, np.float32(0), out=x)

    def elu(x):
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))

    def selu(x):
        scale, alpha = np.float32(1.0507009873554805), np.float32(1.6732632423543772)
        return scale * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))

    def gelu(x):
        half = np.float32(0.5)
        return half * x * (1 + scipy.special.erf(x * np.float32(np.sqrt(half))))

    def hard_sigmoid(x):
        return np.clip(x / np.float32(6) + np.float32(0.5), 0, 1)

    def softmax(x):
        x -= x.max(axis=-1, keepdims=True)
        np.exp(x, out=x)
        x /= x.sum(axis=-1, keepdims=True)
        return x

    by_name = {
        "linear": lambda x: x,
        "relu": relu,
        "sigmoid": sigmoid,
        "tanh": lambda x: np.tanh(x, out=x),
        "softmax": softmax,
        "softplus": softplus,
        "softsign": lambda x: x / (np.abs(x) + np.float32(1)),
        "elu": elu,
        "selu": selu,
        "silu": lambda x: x * scipy.special.expit(x),
        "gelu": gelu,
        "exponential": lambda x: np.exp(x, out=x),
        "relu6": lambda x: np.clip(x, 0, 6, out=x),
        "leaky_relu": lambda x: np.where(x >= 0, x, np.float32(0.2) * x),
        "hard_sigmoid": hard_sigmoid,
        "hard_silu": lambda x: x * hard_sigmoid(x),
        "mish": lambda x: x * np.tanh(softplus(x.copy())),
        "hard_tanh": lambda x: np.clip(x, -1, 1, out=x),
        "log_sigmoid": lambda x: -np.logaddexp(-x, np.float32(0)),
        "tanh_shrink": lambda x: x - np.tanh(x),
    }
    # Keras gained some of these after our floor (3.6 has no hard_tanh,
    # log_sigmoid or tanh_shrink): one this Keras lacks has no entry.
    return {
        getattr(a, name): function
        for name, function in by_name.items()
        if hasattr(a, name)
    }
