"""A grid search in one process against the same search on a local dask cluster.

Run: ``SKMNIST_DATA=/path/to/mnist.npz python benchmarks/search.py`` (options:
``--train-size``, ``--epochs``, ``--n-workers``, ``--json``). Searches 8
candidates x 3 folds of the MNIST pipeline on the first ``--train-size`` training
images, once with ``n_jobs=1`` in this process and once through joblib's dask
backend on a ``LocalCluster`` of ``--n-workers`` one-thread worker processes.
Prints a markdown table (search times, their ratio, memory) and writes the
figures as JSON.
"""

import argparse
import json
import os
import platform
import time

import numpy as np

GRID = {
    "clf__hidden_units": [64, 128, 256, 512],
    "clf__optimizer__learning_rate": [1e-3, 3e-4],
}
FOLDS = 3


def resident_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def make_search(epochs: int, n_jobs):
    from sklearn.model_selection import GridSearchCV

    from skmnist import make_mnist_pipeline

    # refit=False: the refit runs in the client process either way; what is
    # compared is the cross-validation that the cluster parallelises.
    return GridSearchCV(
        make_mnist_pipeline(epochs=epochs, random_state=0),
        GRID,
        cv=FOLDS,
        n_jobs=n_jobs,
        refit=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--json", default="search_benchmark.json")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import joblib

    from skmnist._dask import dask_client
    from skmnist.datasets import load_mnist

    (x_train, y_train), _ = load_mnist(download=False)
    X, y = x_train[: args.train_size], y_train[: args.train_size]

    start = time.perf_counter()
    local = make_search(args.epochs, n_jobs=1).fit(X, y)
    local_s = time.perf_counter() - start
    local_mb = resident_mb()

    start = time.perf_counter()
    with dask_client(n_workers=args.n_workers, threads_per_worker=1) as client:
        startup_s = time.perf_counter() - start
        start = time.perf_counter()
        with joblib.parallel_config(backend="dask"):
            distributed = make_search(args.epochs, n_jobs=-1).fit(X, y)
        cluster_s = time.perf_counter() - start
        worker_mb = sorted(client.run(resident_mb).values())

    same_scores = all(
        np.array_equal(
            local.cv_results_[f"split{k}_test_score"],
            distributed.cv_results_[f"split{k}_test_score"],
        )
        for k in range(FOLDS)
    )
    n_candidates = len(local.cv_results_["params"])
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "train_size": args.train_size,
        "epochs": args.epochs,
        "candidates": n_candidates,
        "folds": FOLDS,
        "one_process_s": round(local_s, 1),
        "cluster_workers": args.n_workers,
        "cluster_startup_s": round(startup_s, 1),
        "cluster_s": round(cluster_s, 1),
        "speedup": round(local_s / cluster_s, 2),
        "one_process_rss_mb": round(local_mb),
        "worker_rss_mb": [round(mb) for mb in worker_mb],
        "same_scores": same_scores,
        "best_mean_test_score": float(local.cv_results_["mean_test_score"].max()),
    }
    print(
        f"{n_candidates} candidates x {FOLDS} folds, {args.train_size} MNIST training "
        f"images, {args.epochs} epoch(s), {result['machine']}\n"
    )
    print("| run | search time | ratio | memory |")
    print("|---|---|---|---|")
    print(f"| one process, n_jobs=1 | {local_s:.1f} s | 1.00 | {local_mb:.0f} MB |")
    print(
        f"| LocalCluster, {args.n_workers} workers x 1 thread | {cluster_s:.1f} s "
        f"(+ {startup_s:.1f} s start) | {local_s / cluster_s:.2f} | "
        f"{' + '.join(f'{mb:.0f}' for mb in worker_mb)} MB per worker |"
    )
    print(f"\nsame scores in both runs: {same_scores}")
    with open(args.json, "w") as handle:
        json.dump(result, handle, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
