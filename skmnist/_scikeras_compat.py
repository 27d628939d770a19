"""Repairs of scikeras 0.13's class layout for scikit-learn >= 1.6.

scikeras declares ``KerasClassifier(BaseWrapper, ClassifierMixin)``: the mixin comes
after ``BaseEstimator`` in the method resolution order, so ``BaseEstimator``'s
``__sklearn_tags__`` shadows ``ClassifierMixin``'s and scikit-learn does not see a
classifier (``is_classifier`` is False, ``cross_val_score`` does not stratify).
Python cannot linearise a subclass that lists ``ClassifierMixin`` first, so
:class:`MixinsFirst` computes the order scikit-learn requires instead.

It is also the one door to scikeras's private helpers: the routing of prefixed
parameters (``optimizer__learning_rate`` and the like), which skmnist applies as
scikeras does; and to the Keras internals the compiled epochs need
(:func:`update_masked_metrics`).
"""

from scikeras._utils import (
    get_loss_class_function_or_string,
    get_metric_class,
    get_optimizer_class,
    route_params,
    try_to_convert_strings_to_classes,
    unflatten_params,
)
from scikeras.utils.transformers import _is_categorical_crossentropy
from sklearn.base import BaseEstimator

__all__ = [
    "MixinsFirst",
    "get_loss_class_function_or_string",
    "get_metric_class",
    "get_optimizer_class",
    "is_categorical_crossentropy",
    "mark_legacy_tags_as_migrated",
    "route_params",
    "try_to_convert_strings_to_classes",
    "unflatten_params",
    "update_masked_metrics",
]

is_categorical_crossentropy = _is_categorical_crossentropy


class MixinsFirst(type):
    """Metaclass that moves scikit-learn mixins in front of ``BaseEstimator``.

    The rule is scikit-learn's own (the one ``check_mixin_order`` enforces): a
    mixin that specialises an estimator must be resolved before the generic
    ``BaseEstimator``. Only mixins found after ``BaseEstimator`` move; the rest of
    the standard C3 order is kept.
    """

    def mro(cls):
        order = super().mro()
        if BaseEstimator not in order:
            return order
        base = order.index(BaseEstimator)
        late_mixins = [klass for klass in order[base + 1 :] if _is_sklearn_mixin(klass)]
        rest = [klass for klass in order if klass not in late_mixins]
        base = rest.index(BaseEstimator)
        return [*rest[:base], *late_mixins, *rest[base:]]


def _is_sklearn_mixin(klass: type) -> bool:
    return klass.__module__ == "sklearn.base" and klass.__name__.endswith("Mixin")


def mark_legacy_tags_as_migrated() -> None:
    """Give scikeras's ``BaseWrapper`` a pass-through ``__sklearn_tags__``.

    ``BaseWrapper`` still defines the pre-1.6 ``_more_tags``, which scikit-learn no
    longer reads; scikit-learn's ``check_estimator_tags_renamed`` rejects any
    estimator whose classes define it without ``__sklearn_tags__``. The added
    method only delegates to the next class, so the tags of plain scikeras
    estimators stay exactly what they were; :class:`skmnist.MNISTClassifier`
    declares its own tags.
    """
    from scikeras.wrappers import BaseWrapper

    if "__sklearn_tags__" in vars(BaseWrapper):
        return

    def __sklearn_tags__(self):
        return super(BaseWrapper, self).__sklearn_tags__()

    BaseWrapper.__sklearn_tags__ = __sklearn_tags__


def update_masked_metrics(model, loss, rows, y, y_pred, mask, sample_weight) -> None:
    """Update a compiled single-output model's loss tracker and metrics for the
    rows of a batch that ``mask`` (1 or 0 per row) selects, ``rows`` of them,
    as Keras's ``train_step`` updates them for a batch of those rows alone.

    Keras weighs each batch's loss by its number of rows and gives its metrics
    (not its weighted metrics) no sample weight at all, so the mask cannot go in
    as a sample weight of ``train_step``. ``sample_weight`` is the batch's
    weights times ``mask``, for the weighted metrics.
    """
    model._loss_tracker.update_state(loss, sample_weight=rows)
    metrics = model._compile_metrics
    if metrics is None:
        return
    # As CompileMetrics.update_state does for one output.
    for metric in metrics._flat_metrics:
        if metric is not None:
            metric.update_state(y, y_pred, sample_weight=mask)
    for metric in metrics._flat_weighted_metrics:
        if metric is not None:
            metric.update_state(y, y_pred, sample_weight=sample_weight)
