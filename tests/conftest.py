import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

# JAX's compilation cache (skmnist/_compilation_cache.py) in a folder of this
# test session, inherited by the processes tests start, rather than in the
# user's ~/.cache; tests of the cache itself set their own.
if "SKMNIST_COMPILATION_CACHE" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="skmnist-test-compilation-cache-")
    os.environ["SKMNIST_COMPILATION_CACHE"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

# The modules that take longest, longest first (summed --durations of the
# README's command and of .ci/run's JAX run; CONTRIBUTING.md). Under --dist
# loadfile a module is one unit of work, handed to whichever xdist worker runs
# low, and xdist would otherwise hand out the modules with the most tests
# first, so that a long module with few tests (the gallery, the compilation
# cache, the memory test) could come last and keep one worker busy while the
# other idles. The order is only for balance; no test depends on it. Other
# modules follow in collection order.
_LONGEST_MODULES_FIRST = (
    "test_classifier.py",
    "test_search.py",
    "test_training.py",
    "test_serve.py",
    "test_persistence.py",
    "test_cli.py",
    "test_examples.py",
    "test_onnx.py",
    "test_augmentation.py",
    "test_keras_fit.py",
    "test_inference.py",
    "test_compilation_cache.py",
    "test_model_selection.py",
    "test_packing.py",
    "test_images.py",
    "test_estimator_checks.py",
    "test_memory.py",
    "test_interrupts.py",
    "test_scikeras_without_tensorflow.py",
    "test_network.py",
    "test_compat.py",
)


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist's
        config.option.loadscopereorder = False  # keep the order below


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_LONGEST_MODULES_FIRST)}
    # sort is stable: tests keep their order within a module.
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


# The offline copy of MNIST this project's machines share (see its README).
_SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 8x8 digits as uint8 images with pixels 0..16: small and fast."""
    data = load_digits()
    return data.images.astype(np.uint8), data.target


@pytest.fixture(scope="session")
def digits_flat(digits):
    images, labels = digits
    return images.reshape(len(images), -1).astype(np.float32) / 16, labels


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    """Path of the real MNIST ``mnist.npz``: ``$SKMNIST_DATA``, else the shared copy.

    Skips where no copy exists, unless ``SKMNIST_REQUIRE_DATA=1`` (as in CI),
    where a missing file is an error.
    """
    candidates = [os.environ.get("SKMNIST_DATA"), _SHARED_MNIST]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    reason = (
        "real MNIST not found: set SKMNIST_DATA to the path of Keras's mnist.npz "
        "(https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz)"
    )
    if os.environ.get("SKMNIST_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def mnist(mnist_path):
    with np.load(mnist_path) as data:
        return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])


@pytest.fixture(scope="session")
def mnist_pipeline(mnist, tmp_path_factory):
    """The default pipeline (``random_state=0``) fitted once on all of MNIST's
    training set, for every test that needs exactly that fit; read it, never
    change it (refit a :func:`~sklearn.base.clone` instead). Fitted once per
    test run: under pytest-xdist the first worker to need it saves it (in the
    safe format, which round-trips exactly) where the others load it."""
    from filelock import FileLock

    from skmnist import load, make_mnist_pipeline, save

    folder = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        folder = folder.parent  # the run's, which holds each worker's own
    path = folder / "mnist_pipeline.skmnist"
    with FileLock(f"{path}.lock"):
        if path.is_file():
            return load(path)
        (x_train, y_train), _ = mnist
        fitted = make_mnist_pipeline(random_state=0).fit(x_train, y_train)
        save(fitted, path)
        return fitted


@pytest.fixture
def run_cli(capsys):
    """The command line run in this process, as a function of its arguments:
    ``run_cli("predict", path, ...)`` gives ``(exit status, stdout, stderr)``
    of that command alone. For what a command does with its arguments; what
    its own process does (exit codes under signals, imports, TensorFlow's C++
    lines) needs a child process."""
    from skmnist._cli import main

    def run(*argv):
        capsys.readouterr()  # not what the test printed before
        try:
            status = main(list(map(str, argv)))
        except SystemExit as exit_:  # argparse's usage errors
            status = exit_.code
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture(scope="session")
def eps_digit() -> bytes:
    """An EPS file: Pillow hands such files to Ghostscript to render."""
    return (
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n"
        b"newpath 4 4 moveto 24 24 lineto stroke showpage\n%%EOF\n"
    )


@pytest.fixture
def recording_ghostscript(tmp_path, monkeypatch):
    """A ``gs`` first on PATH that records being run: CI has no Ghostscript, so
    only a refusal with one present proves that none is started. Returns the
    file that exists once it has run."""
    pytest.importorskip("PIL")
    from PIL import EpsImagePlugin

    folder = tmp_path / "bin"
    folder.mkdir()
    record = tmp_path / "gs-ran"
    script = folder / "gs"
    # Every start is recorded; it claims a version (Pillow asks for one first)
    # and fails to render.
    script.write_text(
        f"#!/bin/sh\necho \"$@\" >> '{record}'\n"
        '[ "$1" = --version ] && echo 10.05.1 && exit 0\nexit 1\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    # Pillow looks Ghostscript up once per process and remembers it.
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None, raising=False)
    monkeypatch.setattr(EpsImagePlugin, "gs_windows_binary", None, raising=False)
    return record
