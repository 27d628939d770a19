"""skmnist against the seed notebook's plain Keras code and MLPClassifier.

Run: ``python benchmarks/speed.py [--repeats 3] [--backends tensorflow,jax]``.

Every row is measured in this one run, on real MNIST (``SKMNIST_DATA``, else
``../shared/data/mnist.npz``), and reported as the median of ``--repeats`` runs
with its ratio to the row's baseline: the seed notebook's Keras code on
TensorFlow. Keras fixes its backend per process, so each backend is measured in
worker subprocesses, fits in a fresh one per repeat, alternating between the
backends; memory over repeated fits runs ``repeated_fits.py`` in fresh processes.
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

TARGETS = [
    # (description, row, contender, backend, baseline contender, baseline backend,
    #  largest allowed ratio)
    ("pipeline fit, TensorFlow, first in a process", "fit, first in a process",
     PIPELINE, "tensorflow", SEED, "tensorflow", 0.60),
    ("pipeline fit, TensorFlow, again", "fit, again", PIPELINE, "tensorflow", SEED,
     "tensorflow", 0.60),
    ("pipeline fit, JAX, first in a process", "fit, first in a process", PIPELINE,
     "jax", SEED, "tensorflow", 0.45),
    ("pipeline fit, JAX, again", "fit, again", PIPELINE, "jax", SEED, "tensorflow",
     0.45),
    ("10,000-image predict_proba, TensorFlow", "predict 10,000", PIPELINE,
     "tensorflow", SEED, "tensorflow", 0.25),
    # Keras's model.predict "with its defaults": the default backend, TensorFlow.
    ("10,000-image predict_proba, JAX", "predict 10,000", PIPELINE, "jax", SEED,
     "tensorflow", 0.25),
    ("one-image predict_proba vs MLPClassifier, TensorFlow", "predict 1 image",
     PIPELINE, "tensorflow", MLP, "tensorflow", 1.0),
    ("one-image predict_proba vs MLPClassifier, JAX", "predict 1 image", PIPELINE,
     "jax", MLP, "tensorflow", 1.0),
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
    rows = measure_predict(fitted, x_test, repeats) + measure_pickles(
        fitted, x_test[:1]
    )
    return [{"backend": backend, **row} for row in rows]


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
            merged[key]["accuracy"] += run["accuracy"]
        else:
            merged[key] = {**run, "seconds": list(run["seconds"]),
                           "accuracy": list(run["accuracy"])}  # fmt: skip
    return [
        {"backend": row["backend"], "row": row["row"], "contender": row["contender"],
         **summary(row["seconds"]), "test_accuracy": statistics.median(row["accuracy"])}
        for row in merged.values()
    ]  # fmt: skip


def measure_predict(fitted: dict, x_test, repeats: int) -> list[dict]:
    rows = []
    one = x_test[:1]
    for name, model in fitted.items():
        for _ in range(20):  # warm up: compilation, caches
            model.predict_proba(one)
        latencies = [timed(model.predict_proba, one) for _ in range(1000)]
        rows.append({"row": "predict 1 image", "contender": name, **summary(latencies)})
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


def run_worker(backend: str, part: str, repeats: int, data_path: str) -> list[dict]:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
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
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=["fit", "use"], help=argparse.SUPPRESS)
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
        else:
            rows = measure_use(args.worker, args.repeats, data_path)
        print(json.dumps(rows))
        return
    if not Path(data_path).is_file():
        sys.exit(f"MNIST not found at {data_path}: pass --data or set SKMNIST_DATA")
    backends = args.backends.split(",")
    fit_runs = []
    # Repeats alternate between the backends, each fit in a fresh process, so
    # that changes in machine load hit every contender alike.
    for repeat in range(args.repeats):
        for backend in backends:
            print(f"fit {repeat + 1}/{args.repeats}, {backend}...", file=sys.stderr)
            fit_runs += run_worker(backend, "fit", 1, data_path)
    rows = merge_fit_runs(fit_runs)
    for backend in backends:
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
