"""Memory and time over many fits in one process, as a grid search does.

Run: ``python benchmarks/repeated_fits.py [--fits 60] [--estimator skmnist|scikeras]``.
Prints one JSON object: resident memory after the 5th and the last fit, and the
median time of early and late fits. Memory is measured after a full garbage
collection (outside the timed fit), so that it counts what the fits retain, not
discarded models waiting for the collector.
"""

import argparse
import gc
import json
import resource
import statistics
import time

import numpy as np


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def make_estimator(kind: str, seed: int):
    if kind == "skmnist":
        from skmnist import MNISTClassifier

        return MNISTClassifier(epochs=1, random_state=seed)
    import keras
    from scikeras.wrappers import KerasClassifier

    def build(meta):
        return keras.Sequential(
            [
                keras.Input((meta["n_features_in_"],)),
                keras.layers.Dense(512, activation="relu"),
                keras.layers.Dense(meta["n_classes_"], activation="softmax"),
            ]
        )

    return KerasClassifier(
        build,
        loss="sparse_categorical_crossentropy",
        epochs=1,
        batch_size=128,
        verbose=0,
        random_state=seed,
    )


def measure(kind: str, n_fits: int, X: np.ndarray, y: np.ndarray) -> dict:
    memory, seconds = [], []
    for i in range(n_fits):
        start = time.perf_counter()
        make_estimator(kind, seed=i).fit(X, y)
        seconds.append(time.perf_counter() - start)
        gc.collect()
        memory.append(resident_mb())
    early, late = seconds[5:15], seconds[-10:]
    return {
        "estimator": kind,
        "fits": n_fits,
        "rss_after_5th_mb": round(memory[4], 1),
        "rss_after_last_mb": round(memory[-1], 1),
        "rss_growth_mb": round(memory[-1] - memory[4], 1),
        "early_fit_s": round(statistics.median(early), 4),
        "late_fit_s": round(statistics.median(late), 4),
        "late_over_early": round(statistics.median(late) / statistics.median(early), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--fits", type=int, default=60, help="at least 20: fits 6-15 are the early ones"
    )
    parser.add_argument(
        "--estimator", choices=["skmnist", "scikeras"], default="skmnist"
    )
    args = parser.parse_args()
    if args.fits < 20:
        parser.error(f"--fits must be at least 20, got {args.fits}")
    rng = np.random.RandomState(0)
    X = rng.rand(2000, 784).astype(np.float32)
    y = rng.randint(0, 10, 2000)
    print(json.dumps(measure(args.estimator, args.fits, X, y)))


if __name__ == "__main__":
    main()
