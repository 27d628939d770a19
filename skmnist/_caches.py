"""What keeps skmnist's compiled functions few: bounded caches and a quiet log.

Compiled Keras functions are expensive to trace and, on TensorFlow, never freed
(see :mod:`skmnist._workspace`). The workspaces of :mod:`skmnist._workspace` and
the forward passes of :mod:`skmnist._inference` are therefore kept in caches of
bounded size, least recently used first out, under one lock; and TensorFlow's
warning about "frequent retracing", which their bounded number of traces would
set off, is filtered out.
"""

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable

# Enough for a typical grid over a few architectures; the least recently used
# entry is dropped beyond this.
MAX_ENTRIES = 16

lock = threading.Lock()


def remember(cache: OrderedDict, key: Hashable, value) -> None:
    """Put ``value`` in ``cache`` as its most recently used entry, dropping the
    least recently used beyond :data:`MAX_ENTRIES`; call it holding :data:`lock`."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > MAX_ENTRIES:
        cache.popitem(last=False)


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
