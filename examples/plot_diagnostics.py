"""
Learning curves, confusion matrix and misclassified digits
==========================================================

Three looks at a trained network: how loss and accuracy evolved during
training (on the training data and on held-out validation data), which digits
it confuses with which, and what the digits it gets wrong look like.

With ``SKMNIST_FAST=1`` it trains on 10,000 images for three epochs (so that
the curves have more than one point) instead of on all 60,000 for five.
"""

import os

import numpy as np

from skmnist import (
    make_mnist_pipeline,
    plot_confusion_matrix,
    plot_learning_curves,
    plot_misclassified,
)
from skmnist.datasets import load_mnist

fast = os.environ.get("SKMNIST_FAST") == "1"

(x_train, y_train), (x_test, y_test) = load_mnist()
if fast:
    x_train, y_train = x_train[:10_000], y_train[:10_000]

# %%
# Train with a validation split
# -----------------------------
# ``validation_fraction=0.1`` holds out 10% of the training images (a split
# stratified by digit, seeded by ``random_state``) and records ``val_loss`` and
# ``val_accuracy`` after each epoch, next to the training ``loss`` and
# ``accuracy``.
epochs = 3 if fast else 5
pipe = make_mnist_pipeline(epochs=epochs, validation_fraction=0.1, random_state=0)
pipe.fit(x_train, y_train)
history = pipe.named_steps["clf"].history_
print({name: np.round(values, 4).tolist() for name, values in history.items()})

# %%
# Learning curves
# ---------------
# :func:`~skmnist.plot_learning_curves` takes the pipeline (or the classifier,
# or its ``history_``) and draws one panel per quantity. Keras averages the
# training loss and accuracy over each epoch, while the network improves, but
# computes the validation ones at the epoch's end: that is why the first
# training point lies below the first validation one. Training accuracy rising
# clearly above validation accuracy later on is the network starting to
# memorise its training images.
axes = plot_learning_curves(pipe)
assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
assert all(len(ax.get_lines()) == 2 for ax in axes)  # training and validation
assert len(axes[0].get_lines()[0].get_xdata()) == epochs

# %%
# Confusion matrix
# ----------------
# Rows are the true digits, columns the predicted ones: the diagonal counts
# the right answers, every other cell a kind of mistake.
# :func:`~skmnist.plot_confusion_matrix` returns scikit-learn's
# :class:`~sklearn.metrics.ConfusionMatrixDisplay`.
predicted = pipe.predict(x_test)
accuracy = np.mean(predicted == y_test)
print(f"test accuracy: {accuracy:.4f}")
assert accuracy > (0.85 if fast else 0.97)
display = plot_confusion_matrix(y_test, predicted)
assert display.confusion_matrix.sum() == len(y_test)
assert np.trace(display.confusion_matrix) == np.sum(predicted == y_test)

# %%
# The most frequent mistakes, read off the matrix:
matrix = display.confusion_matrix.copy()
np.fill_diagonal(matrix, 0)
for flat in np.argsort(matrix, axis=None)[::-1][:3]:
    true, pred = np.unravel_index(flat, matrix.shape)
    print(f"{matrix[true, pred]} test images of a {true} were taken for a {pred}")

# %%
# Misclassified digits
# --------------------
# :func:`~skmnist.plot_misclassified` shows the first misclassified test
# images with their true and predicted labels. Many are ambiguous even to a
# human reader; others show what the network has not learnt.
axes = plot_misclassified(x_test, y_test, predicted, max_images=20)
n_wrong = int(np.sum(predicted != y_test))
assert len(axes) == min(20, n_wrong)
assert all(ax.get_images() and ax.get_title().startswith("true ") for ax in axes)
