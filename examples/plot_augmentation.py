"""
What augmentation shows the network
===================================

``MNISTClassifier(augmentation=True)`` trains on distorted copies of each
batch, so that it learns digits that are rotated, slanted, scaled, shifted,
wobbly or written with a thinner or thicker pen: the digits people draw and
photograph, which the seed network, trained on MNIST's writers alone, gets
wrong far more often (see the robustness figures in the performance page).

The distortions run inside the compiled training step, in a layer the fitted
network keeps first (``model_.get_layer("augmentation")``) and which passes
images through unchanged at prediction. Called with ``training=True`` it
draws new distortions, which is how this example shows each of them: one row
per distortion at its default strength, the last row all of them together, as
training sees them. The last figure shows the other side: the corruptions
the robustness benchmark tests with (:func:`skmnist.datasets.corrupt_digits`),
before and after ``skmnist predict``'s preprocessing. With ``SKMNIST_FAST=1``
the network trains on 2,000 images for one epoch.
"""

import os

import keras
import matplotlib.pyplot as plt
import numpy as np

from skmnist import make_mnist_pipeline, preprocess_digit_image
from skmnist.datasets import CORRUPTIONS, corrupt_digits, load_mnist

fast = os.environ.get("SKMNIST_FAST") == "1"

(x_train, y_train), (x_test, y_test) = load_mnist()
if fast:
    x_train, y_train = x_train[:2_000], y_train[:2_000]
pipe = make_mnist_pipeline(augmentation=True, epochs=1, random_state=0)
pipe.fit(x_train, y_train)

# %%
# One distortion at a time
# ------------------------
# The layer's configuration holds the strengths; a copy with all but one set
# to zero draws that one alone.
layer = pipe["clf"].model_.get_layer("augmentation")
config = layer.get_config()
off = {
    "rotation": 0.0,
    "shear": 0.0,
    "scale": (1.0, 1.0),
    "translation": 0.0,
    "elastic_alpha": 0.0,
    "thickness": 0.0,
}
rows = {
    "as stored": None,
    "rotation": {"rotation": config["rotation"]},
    "shear": {"shear": config["shear"]},
    "scale": {"scale": config["scale"]},
    "translation": {"translation": config["translation"]},
    "elastic": {"elastic_alpha": config["elastic_alpha"]},
    # Thickness changes a stroke in a share of the images; here in all.
    "thickness": {"thickness": 1.0},
    "all together": {},
}
digits = pipe["scale"].transform(x_test[:8])
pictures = {}
for name, only in rows.items():
    if only is None:
        pictures[name] = digits
        continue
    strengths = config if name == "all together" else {**config, **off, **only}
    one = type(layer).from_config({**strengths, "seed": 0})
    pictures[name] = keras.ops.convert_to_numpy(one(digits, training=True))

figure, axes = plt.subplots(len(rows), 8, figsize=(8, len(rows) * 1.1))
for row, (name, images) in zip(axes, pictures.items(), strict=True):
    for ax, image in zip(row, images, strict=True):
        ax.imshow(image.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
figure.suptitle("Each distortion of augmentation=True, at its default strength")
figure.tight_layout()

# Each distortion changed the digits; prediction sees them unchanged.
for name, images in pictures.items():
    if name != "as stored":
        assert not np.allclose(images, digits), name
np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(digits)), digits)

# %%
# Prediction is not distorted
# ---------------------------
# The same layer at prediction passes the images through, so the fitted
# pipeline scores the test digits as they are.
accuracy = pipe.score(x_test, y_test)
print(f"test accuracy after one epoch of augmented training: {accuracy:.4f}")
assert accuracy > (0.6 if fast else 0.9)

# %%
# What the robustness benchmark tests with
# ----------------------------------------
# ``benchmarks/robustness.py`` scores models on MNIST's test digits under six
# corruptions, each drawn per image at a fixed strength (MNIST-C-style:
# rotation up to 30 degrees, shear up to 0.3, scale 0.6-1.3, strokes a pixel
# thicker or thinner, elastic distortion, the digit anywhere on a canvas three
# times its size). Each picture then goes through the preprocessing that
# ``skmnist predict`` applies to a photo, which crops, scales and centres the
# digit again: the top row of each pair is the picture, the bottom row what
# the classifier sees. Centring undoes "off-centre" and most of "scale"; it
# cannot undo a rotation, a slant, a wobble or another pen, which is what
# augmentation teaches.


def as_predicted(picture):
    """What the classifier sees of ``picture``, as ``skmnist predict`` reads a
    photo; black where nothing is left (an eroded thin stroke)."""
    try:
        return preprocess_digit_image(picture)
    except ValueError:
        return np.zeros((28, 28), np.uint8)


figure, axes = plt.subplots(2 * len(CORRUPTIONS), 8, figsize=(8, 2 * len(CORRUPTIONS)))
for index, name in enumerate(CORRUPTIONS):
    pictures = corrupt_digits(x_test[:8], name, random_state=index)
    pair = axes[2 * index : 2 * index + 2]
    for column, picture in enumerate(pictures):
        shown = [picture, as_predicted(picture)]
        for ax, image in zip(pair[:, column], shown, strict=True):
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, label, size in [(pair[0, 0], name, 9), (pair[1, 0], "as predicted", 7)]:
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=size)
figure.suptitle("The benchmark's corruptions, and what preprocessing makes of them")
figure.tight_layout()
