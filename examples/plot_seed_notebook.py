"""
The classic Keras MNIST notebook, with skmnist
==============================================

The introductory Keras notebook loads MNIST, builds Dense(512, relu) ->
Dense(10, softmax), compiles it with RMSprop and sparse categorical
cross-entropy, scales the pixels by 1/255, trains for 5 epochs of batches of 128
and reaches about 98% test accuracy. This example follows it cell by cell and
shows the skmnist line that replaces each step.

With ``SKMNIST_FAST=1`` (as in CI and the documentation build) it trains on
10,000 images for one epoch, and the test accuracy is lower, above 80%.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

from skmnist import MNISTClassifier, make_mnist_pipeline
from skmnist.datasets import load_mnist

fast = os.environ.get("SKMNIST_FAST") == "1"

# %%
# Load the data
# -------------
# The notebook calls ``keras.datasets.mnist.load_data()``;
# :func:`~skmnist.datasets.load_mnist` returns the same arrays. It reads the file
# named by ``SKMNIST_DATA`` or Keras's cache, and downloads only where it finds no
# copy.
(x_train, y_train), (x_test, y_test) = load_mnist()
print(x_train.shape, x_train.dtype, y_train[:10])
print(x_test.shape, x_test.dtype)
if fast:
    x_train, y_train = x_train[:10_000], y_train[:10_000]

# %%
# The images are 28x28 grey levels 0..255, light ink on a dark background:
fig, axes = plt.subplots(1, 10, figsize=(10, 1.6), layout="constrained")
for ax, image, label in zip(axes, x_train[:10], y_train[:10], strict=True):
    ax.imshow(image, cmap="gray_r")
    ax.set_title(str(label))
    ax.set_axis_off()
fig.suptitle("the first training images and their labels")
assert all(ax.get_images() for ax in axes)

# %%
# The network and its compilation
# -------------------------------
# The notebook writes::
#
#     model = keras.Sequential([
#         layers.Dense(512, activation="relu"),
#         layers.Dense(10, activation="softmax"),
#     ])
#     model.compile(optimizer="rmsprop",
#                   loss="sparse_categorical_crossentropy",
#                   metrics=["accuracy"])
#
# These are the defaults of :class:`~skmnist.MNISTClassifier`. The output layer
# is sized from the classes seen in ``fit``, so nothing says "10" here.
clf = MNISTClassifier()
print({name: clf.get_params()[name] for name in ("hidden_units", "activation")})
print({name: clf.get_params()[name] for name in ("optimizer", "loss", "epochs")})
print({"batch_size": clf.batch_size})

# %%
# Preparing the images
# --------------------
# The notebook reshapes the images to rows of 784 pixels and divides by 255.
# :class:`~skmnist.PixelScaler` does that as a transformer, and
# :func:`~skmnist.make_mnist_pipeline` puts it in front of the classifier, so
# the same scaling happens at prediction time and is saved with the model.
pipe = make_mnist_pipeline(epochs=1 if fast else 5, random_state=0, verbose=2)
pipe  # noqa: B018 (the gallery shows the pipeline's diagram)

# %%
# Training
# --------
# ``model.fit(train_images, train_labels, epochs=5, batch_size=128)`` becomes:
pipe.fit(x_train, y_train)

# %%
# The per-epoch loss and accuracy that Keras prints are kept in ``history_``:
history = pipe.named_steps["clf"].history_
print(history)
assert len(history["loss"]) == (1 if fast else 5)

# %%
# Evaluating on the test set
# --------------------------
# ``model.evaluate(test_images, test_labels)`` becomes ``score``, the accuracy:
test_acc = pipe.score(x_test, y_test)
print(f"test_acc: {test_acc:.4f}")
assert test_acc > (0.8 if fast else 0.975)

# %%
# Predicting
# ----------
# The notebook reads the probabilities of the first test digits and takes the
# most likely class. ``predict_proba`` gives the probabilities (one column per
# entry of ``classes_``) and ``predict`` the most likely digit.
proba = pipe.predict_proba(x_test[:10])
predicted = pipe.predict(x_test[:10])
assert np.array_equal(predicted, pipe.classes_[proba.argmax(axis=1)])

fig, axes = plt.subplots(1, 10, figsize=(10, 1.8), layout="constrained")
for ax, image, digit, p in zip(axes, x_test, predicted, proba.max(1), strict=False):
    ax.imshow(image, cmap="gray_r")
    ax.set_title(f"{digit} ({p:.2f})", fontsize=9)
    ax.set_axis_off()
fig.suptitle("the first test images: predicted digit (probability)")
assert all(ax.get_images() and ax.get_title() for ax in axes)
