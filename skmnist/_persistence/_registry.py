"""What each saved class stores, how it is checked and how it is rebuilt.

One table, :data:`REGISTRY`, names every class a model file may hold (the class
name in the file is only ever looked up there) and, for each, the fitted
attributes it stores and those it rebuilds, the checks of its hyper-parameters
and fitted attributes, and the functions that give and restore its fitted state
as plain values. :func:`describe` and :func:`rebuild` walk an estimator tree
with it, as skops's dispatch tables do; nothing here knows about zip files or
byte layouts (:mod:`._archive`, :mod:`._codec`).

Everything from a file is checked before anything is built from it: Keras
objects only as names (which Keras looks up, never structures its deserialiser
would take), a learning rate schedule as the name of one of Keras's own
schedule classes and the plain numbers it is called with, routed parameters as
plain values, scikit-learn's parameter constraints, fitted attributes as fit
sets them, and a network no larger than the weights stored (by
:meth:`MNISTClassifier._restore`). Before any weights are read, :func:`check`
runs those checks and checks the weight members the file declares: each used
by one estimator, and no more bytes than its network can hold.

A classifier's parameter that this version does not know (of a newer skmnist,
or misspelt by hand) is dropped with a ``UserWarning``, never set; if the
network it described was another, the weights then do not fit, and the error
names it.
"""

import inspect
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from skmnist._architecture import count_weights, hidden_layer_widths
from skmnist._classifier import _SCIKERAS_EXTRAS, MNISTClassifier, keras_values
from skmnist._compat import (
    output_config,
    restore_output_config,
    validate_estimator_params,
)
from skmnist._images import DigitImagePreprocessor
from skmnist._persistence._codec import declared_array_bytes, from_json, to_json
from skmnist._persistence._errors import (
    JOBLIB_HINT,
    ModelFileError,
    expect,
    short_repr,
)
from skmnist._scaler import PixelScaler
from skmnist._version import __version__


@dataclass(frozen=True)
class _Entry:
    """How one class is saved and loaded."""

    cls: type
    # The attribute fit sets (None: the class has no fitted state of its own).
    fitted_marker: str | None = None
    # Fitted attributes stored in the file, and those rebuilt from them on load.
    stored: tuple[str, ...] = ()
    rebuilt: tuple[str, ...] = ()
    # The parameter holding (name, estimator) pairs, saved as nested nodes.
    nested: str | None = None
    # The hyper-parameters as the file stores them, before they are encoded as
    # JSON: (params, where) -> params.
    encode_params: Callable[[dict, str], dict] = lambda params, where: params
    # Checks of the decoded hyper-parameters and fitted attributes, raising
    # ModelFileError. check_params may also turn values into what the estimator
    # takes and drop parameters, editing the dict in place; it returns the names
    # it dropped as unknown, which the loader warns about.
    check_params: Callable[[dict, str], list | None] = lambda params, where: None
    check_fitted: Callable[[dict, str], None] = lambda attributes, where: None
    # (attributes, weights) of a fitted estimator; weights None if it has none.
    state: Callable | None = None
    # Sets the fitted state on a new estimator: (estimator, attributes, weights).
    restore: Callable | None = None
    # For classes with weights: at most how many bytes the weights of a fitted
    # estimator can hold, from its checked hyper-parameters and fitted
    # attributes and the number of members (estimator, attributes, members).
    max_weight_bytes: Callable | None = None


# The arrays an estimator description holds as JSON (classes_, feature names,
# array hyper-parameters) take kilobytes; weights are .npy members.
_MAX_DESCRIBED_ARRAY_BYTES = 64 * 2**20
# Set by __init__ from the hyper-parameters, or by set_output.
_INIT_STATE = ("_user_params", "_sklearn_output_config")
_OUTPUT_CONTAINERS = ("default", "pandas", "polars")


# -- saving --------------------------------------------------------------------


def describe(estimator: BaseEstimator, arrays: dict, where: str) -> dict:
    """``estimator`` as a JSON node of the file's ``estimator.json``; its weights
    go into ``arrays`` by member name."""
    entry = REGISTRY.get(type(estimator).__name__)
    if entry is None or type(estimator) is not entry.cls:
        raise TypeError(
            "skmnist.save saves MNISTClassifier, PixelScaler, "
            "DigitImagePreprocessor and pipelines of them (such as "
            f"make_mnist_pipeline's), not {type(estimator).__name__} "
            f"({where}). " + JOBLIB_HINT
        )
    params = estimator.get_params(deep=False)
    node: dict = {"class": entry.cls.__name__}
    if entry.nested:
        node[entry.nested] = [
            [name, describe(step, arrays, where=f"step {name!r} of {where}")]
            for name, step in params[entry.nested]
        ]
    node["params"] = {
        name: to_json(value, f"hyper-parameter {name!r} of {where}")
        for name, value in entry.encode_params(params, where).items()
        if name != entry.nested
    }
    node["output_config"] = to_json(output_config(estimator), f"set_output of {where}")
    fitted = entry.fitted_marker is not None and entry.fitted_marker in vars(estimator)
    if entry.fitted_marker is not None:
        node["fitted"] = None
        if not fitted:
            # An unfitted estimator is its hyper-parameters; leftovers of a
            # failed fit are dropped.
            return node
    unknown = set(vars(estimator)) - {
        *params,
        *_INIT_STATE,
        *entry.stored,
        *entry.rebuilt,
    }
    if unknown:
        raise TypeError(
            f"{where} has attributes that skmnist.save does not know how to store "
            f"safely: {', '.join(sorted(unknown))}. " + JOBLIB_HINT
        )
    if not fitted:
        return node
    try:
        attributes, weights = entry.state(estimator)
    except ValueError as error:
        raise ValueError(f"Cannot save {where}: {error}") from None
    node["fitted"] = to_json(attributes, f"the fitted attributes of {where}")
    if weights is not None:
        node["weights"] = []
        for weight in weights:
            member = f"weights/{len(arrays)}.npy"
            arrays[member] = weight
            node["weights"].append(member)
    return node


# -- loading -------------------------------------------------------------------


def check(document, sizes: dict[str, int]) -> None:
    """Run every check of the estimator description ``document`` that needs no
    weights, then check the weight members of the file (``sizes``: their
    declared sizes in bytes, by name) against the estimators that use them:
    each member used by one estimator, none missing, and no estimator's more
    than its network can hold.

    The loader runs it before it reads any weights, so that a crafted file
    cannot make it read arrays that no estimator uses or that no network of
    the hyper-parameters needs; save runs it on what it writes.
    """
    declared = declared_array_bytes(document)
    if declared > _MAX_DESCRIBED_ARRAY_BYTES:
        raise ModelFileError(
            f"its estimator description declares arrays of {declared} bytes in "
            f"all, more than an skmnist file describes (at most "
            f"{_MAX_DESCRIBED_ARRAY_BYTES}); the file was modified or is damaged."
        )
    uses: list = []
    rebuild(document, None, "estimator", uses=uses)
    used: set = set()
    for where, names, most, ignored in uses:
        missing = [name for name in names if name not in sizes]
        if missing:
            raise ModelFileError(f"{where}: missing weights {short_repr(missing)}.")
        if used.intersection(names):
            raise ModelFileError(f"{where}: the same weights named twice.")
        used.update(names)
        total = sum(sizes[name] for name in names)
        if total > most:
            raise ModelFileError(
                f"{where}: weights of {total} bytes, more than a network of its "
                f"hyper-parameters holds with its optimizer's state (at most "
                f"{most}); {_damaged(ignored)}"
            )
    unused = set(sizes) - used
    if unused:
        raise ModelFileError(
            f"arrays that no estimator uses: {sorted(unused)[:5]}; the file was "
            "modified or is damaged."
        )


def rebuild(node, arrays: dict | None, where: str, legacy=None, uses=None):
    """The estimator that ``node`` describes, with its weights from ``arrays``
    (or, for format version 1, ``legacy``'s .keras files by member name); with
    ``arrays=None``, only the checks that need no weights (save runs them on
    what it writes), adding to the list ``uses`` where each fitted estimator
    with weights is, the members it names, the most bytes they can hold and
    the unknown parameters dropped from its description.

    Unknown parameter names (of a newer skmnist, or misspelt by hand) are
    dropped, with a ``UserWarning`` each when the estimator is rebuilt with its
    weights (``arrays`` given) rather than only checked."""
    node = expect(node, dict, where)
    name = node.get("class")
    entry = REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ModelFileError(f"{where}: unknown estimator class {name!r}.")
    nested = {}
    if entry.nested:
        nested[entry.nested] = [
            (
                expect(step_name, str, where),
                rebuild(step, arrays, f"step {step_name!r}", legacy, uses),
            )
            for step_name, step in (
                expect(pair, list, where)
                for pair in expect(node[entry.nested], list, where)
            )
        ]
    params, ignored = _params(node, name, where)
    if arrays is not None:
        for parameter in ignored:
            warnings.warn(
                f"{where}: ignoring the parameter {parameter!r} of the "
                f"{entry.cls.__name__} in the model file: skmnist {__version__} "
                "has no such parameter (the file may come from a newer skmnist, "
                "or was edited), so it loads without it.",
                UserWarning,
                stacklevel=2,
            )
    estimator = _checked(entry.cls(**nested, **params), where)
    if entry.fitted_marker is not None and node.get("fitted") is not None:
        attributes = _fitted(node, entry.stored, where)
        entry.check_fitted(attributes, where)
        if arrays is None:
            names = _weight_names(node, entry, where)
            if uses is not None and names is not None:
                most = entry.max_weight_bytes(estimator, attributes, len(names))
                uses.append((where, names, most, ignored))
        else:
            weights = _weights(node, entry, arrays, legacy, where)
            try:
                entry.restore(estimator, attributes, weights)
            except ModelFileError:
                raise
            except ValueError as error:
                raise ModelFileError(
                    f"{where}: {str(error).rstrip('.')}; {_damaged(ignored)}"
                ) from None
            except Exception as error:  # Keras refusing what passed our checks
                raise ModelFileError(
                    f"{where}: cannot rebuild the network: {error}"
                ) from None
    config = from_json(node.get("output_config"), where)
    if config is not None:
        config = expect(config, dict, where)
        if not set(config) <= {"transform"} or not all(
            value in _OUTPUT_CONTAINERS for value in config.values()
        ):
            raise ModelFileError(f"{where}: invalid set_output configuration.")
        restore_output_config(estimator, config)
    return estimator


def _damaged(ignored: list) -> str:
    """Why a file's weights may not fit its network: damage, or the unknown
    parameters ``ignored`` that the loader dropped."""
    if not ignored:
        return "the file was modified or is damaged."
    return (
        "the file names parameters that this skmnist does not know and ignored "
        f"({', '.join(map(repr, ignored))}), which may describe its network: it "
        "may come from a newer skmnist (upgrade skmnist to load it), or was edited."
    )


def _weights(node: dict, entry: _Entry, arrays: dict, legacy, where: str):
    """The weight arrays a node names, taken out of ``arrays``; for format
    version 1, a function that reads its .keras member into the network
    (``legacy(model, node, where)``)."""
    if legacy is not None:
        return lambda model: legacy(model, node, where)
    names = _weight_names(node, entry, where)
    if names is None:
        return None
    missing = [name for name in names if name not in arrays]
    if missing:
        raise ModelFileError(f"{where}: missing weights {short_repr(missing)}.")
    # Taken out, so that the loader can refuse arrays that no estimator uses.
    return [arrays.pop(name) for name in names]


def _weight_names(node: dict, entry: _Entry, where: str) -> list[str] | None:
    """The weight members a node names, each once; None if it names none."""
    if "weights" not in node:
        return None
    if entry.max_weight_bytes is None:
        raise ModelFileError(
            f"{where}: a {entry.cls.__name__} has no weights, but the file lists "
            "weights for it; the file was modified or is damaged."
        )
    names = expect(node["weights"], list, where)
    invalid = [name for name in names if not isinstance(name, str)]
    if invalid:
        raise ModelFileError(f"{where}: missing weights {short_repr(invalid)}.")
    if len(set(names)) != len(names):
        raise ModelFileError(f"{where}: the same weights named twice.")
    return names


def _fitted(node: dict, allowed: tuple, where: str) -> dict:
    attributes = expect(from_json(node["fitted"], where), dict, where)
    unknown = set(attributes) - set(allowed)
    if unknown:
        raise ModelFileError(f"{where}: unknown fitted attributes {sorted(unknown)}.")
    return attributes


def _checked(estimator: BaseEstimator, where: str) -> BaseEstimator:
    """Run scikit-learn's parameter validation (types and ranges) now, at load
    time, rather than at the next fit."""
    if not hasattr(estimator, "_parameter_constraints"):
        # DigitImagePreprocessor has no parameters, so none to constrain (its
        # entry refuses any).
        return estimator
    try:
        validate_estimator_params(estimator)
    except (ValueError, TypeError) as error:
        message = str(error).splitlines()[0]
        raise ModelFileError(f"{where}: invalid hyper-parameter: {message}") from None
    return estimator


# -- checks of hyper-parameters ------------------------------------------------

# Keras turns strings into objects by looking them up among its own names;
# anything else (a dict naming a class or function, a list of them) it
# deserialises, which must never happen to data from a file. Names of Keras
# objects are identifiers.
_KERAS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PIPELINE_PARAMS = ("memory", "transform_input", "verbose")


def _params(node: dict, kind: str, where: str) -> tuple[dict, list]:
    """The checked hyper-parameters of ``node``, and the unknown names dropped."""
    params = expect(from_json(node.get("params"), where), dict, where)
    for name in params:
        # Hyper-parameter names only: scikeras stores unknown keyword arguments
        # as attributes, which must not overwrite private or fitted ones.
        if not (
            isinstance(name, str)
            and name.isidentifier()
            and not name.startswith("_")
            and not name.endswith("_")
        ):
            raise ModelFileError(f"{where}: invalid parameter name {name!r}.")
    ignored = REGISTRY[kind].check_params(params, where) or []
    return params, ignored


def _check_known_params(params: dict, where: str, known: tuple = ()) -> None:
    """Refuse parameters other than ``known``: by default, any."""
    unknown = set(params) - set(known)
    if unknown:
        raise ModelFileError(f"{where}: unknown parameters {sorted(unknown)}.")


def _check_pipeline_params(params: dict, where: str) -> None:
    _check_known_params(params, where, _PIPELINE_PARAMS)
    # memory is a folder for joblib's cache, which stores pickles.
    if params.get("memory") is not None:
        raise ModelFileError(
            f"{where}: parameter 'memory' must be None (skmnist files never "
            "name a joblib cache folder, which holds pickles)."
        )
    transform_input = params.get("transform_input")
    if transform_input is not None and not _is_list_of_str(transform_input):
        raise ModelFileError(
            f"{where}: parameter 'transform_input' must be None or a list of strings."
        )


def _check_classifier_params(params: dict, where: str) -> list[str]:
    """Check the classifier's hyper-parameters, turning a stored Keras schedule
    into one; drop the default ``validation_split=0.0`` of files of skmnist 0.1
    and, with their names returned, parameters this skmnist does not know."""
    known = MNISTClassifier().get_params(deep=False).keys() | set(_SCIKERAS_EXTRAS)
    dropped, ignored = [], []
    for name, value in params.items():
        what = f"{where}: parameter {name!r}"
        if name in ("optimizer", "loss", "activation"):
            if not (isinstance(value, str) and _KERAS_NAME.fullmatch(value)):
                raise ModelFileError(f"{what} must be the name of a Keras object.")
        elif name == "metrics":
            if value is not None and not (
                _is_list_of_str(value)
                and all(_KERAS_NAME.fullmatch(item) for item in value)
            ):
                raise ModelFileError(
                    f"{what} must be None or a list of names of Keras metrics."
                )
        elif name in ("model", "build_fn", "callbacks"):
            if value is not None:
                raise ModelFileError(f"{what} must be None.")
        elif name in (
            "run_eagerly",
            "warm_start",
            "shuffle",
            "early_stopping",
            "augmentation",
        ):
            if not isinstance(value, bool):
                raise ModelFileError(f"{what} must be a boolean.")
        elif name in ("validation_batch_size", "n_iter_no_change"):
            if (value is not None or name == "n_iter_no_change") and not (
                _is_int(value) and value >= 1
            ):
                optional = "None or " if name == "validation_batch_size" else ""
                raise ModelFileError(f"{what} must be {optional}a positive integer.")
        elif name == "random_state":
            if value is not None and not _is_int(value):
                raise ModelFileError(f"{what} must be None or an integer.")
        elif name == "class_weight":
            if isinstance(value, dict) and not all(
                _is_scalar(key) and _is_number(weight) for key, weight in value.items()
            ):
                raise ModelFileError(f"{what} must map class labels to numbers.")
        elif name == "hidden_units":
            # Numbers are left to scikit-learn's constraints (an int of at
            # least 1); sequences (a list, a tuple, a 1-D array) must be of
            # widths. The codec gives tuples and arrays back as they were saved.
            if isinstance(value, bool | list | tuple | np.ndarray):
                try:
                    hidden_layer_widths(value)
                except ValueError as error:
                    raise ModelFileError(
                        f"{where}: invalid hyper-parameter: {error}"
                    ) from None
        elif name in ("alpha", "tol", "dropout"):
            if not _is_number(value):
                raise ModelFileError(f"{what} must be a number.")
        elif name == "validation_fraction":
            if value is not None and not _is_number(value):
                raise ModelFileError(f"{what} must be None or a number.")
        elif name == "validation_split":
            if value != "deprecated" and not _is_number(value):
                raise ModelFileError(f"{what} must be a number.")
            # skmnist 0.1 stored its default, 0.0, which is now the deprecated
            # parameter's (warning) way of asking for no validation rows. Its
            # files have no validation_fraction; those of later versions keep
            # a validation_split a user set.
            if value == 0 and "validation_fraction" not in params:
                dropped.append(name)
            elif (
                value != "deprecated" and params.get("validation_fraction") is not None
            ):
                # fit refuses the two together: so does load.
                raise ModelFileError(
                    f"{where}: parameters 'validation_split' and "
                    "'validation_fraction' are both set."
                )
        elif name == "learning_rate_schedule":
            if not isinstance(value, str):  # constant, adaptive: scikit-learn's
                params[name] = _schedule_from_json(value, what)
        elif (
            name == "fit__validation_split"
            and params.get("validation_fraction") is not None
        ):
            raise ModelFileError(
                f"{where}: parameters 'fit__validation_split' and "
                "'validation_fraction' are both set."
            )
        elif any(name.startswith(f"{prefix}__") for prefix in _ROUTING_PREFIXES):
            # Routed (optimizer__learning_rate, fit__..., loss__...), which
            # scikeras stores as attributes: plain values only, and never in
            # place of a method or property.
            if not _is_scalar(value):
                raise ModelFileError(
                    f"{what} must be a number, string, boolean or None."
                )
            if hasattr(MNISTClassifier, name):
                raise ModelFileError(f"{where}: invalid parameter name {name!r}.")
        elif name not in known:
            if hasattr(MNISTClassifier, name):  # no release names one so
                raise ModelFileError(f"{where}: invalid parameter name {name!r}.")
            # Of a newer skmnist, or misspelt: dropped, with a warning.
            ignored.append(name)
    for name in (*dropped, *ignored):
        del params[name]
    return ignored


_ROUTING_PREFIXES = tuple(sorted(MNISTClassifier._routing_prefixes))


def _encode_classifier_params(params: dict, where: str) -> dict:
    schedule = params.get("learning_rate_schedule")
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        where = f"hyper-parameter 'learning_rate_schedule' of {where}"
        params = {
            **params,
            "learning_rate_schedule": _schedule_to_json(schedule, where),
        }
    return params


# Keras's own learning rate schedules, the only ones a file may name: by class
# name and constructor arguments, given to the class found here, never to
# Keras's deserialiser.
_SCHEDULES = {
    cls.__name__: cls
    for cls in vars(keras.optimizers.schedules).values()
    if isinstance(cls, type)
    and issubclass(cls, keras.optimizers.schedules.LearningRateSchedule)
    and cls is not keras.optimizers.schedules.LearningRateSchedule
}


def _schedule_to_json(schedule, where: str) -> dict:
    cls = type(schedule)
    if _SCHEDULES.get(cls.__name__) is not cls:
        raise TypeError(
            f"Cannot save {where}: {cls.__name__} is not one of Keras's own "
            f"learning rate schedules ({', '.join(sorted(_SCHEDULES))}), the only "
            "ones a model file names. " + JOBLIB_HINT
        )
    return {
        "keras_schedule": cls.__name__,
        "config": keras_values(schedule.get_config()),
    }


def _schedule_from_json(value, what: str):
    """The Keras schedule that ``_schedule_to_json`` stored as ``value``: a
    class of ``_SCHEDULES`` called with plain arguments."""
    if not (isinstance(value, dict) and set(value) == {"keras_schedule", "config"}):
        raise ModelFileError(
            f"{what} must be 'constant', 'adaptive' or a Keras schedule by class "
            "name and arguments."
        )
    name, config = value["keras_schedule"], value["config"]
    cls = _SCHEDULES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ModelFileError(
            f"{what}: {short_repr(name)} is not one of Keras's learning rate "
            f"schedules ({', '.join(sorted(_SCHEDULES))})."
        )
    config = expect(config, dict, what)
    arguments = set(inspect.signature(cls.__init__).parameters) - {"self"}
    for key, item in config.items():
        if key not in arguments:
            raise ModelFileError(f"{what}: {name} takes no argument {key!r}.")
        if not (
            item is None
            or isinstance(item, bool)
            or _is_number(item)
            or (key == "name" and isinstance(item, str))
            or (isinstance(item, list) and all(_is_number(x) for x in item))
        ):
            raise ModelFileError(
                f"{what}: argument {key!r} of {name} must be a number, a boolean, "
                "None or a list of numbers."
            )
    try:
        return cls(**config)
    except Exception as error:  # Keras refusing an argument
        reason = " ".join(str(error).split())
        raise ModelFileError(f"{what}: invalid arguments of {name}: {reason}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _is_list_of_str(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _check_scaler_attributes(attributes: dict, where: str) -> None:
    """The scaler's fitted attributes, as fit sets them: the pixel count, an image
    shape of that many pixels, and optionally one feature name per pixel."""
    n_features = _positive_int(attributes.get("n_features_in_"), where)
    shape = attributes.get("image_shape_")
    if not (
        isinstance(shape, tuple)
        and len(shape) in (1, 2)
        and all(isinstance(size, int) and not isinstance(size, bool) for size in shape)
        and math.prod(shape) == n_features
    ):
        raise ModelFileError(
            f"{where}: image_shape_ {short_repr(shape)} is not a shape of "
            f"{n_features} pixels."
        )
    _check_feature_names(attributes, n_features, where)


def _check_classifier_attributes(attributes: dict, where: str) -> None:
    """The classifier's fitted attributes as fit sets them (classes_ is checked
    further by rebuilding its label encoder)."""
    n_features = _positive_int(attributes.get("n_features_in_"), where)
    _check_feature_names(attributes, n_features, where)
    expect(attributes.get("classes_"), np.ndarray, f"{where}: classes_")
    expect(attributes.get("_seed"), int, f"{where}: _seed")
    if attributes.get("_random_state") is not None:
        expect(attributes["_random_state"], int, f"{where}: _random_state")
    # fit takes 1-D labels only, which type_of_target calls one of these.
    if attributes.get("target_type_", "multiclass") not in ("binary", "multiclass"):
        raise ModelFileError(
            f"{where}: invalid target_type_ {short_repr(attributes['target_type_'])}."
        )
    history = attributes.get("history_", {})
    if not (
        isinstance(history, dict)
        and all(
            isinstance(key, str)
            and isinstance(values, list)
            and all(
                isinstance(value, int | float) and not isinstance(value, bool)
                for value in values
            )
            for key, values in history.items()
        )
    ):
        raise ModelFileError(
            f"{where}: history_ must map metric names to lists of numbers."
        )
    _check_convergence_attributes(attributes, where)


# What fit reports as MLPClassifier does (skmnist._convergence), and what each
# may be. Files of skmnist 0.1 have none of them (_restore derives them).
_CONVERGENCE_ATTRIBUTES = {
    "n_iter_": ("a non-negative integer", False, "count"),
    "_no_improvement_count": ("a non-negative integer", False, "count"),
    "t_": ("None or a non-negative integer", True, "count"),
    "loss_": ("None or a number", True, "number"),
    "best_validation_score_": ("None or a number", True, "number"),
    "best_loss_": ("None or a number", True, "number"),
    "loss_curve_": ("a list of numbers", False, "numbers"),
    "validation_loss_curve_": ("None or a list of numbers", True, "numbers"),
    "validation_scores_": ("None or a list of numbers", True, "numbers"),
}
_CONVERGENCE_CHECKS = {
    "count": lambda value: _is_int(value) and value >= 0,
    "number": _is_number,
    "numbers": lambda value: isinstance(value, list) and all(map(_is_number, value)),
}


def _check_convergence_attributes(attributes: dict, where: str) -> None:
    """``n_iter_``, ``loss_curve_`` and the rest: all or none, each of its type
    (numbers may be infinite or NaN, as a diverging fit's losses are), and a
    best validation score where there are validation scores (early stopping)."""
    present = [name for name in _CONVERGENCE_ATTRIBUTES if name in attributes]
    if not present:
        return
    missing = [name for name in _CONVERGENCE_ATTRIBUTES if name not in attributes]
    if missing:
        raise ModelFileError(
            f"{where}: the fitted attributes {', '.join(missing)} are missing "
            f"beside {', '.join(present)}; the file was modified or is damaged."
        )
    for name, (kind, optional, check) in _CONVERGENCE_ATTRIBUTES.items():
        value = attributes[name]
        if not ((optional and value is None) or _CONVERGENCE_CHECKS[check](value)):
            raise ModelFileError(
                f"{where}: {name} must be {kind}, got {short_repr(value)}."
            )
    rates = attributes.get("_adapted_learning_rate")
    if rates is not None and not (
        isinstance(rates, list | tuple)
        and len(rates) == 2
        and all(map(_is_number, rates))
    ):
        raise ModelFileError(
            f"{where}: _adapted_learning_rate must be None or two numbers, got "
            f"{short_repr(rates)}."
        )
    if (attributes["validation_scores_"] is None) != (
        attributes["best_validation_score_"] is None
    ):
        raise ModelFileError(
            f"{where}: validation_scores_ and best_validation_score_ must both be "
            "None (no early stopping) or both be set."
        )


def _positive_int(value, where: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise ModelFileError(
            f"{where}: n_features_in_ must be a positive integer, got "
            f"{short_repr(value)}."
        )
    return value


def _check_feature_names(attributes: dict, n_features: int, where: str) -> None:
    if "feature_names_in_" not in attributes:
        return
    names = attributes["feature_names_in_"]
    if not (
        isinstance(names, np.ndarray)
        and names.shape == (n_features,)
        and names.dtype.kind in "UO"
        and all(isinstance(name, str) for name in names.tolist())
    ):
        raise ModelFileError(
            f"{where}: feature_names_in_ must be {n_features} strings, one per pixel."
        )


# -- the table -----------------------------------------------------------------


def _stored_attributes(names: tuple) -> Callable:
    def state(estimator):
        stored = set(names) & vars(estimator).keys()
        return {name: vars(estimator)[name] for name in sorted(stored)}, None

    return state


def _set_attributes(estimator, attributes: dict, weights) -> None:
    vars(estimator).update(attributes)


# Before any weight is read, a classifier's weights are checked against the
# most that its network can hold rather than against their exact shapes: those
# are the shapes of the network's and its optimizer's variables, which only
# Keras knows (an optimizer's slots depend on its class and options: momentum,
# centered, amsgrad, use_ema, gradient_accumulation_steps; the dtypes of its
# counters and of dropout's seed on the backend). _restore compares each array
# with the variable Keras builds, once read.
#
# Each parameter of the network is stored once, and at most five times more
# in the optimizer's state (Keras 3.15: three slots for Adam with amsgrad or
# for centered RMSprop with momentum, one more each for use_ema and for
# gradient accumulation); eight copies of at most 8 bytes (float64 under
# keras.config.set_floatx, int64 counters) leave room. A member may also hold
# a few values of its own (the update count, the learning rate, dropout's
# seed state).
_MAX_COPIES_PER_PARAMETER = 8
_MAX_VALUE_BYTES = 8
_MEMBER_ALLOWANCE_BYTES = 64


def _classifier_weight_bytes(
    clf: MNISTClassifier, attributes: dict, members: int
) -> int:
    widths = hidden_layer_widths(clf.hidden_units)
    # One output per class (binary_crossentropy's single output is fewer).
    outputs = attributes["classes_"].size
    parameters = count_weights(attributes["n_features_in_"], widths, outputs)
    return (
        _MAX_VALUE_BYTES * _MAX_COPIES_PER_PARAMETER * parameters
        + _MEMBER_ALLOWANCE_BYTES * members
    )


def _restore_classifier(clf: MNISTClassifier, attributes: dict, weights) -> None:
    if weights is None:
        raise ValueError("the file stores no weights for the fitted network")
    if callable(weights):  # format version 1: Keras reads them into the network
        clf._restore(attributes, None)
        weights(clf.model_)
    else:
        clf._restore(attributes, weights)
    # The weights of the best epoch of early stopping, which continued training
    # goes back to if it finds none better: those of the network, which a fit
    # with early stopping ends with (not saved twice).
    clf._best_weights = (
        None if clf.validation_scores_ is None else clf.model_.get_weights()
    )


_SCALER_STORED = ("n_features_in_", "image_shape_", "feature_names_in_")

REGISTRY: dict[str, _Entry] = {
    "Pipeline": _Entry(Pipeline, nested="steps", check_params=_check_pipeline_params),
    # No parameters and no fitted state: fit returns it unchanged.
    "DigitImagePreprocessor": _Entry(
        DigitImagePreprocessor, check_params=_check_known_params
    ),
    "PixelScaler": _Entry(
        PixelScaler,
        fitted_marker="image_shape_",
        stored=_SCALER_STORED,
        check_fitted=_check_scaler_attributes,
        state=_stored_attributes(_SCALER_STORED),
        restore=_set_attributes,
    ),
    "MNISTClassifier": _Entry(
        MNISTClassifier,
        fitted_marker="model_",
        stored=MNISTClassifier._SAVED_ATTRIBUTES,
        # What fit derives: the network (from the weights), the label and
        # feature encoders (from classes_ and n_features_in_), the metadata the
        # label encoder provides and the callbacks.
        rebuilt=(
            "model_",
            "target_encoder_",
            "feature_encoder_",
            "n_classes_",
            "n_outputs_",
            "n_outputs_expected_",
            "_fit_callbacks",
            "_predict_callbacks",
            # Early stopping's best weights: the network's (_restore_classifier).
            "_best_weights",
        ),
        encode_params=_encode_classifier_params,
        check_params=_check_classifier_params,
        check_fitted=_check_classifier_attributes,
        state=MNISTClassifier._saved_state,
        restore=_restore_classifier,
        max_weight_bytes=_classifier_weight_bytes,
    ),
}
