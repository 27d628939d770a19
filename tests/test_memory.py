"""Guards the memory fix: repeated fits must not keep growing the process."""

import ctypes
import ctypes.util
import gc
import resource

import numpy as np
import pytest

from skmnist import MNISTClassifier


def _resident_mb() -> float:
    """Resident memory after handing freed heap pages back to the system.

    glibc keeps freed memory mapped and returns it in bursts, so the plain
    resident size of a TensorFlow process swings by tens of megabytes from one
    fit to the next without anything being kept; ``malloc_trim`` makes it
    measure what is still in use.
    """
    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc is not None and hasattr(ctypes.CDLL(libc), "malloc_trim"):
        ctypes.CDLL(libc).malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


@pytest.mark.slow
def test_repeated_fits_do_not_grow_memory():
    # scikeras grows about 6 MB per fit of this network (see
    # benchmarks/repeated_fits.py); 30 fits would add some 180 MB. Measured
    # with malloc_trim, skmnist's fits add well under 1 MB each.
    rng = np.random.RandomState(0)
    X = rng.rand(500, 784).astype(np.float32)
    y = rng.randint(0, 10, 500)
    memory = []
    for seed in range(30):
        MNISTClassifier(epochs=1, random_state=seed).fit(X, y).predict(X)
        memory.append(_resident_mb())
    assert memory[-1] - memory[4] < 30
