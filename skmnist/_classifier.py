"""MNISTClassifier: the classic MNIST perceptron as a scikit-learn classifier."""

import functools
import inspect
import json
import os
import sys
import warnings
from numbers import Integral, Real

import keras
import numpy as np
import scipy.sparse as sp

import skmnist._scikeras_without_tensorflow  # noqa: F401 (before scikeras)

# isort: split
from scikeras.utils import loss_name
from scikeras.utils.transformers import ClassifierLabelEncoder
from scikeras.wrappers import KerasClassifier
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from skmnist._architecture import count_weights, hidden_layer_widths
from skmnist._augmentation import DEFAULTS, distortion_config
from skmnist._compat import (
    Hidden,
    Interval,
    StrOptions,
    get_loss_class_function_or_string,
    get_metric_class,
    get_optimizer_class,
    is_categorical_crossentropy,
    keras_serialization_without_tensorflow,
    quiet_array_deprecation,
    route_params,
    try_to_convert_strings_to_classes,
    unflatten_params,
    validate_estimator_params,
)
from skmnist._compilation_cache import configure as configure_compilation_cache
from skmnist._convergence import ConvergenceMonitor, ConvergenceRecord
from skmnist._inference import forward_pass, predict_outputs
from skmnist._interrupts import recorded_interrupts
from skmnist._network import build_network, describe_network
from skmnist._packing import joined_session
from skmnist._random import draw_seeds
from skmnist._scaler import validated_as_is
from skmnist._scikeras_layout import MixinsFirst, mark_legacy_tags_as_migrated
from skmnist._training import epoch_runner, train
from skmnist._workspace import (
    CompletedEpochs,
    borrowed_workspace,
    build_optimizer,
    collect_discarded_models,
    copy_training_state,
)

mark_legacy_tags_as_migrated()
# Before anything compiles, so that the first fit of a new process can load
# the programs earlier processes compiled.
configure_compilation_cache(keras.backend.backend())

# Parameters that scikeras's BaseWrapper.__init__ adds and MNISTClassifier does
# not use: it builds its own network (model, build_fn) and trains in compiled
# epochs (run_eagerly). Their defaults are class attributes, so get_params, and
# with it repr, clone and searches, lists them only where a user set them.
_SCIKERAS_EXTRAS = ("model", "build_fn", "run_eagerly", "validation_batch_size")

# MLPClassifier's names for what MNISTClassifier calls otherwise, for the error
# a user who passes them gets.
_MLP_NAMES = {
    "hidden_layer_sizes": "hidden_units",
    "solver": "optimizer",
    "learning_rate": "learning_rate_schedule (the starting rate is "
    "optimizer__learning_rate)",
    "learning_rate_init": "optimizer__learning_rate",
    "max_iter": "epochs",
    "momentum": "optimizer__momentum",
    "nesterovs_momentum": "optimizer__nesterov",
    "beta_1": "optimizer__beta_1",
    "beta_2": "optimizer__beta_2",
    "epsilon": "optimizer__epsilon",
    "power_t": "learning_rate_schedule=keras.optimizers.schedules."
    "InverseTimeDecay(...)",
    "max_fun": "none: it bounds the lbfgs solver, and Keras has no lbfgs",
}

# MLPClassifier's activation names that Keras calls otherwise.
_MLP_ACTIVATIONS = {"logistic": "sigmoid", "identity": "linear"}

# Optimizers whose slots start at zero and whose update acts on each weight
# alone, from its own gradient and slots: a zero-padded weight stays zero. (Not
# Ftrl, whose accumulators start at 0.1, nor Muon, whose update depends on the
# matrix's shape.)
_ELEMENTWISE = "SGD RMSprop Adam AdamW Adamax Nadam Adagrad Adadelta Lion"
_ELEMENTWISE_OPTIMIZERS = tuple(
    getattr(keras.optimizers, name)
    for name in _ELEMENTWISE.split()
    if hasattr(keras.optimizers, name)
)

# Activations f with f(0) = 0: networks of them pack across widths.
_ZERO_AT_ZERO = tuple(
    getattr(keras.activations, name)
    for name in ("relu", "tanh", "linear", "elu", "selu", "gelu", "silu", "relu6")
)

# The FutureWarning of validation_split: deprecated in 0.2, removed in 0.4.
_VALIDATION_SPLIT_DEPRECATION = (
    "validation_split was deprecated in skmnist 0.2 and will be removed in 0.4: "
    "use validation_fraction={value!r}, which it is now mapped onto. "
    "validation_fraction holds out a stratified random split, seeded by "
    "random_state, where validation_split held out the last rows."
)


def keras_values(value):
    """``value`` with NumPy scalars turned into the Python numbers Keras expects.

    Grids built with ``np.arange``, ``np.logspace`` or ``np.array`` hand
    estimators ``np.int64`` and ``np.float32`` values, which scikit-learn's
    parameter validation accepts but Keras refuses (``Dense(units=np.int64(8))``,
    ``Adam(learning_rate=np.float32(0.01))``). Every hyper-parameter passes
    through here on its way to Keras; lists, tuples and dicts are converted
    item by item, anything else is left alone.
    """
    if isinstance(value, np.generic):
        return value.item()
    if type(value) in (list, tuple):
        return type(value)(keras_values(item) for item in value)
    if type(value) is dict:
        return {key: keras_values(item) for key, item in value.items()}
    return value


def _check_keyword_arguments(kwargs: dict) -> None:
    """Refuse, as a ``TypeError`` like Python's own, the keyword arguments that
    are neither routed parameters (``optimizer__learning_rate``) nor scikeras's:
    a misspelled name must not be kept and ignored."""
    prefixes = MNISTClassifier._routing_prefixes
    unknown = [
        name
        for name in kwargs
        if name not in _SCIKERAS_EXTRAS
        and not any(name.startswith(f"{prefix}__") for prefix in prefixes)
    ]
    if not unknown:
        return
    hints = [
        f"{name!r} is MLPClassifier's name; MNISTClassifier's is {_MLP_NAMES[name]}"
        for name in unknown
        if name in _MLP_NAMES
    ]
    raise TypeError(
        "MNISTClassifier.__init__() got unexpected keyword argument"
        f"{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
        + (f" ({'; '.join(hints)})" if hints else "")
        + ". Routed parameters take a prefix: "
        f"{', '.join(f'{prefix}__' for prefix in sorted(prefixes))}."
    )


def _stacklevel_of_the_caller() -> int:
    """The ``stacklevel`` that points a warning, issued by the function that
    calls this one, at the first caller outside skmnist, scikeras and
    scikit-learn: how deep that is depends on the way in (``fit``,
    ``partial_fit``, a search)."""
    import scikeras
    import sklearn

    inside = tuple(
        os.path.dirname(module.__file__) + os.sep
        for module in (sklearn, scikeras, sys.modules[__package__])
    )
    frame, level = inspect.currentframe().f_back, 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def _check_validation_weights(weights: np.ndarray, what: str) -> None:
    # Before training: a weighted mean over no weight is no score.
    if not np.all(np.isfinite(weights)) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(
            f"The sample weights of {what} must be finite, non-negative and not "
            "all zero: the validation loss and accuracy are means weighted by them."
        )


def _is_binary_crossentropy(loss) -> bool:
    try:
        return loss_name(loss) == "binary_crossentropy"
    except (TypeError, ValueError):  # a loss function of the user's own
        return False


class _LabelEncoder(ClassifierLabelEncoder):
    """scikeras's label encoder, one-hot encoding for ``categorical_crossentropy``
    on two classes too (scikeras does so on three or more only)."""

    def _type_of_target(self, y):
        target_type = super()._type_of_target(y)
        if target_type == "binary" and is_categorical_crossentropy(self.loss):
            return "multiclass"
        return target_type


class FitInterruptedWarning(UserWarning):
    """Ctrl-C stopped :meth:`MNISTClassifier.fit` before its last epoch.

    The ``KeyboardInterrupt`` goes on, so that a script or a search stops there;
    the estimator is left fitted with the epochs completed so far (see
    ``history_``), and the warning says how many.
    """


class MNISTClassifier(KerasClassifier, metaclass=MixinsFirst):
    """Dense(``hidden_units``) -> ... -> Dense(n_classes, softmax) as a classifier.

    The defaults are the network and training of the classic introductory Keras
    MNIST notebook: 512 ReLU units, RMSprop, sparse categorical cross-entropy,
    5 epochs of mini-batches of 128. The network is built from the data seen in
    ``fit``, so any flat numeric ``X`` and any set of class labels work. Feed it
    pixels scaled to [0, 1], for example through :class:`skmnist.PixelScaler`
    (see :func:`skmnist.make_mnist_pipeline`).

    It is a :class:`scikeras.wrappers.KerasClassifier` that repairs what scikeras
    0.13 gets wrong with scikit-learn >= 1.6: it is a classifier by scikit-learn's
    tags, seeding a fit has no process-wide side effect, and repeated fits (as in
    a grid search) do not leak memory.

    Parameters
    ----------
    hidden_units : int or array-like of int, default=512
        Units of the hidden layer, or of each hidden layer in turn:
        ``(512, 256)`` is two hidden layers (scikit-learn's
        ``hidden_layer_sizes``). A grid may list both kinds,
        ``[256, 512, (512, 256)]``.
    activation : str or callable, default="relu"
        Activation of the hidden layers, any Keras activation;
        ``MLPClassifier``'s ``"logistic"`` and ``"identity"`` are Keras's
        ``"sigmoid"`` and ``"linear"``.
    dropout : float, default=0.0
        Fraction of the units dropped after every hidden layer during training,
        in [0, 1).
    augmentation : bool, default=False
        Whether training distorts each batch's images at random, so that the
        network learns digits that are rotated, slanted, scaled, shifted,
        elastically distorted or thicker and thinner than MNIST's: an affine
        map about the image's centre, Simard's elastic distortion and a 3x3
        grey dilation or erosion, drawn in the compiled training step from
        ``random_state`` (same seed, same model); prediction sees the images
        as they are. The rows of ``X`` must be the pixels of square images,
        ink light on 0 (as :class:`PixelScaler` gives them). The strengths are
        routed parameters, each searchable in a grid:
        ``augmentation__rotation`` (degrees, uniform in +-; default 15),
        ``augmentation__shear`` (horizontal slant, 0.3), ``augmentation__scale``
        (the factor uniform in 1 +- it, 0.15), ``augmentation__translation``
        (fraction of the side, 0.05), ``augmentation__elastic_alpha`` and
        ``augmentation__elastic_sigma`` (Simard's 34 and 4, in pixels of a
        28x28 image, scaled for other sizes; alpha 0 for none) and
        ``augmentation__thickness`` (probability of a pixel thicker or thinner
        strokes, 0.2); 0 turns one off. Changing them changes the training,
        so continued training needs the values fitted.
    alpha : float, default=0.0
        Strength of the L2 penalty, defined as in ``MLPClassifier``: each
        batch's mean loss gets ``0.5 * alpha * sum(||W||^2) / rows`` over the
        kernels of all layers (not the biases), ``rows`` being the batch's.
        For full batches that is Keras's
        ``kernel_regularizer=keras.regularizers.L2(0.5 * alpha / batch_size)``
        on every ``Dense`` layer. ``MLPClassifier``'s default is 1e-4; 0 keeps the
        seed notebook's network.
    optimizer : str, keras.optimizers.Optimizer or its class, default="rmsprop"
        Optimizer; its arguments are routed with the ``optimizer__`` prefix, e.g.
        ``optimizer__learning_rate=1e-3``. An optimizer instance is
        configuration: each fit trains with a new optimizer made from its
        config (routed arguments override it), never with the instance itself.
    loss : str or keras.losses.Loss, default="sparse_categorical_crossentropy"
        Training loss. Routed ``loss__`` arguments (``loss__ignore_class=3``)
        configure a loss given by name or class. ``"categorical_crossentropy"``
        one-hot encodes the labels;
        ``"binary_crossentropy"`` trains one sigmoid unit and needs two classes.
    metrics : list or None, default=None
        Keras metrics recorded in ``history_``; None records ``["accuracy"]``.
    epochs : int, default=5
        Number of passes over the training data; with ``early_stopping``, the
        most it makes.
    batch_size : int, default=128
        Samples per gradient update.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (or use
        ``validation_data``), stop when its accuracy has not improved by ``tol``
        for ``n_iter_no_change`` epochs, and end with the weights of the best
        epoch (the earliest of equals), as ``MLPClassifier`` does. Without it,
        training never stops early. ``partial_fit`` ignores it.
    validation_fraction : float or None, default=None
        Fraction of the training data held out, stratified by class and seeded
        by ``random_state``, to compute ``val_loss`` and the other ``val_*``
        metrics after each epoch (for Keras callbacks, ``history_`` and
        ``validation_loss_curve_``) and the accuracy early stopping monitors.
        None holds out 0.1 with ``early_stopping`` (``MLPClassifier``'s default)
        and nothing without; 0 holds out nothing. ``fit(X, y,
        validation_data=...)`` replaces it with a fixed set.
    n_iter_no_change : int, default=10
        Epochs without an improvement of ``tol`` before early stopping stops or
        the ``"adaptive"`` schedule divides the learning rate.
    tol : float, default=1e-4
        The least improvement that counts: of the validation accuracy with
        ``early_stopping``, of the training loss without.
    learning_rate_schedule : {"constant", "adaptive"} or \
            keras.optimizers.schedules.LearningRateSchedule, default="constant"
        ``"constant"`` keeps the optimizer's learning rate
        (``optimizer__learning_rate``, the optimizer's default unless set).
        ``"adaptive"`` divides it by 5 each time ``n_iter_no_change`` epochs
        bring no ``tol`` improvement (of the validation accuracy with
        ``early_stopping``, of the training loss without), until it is below
        1e-6, as ``MLPClassifier`` does for SGD, here for any optimizer. Each
        ``fit`` starts again from ``optimizer__learning_rate``; ``partial_fit``
        goes on from the divided rate, as ``MLPClassifier``'s does, unless
        ``optimizer__learning_rate`` was changed since. A Keras schedule
        (``ExponentialDecay``, ``CosineDecay``, ...) gives the rate of every
        update and starts from its own initial rate: it cannot be combined with
        ``optimizer__learning_rate``.
    validation_split : float
        Deprecated since 0.2, removed in 0.4: use ``validation_fraction``, onto
        which it is mapped with a ``FutureWarning``.
    callbacks : list of keras.callbacks.Callback or None, default=None
        Keras callbacks called during fit, e.g. ``EarlyStopping``.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the training loss, as in scikit-learn. As
        with Keras's ``Model.fit(class_weight=...)``, validation losses and
        metrics are not class-weighted. ``partial_fit`` refuses ``"balanced"``.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout and shuffling. Two fits with the same
        integer give the same model on the CPU, on either backend and training
        path; the initial weights (Glorot uniform, drawn by NumPy) are the same
        on both backends. Continued training (``warm_start``, ``partial_fit``)
        draws a new shuffle order at each call. Seeding does not change the
        random state of the rest of the process.
    verbose : int, default=0
        0 trains silently (as is best inside searches), 1 shows Keras's progress
        bar, 2 one line per epoch.
    warm_start : bool, default=False
        If True, ``fit`` continues training the current model, with the
        current optimizer, loss and training settings (a changed learning
        rate applies) and the optimizer state kept where the optimizer class is
        unchanged. The network (``hidden_units``, ``activation``, ``dropout``)
        must be the one fitted.
    shuffle : bool, default=True
        Shuffle the training data before each epoch.
    **kwargs
        Routed parameters, as in scikeras: ``optimizer__*``, ``loss__*``,
        ``metrics__*``, ``callbacks__*`` and ``fit__*`` (any ``Model.fit``
        argument, e.g. ``fit__validation_freq=2`` or ``fit__steps_per_epoch``;
        ``fit__batch_size`` overrides ``batch_size``). ``predict__*`` arguments
        are accepted and have no effect: prediction runs one compiled forward
        pass whatever the batch size. Other scikeras parameters
        (``validation_batch_size``, ``run_eagerly``) are accepted too. Every
        numeric value may be a NumPy scalar.

    Attributes
    ----------
    model_ : keras.Model
        The fitted Keras model. It is what ``predict`` uses until the next
        ``fit``, whatever ``set_params`` changed in the meantime.
    history_ : dict of str to list of float
        Per-epoch ``loss`` and metrics (``accuracy``), plus ``val_loss`` and
        ``val_accuracy`` with validation. Each ``fit`` starts it anew, with
        ``warm_start`` too (as in scikeras); ``partial_fit`` appends.
    n_iter_ : int
        Epochs the last ``fit`` (or ``partial_fit``) call trained.
    loss_ : float
        Training loss of the last epoch, penalty included.
    loss_curve_ : list of float
        Training loss of every epoch, penalty included. Continued training
        (``warm_start``, ``partial_fit``) appends to it, as in ``MLPClassifier``.
    validation_loss_curve_ : list of float or None
        Validation loss of every validated epoch (``MLPClassifier`` has none);
        None without validation.
    validation_scores_ : list of float or None
        Validation accuracy of every epoch, with ``early_stopping``; else None.
    best_validation_score_ : float or None
        Best of ``validation_scores_``, whose epoch's weights the model ends
        with; None without ``early_stopping``.
    best_loss_ : float or None
        Lowest of ``loss_curve_``; None with ``early_stopping`` (see
        ``best_validation_score_``), as in ``MLPClassifier``.
    t_ : int or None
        Training samples seen, over all epochs and continued training; None for
        a model saved by skmnist 0.1, which did not record it.
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit``, or given to ``partial_fit``; sorted.
    n_classes_ : int
        Number of classes.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names of ``X``, when ``X`` was a DataFrame with string columns.

    See Also
    --------
    skmnist.make_mnist_pipeline : PixelScaler followed by this classifier.
    sklearn.neural_network.MLPClassifier : scikit-learn's own perceptron.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skmnist import MNISTClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MNISTClassifier(hidden_units=64, epochs=20, random_state=0)
    >>> clf.fit(X / 16, y).score(X / 16, y) > 0.9
    True
    """

    _parameter_constraints: dict = {
        "hidden_units": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "activation": [str, callable],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "augmentation": ["boolean"],
        "optimizer": [str, keras.optimizers.Optimizer, type],
        "loss": [str, callable],
        "metrics": [list, None],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "learning_rate_schedule": [
            StrOptions({"constant", "adaptive"}),
            keras.optimizers.schedules.LearningRateSchedule,
        ],
        "validation_split": [
            Interval(Real, 0, 1, closed="left"),
            Hidden(StrOptions({"deprecated"})),
        ],
        "callbacks": [list, keras.callbacks.Callback, None],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "shuffle": ["boolean"],
    }

    def __init__(
        self,
        hidden_units=512,
        activation="relu",
        dropout=0.0,
        *,
        alpha=0.0,
        augmentation=False,
        optimizer="rmsprop",
        loss="sparse_categorical_crossentropy",
        metrics=None,
        epochs=5,
        batch_size=128,
        early_stopping=False,
        validation_fraction=None,
        n_iter_no_change=10,
        tol=1e-4,
        learning_rate_schedule="constant",
        validation_split="deprecated",
        callbacks=None,
        class_weight=None,
        random_state=None,
        verbose=0,
        warm_start=False,
        shuffle=True,
        **kwargs,
    ):
        # Not BaseWrapper.__init__: it would also store scikeras's parameters
        # that MNISTClassifier does not use (see _SCIKERAS_EXTRAS).
        self.hidden_units = hidden_units
        self.activation = activation
        self.dropout = dropout
        self.alpha = alpha
        self.augmentation = augmentation
        self.optimizer = optimizer
        self.loss = loss
        self.metrics = metrics
        self.epochs = epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.learning_rate_schedule = learning_rate_schedule
        self.validation_split = validation_split
        self.callbacks = callbacks
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.shuffle = shuffle
        _check_keyword_arguments(kwargs)
        # Routed parameters (optimizer__learning_rate=...), as scikeras keeps them.
        vars(self).update(kwargs)
        if kwargs:
            self._user_params = set(kwargs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- parameters ------------------------------------------------------------

    model = None
    build_fn = None
    run_eagerly = False
    validation_batch_size = None

    # scikeras routes callbacks__* from __init__ but not through set_params;
    # augmentation__* are skmnist's.
    _routing_prefixes = KerasClassifier._routing_prefixes | {
        "callbacks",
        "augmentation",
    }

    def set_params(self, **params) -> "MNISTClassifier":
        """Set hyper-parameters, routed ones (``optimizer__learning_rate``) too.

        Parameters
        ----------
        **params : dict
            Hyper-parameters and their new values.

        Returns
        -------
        self : MNISTClassifier
            This estimator.
        """
        for name in list(params):
            if name in _SCIKERAS_EXTRAS or any(
                name.startswith(f"{prefix}__") for prefix in self._routing_prefixes
            ):
                setattr(self, name, params.pop(name))
        # scikit-learn's, whose error for an unknown name lists the valid ones
        # (scikeras's recommends passing the name to the constructor).
        return BaseEstimator.set_params(self, **params)

    def _get_param_names(self) -> list[str]:
        # A list, which scikit-learn's set_params error prints (scikeras's is a
        # generator).
        return sorted(super()._get_param_names())

    # scikit-learn's repr (only what differs from the defaults), not scikeras's.
    __repr__ = BaseEstimator.__repr__

    # -- fitting ---------------------------------------------------------------

    def fit(self, X, y, sample_weight=None, **kwargs) -> "MNISTClassifier":
        """Build the network for ``(X, y)`` and train it.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training samples, scaled to about [0, 1]; or an array of square
            images of shape (n_samples, side, side), whose pixels are the
            features.
        y : array-like of shape (n_samples,)
            Class labels: numbers or strings.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights; combined with ``class_weight`` for training.
        **kwargs
            Extra arguments for ``keras.Model.fit``. The labels of
            ``validation_data=(X_val, y_val)`` are encoded as ``y``'s are.

        Returns
        -------
        self : MNISTClassifier
            The fitted classifier.
        """
        # From the start, so that a packing search counts a fit that fails
        # its checks as started.
        with joined_session():
            validate_estimator_params(self)
            self._check_before_training(kwargs, partial=False)
            if self.warm_start and self.initialized_:
                # Continued training keeps classes_ (and the network's outputs).
                self._check_known_labels(self._validate_labels(y), "y")
                self._encode_labels_for_the_current_loss()
            else:
                self.classes_ = None
            # Skip KerasClassifier.fit: it multiplies the caller's sample_weight
            # in place, and weights the validation rows by class too.
            return super(KerasClassifier, self).fit(
                X, y, sample_weight=sample_weight, **kwargs
            )

    def partial_fit(self, X, y, classes=None, sample_weight=None, **kwargs):
        """Train for one more epoch, keeping the current weights.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training samples.
        y : array-like of shape (n_samples,)
            Class labels.
        classes : array-like of shape (n_classes,), default=None
            All labels that will ever be seen; needed on the first call only
            (later calls may repeat it, in any order, but not change it).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.
        **kwargs
            Extra arguments for ``keras.Model.fit``.

        Returns
        -------
        self : MNISTClassifier
            The updated classifier.
        """
        validate_estimator_params(self)
        self._check_before_training(kwargs, partial=True)
        if isinstance(self.class_weight, str):  # "balanced"
            raise ValueError(
                "class_weight='balanced' is not supported for partial_fit: it "
                "would balance each batch on its own. Compute the weights once "
                "with sklearn.utils.class_weight.compute_class_weight('balanced', "
                "classes=classes, y=y) on (a large sample of) all the labels and "
                "pass them as a dict."
            )
        if classes is not None:
            classes = np.unique(self._validate_labels(classes))
        if not self.initialized_:
            if classes is None:
                # scikit-learn's words (utils.multiclass._check_partial_fit_first_call).
                raise ValueError(
                    "classes must be passed on the first call to partial_fit."
                )
            self.classes_ = classes
        elif classes is not None and classes.tolist() != self.classes_.tolist():
            raise ValueError(
                f"classes={classes.tolist()!r} is not the same as the classes "
                f"this classifier was first trained with, {self.classes_.tolist()!r}."
            )
        if self.classes_ is not None:
            self._check_known_labels(self._validate_labels(y), "y")
        if self.initialized_:
            self._encode_labels_for_the_current_loss()
        self._partial_fit_call = True
        try:
            with joined_session():
                return super(KerasClassifier, self).partial_fit(
                    X, y, sample_weight=sample_weight, **kwargs
                )
        finally:
            del self._partial_fit_call

    def _check_known_labels(self, y: np.ndarray, what: str) -> None:
        unknown = {*y.tolist()} - {*self.classes_.tolist()}
        if unknown:
            raise ValueError(
                f"{what} has labels that are not among the classes "
                f"{self.classes_.tolist()!r}: {sorted(unknown, key=str)!r}."
            )

    def _encode_labels_for_the_current_loss(self) -> None:
        """Before continued training: encode labels as the loss set now expects.

        Sparse and plain categorical cross-entropy train the same softmax
        network on class indices or one-hot rows; after ``set_params(loss=...)``
        from one to the other, the labels follow the new loss. A loss that
        needs another network is refused by the network check instead.
        """
        if is_categorical_crossentropy(self.loss) == is_categorical_crossentropy(
            self.target_encoder_.loss
        ):
            return
        if self._fitted_network()["output"] == self._network_from_params()["output"]:
            self.target_encoder_ = self.target_encoder.fit(self.classes_)

    @property
    def target_encoder(self):
        categories = "auto" if self.classes_ is None else [self.classes_]
        return _LabelEncoder(loss=self.loss, categories=categories)

    def _initialize(self, X, y=None):
        if self.model is not None or self.build_fn is not None:
            raise ValueError(
                "MNISTClassifier builds its own network; set hidden_units, "
                "activation and dropout instead of model or build_fn."
            )
        return super()._initialize(X, y)

    def _check_model_compatibility(self, y) -> None:
        if self.n_classes_ < 2:
            raise ValueError(
                "MNISTClassifier needs at least 2 classes in y, but y has one "
                f"class only: {self.classes_[0]}."
            )
        if _is_binary_crossentropy(self.loss) and self.n_classes_ > 2:
            raise ValueError(
                f"loss='binary_crossentropy' is for two classes, but y has "
                f"{self.n_classes_}; use 'sparse_categorical_crossentropy' (the "
                "default) or 'categorical_crossentropy' for more than two classes."
            )
        super()._check_model_compatibility(y)

    def _build_keras_model(self) -> keras.Model:
        seed = self._random_state
        if seed is None:
            seed = draw_seeds(check_random_state(None), 1)[0]
        self._seed = seed
        return self._compiled_network(seed)

    def _compiled_network(self, seed: int) -> keras.Model:
        """The network the hyper-parameters describe, compiled, initialised from
        ``seed``."""
        network = self._network_from_params()
        weights = count_weights(
            self.n_features_in_, network["hidden_units"], network["output"][0]
        )
        # With the optimizer's slots: what a discarded model of it holds.
        collect_discarded_models(weight_bytes=3 * 4 * weights)
        model = self._build_network(np.random.RandomState(seed), network)
        model.compile(**self._keras_compile_kwargs())
        build_optimizer(model)
        return model

    def _network_from_params(self) -> dict:
        """The network the hyper-parameters describe, for ``n_features_in_`` and
        ``classes_``."""
        return keras_values(
            {
                "hidden_units": hidden_layer_widths(self.hidden_units),
                "activation": keras.activations.get(
                    _MLP_ACTIVATIONS.get(self.activation, self.activation)
                    if isinstance(self.activation, str)
                    else self.activation
                ),
                "dropout": self.dropout,
                "output": self._output_layer(),
                "augmentation": self._distortion_config(),
            }
        )

    def _distortion_config(self) -> dict | None:
        """The distortions ``augmentation`` and ``augmentation__*`` describe
        for rows of ``n_features_in_`` pixels, or None without augmentation."""
        prefix = "augmentation__"
        routed = {
            name.removeprefix(prefix): keras_values(value)
            for name, value in vars(self).items()
            if name.startswith(prefix)
        }
        # Checked even when off: a misspelt strength is not kept and ignored.
        return distortion_config(
            routed, self.n_features_in_ if self.augmentation else None
        )

    def _fitted_network(self) -> dict:
        """The network of ``model_``: what ``predict`` and continued training
        use, whatever ``set_params`` changed since ``fit``."""
        return describe_network(self.model_)

    def _network_changes(self) -> list[str]:
        """The hyper-parameters changed since ``fit`` that change the network."""
        fitted, wanted = self._fitted_network(), self._network_from_params()
        changed = [
            name for name in ("hidden_units", "dropout") if fitted[name] != wanted[name]
        ]
        was, now = fitted["augmentation"], wanted["augmentation"]
        if was != now:
            # Name the strengths changed, where augmentation stayed on.
            strengths = sorted(
                f"augmentation__{name}"
                for name in (now or {})
                if was and name in DEFAULTS and was.get(name) != now[name]
            )
            changed += strengths or ["augmentation"]
        if fitted["activation"] is not wanted["activation"]:
            changed.append("activation")
        if fitted["output"] != wanted["output"]:
            changed.append("loss")
        return changed

    def _build_network(
        self, random_state: np.random.RandomState, network: dict
    ) -> keras.Model:
        return build_network(
            random_state,
            self.n_features_in_,
            network["hidden_units"],
            network["activation"],
            network["dropout"],
            network["output"],
            alpha=keras_values(self.alpha),
            augmentation=network["augmentation"],
        )

    # -- saved state (skmnist.save and skmnist.load) ---------------------------

    # Fitted attributes that fit sets and that cannot be derived from others;
    # _restore derives the rest (the network from the weights, the encoders from
    # classes_ and n_features_in_).
    _SAVED_ATTRIBUTES = (
        "classes_",
        "n_features_in_",
        "feature_names_in_",
        "target_type_",
        "history_",
        "_random_state",
        "_seed",
        # What fit reports as MLPClassifier does; derived from history_ for
        # files of 0.1, which lack them (see _restore).
        "n_iter_",
        "loss_",
        "loss_curve_",
        "validation_loss_curve_",
        "validation_scores_",
        "best_validation_score_",
        "best_loss_",
        "t_",
        "_no_improvement_count",
        # The rate "adaptive" divided down to, which partial_fit goes on from.
        "_adapted_learning_rate",
    )

    def _saved_state(self) -> tuple[dict, list[np.ndarray]]:
        """The fitted state as plain values, for :meth:`_restore`: the fitted
        attributes of ``_SAVED_ATTRIBUTES`` and the weights (the network's
        variables, dropout's random state included, then the optimizer's)."""
        changed = self._network_changes()
        if changed:
            raise ValueError(
                "its fitted network no longer matches its hyper-parameters "
                f"({', '.join(changed)} changed after fit), so it would load as "
                "another model. Refit it, or set them back to the values it was "
                "fitted with."
            )
        if _optimizer_slots(self.model_.optimizer) != self._described_optimizer_slots():
            # _restore builds the optimizer the parameters describe, and could
            # not give it the fitted one's state.
            raise ValueError(
                "its optimizer changed after fit (set_params), and the fitted "
                "optimizer's state does not fit the new one, so it would not load. "
                "Train it once more (warm_start=True or partial_fit) to switch "
                "optimizers, refit it, or set the optimizer parameters back."
            )
        saved = set(self._SAVED_ATTRIBUTES) & vars(self).keys()
        attributes = {name: vars(self)[name] for name in sorted(saved)}
        variables = [*self.model_.variables, *self.model_.optimizer.variables]
        return attributes, [np.asarray(variable.value) for variable in variables]

    def _described_optimizer_slots(self) -> list[tuple]:
        """:func:`_optimizer_slots` of the optimizer the parameters describe."""
        optimizer = self._keras_compile_kwargs()["optimizer"]
        optimizer.build(self.model_.trainable_variables)
        return _optimizer_slots(optimizer)

    def _restore(self, attributes: dict, weights: list[np.ndarray] | None) -> None:
        """Make this new classifier the fitted one whose :meth:`_saved_state`
        gave ``attributes`` and ``weights``, rebuilding what fit derives from
        them; with ``weights=None``, the network as initialised from ``_seed``.

        Raises ``ValueError`` if they contradict each other or the
        hyper-parameters, before building a network larger than the weights.
        """
        vars(self).update(attributes)
        if "loss_curve_" not in attributes:
            self._convergence_from_history()
        # The label encoder keeps only the categories it found: fit lets it find
        # them (sorted, in the labels' dtype); partial_fit(classes=...) gives
        # them, in the order given.
        classes = self.classes_
        try:
            found = np.array_equal(np.unique(classes), classes)
        except TypeError:  # unorderable object labels
            found = False
        self.classes_ = None if found else classes
        self.target_encoder_ = self.target_encoder.fit(classes)
        vars(self).update(getattr(self.target_encoder_, "get_metadata", dict)())
        if self.classes_.dtype != classes.dtype or not np.array_equal(
            self.classes_, classes
        ):
            raise ValueError("classes_ is not what its label encoder gives back")
        if weights is not None:
            widths = hidden_layer_widths(self.hidden_units)
            outputs = self._output_layer()[0]
            needed = 4 * count_weights(self.n_features_in_, widths, outputs)
            stored = sum(weight.nbytes for weight in weights)
            if needed > stored:  # float32 weights
                raise ValueError(
                    f"the hyper-parameters describe a network of {needed} weight "
                    f"bytes, more than the {stored} bytes stored"
                )
        self.feature_encoder_ = self.feature_encoder.fit(
            np.zeros((1, self.n_features_in_), dtype=np.float32)
        )
        self._initialize_callbacks()
        model = self._compiled_network(self._seed)
        variables = [*model.variables, *model.optimizer.variables]
        misfit = "the weights do not fit the network the hyper-parameters describe"
        if weights is not None and len(weights) != len(variables):
            raise ValueError(
                f"{misfit}: {len(weights)} weight arrays for a network and "
                f"optimizer of {len(variables)} variables"
            )
        for variable, value in zip(variables, weights or (), strict=False):
            # Integers may differ: each backend has its own for counters and
            # seeds (int64 under TensorFlow, int32 and uint32 under JAX).
            kind = np.dtype(variable.dtype).kind
            if value.shape != tuple(variable.shape) or not (
                value.dtype == variable.dtype or {value.dtype.kind, kind} <= {"i", "u"}
            ):
                raise ValueError(
                    f"{misfit}: shape {value.shape} and dtype {value.dtype} for "
                    f"{variable.path}, of shape {tuple(variable.shape)} and dtype "
                    f"{variable.dtype}"
                )
            if kind in "iu" and value.size:  # another backend's integer dtype
                limits = np.iinfo(variable.dtype)
                if value.min() < limits.min or value.max() > limits.max:
                    raise ValueError(f"{misfit}: {variable.path} out of range")
            variable.assign(value.astype(variable.dtype))
        self.model_ = model

    def _convergence_from_history(self) -> None:
        """The attributes of :class:`ConvergenceRecord` for a model saved by
        skmnist 0.1, from its ``history_``: it trained without early stopping;
        how many samples it saw is unknown (``t_`` is None)."""
        history = getattr(self, "history_", {})
        self.loss_curve_ = list(history.get("loss", []))
        self.validation_loss_curve_ = (
            list(history["val_loss"]) if "val_loss" in history else None
        )
        self.validation_scores_ = self.best_validation_score_ = None
        self.best_loss_ = min(self.loss_curve_, default=None)
        self.n_iter_ = len(self.loss_curve_)
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else None
        self.t_ = None
        self._no_improvement_count = 0
        self._adapted_learning_rate = None

    def _output_layer(self) -> tuple:
        if self._binary_output():
            return 1, keras.activations.get("sigmoid")
        return self.n_classes_, keras.activations.get("softmax")

    def _binary_output(self) -> bool:
        return _is_binary_crossentropy(self.loss) and self.n_classes_ <= 2

    def _keras_compile_kwargs(self) -> dict:
        """``Model.compile``'s arguments, routed as scikeras routes them, made anew
        at each call: no two models share an optimizer or a metric."""
        params = keras_values(self.get_params())
        kwargs = route_params(
            params,
            destination="compile",
            pass_filter={"loss_weights", "weighted_metrics", "run_eagerly"},
        )
        optimizer_params = route_params(
            params, destination="optimizer", pass_filter=set(), strict=True
        )
        schedule = self.learning_rate_schedule
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            if "learning_rate" in optimizer_params:
                raise ValueError(
                    f"learning_rate_schedule={schedule!r} gives the learning rate "
                    "from its own initial rate, and optimizer__learning_rate="
                    f"{optimizer_params['learning_rate']!r} is set too: set the "
                    "starting rate in the schedule, and only there."
                )
            # A copy per model: a schedule is configuration, as an optimizer is.
            optimizer_params["learning_rate"] = type(schedule).from_config(
                schedule.get_config()
            )
        optimizer = self.optimizer
        if isinstance(optimizer, keras.optimizers.Optimizer):
            # Configuration, not state: an instance built for one model's
            # variables cannot train another's.
            config = {**_optimizer_config(optimizer), **optimizer_params}
            config.pop("name", None)
            kwargs["optimizer"] = type(optimizer).from_config(config)
        else:
            kwargs["optimizer"] = unflatten_params(
                try_to_convert_strings_to_classes(optimizer, get_optimizer_class),
                optimizer_params,
            )
        loss, loss_params = (
            params["loss"],
            route_params(params, destination="loss", pass_filter=set()),
        )
        if isinstance(loss, str) and loss_params:
            loss = _loss_class(loss)
        kwargs["loss"] = unflatten_params(
            try_to_convert_strings_to_classes(loss, get_loss_class_function_or_string),
            loss_params,
        )
        metrics = params["metrics"] if params["metrics"] is not None else ["accuracy"]
        metrics = unflatten_params(
            try_to_convert_strings_to_classes(metrics, get_metric_class),
            route_params(params, destination="metrics", pass_filter=set()),
        )
        kwargs["metrics"] = [
            type(m).from_config(m.get_config())
            if isinstance(m, keras.metrics.Metric)
            else m
            for m in (metrics if isinstance(metrics, list) else [metrics])
        ]
        return kwargs

    def _architecture_key(self) -> tuple:
        """What determines the forward pass of ``model_``: models with equal keys
        can run each other's weights."""
        network = self._fitted_network()
        return (
            keras.backend.backend(),
            self.n_features_in_,
            network["output"],
            network["hidden_units"],
            network["activation"],
            network["dropout"] > 0,
            # Its seed generator is a variable of the network.
            network["augmentation"] is not None,
        )

    def _training_key(self) -> tuple:
        compile_config = _optimizer_config(self.model_, compile_config=True)
        optimizer_config = compile_config["optimizer"]["config"]
        # Keras numbers optimizer names per instance ("rm_sprop_7"); the name
        # has no effect on training.
        optimizer_config.pop("name", None)
        # A constant learning rate is an optimizer variable, which the compiled
        # functions read and copy_training_state copies in: workspaces differing
        # only in it can train each other's models (a schedule is configuration).
        if isinstance(optimizer_config.get("learning_rate"), Real):
            del optimizer_config["learning_rate"]
        compile_config = json.dumps(compile_config, sort_keys=True, default=repr)
        dropout = self._fitted_network()["dropout"]
        # The penalty is part of the traced loss (see skmnist._network).
        # Models pickled by skmnist 0.1 are plain Sequentials, without a penalty.
        alpha = getattr(self.model_, "alpha", 0.0)
        # The distortions are traced into the training step.
        augmentation = repr(self._fitted_network()["augmentation"])
        return (
            *self._architecture_key(),
            dropout,
            alpha,
            augmentation,
            compile_config,
        )

    def _pack_group(self, training_key: tuple) -> tuple:
        """What a fit's epochs share with the fits they may train with in a
        pack (:mod:`skmnist._packing`): the training key, but for the widths of
        the hidden layers where zero-padding a narrower network to a wider one
        changes nothing. A padded unit's weights, bias and optimizer slots are
        zero; with an activation that is zero at zero its output is zero, so its
        gradients are too and it stays zero (without dropout, whose masks are
        drawn for the layer's width)."""
        network = self._fitted_network()
        if (
            network["dropout"]
            or not any(network["activation"] is f for f in _ZERO_AT_ZERO)
            or type(self.model_.optimizer) not in _ELEMENTWISE_OPTIMIZERS
        ):
            return training_key
        backend, n_features, output, widths, *rest = training_key
        return (backend, n_features, output, len(widths), *rest)

    def _build_workspace(self):
        workspace = self._build_template()
        workspace.compile(**self._keras_compile_kwargs())
        build_optimizer(workspace)
        return epoch_runner(workspace)

    def _warn_if_the_schedule_has_ended(self, updates: int) -> None:
        """Continued training under a Keras schedule that has fallen to 0 (a
        ``CosineDecay`` sized for the first fit, as in ``skmnist train
        --robust``) would change no weight while its loss curve grows."""
        schedule = self.learning_rate_schedule
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            return
        if float(keras.ops.convert_to_numpy(schedule(updates))) > 0:
            return
        warnings.warn(
            f"learning_rate_schedule={schedule!r} gives a learning rate of 0 "
            f"after the {updates} updates of this network's optimizer, so continued "
            "training (warm_start, partial_fit) changes none of its weights. "
            "Set a schedule that goes on past them (for example a CosineDecay "
            f"with decay_steps above {updates}, or CosineDecayRestarts), or fit "
            "anew.",
            UserWarning,
            stacklevel=_stacklevel_of_the_caller(),
        )

    def _continue_with_current_settings(self) -> None:
        """Before continued training: the network must be the fitted one, and the
        optimizer, loss and metrics are those set now (as MLPClassifier uses a
        changed learning rate), keeping the optimizer's state where it can."""
        changed = self._network_changes()
        if changed:
            raise ValueError(
                f"{', '.join(changed)} changed since this network was fitted, and "
                "continued training (warm_start=True, partial_fit) trains the "
                "fitted network. Call fit with warm_start=False to train a new "
                "one."
            )
        previous = self.model_.optimizer
        self.model_.alpha = float(self.alpha)
        self.model_.compile(**self._keras_compile_kwargs())
        build_optimizer(self.model_)
        if type(previous) is type(self.model_.optimizer):
            _carry_optimizer_state(previous, self.model_.optimizer)

    def _fit_keras_model(
        self, X, y, sample_weight, warm_start, epochs, initial_epoch, **kwargs
    ) -> None:
        updates_so_far = int(self.model_.optimizer.iterations)
        if updates_so_far:
            self._continue_with_current_settings()
            # The optimizer's own count: a rebuilt optimizer starts at 0.
            self._warn_if_the_schedule_has_ended(int(self.model_.optimizer.iterations))
        partial = getattr(self, "_partial_fit_call", False)
        # Continued training (warm_start, partial_fit) carries the curves on.
        continued = updates_so_far > 0 and hasattr(self, "loss_curve_")
        # Callbacks set since the last fit apply to continued training too.
        self._initialize_callbacks()
        fit_args = self._keras_fit_arguments(epochs, initial_epoch, kwargs)
        fraction = self._validation_fraction(fit_args.pop("validation_split", None))
        class_weights = self._class_sample_weight(y)
        if fit_args.get("validation_data") is not None:
            fit_args["validation_data"] = self._encode_validation_data(
                fit_args["validation_data"]
            )
        elif fraction and not partial:
            X, y, sample_weight, class_weights, fit_args["validation_data"] = (
                self._hold_out(X, y, sample_weight, class_weights, fraction)
            )
        early_stopping = self.early_stopping and not partial
        validation_data = fit_args.get("validation_data")
        record = (
            self._convergence_record().monitoring(early_stopping)
            if continued
            else ConvergenceRecord(early_stopping=early_stopping)
        )
        adaptive = self.learning_rate_schedule == "adaptive"
        if not (adaptive and partial and self._go_on_from_the_adapted_rate(record)):
            # This call starts from optimizer__learning_rate.
            record.adapted_learning_rate = None
        # A fresh seed per training call, so that continued training (warm_start,
        # partial_fit) does not replay earlier shuffles.
        random_state = np.random.RandomState(
            None
            if self._random_state is None
            else [self._seed, initial_epoch, updates_so_far]
        )
        monitor = ConvergenceMonitor(
            record,
            self._accuracy_on(validation_data) if early_stopping else None,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            adaptive=adaptive,
            samples_per_epoch=len(X),
            verbose=self.verbose,
        )
        completed = CompletedEpochs(self.model_)
        fit_args["callbacks"] = [*(fit_args["callbacks"] or ()), monitor, completed]
        trained = False
        training_key = self._training_key()
        with (
            recorded_interrupts(),
            borrowed_workspace(training_key, self._build_workspace) as runner,
        ):
            runner.pack_group = self._pack_group(training_key)
            runner.forward = forward_pass(
                self._architecture_key(), self._build_template
            )
            copy_training_state(self.model_, runner.model)
            try:
                train(
                    runner,
                    X,
                    y,
                    sample_weight,
                    class_weights,
                    random_state=random_state,
                    seeded=self._random_state is not None,
                    fit_args=fit_args,
                )
                trained = True
                # Callbacks such as EarlyStopping may change the weights after the
                # last epoch.
                copy_training_state(runner.model, self.model_)
            except KeyboardInterrupt:
                if trained:  # stopped in the middle of the copy above: finish it
                    copy_training_state(runner.model, self.model_)
                completed.settle()
                warnings.warn(
                    f"Training interrupted after {completed.epochs} of {epochs} "
                    "epochs; the model keeps the weights of the last completed "
                    "epoch (see history_).",
                    FitInterruptedWarning,
                    stacklevel=5,
                )
                raise
            finally:
                # Also after an error: model_ holds the epochs completed so far.
                self._record_history(completed.history, warm_start, initial_epoch)
                self._keep_convergence_record(record, monitor.epochs)

    def _check_before_training(self, kwargs: dict, partial: bool) -> None:
        """Refuse what training would refuse, before ``fit`` or ``partial_fit``
        replaces or changes the fitted model."""
        validation_data = kwargs.get(
            "validation_data", getattr(self, "fit__validation_data", None)
        )
        if (
            isinstance(validation_data, tuple | list)
            and len(validation_data) == 3
            and validation_data[2] is not None
        ):
            weights = np.asarray(validation_data[2], dtype=np.float64)
            _check_validation_weights(weights, "validation_data")
        if self.early_stopping and not partial and validation_data is None:
            split = kwargs.get(
                "validation_split", getattr(self, "fit__validation_split", None)
            )
            if not self._validation_fraction(split, warn=False):
                raise ValueError(
                    "early_stopping=True needs validation rows: set "
                    "validation_fraction above 0 (None holds out 0.1), or pass "
                    "fit(X, y, validation_data=(X_val, y_val))."
                )
        optimizer = self._keras_compile_kwargs()["optimizer"]
        if self.learning_rate_schedule == "adaptive":
            self._check_adaptive_rate(optimizer)

    @staticmethod
    def _check_adaptive_rate(optimizer) -> None:
        """The rate "adaptive" divides is the one the optimizer holds: not one
        a schedule given to the optimizer computes."""
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            return  # a name or class: built with a constant rate
        config = _optimizer_config(optimizer)
        if not isinstance(config.get("learning_rate"), Real):
            raise ValueError(
                "learning_rate_schedule='adaptive' divides the optimizer's "
                "learning rate, but this optimizer's rate is a schedule of its "
                "own: give the schedule as learning_rate_schedule instead, or a "
                "number as optimizer__learning_rate."
            )

    def _go_on_from_the_adapted_rate(self, record) -> bool:
        """``partial_fit`` goes on from the rate "adaptive" brought the
        starting rate down to, as ``MLPClassifier``'s does, unless the starting
        rate was changed since (set_params). Whether it does."""
        if record.adapted_learning_rate is None:
            return False
        started_from, adapted = record.adapted_learning_rate
        optimizer = self.model_.optimizer
        if not np.isclose(_optimizer_config(optimizer)["learning_rate"], started_from):
            return False
        optimizer.learning_rate = np.float32(adapted)
        return True

    def _validation_fraction(self, routed_split, warn: bool = True) -> float:
        """The fraction of the training rows to hold out: ``validation_fraction``,
        or the deprecated ``validation_split`` (as a parameter, routed as
        ``fit__validation_split`` or given to ``fit``) mapped onto it."""
        split = routed_split if routed_split is not None else self.validation_split
        if isinstance(split, str) and split == "deprecated":
            if self.validation_fraction is None:
                return 0.1 if self.early_stopping else 0.0
            return float(self.validation_fraction)
        if self.validation_fraction is not None:
            raise ValueError(
                f"validation_split={split!r} and validation_fraction="
                f"{self.validation_fraction!r} are both set: validation_split is "
                "deprecated, set validation_fraction only."
            )
        split = float(split)
        if not 0 <= split < 1:
            raise ValueError(f"validation_split must be in [0, 1), got {split!r}.")
        if warn:
            message = _VALIDATION_SPLIT_DEPRECATION.format(value=split)
            warnings.warn(message, FutureWarning, stacklevel=5)
        return split

    def _hold_out(self, X, y, sample_weight, class_weights, fraction) -> tuple:
        """Split off ``fraction`` of the rows, stratified by class and seeded by
        the estimator's seed, as ``MLPClassifier`` does for early stopping.

        Returns the training rows of ``X, y, sample_weight, class_weights`` and
        the validation data ``(X_val, y_val, sample_weight_val)``: validation
        keeps the caller's sample weights but, as in Keras, no class weights.
        """
        labels = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.ravel()
        labels = labels.astype(np.intp)
        counts = np.bincount(labels, minlength=len(self.classes_))
        rare = self.classes_[np.flatnonzero((counts > 0) & (counts < 2))].tolist()
        if rare:
            # A class of one sample cannot be on both sides of a stratified
            # split: MLPClassifier does not stratify multiclass data at all.
            warnings.warn(
                f"validation_fraction={fraction}: the classes {rare!r} have one "
                "sample only, too few to stratify the validation split by class; "
                "it is a plain random split.",
                UserWarning,
                stacklevel=5,
            )
        rows = np.arange(len(X))
        try:
            train_rows, validation_rows = train_test_split(
                rows,
                test_size=fraction,
                random_state=self._seed,
                stratify=None if rare else labels,
            )
        except ValueError as error:
            raise ValueError(
                f"validation_fraction={fraction} cannot hold out a validation set "
                f"with every class from these {len(X)} samples ({error}). Use "
                "more samples, or fit(X, y, validation_data=(X_val, y_val))."
            ) from None
        if len(validation_rows) < 2:
            raise ValueError(
                f"validation_fraction={fraction} holds out {len(validation_rows)} "
                f"of {len(X)} samples: the validation set is too small. Increase "
                "validation_fraction or the size of your dataset."
            )
        # In their original order, so that shuffle=False keeps it.
        train_rows.sort()
        validation_rows.sort()

        def rows_of(array, rows):
            return None if array is None else np.asarray(array)[rows]

        validation = (X[validation_rows], y[validation_rows])
        if sample_weight is not None:
            validation += (rows_of(sample_weight, validation_rows),)
            _check_validation_weights(validation[2], "the held-out rows")
        return (
            X[train_rows],
            y[train_rows],
            rows_of(sample_weight, train_rows),
            rows_of(class_weights, train_rows),
            validation,
        )

    def _accuracy_on(self, validation_data):
        """``score(model)``: the (weighted) accuracy of a model of this estimator's
        architecture on encoded validation data, what early stopping monitors."""
        x, y, weights = keras.utils.unpack_x_y_sample_weight(tuple(validation_data))
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:
            truth = y.argmax(axis=1)
        else:
            truth = y.reshape(-1).astype(np.intp)
        forward = forward_pass(self._architecture_key(), self._build_template)
        sigmoid = self._fitted_network()["output"][0] == 1

        def score(model) -> float:
            outputs = forward(model, x)
            predicted = (
                (outputs[:, 0] > 0.5).astype(np.intp)
                if sigmoid
                else outputs.argmax(axis=1)
            )
            return float(np.average(predicted == truth, weights=weights))

        return score

    # What fit reports as MLPClassifier does (see ConvergenceRecord).
    _CONVERGENCE_ATTRIBUTES = {
        "loss_curve_": "loss_curve",
        "validation_loss_curve_": "validation_loss_curve",
        "validation_scores_": "validation_scores",
        "best_validation_score_": "best_validation_score",
        "best_loss_": "best_loss",
        "t_": "samples_seen",
        "_no_improvement_count": "no_improvement_count",
        "_best_weights": "best_weights",
        "_adapted_learning_rate": "adapted_learning_rate",
    }

    def _convergence_record(self) -> ConvergenceRecord:
        """The record continued training carries on."""
        values = {
            field: getattr(self, attribute, None)
            for attribute, field in self._CONVERGENCE_ATTRIBUTES.items()
        }
        values = {
            name: value
            for name, value in values.items()
            if value is not None or name == "samples_seen"
        }
        early_stopping = self.validation_scores_ is not None
        for name in ("loss_curve", "validation_loss_curve", "validation_scores"):
            if name in values:
                values[name] = list(values[name])
        return ConvergenceRecord(early_stopping=early_stopping, **values)

    def _keep_convergence_record(self, record: ConvergenceRecord, epochs: int) -> None:
        if not record.loss_curve:
            return
        for attribute, field in self._CONVERGENCE_ATTRIBUTES.items():
            setattr(self, attribute, getattr(record, field))
        self.n_iter_ = epochs
        self.loss_ = record.loss_curve[-1]

    def _class_sample_weight(self, y_encoded: np.ndarray) -> np.ndarray | None:
        """Per-row weights of ``class_weight`` for labels as the encoder gives them
        (class indices, one sigmoid target or one-hot rows)."""
        if self.class_weight is None:
            return None
        if y_encoded.ndim == 2 and y_encoded.shape[1] > 1:
            indices = y_encoded.argmax(axis=1)
        else:
            indices = y_encoded.reshape(-1).astype(np.intp)
        if isinstance(self.class_weight, dict):
            # Against all of classes_, not only the labels of this call: a
            # partial_fit batch may lack some of the classes the dict names.
            weights = compute_class_weight(
                self.class_weight, classes=self.classes_, y=self.classes_[indices]
            )[indices]
        else:
            weights = compute_sample_weight(self.class_weight, self.classes_[indices])
        return weights.astype(np.float32)

    def _encode_validation_data(self, validation_data) -> tuple:
        """``validation_data`` as the network sees it: features checked and labels
        encoded as in ``fit``."""
        if not (
            isinstance(validation_data, (tuple, list))
            and len(validation_data) in (2, 3)
        ):
            raise ValueError(
                "validation_data must be a tuple (X_val, y_val) or (X_val, y_val, "
                f"sample_weight_val), not {type(validation_data).__name__}."
            )
        X_val, y_val, *weights = validation_data
        X_val, y_val = self._validate_data(X_val, y_val)
        self._check_known_labels(y_val, "validation_data")
        encoded = (
            self.feature_encoder_.transform(X_val),
            self.target_encoder_.transform(y_val),
        )
        if weights and weights[0] is not None:
            weights = np.asarray(weights[0], dtype=np.float32)
            if weights.shape != (len(X_val),):
                raise ValueError(
                    f"validation_data has {len(X_val)} samples but its "
                    f"sample_weight has shape {weights.shape}."
                )
            _check_validation_weights(weights, "validation_data")
            encoded += (weights,)
        return encoded

    def _keras_fit_arguments(self, epochs, initial_epoch, kwargs) -> dict:
        """``Model.fit``'s arguments: the hyper-parameters, routed ``fit__*``
        parameters over them, and ``fit``'s own keyword arguments over both."""
        fit_args = route_params(
            self.get_params(), destination="fit", pass_filter=self._fit_kwargs
        )
        # Routed callbacks (fit__callbacks) are in _fit_callbacks already.
        fit_args = {
            name: value
            for name, value in fit_args.items()
            if not name.startswith("callbacks")
        }
        fit_args.update(kwargs)
        fit_args.update(
            epochs=initial_epoch + epochs,
            initial_epoch=initial_epoch,
            callbacks=list(self._fit_callbacks),
        )
        return keras_values(fit_args)

    def _record_history(self, epochs_history: dict, warm_start, initial_epoch):
        if not warm_start or initial_epoch == 0 or not hasattr(self, "history_"):
            self.history_ = {}
        for key, values in epochs_history.items():
            self.history_.setdefault(key, []).extend(float(v) for v in values)

    # -- input validation ----------------------------------------------------

    def _validate_data(self, X=None, y=None, reset=False, y_numeric=False):
        if X is None:
            return None, self._validate_labels(y)
        kwargs = {"accept_sparse": ["csr", "csc", "coo"], "dtype": np.float32}
        if getattr(X, "ndim", None) == 3 and not sp.issparse(X):
            # An array of images (n_samples, height, width): their pixels are
            # the features, as PixelScaler gives them, and augmentation sees
            # the images again.
            X = np.asarray(X)
            n_samples, height, width = X.shape
            if height != width:
                raise ValueError(
                    f"MNISTClassifier takes images of a square shape (n_samples, "
                    f"side, side), not {X.shape}: pass them as rows of pixels "
                    "instead."
                )
            X = X.reshape(n_samples, height * width)
        if y is None:
            X = validate_data(self, X, reset=reset, **kwargs)
        else:
            X, y = validate_data(self, X, y, reset=reset, **kwargs)
            y = self._validate_labels(y)
            if reset:
                self.target_type_ = self._type_of_target(y)
        if sp.issparse(X):
            X = X.toarray()
        return X, y

    @staticmethod
    def _validate_labels(y):
        y = column_or_1d(check_array(y, ensure_2d=False, dtype=None), warn=True)
        check_classification_targets(y)
        return y

    # -- prediction ------------------------------------------------------------

    def predict_proba(self, X, **kwargs):
        """Probability of each class in ``classes_``.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Samples, with as many features as seen in ``fit``.
        **kwargs
            Ignored; accepted for compatibility with scikeras.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), dtype float32
            Rows sum to one.
        """
        # Not scikeras's: it squeezes a single sample's (1, n_classes) to 1-D.
        proba = self._predict_raw(X)
        if proba.shape[1] == 1:  # one sigmoid unit: probability of classes_[1]
            proba = np.hstack([1 - proba, proba])
        return proba

    def predict_log_proba(self, X, **kwargs):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Samples, with as many features as seen in ``fit``.
        **kwargs
            Ignored; accepted for compatibility with scikeras.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes), dtype float32
            ``-inf`` where a probability is 0 in float32.
        """
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    def _predict_raw(self, X, **kwargs):
        check_is_fitted(self, "model_")
        # What PixelScaler gives (float32 rows, finite) is checked in a few
        # microseconds; anything else by scikit-learn, as in fit.
        if not validated_as_is(self, X, np.float32):
            X, _ = self._validate_data(X)
        X = self.feature_encoder_.transform(X)
        return predict_outputs(self.model_, X, self._compiled_forward_pass)

    def _compiled_forward_pass(self):
        return forward_pass(self._architecture_key(), self._build_template)

    def _build_template(self) -> keras.Model:
        """A network of this architecture for the shared caches, with weights of
        no importance: not model_, which the caches must not keep alive."""
        return self._build_network(np.random.RandomState(0), self._fitted_network())


@functools.cache
def _loss_class(name: str) -> type:
    """The Keras loss class whose instances are named ``name``, so that routed
    ``loss__`` arguments can configure a loss given by name (scikeras turns a
    name into a loss function, which takes no arguments)."""
    for candidate in vars(keras.losses).values():
        if not isinstance(candidate, type) or not issubclass(
            candidate, keras.losses.Loss
        ):
            continue
        try:
            if candidate().name == name:
                return candidate
        except TypeError:  # a base class that needs arguments
            continue
    raise ValueError(
        f"loss={name!r} takes no loss__ arguments: it is not the name of a "
        "keras.losses class. Pass the class itself, e.g. "
        "loss=keras.losses.SparseCategoricalCrossentropy."
    )


def _optimizer_config(source, compile_config: bool = False) -> dict:
    """``source.get_config()``, or a model's compile config, without the NumPy 2
    deprecation warning Keras 3.15 on JAX gives reading the learning rate
    (``np.array(variable)``): nothing a user can act on, and without importing
    TensorFlow under JAX."""
    with quiet_array_deprecation(), keras_serialization_without_tensorflow():
        if compile_config:
            return source.get_compile_config()
        return keras_values(source.get_config())


def _carry_optimizer_state(source, target) -> None:
    """Copy the update count and slot variables (moments, velocities) of one
    optimizer to another of the same class; the learning rate stays the
    target's, the one set now."""
    by_name = {_slot_name(variable): variable for variable in source.variables}
    for variable in target.variables:
        name = _slot_name(variable)
        previous = by_name.get(name)
        if (
            name != "learning_rate"
            and previous is not None
            and tuple(previous.shape) == tuple(variable.shape)
        ):
            variable.assign(previous.value)


def _optimizer_slots(optimizer) -> list[tuple]:
    """The class, and the name, shape and dtype of each variable, of a built
    optimizer: what must match for one's state to be assigned to the other."""
    return [type(optimizer)] + [
        (_slot_name(variable), tuple(variable.shape), str(variable.dtype))
        for variable in optimizer.variables
    ]


def _slot_name(variable) -> str:
    # Paths read "<optimizer name>/<slot>"; optimizer names differ per instance.
    return variable.path.split("/", 1)[-1]
