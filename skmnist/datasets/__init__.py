"""Data sets: the MNIST loader, and the corruptions a drawn or photographed
digit meets."""

from skmnist.datasets._corruptions import CORRUPTIONS, corrupt_digits
from skmnist.datasets._mnist import MNIST_ARRAY_SHA256, load_mnist

__all__ = ["CORRUPTIONS", "MNIST_ARRAY_SHA256", "corrupt_digits", "load_mnist"]
