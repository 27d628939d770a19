"""A process whose Keras runs on JAX imports no TensorFlow (see
skmnist/_scikeras_without_tensorflow.py and
_compat.keras_serialization_without_tensorflow), and still can."""

import os
import subprocess
import sys

import keras
import pytest

from skmnist import _compat

JAX_PROCESS = """
import copy
import pickle
import sys
import numpy as np
import skmnist
from skmnist import MNISTClassifier
rng = np.random.RandomState(0)
X, y = rng.rand(300, 20).astype(np.float32), rng.randint(0, 3, 300)
clf = MNISTClassifier(hidden_units=8, epochs=2, random_state=0).fit(X, y)
clf.partial_fit(X, y)
clf.predict_proba(X)
skmnist.save(clf, sys.argv[1])
skmnist.load(sys.argv[1]).score(X, y)
pickle.loads(pickle.dumps(clf)).score(X, y)
copy.deepcopy(clf).score(X, y)
print("imported" if "tensorflow" in sys.modules else "not imported")
import scikeras.utils.random_state as helper
import tensorflow as tf
tf.constant(1)
print("importable")
"""


def _run_under_jax(code: str, *args: str) -> list[str]:
    """The lines ``code`` prints in a new process whose Keras runs on JAX."""
    pytest.importorskip("jax", reason="the JAX backend needs skmnist[jax]")
    pytest.importorskip("tensorflow")
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


@pytest.mark.slow
def test_a_jax_process_imports_no_tensorflow(tmp_path):
    printed = _run_under_jax(JAX_PROCESS, str(tmp_path / "clf.skmnist"))
    assert printed[-2:] == ["not imported", "importable"]


def test_under_tensorflow_scikeras_seeds_tensorflow():
    import scikeras.utils.random_state as helper

    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's seed is scikeras's under the TensorFlow backend only")
    # The real helpers, not the no-ops scikeras falls back to without TensorFlow.
    assert "tf" in vars(helper)


def test_keras_serialization_imports_tensorflow_where_keras_moved(monkeypatch):
    # The fallback: without Keras's lazy module, serialization goes on as before.
    monkeypatch.setitem(sys.modules, "keras.src.utils.module_utils", None)
    with _compat.keras_serialization_without_tensorflow():
        config = keras.optimizers.RMSprop().get_config()
    assert config["rho"] == pytest.approx(0.9)


def test_serialization_with_tensorflow_imported_is_left_alone():
    pytest.importorskip("tensorflow")
    from keras.src.utils.module_utils import tensorflow as lazy_tensorflow

    before = lazy_tensorflow._available
    with _compat.keras_serialization_without_tensorflow():
        assert lazy_tensorflow._available == before
        keras.losses.SparseCategoricalCrossentropy().get_config()
    assert lazy_tensorflow._available == before


# Inside the context in one thread, Keras's question "is TensorFlow installed?"
# asked by another thread gets the true answer.
OTHER_THREAD = """
import sys, threading
import keras
from keras.src.utils.module_utils import tensorflow as lazy_tensorflow
from skmnist import _compat

inside, done, seen = threading.Event(), threading.Event(), {}

def serialize():
    with _compat.keras_serialization_without_tensorflow():
        seen["inside"] = lazy_tensorflow.available
        inside.set()
        done.wait(60)

thread = threading.Thread(target=serialize)
thread.start()
inside.wait(60)
seen["other thread"] = lazy_tensorflow.available
done.set()
thread.join(60)
print(seen["inside"], seen["other thread"], "tensorflow" in sys.modules)
"""


@pytest.mark.slow
def test_other_threads_are_told_the_truth():
    assert _run_under_jax(OTHER_THREAD)[-1].split() == ["False", "True", "True"]


def test_a_lazy_module_that_moved_is_left_alone():
    class Moved:
        available = True  # not a property any more

    with pytest.raises(TypeError):
        _compat._thread_aware(Moved)
