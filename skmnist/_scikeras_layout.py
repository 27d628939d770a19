"""Repairs of scikeras 0.13's class layout for scikit-learn >= 1.6.

scikeras declares ``KerasClassifier(BaseWrapper, ClassifierMixin)``: the mixin comes
after ``BaseEstimator`` in the method resolution order, so ``BaseEstimator``'s
``__sklearn_tags__`` shadows ``ClassifierMixin``'s and scikit-learn does not see a
classifier (``is_classifier`` is False, ``cross_val_score`` does not stratify).
Python cannot linearise a subclass that lists ``ClassifierMixin`` first, so
:class:`MixinsFirst` computes the order scikit-learn requires instead.

scikeras's private helpers (parameter routing and the like) are reached through
:mod:`skmnist._compat`, like every other private API.
"""

from sklearn.base import BaseEstimator

__all__ = ["MixinsFirst", "mark_legacy_tags_as_migrated"]


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
