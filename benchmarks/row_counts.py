"""Fits on new numbers of rows and new learning rates against a repeated fit.

Run: ``python benchmarks/row_counts.py [--repeats 3] [--backends tensorflow,jax]
[--tree PATH ...] [--full]``.

A search or cross-validation fits the same architecture on folds of other sizes
and with other learning rates: those fits should reuse the compiled programs of
the first (issue 14, item 1). In one worker process per backend and repeat, on
real MNIST (``SKMNIST_DATA``), each row times 1-epoch pipeline fits of fresh
estimators after two warm-up fits on 2,000 rows; every row is the median over
its fits and repeats, and its ratio is to the "same shape" row of that process.
``--full`` adds the default 5-epoch fit on all 60,000 rows (its second fit in
the process) and its test accuracy. ``--tree`` runs the same measurement with
``skmnist`` imported from other source trees (e.g. an export of main) in
alternating worker processes of the same run, for side-by-side figures.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED_MNIST = HERE.parents[1] / "shared" / "data" / "mnist.npz"
ROWS = 2000
NEW_ROW_COUNTS = (1501, 1602, 1703, 1804, 1905)
NEW_LEARNING_RATES = (1.1e-3, 1.2e-3, 1.3e-3, 1.4e-3, 1.5e-3)
TARGET = 1.5  # largest allowed ratio to a repeated fit of the same shape


def timed_fit(x, y, **params) -> float:
    from skmnist import make_mnist_pipeline

    pipeline = make_mnist_pipeline(epochs=1, random_state=0, **params)
    start = time.perf_counter()
    pipeline.fit(x, y)
    return time.perf_counter() - start


def worker(data_path: str, full: bool) -> dict:
    with np.load(data_path) as data:
        x, y = data["x_train"], data["y_train"]
        x_test, y_test = data["x_test"], data["y_test"]
    for _ in range(2):  # the first fit in a process compiles; the second warms
        timed_fit(x[:ROWS], y[:ROWS])
    seconds = {
        "same shape": [timed_fit(x[:ROWS], y[:ROWS]) for _ in range(5)],
        "new row count": [timed_fit(x[:n], y[:n]) for n in NEW_ROW_COUNTS],
        "new learning rate": [
            timed_fit(x[:ROWS], y[:ROWS], optimizer__learning_rate=rate)
            for rate in NEW_LEARNING_RATES
        ],
    }
    result = {"seconds": seconds}
    if full:
        from skmnist import make_mnist_pipeline

        make_mnist_pipeline().fit(x, y)
        pipeline = make_mnist_pipeline()
        start = time.perf_counter()
        pipeline.fit(x, y)
        seconds["default fit, 60,000 rows (again)"] = [time.perf_counter() - start]
        result["accuracy"] = float(pipeline.score(x_test, y_test))
    return result


def run_worker(backend: str, tree: str, data_path: str, full: bool) -> dict:
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "PYTHONPATH": tree,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    command = [sys.executable, __file__, "--worker", "--data", data_path]
    if full:
        command.append("--full")
    output = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=1800, check=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--tree", action="append", help="source tree of skmnist")
    parser.add_argument("--data", default=os.environ.get("SKMNIST_DATA"))
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_path = args.data or str(SHARED_MNIST)
    if args.worker:
        print(json.dumps(worker(data_path, args.full)))
        return
    trees = args.tree or [str(HERE.parent)]
    backends = args.backends.split(",")
    runs = {(b, t): [] for b in backends for t in trees}
    for _ in range(args.repeats):  # alternating, so that load hits all alike
        for backend in backends:
            for tree in trees:
                runs[backend, tree].append(
                    run_worker(backend, tree, data_path, args.full)
                )
    print("| backend | tree | fit | median s | ratio to same shape |")
    print("|---|---|---|---|---|")
    for (backend, tree), results in runs.items():
        medians = {
            row: statistics.median(s for r in results for s in r["seconds"][row])
            for row in results[0]["seconds"]
        }
        for row, median in medians.items():
            ratio = median / medians["same shape"]
            met = (
                ""
                if row == "same shape" or "60,000" in row
                else (
                    " (target <= 1.5: "
                    + ("met" if ratio <= TARGET else "NOT met")
                    + ")"
                )
            )
            print(f"| {backend} | {tree} | {row} | {median:.3f} | {ratio:.2f}{met} |")
        if "accuracy" in results[0]:
            accuracy = statistics.median(r["accuracy"] for r in results)
            print(f"| {backend} | {tree} | test accuracy, 60,000 rows | "
                  f"{accuracy:.4f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
