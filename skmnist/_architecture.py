"""The shape of the perceptron from its ``hidden_units``, without Keras.

``hidden_units`` is one width (the seed's 512) or a sequence of them, one per
hidden layer, as scikit-learn's ``hidden_layer_sizes``. The estimator, the
command line (before TensorFlow is imported) and the model-file checks (before
any weight is read) all need the widths and the number of weights they imply;
they are computed here, once.
"""

from collections.abc import Sequence
from itertools import pairwise
from numbers import Integral

import numpy as np

# The network and length of the recipe for digits that are not MNIST's
# (skmnist._pipeline.robust_recipe), which the command line needs before Keras.
ROBUST_HIDDEN_UNITS = (1024, 1024)
ROBUST_EPOCHS = 30
# The largest count the compiled training programs and Keras's schedules hold
# (int32): of widths, epochs, batches and updates.
MAX_COUNT = 2**31 - 1


def hidden_layer_widths(hidden_units, name: str = "hidden_units") -> tuple[int, ...]:
    """``hidden_units`` as a tuple of Python ints, one per hidden layer.

    Accepts an integer (NumPy's too) or a non-empty sequence of them (a list, a
    tuple, a 1-D NumPy array). Raises ``ValueError`` naming ``name`` otherwise.
    """
    if isinstance(hidden_units, Integral) and not isinstance(hidden_units, bool):
        widths = (hidden_units,)
    elif isinstance(hidden_units, np.ndarray) and hidden_units.ndim == 1:
        widths = tuple(hidden_units.tolist())
    elif isinstance(hidden_units, Sequence) and not isinstance(
        hidden_units, str | bytes
    ):
        widths = tuple(hidden_units)
    else:
        raise ValueError(
            f"{name} must be a positive integer or a sequence of them (one width "
            f"per hidden layer, such as (512, 256)), got {hidden_units!r}."
        )
    if not widths:
        raise ValueError(
            f"{name} must name at least one hidden layer, got {hidden_units!r}."
        )
    for width in widths:
        if (
            not isinstance(width, Integral)
            or isinstance(width, bool)
            or width < 1
            or width > np.iinfo(np.int32).max
        ):
            raise ValueError(
                f"{name} must be a positive integer or a sequence of them (one "
                f"width per hidden layer, such as (512, 256)); {width!r} in "
                f"{hidden_units!r} is not a whole number of units from 1 to "
                "2**31 - 1."
            )
    return tuple(int(width) for width in widths)


def count_weights(n_features: int, widths: Sequence[int], n_outputs: int) -> int:
    """Weights and biases of the network ``n_features -> widths -> n_outputs``."""
    sizes = (n_features, *widths, n_outputs)
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in pairwise(sizes))
