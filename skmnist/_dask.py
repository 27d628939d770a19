"""Searches and cross-validation of skmnist estimators on a dask.distributed cluster.

scikit-learn's ``GridSearchCV``, ``RandomizedSearchCV`` and ``cross_validate`` run
on a cluster unchanged through joblib's dask backend
(``joblib.parallel_config(backend="dask")``). What skmnist adds is thread hygiene:
every dask worker runs several fits at once on its ``nthreads`` threads, and by
default TensorFlow gives each *process* a pool as large as the whole machine, so
a machine with 16 one-thread workers would run 16 x 16 compute threads. The
:class:`TensorFlowThreadsPlugin` sizes TensorFlow's pools to the worker instead.
"""

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster, WorkerPlugin

logger = logging.getLogger(__name__)


def configure_tensorflow_threads(n_threads: int) -> tuple[int, int]:
    """Size TensorFlow's intra-op and inter-op thread pools of this process.

    TensorFlow creates its pools once, when its runtime initialises (at the first
    operation), and ignores later settings. Where that already happened with
    other sizes this warns and leaves them.

    Parameters
    ----------
    n_threads : int
        Threads of each pool.

    Returns
    -------
    intra_op, inter_op : int
        The pool sizes TensorFlow is configured with; 0 means TensorFlow's default
        (one thread per core of the machine).
    """
    import tensorflow as tf

    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(n_threads)
        threading.set_inter_op_parallelism_threads(n_threads)
    except RuntimeError:
        configured = (
            threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads(),
        )
        if configured != (n_threads, n_threads):
            message = (
                f"TensorFlow already runs with intra/inter-op pools of {configured} "
                f"threads (0: one per core) and cannot be limited to {n_threads} "
                "any more: register TensorFlowThreadsPlugin before any task runs "
                "TensorFlow on the worker."
            )
            logger.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
    return (
        threading.get_intra_op_parallelism_threads(),
        threading.get_inter_op_parallelism_threads(),
    )


class TensorFlowThreadsPlugin(WorkerPlugin):
    """A dask worker plugin that sizes TensorFlow's thread pools to the worker.

    Register it with ``client.register_plugin(TensorFlowThreadsPlugin())`` before
    submitting work. On every current and future worker it sets TensorFlow's
    intra-op and inter-op pools to the worker's ``nthreads``: the worker runs at
    most ``nthreads`` fits at once, and they share the process's pools, so a
    worker keeps about ``nthreads`` cores busy, as dask assumes. Without it each
    worker process sizes its pools to every core of the machine.

    Parameters
    ----------
    n_threads : int or None, default=None
        Pool size; None uses each worker's own ``nthreads``.

    Notes
    -----
    TensorFlow fixes its pools when it first runs an operation, so the plugin only
    takes effect on workers that have not yet run TensorFlow; elsewhere it logs a
    warning. Start fresh workers (``client.restart()``) after registering it late.

    Examples
    --------
    >>> import joblib
    >>> from dask.distributed import Client
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skmnist import TensorFlowThreadsPlugin, make_mnist_pipeline
    >>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> client.register_plugin(TensorFlowThreadsPlugin())  # doctest: +SKIP
    >>> search = GridSearchCV(
    ...     make_mnist_pipeline(random_state=0), {"clf__hidden_units": [128, 512]}
    ... )
    >>> with joblib.parallel_config(backend="dask"):  # doctest: +SKIP
    ...     search.fit(x_train, y_train)
    """

    name = "skmnist-tensorflow-threads"

    def __init__(self, n_threads: int | None = None):
        self.n_threads = n_threads

    def setup(self, worker) -> None:
        """Configure TensorFlow in ``worker``'s process (called by dask)."""
        n_threads = self.n_threads or worker.state.nthreads
        configure_tensorflow_threads(n_threads)


def available_cores() -> int:
    """Cores this process may use: its CPU affinity and cgroup quota, as dask
    counts them."""
    from dask.system import cpu_count

    return max(1, cpu_count())


@contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
) -> Iterator[Client]:
    """Connect to a cluster, or start a local one, with TensorFlow's threads sized.

    Parameters
    ----------
    scheduler : str or None, default=None
        Address of a running scheduler (``tcp://host:8786``); None starts a
        ``LocalCluster`` of worker processes, closed on exit.
    n_workers : int or None, default=None
        Worker processes of the local cluster; None fills the available cores.
    threads_per_worker : int, default=1
        Threads (concurrent fits) per local worker process.

    Yields
    ------
    client : distributed.Client
        A client with :class:`TensorFlowThreadsPlugin` registered.
    """
    if scheduler is not None:
        with Client(scheduler) as client:
            client.register_plugin(TensorFlowThreadsPlugin())
            yield client
        return
    if n_workers is None:
        n_workers = max(1, available_cores() // threads_per_worker)
    # Processes, not threads: each Keras fit holds the GIL for its Python-level
    # training loop, so fits in threads of one process do not scale.
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        dashboard_address=None,
        # The same sizes for a TensorFlow that a task might initialise before the
        # plugin runs; TensorFlow reads them when its runtime starts.
        env={
            "TF_NUM_INTRAOP_THREADS": str(threads_per_worker),
            "TF_NUM_INTEROP_THREADS": str(threads_per_worker),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        },
    )
    try:
        with Client(cluster) as client:
            client.register_plugin(TensorFlowThreadsPlugin())
            yield client
    finally:
        with _quiet_kills_of_idle_workers():
            cluster.close()


class _DropKillWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "still alive after" not in record.getMessage()


@contextmanager
def _quiet_kills_of_idle_workers() -> Iterator[None]:
    """Hide the nanny's "Worker process still alive after 4.0 seconds, killing"
    while the cluster closes: a worker process with TensorFlow loaded often takes
    longer than the nanny's grace period to exit on a busy machine, and killing
    it then loses nothing, as all work is done."""
    nanny_logger = logging.getLogger("distributed.nanny")
    kill_filter = _DropKillWarnings()
    nanny_logger.addFilter(kill_filter)
    try:
        yield
    finally:
        nanny_logger.removeFilter(kill_filter)
