"""The estimator's own tests, run again under Keras's JAX backend.

Keras picks its backend once per process, so they run in a subprocess. tox's
``tests-jax`` environment runs the whole suite under JAX.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
MODULES_TO_RERUN = ["test_training.py", "test_inference.py", "test_classifier.py"]


@pytest.mark.slow
def test_estimator_tests_pass_under_the_jax_backend():
    pytest.importorskip("jax", reason="the JAX backend needs skmnist[jax]")
    if os.environ.get("KERAS_BACKEND") == "jax":
        pytest.skip("this whole run already uses the JAX backend")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *(str(TESTS / module) for module in MODULES_TO_RERUN),
        ],
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
