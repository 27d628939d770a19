"""Searches and cross-validation on a dask.distributed cluster of worker processes.

The cluster is what CI can afford: 2 worker processes of 1 thread each. Each test
compares against the same computation in this process (``n_jobs=1``, no dask):
seeded skmnist fits are deterministic, so the scores must be equal, not close.
"""

import collections
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from distributed import get_task_stream
from scipy.stats import loguniform
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_validate

from skmnist import TensorFlowThreadsPlugin, make_mnist_pipeline
from skmnist._cli import _parse_value, _search_param
from skmnist._dask import dask_client

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


def _pipeline():
    pipeline = make_mnist_pipeline(random_state=0, **TINY)
    return pipeline.set_params(scale__max_value=16)


def _assert_same_split_scores(local, distributed, n_splits):
    for split in range(n_splits):
        key = f"split{split}_test_score"
        np.testing.assert_array_equal(distributed[key], local[key], err_msg=key)


def test_the_cluster_is_two_single_threaded_worker_processes(client):
    nthreads = client.nthreads()
    assert sorted(nthreads.values()) == [1, 1]
    pids = client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()


def _tensorflow_threads_after_a_fit() -> dict:
    """Fit and predict in this process, then report TensorFlow's thread pools."""
    import tensorflow as tf

    from skmnist import MNISTClassifier

    X = np.random.RandomState(0).rand(200, 16).astype(np.float32)
    y = np.arange(200) % 3
    MNISTClassifier(hidden_units=4, epochs=1, random_state=0).fit(X, y).predict(X)
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
def test_workers_size_tensorflow_threads_to_their_own_threads(client):
    for worker in client.nthreads():
        report = client.submit(
            _tensorflow_threads_after_a_fit, workers=[worker], pure=False
        ).result()
        assert report == {"configured": (1, 1), "tf_Compute": 1, "tf_XLAEigen": 1}


def test_dask_client_connects_to_a_running_scheduler(client):
    with dask_client(client.scheduler.address) as remote:
        assert remote.nthreads() == client.nthreads()
        plugins = remote.run(lambda dask_worker: sorted(dask_worker.plugins), wait=True)
        for names in plugins.values():
            assert TensorFlowThreadsPlugin.name in names
    # Leaving it closes the connection only, not the cluster.
    assert len(client.nthreads()) == 2


def test_plugin_warns_where_tensorflow_already_runs_with_other_pools():
    # This pytest process has run TensorFlow with its default pools (0: one per
    # core), which can no longer change: the plugin must say so, not pretend.
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # make sure the runtime is initialised
    worker = type("FakeWorker", (), {"state": type("State", (), {"nthreads": 3})})
    with pytest.warns(RuntimeWarning, match="cannot be limited to 3"):
        TensorFlowThreadsPlugin().setup(worker)


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
    ],
)
def test_param_values_are_parsed(text, expected):
    name, values = _search_param(text)
    assert (name, values) == expected
    assert [type(v) for v in values] == [type(v) for v in expected[1]]


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
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["--param", "clf__hidden_units"], "expected NAME=VALUE"),
        (["--param", "clf__hidden_units=8,"], "empty value"),
        (["--param", "clf__hidden_unit=8"], "Invalid parameter hidden_unit"),
        (["--param", "clf__hidden_units=many"], "must be an int"),
        (["--param", "clf__epochs=1", "--param", "clf__epochs=2"], "given twice"),
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
    )
    assert probe.stderr.strip().splitlines()[-1] == "[]"


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
