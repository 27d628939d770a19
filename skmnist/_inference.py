"""The compiled forward pass behind ``predict`` and ``predict_proba``.

``Model.predict`` traces a function per model and dispatches per batch through
Keras's input pipeline, which for one small image costs far more than the
arithmetic. Here one compiled function per architecture serves every model of
it, reading the weights of the model at each call, and inputs are padded to a
power of two rows, so that the number of compiled programs stays bounded
whatever the batch sizes (the cache is bounded too, see :mod:`skmnist._caches`).
"""

from collections import OrderedDict
from collections.abc import Callable, Hashable

import keras
import numpy as np

from skmnist._caches import lock, quiet_expected_retracing_warnings, remember
from skmnist._compat import call_concrete_function

_inference_functions: "OrderedDict[Hashable, Callable]" = OrderedDict()


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
