"""Plots for a fitted digit classifier: learning curves, confusion matrix, errors.

matplotlib is an optional dependency (the ``plot`` extra); it is imported when a
function is called, so that ``import skmnist`` works without it.
"""

import math
from collections.abc import Mapping
from numbers import Integral
from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils import check_consistent_length, column_or_1d
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:
    from sklearn.metrics import ConfusionMatrixDisplay


def _import_pyplot(caller: str):
    """Import matplotlib.pyplot, or explain which extra provides it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            f"{caller} needs matplotlib, which is not installed. Install it with "
            "pip install 'skmnist[plot]' (or pip install matplotlib)."
        ) from error
    return plt


def plot_learning_curves(estimator_or_history, *, axes=None) -> np.ndarray:
    """Plot the per-epoch loss and metrics recorded while training.

    One panel per quantity (``loss``, then ``accuracy`` and any other metric),
    each with the training curve and, where the fit held out validation data,
    the validation curve. For an estimator fitted with ``early_stopping=True``,
    every panel also marks the best epoch, the one whose validation accuracy is
    ``best_validation_score_`` and whose weights the estimator ended with, by a
    vertical line labelled ``best epoch (N)`` in the legend.

    Parameters
    ----------
    estimator_or_history : estimator, Pipeline, keras.callbacks.History or dict
        A fitted :class:`~skmnist.MNISTClassifier` (or any estimator with a
        ``history_``), a pipeline ending in one, a Keras ``History`` or a dict
        mapping names such as ``"loss"`` and ``"val_loss"`` to per-epoch values.
        An estimator's ``validation_scores_`` (early stopping's validation
        accuracy) is drawn as the validation curve of the ``accuracy`` panel
        where its ``history_`` has no ``val_accuracy`` (with ``metrics`` that
        leave accuracy out).
    axes : array-like of matplotlib Axes, default=None
        One Axes per panel, e.g. from ``plt.subplots(1, 2)`` for the usual loss
        and accuracy. None creates a figure with one row of panels.

    Returns
    -------
    axes : ndarray of matplotlib Axes
        The panels, loss first.

    Raises
    ------
    TypeError
        ``estimator_or_history`` holds no training history.
    ValueError
        The history is empty, its training curves (or its validation curves)
        differ in length, or ``axes`` does not have one Axes per panel.

    Notes
    -----
    ``history_`` holds the epochs of the last ``fit`` (and of the
    ``partial_fit`` calls after it), while ``validation_scores_`` runs on over
    ``warm_start`` fits: the scores drawn, and the best epoch marked, are those
    of the epochs in ``history_``. Where the best epoch came before them (a
    ``warm_start`` fit that never beat the earlier best, whose weights the
    estimator kept), no epoch is marked. Where fewer epochs were validated
    than trained (``fit__validation_freq``, or ``partial_fit`` after a validated
    fit), the validation curves are drawn over the first epochs.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmnist import plot_learning_curves
    >>> history = {"loss": [0.3, 0.1], "accuracy": [0.9, 0.97],
    ...            "val_loss": [0.2, 0.15], "val_accuracy": [0.94, 0.96]}
    >>> axes = plot_learning_curves(history)
    >>> [ax.get_title() for ax in axes]
    ['loss', 'accuracy']
    >>> [line.get_label() for line in axes[0].get_lines()]
    ['training', 'validation']
    """
    plt = _import_pyplot("plot_learning_curves")
    from matplotlib.ticker import MaxNLocator

    history = _history_of(estimator_or_history)
    n_epochs = max(len(values) for values in history.values())
    scores, best_epoch = _early_stopping_of(
        _estimator_of(estimator_or_history), n_epochs
    )
    if scores is not None and "val_accuracy" not in history:
        history["val_accuracy"] = scores
    panels = _panels(history)
    if axes is None:
        _, axes = plt.subplots(
            1,
            len(panels),
            figsize=(4.5 * len(panels), 3.5),
            squeeze=False,
            layout="constrained",
        )
    axes = np.ravel(np.asarray(axes, dtype=object))
    if len(axes) != len(panels):
        raise ValueError(
            f"axes has {len(axes)} Axes but the history has {len(panels)} "
            f"quantities to plot: {', '.join(panels)}."
        )
    for ax, name in zip(axes, panels, strict=True):
        for key, label in ((name, "training"), (f"val_{name}", "validation")):
            if key in history:
                values = history[key]
                ax.plot(np.arange(1, len(values) + 1), values, "o-", label=label)
        if best_epoch is not None:
            ax.axvline(
                best_epoch,
                color="0.4",
                linestyle="--",
                linewidth=1,
                label=f"best epoch ({best_epoch})",
            )
        ax.set_title(name)
        ax.set_xlabel("epoch")
        # Epochs are whole numbers; matplotlib would otherwise tick 0.5, 1.5, ...
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    return axes


def _estimator_of(source):
    """The estimator that recorded the history, or None for a dict or History."""
    if isinstance(source, Mapping):
        return None
    if hasattr(source, "steps"):  # a Pipeline: its final estimator was trained
        return _estimator_of(source.steps[-1][1])
    if hasattr(source, "fit") and hasattr(source, "get_params"):
        return source
    return None


def _early_stopping_of(estimator, n_epochs: int) -> tuple:
    """The validation accuracy early stopping recorded for the ``n_epochs``
    epochs of the estimator's ``history_`` (or the first of them), and the
    epoch of ``best_validation_score_`` among them (1-based); None for either
    where there is none."""
    scores = getattr(estimator, "validation_scores_", None)
    best = getattr(estimator, "best_validation_score_", None)
    if scores is None or len(scores) == 0:
        return None, None
    scores = np.asarray(scores, dtype=float)
    # warm_start fits carry validation_scores_ on while each fit starts history_
    # anew: its epochs are the last ones scored. partial_fit appends epochs to
    # history_ without scoring them: the scored ones come first.
    offset = max(len(scores) - n_epochs, 0)
    shown = scores[offset:]
    # The earliest of equal scores, whose weights early stopping keeps.
    at = np.flatnonzero(scores == best) if best is not None else ()
    if len(at) == 0 or at[0] < offset:
        return shown, None
    return shown, int(at[0] - offset) + 1


def _history_of(source) -> dict:
    if isinstance(source, Mapping):
        history = source
    elif hasattr(source, "steps"):  # a Pipeline: its final estimator was trained
        return _history_of(source.steps[-1][1])
    elif hasattr(source, "fit") and hasattr(source, "get_params"):
        check_is_fitted(source)
        if not hasattr(source, "history_"):
            raise TypeError(
                f"{type(source).__name__} records no training history (history_)."
            )
        history = source.history_
    elif isinstance(getattr(source, "history", None), Mapping):  # keras History
        history = source.history
    else:
        raise TypeError(
            "Expected a fitted estimator with history_, a pipeline ending in one, "
            f"a keras History or a dict of per-epoch values; got "
            f"{type(source).__name__}."
        )
    history = {key: np.asarray(values, dtype=float) for key, values in history.items()}
    if not history or not any(len(values) for values in history.values()):
        raise ValueError("The training history is empty: nothing to plot.")
    # Fewer epochs may be validated than trained (fit__validation_freq, or
    # partial_fit after a validated fit): the training curves must agree among
    # themselves, and so must the validation ones.
    for validation in (False, True):
        lengths = {
            len(values)
            for key, values in history.items()
            if key.startswith("val_") == validation
        }
        if len(lengths) > 1:
            raise ValueError(
                "The curves of the training history differ in length: "
                + ", ".join(f"{key}: {len(values)}" for key, values in history.items())
            )
    return history


def _panels(history: dict) -> list:
    """Names to plot, one panel each: training names, loss first."""
    names = [key for key in history if not key.startswith("val_")]
    # A history with validation curves only still gets its panels.
    names += [
        key[len("val_") :]
        for key in history
        if key.startswith("val_") and key[len("val_") :] not in history
    ]
    return sorted(names, key=lambda name: name != "loss")


def plot_confusion_matrix(
    y_true, y_pred, *, labels=None, normalize=None, ax=None, colorbar=False
) -> "ConfusionMatrixDisplay":
    """Plot the confusion matrix of predicted against true digits.

    A thin layer over
    :meth:`sklearn.metrics.ConfusionMatrixDisplay.from_predictions` that titles
    the plot with the accuracy and the number of errors.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_pred : array-like of shape (n_samples,)
        Predicted labels, e.g. ``pipeline.predict(x_test)``.
    labels : array-like of shape (n_classes,), default=None
        Labels to show, in order; None shows every label in ``y_true`` or
        ``y_pred``, sorted.
    normalize : {"true", "pred", "all"}, default=None
        Show fractions of each true class (row), predicted class (column) or of
        all samples instead of counts.
    ax : matplotlib Axes, default=None
        Where to draw; None creates a figure.
    colorbar : bool, default=False
        Whether to add a colour bar.

    Returns
    -------
    display : sklearn.metrics.ConfusionMatrixDisplay
        Its ``ax_`` and ``figure_`` hold the plot, ``confusion_matrix`` the
        numbers (rows: true labels, columns: predicted labels).

    Raises
    ------
    ValueError
        ``y_true`` and ``y_pred`` differ in length or are empty.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmnist import plot_confusion_matrix
    >>> display = plot_confusion_matrix([3, 5, 5, 8], [3, 5, 8, 8])
    >>> display.confusion_matrix
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
    >>> display.ax_.get_title()
    'accuracy 0.7500 (1 of 4 misclassified)'
    """
    plt = _import_pyplot("plot_confusion_matrix")
    from sklearn.metrics import ConfusionMatrixDisplay

    y_true, y_pred = _check_labels(y_true, y_pred)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5.5), layout="constrained")
    display = ConfusionMatrixDisplay.from_predictions(
        y_true,
        y_pred,
        labels=labels,
        normalize=normalize,
        ax=ax,
        colorbar=colorbar,
        cmap="Blues",
        values_format=None if normalize else "d",
    )
    n_errors = int(np.sum(y_true != y_pred))
    display.ax_.set_title(
        f"accuracy {1 - n_errors / len(y_true):.4f} "
        f"({n_errors} of {len(y_true)} misclassified)"
    )
    return display


def plot_misclassified(
    X, y_true, y_pred, *, max_images=25, n_cols=5, image_shape=None, fig=None
) -> np.ndarray:
    """Show the misclassified images with their true and predicted labels.

    The first ``max_images`` samples where ``y_pred`` differs from ``y_true`` are
    drawn in a grid, in the order they appear in ``X``, each titled
    ``true <label>, pred <label>``.

    Parameters
    ----------
    X : array-like of shape (n_samples, height, width) or (n_samples, n_pixels)
        The images, raw (0-255) or scaled; flat rows must be square images
        (784 = 28x28 pixels) unless ``image_shape`` is given.
    y_true : array-like of shape (n_samples,)
        True labels.
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    max_images : int, default=25
        Most images to show.
    n_cols : int, default=5
        Images per row of the grid.
    image_shape : tuple of (int, int), default=None
        ``(height, width)`` of one image, for flat rows that are not square.
    fig : matplotlib Figure or SubFigure, default=None
        Where to draw the grid; None creates a figure. With no misclassified
        image, the figure shows a note saying so.

    Returns
    -------
    axes : ndarray of matplotlib Axes of shape (n_shown,)
        One Axes per image shown, in the order of ``X``; empty when every
        prediction is right.

    Raises
    ------
    ValueError
        ``X``, ``y_true`` and ``y_pred`` differ in length, ``X`` is not a stack
        of images, or ``image_shape`` does not match its pixel count.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmnist import plot_misclassified
    >>> images = np.zeros((4, 28, 28), dtype=np.uint8)
    >>> axes = plot_misclassified(images, [1, 2, 3, 4], [1, 7, 3, 9])
    >>> [ax.get_title() for ax in axes]
    ['true 2, pred 7', 'true 4, pred 9']
    """
    plt = _import_pyplot("plot_misclassified")
    for name, value in (("max_images", max_images), ("n_cols", n_cols)):
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    y_true, y_pred = _check_labels(y_true, y_pred)
    images = _as_images(X, image_shape)
    check_consistent_length(images, y_true)

    wrong = np.flatnonzero(y_true != y_pred)[:max_images]
    n_cols = min(n_cols, max(1, len(wrong)))
    n_rows = max(1, -(-len(wrong) // n_cols))  # ceiling division
    if fig is None:
        fig = plt.figure(figsize=(1.6 * n_cols, 1.9 * n_rows), layout="constrained")
    if len(wrong) == 0:
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        return np.empty(0, dtype=object)
    grid = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in grid[len(wrong) :]:
        ax.remove()
    axes = grid[: len(wrong)]
    for ax, index in zip(axes, wrong, strict=True):
        ax.imshow(images[index], cmap="gray_r")
        ax.set_title(f"true {y_true[index]}, pred {y_pred[index]}", fontsize=9)
        ax.set_axis_off()
    return axes


def _check_labels(y_true, y_pred):
    y_true = column_or_1d(y_true)
    y_pred = column_or_1d(y_pred)
    check_consistent_length(y_true, y_pred)
    if len(y_true) == 0:
        raise ValueError("y_true and y_pred are empty: nothing to plot.")
    return y_true, y_pred


def _as_images(X, image_shape) -> np.ndarray:
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"X must hold numeric pixels, got dtype {X.dtype}.")
    if X.ndim == 3 and image_shape is None:
        return X
    if X.ndim not in (2, 3):
        raise ValueError(
            f"X has {X.ndim} dimensions; expected images of shape "
            "(n_samples, height, width) or flat pixels (n_samples, n_pixels)."
        )
    n_pixels = int(np.prod(X.shape[1:]))
    if image_shape is None:
        side = math.isqrt(n_pixels)
        if side * side != n_pixels:
            raise ValueError(
                f"X has {n_pixels} pixels per sample, which is not a square image; "
                "pass image_shape=(height, width)."
            )
        image_shape = (side, side)
    if int(np.prod(image_shape)) != n_pixels:
        raise ValueError(
            f"image_shape={tuple(image_shape)} does not match the {n_pixels} pixels "
            "per sample of X."
        )
    return X.reshape(len(X), *image_shape)


def _evaluation_figure(X, y_true, y_pred, *, max_images=25):
    """The figure ``skmnist evaluate --plot`` writes: the confusion matrix (left)
    and the misclassified digits (right), drawn without pyplot."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(16, 7.5), layout="constrained")
    left, right = figure.subfigures(1, 2, width_ratios=[1, 1.1])
    plot_confusion_matrix(y_true, y_pred, ax=left.subplots())
    shown = plot_misclassified(X, y_true, y_pred, max_images=max_images, fig=right)
    if len(shown):
        right.suptitle(f"the first {len(shown)} misclassified images, in data order")
    return figure
