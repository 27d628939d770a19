"""Seeding one fit without touching the random state of the rest of the process."""

import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from skmnist._compat import tensorflow_global_seed

# Seeds handed to Keras must fit in a signed 32-bit integer on every backend.
_MAX_SEED = 2**31 - 1
_TENSORFLOW_SEED = 1


def draw_seeds(random_state: np.random.RandomState, n: int) -> list[int]:
    """Draw ``n`` independent integer seeds for Keras from ``random_state``."""
    return [int(seed) for seed in random_state.randint(1, _MAX_SEED, size=n)]


@contextmanager
def isolated_random_state(seed: int) -> Iterator[None]:
    """Seed the generators Keras's ``fit`` draws from, and restore them afterwards.

    ``Model.fit`` shuffles with ``np.random.permutation`` on the JAX and NumPy
    backends, seeded here with ``seed``. On TensorFlow it shuffles with
    ``tf.random.shuffle``, whose seed TensorFlow bakes into every traced function:
    a different global seed per fit would add new functions to the process-wide
    function library at every fit. TensorFlow therefore gets one constant seed, and
    callers vary the data order themselves (see ``MNISTClassifier``). Unlike
    scikeras, TensorFlow's op determinism is left alone: it is a process-wide switch
    that, once on, makes every later unseeded random op fail.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    tf_seed = tensorflow_global_seed()
    random.seed(seed)
    np.random.seed(seed)
    _set_tensorflow_global_seed(_TENSORFLOW_SEED)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        _set_tensorflow_global_seed(tf_seed)


def _loaded_tensorflow():
    # Only look at TensorFlow if something already imported it: the JAX backend
    # must not pay for (or require) a TensorFlow import.
    return sys.modules.get("tensorflow")


def _set_tensorflow_global_seed(seed: int | None) -> None:
    tf = _loaded_tensorflow()
    if tf is not None:
        tf.random.set_seed(seed)
