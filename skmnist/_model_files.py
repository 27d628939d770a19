"""Model files as the command line reads and writes them.

Two formats exist: skmnist's pickle-free ``.skmnist`` files, safe from anyone,
and joblib pickles, whose loading runs code stored in the file. So a file is
unpickled only when its user says so by an explicit act, the ``--trust`` flag
(``trusted=True``), never because of its content or its name (a file's name is
whatever its sender chose): a ``.skmnist`` name (in any case) is only ever read
by :func:`skmnist.load`, a zip archive (what :func:`skmnist.save` writes) is
read by :func:`skmnist.load` whatever its name, and anything else is unpickled
only with ``trusted=True``. The ``.joblib`` suffix only chooses the format a
file is *written* in; a pickle is never written under the safe format's name.
``trusted=True`` also lets :func:`skmnist.load` read files of the old format
version 1, whose weights only HDF5 parses.

Every command that reads or writes model files (train, evaluate, predict,
search, export, serve) goes through :func:`load_model` and :func:`save_model`.
"""

import json
import os
import shlex
from pathlib import Path

SAFE_SUFFIX = ".skmnist"
PICKLE_SUFFIX = ".joblib"
FORMATS = ("skmnist", "joblib")


class UntrustedPickleError(ValueError):
    """A file that only unpickling could read, which its user did not trust."""


def output_format(path: str | os.PathLike, file_format: str | None) -> str:
    """The format to write ``path`` in: ``file_format``, else the one its name
    asks for (joblib for ``*.joblib``), else the pickle-free one.

    Raises
    ------
    ValueError
        If ``file_format`` is ``"joblib"`` for a ``.skmnist`` name: a pickle is
        never written under the safe format's name.
    """
    suffix = Path(path).suffix.lower()
    if file_format is None:
        return "joblib" if suffix == PICKLE_SUFFIX else "skmnist"
    if file_format not in FORMATS:
        raise ValueError(f"unknown model file format {file_format!r}")
    if file_format == "joblib" and suffix == SAFE_SUFFIX:
        raise ValueError(
            f"{path}: a {Path(path).suffix} file is always in the pickle-free "
            "format, never a joblib pickle; name the joblib file *.joblib or drop "
            "--format joblib"
        )
    return file_format


def save_model(model, path: str | os.PathLike, file_format: str | None) -> None:
    """Save ``model`` to ``path`` atomically, in :func:`output_format`'s format.

    An interrupted or failed save leaves any previous file at ``path`` intact.
    """
    import joblib

    from skmnist._files import write_atomically
    from skmnist._persistence import save

    path = Path(path)
    file_format = output_format(path, file_format)
    path.parent.mkdir(parents=True, exist_ok=True)
    if file_format == "skmnist":
        save(model, path)
    else:
        write_atomically(path, lambda temporary: joblib.dump(model, temporary))


def check_model_file(path: str | os.PathLike, trusted: bool = False) -> bool:
    """Check that ``path`` is a model file that :func:`load_model` may read,
    without reading its weights and without Keras.

    The command line calls it before it imports TensorFlow, so that a wrong
    path, a pickle given without ``--trust`` or a truncated model file is
    refused at once.

    Parameters
    ----------
    path : str or path-like
        The model file.
    trusted : bool, default=False
        The user trusts the file (see :func:`load_model`).

    Returns
    -------
    safe_format : bool
        Whether the file goes to the pickle-free loader (its name or its
        content says it is an skmnist file); otherwise it is unpickled.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, OSError
        No file at ``path`` (an empty path, a link to nothing), a folder, or a
        file that cannot be read.
    skmnist.ModelFileError
        A pipe, socket or device, a ``.skmnist`` name on a file that is no zip
        archive (a pickle, say), or a zip archive that
        :func:`skmnist.load` refuses from its structure and manifest alone
        (truncated or damaged, another format, a later format version).
    skmnist._persistence.UntrustedFileError
        The file is in format version 1, and ``trusted`` is False.
    UntrustedPickleError
        The file is not in the skmnist format, and ``trusted`` is False.
    """
    from skmnist._persistence import (
        ModelFileError,
        UntrustedFileError,
        check_archive,
        is_skmnist_file,
    )
    from skmnist.datasets._mnist import _why_missing

    if not os.fspath(path):  # Path("") would be this folder
        raise FileNotFoundError("no model file given: the path is empty")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a model file")
    if path.exists() and not path.is_file():
        # Never opened: a named pipe would wait for a writer for ever.
        raise ModelFileError(
            f"{path} is not a regular file (a pipe, socket or device), not a model file"
        )
    if not path.is_file():
        why = f": {_why_missing(path)}" if path.is_symlink() else ""
        raise FileNotFoundError(f"no model file at {path}{why}")
    # Never unpickled: a .skmnist name (that holds a pickle, say), or a zip
    # archive by content, which goes to the pickle-free loader only. What that
    # loader refuses from the archive's structure (no zip archive under the
    # safe name, a truncated file, another format) is refused here.
    if path.suffix.lower() == SAFE_SUFFIX or is_skmnist_file(path):
        try:
            check_archive(path, trusted=trusted)
        except UntrustedFileError as error:
            raise _needs_trust(error) from None
        return True
    if not trusted:
        # Whatever its name: the consent to run code is the user's, not the
        # file name its sender chose.
        raise UntrustedPickleError(
            f"{path} is not an skmnist model file but a pickle, or something "
            "else; pickles (such as 'skmnist train --format joblib' wrote) are "
            "loaded only with --trust, since unpickling runs code from the file. "
            "If you trust it, pass --trust, or convert it once to the safe "
            f"format: {_conversion_command(path)}"
        )
    return False


def _needs_trust(error):
    """``error``, an :class:`UntrustedFileError`, with the command line's how-to."""
    return type(error)(
        error.reason,
        "If you do, pass --trust, and save it again (skmnist.save) to "
        "convert it to the current format.",
    )


def _conversion_command(path: Path) -> str:
    """The shell command that converts the pickle at ``path`` to the safe
    format. The file's name is its sender's choice: quoted for Python (a JSON
    string is a Python string literal, in double quotes that read well inside
    the shell's single ones) and for the shell, so that pasting the command
    runs nothing the name holds."""
    load, save = (_literal(name) for name in (path, path.with_suffix(SAFE_SUFFIX)))
    code = f"import joblib, skmnist; skmnist.save(joblib.load({load}), {save})"
    return f"python -c {shlex.quote(code)}"


def _literal(path: Path) -> str:
    """``path`` as a Python string literal that survives the one-line message,
    which folds runs of spaces into one: then every space is escaped."""
    literal = json.dumps(str(path))
    return literal.replace(" ", "\\u0020") if "  " in literal else literal


def load_model(path: str | os.PathLike, trusted: bool = False):
    """Load a model file without unpickling anything the user did not trust.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`skmnist.save` (any name) or a joblib pickle.
    trusted : bool, default=False
        The user trusts the file (the ``--trust`` flag): unpickle it if it is
        not in the skmnist format (a ``.skmnist`` name is never unpickled, even
        so), and read an skmnist file of format version 1.

    Returns
    -------
    model : estimator
        What the file holds, unchecked (see :func:`check_digit_model`).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    UntrustedPickleError
        The file is not in the skmnist format, and ``trusted`` is False.
    skmnist._persistence.UntrustedFileError
        The file is in format version 1 and ``trusted`` is False.
    ValueError
        The file is damaged, forged or not a model file (the message says
        which); :class:`skmnist.ModelFileError` for skmnist files.
    """
    from skmnist._persistence import ModelFileError, UntrustedFileError, load

    safe_format = check_model_file(path, trusted)
    path = Path(path)
    if safe_format:
        try:
            return load(path, trusted=trusted)
        except UntrustedFileError as error:
            raise _needs_trust(error) from None
    import joblib

    try:
        return joblib.load(path)
    except Exception as error:  # unpickling garbage fails in many ways
        message = str(error).splitlines()[0] if str(error) else ""
        raise ModelFileError(
            f"{path} is neither an skmnist model file nor a readable joblib pickle "
            f"({type(error).__name__}: {message})"
        ) from None


def check_digit_model(model, path: str | os.PathLike, *, digit_labels: bool) -> None:
    """Check that ``model`` is a fitted classifier of 28x28 MNIST images.

    Parameters
    ----------
    model : object
        What :func:`load_model` returned.
    path : str or path-like
        The file it came from, for messages.
    digit_labels : bool
        Also require its classes to be the digits 0-9 (to score it on MNIST).

    Raises
    ------
    ValueError
        Naming what the file holds instead.
    """
    import numpy as np
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not (hasattr(model, "predict_proba") and hasattr(model, "get_params")):
        raise ValueError(
            f"{path} holds a {type(model).__name__}, not a scikit-learn classifier"
        )
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ValueError(
            f"{path} holds an unfitted {type(model).__name__}; train it first "
            "(skmnist train)"
        ) from None
    except TypeError as error:
        raise ValueError(f"{path} does not hold a usable model: {error}") from None
    try:
        # One blank image: what evaluate and predict feed, in miniature.
        model.predict_proba(np.zeros((1, 28, 28), dtype=np.uint8))
    except Exception as error:  # whatever the model's own checks raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"{path} holds a model that does not take 28x28 MNIST images: {message}"
        ) from None
    classes = getattr(model, "classes_", None)
    if digit_labels and not (
        classes is not None
        and np.asarray(classes).dtype.kind in "iu"
        and set(np.asarray(classes).tolist()) <= set(range(10))
    ):
        shown = np.asarray(classes).tolist() if classes is not None else None
        if shown is not None and len(shown) > 12:
            shown = [*shown[:12], "..."]
        raise ValueError(
            f"{path} holds a model whose classes are {shown}, not the digits 0-9 "
            "that MNIST's test labels are"
        )
