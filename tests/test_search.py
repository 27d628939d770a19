"""Searches and cross-validation on a dask.distributed cluster of worker processes.

The cluster is what CI can afford: 2 worker processes of 1 thread each. Each test
compares against the same computation in this process (``n_jobs=1``, no dask):
seeded skmnist fits are deterministic, so the scores must be equal, not close.
"""

import collections
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import joblib
import keras
import numpy as np
import pytest
from distributed import Client, LocalCluster, get_task_stream
from scipy.stats import loguniform
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_validate

from skmnist import (
    FitProgress,
    NoWorkersError,
    TensorFlowThreadsPlugin,
    dask_parallel_config,
    make_mnist_pipeline,
)
from skmnist._cli import _parse_value, _search_param, main
from skmnist._dask import dask_client
from skmnist._search import ProgressPrinter

# Run again under Keras's JAX backend by .ci/run (see CONTRIBUTING.md).
pytestmark = pytest.mark.each_backend

# Tiny network, 2 epochs: a fit takes a fraction of a second, yet the learning
# rates below give clearly different accuracies, so equal scores mean something.
TINY = {"hidden_units": 16, "epochs": 2, "batch_size": 32}
GRID = {
    "clf__hidden_units": [8, 16],
    "clf__optimizer__learning_rate": [3e-3, 3e-2],
}


@pytest.fixture(scope="module")
def client():
    with dask_client(n_workers=2, threads_per_worker=1) as client:
        yield client


@pytest.fixture(scope="module")
def images(digits):
    """600 of scikit-learn's 8x8 digits, pixels 0..16."""
    images, labels = digits
    return images[:600], labels[:600]


def _pipeline(**params):
    pipeline = make_mnist_pipeline(random_state=0, **{**TINY, **params})
    return pipeline.set_params(scale__max_value=16)


def _assert_same_split_scores(local, distributed, n_splits):
    for split in range(n_splits):
        key = f"split{split}_test_score"
        np.testing.assert_array_equal(distributed[key], local[key], err_msg=key)


@pytest.mark.slow
def test_the_cluster_is_two_single_threaded_worker_processes(client):
    nthreads = client.nthreads()
    assert sorted(nthreads.values()) == [1, 1]
    pids = client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()


def _tensorflow_threads_after_a_fit() -> dict:
    """Fit and predict in this process, then report TensorFlow's thread pools
    (under Keras's JAX backend: whether TensorFlow was imported at all)."""
    import sys

    import keras

    from skmnist import MNISTClassifier

    X = np.random.RandomState(0).rand(200, 16).astype(np.float32)
    y = np.arange(200) % 3
    MNISTClassifier(hidden_units=4, epochs=1, random_state=0).fit(X, y).predict(X)
    if keras.backend.backend() != "tensorflow":
        return {"tensorflow imported": "tensorflow" in sys.modules}
    import tensorflow as tf

    # The threads TensorFlow actually started, by the names it gives them:
    # tf_Compute is the intra-op pool of the CPU device, tf_XLAEigen the pool of
    # the XLA-compiled predict function. Both default to one per core.
    names = collections.Counter(
        Path(f"/proc/self/task/{task}/comm").read_text().strip()
        for task in os.listdir("/proc/self/task")
    )
    return {
        "configured": (
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
        ),
        "tf_Compute": names["tf_Compute"],
        "tf_XLAEigen": names["tf_XLAEigen"],
    }


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts threads in /proc"
)
@pytest.mark.slow
def test_workers_size_tensorflow_threads_to_their_own_threads(client):
    for worker in client.nthreads():
        report = client.submit(
            _tensorflow_threads_after_a_fit, workers=[worker], pure=False
        ).result()
        if keras.backend.backend() == "tensorflow":
            expected = {"configured": (1, 1), "tf_Compute": 1, "tf_XLAEigen": 1}
        else:  # and so no TensorFlow threads
            expected = {"tensorflow imported": False}
        assert report == expected


def test_dask_client_connects_to_a_running_scheduler(client):
    with dask_client(client.scheduler.address) as remote:
        assert remote.nthreads() == client.nthreads()
        plugins = remote.run(lambda dask_worker: sorted(dask_worker.plugins), wait=True)
        for names in plugins.values():
            assert TensorFlowThreadsPlugin.name in names
    # Leaving it closes the connection only, not the cluster.
    assert len(client.nthreads()) == 2


def test_plugin_warns_where_tensorflow_already_runs_with_other_pools():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("under JAX the plugin leaves TensorFlow alone (tested above)")
    # This pytest process has run TensorFlow with its default pools (0: one per
    # core), which can no longer change: the plugin must say so, not pretend.
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # make sure the runtime is initialised
    worker = type("FakeWorker", (), {"state": type("State", (), {"nthreads": 3})})
    with pytest.warns(RuntimeWarning, match="cannot be limited to 3"):
        TensorFlowThreadsPlugin().setup(worker)


@pytest.mark.slow
def test_grid_search_on_dask_scores_as_in_one_process(client, images):
    X, y = images
    local = GridSearchCV(_pipeline(), GRID, cv=3, n_jobs=1).fit(X, y)
    with get_task_stream(client) as tasks, joblib.parallel_config(backend="dask"):
        distributed = GridSearchCV(_pipeline(), GRID, cv=3, n_jobs=-1).fit(X, y)

    # All 12 fits ran on the cluster, on both workers.
    assert {task["worker"] for task in tasks.data} == set(client.nthreads())
    _assert_same_split_scores(local.cv_results_, distributed.cv_results_, 3)
    scores = distributed.cv_results_["mean_test_score"]
    assert scores.max() - scores.min() > 0.1  # the grid discriminates
    assert distributed.best_params_ == local.best_params_
    # Far above chance (0.1) after 2 epochs of a 16-unit net on 600 digits.
    assert distributed.best_estimator_.score(X, y) > 0.6


@pytest.mark.slow
def test_randomized_search_on_dask_draws_and_scores_as_in_one_process(client, images):
    X, y = images
    distributions = {
        "clf__hidden_units": [8, 16],
        "clf__optimizer__learning_rate": loguniform(1e-3, 1e-1),
    }

    def search(n_jobs):
        return RandomizedSearchCV(
            _pipeline(), distributions, n_iter=4, cv=2, n_jobs=n_jobs, random_state=0
        ).fit(X, y)

    local = search(1)
    with joblib.parallel_config(backend="dask"):
        distributed = search(-1)
    assert distributed.cv_results_["params"] == local.cv_results_["params"]
    _assert_same_split_scores(local.cv_results_, distributed.cv_results_, 2)


def test_cross_validate_brings_fitted_estimators_back_intact(client, images):
    X, y = images
    local = cross_validate(_pipeline(), X, y, cv=3, return_estimator=True)
    with joblib.parallel_config(backend="dask"):
        distributed = cross_validate(
            _pipeline(), X, y, cv=3, n_jobs=-1, return_estimator=True
        )
    np.testing.assert_array_equal(distributed["test_score"], local["test_score"])
    for here, there in zip(local["estimator"], distributed["estimator"], strict=True):
        # Fitted in a worker, pickled back: the same weights, and it predicts
        # here. Equal to the last bit: a worker's single-threaded TensorFlow sums
        # in the same order as this process's.
        np.testing.assert_array_equal(there.predict_proba(X), here.predict_proba(X))
        assert there.named_steps["clf"].history_ == here.named_steps["clf"].history_


# -- the command line ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("clf__hidden_units=128,512", ("clf__hidden_units", [128, 512])),
        (
            "clf__optimizer__learning_rate=1e-3,3e-4",
            ("clf__optimizer__learning_rate", [1e-3, 3e-4]),
        ),
        ("clf__activation=relu, tanh", ("clf__activation", ["relu", "tanh"])),
        ("clf__dropout=0,0.5", ("clf__dropout", [0, 0.5])),
        ("clf__shuffle=true,False", ("clf__shuffle", [True, False])),
        ("clf__class_weight=None,balanced", ("clf__class_weight", [None, "balanced"])),
        # Deep networks: a value in parentheses is a tuple, one width per layer.
        (
            "clf__hidden_units=256,512,(512,256)",
            ("clf__hidden_units", [256, 512, (512, 256)]),
        ),
        (
            "clf__hidden_units=(512, 256) , (128,64,32),64",
            ("clf__hidden_units", [(512, 256), (128, 64, 32), 64]),
        ),
        ("clf__hidden_units=(512),(512,)", ("clf__hidden_units", [(512,), (512,)])),
        ("clf__alpha=1e-4,1e-3", ("clf__alpha", [1e-4, 1e-3])),
        ("clf__early_stopping=true", ("clf__early_stopping", [True])),
    ],
)
def test_param_values_are_parsed(text, expected):
    name, values = _search_param(text)
    assert (name, values) == expected
    assert [type(v) for v in values] == [type(v) for v in expected[1]]
    for value, wanted in zip(values, expected[1], strict=True):
        if isinstance(wanted, tuple):
            assert [type(v) for v in value] == [type(v) for v in wanted]


def test_parse_value_keeps_ints_ints():
    assert type(_parse_value("5")) is int
    assert type(_parse_value("5.0")) is float


def _skmnist(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "skmnist", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,  # a bound: a search on real MNIST, on a loaded machine
    )


# A C++ log line of TensorFlow or XLA ("I0000 00:00:... cudart_stub.cc:31] ...").
_CPP_LOG = re.compile(r"^[IWEF]\d{4} \d+:\d+:\d+\.\d+ +\d+ \S+:\d+\]")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["--param", "clf__hidden_units"], "expected NAME=VALUE"),
        (["--param", "clf__hidden_units=8,"], "empty value"),
        (["--param", "clf__hidden_units=8,(16,8"], "unbalanced '(' in"),
        (["--param", "clf__hidden_units=8,16,8)"], "unbalanced ')' in"),
        (
            ["--param", "clf__hidden_units=((16,8),4)"],
            "parentheses within parentheses in",
        ),
        (
            ["--param", "clf__hidden_units=8,x(16,8)"],
            "'x(16,8)' in 'clf__hidden_units=8,x(16,8)': a tuple is a whole value",
        ),
        (["--param", "clf__hidden_units=8,()"], "empty value in '()'"),
        (["--param", "clf__hidden_units=(16,,8)"], "empty value in '(16,,8)'"),
    ],
)
def test_bad_param_is_a_usage_error(params, message):
    result = _skmnist("search", *params)
    assert result.returncode == 2
    # The last line (the test sets TF_CPP_MIN_LOG_LEVEL, so TensorFlow may log).
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("skmnist: error: argument --param: ")
    assert message in line and "see 'skmnist search --help'" in line
    assert "Traceback" not in result.stderr


def test_help_lists_the_search_options_without_heavy_imports():
    result = _skmnist("search", "--help")
    assert result.returncode == 0
    for option in ["--param", "--cv", "--scheduler", "--n-workers", "--limit"]:
        assert option in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom skmnist._cli import main\n"
            "try:\n    main(['search', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted({'tensorflow', 'distributed'} & set(sys.modules)), "
            "file=sys.stderr)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    assert probe.stderr.strip().splitlines()[-1] == "[]"


@pytest.mark.backend_independent
@pytest.mark.mnist
@pytest.mark.slow
def test_search_command_end_to_end(mnist_path, tmp_path):
    model = tmp_path / "best.joblib"
    result = _skmnist(
        "search",
        "--param",
        "clf__hidden_units=16,32",
        "--param",
        "clf__optimizer__learning_rate=1e-3,1e-2",
        "--param",
        "clf__epochs=1",
        "--cv",
        "2",
        "--limit",
        "2000",
        "--random-state",
        "0",
        "--n-workers",
        "2",
        "--data",
        str(mnist_path),
        "--output",
        str(model),
    )
    assert result.returncode == 0, result.stderr
    # Neither the command nor its dask worker processes (whose output is the
    # command's) show TensorFlow's C++ start-up lines below the user's level 2.
    assert [
        line
        for line in result.stderr.splitlines()
        if _CPP_LOG.match(line) and line[0] == "I"
    ] == []
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("dask cluster: 2 workers, 2 threads")
    header = next(
        i for i, line in enumerate(lines) if line.split()[:2] == ["rank", "score"]
    )
    rows = [line.split() for line in lines[header + 1 : header + 5]]
    assert [row[0] for row in rows] == ["1", "2", "3", "4"]
    scores = [float(row[1]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    best = next(line for line in lines if line.startswith("best parameters: "))
    assert best.removeprefix("best parameters: ") == " ".join(rows[0][4:])
    # One epoch (16 steps) on 2,000 images: well above chance (0.1), not 0.98.
    assert lines[-1].startswith("test_acc: ") and float(lines[-1].split()[1]) > 0.6
    pipeline = joblib.load(model)
    assert pipeline.get_params()["clf__epochs"] == 1
    assert f"clf__hidden_units={pipeline.get_params()['clf__hidden_units']}" in best


# -- a lost worker costs time, not the search ------------------------------------

KILL_GRID = {
    "clf__hidden_units": [4, 8],
    "clf__optimizer__learning_rate": [3e-3, 3e-2],
}
# Generous bounds for a loaded 2-core machine; a search here takes about a minute.
KILL_WAIT_S = 300


@pytest.fixture(scope="module")
def local_kill_search(images):
    """The reference: the same search in this process, no dask."""
    X, y = images
    return GridSearchCV(_pipeline(epochs=1), KILL_GRID, cv=3, n_jobs=1).fit(X, y)


def _kill_when_busy(client, progress, kill, killed):
    """Once a fit has finished (not after a fixed time), kill a worker that is
    running a fit; bounded by KILL_WAIT_S."""
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline:
        if progress.done >= 1:
            busy = [worker for worker, keys in client.processing().items() if keys]
            if busy:
                kill(busy[0])
                killed.append(busy[0])
                return
        time.sleep(0.05)


def _search_killing_a_worker(client, X, y, kill, **options):
    progress = FitProgress()
    killed = []
    killer = threading.Thread(
        target=_kill_when_busy, args=(client, progress, kill, killed), daemon=True
    )
    search = GridSearchCV(
        _pipeline(epochs=1), KILL_GRID, cv=3, n_jobs=-1, error_score="raise"
    )
    with dask_parallel_config(client, (X, y), progress=progress, **options):
        killer.start()
        search.fit(X, y)
    killer.join(timeout=KILL_WAIT_S)
    return search, progress, killed


def _sigkill_by_address(client):
    pids = client.run(os.getpid)
    return lambda address: os.kill(pids[address], signal.SIGKILL)


@pytest.mark.backend_independent
@pytest.mark.slow
def test_a_worker_killed_mid_search_is_restarted_and_the_search_completes(
    client, images, local_kill_search
):
    X, y = images
    search, progress, killed = _search_killing_a_worker(
        client, X, y, _sigkill_by_address(client)
    )
    assert len(killed) == 1, "the search ended before a worker could be killed"
    assert progress.lost_workers == 1
    # The fits that were running on the killed worker ran again elsewhere.
    assert progress.retried >= 1
    assert progress.done == 12
    _assert_same_split_scores(local_kill_search.cv_results_, search.cv_results_, 3)
    assert search.best_params_ == local_kill_search.best_params_
    # The nanny restarted the killed worker process, with the plugin.
    client.wait_for_workers(2, timeout=120)
    assert killed[0] not in client.nthreads()


@pytest.fixture
def workers_without_nanny(tmp_path):
    """A scheduler and 2 worker processes started with --no-nanny: a killed one
    stays dead. 2 threads each, since joblib runs a search in the calling
    process when the cluster has only one thread."""
    cluster = LocalCluster(n_workers=0, processes=True, dashboard_address=None)
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_NUM_INTRAOP_THREADS": "1",
        "TF_NUM_INTEROP_THREADS": "1",
    }
    workers = []
    try:
        for _ in range(2):
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        cluster.scheduler_address,
                        "--no-nanny",
                        "--nthreads",
                        "2",
                        "--no-dashboard",
                        "--local-directory",
                        str(tmp_path),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            client.register_plugin(TensorFlowThreadsPlugin())
            yield client
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(timeout=30)
        cluster.close()


@pytest.mark.backend_independent
@pytest.mark.slow
def test_a_worker_killed_for_good_costs_time_not_the_search(
    workers_without_nanny, images, local_kill_search
):
    client = workers_without_nanny
    X, y = images
    search, progress, killed = _search_killing_a_worker(
        client, X, y, _sigkill_by_address(client)
    )
    assert len(killed) == 1, "the search ended before a worker could be killed"
    assert progress.lost_workers == 1 and progress.retried >= 1
    _assert_same_split_scores(local_kill_search.cv_results_, search.cv_results_, 3)
    # Nobody restarted it: the survivor ran the rest.
    assert list(client.nthreads().values()) == [2]

    # Then the last worker dies too: a clear error, not a search waiting for ever.
    kill = _sigkill_by_address(client)

    def kill_every_worker(_busy):
        for address in list(client.nthreads()):
            kill(address)

    killed = []
    start = time.monotonic()
    with pytest.raises(NoWorkersError, match="every worker is gone"):
        _search_killing_a_worker(
            client,
            X,
            y,
            lambda busy: killed.append(kill_every_worker(busy)),
            no_workers_timeout=3,
        )
    assert killed and time.monotonic() - start < KILL_WAIT_S


def test_a_fit_failing_by_itself_fails_the_search_at_once_and_is_not_rerun(
    client, images
):
    X, y = images
    # The failing candidate first: its error must end the search, not a
    # NaN score for it after all the others have run.
    search = GridSearchCV(
        _pipeline().set_params(clf__epochs=3),
        {"clf__optimizer": ["adamm", "rmsprop"]},
        cv=3,
        n_jobs=-1,
        error_score="raise",
    )
    progress = FitProgress(total=6)
    with (
        pytest.raises(ValueError, match="adamm"),
        dask_parallel_config(client, (X, y), progress=progress),
    ):
        search.fit(X, y)
    assert progress.retried == 0 and progress.lost_workers == 0
    assert progress.done < 6  # stopped before every fit had run
    # ... and the cluster does not go on with the abandoned fits.
    deadline = time.monotonic() + 60
    while any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(client.processing().values())


@pytest.mark.slow
def test_the_training_data_reaches_each_worker_once_per_search(client, images):
    # (With dask's active memory manager, which dask_client's cluster runs
    # without, a worker between two batches now and then dropped its copy and
    # fetched the data again: two deliveries.)
    assert not client.amm.running()
    X, y = images
    client.run(lambda dask_worker: dask_worker.transfer_incoming_log.clear())
    with get_task_stream(client) as tasks, dask_parallel_config(client, (X, y)):
        GridSearchCV(_pipeline(), GRID, cv=3, n_jobs=-1).fit(X, y)
    # A worker receives the data by computing the task that holds it, or by
    # fetching its result from another worker.
    received = collections.Counter()
    for task in tasks.data:
        if task["key"].startswith("skmnist-data-"):
            received[task["worker"], task["key"]] += 1
    logs = client.run(lambda dask_worker: list(dask_worker.transfer_incoming_log))
    for worker, log in logs.items():
        for transfer in log:
            for key in transfer["keys"]:
                if key.startswith("skmnist-data-"):
                    received[worker, key] += 1
    batches = [t for t in tasks.data if t["key"].startswith("batch_of_")]
    assert len(batches) >= 2 and {t["worker"] for t in batches} == set(logs)
    # X and y, each at most once on each worker, for 12 fits.
    assert len({key for _, key in received}) == 2, received
    assert set(received.values()) == {1}, received
    assert {worker for worker, _ in received} == set(logs), received


# -- progress ----------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _print_progress_of_four_fits(stream):
    progress = FitProgress(total=4)
    with ProgressPrinter(progress, stream, interval=0.01):
        for _ in range(4):
            time.sleep(0.1)
            progress._add(done=1)
        time.sleep(0.1)
    return stream.getvalue()


def test_progress_is_plain_lines_when_not_on_a_terminal():
    output = _print_progress_of_four_fits(io.StringIO())
    assert "\r" not in output and "\033" not in output
    lines = output.splitlines()
    pattern = (
        r"fits (\d)/4, 0:00:0\d elapsed"
        r"(, about 0:00:0\d left|, time left not known yet)?"
    )
    done = [int(re.fullmatch(pattern, line).group(1)) for line in lines]
    # A line when fits finished, none while nothing changed; the last has no
    # estimate, as nothing is left.
    assert done == sorted(set(done)) and done[-1] == 4 and len(done) >= 3
    assert lines[-1].startswith("fits 4/4, ") and "left" not in lines[-1]
    assert "about 0:00:0" in output


def test_progress_is_a_bar_redrawn_in_place_on_a_terminal():
    output = _print_progress_of_four_fits(_Terminal())
    assert output.count("\n") == 1 and output.endswith("\n")
    frames = output.rstrip("\n").split("\r")[1:]
    assert len(frames) >= 3
    assert frames[-1].startswith("[" + "#" * 30 + "] fits 4/4")
    assert all(frame.endswith("\033[K") for frame in frames[:-1])


def test_progress_reports_reruns_after_lost_workers():
    progress = FitProgress(total=10)
    progress._add(done=4, retried=2, lost_workers=1)
    stream = io.StringIO()
    with ProgressPrinter(progress, stream, interval=60):
        pass
    assert stream.getvalue().endswith(", 2 rerun after 1 lost worker(s)\n")
    assert progress.remaining is not None and progress.remaining > 0


# -- checking the whole search before any work -------------------------------------


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, digits):
    """An MNIST-shaped .npz: scikit-learn's digits, enlarged to 28 x 28."""
    images, labels = digits
    large = np.kron(images, np.ones((3, 3), dtype=np.uint8)) * 15
    large = np.pad(large, ((0, 0), (2, 2), (2, 2)))
    path = tmp_path_factory.mktemp("data") / "small_mnist.npz"
    np.savez(
        path,
        x_train=large[:1200],
        y_train=labels[:1200].astype(np.uint8),
        x_test=large[1200:],
        y_test=labels[1200:].astype(np.uint8),
    )
    return path


# An address nothing listens on: a check that ran after connecting would fail
# with a connection error instead.
NO_SCHEDULER = ["--scheduler", "tcp://127.0.0.1:9"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            ["--param", "clf__hidden_unit=8"],
            # (scikit-learn 1.9 quotes the name, earlier releases do not.)
            "--param clf__hidden_unit=8: Invalid parameter ",
        ),
        (
            ["--param", "clf__hidden_units=many"],
            "--param clf__hidden_units='many': The 'hidden_units' parameter",
        ),
        (
            ["--param", "clf__epochs=1", "--param", "clf__epochs=2"],
            "--param clf__epochs given twice",
        ),
        (["--param", "clf=passthrough"], "--param clf: not a parameter of a step"),
        (["--param", "memory=cache"], "--param memory: not a parameter of a step"),
        (
            ["--param", "clf__optimizer__foo=1"],
            "--param clf__optimizer__foo=1: Argument(s) not recognized",
        ),
        (
            ["--param", "clf__optimizer=adam,adamm"],
            "--param clf__optimizer='adamm': Could not interpret optimizer",
        ),
        (
            ["--param", "clf__hidden_units=8,true"],
            "--param clf__hidden_units=True: expects a number, not a truth value",
        ),
        # Values a fit would take without a word and train nonsense with (a NaN
        # learning rate gives NaN weights and chance-level scores).
        (
            ["--param", "clf__optimizer__learning_rate=1e-3,nan"],
            "--param clf__optimizer__learning_rate=nan: not a finite number",
        ),
        (
            ["--param", "clf__optimizer__learning_rate=inf"],
            "--param clf__optimizer__learning_rate=inf: not a finite number",
        ),
        (
            ["--param", "clf__optimizer__learning_rate=-1e-3"],
            "--param clf__optimizer__learning_rate=-0.001: the learning rate must "
            "be positive",
        ),
        # Found by the first fit only, after the cluster had started.
        (
            ["--param", "clf__loss=sparse_categorical_crossentropy,foo"],
            "--param clf__loss='foo': Could not interpret loss",
        ),
        # The same candidate twice is the same fits twice.
        (
            ["--param", "clf__hidden_units=8,16,8"],
            "--param clf__hidden_units: the value 8 is given twice",
        ),
        (
            ["--param", "clf__hidden_units=8", "--cv", "1"],
            "argument --cv: must be an integer from 2 to 2147483647, got 1",
        ),
        (
            ["--param", "clf__hidden_units=8", "--random-state", "-1"],
            "argument --random-state: must be an integer from 0 to 4294967295, got -1",
        ),
        (
            ["--param", "clf__hidden_units=8", "--scoring", "acuracy"],
            "--scoring: unknown scorer 'acuracy'",
        ),
        # One hidden layer, spelt two ways: the same fits twice.
        (
            ["--param", "clf__hidden_units=8,(16,8),(8)"],
            "--param clf__hidden_units: 8 and (8,) are the same hidden layers",
        ),
        (
            ["--param", "clf__hidden_units=(16,8),(16, 8)"],
            "--param clf__hidden_units: the value (16, 8) is given twice",
        ),
        (
            ["--param", "clf__hidden_units=(16,relu)"],
            "--param clf__hidden_units must be a positive integer or a sequence of "
            "them (one width per hidden layer, such as (512, 256)); 'relu' in "
            "(16, 'relu') is not a whole number of units",
        ),
        # Every fit of such a candidate would refuse it.
        (
            [
                "--param",
                "clf__early_stopping=true,false",
                "--param",
                "clf__validation_fraction=0.2,0",
            ],
            "--param clf__early_stopping=True with clf__validation_fraction=0: "
            "early stopping needs validation rows",
        ),
        (
            ["--param", "clf__alpha=1e-4,-1"],
            "--param clf__alpha=-1: The 'alpha' parameter of MNISTClassifier must be",
        ),
    ],
)
def test_a_bad_search_is_refused_before_loading_data(
    run_cli, tmp_path, params, message
):
    missing = tmp_path / "no_such_data.npz"
    status, out, err = run_cli("search", *params, "--data", str(missing), *NO_SCHEDULER)
    assert (status, out) == (2, "")
    assert err.splitlines() == [f"skmnist: error: {err.split('error: ', 1)[1].strip()}"]
    assert err.startswith("skmnist: error: " + message), err
    # A usage error like every other command's: with the way to the help.
    assert err.rstrip().endswith("(see 'skmnist search --help')"), err


def test_the_grid_check_refuses_tuples_of_no_widths():
    # What run_search's callers (benchmarks) may pass, beyond what the command
    # line checks itself: the parameter constraints accept any sequence.
    from skmnist._search import SearchUsageError, check_param_grid

    pipeline = make_mnist_pipeline()
    for value, message in [
        ((8, 0), "--param clf__hidden_units=(8, 0): hidden_units must be"),
        ((), "--param clf__hidden_units=(): hidden_units must name at least one"),
        ([8, 2.5], "--param clf__hidden_units=[8, 2.5]: hidden_units must be"),
    ]:
        with pytest.raises(SearchUsageError) as error:
            check_param_grid([("clf__hidden_units", [16, value])], pipeline)
        assert str(error.value).startswith(message), error.value
    grid = check_param_grid([("clf__hidden_units", [16, (16, 8), [32, 16]])], pipeline)
    assert grid == {"clf__hidden_units": [16, (16, 8), [32, 16]]}
    # Early stopping with the default validation_fraction (None: 0.1) is fine.
    check_param_grid([("clf__early_stopping", [True, False])], pipeline)


@pytest.mark.backend_independent
@pytest.mark.parametrize("file_format", ["skmnist", "joblib"])
@pytest.mark.slow
def test_search_of_early_stopping_penalties_and_deep_networks_end_to_end(
    run_cli, small_data, tmp_path, file_format
):
    from skmnist._cli import load_digit_model
    from skmnist.datasets import load_mnist

    model = tmp_path / f"best.{file_format}"
    status, out, err = run_cli(
        "search",
        "--param", "clf__early_stopping=true",
        "--param", "clf__alpha=1e-4,1e-3",
        "--param", "clf__hidden_units=16,(16,8)",
        "--param", "clf__epochs=3",
        "--cv", "2", "--limit", "400", "--random-state", "0", "--n-workers", "0",
        "--data", str(small_data), "--output", str(model),
    )  # fmt: skip
    assert status == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    rows = lines[header + 1 : header + 5]
    assert len(rows) == 4  # 2 penalties x 2 networks
    assert sum("clf__hidden_units=(16, 8)" in row for row in rows) == 2
    best = next(line for line in lines if line.startswith("best parameters: "))
    loaded = load_digit_model(str(model), trust_pickle=True, digit_labels=True)
    clf = loaded[-1]
    params = loaded.get_params()
    assert f"clf__alpha={params['clf__alpha']!r}" in best
    assert f"clf__hidden_units={params['clf__hidden_units']!r}" in best
    assert clf.early_stopping is True and params["clf__epochs"] == 3
    # Refitted with early stopping: its record came along.
    assert 1 <= clf.n_iter_ <= 3 and clf.best_validation_score_ is not None
    _, (x_test, y_test) = load_mnist(str(small_data))
    assert lines[-1] == f"test_acc: {loaded.score(x_test, y_test):.4f}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--limit", "5", "--cv", "3"],
            "--cv 3 needs at least 3 images of every class, but the 5 training "
            "images searched hold 1 of class",
        ),
        (
            ["--limit", "12", "--cv", "2"],
            "--cv 2 needs at least 2 images of every class",
        ),
        (
            ["--scoring", "roc_auc"],
            "--scoring roc_auc cannot score 10 classes (",
        ),
        (["--scoring", "f1"], "--scoring f1 cannot score 10 classes ("),
    ],
)
def test_folds_and_scorer_are_checked_against_the_labels_before_any_worker(
    run_cli, small_data, options, message
):
    status, out, err = run_cli(
        "search",
        "--param",
        "clf__hidden_units=8",
        "--data",
        str(small_data),
        *options,
        *NO_SCHEDULER,
    )
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1 and err.startswith("skmnist: error: " + message)
    if "roc_auc" in options:
        assert "use roc_auc_ovr or roc_auc_ovo (see 'skmnist search --help')" in err


@pytest.mark.parametrize(
    ("error", "status"), [("SearchUsageError", 2), ("SearchFailedError", 1)]
)
def test_search_errors_are_reported_as_every_command_reports_them(
    capsys, monkeypatch, tmp_path, error, status
):
    # What run_search raises goes through the command line's own channels
    # (parser.error for usage, CommandError for failures): one line, even for a
    # message that spans several, and argparse's exit for a usage error.
    import skmnist._search

    def fail(*args, **kwargs):
        raise getattr(skmnist._search, error)("first line\n  second line")

    monkeypatch.setattr(skmnist._search, "run_search", fail)
    argv = ["search", "--param", "clf__hidden_units=8"]
    argv += ["--output", str(tmp_path / "m.skmnist")]
    if status == 2:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        hint = " (see 'skmnist search --help')"
    else:
        assert main(argv) == 1
        hint = ""
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"skmnist: error: first line second line{hint}\n"


def test_a_multiclass_scorer_that_applies_is_accepted():
    from skmnist._search import check_scoring

    for name in ["roc_auc_ovr", "f1_macro", "balanced_accuracy", "neg_log_loss"]:
        check_scoring(name, np.arange(100) % 10)


def test_a_search_where_every_candidate_scored_nan_is_a_failure(images):
    from skmnist._search import SearchFailedError, check_scores

    X, y = images
    search = GridSearchCV(
        _pipeline().set_params(clf__epochs=1),
        {"clf__hidden_units": [4, 8]},
        cv=2,
        scoring=lambda estimator, X, y: float("nan"),
    ).fit(X[:200], y[:200])
    with pytest.raises(SearchFailedError, match="every one of the 2 candidates"):
        check_scores(search)


@pytest.mark.backend_independent
@pytest.mark.slow
def test_search_command_shows_progress_and_reruns(
    run_cli, client, small_data, tmp_path
):
    """On a running cluster (--scheduler; the end-to-end test above starts its
    own), whose two single-threaded workers are the module's."""
    model = tmp_path / "best.skmnist"
    status, out, err = run_cli(
        "search",
        "--param",
        "clf__hidden_units=8,16",
        "--param",
        "clf__epochs=1",
        "--cv",
        "2",
        "--limit",
        "400",
        "--random-state",
        "0",
        "--scheduler",
        client.scheduler.address,
        "--data",
        str(small_data),
        "--output",
        str(model),
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("dask cluster: 2 workers, 2 threads")
    # capsys is not a terminal: plain lines, the last one when all 4 fits ran.
    progress = [line for line in lines if re.match(r"fits \d+/4, ", line)]
    assert progress[-1].startswith("fits 4/4, ")
    # Then the reruns, after the last progress line.
    rerun = lines.index("fits rerun after lost workers: 0 (0 workers lost)")
    assert rerun == lines.index(progress[-1]) + 1
    assert lines[-1].startswith("test_acc: ")
    assert model.is_file()


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("garbage", "missing port number in address 'garbage'"),
        ("tcp://127.0.0.1:9", "Timed out trying to connect to tcp://127.0.0.1:9"),
    ],
)
@pytest.mark.slow
def test_a_scheduler_that_cannot_be_reached_is_one_line(
    run_cli, small_data, tmp_path, address, message
):
    import dask

    # dask's own bound on the wait, shortened for the test (30 s by default).
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        status, out, err = run_cli(
            "search",
            "--param",
            "clf__hidden_units=8",
            "--data",
            str(small_data),
            "--output",
            str(tmp_path / "m.skmnist"),
            "--scheduler",
            address,
        )
    assert (status, out) == (1, "")
    assert "Traceback" not in err
    assert err.splitlines() == [
        f"skmnist: error: cannot reach the dask scheduler at {address}: {message}"
        + err.split(message, 1)[1].rstrip("\n")
    ], err
    assert not (tmp_path / "m.skmnist").exists()
