"""Training with ``keras.Model.fit``, for what the compiled epochs do not cover.

:mod:`skmnist._training` trains in whole compiled epochs; fits whose callbacks act
on single batches (``TerminateOnNaN``, ``ModelCheckpoint``, ...) or whose
``fit__*`` arguments it does not implement go through Keras's own loop here.

A callback that does not change training must not change the model either: with
the same ``random_state``, ``Model.fit`` here sees the batches the compiled epochs
see, in the same order. Each epoch takes the next ``random_state.permutation``,
as :func:`skmnist._training.fit_compiled_epochs` draws it, and cuts it into
batches the same way, the last one smaller; Keras's own shuffling is off. The
batches come from a ``keras.utils.PyDataset`` (:class:`_PermutedBatches`), which
gathers one batch at a time, so no epoch's shuffled copy of the data is ever
made.
"""

import contextlib
import math
import threading

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
    xla_min_batches: int | None = None,
) -> keras.callbacks.History:
    """Train with ``Model.fit``, for what the compiled epochs do not cover.

    The batches are those of the compiled epochs (see the module's docstring);
    everything else, callbacks, validation and the returned ``History``
    included, is ``Model.fit``'s. On TensorFlow, ``xla_min_batches`` is the
    size from which the compiled epochs run as XLA programs
    (``skmnist._training._XLA_MIN_BATCHES``): ``Model.fit`` then compiles its
    steps with XLA exactly where they would, since XLA rounds otherwise than a
    graph and, over many batches, training makes much of a last-bit difference.
    None leaves ``Model.fit`` as the model was compiled (on TensorFlow, XLA on
    GPUs only).
    """
    # Built now rather than by Model.fit, which on JAX draws a shuffle to
    # build a new model's metrics: the first fit would differ from later ones.
    build_training_state(model, x, y)
    fit_args = dict(fit_args)
    # Model.fit's default batch size, clamped as the compiled epochs clamp it.
    batch_size = max(1, min(fit_args.get("batch_size") or 32, len(x)))
    batches = _PermutedBatches(
        (x, y, sample_weight),
        batch_size,
        random_state if fit_args.pop("shuffle", True) else None,
    )
    # Each epoch its batches, read in turn by the one iterator Keras keeps over
    # the fit (see _PermutedBatches); a steps_per_epoch of the user's reads on
    # through them, as Model.fit reads on through an array's epochs.
    fit_args["steps_per_epoch"] = fit_args.get("steps_per_epoch") or len(batches)
    # Still Model.fit's batch size for the validation data.
    fit_args["batch_size"] = batch_size
    if xla_min_batches is not None and keras.backend.backend() == "tensorflow":
        epochs = fit_args.get("epochs", 1) - fit_args.get("initial_epoch", 0)
        total = fit_args["steps_per_epoch"] * max(epochs, 0)
        _compile_steps_with_xla(model, total >= xla_min_batches)
    randomness = contextlib.nullcontext()
    if seeded:
        # Drawn from a copy: random_state's own draws are the epochs' orders,
        # which must be the compiled epochs' draws.
        seed_source = np.random.RandomState()
        seed_source.set_state(random_state.get_state())
        randomness = isolated_random_state(draw_seeds(seed_source, 1)[0])
    with randomness:
        return model.fit(batches, shuffle=False, **fit_args)


def _compile_steps_with_xla(model: keras.Model, xla: bool) -> None:
    """Make ``Model.fit`` and ``evaluate`` compile their steps with XLA or not."""
    if model.run_eagerly or bool(model.jit_compile) == xla:
        return
    model.jit_compile = xla
    # Model.fit reuses the functions it made before, compiled as they were.
    model.make_train_function(force=True)
    model.make_test_function(force=True)


class _PermutedBatches(keras.utils.PyDataset):
    """The batches of every epoch as one endless sequence: batch ``i`` is batch
    ``i % len(self)`` of the epoch ``i // len(self)``, whose order of the rows is
    the ``i // len(self)``-th ``random_state.permutation`` (the rows in order
    without ``random_state``).

    Endless (with ``steps_per_epoch``), so that Keras keeps one iterator over the
    whole fit and asks for the batches in turn. A finite ``PyDataset`` starts
    every epoch at batch 0 with no word of which epoch it is, and its epoch hooks
    are no firm footing: Keras makes the next epoch's iterator before
    ``on_epoch_end``, and TensorFlow prefetches. Here each index names its epoch,
    so prefetching, or a batch asked for twice (TensorFlow reads the first two
    to learn their shapes), cannot give one epoch another's order. The orders
    are drawn from ``random_state`` in turn, the first time a batch of their
    epoch is asked for; the random state before each draw is kept, a few
    kilobytes an epoch, to draw an earlier epoch's order again.
    """

    def __init__(self, arrays, batch_size: int, random_state):
        # One worker: batches come from the thread that asks for them, in turn.
        super().__init__()
        self._arrays = tuple(a for a in arrays if a is not None)
        self._batch_size = batch_size
        self._n_samples = len(self._arrays[0])
        self._random_state = random_state
        self._states = []  # random_state's state before each epoch's draw
        self._epoch = self._order = None  # the last epoch asked for, its order
        # tf.data asks from its own threads.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """The batches of one epoch."""
        return math.ceil(self._n_samples / self._batch_size)

    @property
    def num_batches(self):
        return None  # endless: see the class's docstring

    def __getitem__(self, index: int) -> tuple:
        epoch, batch = divmod(index, len(self))
        start = batch * self._batch_size
        rows = self._epoch_order(epoch)[start : start + self._batch_size]
        return tuple(a[rows] for a in self._arrays)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self._random_state is None:
            epoch = 0  # all in the one order
        with self._lock:
            if epoch != self._epoch:
                self._order = self._draw_order(epoch)
                self._epoch = epoch
            return self._order

    def _draw_order(self, epoch: int) -> np.ndarray:
        random_state = self._random_state
        if random_state is None:
            return np.arange(self._n_samples)
        while len(self._states) <= epoch:
            self._states.append(random_state.get_state())
            order = random_state.permutation(self._n_samples)
            if len(self._states) > epoch:
                return order
        replay = np.random.RandomState()
        replay.set_state(self._states[epoch])
        return replay.permutation(self._n_samples)
