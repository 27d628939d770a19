"""scikeras without TensorFlow where Keras runs on another backend.

scikeras's seeding helper, ``scikeras.utils.random_state``, imports TensorFlow
whenever it is installed, whatever Keras's backend, and falls back to no-ops for
TensorFlow's seed where TensorFlow is missing. Under JAX, TensorFlow's seed is
nobody's (skmnist seeds Keras itself, see :mod:`skmnist._random`), and importing
TensorFlow is more than half of a process's start-up: every worker process of
``GridSearchCV(n_jobs=...)`` pays it. Importing this module first imports the
helper as if TensorFlow were absent, under backends other than TensorFlow;
TensorFlow stays importable for the rest of the process.
"""

import importlib
import sys

import keras

_HELPER = "scikeras.utils.random_state"


def _import_helper_without_tensorflow() -> None:
    if (
        keras.backend.backend() == "tensorflow"
        or _HELPER in sys.modules
        or "tensorflow" in sys.modules
    ):
        return
    # A None entry makes `import tensorflow` raise ImportError.
    sys.modules["tensorflow"] = None
    try:
        importlib.import_module(_HELPER)
    finally:
        del sys.modules["tensorflow"]


_import_helper_without_tensorflow()
