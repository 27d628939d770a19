"""Prediction latency of an exported pipeline in onnxruntime, against skmnist and
MLPClassifier.

Run: ``python benchmarks/onnx_export.py [--epochs 1] [--repeats 1000]``.

Fits the MNIST pipeline and an MLPClassifier pipeline of the same network on real
MNIST (``SKMNIST_DATA``, else ``../shared/data/mnist.npz``), exports the first with
:func:`skmnist.to_onnx`, and times, in this one run, ``predict_proba`` of one test
image and of the 10,000 test images for each: medians of ``--repeats`` one-image
calls and of 7 batch calls, after a warm-up. Training length does not change the
latency, so fits are one epoch by default. The target: one image in onnxruntime
takes at most half of MLPClassifier's ``predict_proba`` time. Prints a markdown
table and the target's outcome for both ONNX models (with and without
skl2onnx's ZipMap); exits with status 1 if one is missed.
"""

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_MNIST = HERE.parents[1] / "shared" / "data" / "mnist.npz"
TARGET_RATIO = 0.5


def median_seconds(function, argument, runs: int) -> float:
    for _ in range(20):  # warm up: compilation, caches, thread pools
        function(argument)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function(argument)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (1)")
    parser.add_argument("--repeats", type=int, default=1000, help="one-image calls")
    parser.add_argument("--data", help="path of mnist.npz (default: SKMNIST_DATA)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import onnxruntime
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline

    from skmnist import PixelScaler, make_mnist_pipeline, to_onnx
    from skmnist.datasets import load_mnist

    data = args.data or os.environ.get("SKMNIST_DATA") or SHARED_MNIST
    (x_train, y_train), (x_test, _) = load_mnist(data)
    pipeline = make_mnist_pipeline(epochs=args.epochs, random_state=0)
    pipeline.fit(x_train, y_train)
    mlp = make_pipeline(
        PixelScaler(),
        MLPClassifier(hidden_layer_sizes=(512,), batch_size=128, max_iter=args.epochs),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(x_train, y_train)

    contenders = {"skmnist pipeline": pipeline.predict_proba}
    for zipmap in (False, True):
        session = onnxruntime.InferenceSession(
            to_onnx(pipeline, dtype="uint8", zipmap=zipmap).SerializeToString(),
            providers=["CPUExecutionProvider"],
        )

        probabilities = session.get_outputs()[1].name

        def run(images, session=session, probabilities=probabilities):
            return session.run([probabilities], {"input": images})

        name = "onnxruntime" + ("" if zipmap else ", zipmap=False")
        contenders[name] = run
    contenders["MLPClassifier pipeline"] = mlp.predict_proba

    rows = {
        name: (
            median_seconds(predict, x_test[:1], args.repeats),
            median_seconds(predict, x_test, 7),
        )
        for name, predict in contenders.items()
    }
    mlp_one = rows["MLPClassifier pipeline"][0]
    print(f"python {' '.join(sys.argv)}; onnxruntime {onnxruntime.__version__}\n")
    print("| predict_proba | 1 image | ratio to MLP | 10,000 images |")
    print("|---|---|---|---|")
    for name, (one, batch) in rows.items():
        print(
            f"| {name} | {one * 1e6:.0f} µs | {one / mlp_one:.2f} "
            f"| {batch * 1e3:.1f} ms |"
        )
    print()
    missed = 0
    for name in ("onnxruntime", "onnxruntime, zipmap=False"):
        ratio = rows[name][0] / mlp_one
        met = ratio <= TARGET_RATIO
        missed += not met
        print(
            f"target: one image in {name} <= {TARGET_RATIO} x MLPClassifier's "
            f"predict_proba: {ratio:.2f} -> {'met' if met else 'MISSED'}"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
