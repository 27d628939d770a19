"""skmnist: scikit-learn estimators for handwritten digit classification."""

from skmnist._classifier import MNISTClassifier
from skmnist._version import __version__

__all__ = ["MNISTClassifier", "__version__"]
