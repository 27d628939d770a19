"""scikeras without TensorFlow where Keras runs on another backend.

scikeras's seeding helper, ``scikeras.utils.random_state``, imports TensorFlow
whenever it is installed, whatever Keras's backend, and falls back to no-ops for
TensorFlow's seed where TensorFlow is missing. Under JAX, TensorFlow's seed is
nobody's (skmnist seeds Keras itself, see :mod:`skmnist._random`), and importing
TensorFlow is more than half of a process's start-up: every worker process of
``GridSearchCV(n_jobs=...)`` pays it. Importing this module first imports the
helper as if TensorFlow were absent, under backends other than TensorFlow;
TensorFlow stays importable for the rest of the process.

scikeras also makes Keras models, losses, metrics and optimizers picklable
(``pickle``, ``copy.deepcopy``) through Keras's serialization, which imports
TensorFlow (see :func:`skmnist._compat.keras_serialization_without_tensorflow`):
under those backends, its hooks run without that import, so that pickling a
fitted estimator (a worker process sending one back) does not pay it either.
"""

import functools
import importlib
import sys

import keras

from skmnist._compat import keras_serialization_without_tensorflow

_HELPER = "scikeras.utils.random_state"

# The hooks scikeras sets on Keras's classes when it is imported.
_PICKLING_HOOKS = (
    (keras.Model, "__reduce__"),
    (keras.Model, "__deepcopy__"),
    (keras.losses.Loss, "__reduce__"),
    (keras.metrics.Metric, "__reduce__"),
    (keras.optimizers.Optimizer, "__reduce__"),
)


def _import_helper_without_tensorflow() -> None:
    if _HELPER in sys.modules or "tensorflow" in sys.modules:
        return
    # A None entry makes `import tensorflow` raise ImportError.
    sys.modules["tensorflow"] = None
    try:
        importlib.import_module(_HELPER)
    finally:
        del sys.modules["tensorflow"]


def _without_tensorflow(hook):
    @functools.wraps(hook)
    def serialize(*args):
        with keras_serialization_without_tensorflow():
            return hook(*args)

    serialize.without_tensorflow = True
    return serialize


def _pickle_without_tensorflow() -> None:
    import scikeras  # noqa: F401 (sets the hooks)

    for cls, name in _PICKLING_HOOKS:
        hook = vars(cls).get(name)
        if hook is not None and not getattr(hook, "without_tensorflow", False):
            setattr(cls, name, _without_tensorflow(hook))


if keras.backend.backend() != "tensorflow":
    _import_helper_without_tensorflow()
    _pickle_without_tensorflow()
