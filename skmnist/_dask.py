"""Searches and cross-validation of skmnist estimators on a dask.distributed cluster.

scikit-learn's ``GridSearchCV``, ``RandomizedSearchCV`` and ``cross_validate`` run
on a cluster through joblib's dask backend. skmnist adds two things to it.

Thread hygiene: every dask worker runs several fits at once on its ``nthreads``
threads, and by default TensorFlow gives each *process* a pool as large as the
whole machine, so a machine with 16 one-thread workers would run 16 x 16 compute
threads. The :class:`TensorFlowThreadsPlugin` sizes TensorFlow's pools to the
worker instead.

Surviving a lost worker: joblib's dask backend scatters large arguments (the
training data) to *one* worker, and scattered data cannot be recomputed, so
losing that worker loses the search. :func:`dask_parallel_config` hands the data
to the cluster as a computed task instead, which dask recomputes from the
scheduler's copy when every worker holding it is gone; the fits that were running
on a lost worker are rerun by dask's scheduler, at most
``distributed.scheduler.allowed-failures`` times. It also counts finished and
rerun fits for progress reports, and fails the search with a clear error when
the cluster has had no worker for a while, rather than waiting for ever.
"""

import logging
import os
import re
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from importlib.util import find_spec

import dask
import joblib
from distributed import Client, LocalCluster, WorkerPlugin
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from skmnist._compat import dask_distributed_backend, keras_backend
from skmnist._quiet_keras import import_keras_quietly

# joblib's dask backend, to extend: joblib exports it only by the name "dask".
DaskDistributedBackend = dask_distributed_backend()

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
    worker process sizes its pools to ``OMP_NUM_THREADS`` (which dask's nanny
    sets to 1) where that is set, else to every core of the machine.

    Parameters
    ----------
    n_threads : int or None, default=None
        Pool size; None uses each worker's own ``nthreads``.

    Notes
    -----
    Under Keras's JAX backend it does nothing: TensorFlow is not imported
    there. TensorFlow fixes its pools when it first runs an operation, so the
    plugin only takes effect on workers that have not yet run TensorFlow;
    elsewhere it logs a warning. Start fresh workers (``client.restart()``)
    after registering it late.

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
        # Imported here, as the command line does, so that the worker's log
        # shows no TensorFlow C++ start-up lines.
        import_keras_quietly()
        if keras_backend() != "tensorflow":
            # Under JAX, TensorFlow is never imported: importing it only to
            # size its pools cost each worker seconds and its C++ log lines.
            return
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
    # training loop, so fits in threads of one process do not scale. Without
    # the active memory manager: its ReduceReplicas policy drops a worker's
    # copy of the training data whenever no task of its own is waiting for it
    # (checked every 2 s), so a worker between two batches of fits fetched the
    # data again. A cluster of the user's keeps the user's settings.
    no_memory_manager = {"distributed.scheduler.active-memory-manager.start": False}
    with dask.config.set(no_memory_manager):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            # A dashboard on a free port where dask can serve one (it needs
            # bokeh).
            dashboard_address=":0" if find_spec("bokeh") else None,
            # The same sizes for a TensorFlow that a task might initialise
            # before the plugin runs; TensorFlow reads them when its runtime
            # starts.
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


# joblib names a dask task after the batch of calls it runs:
# "batch_of__fit_and_score_3_calls-<uuid>".
_BATCH_KEY = re.compile(r"^(?:mixed_)?batch_of_.*_(\d+)_calls-[0-9a-f]+$")


class NoWorkersError(RuntimeError):
    """The dask cluster had no worker left to run the search on."""


class FitProgress:
    """Counts of a search's fits on a dask cluster, updated while it runs.

    Parameters
    ----------
    total : int or None, default=None
        Fits the search will run (candidates x folds), where known.

    Attributes
    ----------
    done : int
        Fits finished (successfully or not).
    retried : int
        Fits that were running on a worker that died, and that dask reran.
    lost_workers : int
        Workers that left the cluster unexpectedly during the search.
    started : float
        ``time.monotonic()`` when the search started.
    """

    def __init__(self, total: int | None = None):
        self.total = total
        self.done = 0
        self.retried = 0
        self.lost_workers = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def _add(self, **counts: int) -> None:
        with self._lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)

    @property
    def elapsed(self) -> float:
        """Seconds since the search started."""
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float | None:
        """Estimated seconds left, from the pace so far; None before a fit ends."""
        if not self.total or not self.done:
            return None
        return self.elapsed / self.done * max(0, self.total - self.done)


class _ResilientDaskBackend(DaskDistributedBackend):
    """joblib's dask backend with the training data as recomputable tasks, a fit
    counter and an error when the cluster has no worker for too long."""

    def __init__(self, client, data, progress, no_workers_timeout):
        super().__init__(client=client)
        # What joblib's backend would scatter to one worker, submitted as the
        # result of a task instead: the scheduler keeps the task (and so one copy
        # of the data) and recomputes it when every worker holding it is gone.
        # Keyed by id(), as joblib's own scatter= option is.
        self._data = list(data)
        with warnings.catch_warnings():
            # "Sending large graph": the data crosses to the cluster once, here.
            warnings.filterwarnings("ignore", message=".*[Ll]arge graph")
            self.data_futures = {
                id(array): client.submit(
                    _same, array, key=f"skmnist-data-{index}-{uuid.uuid4().hex}"
                )
                for index, array in enumerate(self._data)
            }
        self.progress = progress
        self.no_workers_timeout = no_workers_timeout
        self._pending: set = set()
        self._pending_lock = threading.Lock()

    def start_call(self):
        super().start_call()
        # No scattering of the other large arguments either (a fold's row
        # indices): they travel inside their task, which dask can rerun, where
        # scattered data lives on one worker and dies with it.
        self.call_data_futures = None

    def stop_call(self):
        self.call_data_futures = {}  # what the parent clears
        super().stop_call()

    def abort_everything(self, ensure_ready=True):
        # joblib forgets the batches of a failed search, but dask would still
        # run them, holding the workers (and the data) for nothing.
        self.client.cancel(list(self._results))
        super().abort_everything(ensure_ready)

    def __reduce__(self):
        # In a worker (nested parallelism) it is joblib's plain dask backend.
        return (DaskDistributedBackend, ())

    def submit(self, func, callback=None):
        n_fits = len(func)

        def finished(result):
            self.progress._add(done=n_fits)
            callback(result)

        job = super().submit(func, finished)
        with self._pending_lock:
            self._pending.add(job)

        def settled(job):
            with self._pending_lock:
                self._pending.discard(job)
            error = job.exception()
            if error is not None:
                # joblib's dask backend leaves a failed task's error in the job,
                # which joblib never looks at (it waits for the callback): hand it
                # to joblib, which aborts the search with it.
                callback(_explain(error))

        job.add_done_callback(settled)
        return job

    def _fail_pending(self, error: BaseException) -> None:
        with self._pending_lock:
            pending = list(self._pending)
        for job in pending:
            if not job.done():
                with suppress(Exception):  # it finished meanwhile
                    job.set_exception(error)


def _same(value):
    return value


def _explain(error: BaseException) -> BaseException:
    """The error a failed dask task ends a search with, in a user's terms."""
    if isinstance(error, KilledWorker):
        return RuntimeError(
            f"a fit was running on {error.allowed_failures + 1} dask workers that "
            "died while running it (the limit is "
            "distributed.scheduler.allowed-failures): it probably kills its worker, "
            "for example by running out of memory"
        )
    if isinstance(error, FutureCancelledError):
        return RuntimeError(f"the dask cluster dropped a batch of fits: {error}")
    return error


def _batch_size(key) -> int | None:
    match = _BATCH_KEY.match(str(key))
    return int(match.group(1)) if match else None


@contextmanager
def dask_parallel_config(
    client: Client,
    data: Sequence = (),
    *,
    progress: FitProgress | None = None,
    no_workers_timeout: float = 60.0,
) -> Iterator[FitProgress]:
    """Run scikit-learn's joblib work on a dask cluster so that lost workers cost
    time, not the search.

    Use it in place of ``joblib.parallel_config(backend="dask")`` around a
    search's ``fit`` or a ``cross_validate`` call. It differs in three ways:

    - the arrays in ``data`` (the training data) reach the cluster as the result
      of a task, which dask recomputes from the scheduler's copy when the workers
      holding it die, instead of as scattered data, which dask cannot recompute;
    - it counts finished fits and the fits dask reran because their worker died
      (``distributed.scheduler.allowed-failures``, default 3, bounds the reruns
      of each batch of fits);
    - when the cluster has had no worker for ``no_workers_timeout`` seconds, the
      search fails with :class:`NoWorkersError` instead of waiting.

    A fit that fails by itself (bad parameters, for instance) is never rerun:
    with ``error_score="raise"`` its error ends the search at once.

    Parameters
    ----------
    client : distributed.Client
        Client of the cluster to run on.
    data : sequence of array-like, default=()
        The arrays passed to ``fit`` (``X``, ``y``), as the very objects given
        to ``fit``: joblib recognises them by identity.
    progress : FitProgress or None, default=None
        Counter to update; None creates one.
    no_workers_timeout : float, default=60.0
        Seconds without any worker after which the search fails.

    Yields
    ------
    progress : FitProgress
        Updated while the search runs (from other threads).

    Examples
    --------
    >>> from dask.distributed import Client
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skmnist import dask_parallel_config, make_mnist_pipeline
    >>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> search = GridSearchCV(
    ...     make_mnist_pipeline(random_state=0),
    ...     {"clf__hidden_units": [128, 512]},
    ...     n_jobs=-1,
    ...     error_score="raise",
    ... )
    >>> with dask_parallel_config(client, (x_train, y_train)):  # doctest: +SKIP
    ...     search.fit(x_train, y_train)
    """
    if progress is None:
        progress = FitProgress()
    backend = _ResilientDaskBackend(client, data, progress, no_workers_timeout)

    lost_workers: set = set()
    rerun: set = set()

    def on_event(event) -> None:
        # The scheduler's record of a worker that left: the batches it was
        # running, and those it had finished whose results were not yet
        # collected, are both run again elsewhere.
        _, message = event
        if message.get("action") != "remove-worker" or message.get("expected"):
            return
        keys = {
            key
            for name in ("processing-tasks", "lost-computed-tasks")
            for key in message.get(name, ())
            if _batch_size(key) is not None and key not in rerun
        }
        rerun.update(keys)
        new_worker = message.get("worker") not in lost_workers
        lost_workers.add(message.get("worker"))
        progress._add(lost_workers=int(new_worker), retried=sum(map(_batch_size, keys)))

    stop = threading.Event()

    def watch_workers() -> None:
        without_since = None
        while not stop.wait(0.5):
            try:
                has_workers = bool(client.scheduler_info(n_workers=-1)["workers"])
            except Exception:  # the client is closing
                return
            if has_workers:
                without_since = None
                continue
            without_since = without_since or time.monotonic()
            if time.monotonic() - without_since > no_workers_timeout:
                backend._fail_pending(
                    NoWorkersError(
                        f"the dask cluster has had no worker for "
                        f"{no_workers_timeout:g} s: every worker is gone"
                    )
                )
                without_since = None

    client.subscribe_topic("all", on_event)
    watcher = threading.Thread(target=watch_workers, daemon=True)
    watcher.start()
    try:
        with joblib.parallel_config(backend=backend):
            yield progress
    finally:
        stop.set()
        watcher.join(timeout=5)
        client.unsubscribe_topic("all")
        for future in backend.data_futures.values():
            future.release()
