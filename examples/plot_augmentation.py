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
training sees them. With ``SKMNIST_FAST=1`` the network trains on 2,000
images for one epoch.
"""

import os

import keras
import matplotlib.pyplot as plt
import numpy as np

from skmnist import make_mnist_pipeline
from skmnist.datasets import load_mnist

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
