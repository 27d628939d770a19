"""Saving and loading skmnist estimators without pickle.

A saved file is a zip archive:

- ``manifest.json``: format name and version, the skmnist and Keras versions that
  wrote it, and the SHA-256 of every other member;
- ``estimator.json``: the estimator tree (a pipeline's steps), each estimator's
  hyper-parameters and fitted attributes, as JSON data;
- ``models/<n>.keras``: the Keras model of each fitted classifier, in Keras's own
  ``.keras`` format.

Loading checks the members' declared sizes before extracting anything, checks
every checksum, parses JSON, checks every hyper-parameter (Keras objects only as
names, which Keras looks up, never as structures its deserialiser would take;
routed parameters as plain values; scikit-learn's parameter constraints; a
network no larger than the weights stored) before anything is built from it,
then rebuilds each estimator, rebuilds its Keras network in code and reads only
the weight arrays (HDF5 datasets) of the ``.keras`` member into it. Nothing in
the file is unpickled, imported, deserialised as a Keras object or otherwise
executed. What parses the untrusted bytes: ``zipfile``, ``json`` and, for the
weights, h5py and the HDF5 library.

The checksums catch damage, not forgery (a forger recomputes them); everything
that matters for safety is checked on the content itself.
"""

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from skmnist._classifier import MNISTClassifier
from skmnist._files import write_atomically
from skmnist._scaler import PixelScaler
from skmnist._version import __version__

FORMAT_NAME = "skmnist"
FORMAT_VERSION = 1

_MANIFEST = "manifest.json"
_ESTIMATOR = "estimator.json"
# A JSON member larger than this is not one skmnist wrote (the estimator
# description is a few kilobytes plus the training history).
_MAX_JSON_BYTES = 64 * 2**20
# Limits on the Keras members, checked (from the zip directory) before anything
# is extracted, so that a crafted file cannot fill the disk: the size of one
# member, of all members together, and how much better than this ratio a member
# over 1 MiB may compress (skmnist stores the .keras members uncompressed; a
# "zip bomb" expands a thousandfold).
_MAX_MODEL_BYTES = 2**30
_MAX_TOTAL_BYTES = 2 * 2**30
_MAX_COMPRESSION_RATIO = 50
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = (b"\x80", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"x")  # joblib's too

_TAGS = ("__tuple__", "__dict__", "__ndarray__")
# Dtype kinds stored as JSON numbers, booleans or strings, exactly.
_ARRAY_KINDS = "biufUO"

_JOBLIB_HINT = (
    "To keep such an estimator, pickle it with joblib.dump instead (and load only "
    "files you trust: unpickling runs code from the file)."
)


class ModelFileError(ValueError):
    """The file is not an skmnist model file, or it is corrupt or was modified."""


# -- public functions ----------------------------------------------------------


def save(estimator: BaseEstimator, path: str | os.PathLike) -> None:
    """Save an skmnist estimator to ``path`` without pickle.

    Supports :class:`MNISTClassifier`, :class:`PixelScaler` and pipelines of them
    such as :func:`make_mnist_pipeline`'s, fitted or not (an unfitted estimator is
    saved as its hyper-parameters). The file is written to exactly ``path``,
    atomically: a temporary file beside it is renamed over ``path`` once
    complete, so an interrupted save leaves any previous file intact.

    Parameters
    ----------
    estimator : MNISTClassifier, PixelScaler or Pipeline of them
        The estimator to save.
    path : str or path-like
        The file to write, conventionally with the ``.skmnist`` extension.

    Raises
    ------
    TypeError
        If ``estimator`` is of another type, or has a hyper-parameter that is not
        JSON data (numbers, strings, booleans, None, lists and dicts of them),
        such as a list of Keras callbacks or an optimizer instance.
    ValueError
        If :func:`load` would refuse the file: a hyper-parameter it refuses
        (such as a pipeline's ``memory``, a folder of pickles) or a fitted
        network that no longer matches the hyper-parameters (such as
        ``hidden_units`` changed by ``set_params`` after ``fit``).

    See Also
    --------
    load : Load an estimator saved by this function.

    Examples
    --------
    >>> import tempfile, os
    >>> import skmnist
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "clf.skmnist")
    >>> skmnist.save(skmnist.MNISTClassifier(hidden_units=64), path)
    >>> skmnist.load(path).hidden_units
    64
    """
    models: dict[str, object] = {}
    # Everything that can be refused is refused here, before any file is touched:
    # what cannot be described, and what load would refuse, by load's own checks.
    document = _describe(estimator, models, where=type(estimator).__name__)
    _check_loadable(document)
    write_atomically(
        path, lambda temporary: _write_archive(temporary, document, models)
    )


def load(path: str | os.PathLike) -> BaseEstimator:
    """Load an estimator saved by :func:`save`.

    Reads JSON and weight arrays only: nothing in the file is unpickled,
    imported, deserialised as a Keras object or run, unlike unpickling a joblib
    file. Every hyper-parameter is checked before anything is built from it
    (Keras optimizers, losses, activations and metrics by name only; routed
    parameters as plain values; scikit-learn's constraints), and the sizes the
    archive declares, and the network size the hyper-parameters imply, are
    checked before anything is extracted or allocated. The bytes themselves are
    parsed by Python's ``zipfile`` and ``json`` and, for the weights, by h5py and
    HDF5: those libraries are what an untrusted file can reach.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`skmnist.save`.

    Returns
    -------
    estimator : MNISTClassifier, PixelScaler or Pipeline
        The estimator, fitted if it was fitted when saved. Its predictions are
        identical to the saved estimator's; it can be refitted, warm-started and
        cloned.

    Raises
    ------
    ValueError
        If the file is not an skmnist model file (for example a joblib pickle),
        is truncated or corrupt, was modified after saving, was written by a
        newer version of the format, is too large, or describes invalid
        hyper-parameters (the message names the parameter) or a network larger
        than its weights.

    Examples
    --------
    >>> import skmnist
    >>> pipeline = skmnist.load("mnist_pipeline.skmnist")  # doctest: +SKIP
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="skmnist-load-") as folder:
        document, model_files = _read_archive(path, Path(folder))
        try:
            return _rebuild(document, model_files, where="estimator")
        except ModelFileError as error:
            raise ModelFileError(f"{path}: {error}") from None
        except RecursionError:
            raise ModelFileError(
                f"{path}: invalid estimator description (nested too deeply)."
            ) from None
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            # The checksums match, so the file was written like this on purpose
            # or by a broken writer; either way it describes no valid estimator.
            raise ModelFileError(
                f"{path}: invalid estimator description ({type(error).__name__}: "
                f"{error})."
            ) from None


def is_skmnist_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a file of this format (a zip archive), by content.

    joblib and pickle files never are zip archives; a zip archive that is not a
    valid skmnist file is then refused by :func:`load` with a clear message.
    """
    with open(path, "rb") as file:
        return file.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC


# -- describing estimators as JSON ---------------------------------------------

# Fitted attributes of MNISTClassifier stored in the file. The others are rebuilt
# on load: the Keras model (from the hyper-parameters, then its weights are
# read), the label and feature encoders (from classes_ and n_features_in_, as
# fit builds them), the metadata the label encoder provides and the callbacks.
_CLASSIFIER_STORED = (
    "classes_",
    "n_features_in_",
    "feature_names_in_",
    "target_type_",
    "history_",
    "_random_state",
    "_seed",
)
_CLASSIFIER_REBUILT = (
    "model_",
    "target_encoder_",
    "feature_encoder_",
    "n_classes_",
    "n_outputs_",
    "n_outputs_expected_",
    "_fit_callbacks",
    "_predict_callbacks",
)
_SCALER_STORED = ("n_features_in_", "image_shape_", "feature_names_in_")
# Set by __init__ from the hyper-parameters, or by set_output.
_INIT_STATE = ("_user_params", "_sklearn_output_config")


def _describe(estimator, models: dict, where: str) -> dict:
    kind = type(estimator)
    if kind is Pipeline:
        return _describe_pipeline(estimator, models, where)
    if kind is MNISTClassifier:
        fitted = "model_" in vars(estimator)
        stored, rebuilt = _CLASSIFIER_STORED, _CLASSIFIER_REBUILT
    elif kind is PixelScaler:
        fitted = "image_shape_" in vars(estimator)
        stored, rebuilt = _SCALER_STORED, ()
    else:
        raise TypeError(
            "skmnist.save saves MNISTClassifier, PixelScaler and pipelines of them "
            f"(such as make_mnist_pipeline's), not {kind.__name__} ({where}). "
            + _JOBLIB_HINT
        )
    params = estimator.get_params(deep=False)
    node = {
        "class": kind.__name__,
        "params": {
            name: _to_json(value, f"hyper-parameter {name!r} of {where}")
            for name, value in params.items()
        },
        "output_config": _to_json(
            vars(estimator).get("_sklearn_output_config"), f"set_output of {where}"
        ),
        "fitted": None,
    }
    if not fitted:
        # An unfitted estimator is its hyper-parameters; leftovers of a failed fit
        # are dropped.
        return node
    unknown = set(vars(estimator)) - {*params, *_INIT_STATE, *stored, *rebuilt}
    if unknown:
        raise TypeError(
            f"{where} has attributes that skmnist.save does not know how to store "
            f"safely: {', '.join(sorted(unknown))}. " + _JOBLIB_HINT
        )
    attributes = {
        name: vars(estimator)[name] for name in stored if name in vars(estimator)
    }
    node["fitted"] = _to_json(attributes, f"the fitted attributes of {where}")
    if kind is MNISTClassifier:
        _check_network_matches(estimator, where)
        member = f"models/{len(models)}.keras"
        models[member] = estimator.model_
        node["model"] = {
            "member": member,
            # Keras's file omits the states of seed generators (dropout's), which
            # continued training needs to replay the same dropout masks.
            "non_trainable_variables": [
                _array_to_json(np.asarray(variable.value), where)
                for variable in estimator.model_.non_trainable_variables
            ],
        }
    return node


def _check_network_matches(clf: MNISTClassifier, where: str) -> None:
    """The file stores hyper-parameters and weights, and load builds the network
    from the hyper-parameters: refuse to save a network they no longer describe
    (``set_params`` after ``fit``), which would load as another model or not at
    all."""
    import keras

    layers = {layer.name: layer for layer in clf.model_.layers}
    hidden = layers.get("hidden")
    dropout = layers.get("dropout")
    changed = []
    if hidden is None or hidden.units != clf.hidden_units:
        changed.append("hidden_units")
    elif hidden.activation is not keras.activations.get(clf.activation):
        changed.append("activation")
    if (dropout.rate if dropout is not None else 0) != clf.dropout:
        changed.append("dropout")
    if changed:
        raise ValueError(
            f"Cannot save {where}: its fitted network no longer matches its "
            f"hyper-parameters ({', '.join(changed)} changed after fit), so the "
            "file would load as another model. Refit it, or set them back to the "
            "values it was fitted with."
        )


def _check_loadable(document: dict) -> None:
    """Run load's checks of the estimator description on ``document`` as load
    will read it, so that save never writes a file that load refuses."""
    try:
        _rebuild(json.loads(json.dumps(document)), None, where="estimator")
    except ModelFileError as error:
        raise ValueError(
            f"Cannot save: skmnist.load would refuse the file: {error} "
            "Change the estimator, or use joblib.dump."
        ) from None


def _describe_pipeline(pipeline: Pipeline, models: dict, where: str) -> dict:
    params = pipeline.get_params(deep=False)
    unknown = set(vars(pipeline)) - {*params, *_INIT_STATE}
    if unknown:
        raise TypeError(
            f"{where} has attributes that skmnist.save does not know how to store "
            f"safely: {', '.join(sorted(unknown))}. " + _JOBLIB_HINT
        )
    steps = params.pop("steps")
    return {
        "class": "Pipeline",
        "params": _to_json(params, f"the parameters of {where}"),
        "output_config": _to_json(
            vars(pipeline).get("_sklearn_output_config"), f"set_output of {where}"
        ),
        "steps": [
            [name, _describe(step, models, where=f"step {name!r} of {where}")]
            for name, step in steps
        ],
    }


def _to_json(value, where: str):
    """Encode ``value`` as JSON data that :func:`_from_json` decodes to an equal
    value of the same type: tuples, dicts with non-string keys and arrays are
    tagged (a one-key object such as ``{"__tuple__": [...]}``), because plain
    JSON would turn them into lists and string keys."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, list):
        return [_to_json(item, where) for item in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(item, where) for item in value]}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and not _looks_tagged(value):
            return {key: _to_json(item, where) for key, item in value.items()}
        return {
            "__dict__": [
                [_to_json(key, where), _to_json(item, where)]
                for key, item in value.items()
            ]
        }
    if isinstance(value, np.ndarray):
        return {"__ndarray__": _array_to_json(value, where)}
    raise TypeError(
        f"Cannot save {where}: {type(value).__name__} {_short_repr(value)} is not "
        "JSON data. skmnist.save stores numbers, strings, booleans, None, lists, "
        "dicts and NumPy arrays of them only. " + _JOBLIB_HINT
    )


def _array_to_json(array: np.ndarray, where: str) -> dict:
    if array.dtype.kind not in _ARRAY_KINDS:
        raise TypeError(
            f"Cannot save {where}: an array of dtype {array.dtype} is not supported. "
            + _JOBLIB_HINT
        )
    values = array.ravel().tolist()
    if array.dtype.kind == "O":
        values = [_to_json(item, where) for item in values]
        if any(isinstance(item, list | dict) for item in values):
            raise TypeError(
                f"Cannot save {where}: an object array holding containers. "
                + _JOBLIB_HINT
            )
    return {"dtype": array.dtype.str, "shape": list(array.shape), "values": values}


def _looks_tagged(data: dict) -> bool:
    return len(data) == 1 and next(iter(data)) in _TAGS


def _short_repr(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- writing the archive -------------------------------------------------------


def _write_archive(path: str, document: dict, models: dict) -> None:
    import keras

    checksums = {}
    with (
        tempfile.TemporaryDirectory(prefix="skmnist-save-") as folder,
        zipfile.ZipFile(path, "w") as archive,
    ):
        estimator_json = json.dumps(document, indent=1).encode()
        archive.writestr(_ESTIMATOR, estimator_json, zipfile.ZIP_DEFLATED)
        checksums[_ESTIMATOR] = hashlib.sha256(estimator_json).hexdigest()
        for member, model in models.items():
            # Keras names the format by the file extension; the file is copied
            # into the archive as is (it is a zip itself: no point compressing).
            keras_file = Path(folder, "model.keras")
            keras.saving.save_model(model, keras_file)
            archive.write(keras_file, member, zipfile.ZIP_STORED)
            checksums[member] = _sha256_of_file(keras_file)
            keras_file.unlink()
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "skmnist_version": __version__,
            "keras_version": keras.__version__,
            "sha256": checksums,
        }
        archive.writestr(
            _MANIFEST, json.dumps(manifest, indent=1).encode(), zipfile.ZIP_DEFLATED
        )


def _sha256_of_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- reading the archive -------------------------------------------------------


def _read_archive(path: Path, folder: Path) -> tuple[dict, dict]:
    """Check the manifest and every checksum; return the estimator description
    and the extracted Keras files by member name."""
    if not path.is_file():
        raise FileNotFoundError(f"no skmnist model file at {path}")
    with open(path, "rb") as file:
        head = file.read(len(_ZIP_MAGIC))
    if head != _ZIP_MAGIC:
        what = (
            "it looks like a joblib or pickle file: load it with joblib.load, and "
            "only if you trust it, since unpickling runs code from the file"
            if head.startswith(_PICKLE_MAGIC)
            else "it is not a zip archive"
        )
        raise ModelFileError(f"{path} is not an skmnist model file: {what}.")
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_members(archive, path, folder)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        # zipfile finds a truncated or damaged archive (bad CRC, missing central
        # directory) here.
        raise ModelFileError(
            f"{path} is a damaged or truncated skmnist model file: {error}"
        ) from None


def _read_members(archive: zipfile.ZipFile, path: Path, folder: Path):
    names = archive.namelist()
    if _MANIFEST not in names:
        raise ModelFileError(
            f"{path} is a zip archive but not an skmnist model file: it has no "
            f"{_MANIFEST}."
        )
    manifest = _parse_json(_read_small(archive, _MANIFEST), f"{path}: {_MANIFEST}")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{path} is not an skmnist model file: its {_MANIFEST} does not name "
            f"the {FORMAT_NAME!r} format."
        )
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: invalid format version {version!r}.")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by skmnist {manifest.get('skmnist_version', '?')} "
            f"in format version {version}; this skmnist {__version__} reads "
            f"versions up to {FORMAT_VERSION}. Upgrade skmnist to load it."
        )
    checksums = manifest.get("sha256")
    expected = set(names) - {_MANIFEST}
    if (
        not isinstance(checksums, dict)
        or set(checksums) != expected
        or len(names) != len(set(names))
        or _ESTIMATOR not in expected
    ):
        raise ModelFileError(
            f"{path}: the archive's members do not match its manifest; the file "
            "was modified or is damaged."
        )
    infos = [archive.getinfo(name) for name in sorted(expected)]
    if sum(info.file_size for info in infos) > _MAX_TOTAL_BYTES:
        raise ModelFileError(f"{path}: the archive is too large for an skmnist file.")
    for info in infos:
        if info.filename != _ESTIMATOR:
            _check_model_size(info, path)
    model_files = {}
    estimator_json = b""
    for name in sorted(expected):
        if name == _ESTIMATOR:
            estimator_json = _read_small(archive, name)
            digest = hashlib.sha256(estimator_json).hexdigest()
        else:
            # Extract under a name of ours: member names never become paths.
            target = folder / f"{len(model_files)}.keras"
            with archive.open(name) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            digest = _sha256_of_file(target)
            model_files[name] = target
        if digest != checksums[name]:
            raise ModelFileError(
                f"{path}: checksum mismatch for {name}; the file was modified or "
                "is damaged."
            )
    return _parse_json(estimator_json, f"{path}: {_ESTIMATOR}"), model_files


def _check_model_size(info: zipfile.ZipInfo, path: Path) -> None:
    if info.file_size > _MAX_MODEL_BYTES:
        raise ModelFileError(
            f"{path}: {info.filename} is too large for an skmnist model file "
            f"({info.file_size} bytes, at most {_MAX_MODEL_BYTES})."
        )
    if (
        info.file_size > 2**20
        and info.file_size > _MAX_COMPRESSION_RATIO * info.compress_size
    ):
        raise ModelFileError(
            f"{path}: {info.filename} expands {info.file_size} bytes from "
            f"{info.compress_size}: not a file skmnist wrote."
        )


def _read_small(archive: zipfile.ZipFile, name: str) -> bytes:
    if archive.getinfo(name).file_size > _MAX_JSON_BYTES:
        raise ModelFileError(f"{name} is too large for an skmnist model file.")
    return archive.read(name)


def _parse_json(data: bytes, where: str):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{where} is not valid JSON: {error}") from None
    except RecursionError:
        raise ModelFileError(f"{where} is nested too deeply.") from None


# -- rebuilding estimators -----------------------------------------------------


def _rebuild(node, model_files: dict | None, where: str):
    """The estimator that ``node`` describes; with ``model_files=None``, only
    the checks that need no Keras model (save runs them on what it writes)."""
    node = _expect(node, dict, where)
    kind = node.get("class")
    if kind == "Pipeline":
        steps = [
            (_expect(name, str, where), _rebuild(step, model_files, f"step {name!r}"))
            for name, step in (
                _expect(pair, list, where)
                for pair in _expect(node["steps"], list, where)
            )
        ]
        estimator = _checked(Pipeline(steps, **_params(node, kind, where)), where)
    elif kind == "PixelScaler":
        estimator = _checked(PixelScaler(**_params(node, kind, where)), where)
        if node.get("fitted") is not None:
            attributes = _fitted(node, _SCALER_STORED, where)
            _check_scaler_attributes(attributes, where)
            vars(estimator).update(attributes)
    elif kind == "MNISTClassifier":
        estimator = _checked(MNISTClassifier(**_params(node, kind, where)), where)
        if node.get("fitted") is None:
            pass
        elif model_files is None:  # checking what save is about to write
            _check_classifier_attributes(
                _fitted(node, _CLASSIFIER_STORED, where), where
            )
            for state in _expect(node["model"], dict, where)["non_trainable_variables"]:
                _array_from_json(_expect(state, dict, where), where)
        else:
            _restore_classifier(estimator, node, model_files, where)
    else:
        raise ModelFileError(f"{where}: unknown estimator class {kind!r}.")
    output_config = _from_json(node.get("output_config"), where)
    if output_config is not None:
        output_config = _expect(output_config, dict, where)
        if not set(output_config) <= {"transform"} or not all(
            value in _OUTPUT_CONTAINERS for value in output_config.values()
        ):
            raise ModelFileError(f"{where}: invalid set_output configuration.")
        estimator._sklearn_output_config = output_config
    return estimator


_OUTPUT_CONTAINERS = ("default", "pandas", "polars")
# The constructor's parameters of each class, and the types allowed for those
# that scikit-learn's parameter constraints do not check tightly enough. Keras
# turns strings into objects by looking them up among its own names; anything
# else (a dict naming a class or function, a list of them) it deserialises, which
# must never happen to data from a file. Names of Keras objects are identifiers.
_KERAS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PIPELINE_PARAMS = ("memory", "transform_input", "verbose")


def _params(node: dict, kind: str, where: str) -> dict:
    params = _expect(_from_json(node.get("params"), where), dict, where)
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
    if kind == "MNISTClassifier":
        _check_classifier_params(params, where)
    elif kind == "Pipeline":
        unknown = set(params) - set(_PIPELINE_PARAMS)
        if unknown:
            raise ModelFileError(f"{where}: unknown parameters {sorted(unknown)}.")
        # memory is a folder for joblib's cache, which stores pickles.
        if params.get("memory") is not None:
            raise ModelFileError(
                f"{where}: parameter 'memory' must be None (skmnist files never "
                "name a joblib cache folder, which holds pickles)."
            )
        transform_input = params.get("transform_input")
        if transform_input is not None and not _is_list_of_str(transform_input):
            raise ModelFileError(
                f"{where}: parameter 'transform_input' must be None or a list of "
                "strings."
            )
    return params


def _check_classifier_params(params: dict, where: str) -> None:
    known = MNISTClassifier().get_params(deep=False)
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
        elif name in ("run_eagerly", "warm_start", "shuffle"):
            if not isinstance(value, bool):
                raise ModelFileError(f"{what} must be a boolean.")
        elif name == "validation_batch_size":
            if value is not None and not (
                isinstance(value, int) and not isinstance(value, bool) and value >= 1
            ):
                raise ModelFileError(f"{what} must be None or a positive integer.")
        elif name == "random_state":
            if value is not None and not (
                isinstance(value, int) and not isinstance(value, bool)
            ):
                raise ModelFileError(f"{what} must be None or an integer.")
        elif name == "class_weight":
            if isinstance(value, dict) and not all(
                _is_scalar(key)
                and isinstance(weight, int | float)
                and not isinstance(weight, bool)
                for key, weight in value.items()
            ):
                raise ModelFileError(f"{what} must map class labels to numbers.")
        elif name not in known:
            # Routed (optimizer__learning_rate, fit__..., loss__...) or other
            # keyword arguments, which scikeras stores as attributes: plain
            # values only, and never in place of a method or property.
            if not _is_scalar(value):
                raise ModelFileError(
                    f"{what} must be a number, string, boolean or None."
                )
            if hasattr(MNISTClassifier, name):
                raise ModelFileError(f"{where}: invalid parameter name {name!r}.")


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _is_list_of_str(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _checked(estimator: BaseEstimator, where: str) -> BaseEstimator:
    """Run scikit-learn's parameter validation (types and ranges) now, at load
    time, rather than at the next fit."""
    try:
        estimator._validate_params()
    except (ValueError, TypeError) as error:
        message = str(error).splitlines()[0]
        raise ModelFileError(f"{where}: invalid hyper-parameter: {message}") from None
    return estimator


def _fitted(node: dict, allowed: tuple, where: str) -> dict:
    attributes = _expect(_from_json(node["fitted"], where), dict, where)
    unknown = set(attributes) - set(allowed)
    if unknown:
        raise ModelFileError(f"{where}: unknown fitted attributes {sorted(unknown)}.")
    return attributes


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
            f"{where}: image_shape_ {_short_repr(shape)} is not a shape of "
            f"{n_features} pixels."
        )
    _check_feature_names(attributes, n_features, where)


def _check_classifier_attributes(attributes: dict, where: str) -> None:
    """The classifier's fitted attributes other than classes_ (checked by
    rebuilding its label encoder), as fit sets them."""
    n_features = _positive_int(attributes.get("n_features_in_"), where)
    _check_feature_names(attributes, n_features, where)
    # fit takes 1-D labels only, which type_of_target calls one of these.
    if attributes.get("target_type_", "multiclass") not in ("binary", "multiclass"):
        raise ModelFileError(
            f"{where}: invalid target_type_ {_short_repr(attributes['target_type_'])}."
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


def _positive_int(value, where: str) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise ModelFileError(
            f"{where}: n_features_in_ must be a positive integer, got "
            f"{_short_repr(value)}."
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


def _restore_classifier(clf: MNISTClassifier, node, model_files, where) -> None:
    attributes = _fitted(node, _CLASSIFIER_STORED, where)
    _check_classifier_attributes(attributes, where)
    classes = _expect(attributes.get("classes_"), np.ndarray, f"{where}: classes_")
    vars(clf).update(attributes)
    _expect(clf._seed, int, f"{where}: _seed")
    if clf._random_state is not None:
        _expect(clf._random_state, int, f"{where}: _random_state")
    # What fit builds from the training data, rebuilt from classes_ and
    # n_features_in_: the label encoder keeps only the categories it found. fit
    # lets it find them (sorted, in the labels' dtype); partial_fit(classes=...)
    # gives them, in the order given.
    try:
        found = np.array_equal(np.unique(classes), classes)
    except TypeError:  # unorderable object labels
        found = False
    clf.classes_ = None if found else classes
    clf.target_encoder_ = clf.target_encoder.fit(classes)
    vars(clf).update(getattr(clf.target_encoder_, "get_metadata", dict)())
    if clf.classes_.dtype != classes.dtype or not np.array_equal(clf.classes_, classes):
        raise ModelFileError(f"{where}: inconsistent classes_.")
    n_features = clf.n_features_in_
    description = _expect(node.get("model"), dict, where)
    member = description.get("member")
    if member not in model_files:
        raise ModelFileError(f"{where}: missing Keras model {member!r}.")
    # Before anything is allocated for the network: its weights are in the
    # member, so hyper-parameters that imply more weight bytes than the member
    # holds were forged (a huge hidden_units would exhaust memory).
    n_outputs = 1 if clf._binary_output() else clf.n_classes_
    implied = 4 * (  # float32
        (n_features + 1) * clf.hidden_units + (clf.hidden_units + 1) * n_outputs
    )
    size = model_files[member].stat().st_size
    if implied > size:
        raise ModelFileError(
            f"{where}: the hyper-parameters describe a network of {implied} weight "
            f"bytes, more than the {size}-byte Keras model {member} holds; the "
            "file was modified or is damaged."
        )
    clf.feature_encoder_ = clf.feature_encoder.fit(
        np.zeros((1, n_features), dtype=np.float32)
    )
    clf._initialize_callbacks()
    # Build with the stored seed rather than a fresh one: an unseeded build
    # would draw from NumPy's global generator. The weights are overwritten.
    random_state = clf._random_state
    clf._random_state = clf._seed
    try:
        clf.model_ = clf._build_keras_model()
    except Exception as error:
        raise ModelFileError(f"{where}: cannot rebuild the network: {error}") from None
    finally:
        clf._random_state = random_state
    _load_weights(clf.model_, description, model_files[member], where)


def _load_weights(model, description: dict, keras_file: Path, where: str) -> None:
    try:
        # Reads the weight arrays only; the file's Keras config is never parsed.
        model.load_weights(keras_file)
    except Exception as error:
        raise ModelFileError(
            f"{where}: the Keras weights do not fit the network the "
            f"hyper-parameters describe: {error}"
        ) from None
    states = _expect(description.get("non_trainable_variables"), list, where)
    variables = model.non_trainable_variables
    if len(states) != len(variables):
        raise ModelFileError(f"{where}: wrong number of non-trainable variables.")
    for variable, state in zip(variables, states, strict=True):
        value = _array_from_json(_expect(state, dict, where), where)
        if value.shape != tuple(variable.shape):
            raise ModelFileError(f"{where}: wrong shape of {variable.path}.")
        variable.assign(value.astype(variable.dtype))


def _from_json(data, where: str):
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [_from_json(item, where) for item in data]
    if isinstance(data, dict) and not _looks_tagged(data):
        return {key: _from_json(item, where) for key, item in data.items()}
    if isinstance(data, dict):
        ((tag, content),) = data.items()
        if tag == "__tuple__":
            return tuple(
                _from_json(item, where) for item in _expect(content, list, where)
            )
        if tag == "__dict__":
            pairs = [
                _expect(pair, list, where) for pair in _expect(content, list, where)
            ]
            if any(len(pair) != 2 for pair in pairs):
                raise ModelFileError(f"{where}: malformed dict.")
            try:
                return {
                    _from_json(key, where): _from_json(item, where)
                    for key, item in pairs
                }
            except TypeError:  # an unhashable key
                raise ModelFileError(f"{where}: malformed dict.") from None
        if tag == "__ndarray__":
            return _array_from_json(_expect(content, dict, where), where)
    raise ModelFileError(f"{where}: unexpected JSON value {_short_repr(data)}.")


def _array_from_json(data: dict, where: str) -> np.ndarray:
    try:
        dtype = _declared_dtype(data["dtype"], where)
        shape = tuple(_expect(size, int, where) for size in data["shape"])
        values = _expect(data["values"], list, where)
    except (KeyError, TypeError) as error:
        raise ModelFileError(f"{where}: malformed array: {error!r}") from None
    if any(isinstance(item, list | dict) for item in values):
        raise ModelFileError(f"{where}: malformed array: nested values.")
    _check_array_size(dtype, shape, values, where)
    try:
        array = np.empty(len(values), dtype=dtype)
        array[:] = values
        return array.reshape(shape)
    except (TypeError, ValueError, OverflowError) as error:
        raise ModelFileError(f"{where}: malformed array: {error}") from None


# What an array's "dtype" may say: a byte order, a kind of _ARRAY_KINDS and an
# item size; never NumPy's richer syntax (structured or sub-array dtypes).
_DTYPE = re.compile(r"[<>|=]?[" + _ARRAY_KINDS + r"][0-9]{0,10}")
# Arrays whose declared storage is at most this size are allocated as declared;
# a larger one must need its declared string width (a forged '<U50000000' of ten
# names would take 2 GB for a few bytes of JSON).
_SMALL_ARRAY_BYTES = 2**20
_MAX_ARRAY_BYTES = 2**30
_MAX_DIMENSIONS = 32


def _declared_dtype(text, where: str) -> np.dtype:
    if not (isinstance(text, str) and _DTYPE.fullmatch(text)):
        raise ModelFileError(f"{where}: unsupported array dtype {_short_repr(text)}.")
    try:
        return np.dtype(text)
    except TypeError:
        raise ModelFileError(f"{where}: unsupported array dtype {text!r}.") from None


def _check_array_size(dtype: np.dtype, shape: tuple, values: list, where: str):
    """Refuse, before anything is allocated, an array whose declared shape or
    dtype does not match the values the file holds, or that is too large."""
    if len(shape) > _MAX_DIMENSIONS or any(size < 0 for size in shape):
        raise ModelFileError(f"{where}: invalid array shape {_short_repr(shape)}.")
    if math.prod(shape) != len(values):
        raise ModelFileError(
            f"{where}: an array of shape {_short_repr(shape)} declared with "
            f"{len(values)} values; the file was modified or is damaged."
        )
    nbytes = len(values) * dtype.itemsize
    if nbytes > _MAX_ARRAY_BYTES:
        raise ModelFileError(
            f"{where}: an array of {nbytes} bytes is too large for an skmnist "
            f"model file (at most {_MAX_ARRAY_BYTES})."
        )
    if dtype.kind == "U" and nbytes > _SMALL_ARRAY_BYTES:
        longest = max(
            (len(item) for item in values if isinstance(item, str)), default=0
        )
        if dtype.itemsize > 4 * max(longest, 1):
            raise ModelFileError(
                f"{where}: an array declared as {dtype.str} ({nbytes} bytes) holds "
                f"strings of at most {longest} characters; the file was modified "
                "or is damaged."
            )


def _expect(value, kind, where: str):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelFileError(
            f"{where}: expected {getattr(kind, '__name__', kind)}, got "
            f"{type(value).__name__}."
        )
    return value
