"""Fits of one architecture trained together, as one compiled program (JAX).

A search trains many small networks of the same architecture, each on its own
fold; every epoch of each fit is a compiled loop of small batches whose
per-step cost on a CPU, and far more so on a GPU, is dispatch and set-up rather
than arithmetic. Stacked along a leading axis, the weights of k fits train in
one program: ``jax.vmap`` of the very epoch program that trains one fit
(:class:`skmnist._training._JaxEpochs`), so that each fit still gets its own
rows in its own order, its own learning rate, seed, sample weights and dropout
masks, and its result is its own fit's up to the rounding of the stacked
matrix products.

Only the compiled epoch is shared. Each fit runs its own Python code in its own
thread, exactly as when it trains alone: validation, callbacks, early stopping,
history, the copy of its weights into its estimator. Fits opt in by running
inside :func:`packed_fits`, in a thread of the session's joblib backend
(:func:`session_threads`; the searches of :mod:`skmnist.model_selection` run
their folds there): a fit in any other thread, even while a session is open,
trains alone. There, :meth:`PackingSession.train_epoch` collects the epochs
the fits ask for and runs them when every fit of the session is waiting for
one (or none has come for a moment), a pack per architecture, batch size and
data shape. A fit that stops (early stopping, its last epoch, an error) leaves
the pack; one that cannot be packed (a callback acting on single batches,
another backend) trains as ever beside the others.

Packing decides only what runs together, never what a fit computes: a fit's
result does not depend on which other fits shared its programs.
"""

import contextlib
import functools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field

import numpy as np
from joblib.parallel import ThreadingBackend

from skmnist._caches import lock, remember

# How long the fits that wait for an epoch wait for the others (building their
# networks, validating, in a callback, in a garbage collection) before they
# train without them. Results do not depend on it: only which fits share a
# program.
_GRACE_SECONDS = 1.0
# How long they wait for a fit the search announced to start in a free thread.
_START_SECONDS = 0.1

# Padding slots (see pack_slots) train no rows, but, vmapped, take part in
# every step. A pack of one fit runs the fit's own program.
_MIN_SLOTS = 2

# The packed epoch programs, by group and number of slots; bounded as the
# workspaces they were traced from are (see skmnist._caches).
_programs: "OrderedDict[Hashable, Callable]" = OrderedDict()

_session: "PackingSession | None" = None
_joined = threading.local()
# The session whose backend's thread this is (see session_threads).
_admitted_threads = threading.local()
_session_lock = threading.Lock()


class SearchEndedError(RuntimeError):
    """A fit's search ended while the fit was still training in its thread."""


def current_session() -> "PackingSession | None":
    """The packing session fits of this process join, if one is open."""
    return _session


def session_of_this_fit() -> "PackingSession | None":
    """The session the fit training in this thread joined, open or not."""
    return getattr(_joined, "session", None)


def aside_from_session() -> contextlib.AbstractContextManager:
    """Count the calling fit out of the open packing session while it trains
    on its own (see :meth:`PackingSession.aside`)."""
    session = session_of_this_fit()
    return contextlib.nullcontext() if session is None else session.aside()


def joined_session() -> contextlib.AbstractContextManager:
    """Count the calling fit in the open packing session while it trains (see
    :meth:`PackingSession.joined`); nothing where none is open, or where the
    fit runs in a thread that is not the session's (a fit of the user's in
    another thread, a search's refit)."""
    session = _session
    if session is None or getattr(_admitted_threads, "session", None) is not session:
        return contextlib.nullcontext()
    return session.joined()


class _SessionThreads(ThreadingBackend):
    """joblib's thread pool backend, whose threads run fits of one session."""

    def __init__(self, session: "PackingSession", **kwargs):
        super().__init__(**kwargs)
        self.session = session

    def submit(self, func, callback=None):
        admitted = functools.partial(_admitted, self.session, func)
        return super().submit(admitted, callback)

    def apply_async(self, func, callback=None):  # what joblib < 1.5 calls
        admitted = functools.partial(_admitted, self.session, func)
        return super().apply_async(admitted, callback)


def _admitted(session: "PackingSession", func: Callable):
    with session.admitted():
        return func()


def session_threads(session: "PackingSession") -> ThreadingBackend:
    """The joblib backend (for ``joblib.parallel_config``) whose thread pool
    runs the fits that join ``session``: only they do."""
    return _SessionThreads(session)


@contextlib.contextmanager
def packed_fits(max_pack: int, threads: int) -> Iterator["PackingSession | None"]:
    """Within this, the compiled epochs of concurrent fits, run by ``threads``
    threads, train as packs of at most ``max_pack`` fits. Gives the session, or
    None where one is open already (a search running in another thread): one
    session at a time decides what trains together, and fits outside it train
    alone."""
    global _session
    with _session_lock:
        if _session is not None:
            session = None
        else:
            _session = session = PackingSession(max_pack, threads)
    try:
        yield session
    finally:
        if session is not None:
            with _session_lock:
                _session = None
            session.closed = True


def pack_slots(fits: int) -> int:
    """The number of slots of the program that trains ``fits`` fits at once:
    ``fits`` rounded up to a multiple of an eighth of the power of two below
    it, so that packs of many sizes (stragglers, fits that stopped early)
    share a few programs, wasting less than an eighth of a pack."""
    fits = max(fits, _MIN_SLOTS)
    granule = 1 << max(0, (fits - 1).bit_length() - 4)
    return -(-fits // granule) * granule


@dataclass(eq=False)
class _Request:
    """One fit's epoch, waiting to run in a pack."""

    group: Hashable
    epoch: Callable  # the fit's own epoch function, unjitted, for vmap
    alone: Callable  # the fit's own compiled epoch, for a pack of one
    state: tuple
    data: tuple
    order: np.ndarray
    n_rows: int
    result: tuple | None = None
    error: BaseException | None = None
    done: bool = False
    arrived: float = field(default_factory=time.monotonic)


class PackingSession:
    """Collects fits' epochs and runs them in packs (see the module docstring)."""

    def __init__(self, max_pack: int, threads: int):
        self.max_pack = max(1, int(max_pack))
        self.threads = max(1, int(threads))
        self._condition = threading.Condition()
        # Set when the search ends: fits still training in its threads (after
        # another raised) stop at their next epoch rather than run on.
        self.closed = False
        self._active = 0  # fits training now, in this session
        self._members: set[int] = set()  # their threads
        # Fits announced (see expect) that have not started yet: packs wait
        # for them while a thread is free to run one.
        self._pending = 0
        self._waiting: list[_Request] = []
        self._in_flight = 0
        self._last_event = time.monotonic()
        # The fits' training data stacked for a pack, by the fits' arrays: a
        # pack of the same fits reuses it, epoch after epoch.
        self._stacked_data: tuple | None = None
        # Figures for tests and benchmarks: sizes of the packs run, programs
        # compiled.
        self.pack_sizes: list[int] = []
        self.compiled = 0

    @contextlib.contextmanager
    def expecting(self, fits: int) -> Iterator[None]:
        """Announce ``fits`` fits about to start (a search's candidates times
        folds): until they have, a pack waits for a fit that a free thread will
        start rather than train without it."""
        with self._condition:
            self._pending += fits
        try:
            yield
        finally:
            with self._condition:
                self._pending = 0
                self._condition.notify_all()

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Let the fits of the calling thread join this session meanwhile, as
        the threads of :func:`session_threads` do."""
        previous = getattr(_admitted_threads, "session", None)
        _admitted_threads.session = self
        try:
            yield
        finally:
            _admitted_threads.session = previous

    @contextlib.contextmanager
    def joined(self) -> Iterator[None]:
        """Count the calling fit as training in this session meanwhile: packs
        wait for it to ask for its epoch (or for the grace period)."""
        _joined.session = self
        with self._condition:
            self._active += 1
            self._members.add(threading.get_ident())
            self._pending = max(0, self._pending - 1)
            self._last_event = time.monotonic()
        try:
            yield
        finally:
            _joined.session = None
            with self._condition:
                self._members.discard(threading.get_ident())
                self._active -= 1
                self._last_event = time.monotonic()
                self._condition.notify_all()

    @contextlib.contextmanager
    def aside(self) -> Iterator[None]:
        """Count the calling fit out meanwhile: it trains on its own (Keras's
        ``Model.fit``), and packs need not wait for it."""
        if threading.get_ident() not in self._members:  # joined no session
            yield
            return
        with self._condition:
            self._active -= 1
            self._last_event = time.monotonic()
            self._condition.notify_all()
        try:
            yield
        finally:
            with self._condition:
                self._active += 1

    def train_epoch(
        self,
        group: Hashable,
        epoch: Callable,
        alone: Callable,
        state: tuple,
        data: tuple,
        order: np.ndarray,
        n_rows: int,
    ) -> tuple:
        """Run ``epoch(state, data, order, n_rows)`` in a pack of fits of
        ``group`` (fits whose epochs are the same program), and return the
        fit's new state; ``alone`` is ``epoch`` compiled, for a pack of one."""
        if self.closed:
            raise SearchEndedError(
                "The search this fit belongs to has ended (another fit of it "
                "raised); the fit stops with it."
            )
        request = _Request(group, epoch, alone, state, data, order, n_rows)
        with self._condition:
            self._waiting.append(request)
            self._last_event = time.monotonic()
            self._condition.notify_all()
            while not request.done:
                if self._ready():
                    self._run_waiting()
                else:
                    self._condition.wait(timeout=_GRACE_SECONDS / 5)
        if request.error is not None:
            raise request.error
        return request.result

    def _ready(self) -> bool:
        if not self._waiting or self._in_flight:
            return False
        quiet = time.monotonic() - self._last_event
        if self._active > len(self._waiting):  # a fit is busy: it will come
            return quiet >= _GRACE_SECONDS
        if self._pending > 0 and self._active < self.threads:
            # A free thread may be about to start an announced fit, unless the
            # fit failed before training, is not skmnist's, or waits for
            # joblib to dispatch it: wait only briefly for it.
            return quiet >= _START_SECONDS
        return True

    def _run_waiting(self) -> None:
        """Take every waiting epoch and run them, a pack per group; called
        holding the condition, released while the packs train."""
        taken, self._waiting = self._waiting, []
        self._in_flight = len(taken)
        self._condition.release()
        try:
            groups: dict[Hashable, list[_Request]] = {}
            for request in taken:
                groups.setdefault(request.group, []).append(request)
            for requests in groups.values():
                for start in range(0, len(requests), self.max_pack):
                    self._run_pack(requests[start : start + self.max_pack])
        finally:
            self._condition.acquire()
            for request in taken:
                request.done = True
            self._in_flight = 0
            self._last_event = time.monotonic()
            self._condition.notify_all()

    def _run_pack(self, requests: list["_Request"]) -> None:
        try:
            results = self._train_pack(requests)
        except BaseException as error:  # each fit raises it in its own thread
            for request in requests:
                request.error = error
        else:
            for request, result in zip(requests, results, strict=True):
                request.result = result

    def _train_pack(self, requests: list["_Request"]) -> list[tuple]:
        shapes = [_shapes(r.state) for r in requests]
        # Fits whose networks differ only in width (a group whose key leaves
        # widths out) train zero-padded to the widest: a hidden unit whose
        # weights and slots are all zero stays zero (see the classifier's
        # pack group). The program is traced by a fit of the padded shapes.
        target = tuple(
            tuple(max(dims) for dims in zip(*variable, strict=True))
            for variable in zip(*shapes, strict=True)
        )
        template = next(
            (r for r, shape in zip(requests, shapes, strict=True) if shape == target),
            None,
        )
        if template is None:  # no fit is widest in every layer
            return self._train_by_shape(requests, shapes)
        if len(requests) == 1:
            return [self._single(template)]
        slots = pack_slots(len(requests))
        # Padding slots repeat a fit with no rows to train.
        padded = requests + [template] * (slots - len(requests))
        n_rows = np.array(
            [r.n_rows for r in requests] + [0] * (slots - len(requests)), np.int32
        )
        new_state = self._program(template, slots, target)(
            _stacked([r.state for r in requests], target, slots),
            self._stack_data(padded),
            np.stack([r.order for r in padded]),
            n_rows,
        )
        self.pack_sizes.append(len(requests))
        return _unstacked(new_state, shapes)

    def _train_by_shape(self, requests, shapes) -> list[tuple]:
        by_shape: dict[tuple, list[int]] = {}
        for index, shape in enumerate(shapes):
            by_shape.setdefault(shape, []).append(index)
        results = [None] * len(requests)
        for indices in by_shape.values():
            trained = self._train_pack([requests[i] for i in indices])
            for index, result in zip(indices, trained, strict=True):
                results[index] = result
        return results

    def _single(self, request: "_Request") -> tuple:
        """A fit that has no one to pack with runs its own program."""
        self.pack_sizes.append(1)
        return request.alone(
            request.state, request.data, request.order, np.int32(request.n_rows)
        )

    def _program(self, template: "_Request", slots: int, shapes: tuple) -> Callable:
        key = (template.group, slots, shapes)
        with lock:
            program = _programs.get(key)
        if program is None:
            import jax

            program = jax.jit(jax.vmap(template.epoch))
            self.compiled += 1
            with lock:
                remember(_programs, key, program)
        return program

    def _stack_data(self, requests: list["_Request"]) -> tuple:
        import jax.numpy as jnp

        identity = tuple(id(a) for r in requests for a in r.data)
        if self._stacked_data is None or self._stacked_data[0] != identity:
            columns = zip(*(r.data for r in requests), strict=True)
            stacked = tuple(jnp.stack(arrays) for arrays in columns)
            # Holds the fits' arrays too, so that their ids stay theirs.
            self._stacked_data = (identity, stacked, [r.data for r in requests])
        return self._stacked_data[1]


def _shapes(state) -> tuple:
    import jax

    return tuple(tuple(np.shape(a)) for a in jax.tree_util.tree_leaves(state))


def _stacked(states: list, shapes: tuple, slots: int):
    """The fits' ``states`` stacked along a new leading axis of ``slots``
    (the last ones repeating the first), each array zero-padded at the end of
    each axis to ``shapes``. Built on the host, in NumPy: a few transfers
    rather than an eager device operation per array of each fit."""
    import jax

    columns = zip(*(jax.tree_util.tree_leaves(s) for s in states), strict=True)
    stacked = []
    for arrays, shape in zip(columns, shapes, strict=True):
        arrays = [np.asarray(a) for a in arrays]
        block = np.zeros((slots, *shape), arrays[0].dtype)
        for index, array in enumerate(arrays):
            block[(index, *(slice(0, n) for n in array.shape))] = array
        block[len(arrays) :] = block[0]
        stacked.append(block)
    tree = jax.tree_util.tree_structure(states[0])
    return jax.tree_util.tree_unflatten(tree, stacked)


def _unstacked(stacked, shapes: list) -> list:
    """Each fit's state from the ``stacked`` states, cut back to its own
    ``shapes``."""
    import jax

    leaves, tree = jax.tree_util.tree_flatten(stacked)
    leaves = [np.asarray(a) for a in leaves]
    cut = [
        [
            np.array(leaf[(index, *(slice(0, n) for n in shape))])
            for leaf, shape in zip(leaves, fit_shapes, strict=True)
        ]
        for index, fit_shapes in enumerate(shapes)
    ]
    # On the device in one call, as the arrays the fits' variables hold.
    on_device = jax.device_put(cut)
    return [jax.tree_util.tree_unflatten(tree, arrays) for arrays in on_device]


def packing_pays() -> bool:
    """Whether searches pack their fits here: on a GPU or other accelerator,
    where a small network's fit leaves most of the device idle; not on a CPU,
    where a fit's compiled epochs already keep every core busy and a vmapped
    epoch of k fits costs about k epochs (see docs/performance.rst).
    ``SKMNIST_PACKING=always`` (or ``never``) decides instead."""
    setting = os.environ.get("SKMNIST_PACKING", "auto").strip().lower()
    if setting not in {"auto", "always", "never"}:
        raise ValueError(
            f"SKMNIST_PACKING={setting!r}: use 'auto' (pack on a GPU or other "
            "accelerator), 'always' or 'never'."
        )
    if setting != "auto":
        return setting == "always"
    import jax

    return jax.default_backend() != "cpu"


def max_pack_for_memory(bytes_per_fit: int, fits: int, available: int) -> int:
    """How many fits one pack may hold: at most ``fits``, and within half of the
    ``available`` bytes of the device (the stacked data is a second copy of each
    fit's)."""
    by_memory = max(1, (available // 2) // max(1, 2 * bytes_per_fit))
    return max(1, min(fits, by_memory))


def available_device_bytes() -> int:
    """Free memory of the device JAX computes on: the GPU's, or the host's."""
    import jax

    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        import psutil
    except ImportError:  # not a dependency: POSIX's count, where it has one
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 4 * 2**30
    return int(psutil.virtual_memory().available)


def fit_bytes(rows: int, n_features: int, n_weights: int) -> int:
    """Device bytes of one packed fit: its training ``rows`` as padded on the
    device (features, labels, weights) and its weights with three
    optimizer-sized copies (gradients, slots, the update)."""
    return 4 * (rows * (n_features + 2) + 4 * n_weights)
