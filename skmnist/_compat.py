"""The one door to private APIs of Keras, TensorFlow, scikeras, joblib and scikit-learn.

Private parts of a library change without notice, so every use of one is
written here, and nowhere else in skmnist (``tests/test_compat.py`` checks the
imports). Each wrapper falls back to public API where the private one is
missing, so a new release may cost speed, never a crash; ``test_compat`` runs
every fallback and checks it gives what the private path gives. The model is
imbalanced-learn's ``imblearn/utils/_sklearn_compat.py``.

What is small enough to own is not borrowed at all: the validation hold-out and
Keras's rule for ``validation_freq`` are skmnist's own code, in
:mod:`skmnist._training`.

Three private names have no public counterpart, and are re-exported as they are:
scikit-learn's parameter constraints (``Interval``, ``StrOptions``: every
scikit-learn >= 1.2 estimator declares its parameters with them, as
imbalanced-learn does), scikeras's parameter routing (scikeras 0.13 is the last
release, so it will not move) and joblib's dask backend class, which
:mod:`skmnist._dask` extends (see :func:`dask_distributed_backend`).
"""

import contextlib
import functools
import importlib
import inspect
import sys
import threading
import warnings
from collections.abc import Callable, Iterator

from sklearn.utils._param_validation import (
    Hidden,
    Interval,
    StrOptions,
    validate_parameter_constraints,
    validate_params,
)

# scikeras's helpers, imported on first use: scikeras imports Keras, and so
# TensorFlow, which PixelScaler, the dask helpers and the CLI must not pay for.
_SCIKERAS_NAMES = {
    "get_loss_class_function_or_string": ("scikeras._utils", None),
    "get_metric_class": ("scikeras._utils", None),
    "get_optimizer_class": ("scikeras._utils", None),
    "route_params": ("scikeras._utils", None),
    "try_to_convert_strings_to_classes": ("scikeras._utils", None),
    "unflatten_params": ("scikeras._utils", None),
    "is_categorical_crossentropy": (
        "scikeras.utils.transformers",
        "_is_categorical_crossentropy",
    ),
}

__all__ = [
    "Hidden",
    "assign_values",
    "Interval",
    "StrOptions",
    "validate_params",
    "build_training_state",
    "call_concrete_function",
    "dask_distributed_backend",
    "joblib_backend_chosen",
    "keras_serialization_without_tensorflow",
    "masked_metrics_update",
    "output_config",
    "quiet_array_deprecation",
    "restore_output_config",
    "tensorflow_global_seed",
    "validate_estimator_params",
    *_SCIKERAS_NAMES,
]


def __getattr__(name: str):
    if name not in _SCIKERAS_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _SCIKERAS_NAMES[name]
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SCIKERAS_NAMES})


def assign_values(variables, values) -> None:
    """``variable.assign(value)`` for each pair, outside any ``StatelessScope``,
    without the conversion ``assign`` makes of a value that is already a JAX
    array of the variable's shape and dtype (an eager device operation per
    variable: most of the time between two compiled epochs of a small network).

    Keras's private ``Variable._direct_assign`` sets such a value; without it,
    or for any other value or backend, ``assign`` does.
    """
    jax_array = None
    if keras_backend() == "jax":
        import jax

        jax_array = jax.Array
    for variable, value in zip(variables, values, strict=True):
        direct = getattr(variable, "_direct_assign", None)
        if (
            jax_array is not None
            and direct is not None
            and isinstance(value, jax_array)
            and value.shape == tuple(variable.shape)
            and value.dtype == variable.value.dtype
        ):
            direct(value)
        else:
            variable.assign(value)


def keras_backend() -> str:
    import keras

    return keras.backend.backend()


def build_training_state(model, x, y) -> None:
    """Create a compiled Keras model's loss, metric and optimizer variables for
    data like ``(x, y)``, without training and without drawing random numbers.

    Keras's private ``Model._symbolic_build`` does it on symbolic tensors; the
    public fallback computes the loss and metrics of one row eagerly (which
    creates their variables as a first call does) and then resets the metrics.
    Done before training, not by ``Model.fit``'s first batch: on JAX that draws
    a shuffle (from NumPy's global generator) that later fits do not, and
    compiled functions cannot create variables.
    """
    symbolic_build = getattr(model, "_symbolic_build", None)
    if symbolic_build is not None:
        symbolic_build(data_batch=(x[:1], y[:1]))
        return
    x, y = x[:1], y[:1]
    y_pred = model(x, training=False)
    model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
    model.compute_metrics(x, y, y_pred)
    model.reset_metrics()
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def call_concrete_function(concrete, trainable: list, non_trainable: list, x):
    """``concrete(trainable, non_trainable, x)`` for a TensorFlow concrete function
    traced on two lists of ``tf.Variable`` and one tensor.

    Calling it normally binds and converts the structured arguments in Python,
    which costs more than the arithmetic of one image; TensorFlow's private
    ``_call_flat`` with the variables' handles does not. Without it, the call
    is the public one.
    """
    call_flat = getattr(concrete, "_call_flat", None)
    captured = getattr(concrete, "captured_inputs", None)
    if call_flat is None or captured is None:
        return concrete(list(trainable), list(non_trainable), x)
    handles = [v.handle for v in trainable] + [v.handle for v in non_trainable]
    return call_flat([*handles, x], captured)


def read_variable(variable, private: bool = True):
    """The value of the TensorFlow resource variable ``variable`` now, as a
    read-only NumPy array that shares its buffer (nothing is copied).

    TensorFlow's generated ``read_variable_op`` and the tensor's ``_numpy`` do
    what ``tf.raw_ops.ReadVariableOp`` and ``np.asarray`` do through a few more
    layers of Python, some 5 microseconds more a variable: a tenth of the
    one-image prediction that reads them all. ``private=False``, or a
    TensorFlow without them, takes the public path.
    """
    import numpy as np

    read_op, to_numpy = _variable_reader() if private else (None, None)
    if read_op is None:
        import tensorflow as tf

        handle, dtype = variable.handle, variable.dtype
        array = np.asarray(tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype))
    else:
        array = to_numpy(read_op(variable.handle, variable.dtype))
    array.flags.writeable = False
    return array


@functools.cache
def _variable_reader() -> tuple:
    try:
        from tensorflow.python.framework.ops import EagerTensor
        from tensorflow.python.ops.gen_resource_variable_ops import read_variable_op
    except ImportError:
        return None, None
    to_numpy = getattr(EagerTensor, "_numpy", None)
    return (read_variable_op, to_numpy) if to_numpy else (None, None)


def masked_metrics_update(model) -> Callable | None:
    """``update(loss, rows, y, y_pred, mask, sample_weight)``, which updates a
    compiled single-output model's loss tracker and metrics for the ``rows`` rows
    of a batch that ``mask`` (1 or 0 per row) selects, as Keras's
    ``train_step`` updates them for a batch of those rows alone; None where
    Keras's private ``Model._loss_tracker`` or ``CompileMetrics`` lists are
    missing, or where the loss or a metric is the user's own code (the caller
    then trains such a batch on its rows alone).

    Keras weighs each batch's loss by its number of rows and gives its metrics
    (not its weighted metrics) no sample weight at all, so the mask cannot go in
    as a sample weight of ``train_step``. ``sample_weight`` is the batch's
    weights times ``mask``, for the weighted metrics. Call it within a
    ``keras.StatelessScope`` of the metrics' variables.
    """
    try:
        tracker = model._loss_tracker
        compiled = model._compile_metrics
        metrics, weighted_metrics = (
            ((), ())
            if compiled is None
            else (compiled._flat_metrics, compiled._flat_weighted_metrics)
        )
    except AttributeError:
        return None
    # Only Keras's own losses and metrics are known to weigh each row by its
    # sample weight: a function of the user's own may return one value for the
    # whole batch (padding rows included), a Metric subclass may ignore
    # sample_weight, and then the masked rows would count.
    if not all(
        _keras_own(function)
        for function in (model.loss, *metrics, *weighted_metrics)
        if function is not None and not isinstance(function, str)
    ):
        return None

    def update(loss, rows, y, y_pred, mask, sample_weight) -> None:
        tracker.update_state(loss, sample_weight=rows)
        # As CompileMetrics.update_state does for one output.
        for metric in metrics:
            if metric is not None:
                metric.update_state(y, y_pred, sample_weight=mask)
        for metric in weighted_metrics:
            if metric is not None:
                metric.update_state(y, y_pred, sample_weight=sample_weight)

    return update


def _keras_own(function) -> bool:
    """Whether a loss or metric (a function, or an object that may wrap one in
    ``fn`` or ``_fn``, or a list of them in ``metrics``, as Keras's wrappers
    do) is Keras's own code."""
    members = getattr(function, "metrics", None)
    if isinstance(members, list | tuple) and not all(map(_keras_own, members)):
        return False
    wrapped = getattr(function, "fn", None) or getattr(function, "_fn", None)
    if callable(wrapped) and not _keras_own(wrapped):
        return False
    code = function if inspect.isroutine(function) else type(function)
    return (getattr(code, "__module__", None) or "").startswith("keras.")


def tensorflow_global_seed() -> int | None:
    """TensorFlow's global seed (``tf.random.set_seed``), None when unset or when
    TensorFlow was not imported (the JAX backend does not pay for importing it).

    TensorFlow has a setter but no getter: the private eager context holds the
    value. The public fallback reads it back through
    ``tf.compat.v1.random.get_seed``, which reports it modulo ``2**31 - 1``.
    It asks with an operation seed of its own: without one, ``get_seed`` would
    draw the next operation seed (changing the random numbers that follow) and,
    with no global seed under ``enable_op_determinism``, raise.
    """
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    global_seed = _eager_context_global_seed()
    if global_seed is not None:
        return global_seed()
    global_seed, _ = tf.compat.v1.random.get_seed(1)
    if global_seed != _TENSORFLOW_DEFAULT_SEED:
        return global_seed
    # Unset, or set to the very value get_seed reports when unset: only then
    # ask without an operation seed (which draws one if a seed is set).
    try:
        global_seed, _ = tf.compat.v1.random.get_seed(None)
    except RuntimeError:  # op determinism, and no global seed
        return None
    return global_seed


# What tf.compat.v1.random.get_seed reports as the global seed when none is
# set but an operation seed is given (TensorFlow's DEFAULT_GRAPH_SEED).
_TENSORFLOW_DEFAULT_SEED = 87654321


def _eager_context_global_seed() -> Callable[[], int | None] | None:
    try:
        from tensorflow.python.eager import context
    except ImportError:
        return None
    return getattr(context, "global_seed", None)


@contextlib.contextmanager
def keras_serialization_without_tensorflow() -> Iterator[None]:
    """Within, in this thread: Keras's serialization (``get_config``,
    ``get_compile_config``, pickling) does not import TensorFlow where it is not
    imported yet.

    Keras asks whether TensorFlow is installed, importing it, before it
    serializes any object (in case it is a ``tf.TensorShape``): under JAX, three
    seconds of a process's start-up, for a question whose answer cannot matter
    while TensorFlow is not imported, as no TensorFlow object can exist. The
    private lazy module Keras asks answers "not installed" to this thread for
    the duration, while TensorFlow is not imported; other threads, and this one
    afterwards, get the true answer. Without it (Keras moved it), TensorFlow is
    imported, as before.
    """
    if "tensorflow" in sys.modules or _thread_aware_lazy_tensorflow() is None:
        yield
        return
    outer = getattr(_serializing, "without_tensorflow", False)
    _serializing.without_tensorflow = True
    try:
        yield
    finally:
        _serializing.without_tensorflow = outer


# Which threads are inside keras_serialization_without_tensorflow.
_serializing = threading.local()


def _thread_aware_lazy_tensorflow():
    """Keras's lazy ``tensorflow`` module, its ``available`` made to answer False
    inside keras_serialization_without_tensorflow; None where Keras moved it."""
    try:
        from keras.src.utils.module_utils import tensorflow
    except ImportError:
        return None
    if not getattr(type(tensorflow), "_skmnist_thread_aware", False):
        try:
            tensorflow.__class__ = _thread_aware(type(tensorflow))
        except TypeError:
            return None
    return tensorflow


@functools.cache
def _thread_aware(lazy_module: type) -> type:
    available = inspect.getattr_static(lazy_module, "available", None)
    if not isinstance(available, property):
        raise TypeError(f"{lazy_module.__name__}.available is not a property")

    class ThreadAware(lazy_module):
        _skmnist_thread_aware = True

        @property
        def available(self):
            if (
                getattr(_serializing, "without_tensorflow", False)
                and "tensorflow" not in sys.modules
            ):
                return False
            return available.fget(self)

    ThreadAware.__name__ = ThreadAware.__qualname__ = lazy_module.__name__
    return ThreadAware


def dask_distributed_backend() -> type:
    """joblib's dask parallel backend class, for :mod:`skmnist._dask` to extend.

    joblib exports it only under the backend name ``"dask"``, registered on
    first use; its module ``joblib._dask`` is private. The fallback asks
    joblib's backend registry for the class registered under that name.
    """
    try:
        from joblib._dask import DaskDistributedBackend
    except ImportError:
        from joblib import parallel

        if "dask" not in parallel.BACKENDS:
            parallel.EXTERNAL_BACKENDS["dask"]()
        return parallel.BACKENDS["dask"]
    return DaskDistributedBackend


def joblib_backend_chosen() -> bool:
    """Whether the caller chose a joblib backend other than joblib's own
    process and thread pools (``parallel_config(backend="dask")``, or one of
    their own registering): packed searches leave such fits to it.

    ``joblib.parallel.get_active_backend`` is not in joblib's documented API;
    without it, no backend counts as chosen.
    """
    try:
        from joblib.parallel import get_active_backend
    except ImportError:
        return False
    backend, _ = get_active_backend()
    return type(backend).__name__ not in {
        "LokyBackend",
        "MultiprocessingBackend",
        "SequentialBackend",
        "ThreadingBackend",
    }


@contextlib.contextmanager
def quiet_array_deprecation() -> Iterator[None]:
    """Without the NumPy 2 deprecation warning Keras 3.15 on JAX gives reading a
    variable's value (``np.array(variable)``, ``get_weights``, ``get_config``):
    nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "__array__ implementation", DeprecationWarning
        )
        yield


def validate_estimator_params(estimator) -> None:
    """Check ``estimator``'s parameters against its ``_parameter_constraints``,
    raising scikit-learn's ``InvalidParameterError``, as its ``fit`` does first.

    ``BaseEstimator._validate_params`` is private; without it, the same check is
    made with the function it calls, from the module of ``Interval`` and
    ``StrOptions``.
    """
    validate = getattr(estimator, "_validate_params", None)
    if validate is not None:
        validate()
        return
    constraints = getattr(estimator, "_parameter_constraints", None)
    if constraints is not None:
        validate_parameter_constraints(
            constraints,
            estimator.get_params(deep=False),
            caller_name=type(estimator).__name__,
        )


def output_config(estimator) -> dict | None:
    """What ``estimator.set_output`` stored, or None if it was never called.

    scikit-learn keeps it in the private ``_sklearn_output_config`` attribute and
    has no public getter for an estimator's own configuration.
    """
    return vars(estimator).get("_sklearn_output_config")


def restore_output_config(estimator, config: dict) -> None:
    """Give ``estimator`` back the ``set_output`` configuration ``config`` (as
    :func:`output_config` returned it), without touching nested estimators."""
    estimator._sklearn_output_config = dict(config)
