"""Trains the default pipeline on the real MNIST data set."""

import pytest


@pytest.mark.mnist
def test_default_pipeline_reaches_seed_accuracy(mnist, mnist_pipeline):
    # mnist_pipeline: make_mnist_pipeline(random_state=0).fit(x_train, y_train),
    # shared with the other tests of that fit (conftest.py).
    _, (x_test, y_test) = mnist
    clf = mnist_pipeline.named_steps["clf"]
    assert len(clf.history_["loss"]) == 5
    assert clf.history_["accuracy"][-1] > clf.history_["accuracy"][0]
    assert mnist_pipeline.score(x_test, y_test) >= 0.97
