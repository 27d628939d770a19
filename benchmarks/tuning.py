"""An early-stopping grid search of the MNIST pipeline against MLPClassifier's.

Run: ``SKMNIST_DATA=/path/to/mnist.npz python benchmarks/tuning.py [--repeats 1]
[--train-size 10000] [--epochs 30] [--json tuning_benchmark.json]``.

Both searches are ``GridSearchCV(cv=3)`` over the same grid of hidden layer
sizes and L2 penalties (``alpha``), with early stopping on a stratified tenth of
each training fold and at most ``--epochs`` epochs, on the first
``--train-size`` MNIST training images:

* **skmnist**: ``make_mnist_pipeline(early_stopping=True, epochs=30,
  random_state=0)`` over ``clf__hidden_units`` and ``clf__alpha``;
* **MLPClassifier**: ``Pipeline([PixelScaler(), MLPClassifier(
  early_stopping=True, max_iter=30, random_state=0)])`` over
  ``clf__hidden_layer_sizes`` and ``clf__alpha``.

Each search runs in a fresh worker process (what is timed is ``search.fit``,
refit included, not the imports), the contenders alternating from one repeat
to the next so that changes in machine load hit them alike. Prints a markdown
table (medians over ``--repeats``) and the targets: skmnist's search in at most
0.3 x MLPClassifier's time, with a best mean cross-validated accuracy at least
MLPClassifier's - 0.003. Writes the figures as JSON.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED_MNIST = HERE.parents[1] / "shared" / "data" / "mnist.npz"
SKMNIST = "skmnist"
MLP = "MLPClassifier"
HIDDEN = [(256,), (512,), (512, 256)]
ALPHAS = [1e-4, 1e-3]
FOLDS = 3
TIME_TARGET = 0.3  # largest allowed ratio of skmnist's search time to MLP's
SCORE_MARGIN = 0.003  # how far below MLPClassifier's best score skmnist's may be


def epochs_trained(estimator, X, y) -> float:
    """A "score" of the epochs a fitted pipeline's classifier trained, so that
    ``cv_results_`` reports how long early stopping let each candidate train."""
    return float(estimator[-1].n_iter_)


def make_search(contender: str, epochs: int):
    from sklearn.model_selection import GridSearchCV

    if contender == SKMNIST:
        from skmnist import make_mnist_pipeline

        pipeline = make_mnist_pipeline(
            early_stopping=True, epochs=epochs, random_state=0
        )
        grid = {"clf__hidden_units": HIDDEN, "clf__alpha": ALPHAS}
    else:
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import Pipeline

        from skmnist import PixelScaler

        pipeline = Pipeline(
            [
                ("scale", PixelScaler()),
                (
                    "clf",
                    MLPClassifier(early_stopping=True, max_iter=epochs, random_state=0),
                ),
            ]
        )
        grid = {"clf__hidden_layer_sizes": HIDDEN, "clf__alpha": ALPHAS}
    return GridSearchCV(
        pipeline,
        grid,
        cv=FOLDS,
        scoring={"accuracy": "accuracy", "epochs": epochs_trained},
        refit="accuracy",
    )


def measure(contender: str, data_path: str, train_size: int, epochs: int) -> dict:
    """One search, in this (fresh) process."""
    with np.load(data_path) as data:
        X, y = data["x_train"][:train_size], data["y_train"][:train_size]
        x_test, y_test = data["x_test"], data["y_test"]
    search = make_search(contender, epochs)
    with warnings.catch_warnings():
        # MLPClassifier's ConvergenceWarning where 30 epochs do not converge.
        warnings.simplefilter("ignore")
        load_before = os.getloadavg()[0]
        start, cpu_start = time.perf_counter(), time.process_time()
        search.fit(X, y)
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
    results = search.cv_results_
    name = "hidden_units" if contender == SKMNIST else "hidden_layer_sizes"
    candidates = [
        {
            "hidden": list(np.atleast_1d(params[f"clf__{name}"]).tolist()),
            "alpha": params["clf__alpha"],
            "mean_cv_accuracy": float(results["mean_test_accuracy"][i]),
            "std_cv_accuracy": float(results["std_test_accuracy"][i]),
            "mean_epochs": float(results["mean_test_epochs"][i]),
            "mean_fit_s": float(results["mean_fit_time"][i]),
        }
        for i, params in enumerate(results["params"])
    ]
    best = search.best_estimator_[-1]
    return {
        "contender": contender,
        "seconds": seconds,
        # CPU time of all the process's threads, and the machine's load: on a
        # shared machine, what tells a slow search from a busy machine.
        "cpu_seconds": cpu_seconds,
        "load_average": [load_before, os.getloadavg()[0]],
        "best_params": {
            key.removeprefix("clf__"): np.atleast_1d(value).tolist()
            if "hidden" in key
            else value
            for key, value in search.best_params_.items()
        },
        "best_cv_accuracy": float(search.best_score_),
        "refit_epochs": int(best.n_iter_),
        "test_accuracy": float(search.score(x_test, y_test)),
        "candidates": candidates,
    }


def run_worker(contender: str, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        contender,
        "--data",
        args.data,
        "--train-size",
        str(args.train_size),
        "--epochs",
        str(args.epochs),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def markdown_table(runs: dict[str, list[dict]]) -> str:
    baseline = median(runs[MLP], "seconds")
    cpu_baseline = median(runs[MLP], "cpu_seconds")
    lines = [
        "| search | seconds | ratio | CPU seconds | ratio | best mean CV accuracy "
        "| best parameters | refit epochs | test accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for contender in (SKMNIST, MLP):
        last = runs[contender][-1]
        seconds = median(runs[contender], "seconds")
        cpu_seconds = median(runs[contender], "cpu_seconds")
        score = median(runs[contender], "best_cv_accuracy")
        test = median(runs[contender], "test_accuracy")
        params = ", ".join(f"{k}={v}" for k, v in last["best_params"].items())
        lines.append(
            f"| {contender} | {seconds:.1f} | {seconds / baseline:.2f} "
            f"| {cpu_seconds:.1f} | {cpu_seconds / cpu_baseline:.2f} "
            f"| {score:.4f} | {params} | {last['refit_epochs']} | {test:.4f} |"
        )
    lines += [
        "",
        "| candidate | skmnist CV accuracy | skmnist epochs | skmnist fit s "
        "| MLP CV accuracy | MLP epochs | MLP fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    ours, theirs = runs[SKMNIST][-1]["candidates"], runs[MLP][-1]["candidates"]
    for a, b in zip(ours, theirs, strict=True):
        lines.append(
            f"| {tuple(a['hidden'])}, alpha={a['alpha']:g} "
            f"| {a['mean_cv_accuracy']:.4f} | {a['mean_epochs']:.1f} "
            f"| {a['mean_fit_s']:.1f} | {b['mean_cv_accuracy']:.4f} "
            f"| {b['mean_epochs']:.1f} | {b['mean_fit_s']:.1f} |"
        )
    return "\n".join(lines)


def check_targets(runs: dict[str, list[dict]]) -> list[dict]:
    ratio = median(runs[SKMNIST], "seconds") / median(runs[MLP], "seconds")
    ours = median(runs[SKMNIST], "best_cv_accuracy")
    theirs = median(runs[MLP], "best_cv_accuracy")
    return [
        {
            "target": f"search time <= {TIME_TARGET} x MLPClassifier's",
            "value": round(ratio, 3),
            "met": ratio <= TIME_TARGET,
        },
        {
            "target": f"best mean CV accuracy >= MLPClassifier's - {SCORE_MARGIN}",
            "value": round(ours - theirs, 4),
            "met": ours >= theirs - SCORE_MARGIN,
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="searches each (1)")
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=30, help="most epochs (30)")
    parser.add_argument("--data", help="path of mnist.npz (default: SKMNIST_DATA)")
    parser.add_argument("--json", default="tuning_benchmark.json")
    parser.add_argument("--worker", choices=[SKMNIST, MLP], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data = args.data or os.environ.get("SKMNIST_DATA") or str(SHARED_MNIST)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.worker:
        print(json.dumps(measure(args.worker, args.data, args.train_size, args.epochs)))
        return
    if not Path(args.data).is_file():
        sys.exit(f"MNIST not found at {args.data}: pass --data or set SKMNIST_DATA")
    runs = {SKMNIST: [], MLP: []}
    for repeat in range(args.repeats):
        # Alternate which goes first, so that a drift in load hits both alike.
        order = (SKMNIST, MLP) if repeat % 2 == 0 else (MLP, SKMNIST)
        for contender in order:
            print(f"{contender} search {repeat + 1}/{args.repeats}...",
                  file=sys.stderr, flush=True)  # fmt: skip
            run = run_worker(contender, args)
            print(f"  {run['seconds']:.1f} s, best {run['best_cv_accuracy']:.4f}",
                  file=sys.stderr, flush=True)  # fmt: skip
            runs[contender].append(run)
    targets = check_targets(runs)
    print(markdown_table(runs))
    print()
    for target in targets:
        met = "met" if target["met"] else "not met"
        print(f"- {target['target']}: {target['value']} ({met})")
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "settings": {"train_size": args.train_size, "epochs": args.epochs,
                     "folds": FOLDS, "repeats": args.repeats},
        "runs": runs,
        "targets": targets,
    }  # fmt: skip
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
