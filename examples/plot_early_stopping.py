"""
Early stopping in a grid search
===============================

With ``early_stopping=True``, :class:`~skmnist.MNISTClassifier` holds out a
stratified tenth of its training data (``validation_fraction``), scores it
after every epoch, stops once ``n_iter_no_change`` epochs in a row have not
improved the validation accuracy by ``tol``, and ends with the weights of its
best epoch, as scikit-learn's :class:`~sklearn.neural_network.MLPClassifier`
does. ``epochs`` becomes the most it trains, so a grid search no longer needs
to search the number of epochs: each candidate and fold trains as long as it
keeps improving.

This example searches the hidden layers (one layer of 256 or 512 units, or two
of 512 and 256) and the L2 penalty ``alpha`` of the pipeline with at most 30
epochs on a 10,000-image subset of MNIST, then plots the learning curves of the
refitted best pipeline with :func:`~skmnist.plot_learning_curves`, which marks
the epoch whose weights it kept. (With ``SKMNIST_FAST=1``: 2,000 images,
narrower layers, at most 15 epochs and 3 epochs without improvement.)
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV

from skmnist import make_mnist_pipeline, plot_learning_curves
from skmnist.datasets import load_mnist

fast = os.environ.get("SKMNIST_FAST") == "1"

(x_train, y_train), (x_test, y_test) = load_mnist()
n_train = 2_000 if fast else 10_000
x_train, y_train = x_train[:n_train], y_train[:n_train]

# %%
# The search
# ----------
# ``early_stopping``, ``epochs`` and ``n_iter_no_change`` are fixed on the
# pipeline; the grid holds what the search chooses. ``hidden_units`` takes an
# int (one hidden layer) or a tuple of widths (one hidden layer each), as
# ``MLPClassifier``'s ``hidden_layer_sizes`` does, and ``alpha`` is its L2
# penalty.
pipeline = make_mnist_pipeline(
    early_stopping=True,
    epochs=15 if fast else 30,
    n_iter_no_change=3 if fast else 10,
    random_state=0,
)
param_grid = {
    "clf__hidden_units": [32, 64, (64, 32)] if fast else [256, 512, (512, 256)],
    "clf__alpha": [1e-4, 1e-3],
}
search = GridSearchCV(pipeline, param_grid, cv=2 if fast else 3)
search.fit(x_train, y_train)
print("best parameters:", search.best_params_)
print(f"best cross-validated accuracy: {search.best_score_:.4f}")

results = search.cv_results_
for params, score, std in zip(
    results["params"],
    results["mean_test_score"],
    results["std_test_score"],
    strict=True,
):
    print(
        f"  hidden_units={params['clf__hidden_units']!s:<10} "
        f"alpha={params['clf__alpha']:g}: {score:.4f} +- {std:.4f}"
    )
assert len(results["params"]) == 6

# %%
# How long the best pipeline trained
# ----------------------------------
# ``best_estimator_`` was refitted with the best parameters on all the training
# images, holding out a tenth of them for early stopping again.
# ``validation_scores_`` is the validation accuracy of every epoch it trained,
# ``best_validation_score_`` the best of them, and ``n_iter_`` how many epochs
# it trained before the validation accuracy stopped improving (or the most,
# ``epochs``).
clf = search.best_estimator_.named_steps["clf"]
best_epoch = int(np.argmax(clf.validation_scores_)) + 1
print(
    f"trained {clf.n_iter_} of at most {clf.epochs} epochs; kept the weights of "
    f"epoch {best_epoch}, validation accuracy {clf.best_validation_score_:.4f}"
)
assert clf.n_iter_ == len(clf.validation_scores_) <= clf.epochs
assert clf.best_validation_score_ == max(clf.validation_scores_)

# %%
# Its learning curves
# -------------------
# The training and validation loss and accuracy of every epoch of the refit.
# The dashed line marks the best epoch: the estimator ends with its weights,
# not the last epoch's.
axes = plot_learning_curves(search.best_estimator_)
axes[0].figure.suptitle(
    "best candidate: "
    + ", ".join(
        f"{k.removeprefix('clf__')}={v}" for k, v in search.best_params_.items()
    )
)
for ax in axes:
    marker = [line for line in ax.get_lines() if line.get_label().startswith("best")]
    assert len(marker) == 1 and marker[0].get_xdata()[0] == best_epoch

# %%
# The test set
# ------------
# The refitted best pipeline on the 10,000 test images it has never seen.
test_acc = search.score(x_test, y_test)
print(f"test accuracy of the best pipeline: {test_acc:.4f}")
assert test_acc > (0.85 if fast else 0.95)
plt.show()
