"""The widths of the hidden layers and the weights they make, without Keras."""

import sys

import numpy as np
import pytest

from skmnist._architecture import count_weights, hidden_layer_widths


@pytest.mark.parametrize(
    "value, widths",
    [
        (512, (512,)),
        (np.int64(7), (7,)),
        ((512, 256), (512, 256)),
        ([64, np.int32(32), 16], (64, 32, 16)),
        (np.array([8, 4]), (8, 4)),
    ],
)
def test_widths_are_python_ints(value, widths):
    result = hidden_layer_widths(value)
    assert result == widths
    assert all(type(width) is int for width in result)


@pytest.mark.parametrize(
    "value, words",
    [
        (0, "positive integer"),
        (-3, "positive integer"),
        (True, "positive integer"),
        (2.0, "positive integer"),
        ("512", "positive integer"),
        ((), "at least one hidden layer"),
        ((512, 0), "0 in (512, 0)"),
        ((512, 2.5), "2.5 in (512, 2.5)"),
        (np.ones((2, 2), dtype=int), "positive integer"),
        ((2**31,), "2**31 - 1"),
    ],
)
def test_bad_widths_are_named(value, words):
    with pytest.raises(ValueError, match="hidden_units") as error:
        hidden_layer_widths(value)
    assert words in str(error.value)


def test_the_name_of_the_option_is_the_callers():
    with pytest.raises(ValueError, match=r"^--hidden-units must"):
        hidden_layer_widths(0, "--hidden-units")


def test_weights_are_counted_as_keras_counts_them():
    keras = pytest.importorskip("keras")
    model = keras.Sequential(
        [keras.Input((784,))]
        + [keras.layers.Dense(width) for width in (512, 256, 7)]
        + [keras.layers.Dense(10)]
    )
    assert count_weights(784, (512, 256, 7), 10) == model.count_params()


def test_no_keras_is_imported():
    # The command line checks options with it before TensorFlow loads.
    import subprocess

    code = (
        "import sys, skmnist._architecture; "
        "print(sorted({'keras', 'tensorflow', 'jax'} & sys.modules.keys()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "[]", result.stderr
