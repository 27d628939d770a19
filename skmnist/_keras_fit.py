"""Training with ``keras.Model.fit``, for what the compiled epochs do not cover.

:mod:`skmnist._training` trains in whole compiled epochs; fits whose callbacks act
on single batches (``TerminateOnNaN``, ``ModelCheckpoint``, ...) or whose
``fit__*`` arguments it does not implement go through Keras's own loop here.
"""

import contextlib

import keras
import numpy as np

from skmnist._compat import build_training_state
from skmnist._random import draw_seeds, isolated_random_state


def fit_with_keras_loop(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None,
    *,
    random_state: np.random.RandomState,
    seeded: bool,
    fit_args: dict,
) -> None:
    """Train with ``Model.fit``, for what the compiled epochs do not cover.

    Keras reshuffles every epoch, but on TensorFlow with a constant seed (see
    ``isolated_random_state``); shuffling once more here with ``random_state``
    makes each epoch's order depend on it.
    """
    # Built now rather than by Model.fit, which on JAX draws a shuffle to
    # build a new model's metrics: the first fit would differ from later ones.
    build_training_state(model, x, y)
    if fit_args["shuffle"]:
        order = random_state.permutation(len(x))
        x, y = x[order], y[order]
        if sample_weight is not None:
            sample_weight = sample_weight[order]
    randomness = (
        isolated_random_state(draw_seeds(random_state, 1)[0])
        if seeded
        else contextlib.nullcontext()
    )
    with randomness:
        model.fit(x=x, y=y, sample_weight=sample_weight, **fit_args)
