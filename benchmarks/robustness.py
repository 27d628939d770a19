"""How the digit classifier holds up on digits that are not MNIST's (issue 27).

Run: ``SKMNIST_DATA=/path/to/mnist.npz python benchmarks/robustness.py
[--backends tensorflow,jax] [--rows 10000] [--json robustness.json]
[--plot robustness.png]``.

MNIST's test digits under MNIST-C-style corruptions (Mu & Gilmer 2019) that a
drawn or photographed digit meets, each drawn per image from a fixed seed by
:func:`skmnist.datasets.corrupt_digits`:

* **rotation**: uniform in +-30 degrees;
* **shear**: horizontal (a slant), uniform in +-0.3;
* **scale**: uniform in 0.6-1.3;
* **thickness**: strokes one pixel thicker or thinner (3x3 grey dilation or
  erosion, one or the other at random);
* **elastic**: Simard, Steinkraus & Platt's (2003) distortion, alpha = 34,
  sigma = 4;
* **off-centre**: the digit at a random place on a canvas three times its size.

Each corrupted image (on a canvas large enough that no ink leaves it) goes
through :func:`skmnist.preprocess_digit_image`, as ``skmnist predict`` does with
a photo: re-cropping, re-scaling and re-centring are part of what is measured,
as they are for a user. **clean** is the test set through the same
preprocessing; **as stored** is MNIST's own test images, unprocessed. An image
the preprocessing refuses (no digit left: erosion can erase a thin stroke)
counts as a wrong answer: ``skmnist predict`` gives none.

Each model trains on the 60,000 training images in one worker process per Keras
backend, and is scored on every corruption; the table gives accuracies, their
mean over the six corruptions, and the training time. The models (``MODELS``)
are the seed recipe (``make_mnist_pipeline(random_state=0)``: 512 units, 5
epochs) and that of ``skmnist train --robust``
(``skmnist._pipeline.robust_recipe``: about 10 minutes a backend on 2 cores).
After each epoch the clean and mean corrupted accuracies are recorded against
the training time so far (the evaluation's own time left out): ``--plot``
draws them.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from skmnist.datasets import CORRUPTIONS

HERE = Path(__file__).resolve().parent
SHARED_MNIST = HERE.parents[1] / "shared" / "data" / "mnist.npz"
SEED = 2027
SIDE = 28


def corrupted(images: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``images`` under corruption ``name`` (``"clean"``: none), each through
    ``skmnist predict``'s preprocessing, the same for the same seed; and which
    of them the preprocessing refused (no digit left: an eroded thin stroke),
    as ``skmnist predict`` would: they count as wrong answers."""
    from skmnist import preprocess_digit_image
    from skmnist.datasets import corrupt_digits

    if name == "clean":
        pictures = images
    else:
        # One seed per corruption: each is reproducible on its own.
        seed = SEED + list(CORRUPTIONS).index(name)
        pictures = corrupt_digits(images, name, random_state=seed)
    out = np.zeros((len(images), SIDE, SIDE), np.uint8)
    refused = np.zeros(len(images), bool)
    for i, picture in enumerate(pictures):
        try:
            out[i] = preprocess_digit_image(picture)
        except ValueError:
            refused[i] = True
    return out, refused


def seed_recipe(n_samples: int):
    from skmnist import make_mnist_pipeline

    return make_mnist_pipeline(random_state=0)


def robust(n_samples: int):
    from skmnist import make_mnist_pipeline
    from skmnist._pipeline import robust_recipe

    return make_mnist_pipeline(**robust_recipe(n_samples), random_state=0)


MODELS = {"seed": seed_recipe, "robust": robust}


def _accuracy_curve(test_sets: dict, y_test: np.ndarray):
    """A Keras callback that records, after each epoch, the training time so
    far (its own evaluation excluded) and the network's accuracy on the clean
    test set and the mean over the corruptions: accuracy against training
    time, for the plot."""
    import keras

    flat = {
        name: images.reshape(len(images), -1).astype(np.float32) / 255
        for name, (images, _) in test_sets.items()
        if name != "as stored"
    }

    class AccuracyCurve(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.points = []
            self.evaluating = 0.0
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            evaluation_start = time.perf_counter()
            accuracy = {}
            for name, x in flat.items():
                predicted = self.model.predict(x, batch_size=2048, verbose=0)
                right = (predicted.argmax(axis=1) == y_test) & ~test_sets[name][1]
                accuracy[name] = float(right.mean())
            self.points.append(
                {
                    "epoch": epoch + 1,
                    "seconds": evaluation_start - self.started - self.evaluating,
                    "clean": accuracy["clean"],
                    "mean of corruptions": statistics.fmean(
                        accuracy[name] for name in CORRUPTIONS
                    ),
                }
            )
            self.evaluating += time.perf_counter() - evaluation_start

    return AccuracyCurve()


def measure(backend: str, data: str, rows: int) -> dict:
    import keras

    assert keras.backend.backend() == backend, keras.backend.backend()
    with np.load(data) as mnist:
        x_train, y_train = mnist["x_train"], mnist["y_train"]
        x_test, y_test = mnist["x_test"][:rows], mnist["y_test"][:rows]
    test_sets = {"as stored": (x_test, np.zeros(len(x_test), bool))}
    for name in ["clean", *CORRUPTIONS]:
        test_sets[name] = corrupted(x_test, name)
    results = {}
    for model_name, recipe in MODELS.items():
        model = recipe(len(x_train))
        curve = _accuracy_curve(test_sets, y_test)
        model.set_params(clf__callbacks=[curve])
        start = time.perf_counter()
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start - curve.evaluating
        accuracy = {
            name: float(np.mean((model.predict(images) == y_test) & ~refused))
            for name, (images, refused) in test_sets.items()
        }
        accuracy["mean of corruptions"] = statistics.fmean(
            accuracy[name] for name in CORRUPTIONS
        )
        results[model_name] = {
            "train_seconds": seconds,
            "accuracy": accuracy,
            "curve": curve.points,
        }
    refused = {name: int(r.sum()) for name, (_, r) in test_sets.items()}
    return {"backend": backend, "rows": rows, "refused": refused, "models": results}


def plot_curves(rows: list[dict], path: str) -> None:
    """Accuracy against training time, one line per model and backend: clean
    test digits solid, the mean over the corruptions dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 4.2))
    colours = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for row in rows:
        for name, result in row["models"].items():
            colour = next(colours)
            seconds = [point["seconds"] for point in result["curve"]]
            for measure_name, style in [("clean", "-"), ("mean of corruptions", "--")]:
                ax.plot(
                    seconds,
                    [100 * point[measure_name] for point in result["curve"]],
                    style,
                    marker=".",
                    color=colour,
                    label=f"{name} ({row['backend']}): {measure_name}",
                )
    ax.axhline(99, color="grey", linewidth=0.8)
    ax.axhline(97, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("training time (s; after each epoch)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(75, 100)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Accuracy against training time: the targets 99% clean, 97% corrupted")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def markdown_table(rows: list[dict]) -> str:
    columns = [(row["backend"], name) for row in rows for name in row["models"]]
    by_column = {
        (row["backend"], name): result
        for row in rows
        for name, result in row["models"].items()
    }
    header = "| test images | " + " | ".join(f"{m} ({b})" for b, m in columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    names = next(iter(by_column.values()))["accuracy"]
    for name in names:
        cells = [f"{by_column[c]['accuracy'][name]:.4f}" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    cells = [f"{by_column[c]['train_seconds']:.0f} s" for c in columns]
    lines.append("| training time | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--rows", type=int, default=10_000, help="test images")
    parser.add_argument("--data", help="path of mnist.npz (default: SKMNIST_DATA)")
    parser.add_argument("--json", default="robustness.json")
    parser.add_argument(
        "--plot", help="also draw accuracy against training time to this PNG"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data = args.data or os.environ.get("SKMNIST_DATA") or str(SHARED_MNIST)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.worker:
        print(json.dumps(measure(args.worker, args.data, args.rows)))
        return
    if not Path(args.data).is_file():
        sys.exit(f"MNIST not found at {args.data}: pass --data or set SKMNIST_DATA")
    rows = []
    for backend in args.backends.split(","):
        command = [
            sys.executable, __file__, "--worker", backend,
            "--data", args.data, "--rows", str(args.rows),
        ]  # fmt: skip
        output = subprocess.run(
            command,
            check=True,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "KERAS_BACKEND": backend},
        ).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    print(markdown_table(rows))
    print("\nimages the preprocessing refused (counted wrong):", rows[0]["refused"])
    if args.plot:
        plot_curves(rows, args.plot)
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "corruption_seed": SEED,
        "rows": rows,
    }  # fmt: skip
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
