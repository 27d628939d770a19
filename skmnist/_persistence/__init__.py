"""Saving and loading skmnist estimators without pickle, and without HDF5.

A saved file is a zip archive (format version 2):

- ``manifest.json``: format name and version, the skmnist and Keras versions that
  wrote it, the SHA-256 of every other member, and the dtype and shape of every
  array member;
- ``estimator.json``: the estimator tree (a pipeline's steps), each estimator's
  hyper-parameters and fitted attributes, as JSON data;
- ``weights/<n>.npy``: the weight arrays of the fitted classifiers (network,
  dropout's random state and optimizer), one flat array each.

Loading parses only the zip directory, JSON and ``.npy`` headers and flat
arrays, checking every size before extracting or allocating anything (the zip
directory's before zipfile reads it, the weights' against the network that
``estimator.json`` describes before any is read) and every hyper-parameter
before building anything (:mod:`._archive`, :mod:`._codec`,
:mod:`._registry`). Nothing in the file is unpickled, imported, deserialised as
a Keras object or otherwise executed. Version 1 files, whose weights are a
Keras ``.keras`` member that h5py and the HDF5 library parse, load only when
the caller trusts them (:mod:`._keras_v1`).

The checksums catch damage, not forgery (a forger recomputes them); everything
that matters for safety is checked on the content itself.
"""

import contextlib
import functools
import json
import os
import tempfile
from pathlib import Path

from sklearn.base import BaseEstimator

from skmnist._files import write_atomically
from skmnist._persistence import _archive, _keras_v1
from skmnist._persistence._errors import ModelFileError, UntrustedFileError

# _registry, which imports Keras, is imported by save and load: checking a
# file's kind (is_skmnist_file), as the command line does before it imports
# TensorFlow, takes a fraction of a second.

__all__ = [
    "ModelFileError",
    "UntrustedFileError",
    "check_archive",
    "is_skmnist_file",
    "load",
    "save",
]


def save(estimator: BaseEstimator, path: str | os.PathLike) -> None:
    """Save an skmnist estimator to ``path`` without pickle.

    Supports :class:`MNISTClassifier`, :class:`PixelScaler`,
    :class:`DigitImagePreprocessor` and pipelines of them such as
    :func:`make_mnist_pipeline`'s, fitted or not (an unfitted estimator is saved
    as its hyper-parameters). The file is written to exactly ``path``,
    atomically: a temporary file beside it is renamed over ``path`` once
    complete, so an interrupted save leaves any previous file intact.

    Parameters
    ----------
    estimator : MNISTClassifier, PixelScaler, DigitImagePreprocessor or Pipeline
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
        network or optimizer that no longer matches the hyper-parameters (such
        as ``hidden_units`` or ``optimizer`` changed by ``set_params`` after
        ``fit``).

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
    from skmnist._persistence import _registry

    arrays: dict = {}
    # Everything that can be refused is refused here, before any file is touched:
    # what cannot be described, and what load would refuse, by load's own checks.
    document = _registry.describe(estimator, arrays, where=type(estimator).__name__)
    try:
        _registry.check(
            json.loads(json.dumps(document)),
            {name: array.nbytes for name, array in arrays.items()},
        )
    except ModelFileError as error:
        raise ValueError(
            f"Cannot save: skmnist.load would refuse the file: {error} "
            "Change the estimator, or use joblib.dump."
        ) from None
    write_atomically(
        path, lambda temporary: _archive.write_archive(temporary, document, arrays)
    )


def load(path: str | os.PathLike, *, trusted: bool = False) -> BaseEstimator:
    """Load an estimator saved by :func:`save`.

    Reads JSON and flat arrays only: nothing in the file is unpickled, imported,
    deserialised as a Keras object or run, unlike unpickling a joblib file. Every
    hyper-parameter is checked before anything is built from it (Keras
    optimizers, losses, activations and metrics by name only; routed parameters
    as plain values; scikit-learn's constraints), and the sizes the archive
    declares, the arrays' dtypes and shapes, and the network size the
    hyper-parameters imply are checked before anything is extracted or
    allocated. The bytes are parsed by Python's ``zipfile`` and ``json`` and by
    NumPy's ``.npy`` header reader, nothing else.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`skmnist.save`.
    trusted : bool, default=False
        Whether you trust the file's source. Needed only for files of format
        version 1 (skmnist 0.x before format version 2), whose weights are read
        by h5py and the HDF5 library, parsers not made for crafted files; files
        of the current format are safe to load from anyone and ignore it.

    Returns
    -------
    estimator : MNISTClassifier, PixelScaler, DigitImagePreprocessor or Pipeline
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
        than its weights; or if it is a version 1 file and ``trusted`` is False
        (the message says how to convert it).

    Examples
    --------
    >>> import skmnist
    >>> pipeline = skmnist.load("mnist_pipeline.skmnist")  # doctest: +SKIP
    """
    from skmnist._persistence import _registry

    path = Path(path)

    def check(document, sizes: dict[str, int]) -> None:
        with _description_errors(path):
            _registry.check(document, sizes)

    with tempfile.TemporaryDirectory(prefix="skmnist-load-") as folder:
        contents = _archive.read_archive(
            path, Path(folder), trusted=trusted, check=check
        )
        legacy = None
        if contents.version == 1:
            legacy = functools.partial(
                _keras_v1.load_weights, keras_files=contents.keras_files
            )
        with _description_errors(path):
            estimator = _registry.rebuild(
                contents.document, contents.arrays, where="estimator", legacy=legacy
            )
            # check refused these before anything was read; what rebuild left
            # is checked again in case the two ever disagree.
            if contents.arrays:
                raise ModelFileError(
                    f"arrays that no estimator uses: {sorted(contents.arrays)[:5]}; "
                    "the file was modified or is damaged."
                )
        return estimator


@contextlib.contextmanager
def _description_errors(path: Path):
    """Refuse what checking or rebuilding the estimator description raises, as
    a :class:`ModelFileError` naming the file."""
    try:
        yield
    except ModelFileError as error:
        # One line, whatever Keras or scikit-learn said in several.
        raise ModelFileError(f"{path}: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise ModelFileError(
            f"{path}: invalid estimator description (nested too deeply)."
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        # The checksums match, so the file was written like this on purpose or
        # by a broken writer; either way it describes no valid estimator.
        reason = " ".join(str(error).split())
        raise ModelFileError(
            f"{path}: invalid estimator description ({type(error).__name__}: {reason})."
        ) from None


def check_archive(path: str | os.PathLike, *, trusted: bool = False) -> None:
    """Refuse ``path`` at once if :func:`load` would refuse it from its zip
    structure and manifest alone, without reading its weights or importing
    Keras: a file that is no zip archive (naming a pickle as such), a truncated
    or damaged archive, one of another format or of a later format version,
    members or sizes other than its manifest declares, or one of format
    version 1 when ``trusted`` is False.

    Raises
    ------
    ModelFileError
        The file is not one :func:`load` reads, as above.
    UntrustedFileError
        It is of format version 1, and ``trusted`` is False.
    OSError
        It cannot be read.
    """
    _archive.check_archive(Path(path), trusted=trusted)


def is_skmnist_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a file of this format (a zip archive), by content.

    joblib and pickle files never are zip archives; a zip archive that is not a
    valid skmnist file is then refused by :func:`load` with a clear message.
    """
    with open(path, "rb") as file:
        return file.read(len(_archive.ZIP_MAGIC)) == _archive.ZIP_MAGIC
