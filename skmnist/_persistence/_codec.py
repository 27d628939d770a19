"""Values as the file stores them: JSON data, and flat arrays in ``.npy`` members.

Hyper-parameters and fitted attributes are JSON; types that JSON would lose
(tuples, dicts with non-string keys, arrays) are tagged one-key objects. Weights
are ``.npy`` members: a short header (dtype, shape) then the raw values, read
here without ``numpy.load`` and never with pickle: the header is parsed and
checked against the dtype and shape the manifest declares, and the byte count
that implies against the member's size, before anything is allocated.
Everything here is checked before it is allocated; nothing is imported, looked
up or run.
"""

import io
import math
import re
from collections.abc import Callable

import numpy as np

from skmnist._persistence._errors import (
    JOBLIB_HINT,
    ModelFileError,
    expect,
    short_repr,
)

_TAGS = ("__tuple__", "__dict__", "__ndarray__")
# Dtype kinds stored as JSON numbers, booleans or strings, exactly.
_ARRAY_KINDS = "biufUO"
# What an array's "dtype" may say: a byte order, a kind of _ARRAY_KINDS and an
# item size; never NumPy's richer syntax (structured or sub-array dtypes).
_DTYPE = re.compile(r"[<>|=]?[" + _ARRAY_KINDS + r"][0-9]{0,10}")
# The dtypes of .npy members: plain numbers only (no strings, objects, records).
_NUMERIC_DTYPE = re.compile(r"[<>|]?(b1|[iu][1248]|f[248])")
# Arrays whose declared storage is at most this size are allocated as declared;
# a larger one must need its declared string width (a forged '<U50000000' of ten
# names would take 2 GB for a few bytes of JSON).
_SMALL_ARRAY_BYTES = 2**20
_MAX_ARRAY_BYTES = 2**30
_MAX_DIMENSIONS = 32
_NPY_MAGIC = b"\x93NUMPY\x01\x00"  # version 1.0: a header of at most 64 KiB


# -- JSON ----------------------------------------------------------------------


def to_json(value, where: str):
    """Encode ``value`` as JSON data that :func:`_from_json` decodes to an equal
    value of the same type: tuples, dicts with non-string keys and arrays are
    tagged (a one-key object such as ``{"__tuple__": [...]}``), because plain
    JSON would turn them into lists and string keys."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, list):
        return [to_json(item, where) for item in value]
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(item, where) for item in value]}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and not _looks_tagged(value):
            return {key: to_json(item, where) for key, item in value.items()}
        return {
            "__dict__": [
                [to_json(key, where), to_json(item, where)]
                for key, item in value.items()
            ]
        }
    if isinstance(value, np.ndarray):
        return {"__ndarray__": array_to_json(value, where)}
    raise TypeError(
        f"Cannot save {where}: {type(value).__name__} {short_repr(value)} is not "
        "JSON data. skmnist.save stores numbers, strings, booleans, None, lists, "
        "dicts and NumPy arrays of them only. " + JOBLIB_HINT
    )


def array_to_json(array: np.ndarray, where: str) -> dict:
    if array.dtype.kind not in _ARRAY_KINDS:
        raise TypeError(
            f"Cannot save {where}: an array of dtype {array.dtype} is not supported. "
            + JOBLIB_HINT
        )
    values = array.ravel().tolist()
    if array.dtype.kind == "O":
        values = [to_json(item, where) for item in values]
        if any(isinstance(item, list | dict) for item in values):
            raise TypeError(
                f"Cannot save {where}: an object array holding containers. "
                + JOBLIB_HINT
            )
    return {"dtype": array.dtype.str, "shape": list(array.shape), "values": values}


def _looks_tagged(data: dict) -> bool:
    return len(data) == 1 and next(iter(data)) in _TAGS


def from_json(data, where: str):
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [from_json(item, where) for item in data]
    if isinstance(data, dict) and not _looks_tagged(data):
        return {key: from_json(item, where) for key, item in data.items()}
    if isinstance(data, dict):
        ((tag, content),) = data.items()
        if tag == "__tuple__":
            return tuple(
                from_json(item, where) for item in expect(content, list, where)
            )
        if tag == "__dict__":
            pairs = [expect(pair, list, where) for pair in expect(content, list, where)]
            if any(len(pair) != 2 for pair in pairs):
                raise ModelFileError(f"{where}: malformed dict.")
            keys = [from_json(key, where) for key, _ in pairs]
            if not all(_hashes_apart(key) for key in keys):
                # Integers beyond 64 bits can be chosen to share a hash (those
                # k * (2**61 - 1) all hash to 0), and building a dict of many
                # takes quadratic time: minutes for a few megabytes of JSON.
                raise ModelFileError(
                    f"{where}: a dict key is an integer beyond 64 bits, which "
                    "skmnist never writes; the file was modified or is damaged."
                )
            try:
                return {
                    key: from_json(item, where)
                    for key, (_, item) in zip(keys, pairs, strict=True)
                }
            except TypeError:  # an unhashable key
                raise ModelFileError(f"{where}: malformed dict.") from None
        if tag == "__ndarray__":
            return array_from_json(expect(content, dict, where), where)
    raise ModelFileError(f"{where}: unexpected JSON value {short_repr(data)}.")


def _hashes_apart(key) -> bool:
    """Whether ``key`` holds no integer beyond 64 bits (a tuple's neither)."""
    if isinstance(key, tuple):
        return all(_hashes_apart(item) for item in key)
    return not isinstance(key, int) or -(2**63) <= key < 2**63


def declared_array_bytes(data) -> int:
    """The bytes that the arrays tagged in the JSON data ``data`` declare, all
    together, counted before any is made: each array alone is bounded when it
    is decoded, but a few megabytes of JSON can declare thousands of them."""
    total, stack = 0, [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            content = item.get("__ndarray__") if len(item) == 1 else None
            if isinstance(content, dict):
                total += _declared_bytes(content)
            stack.extend(item.values())
    return total


def _declared_bytes(content: dict) -> int:
    dtype, shape = content.get("dtype"), content.get("shape")
    if not (isinstance(dtype, str) and _DTYPE.fullmatch(dtype)):
        return 0  # refused when decoded
    if not (
        isinstance(shape, list)
        and len(shape) <= _MAX_DIMENSIONS
        and all(isinstance(size, int) and 0 <= size <= 2**40 for size in shape)
    ):
        return 0  # refused when decoded
    try:
        return math.prod(shape) * np.dtype(dtype).itemsize
    except (TypeError, ValueError, OverflowError):
        return 0  # refused when decoded


def array_from_json(data: dict, where: str) -> np.ndarray:
    try:
        dtype = _declared_dtype(data["dtype"], where)
        shape = tuple(expect(size, int, where) for size in data["shape"])
        values = expect(data["values"], list, where)
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


def _declared_dtype(text, where: str) -> np.dtype:
    if not (isinstance(text, str) and _DTYPE.fullmatch(text)):
        raise ModelFileError(f"{where}: unsupported array dtype {short_repr(text)}.")
    try:
        return np.dtype(text)
    except TypeError:
        raise ModelFileError(f"{where}: unsupported array dtype {text!r}.") from None


def _check_array_size(dtype: np.dtype, shape: tuple, values: list, where: str):
    """Refuse, before anything is allocated, an array whose declared shape or
    dtype does not match the values the file holds, or that is too large."""
    if len(shape) > _MAX_DIMENSIONS or any(size < 0 for size in shape):
        raise ModelFileError(f"{where}: invalid array shape {short_repr(shape)}.")
    if math.prod(shape) != len(values):
        raise ModelFileError(
            f"{where}: an array of shape {short_repr(shape)} declared with "
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


# -- .npy members --------------------------------------------------------------


def npy_bytes(array: np.ndarray, where: str) -> tuple[bytes, dict]:
    """``array`` as a ``.npy`` member, and what the manifest declares of it."""
    if not _NUMERIC_DTYPE.fullmatch(array.dtype.str):
        raise TypeError(
            f"Cannot save {where}: weights of dtype {array.dtype} are not plain "
            "numbers. " + JOBLIB_HINT
        )
    buffer = io.BytesIO()
    np.lib.format.write_array(
        buffer, np.asarray(array, order="C"), version=(1, 0), allow_pickle=False
    )
    return buffer.getvalue(), {"dtype": array.dtype.str, "shape": list(array.shape)}


def declared_npy(declaration, where: str) -> tuple[np.dtype, tuple]:
    """The dtype and shape that the manifest declares for a ``.npy`` member,
    checked: plain numbers, a valid shape, at most ``_MAX_ARRAY_BYTES``."""
    try:
        declaration = expect(declaration, dict, where)
        text = declaration["dtype"]
        sizes = expect(declaration["shape"], list, where)
    except KeyError as error:
        raise ModelFileError(f"{where}: no {error} declared.") from None
    shape = tuple(expect(size, int, where) for size in sizes)
    if not (isinstance(text, str) and _NUMERIC_DTYPE.fullmatch(text)):
        raise ModelFileError(
            f"{where}: unsupported weights dtype {short_repr(text)}; skmnist files "
            "store weights as plain numbers (booleans, integers, floats) only."
        )
    # No size beyond what the byte limit allows, even beside a zero: NumPy
    # cannot make an empty array of shape (10**30, 0).
    if len(shape) > _MAX_DIMENSIONS or any(
        size < 0 or size > _MAX_ARRAY_BYTES for size in shape
    ):
        raise ModelFileError(f"{where}: invalid array shape {short_repr(shape)}.")
    dtype = np.dtype(text)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > _MAX_ARRAY_BYTES:
        raise ModelFileError(
            f"{where}: an array of {nbytes} bytes is too large for an skmnist "
            f"model file (at most {_MAX_ARRAY_BYTES})."
        )
    return dtype, shape


def read_npy(
    read: Callable[[int], bytes], size: int, dtype: np.dtype, shape: tuple, where: str
) -> np.ndarray:
    """Read a ``.npy`` member of ``size`` bytes (as the zip directory says) with
    ``read``, which must hold an array of ``dtype`` and ``shape`` (as checked by
    :func:`declared_npy`).

    The header is read and compared with the declaration, and the byte count it
    implies with ``size``, before the values are read: a forged header cannot
    make this allocate more than the member holds, nor reach pickle.
    """
    prefix = read(len(_NPY_MAGIC) + 2)
    if len(prefix) != len(_NPY_MAGIC) + 2 or not prefix.startswith(_NPY_MAGIC):
        raise ModelFileError(f"{where}: not a .npy array of format version 1.0.")
    header = read(int.from_bytes(prefix[-2:], "little"))
    try:
        # NumPy's own parser of the header: a bounded dict literal, evaluated
        # with ast.literal_eval, never unpickled.
        found_shape, fortran_order, found_dtype = np.lib.format.read_array_header_1_0(
            io.BytesIO(prefix[len(_NPY_MAGIC) :] + header)
        )
    except (ValueError, TypeError, SyntaxError) as error:
        # (NumPy's messages may run over several lines.)
        reason = " ".join(str(error).split())
        raise ModelFileError(f"{where}: invalid .npy header: {reason}") from None
    if fortran_order:
        raise ModelFileError(
            f"{where}: the array is stored in Fortran order, which skmnist never "
            "writes; the file was modified or is damaged."
        )
    if found_dtype != dtype or found_dtype.str != dtype.str:
        raise ModelFileError(
            f"{where}: the array is stored as {str(found_dtype)[:60]}, but "
            f"the manifest declares {dtype.str}; the file was modified or is damaged."
        )
    if tuple(found_shape) != shape:
        raise ModelFileError(
            f"{where}: the array has shape {short_repr(found_shape)}, but the "
            f"manifest declares {short_repr(shape)}; the file was modified or is "
            "damaged."
        )
    nbytes = math.prod(shape) * dtype.itemsize
    if len(prefix) + len(header) + nbytes != size:
        raise ModelFileError(
            f"{where}: an array of shape {short_repr(shape)} needs {nbytes} bytes, "
            f"but the member holds {size - len(prefix) - len(header)}; the file was "
            "modified or is damaged."
        )
    data = read(nbytes)
    if len(data) != nbytes:
        raise ModelFileError(f"{where}: truncated array.")
    return np.frombuffer(data, dtype=dtype).reshape(shape)
