import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from sklearn.base import BaseEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from skmnist import (  # noqa: E402
    MNISTClassifier,
    PixelScaler,
    plot_confusion_matrix,
    plot_learning_curves,
    plot_misclassified,
)
from skmnist._plotting import _evaluation_figure  # noqa: E402

HISTORY = {
    "loss": [0.5, 0.3, 0.2],
    "accuracy": [0.8, 0.9, 0.95],
    "val_loss": [0.4, 0.35, 0.33],
    "val_accuracy": [0.85, 0.88, 0.9],
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# -- learning curves -----------------------------------------------------------


def test_learning_curves_one_panel_per_quantity_with_both_curves():
    axes = plot_learning_curves(HISTORY)
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
    assert len(axes[0].figure.axes) == 2
    for ax, name in zip(axes, ["loss", "accuracy"], strict=True):
        training, validation = ax.get_lines()
        assert training.get_label() == "training"
        assert validation.get_label() == "validation"
        np.testing.assert_array_equal(training.get_xdata(), [1, 2, 3])
        np.testing.assert_array_equal(training.get_ydata(), HISTORY[name])
        np.testing.assert_array_equal(validation.get_ydata(), HISTORY[f"val_{name}"])
        assert ax.get_xlabel() == "epoch"


def test_learning_curves_without_validation_and_with_extra_metrics():
    history = {"accuracy": [0.5, 0.6], "loss": [1.0, 0.8], "auc": [0.7, 0.8]}
    axes = plot_learning_curves(history)
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy", "auc"]
    assert all(len(ax.get_lines()) == 1 for ax in axes)


def test_learning_curves_from_estimator_pipeline_and_keras_history(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(hidden_units=16, epochs=2, random_state=0)
    pipe = make_pipeline(PixelScaler(max_value=1), clf).fit(X, y)

    class History:  # what keras.Model.fit returns
        history = clf.history_

    for source in (clf, pipe, History()):
        axes = plot_learning_curves(source)
        assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
        np.testing.assert_allclose(
            axes[0].get_lines()[0].get_ydata(), clf.history_["loss"]
        )


def test_learning_curves_draw_into_given_axes():
    fig, given = plt.subplots(2, 1)
    axes = plot_learning_curves(HISTORY, axes=given)
    assert list(axes) == list(given)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="axes has 3 Axes but the history has 2"):
        plot_learning_curves(HISTORY, axes=plt.subplots(1, 3)[1])


class _Fitted(BaseEstimator):
    """A fitted estimator's training record, as MNISTClassifier keeps it."""

    def __init__(self, history, validation_scores=None, best=None):
        self.history = history
        self.validation_scores = validation_scores
        self.best = best

    def fit(self, X=None, y=None):
        self.history_ = self.history
        self.validation_scores_ = self.validation_scores
        self.best_validation_score_ = self.best
        return self


def _best_epoch_lines(ax):
    return [line for line in ax.get_lines() if line.get_label().startswith("best")]


def _legend_labels(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_learning_curves_mark_the_best_epoch_of_early_stopping(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(
        hidden_units=16,
        early_stopping=True,
        n_iter_no_change=2,
        epochs=30,
        optimizer__learning_rate=0.01,
        random_state=0,
    )
    pipe = make_pipeline(PixelScaler(max_value=1), clf).fit(X, y)
    scores = clf.validation_scores_
    # The epoch whose weights early stopping kept: the earliest best one.
    best_epoch = scores.index(clf.best_validation_score_) + 1
    assert best_epoch == int(np.argmax(scores)) + 1
    assert len(clf.history_["loss"]) == len(scores) > best_epoch  # stopped early
    for source in (clf, pipe):
        axes = plot_learning_curves(source)
        assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
        for ax in axes:
            (marker,) = _best_epoch_lines(ax)
            np.testing.assert_array_equal(marker.get_xdata(), [best_epoch] * 2)
            assert _legend_labels(ax) == [
                "training", "validation", f"best epoch ({best_epoch})"
            ]  # fmt: skip


@pytest.mark.parametrize(
    ("scores", "best", "epoch"),
    [
        ([0.5, 0.8, 0.8, 0.7], 0.8, 2),  # the earliest of equal scores
        ([0.5, 0.6, 0.7, 0.9], 0.9, 4),  # the last epoch
        ([0.9, 0.5, 0.6, 0.7, 0.8, 0.6], 0.9, None),  # before this fit's epochs
        ([0.4, 0.5, 0.6, 0.9, 0.8, 0.9], 0.9, 2),  # warm_start: the last 4 shown
        ([0.5, 0.9], 0.9, 2),  # fewer scores than epochs: the first ones
    ],
    ids=["tie", "last", "earlier-fit", "warm-start", "fewer-scores"],
)
def test_learning_curves_best_epoch_among_the_history_epochs(scores, best, epoch):
    history = {key: [0.1, 0.2, 0.3, 0.4] for key in HISTORY}
    axes = plot_learning_curves(_Fitted(history, scores, best).fit())
    for ax in axes:
        markers = _best_epoch_lines(ax)
        if epoch is None:
            assert markers == []
        else:
            (marker,) = markers
            np.testing.assert_array_equal(marker.get_xdata(), [epoch, epoch])


def test_learning_curves_without_early_stopping_mark_no_epoch(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(
        hidden_units=16, epochs=3, validation_fraction=0.2, random_state=0
    ).fit(X, y)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    for source in (clf, HISTORY, _Fitted(HISTORY).fit()):
        axes = plot_learning_curves(source)
        for ax in axes:
            assert _best_epoch_lines(ax) == []
            assert [line.get_label() for line in ax.get_lines()] == [
                "training",
                "validation",
            ]
            assert _legend_labels(ax) == ["training", "validation"]


def test_learning_curves_validation_accuracy_from_validation_scores(digits_flat):
    # Metrics without accuracy: early stopping's validation_scores_ give the
    # validation accuracy.
    X, y = digits_flat
    clf = MNISTClassifier(
        hidden_units=16, metrics=[], early_stopping=True, epochs=4, random_state=0
    ).fit(X, y)
    assert sorted(clf.history_) == ["loss", "val_loss"]
    axes = plot_learning_curves(clf)
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
    validation, marker = axes[1].get_lines()
    assert validation.get_label() == "validation"
    np.testing.assert_array_equal(validation.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(validation.get_ydata(), clf.validation_scores_)
    best_epoch = int(np.argmax(clf.validation_scores_)) + 1
    np.testing.assert_array_equal(marker.get_xdata(), [best_epoch] * 2)
    # A history with val_accuracy keeps its own curve.
    history = {**HISTORY, "val_accuracy": [0.1, 0.2, 0.3]}
    axes = plot_learning_curves(_Fitted(history, [0.7, 0.9, 0.8], 0.9).fit())
    np.testing.assert_array_equal(axes[1].get_lines()[1].get_ydata(), [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(_best_epoch_lines(axes[1])[0].get_xdata(), [2, 2])


@pytest.mark.parametrize(
    ("source", "error", "match"),
    [
        ({}, ValueError, "empty"),
        ({"loss": [0.3, 0.2], "accuracy": [0.9]}, ValueError, "differ in length"),
        ([0.3, 0.2], TypeError, "dict of per-epoch values"),
        (LogisticRegression().fit([[0], [1]], [0, 1]), TypeError, "history_"),
        (MNISTClassifier(), ValueError, "not fitted"),
    ],
    ids=["empty", "ragged", "list", "no-history", "unfitted"],
)
def test_learning_curves_refuse_bad_input(source, error, match):
    with pytest.raises(error, match=match):
        plot_learning_curves(source)


# -- confusion matrix ------------------------------------------------------------


def test_confusion_matrix_counts_and_title():
    y_true = [0, 1, 2, 2, 1, 0]
    y_pred = [0, 2, 2, 2, 1, 1]
    display = plot_confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(
        display.confusion_matrix, [[1, 1, 0], [0, 1, 1], [0, 0, 2]]
    )
    assert display.ax_.get_title() == "accuracy 0.6667 (2 of 6 misclassified)"
    assert display.ax_.get_xlabel() == "Predicted label"
    assert len(display.figure_.axes) == 1  # no colour bar by default
    assert [t.get_text() for t in display.text_.ravel()] == [
        "1", "1", "0", "0", "1", "1", "0", "0", "2"
    ]  # fmt: skip


def test_confusion_matrix_options_and_given_axes():
    fig, ax = plt.subplots()
    display = plot_confusion_matrix(
        ["a", "b", "b"], ["a", "a", "b"], labels=["b", "a"], normalize="true",
        ax=ax, colorbar=True,
    )  # fmt: skip
    assert display.ax_ is ax
    assert len(fig.axes) == 2  # the matrix and its colour bar
    np.testing.assert_allclose(display.confusion_matrix, [[0.5, 0.5], [0, 1]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b", "a"]


def test_confusion_matrix_refuses_mismatched_or_empty_labels():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        plot_confusion_matrix([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="empty"):
        plot_confusion_matrix([], [])


# -- misclassified digits ----------------------------------------------------------


def _images(n=12):
    rng = np.random.RandomState(0)
    return rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)


def test_misclassified_shows_only_the_errors_in_order():
    images = _images()
    y_true = np.arange(12) % 10
    y_pred = y_true.copy()
    wrong = [1, 4, 5, 9, 11]
    y_pred[wrong] = (y_pred[wrong] + 1) % 10
    axes = plot_misclassified(images, y_true, y_pred, n_cols=3)
    assert len(axes) == len(wrong)
    assert len(axes[0].figure.axes) == len(wrong)  # unused grid cells removed
    assert [ax.get_title() for ax in axes] == [
        f"true {y_true[i]}, pred {y_pred[i]}" for i in wrong
    ]
    for ax, i in zip(axes, wrong, strict=True):
        (image,) = ax.get_images()
        np.testing.assert_array_equal(image.get_array(), images[i])
    # 5 images in rows of 3: two rows
    rows = {round(ax.get_position().y0, 3) for ax in axes}
    assert len(rows) == 2


def test_misclassified_limits_the_count_and_reshapes_flat_rows():
    images = _images()
    y_true = np.zeros(12, dtype=int)
    y_pred = np.ones(12, dtype=int)
    axes = plot_misclassified(images.reshape(12, -1), y_true, y_pred, max_images=4)
    assert len(axes) == 4
    assert axes[0].get_images()[0].get_array().shape == (28, 28)
    wide = plot_misclassified(np.zeros((2, 12)), [0, 1], [1, 0], image_shape=(3, 4))
    assert wide[0].get_images()[0].get_array().shape == (3, 4)


def test_misclassified_without_errors_says_so():
    fig = plt.figure()
    axes = plot_misclassified(_images(3), [1, 2, 3], [1, 2, 3], fig=fig)
    assert len(axes) == 0
    assert [text.get_text() for text in fig.texts] == ["no misclassified images"]


@pytest.mark.parametrize(
    ("X", "kwargs", "match"),
    [
        (np.zeros((3, 10)), {}, "not a square image"),
        (np.zeros((3, 28, 28)), {"image_shape": (20, 20)}, "does not match"),
        (np.zeros((3, 2, 28, 28)), {}, "4 dimensions"),
        (np.array([["a"] * 4] * 3), {}, "numeric"),
        (np.zeros((4, 28, 28)), {}, "inconsistent numbers of samples"),
        (np.zeros((3, 28, 28)), {"max_images": 0}, "max_images must be a positive"),
        (np.zeros((3, 28, 28)), {"n_cols": 2.5}, "n_cols must be a positive"),
    ],
)
def test_misclassified_refuses_bad_input(X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_misclassified(X, [0, 1, 2], [1, 1, 1], **kwargs)


# -- the evaluate --plot figure and the optional dependency ----------------------


def test_evaluation_figure_has_matrix_and_grid():
    images = _images()
    y_true = np.arange(12) % 10
    y_pred = np.where(np.arange(12) < 7, y_true, (y_true + 3) % 10)
    figure = _evaluation_figure(images, y_true, y_pred)
    left, right = figure.subfigs
    assert len(left.axes) == 1 and left.axes[0].get_title().startswith("accuracy")
    assert len(right.axes) == 5
    assert all(ax.get_title().startswith("true ") for ax in right.axes)


@pytest.mark.slow
def test_missing_matplotlib_names_the_extra():
    # A fresh interpreter where importing matplotlib fails, as if not installed.
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        "sys.modules['matplotlib.pyplot'] = None\n"
        "import skmnist\n"
        "try:\n"
        "    skmnist.plot_confusion_matrix([1], [1])\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "plot_confusion_matrix needs matplotlib" in result.stdout
    assert "skmnist[plot]" in result.stdout


def test_learning_curves_with_fewer_validated_epochs_than_trained(digits_flat):
    from skmnist import MNISTClassifier

    X, y = digits_flat
    clf = MNISTClassifier(
        hidden_units=16, epochs=3, early_stopping=True, random_state=0
    ).fit(X, y)
    clf.partial_fit(X, y)  # trains a fourth epoch, validates none
    axes = plot_learning_curves(clf)
    lines = {line.get_label(): line for line in axes[0].get_lines()}
    assert len(lines["training"].get_xdata()) == 4
    assert len(lines["validation"].get_xdata()) == 3
