"""The MNIST pipeline: PixelScaler followed by MNISTClassifier; and the recipe
``skmnist train --robust`` trains for digits that are not MNIST's."""

import math
import numbers

import numpy as np
from sklearn.pipeline import Pipeline

from skmnist._architecture import MAX_COUNT, ROBUST_EPOCHS, ROBUST_HIDDEN_UNITS
from skmnist._classifier import MNISTClassifier
from skmnist._scaler import PixelScaler

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def make_mnist_pipeline(**classifier_params) -> Pipeline:
    """Build the pipeline that classifies raw digit images.

    Parameters
    ----------
    **classifier_params
        Parameters of :class:`MNISTClassifier`, e.g. ``hidden_units=256`` or
        ``optimizer__learning_rate=1e-3``.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Steps ``"scale"`` (:class:`PixelScaler`) and ``"clf"``
        (:class:`MNISTClassifier`); grid-search keys read ``clf__hidden_units``.

    Examples
    --------
    >>> from skmnist import make_mnist_pipeline
    >>> pipe = make_mnist_pipeline(epochs=3)
    >>> [name for name, _ in pipe.steps]
    ['scale', 'clf']
    >>> pipe.get_params()["clf__epochs"]
    3
    """
    return Pipeline(
        [("scale", PixelScaler()), ("clf", MNISTClassifier(**classifier_params))]
    )


def robust_recipe(
    n_samples: int,
    epochs: int = ROBUST_EPOCHS,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
) -> dict:
    """:class:`MNISTClassifier` parameters for digits people draw and photograph.

    Two hidden layers of 1,024 units trained with Adam, the learning rate
    falling from ``learning_rate`` to 0 along a cosine over the ``epochs`` of
    ``n_samples`` rows, on augmented images (rotations up to 20 degrees,
    strokes thicker or thinner in half of them, the other strengths the
    defaults). Measured in docs/performance.rst against the seed recipe.
    """
    counts = {"n_samples": n_samples, "epochs": epochs, "batch_size": batch_size}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value!r}")
    # Keras computes the schedule in float32, its step count in int32.
    if isinstance(learning_rate, bool) or not (
        isinstance(learning_rate, numbers.Real) and 0 < learning_rate <= _FLOAT32_MAX
    ):
        raise ValueError(
            f"learning_rate must be above 0 (and a float32), got {learning_rate!r}"
        )
    steps = int(epochs) * math.ceil(int(n_samples) / int(batch_size))
    if steps > MAX_COUNT:
        raise ValueError(
            f"{epochs} epochs of {n_samples} rows in batches of {batch_size} are "
            f"{steps} updates, more than a schedule counts ({MAX_COUNT})"
        )
    import keras

    return {
        "hidden_units": ROBUST_HIDDEN_UNITS,
        "optimizer": "adam",
        "learning_rate_schedule": keras.optimizers.schedules.CosineDecay(
            float(learning_rate), steps
        ),
        "epochs": epochs,
        "batch_size": batch_size,
        "augmentation": True,
        "augmentation__rotation": 20.0,
        "augmentation__thickness": 0.5,
    }
