"""Re-usable compiled Keras models, so that repeated fits do not leak memory.

Every newly built Keras model traces its own training and inference functions, and
on TensorFlow those traces stay in the process-wide function library even after
``keras.backend.clear_session()``: a grid search of a few hundred fits grows by
megabytes per fit and slows down as the library grows. A compiled model of the
same architecture and compile settings can instead train any set of weights: copy
the weights and optimizer state in, train, copy them back out. That is what a
*workspace* is. Estimators keep their own, never-traced Keras model as fitted
state, so two estimators never share weights, and the number of traced functions
is bounded by the number of distinct architectures in use.
"""

import gc
import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager

import keras
import numpy as np

# Enough for a typical grid over a few architectures; the least recently used
# workspace is dropped beyond this.
_MAX_WORKSPACES = 16

# A full garbage collection costs about 0.1 s with TensorFlow loaded; every tenth
# model build keeps the garbage to about ten models' worth of weights.
_COLLECT_EVERY_N_BUILDS = 10

_lock = threading.Lock()
_builds = itertools.count(1)
_idle_workspaces: "OrderedDict[Hashable, keras.Model]" = OrderedDict()
_inference_functions: "OrderedDict[Hashable, Callable]" = OrderedDict()


def _remember(cache: OrderedDict, key: Hashable, value) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _MAX_WORKSPACES:
        cache.popitem(last=False)


@contextmanager
def borrowed_workspace(
    key: Hashable, build: Callable[[], keras.Model]
) -> Iterator[keras.Model]:
    """Lend a compiled model for ``key`` to one caller at a time.

    The workspace is taken out of the cache while in use, so a concurrent fit of
    the same architecture builds a workspace of its own instead of sharing.
    """
    with _lock:
        workspace = _idle_workspaces.pop(key, None)
    if workspace is None:
        workspace = build()
    try:
        yield workspace
    finally:
        with _lock:
            if key not in _idle_workspaces:
                _remember(_idle_workspaces, key, workspace)


def copy_training_state(source: keras.Model, target: keras.Model) -> None:
    """Copy weights, seed-generator states and optimizer state between two models
    built from the same architecture and compile settings."""
    _assign_all(source.variables, target.variables)
    _assign_all(source.optimizer.variables, target.optimizer.variables)


class CompletedEpochs(keras.callbacks.Callback):
    """Keep each completed epoch: copy the training state of the model being
    trained (a workspace) into ``target`` and record the epoch's logs.

    If training stops part-way, by an error or Ctrl-C, ``target`` holds the state
    after the last completed epoch and ``history`` the logs up to it: call
    :meth:`settle` then, in case the stop came in the middle of a copy.
    """

    def __init__(self, target: keras.Model):
        super().__init__()
        self.target = target
        self.history: dict[str, list[float]] = {}
        self._unsettled_logs = None

    def on_epoch_end(self, epoch, logs=None):
        self._unsettled_logs = dict(logs or {})
        self.settle()

    def settle(self) -> None:
        """Finish keeping the epoch whose copy was interrupted, if any."""
        if self._unsettled_logs is None:
            return
        copy_training_state(self.model, self.target)
        # Built aside and swapped in, so that an interrupted settle can be redone
        # without logging the epoch twice.
        history = {name: list(values) for name, values in self.history.items()}
        for name, value in self._unsettled_logs.items():
            history.setdefault(name, []).append(float(value))
        self.history, self._unsettled_logs = history, None

    @property
    def epochs(self) -> int:
        """Number of epochs kept so far."""
        return len(next(iter(self.history.values()), []))


def build_optimizer(model: keras.Model) -> None:
    """Create the optimizer's slot variables now rather than on the first step, so
    that training state can be copied before any training happened."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def collect_discarded_models() -> None:
    """Free the Keras models of estimators that were refitted or deleted.

    Keras models hold reference cycles, so a discarded model waits for Python's
    full garbage collection, which a TensorFlow process rarely reaches on its own:
    a grid search would keep every model it ever built. Called once per model
    build, this collects every ``_COLLECT_EVERY_N_BUILDS`` builds.
    """
    if next(_builds) % _COLLECT_EVERY_N_BUILDS == 0:
        gc.collect()


def _assign_all(sources: Sequence, targets: Sequence) -> None:
    if len(sources) != len(targets):
        raise RuntimeError(
            "Cannot copy training state between models of different structure "
            f"({len(sources)} vs {len(targets)} variables)."
        )
    for source, target in zip(sources, targets, strict=True):
        target.assign(source.value)


def forward_pass(
    key: Hashable, build_template: Callable[[], keras.Model]
) -> "CompiledForwardPass":
    """The compiled forward pass for the architecture ``key``, shared by every
    model of that key; ``build_template`` makes a model of it the first time."""
    with _lock:
        forward = _inference_functions.get(key)
    if forward is None:
        forward = CompiledForwardPass(build_template())
        with _lock:
            _remember(_inference_functions, key, forward)
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


class _ExpectedRetracing(logging.Filter):
    """Drop TensorFlow's "frequent retracing" warning about skmnist's functions.

    TensorFlow counts traces per Python code object, so the functions that every
    workspace and every batch shape compile once look to it like one function
    retraced again and again; their number is bounded by the caches here.
    """

    NAMES = ("_TensorFlowEpochs", "_compile_forward_pass")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            "triggered tf.function retracing" in message
            and any(name in message for name in self.NAMES)
        )


def quiet_expected_retracing_warnings() -> None:
    """Install :class:`_ExpectedRetracing` on TensorFlow's logger, once."""
    import tensorflow as tf

    logger = tf.get_logger()
    if not any(isinstance(f, _ExpectedRetracing) for f in logger.filters):
        logger.addFilter(_ExpectedRetracing())


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
            with _lock:
                if x.shape not in self._concrete:
                    self._concrete[x.shape] = self._function.get_concrete_function(
                        [v.value for v in trainable],
                        [v.value for v in non_trainable],
                        tf.TensorSpec(x.shape, x.dtype),
                    )
                concrete = self._concrete[x.shape]
        handles = [v.value.handle for v in (*trainable, *non_trainable)]
        # The flat call skips the structured-argument binding of concrete(...).
        outputs = concrete._call_flat(
            [*handles, tf.constant(x)], concrete.captured_inputs
        )
        return outputs.numpy()
