"""Trains the default pipeline on the real MNIST data set."""

import pytest

from skmnist import make_mnist_pipeline


@pytest.mark.mnist
def test_default_pipeline_reaches_seed_accuracy(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    pipe = make_mnist_pipeline(random_state=0).fit(x_train, y_train)
    clf = pipe.named_steps["clf"]
    assert len(clf.history_["loss"]) == 5
    assert clf.history_["accuracy"][-1] > clf.history_["accuracy"][0]
    assert pipe.score(x_test, y_test) >= 0.97
