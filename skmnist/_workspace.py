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
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager

import keras

from skmnist._caches import lock, remember
from skmnist._compat import assign_values
from skmnist._interrupts import raise_if_interrupted

# A full garbage collection costs 0.1 to 0.3 s with TensorFlow or JAX loaded,
# more than building and training a small network: collect once the networks
# built since the last collection hold this many bytes of weights (the seed's
# network: every 13th build), or after this many builds of small ones.
_COLLECT_AFTER_BYTES = 64 * 2**20
_COLLECT_AFTER_BUILDS = 100

_built = {"builds": 0, "bytes": 0}
_idle_workspaces: "OrderedDict[Hashable, keras.Model]" = OrderedDict()


@contextmanager
def borrowed_workspace(
    key: Hashable, build: Callable[[], keras.Model]
) -> Iterator[keras.Model]:
    """Lend a compiled model for ``key`` to one caller at a time.

    The workspace is taken out of the cache while in use, so a concurrent fit of
    the same architecture builds a workspace of its own instead of sharing.
    """
    with lock:
        workspace = _idle_workspaces.pop(key, None)
    if workspace is None:
        workspace = build()
    try:
        yield workspace
    finally:
        with lock:
            if key not in _idle_workspaces:
                remember(_idle_workspaces, key, workspace)


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
        # Kept first, then stopped: a Ctrl-C that a gc callback swallowed
        # during the epoch stops training here.
        raise_if_interrupted()

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


def collect_discarded_models(weight_bytes: int = 0) -> None:
    """Free the Keras models of estimators that were refitted or deleted.

    Keras models hold reference cycles, so a discarded model waits for Python's
    full garbage collection, which a TensorFlow process rarely reaches on its own:
    a grid search would keep every model it ever built. Called once per model
    build, with the bytes of the new model's weights, this collects once the
    models built since the last collection weigh ``_COLLECT_AFTER_BYTES`` or
    number ``_COLLECT_AFTER_BUILDS``, so that the garbage stays bounded in bytes
    and a search of small networks does not spend its time collecting.
    """
    with lock:
        _built["builds"] += 1
        _built["bytes"] += weight_bytes
        due = (
            _built["bytes"] >= _COLLECT_AFTER_BYTES
            or _built["builds"] >= _COLLECT_AFTER_BUILDS
        )
        if due:
            _built.update(builds=0, bytes=0)
    if due:
        gc.collect()


def _assign_all(sources: Sequence, targets: Sequence) -> None:
    if len(sources) != len(targets):
        raise RuntimeError(
            "Cannot copy training state between models of different structure "
            f"({len(sources)} vs {len(targets)} variables)."
        )
    assign_values(targets, [source.value for source in sources])
