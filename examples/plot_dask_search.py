"""
Grid search on a dask cluster
=============================

A grid search is many independent fits, candidates times folds.
scikit-learn's :class:`~sklearn.model_selection.GridSearchCV` hands them to
joblib, and under :func:`skmnist.dask_parallel_config` (joblib's dask backend,
made to survive lost workers) joblib runs them on a
`dask.distributed <https://distributed.dask.org>`_ cluster. The estimator
needs no change; :class:`skmnist.TensorFlowThreadsPlugin` keeps each worker's
TensorFlow to the worker's own threads.

This example starts a local cluster of 2 worker processes of 1 thread each and
searches the width of the hidden layer and the learning rate on 10,000 MNIST
images (with ``SKMNIST_FAST=1``: 2,000 images, narrower layers, fewer learning
rates). For a cluster of machines, connect with
``Client("tcp://scheduler:8786")`` instead of starting a ``LocalCluster``; see
:doc:`/scale_out`. It needs the dask extra (``pip install "skmnist[dask]"``).
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from dask.distributed import Client, LocalCluster, get_task_stream
from sklearn.model_selection import GridSearchCV

from skmnist import TensorFlowThreadsPlugin, dask_parallel_config, make_mnist_pipeline
from skmnist.datasets import load_mnist

fast = os.environ.get("SKMNIST_FAST") == "1"

param_grid = {
    "clf__hidden_units": [32, 128] if fast else [128, 512],
    "clf__optimizer__learning_rate": [1e-3, 3e-3] if fast else [3e-4, 1e-3, 3e-3],
}

# %%
# Searching on a local cluster
# ----------------------------
# The worker processes start by importing this script as a module, as Python's
# ``spawn`` start method does, so the code that starts them, and everything that
# uses its results, runs only under ``if __name__ == "__main__":``, as dask asks
# of scripts. Leaving the ``with`` block closes the client and the cluster, even
# on an error.
#
# ``n_jobs=-1`` means every thread of the cluster. ``dask_parallel_config``
# sends the training images to the cluster once, as a task that dask can
# recompute if the workers holding it die; the workers need no copy of MNIST.
# ``error_score="raise"`` stops the search at the first fit that fails by itself
# instead of recording NaN for it. The progress it yields counts the fits done
# and those rerun after a lost worker. ``get_task_stream`` records which worker
# ran each batch of fits, and when.
if __name__ == "__main__":
    (x_train, y_train), (x_test, y_test) = load_mnist()
    n_train = 2_000 if fast else 10_000
    x_train, y_train = x_train[:n_train], y_train[:n_train]
    search = GridSearchCV(
        make_mnist_pipeline(epochs=2 if fast else 3, random_state=0),
        param_grid,
        cv=2 if fast else 3,
        n_jobs=-1,
        error_score="raise",
    )
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(TensorFlowThreadsPlugin())
        print(client)
        with (
            dask_parallel_config(client, (x_train, y_train)) as progress,
            get_task_stream() as tasks,
        ):
            search.fit(x_train, y_train)
    print(f"{progress.done} fits, {progress.retried} rerun after lost workers")
    print("best parameters:", search.best_params_)
    print(f"best cross-validated accuracy: {search.best_score_:.4f}")
    assert search.best_score_ > (0.75 if fast else 0.95)

# %%
# The results
# -----------
# ``cv_results_`` is the same as a search in one process gives, score for
# score: each fit is seeded from its own parameters (the test suite checks this
# on a two-worker cluster). Left, the mean cross-validated accuracy against the
# learning rate, one line per width, with the spread over the folds as error
# bars; right, the fits' batches on the two workers over time.
if __name__ == "__main__":
    results = search.cv_results_
    n_candidates = int(np.prod([len(values) for values in param_grid.values()]))
    assert len(results["params"]) == n_candidates
    assert search.best_score_ == results["mean_test_score"].max()

    fig, (scores_ax, tasks_ax) = plt.subplots(
        1, 2, figsize=(10, 4), layout="constrained"
    )
    rates = param_grid["clf__optimizer__learning_rate"]
    for units in param_grid["clf__hidden_units"]:
        chosen = results["param_clf__hidden_units"] == units
        order = np.argsort(results["param_clf__optimizer__learning_rate"][chosen])
        scores_ax.errorbar(
            np.asarray(results["param_clf__optimizer__learning_rate"][chosen])[order],
            results["mean_test_score"][chosen][order],
            yerr=results["std_test_score"][chosen][order],
            marker="o",
            capsize=3,
            label=f"{units} hidden units",
        )
    scores_ax.set_xscale("log")
    scores_ax.set_xticks(rates, labels=[f"{rate:g}" for rate in rates])
    scores_ax.minorticks_off()
    scores_ax.set_xlabel("learning rate")
    scores_ax.set_ylabel("mean cross-validated accuracy")
    scores_ax.legend()

    # Each task is a batch of fits that joblib sent to a worker.
    computed = [
        (task["worker"], period["start"], period["stop"])
        for task in tasks.data
        if task["key"].startswith("batch_of_")
        for period in task["startstops"]
        if period["action"] == "compute"
    ]
    workers = sorted({worker for worker, _, _ in computed})
    t0 = min(start for _, start, _ in computed)
    for row, worker in enumerate(workers):
        tasks_ax.broken_barh(
            [(start - t0, stop - start) for w, start, stop in computed if w == worker],
            (row - 0.35, 0.7),
            edgecolor="white",
        )
    tasks_ax.set_yticks(
        range(len(workers)), [f"worker {row + 1}" for row in range(len(workers))]
    )
    tasks_ax.set_xlabel("seconds since the first fit started")
    tasks_ax.set_title("batches of fits on the cluster")
    # Both workers fitted, at the same time.
    assert len(workers) == 2
    print(f"{len(computed)} batches of fits on {len(workers)} workers")

# %%
# The refitted best pipeline
# --------------------------
# ``best_estimator_`` was refitted on all the training images in this process,
# as scikit-learn always does, after the cluster closed.
if __name__ == "__main__":
    test_acc = search.score(x_test, y_test)
    print(f"test accuracy of the best pipeline: {test_acc:.4f}")
    assert test_acc > (0.75 if fast else 0.95)
