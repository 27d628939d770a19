"""Loading MNIST from Keras's ``mnist.npz`` or the original IDX files.

The files may come from anyone (a ``--data`` folder, a download), so every size
they declare (an IDX header's dimensions, the zip directory, each ``.npy``
header) is checked against the file's own size, and against how far MNIST
compresses, before anything is inflated or allocated: a crafted file of a
megabyte cannot make loading take gigabytes. Pipes, sockets and devices are
refused without being opened, since opening one can wait for ever.
"""

import gzip
import hashlib
import io
import math
import os
import stat
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from skmnist._zip_directory import declared_directory, member_problem

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

# MNIST's arrays compress about 5:1 (x_train.npy is deflated 4.8:1 in Keras's
# mnist.npz, the IDX image files gzip 4.3:1 to 4.9:1 from level 1 to 9, the
# labels 2:1), where a "bomb" of zeros deflates 1000:1. A file that declares
# more than this many times its compressed size is refused before inflating
# (so a crafted file of N bytes costs at most 20 N, which genuine MNIST,
# 11 MB for 55 MB of arrays, is far from)...
_MAX_COMPRESSION_RATIO = 20
# ...unless it declares no more than this: too little to hurt, and a small set
# (a few blank images, say) may compress far better than MNIST.
_ALWAYS_INFLATED_BYTES = 2**20
# How much is asked of a stream at once: a deflate or gzip stream inflates as
# much as it is asked for, whatever its header declared.
_CHUNK_BYTES = 2**20

# Keras's mnist.npz has 4 members and a zip directory of 226 bytes. zipfile
# builds an object (about 460 bytes) for each entry the directory's declared
# size holds, whatever its count says: both are checked before zipfile reads
# the directory (64 KiB holds at most ~1400 entries).
_MAX_ZIP_ENTRIES = 64
_MAX_ZIP_DIRECTORY_BYTES = 64 * 2**10
# A version 2.0 .npy header may declare up to 4 GiB, which NumPy reads before
# its own limit applies; version 1.0 holds at most 64 KiB, far above any
# MNIST array's header.
_MAX_NPY_HEADER_BYTES = 2**16


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
        A file is truncated, corrupt or not in MNIST format, is not a regular
        file (a pipe, socket or device: refused without opening it), or
        declares more data than its size can hold compressed (more than 50
        times it); the message names it. Sizes are checked before anything is
        inflated or allocated.

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
            raise FileNotFoundError(f"No MNIST data at {path}: {_why_missing(path)}.")
        return _in_folder(path)
    variable = os.environ.get("SKMNIST_DATA")
    if variable:
        # Set on purpose: a missing file is a mistake to report, not a reason
        # to download.
        candidate = Path(variable).expanduser()
        if not candidate.exists():
            raise FileNotFoundError(
                f"SKMNIST_DATA is set to {variable}, but {_why_missing(candidate)}. "
                "Point it at Keras's mnist.npz, or unset it."
            )
        return _in_folder(candidate)
    if data_home:
        candidate = Path(data_home).expanduser()
        if candidate.exists():
            return _in_folder(candidate)
    cached = _keras_cache_file()
    return cached if cached.is_file() else None


def _why_missing(path: Path) -> str:
    """Why ``path`` leads to nothing, in a user's words."""
    if path.is_symlink():
        return "it is a symbolic link that leads nowhere (a loop, or a missing target)"
    return "there is no such file or folder"


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
    if path.is_dir() and _is_file_or_special(path / "mnist.npz"):
        return path / "mnist.npz"
    return path


def _is_file_or_special(path: Path) -> bool:
    # Not Path.is_file(): a pipe or device of a data file's name is to be
    # refused by name, not passed over for a "not found".
    return path.exists() and not path.is_dir()


def _regular_file_size(path: Path) -> int:
    """The size of ``path``, refused unopened unless it is a regular file:
    opening a named pipe waits for a writer for ever, and a device may never
    end or act on being opened."""
    status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        raise MNISTFormatError(
            f"{path} is not a regular file (a pipe, socket or device); give "
            "Keras's mnist.npz or a folder of MNIST IDX files."
        )
    return status.st_size


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
            key: _read_idx(_idx_file(source, name), key)
            for key, name in _IDX_FILES.items()
        }
    size = _regular_file_size(source)
    with open(source, "rb") as file:
        if file.read(4) != b"PK\x03\x04":
            # np.load would return a .npy file's single array, or unpickle
            # nothing and fail with a message about pickles: neither names the
            # problem.
            raise MNISTFormatError(
                f"{source} is not an .npz archive (a zip file of arrays) like "
                "Keras's mnist.npz, nor a folder of MNIST IDX files."
            )
        try:
            _check_zip_directory(file, size, source)
            with zipfile.ZipFile(file) as archive:
                missing = {f"{key}.npy" for key in _IDX_FILES} - set(archive.namelist())
                if missing:
                    raise MNISTFormatError(
                        f"{source} is not in Keras's mnist.npz layout: it lacks "
                        f"{', '.join(sorted(name[:-4] for name in missing))}."
                    )
                problem = member_problem(archive.infolist(), size)
                if problem is not None:
                    raise MNISTFormatError(
                        f"{source} is not a readable mnist.npz (truncated or "
                        f"corrupt?): {problem}; refused before inflating it."
                    )
                return {
                    key: _read_npy_member(archive, key, size, source)
                    for key in _IDX_FILES
                }
        except (OSError, zipfile.BadZipFile, EOFError, zlib.error, ValueError) as error:
            if isinstance(error, MNISTFormatError):
                raise
            raise MNISTFormatError(
                f"{source} is not a readable mnist.npz (truncated or corrupt?): {error}"
            ) from error


def _check_zip_directory(file, size: int, source: Path) -> None:
    """Refuse a zip directory larger than an mnist.npz's before zipfile reads
    it."""
    declared = declared_directory(file, size)
    if declared is None:
        raise MNISTFormatError(
            f"{source} is not a readable mnist.npz (truncated or corrupt?): it has "
            "no zip directory."
        )
    entries, directory = declared
    if entries > _MAX_ZIP_ENTRIES or directory > _MAX_ZIP_DIRECTORY_BYTES:
        raise MNISTFormatError(
            f"{source} is not Keras's mnist.npz: its zip directory declares "
            f"{entries} entries in {directory} bytes (mnist.npz has 4 arrays); "
            "refused before reading it."
        )


def _read_npy_member(
    archive: zipfile.ZipFile, key: str, archive_size: int, source: Path
) -> np.ndarray:
    """``key``'s array, from its ``.npy`` member, once what the zip directory
    and the ``.npy`` header declare has been checked against each other and
    against an MNIST array."""
    info = archive.getinfo(f"{key}.npy")
    where = f"{source}: {key}"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # zipfile inflates bzip2 and LZMA without bound, whatever is asked.
        raise MNISTFormatError(
            f"{where} is compressed with method {info.compress_type}; mnist.npz "
            "uses deflate (np.savez_compressed) or none (np.savez)."
        )
    if info.flag_bits & 0x1:
        raise MNISTFormatError(f"{where} is encrypted; mnist.npz is not.")
    # (A stored member's sizes are equal: the ratio check covers it too.)
    if info.compress_size > archive_size or (
        info.file_size > _ALWAYS_INFLATED_BYTES
        and info.file_size > _MAX_COMPRESSION_RATIO * info.compress_size
    ):
        raise MNISTFormatError(
            f"{where} declares {info.file_size} bytes compressed to "
            f"{info.compress_size}, more than this {archive_size}-byte file can "
            f"hold as MNIST data (which compresses about 5:1); refused before "
            "inflating it (a corrupt or crafted file)."
        )
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        length_size = {(1, 0): 2, (2, 0): 4}.get(version)
        if length_size is None:
            raise MNISTFormatError(
                f"{where} is a .npy array of format version {version[0]}."
                f"{version[1]}; mnist.npz uses 1.0."
            )
        length = stream.read(length_size)
        header_length = int.from_bytes(length, "little")
        if len(length) < length_size or header_length > _MAX_NPY_HEADER_BYTES:
            raise MNISTFormatError(f"{where} has a truncated or corrupt .npy header.")
        header = length + stream.read(header_length)
        # NumPy's parser: a dict literal evaluated with ast.literal_eval; an
        # object dtype it returns is refused below, never unpickled.
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran_order, dtype = read_header(io.BytesIO(header))
        _check_layout(key, dtype, shape, source)
        if fortran_order:
            raise MNISTFormatError(
                f"{where} is stored in Fortran order; mnist.npz holds C-order arrays."
            )
        nbytes = math.prod(shape)
        held = info.file_size - np.lib.format.MAGIC_LEN - len(header)
        if held < 0 or nbytes != held:  # (then no size is negative)
            raise MNISTFormatError(
                f"{where} holds {held} bytes of data, but its .npy header "
                f"announces {shape} = {nbytes} (truncated or corrupt)."
            )
        return _read_exactly(stream, shape, where)


def _idx_file(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if _is_file_or_special(candidate):
            return candidate
    raise FileNotFoundError(
        f"{folder} holds neither mnist.npz nor the MNIST file {name} (or {name}.gz)."
    )


def _read_idx(path: Path, key: str) -> np.ndarray:
    """``key``'s array from the IDX file at ``path`` (gzipped if its name ends
    in ``.gz``), its header checked before any data is read."""
    compressed = path.suffix == ".gz"
    opener = gzip.open if compressed else open
    try:
        size = _regular_file_size(path)
        with opener(path, "rb") as file:
            head = file.read(4)
            if len(head) < 4 or head[:3] != bytes([0, 0, _IDX_UBYTE]):
                raise MNISTFormatError(f"{path} is not an IDX file of unsigned bytes.")
            sizes = file.read(4 * head[3])
            if len(sizes) < 4 * head[3]:
                raise MNISTFormatError(
                    f"{path} is truncated: its header is incomplete."
                )
            shape = tuple(
                int.from_bytes(sizes[i : i + 4], "big") for i in range(0, len(sizes), 4)
            )
            expected = math.prod(shape)  # a Python int: never overflows to negative
            held = size - 4 - len(sizes)
            if not compressed and held != expected:
                raise MNISTFormatError(
                    f"{path} holds {held} bytes of data, but its header announces "
                    f"{shape} = {expected} (truncated or corrupt)."
                )
            if (
                compressed
                and expected > _ALWAYS_INFLATED_BYTES
                and expected > _MAX_COMPRESSION_RATIO * size
            ):
                raise MNISTFormatError(
                    f"{path}'s header announces {shape} = {expected} bytes of data, "
                    f"more than this {size}-byte gzip file can hold as MNIST data "
                    "(which compresses about 5:1); refused before inflating it "
                    "(a corrupt or crafted file)."
                )
            _check_layout(key, np.dtype(np.uint8), shape, path)
            return _read_exactly(file, shape, str(path))
    except (OSError, EOFError, zlib.error) as error:
        # gzip's BadGzipFile is an OSError; a gzip stream cut short, an EOFError.
        raise MNISTFormatError(f"Cannot read {path}: {error}") from error


def _read_exactly(file, shape: tuple, where: str) -> np.ndarray:
    """The rest of ``file`` as a uint8 array of ``shape``, of its own; read in
    chunks, never asking for more than the array's size."""
    array = np.empty(shape, dtype=np.uint8)
    view = memoryview(array.reshape(-1))  # (a view: the array is C-ordered)
    nbytes = array.nbytes
    done = 0
    while done < nbytes:
        count = file.readinto(view[done : done + _CHUNK_BYTES])
        if not count:
            raise MNISTFormatError(
                f"{where} is truncated: it holds {done} bytes of data, but its "
                f"header announces {nbytes}."
            )
        done += count
    # Reading on to the end also has zipfile and gzip check the data's CRC.
    if file.read(1):
        raise MNISTFormatError(
            f"{where} has trailing data after the {nbytes} bytes its header "
            "announces (corrupt?)."
        )
    return array


def _check_layout(key: str, dtype: np.dtype, shape: tuple, source) -> None:
    """Refuse an array of ``dtype`` and ``shape`` as MNIST's ``key``."""
    if key.startswith("x_") and (len(shape) != 3 or tuple(shape[1:]) != (28, 28)):
        raise MNISTFormatError(
            f"{source}: {key} has shape {shape}; expected (n, 28, 28)."
        )
    if key.startswith("y_") and len(shape) != 1:
        raise MNISTFormatError(f"{source}: {key} must be one-dimensional.")
    if dtype != np.uint8:
        raise MNISTFormatError(f"{source}: {key} has dtype {dtype}; expected uint8.")


def _validate(arrays: dict, source: Path) -> None:
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        for key in (f"x_{split}", f"y_{split}"):
            _check_layout(key, arrays[key].dtype, arrays[key].shape, source)
        if len(images) != len(labels):
            raise MNISTFormatError(
                f"{source}: x_{split} has {len(images)} images but y_{split} "
                f"{len(labels)} labels."
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
