"""TensorFlow's thread pools in joblib's worker processes follow OMP_NUM_THREADS."""

import os

import joblib
import pytest


def _tensorflow_pool_variables() -> dict:
    import skmnist  # noqa: F401  (what unpickling an estimator imports first)

    return {
        name: os.environ.get(name)
        for name in (
            "OMP_NUM_THREADS",
            "TF_NUM_INTRAOP_THREADS",
            "TF_NUM_INTEROP_THREADS",
        )
    }


@pytest.fixture
def clean_environment(monkeypatch):
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.delenv(name, raising=False)


def test_loky_workers_give_tensorflow_their_share_of_the_cores(clean_environment):
    share = str(max(joblib.cpu_count() // 2, 1))
    with joblib.parallel_config(backend="loky"):
        seen = joblib.Parallel(n_jobs=2)(
            joblib.delayed(_tensorflow_pool_variables)() for _ in range(2)
        )
    for variables in seen:
        assert variables == {
            "OMP_NUM_THREADS": share,
            "TF_NUM_INTRAOP_THREADS": share,
            "TF_NUM_INTEROP_THREADS": share,
        }


def test_a_users_own_tensorflow_setting_wins(clean_environment, monkeypatch):
    from skmnist._thread_pools import follow_omp_num_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "5")
    follow_omp_num_threads()
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == "5"
    assert os.environ["TF_NUM_INTEROP_THREADS"] == "3"


@pytest.mark.parametrize("value", ["", "0", "many", "-2"])
def test_no_usable_omp_num_threads_leaves_tensorflow_alone(
    clean_environment, monkeypatch, value
):
    from skmnist._thread_pools import follow_omp_num_threads

    monkeypatch.setenv("OMP_NUM_THREADS", value)
    follow_omp_num_threads()
    assert "TF_NUM_INTRAOP_THREADS" not in os.environ
