"""Predicting from several threads at once on one fitted estimator."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from skmnist import MNISTClassifier, make_mnist_pipeline

TINY = {"hidden_units": 32, "epochs": 1, "batch_size": 32, "random_state": 0}
# Different batch sizes at the same time, each several times over.
BATCHES = [1, 7, 64, 300, 1797] * 4


@pytest.fixture(scope="module")
def estimators(digits, digits_flat):
    images, labels = digits
    X, y = digits_flat
    return {
        "classifier": (MNISTClassifier(**TINY).fit(X, y), X),
        "pipeline": (make_mnist_pipeline(**TINY).fit(images, labels), images),
    }


@pytest.mark.parametrize("kind", ["classifier", "pipeline"])
@pytest.mark.parametrize("method", ["predict", "predict_proba"])
@pytest.mark.slow
def test_concurrent_predictions_equal_sequential_ones(kind, method, estimators):
    estimator, X = estimators[kind]
    predict = getattr(estimator, method)
    sequential = [predict(X[:n]) for n in BATCHES]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda n: predict(X[:n]), BATCHES))
    for expected, got in zip(sequential, concurrent, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_concurrent_transform_equals_sequential(estimators):
    pipeline, images = estimators["pipeline"]
    scaler = pipeline[0]
    sequential = [scaler.transform(images[:n]) for n in BATCHES]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda n: scaler.transform(images[:n]), BATCHES))
    for expected, got in zip(sequential, concurrent, strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_concurrent_first_calls_before_any_compiled_forward_pass(digits_flat):
    # An architecture no test predicted with yet: the threads race to trace and
    # cache its forward pass.
    X, y = digits_flat
    clf = MNISTClassifier(**{**TINY, "hidden_units": 37}).fit(X, y)
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda n: clf.predict_proba(X[:n]), BATCHES))
    for n, got in zip(BATCHES, concurrent, strict=True):
        np.testing.assert_array_equal(got, clf.predict_proba(X[:n]))
