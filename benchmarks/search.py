"""A grid search in one process against the same search on a local dask cluster.

Run: ``SKMNIST_DATA=/path/to/mnist.npz python benchmarks/search.py`` (options:
``--train-size``, ``--epochs``, ``--n-workers``, ``--kill-worker``, ``--json``).
Searches 8 candidates x 3 folds of the MNIST pipeline on the first
``--train-size`` training images, once with ``n_jobs=1`` in this process and once
on a ``LocalCluster`` of ``--n-workers`` one-thread worker processes through
:func:`skmnist.dask_parallel_config` (as ``skmnist search`` does; both run
through ``skmnist._search``). With ``--kill-worker`` a third run kills one worker
process (SIGKILL; its nanny restarts it) once the first fits have finished.
Prints a markdown table (search times, their ratio, memory, how often the
training data reached each worker) and writes the figures as JSON.
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
    from skmnist import make_mnist_pipeline
    from skmnist._search import make_search

    # refit=False: the refit runs in the client process either way; what is
    # compared is the cross-validation that the cluster parallelises.
    return make_search(
        make_mnist_pipeline(epochs=epochs, random_state=0),
        GRID,
        cv=FOLDS,
        n_jobs=n_jobs,
        refit=False,
    )


def data_deliveries(client, tasks) -> dict:
    """Per worker: how many times the training data (X and y) reached it, by
    computing the task that holds it or by fetching it from another worker, and
    the megabytes that took."""
    deliveries = {}
    for task in tasks:
        if task["key"].startswith("skmnist-data-"):
            count, mb = deliveries.get(task["worker"], (0, 0.0))
            deliveries[task["worker"]] = (count + 1, mb)
    logs = client.run(lambda dask_worker: list(dask_worker.transfer_incoming_log))
    for worker, log in logs.items():
        for transfer in log:
            for key, nbytes in transfer["keys"].items():
                if key.startswith("skmnist-data-"):
                    count, mb = deliveries.get(worker, (0, 0.0))
                    deliveries[worker] = (count + 1, mb + nbytes / 2**20)
    return deliveries


def cluster_search(client, X, y, epochs, kill=False):
    """The search on the cluster; with ``kill``, SIGKILL a busy worker once a fit
    has finished. Returns the search, its seconds and its FitProgress."""
    import signal
    import threading

    from distributed import get_task_stream

    from skmnist._dask import FitProgress
    from skmnist._search import fit_search

    progress = FitProgress(total=len(GRID["clf__hidden_units"]) * 2 * FOLDS)
    stop = threading.Event()

    def kill_a_busy_worker():
        pids = client.run(os.getpid)
        while not stop.wait(0.05):
            busy = [w for w, keys in client.processing().items() if keys]
            if progress.done >= 1 and busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                return

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    client.run(lambda dask_worker: dask_worker.transfer_incoming_log.clear())
    search = make_search(epochs, n_jobs=-1)
    start = time.perf_counter()
    with get_task_stream(client) as tasks:
        if kill:
            killer.start()
        fit_search(search, X, y, client=client, progress=progress)
    seconds = time.perf_counter() - start
    stop.set()
    return search, seconds, progress, data_deliveries(client, tasks.data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument(
        "--kill-worker",
        action="store_true",
        help="also time a cluster search in which one worker process is killed",
    )
    parser.add_argument("--json", default="search_benchmark.json")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
        distributed, cluster_s, _, deliveries = cluster_search(
            client, X, y, args.epochs
        )
        worker_mb = sorted(client.run(resident_mb).values())
        if args.kill_worker:
            killed, killed_s, killed_progress, _ = cluster_search(
                client, X, y, args.epochs, kill=True
            )

    def same_scores(search):
        return all(
            np.array_equal(
                local.cv_results_[f"split{k}_test_score"],
                search.cv_results_[f"split{k}_test_score"],
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
        "same_scores": same_scores(distributed),
        "best_mean_test_score": float(local.cv_results_["mean_test_score"].max()),
        "training_data_mb": round((X.nbytes + y.nbytes) / 2**20, 1),
        "data_deliveries_per_worker": sorted(n for n, _ in deliveries.values()),
        "data_fetched_mb_per_worker": sorted(
            round(mb, 1) for _, mb in deliveries.values()
        ),
    }
    if args.kill_worker:
        result.update(
            killed_worker_s=round(killed_s, 1),
            killed_worker_fits_rerun=killed_progress.retried,
            killed_worker_lost_workers=killed_progress.lost_workers,
            killed_worker_same_scores=same_scores(killed),
        )
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
    if args.kill_worker:
        print(
            f"| the same, one worker killed mid-search | {killed_s:.1f} s | "
            f"{local_s / killed_s:.2f} | {killed_progress.retried} fits rerun |"
        )
    print(f"\nsame scores in every run: {result['same_scores']}", end="")
    print(f", {result['killed_worker_same_scores']}" if args.kill_worker else "")
    n_fits = n_candidates * FOLDS
    print(
        f"training data ({result['training_data_mb']} MB) delivered to each worker: "
        f"{result['data_deliveries_per_worker']} times (X and y) for {n_fits} fits; "
        f"fetched from other workers: {result['data_fetched_mb_per_worker']} MB"
    )
    with open(args.json, "w") as handle:
        json.dump(result, handle, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
