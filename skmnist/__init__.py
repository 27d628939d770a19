"""skmnist: scikit-learn estimators for handwritten digit classification.

The estimators import Keras (and with it TensorFlow) on first use, not on
``import skmnist``, so that the command line answers ``--help`` at once.
``import skmnist`` only sizes TensorFlow's thread pools where joblib or the
user set ``OMP_NUM_THREADS`` (see ``_thread_pools``).
"""

import importlib
from typing import TYPE_CHECKING

from skmnist._thread_pools import follow_omp_num_threads
from skmnist._version import __version__

# Before an estimator imports TensorFlow: in a joblib worker process, its
# thread pools then take the worker's share of the cores (see _thread_pools).
follow_omp_num_threads()

if TYPE_CHECKING:
    from skmnist._classifier import FitInterruptedWarning, MNISTClassifier
    from skmnist._dask import (
        FitProgress,
        NoWorkersError,
        TensorFlowThreadsPlugin,
        dask_parallel_config,
    )
    from skmnist._images import (
        DigitImagePreprocessor,
        load_digit_image,
        preprocess_digit_image,
    )
    from skmnist._onnx import register_onnx_converters, to_onnx
    from skmnist._persistence import ModelFileError, load, save
    from skmnist._pipeline import make_mnist_pipeline
    from skmnist._plotting import (
        plot_confusion_matrix,
        plot_learning_curves,
        plot_misclassified,
    )
    from skmnist._scaler import PixelScaler

_PUBLIC_NAMES = {
    "MNISTClassifier": "skmnist._classifier",
    "FitInterruptedWarning": "skmnist._classifier",
    "PixelScaler": "skmnist._scaler",
    "make_mnist_pipeline": "skmnist._pipeline",
    "DigitImagePreprocessor": "skmnist._images",
    "load_digit_image": "skmnist._images",
    "preprocess_digit_image": "skmnist._images",
    "TensorFlowThreadsPlugin": "skmnist._dask",
    "dask_parallel_config": "skmnist._dask",
    "FitProgress": "skmnist._dask",
    "NoWorkersError": "skmnist._dask",
    "plot_confusion_matrix": "skmnist._plotting",
    "plot_learning_curves": "skmnist._plotting",
    "plot_misclassified": "skmnist._plotting",
    "save": "skmnist._persistence",
    "to_onnx": "skmnist._onnx",
    "register_onnx_converters": "skmnist._onnx",
    "ModelFileError": "skmnist._persistence",
    "load": "skmnist._persistence",
}

__all__ = [
    "DigitImagePreprocessor",
    "FitInterruptedWarning",
    "FitProgress",
    "MNISTClassifier",
    "ModelFileError",
    "NoWorkersError",
    "PixelScaler",
    "TensorFlowThreadsPlugin",
    "__version__",
    "dask_parallel_config",
    "load",
    "load_digit_image",
    "make_mnist_pipeline",
    "plot_confusion_matrix",
    "plot_learning_curves",
    "plot_misclassified",
    "preprocess_digit_image",
    "register_onnx_converters",
    "save",
    "to_onnx",
]


def __getattr__(name: str):
    if name in _PUBLIC_NAMES:
        return getattr(importlib.import_module(_PUBLIC_NAMES[name]), name)
    raise AttributeError(f"module 'skmnist' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
