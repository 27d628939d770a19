"""Ctrl-C that always stops training, and never lands half-way through a save.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main
thread happens to be. Where that is a garbage-collector callback (JAX, which
Keras imports on every backend, registers one), CPython reports the exception
as "ignored" and carries on: training went on and replaced the saved model.
So while :func:`recorded_interrupts` is active, the SIGINT handler also
*records* the interrupt, and the places where stopping matters check the
record: the end of every epoch (:class:`skmnist._workspace.CompletedEpochs`)
and the moment before a saved file replaces the previous one
(:func:`skmnist._files.write_atomically`). A swallowed interrupt is thereby
raised again there, at the latest; the "ignored" report is kept quiet.

The exit status of an interrupted command is 130 also under ``python -m``:
see :func:`forget_interrupts_c_code_saw`.
"""

import contextlib
import ctypes
import signal
import sys
import threading

_requested = threading.Event()
# Steps of the main thread that a KeyboardInterrupt must not cut in two (see
# deferred_interrupts); only the main thread changes it.
_deferred = 0


def _record_and_raise(signum, frame):
    _requested.set()
    if not _deferred:
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupts():
    """Hold back the ``KeyboardInterrupt`` of a Ctrl-C pressed inside this
    block; it is recorded, for :func:`raise_if_interrupted` after it. For steps
    that must not be cut in two: creating a temporary file and keeping its
    name, so that it can be removed; removing it."""
    global _deferred
    main = threading.current_thread() is threading.main_thread()
    if main:
        _deferred += 1
    try:
        yield
    finally:
        if main:
            _deferred -= 1


@contextlib.contextmanager
def recorded_interrupts():
    """Record Ctrl-C (SIGINT) for :func:`raise_if_interrupted` while active.

    Only in the main thread (the only one Python delivers signals to) and only
    where SIGINT has Python's default handler or this one: a handler the user
    or another library installed is left alone. Nested uses share the outermost
    one, which clears the record when it ends.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(
        signal.SIGINT
    ) not in (signal.default_int_handler, _record_and_raise):
        yield
        return
    previous = signal.signal(signal.SIGINT, _record_and_raise)
    if previous is _record_and_raise:  # an outer use is in charge
        yield
        return
    previous_hook = sys.unraisablehook

    def unraisable(report):
        # The interrupt a gc callback swallowed is recorded: no report.
        if not isinstance(report.exc_value, KeyboardInterrupt):
            previous_hook(report)

    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if sys.unraisablehook is unraisable:
            sys.unraisablehook = previous_hook
        _requested.clear()


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed under
    :func:`recorded_interrupts`, even if the first one was swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt


def forget_interrupts_c_code_saw() -> None:
    """Keep a handled Ctrl-C from turning ``python -m``'s exit into a SIGINT.

    CPython marks the process as ended by an unhandled ``KeyboardInterrupt``
    whenever one leaves Python code that C code ran through ``PyRun_String``
    (pybind11's ``exec``, which TensorFlow's import uses), even when a caller
    then catches it; under ``python -m`` (not a console script) the process
    then ends by SIGINT whatever status it exits with: the command's 130 came
    out as -2 when Ctrl-C landed in ``import keras``. Each such run clears the
    mark first, so running an empty one clears a stale mark.
    """
    ctypes.pythonapi.PyRun_SimpleString(b"")
