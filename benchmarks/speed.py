"""skmnist against the seed notebook's plain Keras code and MLPClassifier.

Run: ``python benchmarks/speed.py [--repeats 3] [--backends tensorflow,jax]
[--parts fit,compile,use]``.

Every row is measured in this one run, on real MNIST (``SKMNIST_DATA``, else
``../shared/data/mnist.npz``), and reported as the median of ``--repeats`` runs
with its ratio to the row's baseline: the seed notebook's Keras code on
TensorFlow. Keras fixes its backend per process, so each backend is measured in
worker subprocesses, fits in a fresh one per repeat, alternating between the
backends; memory over repeated fits runs ``repeated_fits.py`` in fresh processes.
The searches and compile rows of issue 14 run in worker subprocesses too, on
small data (``part="compile"``): a fit on a row count or an architecture not
seen before in the process against a repeated fit and MLPClassifier's fit, a
5-fold ``GridSearchCV`` against the same search over MLPClassifier, and a search
with ``n_jobs=-1`` (loky and threading) against ``n_jobs=1``. On JAX every fit
worker starts with an empty compilation cache (``SKMNIST_COMPILATION_CACHE``);
one more fresh process per repeat then fits with the cache that worker filled,
which the "warm cache" row reports, and one more runs the new-architecture fits
and the 5-fold search with the cache its compile worker filled (the "warm
compilation cache" rows: a later process of the same user).
Prints a markdown table and the targets, and writes JSON.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED_MNIST = HERE.parents[1] / "shared" / "data" / "mnist.npz"
SEED = "seed Keras"
PIPELINE = "skmnist pipeline"
MLP = "MLPClassifier pipeline"

FIRST_FIT = "fit, first in a process"
WARM_FIRST_FIT = "fit, first in a process, warm compilation cache"
REPEATED = "2,000 rows, 1 epoch: fit of a seen shape"
NEW_ROWS = "2,000 rows, 1 epoch: fit on a new row count"
NEW_ARCHITECTURE = "2,000 rows, 1 epoch: fit of a new architecture"
SEARCH = "GridSearchCV 4 x cv=5, 2 epochs, 10,007 rows"
# The JAX backend's compile rows again, in a new process whose compilation
# cache the first one filled (as a later session of the same user).
WARM = ", warm compilation cache"
JOBS = "GridSearchCV 4 x cv=3, 2 epochs, 10,000 rows, n_jobs={}"
SEARCH_GRID = {"hidden_units": [128, 512], "batch_size": [64, 128]}
JOBS_GRID = {"hidden_units": [128, 512], "optimizer__learning_rate": [1e-3, 3e-3]}

# Targets of issue 14 whose baseline is another row, or that allow an additive
# margin: (description, row, contender, backend, baseline row, baseline
# contender, baseline backend, largest allowed ratio, allowed extra seconds).
RELATIVE_TARGETS = [
    ("new row count vs a repeated fit, TensorFlow", NEW_ROWS, PIPELINE,
     "tensorflow", REPEATED, PIPELINE, "tensorflow", 1.5, 0.0),
    ("new row count vs a repeated fit, JAX", NEW_ROWS, PIPELINE, "jax", REPEATED,
     PIPELINE, "jax", 1.5, 0.0),
    ("new architecture vs MLPClassifier's fit + 0.5 s, TensorFlow",
     NEW_ARCHITECTURE, PIPELINE, "tensorflow", REPEATED, MLP, "tensorflow", 1.0,
     0.5),
    ("new architecture vs MLPClassifier's fit + 0.5 s, JAX", NEW_ARCHITECTURE,
     PIPELINE, "jax", REPEATED, MLP, "tensorflow", 1.0, 0.5),
    ("GridSearchCV vs MLPClassifier's, TensorFlow", SEARCH, PIPELINE, "tensorflow",
     SEARCH, MLP, "tensorflow", 0.5, 0.0),
    ("GridSearchCV vs MLPClassifier's, JAX", SEARCH, PIPELINE, "jax", SEARCH, MLP,
     "tensorflow", 0.5, 0.0),
    ("new architecture vs MLPClassifier's fit + 0.5 s, JAX, warm compilation cache",
     NEW_ARCHITECTURE + WARM, PIPELINE, "jax", REPEATED, MLP, "tensorflow", 1.0, 0.5),
    ("GridSearchCV vs MLPClassifier's, JAX, warm compilation cache", SEARCH + WARM,
     PIPELINE, "jax", SEARCH, MLP, "tensorflow", 0.5, 0.0),
    ("GridSearchCV n_jobs=-1 (loky) vs n_jobs=1, TensorFlow", JOBS.format(-1),
     PIPELINE, "tensorflow", JOBS.format(1), PIPELINE, "tensorflow", 1.0, 0.0),
    ("GridSearchCV n_jobs=-1 (loky) vs n_jobs=1, JAX", JOBS.format(-1), PIPELINE,
     "jax", JOBS.format(1), PIPELINE, "jax", 1.0, 0.0),
    ("GridSearchCV n_jobs=-1 (loky, workers reused) vs n_jobs=1, TensorFlow",
     JOBS.format(-1) + ", workers reused", PIPELINE, "tensorflow", JOBS.format(1),
     PIPELINE, "tensorflow", 1.0, 0.0),
    ("GridSearchCV n_jobs=-1 (loky, workers reused) vs n_jobs=1, JAX",
     JOBS.format(-1) + ", workers reused", PIPELINE, "jax", JOBS.format(1), PIPELINE,
     "jax", 1.0, 0.0),
    ("pipeline fit, JAX, first in a process, warm compilation cache",
     WARM_FIRST_FIT, PIPELINE, "jax", FIRST_FIT, SEED, "tensorflow", 0.45, 0.0),
]  # fmt: skip

TARGETS = [
    # (description, row, contender, backend, baseline contender, baseline backend,
    #  largest allowed ratio)
    ("pipeline fit, TensorFlow, first in a process", "fit, first in a process",
     PIPELINE, "tensorflow", SEED, "tensorflow", 0.60),
    # The default fit (issue 14, item 6: no regression from 0.39).
    ("pipeline fit, TensorFlow, again", "fit, again", PIPELINE, "tensorflow", SEED,
     "tensorflow", 0.40),
    ("pipeline fit, JAX, first in a process, cold compilation cache",
     "fit, first in a process", PIPELINE, "jax", SEED, "tensorflow", 0.45),
    ("pipeline fit, JAX, again", "fit, again", PIPELINE, "jax", SEED, "tensorflow",
     0.45),
    ("10,000-image predict_proba, TensorFlow", "predict 10,000", PIPELINE,
     "tensorflow", SEED, "tensorflow", 0.25),
    # Keras's model.predict "with its defaults": the default backend, TensorFlow.
    ("10,000-image predict_proba, JAX", "predict 10,000", PIPELINE, "jax", SEED,
     "tensorflow", 0.25),
    ("one-image predict_proba vs MLPClassifier, TensorFlow", "predict 1 image",
     PIPELINE, "tensorflow", MLP, "tensorflow", 1.0),
    # MLPClassifier's latency measured in the JAX worker too (measure_latency).
    ("one-image predict_proba vs MLPClassifier, JAX", "predict 1 image", PIPELINE,
     "jax", MLP, "jax", 1.0),
]  # fmt: skip


# -- what is measured ----------------------------------------------------------


def seed_network():
    """The seed notebook's network, verbatim but for ``keras.Input``."""
    import keras

    network = keras.Sequential(
        [
            keras.Input((28 * 28,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    network.compile(
        optimizer="rmsprop",
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return network


def seed_preprocess(images):
    return images.reshape((len(images), 28 * 28)).astype("float32") / 255


class SeedKeras:
    """The seed notebook's code behind the interface the benchmark uses."""

    def fit(self, images, labels):
        self.network = seed_network()
        self.network.fit(
            seed_preprocess(images), labels, epochs=5, batch_size=128, verbose=0
        )
        return self

    def predict_proba(self, images):
        return self.network.predict(seed_preprocess(images), verbose=0)

    def score(self, images, labels):
        return float(np.mean(self.predict_proba(images).argmax(axis=1) == labels))


def make_contender(name: str):
    if name == SEED:
        return SeedKeras()
    if name == PIPELINE:
        from skmnist import make_mnist_pipeline

        return make_mnist_pipeline()
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    from skmnist import PixelScaler

    return make_pipeline(
        PixelScaler(),
        MLPClassifier(hidden_layer_sizes=(512,), batch_size=128, max_iter=5),
    )


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def summary(seconds: list[float], **extra) -> dict:
    return {
        "median_s": statistics.median(seconds),
        "p99_s": float(np.percentile(seconds, 99)),
        "runs": len(seconds),
        **extra,
    }


def measure_fits(backend: str, data_path: str) -> list[dict]:
    """Two timed fits of each contender in this fresh worker process: the first,
    which pays for tracing and compiling, and a second, as in a grid search."""
    x_train, y_train, x_test, y_test = load(backend, data_path)
    rows = []
    for name in contenders(backend):
        for row in ("fit, first in a process", "fit, again"):
            contender = make_contender(name)
            seconds = timed(contender.fit, x_train, y_train)
            rows.append(
                {"backend": backend, "row": row, "contender": name,
                 "seconds": [seconds], "accuracy": [contender.score(x_test, y_test)]}
            )  # fmt: skip
    return rows


def measure_use(backend: str, repeats: int, data_path: str) -> list[dict]:
    """Prediction and persistence rows of fitted contenders (worker process)."""
    x_train, y_train, x_test, _ = load(backend, data_path)
    fitted = {
        name: make_contender(name).fit(x_train, y_train) for name in contenders(backend)
    }
    rows = measure_latency(fitted, x_test[:1], x_train, y_train)
    rows += measure_predict(fitted, x_test, repeats) + measure_pickles(
        fitted, x_test[:1]
    )
    return [{"backend": backend, **row} for row in rows]


def measure_latency(fitted: dict, one, x_train, y_train) -> list[dict]:
    """One-image predict_proba of each contender, 2,000 calls each: 20 rounds in
    which each contender makes 100 calls in a row (as a server does, its caches
    warm), so that a change in machine load hits all alike.

    MLPClassifier is measured in every backend's process: its latency does not
    depend on Keras's backend, but a figure from another process, minutes
    apart, would compare two machine loads. Outside TensorFlow's process it is
    fitted on 10,000 images only: the arithmetic of a prediction is the same.
    """
    models = dict(fitted)
    if MLP not in models:
        models[MLP] = make_contender(MLP).fit(x_train[:10_000], y_train[:10_000])
    for model in models.values():
        for _ in range(20):  # warm up: compilation, caches
            model.predict_proba(one)
    latencies = {name: [] for name in models}
    for _ in range(20):
        for name, model in models.items():
            model.predict_proba(one)  # after another contender's calls
            latencies[name] += [timed(model.predict_proba, one) for _ in range(100)]
    return [
        {"row": "predict 1 image", "contender": name, **summary(seconds)}
        for name, seconds in latencies.items()
    ]


def load(backend: str, data_path: str):
    import keras

    assert keras.backend.backend() == backend
    with np.load(data_path) as data:
        return data["x_train"], data["y_train"], data["x_test"], data["y_test"]


def contenders(backend: str) -> list[str]:
    # MLPClassifier does not depend on the Keras backend: measured once.
    return [SEED, PIPELINE] + ([MLP] if backend == "tensorflow" else [])


def merge_fit_runs(runs: list[dict]) -> list[dict]:
    """One row per measurement, contender and backend from the repeated runs."""
    merged = {}
    for run in runs:
        key = (run["row"], run["backend"], run["contender"])
        if key in merged:
            merged[key]["seconds"] += run["seconds"]
            merged[key]["accuracy"] += run.get("accuracy", [])
        else:
            merged[key] = {**run, "seconds": list(run["seconds"]),
                           "accuracy": list(run.get("accuracy", []))}  # fmt: skip
    return [
        {"backend": row["backend"], "row": row["row"], "contender": row["contender"],
         **summary(row["seconds"]),
         **({"test_accuracy": statistics.median(row["accuracy"])}
            if row["accuracy"] else {})}
        for row in merged.values()
    ]  # fmt: skip


def measure_predict(fitted: dict, x_test, repeats: int) -> list[dict]:
    rows = []
    for name, model in fitted.items():
        model.predict_proba(x_test)
        batch = [timed(model.predict_proba, x_test) for _ in range(max(repeats, 5))]
        rows.append({"row": "predict 10,000", "contender": name, **summary(batch)})
    return rows


def measure_pickles(fitted: dict, one) -> list[dict]:
    import joblib
    import keras

    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for name, model in fitted.items():
            if name == SEED:
                path = os.path.join(directory, "seed.keras")
                dump_s = timed(model.network.save, path)

                def load_and_predict(path=path):
                    keras.saving.load_model(path).predict(
                        seed_preprocess(one), verbose=0
                    )

                how = "Model.save / keras.saving.load_model"
            else:
                path = os.path.join(directory, "model.joblib")
                dump_s = timed(joblib.dump, model, path)

                def load_and_predict(path=path):
                    joblib.load(path).predict_proba(one)

                how = "joblib.dump / joblib.load"
            rows.append(
                {"row": "save", "contender": name, "median_s": dump_s,
                 "size_mb": os.path.getsize(path) / 2**20, "how": how}
            )  # fmt: skip
            rows.append(
                {"row": "load + first predict", "contender": name,
                 "median_s": timed(load_and_predict), "how": how}
            )  # fmt: skip
    return rows


def measure_repeated_fits(fits: int) -> list[dict]:
    rows = []
    for estimator in ("skmnist", "scikeras"):
        output = subprocess.run(
            [sys.executable, str(HERE / "repeated_fits.py"), "--fits", str(fits),
             "--estimator", estimator],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        result = json.loads(output.strip().splitlines()[-1])
        rows.append(
            {"backend": "tensorflow", "row": f"{fits} repeated fits",
             "contender": estimator, "median_s": result["late_fit_s"], **result}
        )  # fmt: skip
    return rows


def measure_first_fit(backend: str, data_path: str) -> list[dict]:
    """The pipeline's first fit in this fresh worker process, alone."""
    x_train, y_train, x_test, y_test = load(backend, data_path)
    contender = make_contender(PIPELINE)
    seconds = timed(contender.fit, x_train, y_train)
    return [
        {"backend": backend, "row": WARM_FIRST_FIT, "contender": PIPELINE,
         "seconds": [seconds], "accuracy": [contender.score(x_test, y_test)]}
    ]  # fmt: skip


def small_mlp(hidden_units=512, batch_size=128, epochs=1):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline

    from skmnist import PixelScaler

    return Pipeline(
        [("scale", PixelScaler()),
         ("clf", MLPClassifier(hidden_layer_sizes=(hidden_units,),
                               batch_size=batch_size, max_iter=epochs))]
    )  # fmt: skip


def measure_compiles(backend: str, data_path: str, warm: bool = False) -> list[dict]:
    """Fits on shapes not seen before in this worker process, and searches.

    Fits of 1 epoch on 2,000 rows: three of the shape seen in a first fit, three
    on row counts not seen before (1,501, 1,602, 1,703 rows), three of hidden
    sizes not seen before (100, 200, 300 units), and MLPClassifier's of the
    seen shape. Then the 5-fold search of 4 candidates on 10,007 rows, and the
    3-fold search of 4 candidates on 10,000 rows with n_jobs=1 and -1. With
    ``warm``, only the new hidden sizes and the 5-fold search, their rows named
    for a compilation cache an earlier process filled.
    """
    from sklearn.model_selection import GridSearchCV

    from skmnist import make_mnist_pipeline

    x_train, y_train, _, _ = load(backend, data_path)
    x, y = x_train[:2000], y_train[:2000]
    rows = []

    def fits(row, contender, make, sizes):
        seconds = []
        for n_rows, params in sizes:
            model = make(**params)
            seconds.append(timed(model.fit, x[:n_rows], y[:n_rows]))
        rows.append({"backend": backend, "row": row, "contender": contender,
                     "seconds": [statistics.median(seconds)]})  # fmt: skip

    seed = {"epochs": 1, "random_state": 0}
    make_mnist_pipeline(**seed).fit(x, y)  # the shape "seen before"
    new_architectures = [(2000, {**seed, "hidden_units": n}) for n in (100, 200, 300)]
    if warm:
        fits(NEW_ARCHITECTURE + WARM, PIPELINE, make_mnist_pipeline, new_architectures)
        search = GridSearchCV(
            make_mnist_pipeline(epochs=2, random_state=0),
            {f"clf__{name}": values for name, values in SEARCH_GRID.items()},
            cv=5,
        )
        seconds = timed(search.fit, x_train[:10007], y_train[:10007])
        rows.append({"backend": backend, "row": SEARCH + WARM, "contender": PIPELINE,
                     "seconds": [seconds]})  # fmt: skip
        return rows
    fits(REPEATED, PIPELINE, make_mnist_pipeline, [(2000, seed)] * 3)
    fits(NEW_ROWS, PIPELINE, make_mnist_pipeline,
         [(n, seed) for n in (1501, 1602, 1703)])  # fmt: skip
    fits(NEW_ARCHITECTURE, PIPELINE, make_mnist_pipeline, new_architectures)
    if backend == "tensorflow":
        small_mlp().fit(x, y)
        fits(REPEATED, MLP, small_mlp, [(2000, {})] * 3)

    searches = [(PIPELINE, make_mnist_pipeline(epochs=2, random_state=0))]
    if backend == "tensorflow":
        searches.append((MLP, small_mlp(epochs=2)))
    grid = {f"clf__{name}": values for name, values in SEARCH_GRID.items()}
    for name, estimator in searches:
        if name == MLP:
            grid = {"clf__hidden_layer_sizes": [(128,), (512,)],
                    "clf__batch_size": [64, 128]}  # fmt: skip
        search = GridSearchCV(estimator, grid, cv=5)
        seconds = timed(search.fit, x_train[:10007], y_train[:10007])
        rows.append({"backend": backend, "row": SEARCH, "contender": name,
                     "seconds": [seconds]})  # fmt: skip

    import joblib

    grid = {f"clf__{name}": values for name, values in JOBS_GRID.items()}
    # The second loky search finds joblib's worker processes of the first one
    # still running, their imports done and programs compiled (as a second
    # search in a notebook does).
    for n_jobs, joblib_backend, row in (
        (1, "loky", JOBS.format(1)),
        (-1, "loky", JOBS.format(-1)),
        (-1, "loky", JOBS.format(-1) + ", workers reused"),
        (-1, "threading", JOBS.format(-1) + ", threading"),
    ):
        search = GridSearchCV(
            make_mnist_pipeline(epochs=2, random_state=0), grid, cv=3, n_jobs=n_jobs
        )
        with joblib.parallel_config(backend=joblib_backend):
            seconds = timed(search.fit, x_train[:10000], y_train[:10000])
        rows.append({"backend": backend, "row": row, "contender": PIPELINE,
                     "seconds": [seconds]})  # fmt: skip
    # Worker processes of the loky searches: gone before the next measurement.
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    return rows


# -- report --------------------------------------------------------------------


def find(rows, row, contender, backend):
    for candidate in rows:
        if (candidate["row"], candidate["contender"], candidate["backend"]) == (
            row,
            contender,
            backend,
        ):
            return candidate
    return None


def add_ratios(rows: list[dict]) -> None:
    for row in rows:
        baseline = find(rows, row["row"], SEED, "tensorflow")
        if row["row"].endswith("repeated fits"):
            baseline = find(rows, row["row"], "scikeras", "tensorflow")
        if baseline:
            row["ratio"] = row["median_s"] / baseline["median_s"]


def format_seconds(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds:.2f} s"


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| measurement | contender | backend | median | p99 | ratio | notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        notes = []
        if "test_accuracy" in row:
            notes.append(f"test accuracy {row['test_accuracy']:.4f}")
        if "size_mb" in row:
            notes.append(f"{row['size_mb']:.1f} MB")
        if "rss_growth_mb" in row:
            notes.append(
                f"RSS +{row['rss_growth_mb']} MB after the 5th fit, "
                f"late/early fit time {row['late_over_early']}"
            )
        p99 = format_seconds(row["p99_s"]) if "p99_s" in row else ""
        ratio = f"{row['ratio']:.2f}" if "ratio" in row else ""
        median = format_seconds(row["median_s"])
        lines.append(
            f"| {row['row']} | {row['contender']} | {row['backend']} | {median} | "
            f"{p99} | {ratio} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def rst_table(rows: list[dict]) -> str:
    """The table of :func:`markdown_table` as an rst list-table, for the docs."""
    lines = markdown_table(rows).splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    del cells[1]  # the markdown separator row
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in cells:
        out.append(f"   * - {row[0]}")
        out.extend(f"     - {cell}".rstrip() for cell in row[1:])
    return "\n".join(out) + "\n"


def describe_target(target: dict) -> str:
    mark = "met" if target["met"] else "NOT MET"
    return (
        f"{target['target']}: {target['ratio']:.2f} x {target['versus']} "
        f"(target <= {target['limit']:.2f}): {mark}"
    )


def check_targets(rows: list[dict]) -> list[dict]:
    results = []
    for description, row, name, backend, base, base_backend, limit in TARGETS:
        measured, baseline = (
            find(rows, row, name, backend),
            find(rows, row, base, base_backend),
        )
        if measured is None or baseline is None:
            continue
        ratio = measured["median_s"] / baseline["median_s"]
        met = ratio <= limit
        if row.startswith("fit"):
            met = met and measured["test_accuracy"] >= 0.975
        results.append(
            {"target": description, "ratio": ratio, "limit": limit, "met": met,
             "versus": f"{base} ({base_backend})"}
        )  # fmt: skip
    for (description, row, name, backend, base_row, base, base_backend, limit,
         extra_s) in RELATIVE_TARGETS:  # fmt: skip
        measured, baseline = (
            find(rows, row, name, backend),
            find(rows, base_row, base, base_backend),
        )
        if measured is None or baseline is None:
            continue
        allowed = limit * baseline["median_s"] + extra_s
        ratio = measured["median_s"] / baseline["median_s"]
        met = measured["median_s"] <= allowed
        if "test_accuracy" in measured:
            met = met and measured["test_accuracy"] >= 0.975
        versus = f"{base} ({base_backend}, {base_row})"
        if extra_s:
            # An additive target: reported in seconds, against the allowance.
            ratio, limit = measured["median_s"] / allowed, 1.0
            versus = (
                f"({base} ({base_backend}) {baseline['median_s']:.2f} s + "
                f"{extra_s} s), measured {measured['median_s']:.2f} s"
            )
        results.append({"target": description, "ratio": ratio, "limit": limit,
                        "met": met, "versus": versus})  # fmt: skip
    one_image = [
        r for r in rows if r["row"] == "predict 1 image" and r["contender"] == PIPELINE
    ]
    for row in one_image:
        results.append(
            {"target": f"one-image predict_proba <= 0.5 ms, {row['backend']}",
             "ratio": row["median_s"] / 0.5e-3, "limit": 1.0,
             "met": row["median_s"] <= 0.5e-3, "versus": "0.5 ms"}
        )  # fmt: skip
    return results


def run_worker(
    backend: str, part: str, repeats: int, data_path: str, cache: str = "off"
) -> list[dict]:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2",
           "SKMNIST_COMPILATION_CACHE": cache}  # fmt: skip
    output = subprocess.run(
        [sys.executable, __file__, "--worker", backend, "--part", part,
         "--repeats", str(repeats), "--data", data_path],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per median (3)")
    parser.add_argument(
        "--backends", default="tensorflow,jax", help="comma-separated Keras backends"
    )
    parser.add_argument("--data", help="path of mnist.npz (default: SKMNIST_DATA)")
    parser.add_argument(
        "--repeated-fits", type=int, default=30, help="30 (at least 20; 0: skip)"
    )
    parser.add_argument(
        "--json", default=str(HERE / "results.json"), help="where to write the results"
    )
    parser.add_argument(
        "--rst-dir", help="also write the table and targets as rst there (docs/)"
    )
    parser.add_argument(
        "--parts",
        default="fit,compile,use",
        help="comma-separated: fit (fits on all of MNIST), compile (new shapes, "
        "searches, n_jobs), use (predict, save); all by default",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument(
        "--part",
        choices=["fit", "first-fit", "compile", "compile-warm", "use"],
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    data_path = args.data or os.environ.get("SKMNIST_DATA") or str(SHARED_MNIST)
    if 0 < args.repeated_fits < 20:
        parser.error("--repeated-fits must be 0 (skip) or at least 20")
    if args.worker:
        warnings.simplefilter(
            "ignore"
        )  # MLPClassifier's ConvergenceWarning at 5 epochs
        if args.part == "fit":
            rows = measure_fits(args.worker, data_path)
        elif args.part == "first-fit":
            rows = measure_first_fit(args.worker, data_path)
        elif args.part in ("compile", "compile-warm"):
            rows = measure_compiles(
                args.worker, data_path, warm=args.part == "compile-warm"
            )
        else:
            rows = measure_use(args.worker, args.repeats, data_path)
        print(json.dumps(rows))
        return
    if not Path(data_path).is_file():
        sys.exit(f"MNIST not found at {data_path}: pass --data or set SKMNIST_DATA")
    backends = args.backends.split(",")
    parts = set(args.parts.split(","))
    if not parts <= {"fit", "compile", "use"}:
        parser.error(f"--parts: unknown part in {args.parts!r}")
    fit_runs = []
    # Repeats alternate between the backends, each fit in a fresh process, so
    # that changes in machine load hit every contender alike.
    with tempfile.TemporaryDirectory() as caches:
        for repeat in range(args.repeats):
            for backend in backends:
                # A cold compilation cache for every fit worker; the JAX
                # backend's warm row reuses the one its fit worker filled.
                cache = os.path.join(caches, f"{backend}-{repeat}")
                if "fit" in parts:
                    print(f"fit {repeat + 1}/{args.repeats}, {backend}...",
                          file=sys.stderr, flush=True)  # fmt: skip
                    fit_runs += run_worker(backend, "fit", 1, data_path, cache)
                if "fit" in parts and backend == "jax":
                    fit_runs += run_worker(backend, "first-fit", 1, data_path, cache)
                if "compile" in parts:
                    print(f"compiles and searches {repeat + 1}/{args.repeats}, "
                          f"{backend}...", file=sys.stderr, flush=True)  # fmt: skip
                    fit_runs += run_worker(
                        backend, "compile", 1, data_path, cache + "-compile"
                    )
                if "compile" in parts and backend == "jax":
                    fit_runs += run_worker(
                        backend, "compile-warm", 1, data_path, cache + "-compile"
                    )
    rows = merge_fit_runs(fit_runs)
    for backend in backends if "use" in parts else ():
        print(f"predict and save, {backend}...", file=sys.stderr, flush=True)
        rows += run_worker(backend, "use", args.repeats, data_path)
    if args.repeated_fits:
        print("measuring repeated fits...", file=sys.stderr, flush=True)
        rows += measure_repeated_fits(args.repeated_fits)
    add_ratios(rows)
    targets = check_targets(rows)
    print(markdown_table(rows))
    print()
    for target in targets:
        print(f"- {describe_target(target)}")
    if args.rst_dir:
        rst_dir = Path(args.rst_dir)
        (rst_dir / "_benchmark_table.rst").write_text(rst_table(rows))
        (rst_dir / "_benchmark_targets.rst").write_text(
            "".join(f"* {describe_target(target)}\n" for target in targets)
        )
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "repeats": args.repeats},
        "rows": rows,
        "targets": targets,
    }  # fmt: skip
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
