"""The MNIST pipeline: PixelScaler followed by MNISTClassifier."""

from sklearn.pipeline import Pipeline

from skmnist._classifier import MNISTClassifier
from skmnist._scaler import PixelScaler


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
