"""Loading MNIST from Keras's ``mnist.npz`` or the original IDX files."""

import gzip
import hashlib
import math
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

KERAS_MNIST_URL = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
)
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

#: sha256 of each array's C-contiguous bytes in genuine MNIST.
MNIST_ARRAY_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}

_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_UBYTE = 0x08


class MNISTFormatError(ValueError):
    """A file that should hold MNIST-format data does not."""


def load_mnist(path=None, *, data_home=None, download=True):
    """Load MNIST as ``keras.datasets.mnist.load_data()`` returns it.

    Looks, in order, at ``path``; the ``SKMNIST_DATA`` environment variable;
    ``data_home``; Keras's cache (``~/.keras/datasets/mnist.npz``); and, when
    ``download`` is true, downloads Keras's ``mnist.npz`` into that cache, checking
    its published sha256.

    Parameters
    ----------
    path : str or path-like, default=None
        A Keras-layout ``.npz`` file, or a folder holding ``mnist.npz`` or the
        four LeCun IDX files (``train-images-idx3-ubyte`` etc., optionally
        gzipped). ``SKMNIST_DATA`` may name the same.
    data_home : str or path-like, default=None
        A folder holding ``mnist.npz`` or the IDX files.
    download : bool, default=True
        Whether to download when no local copy is found. ``False`` never touches
        the network.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of ndarray
        uint8 images of shape (n, 28, 28) and uint8 labels 0-9.

    Raises
    ------
    FileNotFoundError
        ``path`` or ``SKMNIST_DATA`` names nothing (no download is attempted
        then), or there is no local copy and ``download=False`` (or the download
        failed).
    ValueError
        A file is truncated, corrupt or not in MNIST format; the message names it.

    Warns
    -----
    UserWarning
        The data is in MNIST format but is not genuine MNIST.

    Examples
    --------
    >>> from skmnist.datasets import load_mnist
    >>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
    >>> x_train.shape, x_test.shape  # doctest: +SKIP
    ((60000, 28, 28), (10000, 28, 28))
    """
    source = _find_local_copy(path, data_home)
    if source is None:
        if not download:
            raise FileNotFoundError(
                "MNIST was not found and download=False. Put Keras's mnist.npz at "
                f"{_keras_cache_file()} (or set SKMNIST_DATA to its path), or pass "
                "path= a file or a folder of the four IDX files."
            )
        source = _download_keras_mnist()
    arrays = _read(source)
    _validate(arrays, source)
    _warn_unless_genuine(arrays, source)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _find_local_copy(path, data_home):
    if path is not None:
        path = Path(path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"No MNIST data at {path}: no such file or folder.")
        return _in_folder(path)
    variable = os.environ.get("SKMNIST_DATA")
    if variable:
        # Set on purpose: a missing file is a mistake to report, not a reason
        # to download.
        candidate = Path(variable).expanduser()
        if not candidate.exists():
            raise FileNotFoundError(
                f"SKMNIST_DATA is set to {variable}, but there is no such file or "
                "folder. Point it at Keras's mnist.npz, or unset it."
            )
        return _in_folder(candidate)
    if data_home:
        candidate = Path(data_home).expanduser()
        if candidate.exists():
            return _in_folder(candidate)
    cached = _keras_cache_file()
    return cached if cached.is_file() else None


def _input_files(path=None) -> list[Path]:
    """Every file :func:`load_mnist` (``path``, no ``data_home``) might read,
    found without reading any, for refusing an output that would overwrite one:
    the source's mnist.npz or IDX files, and Keras's cache."""
    files = [_keras_cache_file()]
    try:
        source = _find_local_copy(path, None)
    except OSError:  # reported when the data is loaded
        return files
    if source is not None and source.is_dir():
        files.append(source / "mnist.npz")
        files += [
            source / f"{name}{gz}" for name in _IDX_FILES.values() for gz in ("", ".gz")
        ]
    elif source is not None:
        files.append(source)
    return files


def _in_folder(path: Path) -> Path:
    """A folder's ``mnist.npz`` if it holds one, else the path itself (a file,
    or a folder of IDX files)."""
    if path.is_dir() and (path / "mnist.npz").is_file():
        return path / "mnist.npz"
    return path


def _keras_cache_file() -> Path:
    keras_home = os.environ.get("KERAS_HOME", Path.home() / ".keras")
    return Path(keras_home) / "datasets" / "mnist.npz"


def _download_keras_mnist() -> Path:
    from keras.utils import get_file

    try:
        return Path(
            get_file(
                "mnist.npz",
                origin=KERAS_MNIST_URL,
                file_hash=KERAS_MNIST_SHA256,
                cache_dir=str(_keras_cache_file().parent.parent),
                cache_subdir="datasets",
            )
        )
    except Exception as error:  # urllib, SSL and hash errors alike
        raise FileNotFoundError(
            f"Could not download MNIST from {KERAS_MNIST_URL} ({error}). Put "
            f"Keras's mnist.npz at {_keras_cache_file()} or set SKMNIST_DATA."
        ) from error


def _read(source: Path) -> dict:
    if source.is_dir():
        return {
            key: _read_idx(_idx_file(source, name)) for key, name in _IDX_FILES.items()
        }
    with open(source, "rb") as file:
        head = file.read(4)
    if head != b"PK\x03\x04":
        # np.load would return a .npy file's single array, or unpickle nothing
        # and fail with a message about pickles: neither names the problem.
        raise MNISTFormatError(
            f"{source} is not an .npz archive (a zip file of arrays) like Keras's "
            "mnist.npz, nor a folder of MNIST IDX files."
        )
    try:
        with np.load(source, allow_pickle=False) as npz:
            missing = set(_IDX_FILES) - set(npz.files)
            if missing:
                raise MNISTFormatError(
                    f"{source} is not in Keras's mnist.npz layout: it lacks "
                    f"{', '.join(sorted(missing))}."
                )
            return {key: npz[key] for key in _IDX_FILES}
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as error:
        if isinstance(error, MNISTFormatError):
            raise
        raise MNISTFormatError(
            f"{source} is not a readable mnist.npz (truncated or corrupt?): {error}"
        ) from error


def _idx_file(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{folder} holds neither mnist.npz nor the MNIST file {name} (or {name}.gz)."
    )


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:
        raise MNISTFormatError(f"Cannot read {path}: {error}") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE:
        raise MNISTFormatError(f"{path} is not an IDX file of unsigned bytes.")
    n_dims = data[3]
    header = 4 + 4 * n_dims
    if len(data) < header:
        raise MNISTFormatError(f"{path} is truncated: its header is incomplete.")
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims)
    )
    expected = math.prod(shape)  # a Python int: never overflows to negative
    if len(data) - header != expected:
        raise MNISTFormatError(
            f"{path} holds {len(data) - header} bytes of data, but its header "
            f"announces {shape} = {expected} (truncated or corrupt)."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _validate(arrays: dict, source: Path) -> None:
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise MNISTFormatError(
                f"{source}: x_{split} has shape {images.shape}; expected (n, 28, 28)."
            )
        if labels.ndim != 1:
            raise MNISTFormatError(f"{source}: y_{split} must be one-dimensional.")
        if len(images) != len(labels):
            raise MNISTFormatError(
                f"{source}: x_{split} has {len(images)} images but y_{split} "
                f"{len(labels)} labels."
            )
        for key in (f"x_{split}", f"y_{split}"):
            if arrays[key].dtype != np.uint8:
                raise MNISTFormatError(
                    f"{source}: {key} has dtype {arrays[key].dtype}; expected uint8."
                )
        if labels.size and labels.max() > 9:
            raise MNISTFormatError(
                f"{source}: y_{split} has label {labels.max()}; expected 0-9."
            )


def _warn_unless_genuine(arrays: dict, source: Path) -> None:
    differing = [
        key
        for key, digest in MNIST_ARRAY_SHA256.items()
        if hashlib.sha256(np.ascontiguousarray(arrays[key]).tobytes()).hexdigest()
        != digest
    ]
    if differing:
        warnings.warn(
            f"{source} is in MNIST format but is not genuine MNIST "
            f"({', '.join(differing)} differ from the published digests).",
            UserWarning,
            stacklevel=3,
        )
