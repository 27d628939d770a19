"""Data sets: the MNIST loader."""

from skmnist.datasets._mnist import MNIST_ARRAY_SHA256, load_mnist

__all__ = ["MNIST_ARRAY_SHA256", "load_mnist"]
