"""Ctrl-C that a garbage-collector callback swallows still stops ``fit`` at the
end of the epoch and still keeps a file from being replaced.

Each scenario runs in a fresh Python process whose main thread owns SIGINT
(pytest's workers may run tests elsewhere, and a background job ignores
SIGINT): the process swallows a real SIGINT the way CPython does, by raising
it inside a gc callback, and reports what happened as JSON.
"""

import json
import subprocess
import sys
import textwrap

import pytest

_PRELUDE = textwrap.dedent(
    """
    import gc, json, os, signal, sys, warnings

    # As in a terminal, whatever the test runner inherited.
    signal.signal(signal.SIGINT, signal.default_int_handler)


    def swallowed_interrupt():
        # What JAX's gc callback suffers: SIGINT arrives while a gc callback
        # runs, and CPython reports the KeyboardInterrupt as ignored.
        def callback(phase, info):
            if phase == "start":
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(10_000):  # the handler runs in here
                    pass

        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)


    def stopped_by_ctrl_c(clf, X, y):
        # Whether a KeyboardInterrupt stopped the fit.
        try:
            clf.fit(X, y)
        except KeyboardInterrupt:
            return True
        return False
    """
)


def _run(body: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_swallowing_is_real_without_the_record():
    # The control: with Python's own handler, the interrupt is lost.
    outcome = _run(
        """
        swallowed_interrupt()
        print(json.dumps({"survived": True}))
        """
    )
    assert outcome == {"survived": True}


@pytest.mark.slow
def test_fit_stops_at_the_end_of_the_epoch_of_a_swallowed_interrupt():
    outcome = _run(
        """
        import keras
        import numpy as np
        from skmnist import FitInterruptedWarning, MNISTClassifier

        class SwallowAtEpoch(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                if epoch == 1:
                    swallowed_interrupt()

        X = np.random.RandomState(0).rand(200, 8).astype("float32")
        y = np.arange(200) % 3
        clf = MNISTClassifier(
            hidden_units=4, epochs=50, callbacks=[SwallowAtEpoch()], random_state=0
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            stopped = stopped_by_ctrl_c(clf, X, y)
        print(json.dumps({
            "stopped": stopped,
            "epochs": len(clf.history_["loss"]),
            "warned": any(
                issubclass(w.category, FitInterruptedWarning) for w in caught
            ),
            "handler_restored": signal.getsignal(signal.SIGINT)
            is signal.default_int_handler,
        }))
        """
    )
    assert outcome == {
        "stopped": True,
        "epochs": 2,  # the epoch it came in is kept, then training stops
        "warned": True,
        "handler_restored": True,
    }


@pytest.mark.slow
def test_a_ctrl_c_during_a_compiled_epoch_is_raised_after_its_call():
    # Never inside TensorFlow's or JAX's own Python code, where TensorFlow's
    # C++ code once printed it as a SystemError's traceback; the epoch it came
    # in is kept, then training stops, as for a swallowed one (above).
    outcome = _run(
        """
        import numpy as np
        from skmnist import MNISTClassifier, _training

        finished = []
        for runner in (_training._TensorFlowEpochs, _training._JaxEpochs):
            def run_epoch(self, data, order, batch_size, _real=runner.run_epoch):
                if len(finished) == 1:  # in the second epoch's call
                    os.kill(os.getpid(), signal.SIGINT)
                    for _ in range(10_000):  # the handler runs in here
                        pass
                _real(self, data, order, batch_size)
                finished.append(True)
            runner.run_epoch = run_epoch

        X = np.random.RandomState(0).rand(200, 8).astype("float32")
        y = np.arange(200) % 3
        clf = MNISTClassifier(hidden_units=4, epochs=5, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stopped = stopped_by_ctrl_c(clf, X, y)
        print(json.dumps({
            "stopped": stopped,
            "calls_finished": len(finished),
            "epochs_kept": len(clf.history_["loss"]),
        }))
        """
    )
    assert outcome == {"stopped": True, "calls_finished": 2, "epochs_kept": 2}


def test_a_swallowed_interrupt_keeps_the_previous_file(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"saved earlier")
    outcome = _run(
        f"""
        from pathlib import Path
        from skmnist._files import write_atomically
        from skmnist._interrupts import recorded_interrupts

        def write(temporary):
            Path(temporary).write_bytes(b"half of a new model")
            swallowed_interrupt()

        with recorded_interrupts():
            try:
                write_atomically({str(target)!r}, write)
                outcome = "replaced"
            except KeyboardInterrupt:
                outcome = "kept"
        print(json.dumps({{"outcome": outcome}}))
        """
    )
    assert outcome == {"outcome": "kept"}
    assert target.read_bytes() == b"saved earlier"
    assert [path.name for path in tmp_path.iterdir()] == ["model.bin"]


def test_a_handler_of_the_users_own_is_left_alone():
    outcome = _run(
        """
        from skmnist._interrupts import raise_if_interrupted, recorded_interrupts

        def mine(signum, frame):
            pass

        signal.signal(signal.SIGINT, mine)
        with recorded_interrupts():
            inside = signal.getsignal(signal.SIGINT) is mine
            os.kill(os.getpid(), signal.SIGINT)
            raise_if_interrupted()  # nothing recorded: the user handles it
        after = signal.getsignal(signal.SIGINT) is mine
        print(json.dumps({"inside": inside, "after": after}))
        """
    )
    assert outcome == {"inside": True, "after": True}


def test_an_interrupt_in_a_deferred_step_is_raised_after_it():
    outcome = _run(
        """
        from skmnist._interrupts import (
            deferred_interrupts, raise_if_interrupted, recorded_interrupts,
        )

        steps = []
        with recorded_interrupts():
            try:
                with deferred_interrupts():
                    os.kill(os.getpid(), signal.SIGINT)
                    for _ in range(10_000):  # the handler runs in here
                        pass
                    steps.append("finished the step")
                raise_if_interrupted()
                steps.append("went on")
            except KeyboardInterrupt:
                steps.append("stopped after it")
        print(json.dumps(steps))
        """
    )
    assert outcome == ["finished the step", "stopped after it"]


@pytest.mark.parametrize("forget", [False, True], ids=["as-cpython-does", "forgotten"])
def test_a_handled_interrupt_that_c_code_saw_keeps_python_m_s_status(tmp_path, forget):
    """Under ``python -m``, a KeyboardInterrupt caught after it left code that
    C ran through ``PyRun_String`` (as in TensorFlow's import) makes CPython end
    the process by SIGINT, status 130 or not; skmnist's ``__main__`` forgets
    it, and the status stays the command's 130."""
    module = tmp_path / "interrupted_in_c.py"
    module.write_text(
        textwrap.dedent(
            f"""
            import ctypes, os, signal, sys

            from skmnist._interrupts import forget_interrupts_c_code_saw

            signal.signal(signal.SIGINT, signal.default_int_handler)
            run = ctypes.pythonapi.PyRun_String
            run.restype = ctypes.py_object
            run.argtypes = [
                ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object
            ]
            try:  # 257: Py_file_input
                run(b"import os, signal; os.kill(os.getpid(), signal.SIGINT)",
                    257, {{}}, {{}})
            except KeyboardInterrupt:
                print("handled", flush=True)
            if {forget}:
                forget_interrupts_c_code_saw()
            sys.exit(130)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", module.stem],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout == "handled\n", result.stderr
    assert result.returncode == (130 if forget else -2)
