"""How the digit classifier holds up on digits that are not MNIST's (issue 27).

Run: ``SKMNIST_DATA=/path/to/mnist.npz python benchmarks/robustness.py
[--backends tensorflow,jax] [--rows 10000] [--json robustness.json]``.

MNIST's test digits under MNIST-C-style corruptions (Mu & Gilmer 2019) that a
drawn or photographed digit meets, each drawn per image from a fixed seed:

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
from scipy import ndimage

HERE = Path(__file__).resolve().parent
SHARED_MNIST = HERE.parents[1] / "shared" / "data" / "mnist.npz"
SEED = 2027
SIDE = 28


def _on_canvas(image: np.ndarray, margin: int) -> np.ndarray:
    return np.pad(image.astype(np.float32), margin)


def _affine(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``image`` mapped by the 2x2 ``matrix`` about its centre, on a canvas of
    twice its side so that no ink is cut off (bilinear)."""
    canvas = _on_canvas(image, SIDE // 2)
    centre = (np.array(canvas.shape) - 1) / 2
    # affine_transform maps output coordinates to input ones: the inverse.
    inverse = np.linalg.inv(matrix)
    offset = centre - inverse @ centre
    return ndimage.affine_transform(canvas, inverse, offset=offset, order=1)


def rotation(image, rng):
    angle = np.deg2rad(rng.uniform(-30, 30))
    cos, sin = np.cos(angle), np.sin(angle)
    return _affine(image, np.array([[cos, -sin], [sin, cos]]))


def shear(image, rng):
    # Rows are the first axis: x' = x + s * y slants the digit.
    return _affine(image, np.array([[1.0, 0.0], [rng.uniform(-0.3, 0.3), 1.0]]))


def scale(image, rng):
    return _affine(image, np.eye(2) * rng.uniform(0.6, 1.3))


def thickness(image, rng):
    canvas = _on_canvas(image, 2)
    grow = ndimage.grey_dilation if rng.random() < 0.5 else ndimage.grey_erosion
    return grow(canvas, size=(3, 3))


def elastic(image, rng, alpha=34.0, sigma=4.0):
    canvas = _on_canvas(image, 4)
    shape = canvas.shape
    dy, dx = (
        ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma, mode="constant")
        * alpha
        for _ in range(2)
    )
    rows, columns = np.meshgrid(*map(np.arange, shape), indexing="ij")
    return ndimage.map_coordinates(canvas, [rows + dy, columns + dx], order=1)


def off_centre(image, rng):
    canvas = np.zeros((3 * SIDE, 3 * SIDE), np.float32)
    top, left = rng.integers(0, 2 * SIDE + 1, size=2)
    canvas[top : top + SIDE, left : left + SIDE] = image
    return canvas


CORRUPTIONS = {
    "rotation": rotation,
    "shear": shear,
    "scale": scale,
    "thickness": thickness,
    "elastic": elastic,
    "off-centre": off_centre,
}


def corrupted(images: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``images`` under corruption ``name`` (``"clean"``: none), each through
    ``skmnist predict``'s preprocessing, the same for the same seed; and which
    of them the preprocessing refused (no digit left: an eroded thin stroke),
    as ``skmnist predict`` would: they count as wrong answers."""
    from skmnist import preprocess_digit_image

    corrupt = CORRUPTIONS.get(name, lambda image, rng: image)
    # One generator per corruption: each is reproducible on its own.
    rng = np.random.default_rng([SEED, len(name), *name.encode()])
    out = np.zeros((len(images), SIDE, SIDE), np.uint8)
    refused = np.zeros(len(images), bool)
    for i, image in enumerate(images):
        picture = np.clip(corrupt(image, rng), 0, 255).astype(np.uint8)
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
        start = time.perf_counter()
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        accuracy = {
            name: float(np.mean((model.predict(images) == y_test) & ~refused))
            for name, (images, refused) in test_sets.items()
        }
        accuracy["mean of corruptions"] = statistics.fmean(
            accuracy[name] for name in CORRUPTIONS
        )
        results[model_name] = {"train_seconds": seconds, "accuracy": accuracy}
    refused = {name: int(r.sum()) for name, (_, r) in test_sets.items()}
    return {"backend": backend, "rows": rows, "refused": refused, "models": results}


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
