"""MNISTClassifier: the classic MNIST perceptron as a scikit-learn classifier."""

import contextlib
import json
import warnings
from numbers import Integral, Real

import keras
import numpy as np
import scipy.sparse as sp
from keras.src.trainers.data_adapters.array_slicing import train_validation_split
from scikeras.utils import loss_name
from scikeras.wrappers import KerasClassifier
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from skmnist._random import draw_seeds, isolated_random_state
from skmnist._scikeras_compat import MixinsFirst, mark_legacy_tags_as_migrated
from skmnist._training import epoch_runner, fit_compiled_epochs, runs_compiled_epochs
from skmnist._workspace import (
    CompletedEpochs,
    borrowed_workspace,
    build_optimizer,
    collect_discarded_models,
    copy_training_state,
    forward_pass,
)

mark_legacy_tags_as_migrated()


class FitInterruptedWarning(UserWarning):
    """Ctrl-C stopped :meth:`MNISTClassifier.fit` before its last epoch.

    The ``KeyboardInterrupt`` goes on, so that a script or a search stops there;
    the estimator is left fitted with the epochs completed so far (see
    ``history_``), and the warning says how many.
    """


class MNISTClassifier(KerasClassifier, metaclass=MixinsFirst):
    """Dense(``hidden_units``) -> Dense(n_classes, softmax) network as a classifier.

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
    hidden_units : int, default=512
        Number of units of the hidden layer.
    activation : str or callable, default="relu"
        Activation of the hidden layer, any Keras activation.
    dropout : float, default=0.0
        Fraction of the hidden units dropped during training, in [0, 1).
    optimizer : str, keras.optimizers.Optimizer or its class, default="rmsprop"
        Optimizer; its arguments are routed with the ``optimizer__`` prefix, e.g.
        ``optimizer__learning_rate=1e-3``.
    loss : str or keras.losses.Loss, default="sparse_categorical_crossentropy"
        Training loss. ``"categorical_crossentropy"`` one-hot encodes the labels.
    metrics : list or None, default=None
        Keras metrics recorded in ``history_``; None records ``["accuracy"]``.
    epochs : int, default=5
        Number of passes over the training data.
    batch_size : int, default=128
        Samples per gradient update.
    validation_split : float, default=0.0
        Fraction of the training data (its last rows, as in Keras) held out to
        compute ``val_loss`` and ``val_accuracy`` after each epoch.
    callbacks : list of keras.callbacks.Callback or None, default=None
        Keras callbacks called during fit, e.g. ``EarlyStopping``.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, as in scikit-learn.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, dropout and shuffling. Two fits with the same
        integer give the same model on the CPU. Seeding does not change the random
        state of the rest of the process.
    verbose : int, default=0
        0 trains silently (as is best inside searches), 1 shows Keras's progress
        bar, 2 one line per epoch.
    warm_start : bool, default=False
        If True, ``fit`` continues training the current model.
    shuffle : bool, default=True
        Shuffle the training data before each epoch.
    **kwargs
        Routed parameters, as in scikeras: ``optimizer__*``, ``loss__*``,
        ``fit__*``, ``callbacks__*``.

    Attributes
    ----------
    model_ : keras.Model
        The fitted Keras model.
    history_ : dict of str to list of float
        Per-epoch ``loss`` and metrics (``accuracy``), plus ``val_loss`` and
        ``val_accuracy`` with a ``validation_split``.
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit``.
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
        "hidden_units": [Interval(Integral, 1, None, closed="left")],
        "activation": [str, callable],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "optimizer": [str, keras.optimizers.Optimizer, type],
        "loss": [str, callable],
        "metrics": [list, None],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "validation_split": [Interval(Real, 0, 1, closed="left")],
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
        optimizer="rmsprop",
        loss="sparse_categorical_crossentropy",
        metrics=None,
        epochs=5,
        batch_size=128,
        validation_split=0.0,
        callbacks=None,
        class_weight=None,
        random_state=None,
        verbose=0,
        warm_start=False,
        shuffle=True,
        **kwargs,
    ):
        super().__init__(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            epochs=epochs,
            batch_size=batch_size,
            validation_split=validation_split,
            callbacks=callbacks,
            class_weight=class_weight,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
            shuffle=shuffle,
            **kwargs,
        )
        self.hidden_units = hidden_units
        self.activation = activation
        self.dropout = dropout

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- fitting ---------------------------------------------------------------

    def fit(self, X, y, sample_weight=None, **kwargs) -> "MNISTClassifier":
        """Build the network for ``(X, y)`` and train it.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training samples, scaled to about [0, 1].
        y : array-like of shape (n_samples,)
            Class labels: numbers or strings.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights; combined with ``class_weight``.
        **kwargs
            Extra arguments for ``keras.Model.fit``.

        Returns
        -------
        self : MNISTClassifier
            The fitted classifier.
        """
        self._validate_params()
        self.classes_ = None
        sample_weight = self._combine_with_class_weight(y, sample_weight)
        # Skip KerasClassifier.fit: it multiplies the caller's sample_weight in place.
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
            All labels that will ever be seen; needed on the first call only.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.
        **kwargs
            Extra arguments for ``keras.Model.fit``.

        Returns
        -------
        self : MNISTClassifier
            The updated classifier.
        """
        self._validate_params()
        self.classes_ = (
            classes if classes is not None else getattr(self, "classes_", None)
        )
        sample_weight = self._combine_with_class_weight(y, sample_weight)
        return super(KerasClassifier, self).partial_fit(
            X, y, sample_weight=sample_weight, **kwargs
        )

    def _combine_with_class_weight(self, y, sample_weight):
        if self.class_weight is None:
            return sample_weight
        weights = compute_sample_weight(self.class_weight, y)
        if sample_weight is not None:
            weights = weights * np.asarray(sample_weight, dtype=float)
        return weights

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
        super()._check_model_compatibility(y)

    def _build_keras_model(self) -> keras.Model:
        collect_discarded_models()
        seed = self._random_state
        if seed is None:
            seed = draw_seeds(check_random_state(None), 1)[0]
        self._seed = seed
        model = self._build_network(np.random.RandomState(seed))
        model.compile(**self._keras_compile_kwargs())
        build_optimizer(model)
        return model

    def _build_network(self, random_state: np.random.RandomState) -> keras.Model:
        hidden_seed, dropout_seed, output_seed = draw_seeds(random_state, 3)
        layers = [
            keras.Input((self.n_features_in_,)),
            keras.layers.Dense(
                self.hidden_units,
                activation=self.activation,
                kernel_initializer=keras.initializers.GlorotUniform(hidden_seed),
                name="hidden",
            ),
        ]
        if self.dropout > 0:
            layers.append(
                keras.layers.Dropout(self.dropout, seed=dropout_seed, name="dropout")
            )
        units, activation = self._output_layer()
        layers.append(
            keras.layers.Dense(
                units,
                activation=activation,
                kernel_initializer=keras.initializers.GlorotUniform(output_seed),
                name="output",
            )
        )
        return keras.Sequential(layers, name="mnist_mlp")

    def _output_layer(self) -> tuple[int, str]:
        if self._binary_output():
            return 1, "sigmoid"
        return self.n_classes_, "softmax"

    def _binary_output(self) -> bool:
        return (
            isinstance(self.loss, str)
            and loss_name(self.loss) == "binary_crossentropy"
            and self.n_classes_ <= 2
        )

    def _keras_compile_kwargs(self) -> dict:
        kwargs = self._get_compile_kwargs()
        if kwargs["metrics"] is None:
            kwargs["metrics"] = ["accuracy"]
        return kwargs

    def _architecture_key(self) -> tuple:
        """What determines the forward pass: models with equal keys can run each
        other's weights."""
        return (
            keras.backend.backend(),
            self.n_features_in_,
            self._output_layer(),
            self.hidden_units,
            self.activation,
            self.dropout > 0,
        )

    def _training_key(self) -> tuple:
        with warnings.catch_warnings():
            # Keras 3.15 on JAX reads the learning rate with np.array(variable),
            # which NumPy 2 deprecates; nothing the user can act on.
            warnings.filterwarnings(
                "ignore", "__array__ implementation", DeprecationWarning
            )
            compile_config = self.model_.get_compile_config()
        # Keras numbers optimizer names per instance ("rm_sprop_7"); the name
        # has no effect on training.
        compile_config["optimizer"]["config"].pop("name", None)
        compile_config = json.dumps(compile_config, sort_keys=True, default=repr)
        return (*self._architecture_key(), self.dropout, compile_config)

    def _build_workspace(self):
        workspace = self._build_template()
        workspace.compile(**self._keras_compile_kwargs())
        build_optimizer(workspace)
        return epoch_runner(workspace)

    def _fit_keras_model(
        self, X, y, sample_weight, warm_start, epochs, initial_epoch, **kwargs
    ) -> None:
        fit_args = self._keras_fit_arguments(epochs, initial_epoch, kwargs)
        X, y, sample_weight = self._hold_out_validation_rows(
            X, y, sample_weight, fit_args
        )
        # A fresh seed per training call, so that continued training (warm_start,
        # partial_fit) does not replay earlier shuffles.
        random_state = np.random.RandomState(
            None if self._random_state is None else [self._seed, initial_epoch]
        )
        completed = CompletedEpochs(self.model_)
        fit_args["callbacks"] = [*(fit_args["callbacks"] or ()), completed]
        trained = False
        with borrowed_workspace(self._training_key(), self._build_workspace) as runner:
            copy_training_state(self.model_, runner.model)
            try:
                if runs_compiled_epochs(fit_args):
                    fit_compiled_epochs(
                        runner,
                        X,
                        y,
                        sample_weight,
                        random_state=random_state,
                        **fit_args,
                    )
                else:
                    self._fit_with_keras_loop(
                        runner.model, X, y, sample_weight, fit_args, random_state
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

    def _hold_out_validation_rows(self, X, y, sample_weight, fit_args):
        """Split off ``validation_split`` of the rows as Keras does: the last ones."""
        validation_split = fit_args.pop("validation_split")
        if validation_split and fit_args.get("validation_data") is None:
            (X, y, sample_weight), fit_args["validation_data"] = train_validation_split(
                (X, y, sample_weight), validation_split
            )
        return X, y, sample_weight

    def _fit_with_keras_loop(self, model, X, y, sample_weight, fit_args, random_state):
        """Train with ``Model.fit``, for what the compiled epochs do not cover.

        Keras reshuffles every epoch, but on TensorFlow with a constant seed (see
        ``isolated_random_state``); shuffling once more here with the estimator's
        own seed makes each epoch's order depend on ``random_state``.
        """
        if fit_args["shuffle"]:
            order = random_state.permutation(len(X))
            X, y = X[order], y[order]
            if sample_weight is not None:
                sample_weight = sample_weight[order]
        randomness = (
            contextlib.nullcontext()
            if self._random_state is None
            else isolated_random_state(draw_seeds(random_state, 1)[0])
        )
        with randomness:
            model.fit(x=X, y=y, sample_weight=sample_weight, **fit_args)

    def _keras_fit_arguments(self, epochs, initial_epoch, kwargs) -> dict:
        return {
            "batch_size": self.batch_size,
            "validation_split": self.validation_split,
            "validation_batch_size": self.validation_batch_size,
            "shuffle": self.shuffle,
            "verbose": self.verbose,
            "callbacks": self._fit_callbacks,
            **kwargs,
            "epochs": initial_epoch + epochs,
            "initial_epoch": initial_epoch,
        }

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

    def _predict_raw(self, X, **kwargs):
        check_is_fitted(self, "model_")
        X, _ = self._validate_data(X)
        X = self.feature_encoder_.transform(X)
        forward = forward_pass(self._architecture_key(), self._build_template)
        return forward(self.model_, X)

    def _build_template(self) -> keras.Model:
        """A network of this architecture for the shared caches, with weights of
        no importance: not model_, which the caches must not keep alive."""
        return self._build_network(np.random.RandomState(0))
