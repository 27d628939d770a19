"""TensorFlow's thread pools sized to a joblib worker's share of the cores.

joblib's loky backend, which scikit-learn's ``n_jobs`` uses by default, starts
its worker processes with ``OMP_NUM_THREADS`` (and the BLAS libraries' own
variables) set to the cores divided by ``n_jobs``, so that the workers together
fill the machine once. TensorFlow reads none of them: every worker sized its
thread pools to the whole machine, and ``n_jobs`` workers ran ``n_jobs`` times
as many compute threads as there are cores, each fit slowing the others down.
Where ``OMP_NUM_THREADS`` is set and TensorFlow's own ``TF_NUM_INTRAOP_THREADS``
and ``TF_NUM_INTEROP_THREADS`` are not, they follow it. TensorFlow reads them
when its runtime starts, so this runs on ``import skmnist``, before any
estimator imports TensorFlow.
"""

import os

_TENSORFLOW_POOLS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def follow_omp_num_threads() -> None:
    """Give TensorFlow's pools ``OMP_NUM_THREADS`` threads where it is set and
    TensorFlow's own variables are not."""
    threads = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not threads.isdigit() or int(threads) < 1:
        return
    for name in _TENSORFLOW_POOLS:
        os.environ.setdefault(name, threads)
