"""The persistent compilation cache of the JAX backend, in fresh processes.

Keras fixes its backend per process and JAX reads its cache settings before the
first compile, so every case fits a small network in a subprocess of its own
under ``KERAS_BACKEND=jax``, with the cache folders (``XDG_CACHE_HOME`` too) in
``tmp_path``.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from skmnist._compilation_cache import (
    ENVIRONMENT_VARIABLE,
    MAX_CACHE_BYTES,
    cache_folder,
)

# Fits a small network and reports what a test needs: the persistent-cache hits
# JAX logged, skmnist's warnings, and the predicted probabilities.
_FIT = textwrap.dedent(
    """
    import json, logging, os, sys, warnings
    if os.environ.get("HIDE_FILELOCK"):
        sys.modules["filelock"] = None  # as if not installed
    import numpy as np
    from sklearn.datasets import load_digits

    hits = []
    class Hits(logging.Handler):
        def emit(self, record):
            if "Persistent compilation cache hit" in record.getMessage():
                hits.append(record.getMessage())
    jax_logger = logging.getLogger("jax._src.compiler")
    jax_logger.addHandler(Hits())
    jax_logger.setLevel(logging.DEBUG)

    import jax

    X, y = load_digits(return_X_y=True)
    X = (X[:300] / 16).astype(np.float32)
    y = y[:300]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from skmnist import MNISTClassifier
        for _ in range(2):
            clf = MNISTClassifier(hidden_units=8, epochs=1, random_state=0)
            clf.fit(X, y)
    print(json.dumps({
        "hits": len(hits),
        "warnings": [str(w.message) for w in caught
                     if issubclass(w.category, RuntimeWarning)],
        "proba": clf.predict_proba(X[:5]).tolist(),
        "max_size": jax.config.jax_compilation_cache_max_size,
    }))
    """
)


def _fit_in_a_fresh_process(
    cache_home: Path, backend: str = "jax", **environment: str
) -> dict:
    """Fit in a new process whose default cache folder is in ``cache_home``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != ENVIRONMENT_VARIABLE and not key.startswith("JAX_")
    }
    env.update(
        KERAS_BACKEND=backend,
        XDG_CACHE_HOME=str(cache_home),
        # Keras imports matplotlib, whose font cache follows XDG_CACHE_HOME:
        # kept where it is, or each process would spend seconds rebuilding it.
        MPLCONFIGDIR=os.environ.get(
            "MPLCONFIGDIR", str(Path.home() / ".cache" / "matplotlib")
        ),
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        **environment,
    )
    result = subprocess.run(
        [sys.executable, "-c", _FIT],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _entries(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache folder filled by one fresh process, and what that process saw."""
    pytest.importorskip("jax", reason="the JAX backend needs skmnist[jax]")
    home = tmp_path_factory.mktemp("xdg")
    folder = tmp_path_factory.mktemp("cache") / "jax"
    first = _fit_in_a_fresh_process(home, **{ENVIRONMENT_VARIABLE: str(folder)})
    return home, folder, first


@pytest.mark.slow
def test_a_fit_fills_the_cache_folder_named_by_the_environment(warm_cache):
    home, folder, first = warm_cache
    assert len(_entries(folder)) >= 3
    assert first["warnings"] == []
    assert _entries(home) == []  # not in the default folder too
    assert first["max_size"] == MAX_CACHE_BYTES  # bounded


@pytest.mark.slow
def test_without_filelock_the_cache_works_unbounded(tmp_path):
    # JAX refuses a size limit without filelock, and would then cache nothing.
    pytest.importorskip("jax", reason="the JAX backend needs skmnist[jax]")
    folder = tmp_path / "cache"
    seen = _fit_in_a_fresh_process(
        tmp_path, HIDE_FILELOCK="1", **{ENVIRONMENT_VARIABLE: str(folder)}
    )
    assert seen["max_size"] == -1
    assert len(_entries(folder)) >= 3


@pytest.mark.slow
def test_a_users_own_size_limit_is_kept(tmp_path):
    pytest.importorskip("jax", reason="the JAX backend needs skmnist[jax]")
    seen = _fit_in_a_fresh_process(
        tmp_path, **{"JAX_COMPILATION_CACHE_MAX_SIZE": str(2**30)}
    )
    assert seen["max_size"] == 2**30


@pytest.mark.slow
def test_a_second_process_loads_its_programs_from_the_cache(warm_cache):
    home, folder, first = warm_cache
    before = {path.name for path in _entries(folder)}
    second = _fit_in_a_fresh_process(home, **{ENVIRONMENT_VARIABLE: str(folder)})
    assert first["hits"] == 0
    assert second["hits"] > 0
    # Loaded rather than compiled again: nothing new to write.
    assert {path.name for path in _entries(folder)} == before
    np.testing.assert_array_equal(second["proba"], first["proba"])


@pytest.mark.slow
def test_off_writes_nothing(tmp_path):
    pytest.importorskip("jax", reason="the JAX backend needs skmnist[jax]")
    result = _fit_in_a_fresh_process(tmp_path, **{ENVIRONMENT_VARIABLE: "off"})
    assert result["hits"] == 0
    assert _entries(tmp_path) == []


@pytest.mark.slow
def test_an_unwritable_folder_warns_once_and_fits(tmp_path):
    pytest.importorskip("jax", reason="the JAX backend needs skmnist[jax]")
    # Below a regular file: no folder can be made there, whatever the user's
    # rights (tests may run as root, who may write anywhere).
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _fit_in_a_fresh_process(
        tmp_path, **{ENVIRONMENT_VARIABLE: str(blocker / "jax")}
    )
    assert len(result["warnings"]) == 1, result["warnings"]
    assert str(blocker / "jax") in result["warnings"][0]
    assert ENVIRONMENT_VARIABLE in result["warnings"][0]
    assert np.allclose(np.sum(result["proba"], axis=1), 1)


@pytest.mark.slow
def test_both_backends_start_from_the_same_weights(warm_cache, tmp_path):
    """One random_state, one model, on either backend: the initial weights are
    drawn by NumPy, not by each backend's own generator."""
    *_, jax_fit = warm_cache
    tensorflow_fit = _fit_in_a_fresh_process(tmp_path, backend="tensorflow")
    # The same training from the same start; float32 sums in another order.
    np.testing.assert_allclose(tensorflow_fit["proba"], jax_fit["proba"], atol=1e-4)


@pytest.mark.parametrize(
    "setting, expected",
    [("off", None), ("OFF", None), ("", None), ("/some/where", Path("/some/where"))],
)
def test_the_environment_variable_moves_or_disables_the_cache(
    monkeypatch, setting, expected
):
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, setting)
    assert cache_folder() == expected


def test_the_default_folder_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_folder() == tmp_path / "skmnist" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_folder() == tmp_path / ".cache" / "skmnist" / "jax"


def test_a_relative_folder_is_taken_from_the_current_folder(monkeypatch, tmp_path):
    # JAX opens the folder at its first compile, maybe after a chdir.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "compiled")
    assert cache_folder() == tmp_path / "compiled"
    monkeypatch.delenv(ENVIRONMENT_VARIABLE)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # not absolute: ignored
    assert cache_folder() == tmp_path / "home" / ".cache" / "skmnist" / "jax"
