"""
Tuning the network with a grid search
=====================================

The pipeline of :func:`~skmnist.make_mnist_pipeline` is an ordinary
scikit-learn estimator, so :class:`~sklearn.model_selection.GridSearchCV`
tunes it: each combination of parameters is cross-validated, the best one
refitted on all the training data. Because :class:`~skmnist.PixelScaler` is
inside the pipeline, every fold scales its own training data, as it would in
production.

This example searches the width of the hidden layer, the learning rate of the
optimizer and the number of epochs on a 20,000-image subset of MNIST (with
``SKMNIST_FAST=1``: 3,000 images, narrower layers and one or two epochs).
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV

from skmnist import make_mnist_pipeline
from skmnist.datasets import load_mnist

fast = os.environ.get("SKMNIST_FAST") == "1"

(x_train, y_train), (x_test, y_test) = load_mnist()
n_train = 3_000 if fast else 20_000
x_train, y_train = x_train[:n_train], y_train[:n_train]

# %%
# The parameter grid
# ------------------
# Parameters of the classifier step are prefixed with its name, ``clf__``.
# The optimizer's own arguments take one more prefix, ``optimizer__``: scikeras
# routes ``clf__optimizer__learning_rate`` to ``RMSprop(learning_rate=...)``.
param_grid = {
    "clf__hidden_units": [32, 128] if fast else [128, 512],
    "clf__optimizer__learning_rate": [3e-4, 1e-3, 3e-3],
    "clf__epochs": [1, 2] if fast else [2, 5],
}
search = GridSearchCV(
    make_mnist_pipeline(random_state=0), param_grid, cv=2 if fast else 3
)
search.fit(x_train, y_train)
print("best parameters:", search.best_params_)
print(f"best cross-validated accuracy: {search.best_score_:.4f}")

# %%
# The results
# -----------
# ``cv_results_`` holds one entry per combination. One panel per number of
# epochs; in each, the mean cross-validated accuracy against the learning rate,
# one line per width, with the spread over the folds as error bars.
results = search.cv_results_
n_candidates = int(np.prod([len(values) for values in param_grid.values()]))
assert len(results["params"]) == n_candidates

fig, axes = plt.subplots(
    1,
    len(param_grid["clf__epochs"]),
    figsize=(10, 4),
    sharey=True,
    layout="constrained",
)
for ax, epochs in zip(axes, param_grid["clf__epochs"], strict=True):
    for units in param_grid["clf__hidden_units"]:
        chosen = (results["param_clf__epochs"] == epochs) & (
            results["param_clf__hidden_units"] == units
        )
        rates = results["param_clf__optimizer__learning_rate"][chosen].astype(float)
        order = np.argsort(rates)
        ax.errorbar(
            rates[order],
            results["mean_test_score"][chosen][order],
            yerr=results["std_test_score"][chosen][order],
            marker="o",
            capsize=3,
            label=f"{units} hidden units",
        )
    ax.set_xscale("log")
    ax.set_xticks(
        param_grid["clf__optimizer__learning_rate"],
        labels=[f"{rate:g}" for rate in param_grid["clf__optimizer__learning_rate"]],
    )
    ax.minorticks_off()
    ax.set_xlabel("learning rate")
    ax.set_title(f"{epochs} epoch{'s' if epochs > 1 else ''}")
    ax.legend()
axes[0].set_ylabel("mean cross-validated accuracy")
assert all(len(ax.get_lines()) >= len(param_grid["clf__hidden_units"]) for ax in axes)

# %%
# The refitted best pipeline
# --------------------------
# ``best_estimator_`` was refitted on all the training images with the best
# parameters; its accuracy on the untouched test set estimates how it will do
# on new digits.
test_acc = search.score(x_test, y_test)
print(f"test accuracy of the best pipeline: {test_acc:.4f}")
assert test_acc > (0.8 if fast else 0.95)
