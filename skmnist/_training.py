"""Training a compiled Keras model on arrays, behind one entry point: :func:`train`.

:func:`train` trains in whole compiled epochs, one compiled call per epoch rather
than per mini-batch, or, for what those do not cover, with ``Model.fit``
(:mod:`skmnist._keras_fit`).

For a network as small as the MNIST perceptron, ``keras.Model.fit`` spends more
time dispatching one compiled step per mini-batch and feeding it through its input
pipeline than doing arithmetic. Here the training data is put on the device once
per fit, each epoch's shuffled order is a small index array, and one compiled loop
gathers every mini-batch and runs Keras's own ``train_step`` on it, so the loss,
metrics, sample weights and optimizer behave as in ``Model.fit`` (exactly so but
for floating-point rounding; skmnist's own ``Dropout`` draws the same masks with
and without XLA, see :mod:`skmnist._dropout`). The
epoch loop around it follows ``Model.fit`` too: callbacks, ``validation_data``,
``validation_freq``, ``stop_training`` and the returned ``History``. As with
Keras's ``steps_per_execution``, the batch-level callback hooks run once per
compiled call, here once per epoch; callbacks that need every batch are trained
with ``Model.fit`` instead (see :func:`runs_compiled_epochs`).
"""

import contextlib
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from numbers import Integral

import keras
import numpy as np

from skmnist._caches import quiet_expected_retracing_warnings
from skmnist._compat import (
    assign_values,
    build_training_state,
    masked_metrics_update,
)
from skmnist._inference import CompiledForwardPass
from skmnist._interrupts import deferred_interrupts, raise_if_interrupted
from skmnist._keras_fit import fit_with_keras_loop
from skmnist._packing import aside_from_session, session_of_this_fit

# Training data smaller than this is padded to it on the device (see padded_rows).
_MIN_PADDED_ROWS = 1024

# On TensorFlow, a fit of fewer batches than this (over all its epochs) runs as
# a plain graph, traced in about 0.3 s, rather than as an XLA program, compiled
# in about 1.5 s on a 2-core CPU. The graph's executor costs one to two
# milliseconds more per batch, so below this a fit that compiles loses less
# than XLA's compile would cost it (a new architecture's first fit, or a batch
# size not used before), and the fits of a small search, which compile once
# per architecture and batch size, about break even (measured on a 4 x 5-fold
# search of 126- and 252-batch fits: 16 s as graphs, 17 s as XLA programs);
# the seed's 2,345-batch fit runs as XLA. The choice depends on the fit's own
# size only, so a fit is reproducible whatever ran before it in the process.
_XLA_MIN_BATCHES = 500

# Model.fit arguments that the compiled epoch loop implements.
_SUPPORTED_FIT_ARGUMENTS = frozenset(
    {
        "batch_size",
        "epochs",
        "initial_epoch",
        "verbose",
        "callbacks",
        "shuffle",
        "validation_data",
        "validation_batch_size",
        "validation_freq",
    }
)

_BATCH_HOOKS = (
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
)


def train(
    runner: "_EpochRunner",
    x: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
    class_weight: np.ndarray | None = None,
    *,
    random_state: np.random.RandomState,
    seeded: bool,
    fit_args: dict,
) -> None:
    """Train ``runner.model`` on ``(x, y)`` with ``Model.fit``'s ``fit_args``.

    Parameters
    ----------
    runner : epoch runner
        The compiled model to train, from :func:`epoch_runner`.
    x, y : ndarray
        Features and encoded labels.
    sample_weight : ndarray of shape (n_samples,), default=None
        The caller's weight of each row.
    class_weight : ndarray of shape (n_samples,), default=None
        Each row's weight for its class; as ``Model.fit(class_weight=...)``
        does, the caller gives it for the training rows, never for validation.
    random_state : numpy.random.RandomState
        Draws the order of the samples in every epoch (and, with ``seeded``, the
        seed of ``Model.fit``'s own randomness).
    seeded : bool
        Whether this training must be reproducible: ``Model.fit`` then runs with
        the process's random generators seeded from ``random_state`` (see
        :func:`skmnist._random.isolated_random_state`).
    fit_args : dict
        ``Model.fit``'s keyword arguments, without ``validation_split``: the
        estimator holds out its validation rows itself.
    """
    if class_weight is not None:
        if sample_weight is not None:
            class_weight = class_weight * sample_weight
        sample_weight = class_weight
    if runs_compiled_epochs(fit_args):
        fit_compiled_epochs(
            runner, x, y, sample_weight, random_state=random_state, **fit_args
        )
    else:
        with aside_from_session():
            fit_with_keras_loop(
                runner.model,
                x,
                y,
                sample_weight,
                random_state=random_state,
                seeded=seeded,
                fit_args=fit_args,
                xla_min_batches=_XLA_MIN_BATCHES,
            )


def is_validation_epoch(epoch: int, validation_freq: int | Collection[int]) -> bool:
    """Keras's rule for ``validation_freq``: whether 0-based ``epoch`` is validated.

    An integer ``n`` validates every ``n``-th epoch; a collection lists the
    1-based epochs to validate.
    """
    epoch += 1  # users count epochs from one
    if isinstance(validation_freq, Integral):
        return epoch % validation_freq == 0
    if isinstance(validation_freq, Collection) and not isinstance(validation_freq, str):
        return epoch in validation_freq
    raise ValueError(
        "Expected `validation_freq` to be a list or int. "
        f"Received: validation_freq={validation_freq} of the "
        f"type {type(validation_freq)}."
    )


def runs_compiled_epochs(fit_arguments: dict) -> bool:
    """Whether :func:`fit_compiled_epochs` can stand in for ``Model.fit`` here.

    It can on the TensorFlow and JAX backends, for the arguments it implements,
    unless a callback acts on individual batches (``ModelCheckpoint``,
    ``TerminateOnNaN``, ``TensorBoard``, a ``LambdaCallback`` with a batch hook,
    ...).
    """
    return (
        keras.backend.backend() in _EPOCH_RUNNERS
        and set(fit_arguments) <= _SUPPORTED_FIT_ARGUMENTS
        and not any(
            _acts_on_batches(callback)
            for callback in fit_arguments.get("callbacks") or ()
        )
    )


def _acts_on_batches(callback: keras.callbacks.Callback) -> bool:
    # Through the instance: LambdaCallback sets its hooks on the instance.
    return any(
        getattr(getattr(callback, hook), "__func__", None)
        is not getattr(keras.callbacks.Callback, hook)
        for hook in _BATCH_HOOKS
    )


def epoch_runner(model: keras.Model) -> "_EpochRunner":
    """The compiled epoch functions for a compiled ``model`` on this backend."""
    return _EPOCH_RUNNERS.get(keras.backend.backend(), _EpochRunner)(model)


def fit_compiled_epochs(
    runner,
    x: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    random_state: np.random.RandomState,
    batch_size: int,
    epochs: int = 1,
    initial_epoch: int = 0,
    verbose: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    shuffle: bool = True,
    validation_data: tuple | None = None,
    validation_batch_size: int | None = None,
    validation_freq: int | list = 1,
) -> keras.callbacks.History:
    """Train ``runner.model`` as ``Model.fit`` does, one compiled call per epoch.

    The arguments are those of ``Model.fit``, except ``random_state``, which
    draws each epoch's order of the samples when ``shuffle`` is True.
    """
    model = runner.model
    n_samples = len(x)
    # A batch larger than the data is all of it, as in Model.fit; clamped so
    # that the compiled programs' int32 row counts hold any batch size.
    batch_size = max(1, min(batch_size, n_samples))
    steps = math.ceil(n_samples / batch_size)
    build_training_state(model, x, y)
    data = runner.to_device(
        x, y, sample_weight, batches=steps * max(epochs - initial_epoch, 0)
    )
    callbacks = keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
        model=model,
    )
    model.stop_training = False
    callbacks.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        callbacks.on_train_batch_begin(0)
        order = random_state.permutation(n_samples) if shuffle else np.arange(n_samples)
        # A Ctrl-C is held back during the epoch's call (and its validation's)
        # and raised once the epoch is kept, as one a gc callback swallowed
        # is: raised inside
        # TensorFlow's Python code (tracing, flattening the arguments), it was
        # now and then printed by TensorFlow's C++ code as a SystemError's
        # traceback before the command's one line. The epoch runs in one call
        # into TensorFlow or XLA, which no signal interrupts anyway.
        with deferred_interrupts():
            runner.run_epoch(data, order.astype(np.int32), batch_size)
        logs = {
            name: float(value) for name, value in model.get_metrics_result().items()
        }
        callbacks.on_train_batch_end(steps - 1, logs)
        if validation_data is not None and is_validation_epoch(epoch, validation_freq):
            with deferred_interrupts():  # its first call traces, as the epoch's
                logs.update(
                    _validation_logs(
                        runner,
                        validation_data,
                        validation_batch_size or batch_size,
                        callbacks,
                    )
                )
        callbacks.on_epoch_end(epoch, logs)
        raise_if_interrupted()  # (CompletedEpochs raises it first, when used)
        if model.stop_training:
            break
    model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(logs=logs)
    return model.history


def _validation_logs(runner, validation_data, batch_size, callbacks) -> dict:
    """``val_*`` logs as ``Model.evaluate`` gives them, from one compiled forward
    pass over the validation rows: ``evaluate`` would compile its step again for
    every new number of validation rows (their last batch) on JAX, and for the
    XLA tier on TensorFlow. The loss and metrics are Keras's own, computed once
    on all the rows, which equals ``evaluate``'s mean over its batches; the L2
    penalty counts as it does for a batch of ``batch_size`` rows, so that
    ``val_loss`` compares with ``loss``."""
    model = runner.model
    val_x, val_y, val_sample_weight = keras.utils.unpack_x_y_sample_weight(
        tuple(validation_data)
    )
    callbacks.on_test_begin()
    callbacks.on_test_batch_begin(0)
    val_pred = runner.predict(np.asarray(val_x, dtype=np.float32))
    model.reset_metrics()
    with model_penalty_rows(model, batch_size):
        loss = model.compute_loss(
            y=val_y, y_pred=val_pred, sample_weight=val_sample_weight, training=False
        )
    logs = {
        name: float(value)
        for name, value in model.compute_metrics(
            val_x, val_y, val_pred, sample_weight=val_sample_weight
        ).items()
    }
    logs["loss"] = float(loss)
    callbacks.on_test_batch_end(0, logs)
    callbacks.on_test_end(logs)
    return {f"val_{name}": value for name, value in logs.items()}


def model_penalty_rows(model, rows):
    """Where the model has an L2 penalty (:class:`skmnist._network.MLPNetwork`),
    divide it by ``rows`` inside."""
    penalty_rows = getattr(model, "penalty_rows", None)
    return contextlib.nullcontext() if penalty_rows is None else penalty_rows(rows)


@dataclass(frozen=True)
class OnDevice:
    """A fit's training arrays on the device, and how its epochs run."""

    arrays: tuple
    # Padded to padded_rows() and trained by XLA programs, or as they are by a
    # TensorFlow graph.
    xla: bool


class _EpochRunner:
    """A compiled model and its compiled epochs; none on backends without them."""

    def __init__(self, model: keras.Model):
        self.model = model
        # Traces of the compiled functions so far: each is one compiled program.
        self.traces = 0
        # The forward pass of validation: the estimator sets the one its
        # architecture shares with predict; otherwise one of this model's own.
        self.forward = None
        # What a fit's epochs share with other fits' in a packing session
        # (skmnist._packing): the estimator sets its training key; None trains
        # alone.
        self.pack_group = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs for ``x``, in inference mode."""
        if self.forward is None:
            self.forward = CompiledForwardPass(self.model)
        return self.forward(self.model, x)

    def to_device(self, *arrays, batches: int) -> OnDevice:
        """The training arrays (those not None) on the device, for a fit of
        ``batches`` batches in all."""
        raise NotImplementedError

    def run_epoch(self, data: OnDevice, order: np.ndarray, batch_size: int) -> None:
        raise NotImplementedError


class _TensorFlowEpochs(_EpochRunner):
    """Epochs as ``tf.while_loop``\\ s over Keras's ``train_step``, in one of two
    tiers chosen by the size of the fit (see ``_XLA_MIN_BATCHES``).

    Small fits run a plain TensorFlow graph whose shapes, batch size and number
    of rows included, are left dynamic: one trace per architecture serves every
    fit, the last, smaller batch included.

    Large fits run XLA programs. XLA compiles a program per input shape, so the
    data goes to the device padded to :func:`padded_rows` rows and the loop takes
    the number of full batches as a tensor: one program per block size and batch
    size serves every number of samples up to it. The padding rows are never
    gathered. The last, smaller batch runs as one step of the graph tier.
    """

    def __init__(self, model: keras.Model):
        super().__init__(model)
        quiet_expected_retracing_warnings()
        self._full_batch_loops = {}
        self._graph_epochs = {}

    def to_device(self, *arrays, batches: int) -> OnDevice:
        import tensorflow as tf

        arrays = tuple(a for a in arrays if a is not None)
        xla = batches >= _XLA_MIN_BATCHES
        if xla:
            rows = padded_rows(len(arrays[0]))
            arrays = tuple(_pad_rows(a, rows) for a in arrays)
        return OnDevice(tuple(tf.convert_to_tensor(a) for a in arrays), xla)

    def run_epoch(self, data: OnDevice, order: np.ndarray, batch_size: int) -> None:
        import tensorflow as tf

        arrays = data.arrays
        n_full = len(order) // batch_size * batch_size if data.xla else 0
        if n_full:
            loop = self._full_batch_loop(arrays, batch_size)
            # Padded with row 0, which the loop never reaches.
            order_on_device = _pad_rows(order[:n_full], arrays[0].shape[0])
            n_batches = tf.constant(n_full // batch_size)
            loop(*arrays, tf.constant(order_on_device), n_batches)
        if n_full < len(order):
            self._graph_epoch(arrays)(
                *arrays, tf.constant(order[n_full:]), tf.constant(batch_size)
            )

    def _full_batch_loop(self, arrays: tuple, batch_size: int):
        import tensorflow as tf

        # Fully static shapes: one trace is one XLA program.
        signature = tuple(tf.TensorSpec(a.shape, a.dtype) for a in arrays)
        key = (batch_size, *signature)
        if key not in self._full_batch_loops:
            model = self.model

            def train_full_batches(*arrays_and_order):
                *arrays, order, n_batches = arrays_and_order
                self.traces += 1

                def step(i):
                    rows = tf.slice(order, [i * batch_size], [batch_size])
                    model.train_step(tuple(tf.gather(a, rows) for a in arrays))
                    return (i + 1,)

                tf.while_loop(lambda i: i < n_batches, step, (tf.constant(0),))

            rows = signature[0].shape[0]
            self._full_batch_loops[key] = tf.function(
                train_full_batches,
                input_signature=[
                    *signature,
                    tf.TensorSpec((rows,), tf.int32),
                    tf.TensorSpec((), tf.int32),
                ],
                jit_compile=True,
            )
        return self._full_batch_loops[key]

    def _graph_epoch(self, arrays: tuple):
        """The batches of ``order`` in turn, the last one as large as is left."""
        import tensorflow as tf

        signature = tuple(tf.TensorSpec((None, *a.shape[1:]), a.dtype) for a in arrays)
        if signature not in self._graph_epochs:
            model = self.model

            def train_batches(*arrays_and_order):
                *arrays, order, batch_size = arrays_and_order
                self.traces += 1
                n_rows = tf.shape(order)[0]

                def step(start):
                    rows = order[start : tf.minimum(start + batch_size, n_rows)]
                    model.train_step(tuple(tf.gather(a, rows) for a in arrays))
                    return (start + batch_size,)

                # One batch at a time: each reads the weights the last one wrote.
                tf.while_loop(
                    lambda start: start < n_rows,
                    step,
                    (tf.constant(0),),
                    parallel_iterations=1,
                )

            self._graph_epochs[signature] = tf.function(
                train_batches,
                input_signature=[
                    *signature,
                    tf.TensorSpec((None,), tf.int32),
                    tf.TensorSpec((), tf.int32),
                ],
                jit_compile=False,
            )
        return self._graph_epochs[signature]


class _JaxEpochs(_EpochRunner):
    """Epochs as jitted ``lax.fori_loop``\\ s over Keras's stateless ``train_step``.

    The data goes to the device padded to :func:`padded_rows` rows, and the
    number of rows is a traced value, so one program per block size and batch
    size serves every number of samples up to it. Each step trains the rows of
    its batch that exist: all of a full batch, the first rows of the last one
    (:func:`_masked_train_step`), so the program traces and compiles Keras's
    step once. The model's variables are read before and written back after
    each epoch, so between epochs (where callbacks run) the Keras model is up
    to date.
    """

    def __init__(self, model: keras.Model):
        super().__init__(model)
        self._epochs = {}
        self._epoch_functions = {}
        # Known once the model's metrics are built (by the first epoch); None
        # where Keras's internals moved, or a loss or metric is the user's own:
        # full batches then run Keras's train_step, and the last batch is
        # trained on its rows alone, compiled once per size of it.
        self._update_metrics = self._metrics_checked = None
        self._last_batch = None

    def to_device(self, *arrays, batches: int) -> OnDevice:
        import jax.numpy as jnp

        rows = padded_rows(len(arrays[0]))
        padded = (jnp.asarray(_pad_rows(a, rows)) for a in arrays if a is not None)
        return OnDevice(tuple(padded), xla=True)

    def run_epoch(self, data: OnDevice, order: np.ndarray, batch_size: int) -> None:
        data = data.arrays
        model = self.model
        variables = (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )
        state = tuple([v.value for v in group] for group in variables)
        if not self._metrics_checked:
            self._update_metrics = masked_metrics_update(model)
            self._metrics_checked = True
        n_rows = len(order)
        unmasked_rows = order[n_rows // batch_size * batch_size :]
        if self._update_metrics is None:
            n_rows -= len(unmasked_rows)
        # Room for the last batch's slice after any number of full batches;
        # padded with row 0, which only masked-out rows gather.
        order = _pad_rows(order, data[0].shape[0] + batch_size)
        session = session_of_this_fit()
        if session is not None and self.pack_group is not None:
            state = session.train_epoch(
                (self.pack_group, batch_size, *(a.shape for a in data)),
                self._epoch_function(batch_size),
                self._epoch(batch_size),
                state,
                data,
                order,
                n_rows,
            )
        else:
            state = self._epoch(batch_size)(state, data, order, np.int32(n_rows))
        if self._update_metrics is None and len(unmasked_rows):
            state = self._train_last_batch(state, data, unmasked_rows)
        for group, values in zip(variables, state, strict=True):
            assign_values(group, values)

    def _epoch(self, batch_size: int):
        if batch_size not in self._epochs:
            import jax

            self._epochs[batch_size] = jax.jit(self._epoch_function(batch_size))
        return self._epochs[batch_size]

    def _epoch_function(self, batch_size: int):
        """``(state, data, order, n_rows) -> state``: an epoch, uncompiled."""
        if batch_size not in self._epoch_functions:
            import jax
            import jax.numpy as jnp

            model = self.model

            def batch(data, order, start):
                rows = jax.lax.dynamic_slice(order, (start,), (batch_size,))
                return tuple(a[rows] for a in data)

            def train_epoch(state, data, order, n_rows):
                self.traces += 1
                update_metrics = self._update_metrics

                def step(i, state):
                    start = i * batch_size
                    if update_metrics is None:  # full batches only
                        return model.train_step(state, batch(data, order, start))[1]
                    rows = jnp.minimum(batch_size, n_rows - start)
                    return _masked_train_step(
                        model, update_metrics, state, batch(data, order, start), rows
                    )

                n_batches = (n_rows + batch_size - 1) // batch_size
                return jax.lax.fori_loop(0, n_batches, step, state)

            self._epoch_functions[batch_size] = train_epoch
        return self._epoch_functions[batch_size]

    def _train_last_batch(self, state, data, rows):
        import jax

        if self._last_batch is None:
            model = self.model

            def train_rows(state, data, rows):
                self.traces += 1
                return model.train_step(state, tuple(a[rows] for a in data))[1]

            self._last_batch = jax.jit(train_rows)
        return self._last_batch(state, data, rows)


def _masked_train_step(model, update_metrics, state, data, rows):
    """Keras's JAX ``train_step`` on the first ``rows`` rows of a full batch.

    The same update as ``train_step`` on those rows alone (on a full batch, the
    same arithmetic, with weights of exactly 1): the other rows get
    sample weight 0 in the loss, its metrics and the loss tracker, and the
    loss's weights are scaled by ``batch / rows`` where Keras averages the loss
    over the batch's rows (as Keras does for masked rows), so the mean is over
    the rows that count.
    """
    import jax
    import jax.numpy as jnp

    trainable, non_trainable, optimizer_variables, metrics_variables = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    batch_size = x.shape[0]
    rows = rows.astype(jnp.float32)
    mask = (jnp.arange(batch_size) < rows).astype(jnp.float32)
    weight = mask if sample_weight is None else sample_weight * mask
    loss_weight = weight
    if _averages_over_batch(model):
        loss_weight = weight * (batch_size / rows)
    # The L2 penalty too is divided by the rows that count.
    with model_penalty_rows(model, rows):
        (_, (loss, y_pred, non_trainable, metrics_variables)), gradients = (
            jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)(
                trainable,
                non_trainable,
                metrics_variables,
                x,
                y,
                loss_weight,
                training=True,
                optimizer_variables=optimizer_variables,
            )
        )
    trainable, optimizer_variables = model.optimizer.stateless_apply(
        optimizer_variables, gradients, trainable
    )
    with keras.StatelessScope(
        state_mapping=list(zip(model.metrics_variables, metrics_variables, strict=True))
    ) as scope:
        update_metrics(loss, rows, y, y_pred, mask, weight)
    metrics_variables = [
        _current_value(scope, variable) for variable in model.metrics_variables
    ]
    return trainable, non_trainable, optimizer_variables, metrics_variables


def _current_value(scope, variable):
    value = scope.get_current_value(variable)
    return variable.value if value is None else value


def _averages_over_batch(model: keras.Model) -> bool:
    # Losses given by name or as functions are wrapped with Keras's default
    # reduction, "sum_over_batch_size".
    loss = model.loss
    reduction = getattr(loss, "reduction", "sum_over_batch_size")
    return reduction in ("sum_over_batch_size", "mean")


def padded_rows(n_samples: int) -> int:
    """The rows training data of ``n_samples`` takes on the device: the next
    power of two, at least ``_MIN_PADDED_ROWS``, so that a handful of compiled
    programs serve every number of samples."""
    return max(_MIN_PADDED_ROWS, 1 << (n_samples - 1).bit_length())


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` with zero rows appended up to ``rows`` rows."""
    if len(array) == rows:
        return array
    padded = np.zeros((rows, *array.shape[1:]), array.dtype)
    padded[: len(array)] = array
    return padded


_EPOCH_RUNNERS = {"tensorflow": _TensorFlowEpochs, "jax": _JaxEpochs}
