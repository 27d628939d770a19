"""The zip archive of a model file: its manifest, checksums and size limits.

``manifest.json`` names the format and its version, the skmnist and Keras
versions that wrote the file, the SHA-256 of every other member and the dtype
and shape of every ``.npy`` member. Reading checks, in this order, before it
inflates or allocates anything more than the JSON members:

- the zip directory's size, from the end records that locate it, before
  :mod:`zipfile` reads it (:func:`_check_directory`), then every member
  within the file;
- the manifest, then what the directory and the manifest declare: member
  names, sizes, compression ratios, array dtypes and shapes, and weight
  members stored uncompressed, as skmnist writes them;
- ``estimator.json`` (read first: it is small, and JSON members are read only
  up to a size whose parsing stays cheap), checked by the caller before any
  weights are read (:func:`._registry.check`): every array used by an
  estimator, and no more bytes than its network can hold.

Every checksum is checked before anything is used. What the members mean is
:mod:`._registry`'s business.

Format version 1 stored each classifier's weights as a Keras ``.keras`` member
(HDF5 inside), which only h5py and the HDF5 library parse: such a file is read
only when the caller trusts it (see :func:`read_archive`).
"""

import contextlib
import hashlib
import json
import math
import os
import shutil
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skmnist._persistence._codec import declared_npy, npy_bytes, read_npy
from skmnist._persistence._errors import (
    ModelFileError,
    UntrustedFileError,
    short_json,
    shortened,
)
from skmnist._version import __version__
from skmnist._zip_directory import declared_directory, member_problem

FORMAT_NAME = "skmnist"
FORMAT_VERSION = 2

MANIFEST = "manifest.json"
ESTIMATOR = "estimator.json"
ZIP_MAGIC = b"PK\x03\x04"
# A JSON member larger than this is not one skmnist wrote, and parsing is
# cheap only up to it: json.loads makes a Python object per value, up to 24
# times the text's size (measured: 64 MiB of "[1.5,1.5,..." takes 0.6 GB, of
# "[{},{},..." 1.5 GB; 4 MiB at most 100 MB). An estimator description is a
# few kilobytes plus about 21 bytes per value of the training history (loss
# and accuracy per epoch or partial_fit call): 4 MiB holds 100,000 epochs.
# save refuses to write a longer one.
_MAX_JSON_BYTES = 4 * 2**20
# Integers longer than this are refused rather than converted, whatever an
# application set sys.set_int_max_str_digits to: conversion takes quadratic
# time (a minute for the 4 million digits a JSON member may hold). skmnist
# writes sizes, seeds and labels, of 20 digits at most unless labels are
# Python ints of any size; this is Python's default limit.
_MAX_INT_DIGITS = 4300
# Limits on the weight members, checked (from the zip directory) before
# anything is extracted, so that a crafted file cannot fill the memory or the
# disk: the size of one member, of all members together, and how much better
# than this ratio a member over 1 MiB may compress (skmnist stores weights
# uncompressed; a "zip bomb" expands a thousandfold).
_MAX_MEMBER_BYTES = 2**30
_MAX_TOTAL_BYTES = 2 * 2**30
_MAX_COMPRESSION_RATIO = 50
# Limits on the zip directory, checked before zipfile reads it whole and makes
# an object of each entry (a directory of a million empty entries took 480 MB
# and 6 s): a model file has a manifest, estimator.json and some tens of
# weight members per classifier.
_MAX_MEMBERS = 1000
_MAX_DIRECTORY_BYTES = 2**20
_PICKLE_MAGIC = (b"\x80", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"x")  # joblib's too


@dataclass
class Contents:
    """What :func:`read_archive` found, checked against the manifest."""

    version: int
    document: object
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    # Format version 1 only: the extracted .keras members, by member name.
    keras_files: dict[str, Path] = field(default_factory=dict)


def write_archive(path: str, document: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write ``document`` as ``estimator.json`` and each of ``arrays`` as a
    ``.npy`` member of that name, with the manifest, to ``path``."""

    checksums, declarations = {}, {}
    estimator_json = json.dumps(document, indent=1).encode()
    if len(estimator_json) > _MAX_JSON_BYTES:
        raise ValueError(
            f"Cannot save: its description would be {len(estimator_json)} bytes, "
            f"more than skmnist.load reads ({_MAX_JSON_BYTES}), as from a "
            "history_ of very many epochs. Shorten history_, or use joblib.dump."
        )
    # The file is closed whatever happens, the archive only when complete: a
    # Ctrl-C inside a member's write leaves zipfile's member handle open, and
    # closing the archive then raises a ValueError in place of the interrupt
    # (the caller removes the unfinished file).
    with open(path, "wb") as file:
        archive = zipfile.ZipFile(file, "w")
        try:
            _write_members(archive, estimator_json, arrays, checksums, declarations)
        except BaseException:
            # Discarded unfinished: without its file, neither close() nor the
            # garbage collector's __del__ tries to finish it (which would
            # report "Exception ignored ... seek of closed file").
            archive.fp = None
            raise
        archive.close()


def _write_members(archive, estimator_json, arrays, checksums, declarations) -> None:
    """Write the members of :func:`write_archive`'s archive, filling
    ``checksums`` and ``declarations`` for its manifest."""
    import keras

    archive.writestr(ESTIMATOR, estimator_json, zipfile.ZIP_DEFLATED)
    checksums[ESTIMATOR] = hashlib.sha256(estimator_json).hexdigest()
    for name, array in arrays.items():
        data, declarations[name] = npy_bytes(array, name)
        # Stored, not deflated: weights do not compress, and the ratio limit
        # on reading relies on it.
        archive.writestr(name, data, zipfile.ZIP_STORED)
        checksums[name] = hashlib.sha256(data).hexdigest()
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "skmnist_version": __version__,
        "keras_version": keras.__version__,
        "sha256": checksums,
        "arrays": declarations,
    }
    archive.writestr(
        MANIFEST, json.dumps(manifest, indent=1).encode(), zipfile.ZIP_DEFLATED
    )


def read_archive(
    path: Path,
    folder: Path,
    *,
    trusted: bool,
    check: Callable[[object, dict[str, int]], None],
) -> Contents:
    """Check the manifest, sizes and checksums of the file at ``path``; return
    its estimator description and arrays (and, for a trusted file of format
    version 1, its ``.keras`` members extracted into ``folder``).

    ``check(document, sizes)`` is called with the estimator description and the
    declared size in bytes of each array member before any is read, and raises
    :class:`ModelFileError` to refuse them.
    """
    with _open_archive(path) as (archive, length):
        return _read_members(archive, path, length, folder, trusted, check)


def check_archive(path: Path, *, trusted: bool) -> None:
    """Refuse at once what :func:`read_archive` would refuse from the zip
    directory and the manifest alone (a file that is no zip archive, or a
    truncated one, a manifest of another format or a later version, members
    or sizes other than the manifest declares, a format version 1 file not
    trusted), reading no member but the manifest."""
    with _open_archive(path) as (archive, length):
        _read_layout(archive, path, length, trusted)


@contextlib.contextmanager
def _open_archive(path: Path):
    """``(archive, length)`` of the zip archive at ``path``, its first bytes
    and directory checked; zipfile's errors inside are a damaged file's."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an skmnist model file")
    if path.exists() and not path.is_file():
        # Never opened: a named pipe would wait for a writer for ever.
        raise ModelFileError(
            f"{path} is not a regular file (a pipe, socket or device), not an "
            "skmnist model file"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no skmnist model file at {path}")
    # One open file for every check and for zipfile: what is checked is read.
    with open(path, "rb") as file:
        check_signature(file.read(len(ZIP_MAGIC)), path)
        length = os.fstat(file.fileno()).st_size
        _check_directory(file, length, path)
        try:
            with zipfile.ZipFile(file) as archive:
                yield archive, length
        except (
            zipfile.BadZipFile,
            EOFError,
            zlib.error,
            NotImplementedError,  # a zip feature zipfile does not read
            UnicodeDecodeError,  # a member name that is not UTF-8
            OSError,  # a member's offset the file cannot seek to
        ) as error:
            # zipfile finds a truncated or damaged archive (bad CRC, missing
            # central directory) here.
            reason = " ".join(str(error).split()) or type(error).__name__
            raise ModelFileError(
                f"{path} is a damaged or truncated skmnist model file: {reason}"
            ) from None


def check_signature(head: bytes, path: Path) -> None:
    """Refuse a file whose first bytes ``head`` are not a zip archive's, saying
    what it looks like instead."""
    if head != ZIP_MAGIC:
        what = (
            "it looks like a joblib or pickle file: load it with joblib.load, "
            "and only if you trust it, since unpickling runs code from the file"
            if head.startswith(_PICKLE_MAGIC)
            else "it is not a zip archive"
        )
        raise ModelFileError(f"{path} is not an skmnist model file: {what}.")


def _check_directory(file, length: int, path: Path) -> None:
    """Refuse a zip directory of more entries or bytes than a model file has,
    before zipfile reads it; a file where no directory is found is left to
    zipfile to call damaged."""
    declared = declared_directory(file, length)
    if declared is None:
        return
    entries, size = declared
    if entries > _MAX_MEMBERS:
        raise ModelFileError(
            f"{path}: its zip directory lists {entries} members, far more than an "
            f"skmnist model file has (at most {_MAX_MEMBERS}): not a file skmnist "
            "wrote."
        )
    if size > _MAX_DIRECTORY_BYTES:
        raise ModelFileError(
            f"{path}: its zip directory is {size} bytes, far more than an skmnist "
            f"model file's (at most {_MAX_DIRECTORY_BYTES}): not a file skmnist "
            "wrote."
        )


@dataclass
class _Layout:
    """What the zip directory and the manifest declare, checked against each
    other before any member but the manifest is read."""

    version: int
    checksums: dict
    members: set[str]  # every member but the manifest
    shapes: dict  # array member: (dtype, shape)
    sizes: dict  # array member: bytes


def _read_layout(
    archive: zipfile.ZipFile, path: Path, length: int, trusted: bool
) -> _Layout:
    """Check the zip directory and the manifest, reading no other member."""
    names = archive.namelist()
    # Before any member is read: zipfile asks the file for a member's declared
    # compressed size at once (Python allocates as much first), and inflates
    # what it is asked for.
    problem = member_problem(archive.infolist(), length)
    if problem is not None:
        raise ModelFileError(
            f"{path} is a damaged or truncated skmnist model file: {problem}."
        )
    if MANIFEST not in names:
        raise ModelFileError(
            f"{path} is a zip archive but not an skmnist model file: it has no "
            f"{MANIFEST}."
        )
    manifest = parse_json(_read_small(archive, MANIFEST, path), f"{path}: {MANIFEST}")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{path} is not an skmnist model file: its {MANIFEST} does not name "
            f"the {FORMAT_NAME!r} format."
        )
    version = _format_version(manifest, path)
    members = set(names) - {MANIFEST}
    if version == 1 and members - {ESTIMATOR} and not trusted:
        # (An unfitted estimator's file has no weights, so nothing to distrust.)
        raise UntrustedFileError(
            f"{path} is an skmnist file of format version 1 (skmnist "
            f"{_writer(manifest)}), whose weights are a Keras "
            ".keras file that only h5py and the HDF5 library can read, parsers "
            "not made for files from strangers; it is loaded only if you trust "
            "its source.",
            "If you do, load it with skmnist.load(path, trusted=True) and save it "
            f"again with skmnist.save to convert it to format version "
            f"{FORMAT_VERSION}, which is safe to load from anyone.",
        )
    checksums = manifest.get("sha256")
    declarations = manifest.get("arrays", {}) if version >= 2 else {}
    if (
        not isinstance(checksums, dict)
        or set(checksums) != members
        or len(names) != len(set(names))
        or ESTIMATOR not in members
        or not isinstance(declarations, dict)
        or (version >= 2 and set(declarations) != members - {ESTIMATOR})
    ):
        raise ModelFileError(
            f"{path}: the archive's members do not match its manifest; the file "
            "was modified or is damaged."
        )
    infos = [archive.getinfo(name) for name in sorted(members)]
    if sum(info.file_size for info in infos) > _MAX_TOTAL_BYTES:
        raise ModelFileError(f"{path}: the archive is too large for an skmnist file.")
    shapes = {
        name: declared_npy(declaration, f"{path}: {name}")
        for name, declaration in declarations.items()
    }
    sizes = {
        name: math.prod(shape) * dtype.itemsize
        for name, (dtype, shape) in shapes.items()
    }
    for info in infos:
        if info.filename != ESTIMATOR:
            _check_member_size(info, path, info.filename in sizes)
    return _Layout(version, checksums, members, shapes, sizes)


def _read_members(
    archive: zipfile.ZipFile,
    path: Path,
    length: int,
    folder: Path,
    trusted: bool,
    check: Callable[[object, dict[str, int]], None],
) -> Contents:
    layout = _read_layout(archive, path, length, trusted)
    version, checksums, shapes = layout.version, layout.checksums, layout.shapes
    estimator_json = _read_small(archive, ESTIMATOR, path)
    _check_digest(hashlib.sha256(estimator_json), checksums, ESTIMATOR, path)
    contents = Contents(version, parse_json(estimator_json, f"{path}: {ESTIMATOR}"))
    check(contents.document, layout.sizes)
    for name in sorted(layout.members - {ESTIMATOR}):
        digest = hashlib.sha256()
        if version >= 2:
            with archive.open(name) as stream:

                def read(size, stream=stream, digest=digest):
                    data = stream.read(size)
                    digest.update(data)
                    return data

                contents.arrays[name] = read_npy(
                    read,
                    archive.getinfo(name).file_size,
                    *shapes[name],
                    f"{path}: {name}",
                )
                read(1)  # to the end, where zipfile checks the CRC
        else:
            # Extract under a name of ours: member names never become paths.
            target = folder / f"{len(contents.keras_files)}.keras"
            with archive.open(name) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            with open(target, "rb") as file:
                for block in iter(lambda: file.read(2**20), b""):
                    digest.update(block)
            contents.keras_files[name] = target
        _check_digest(digest, checksums, name, path)
    return contents


def _check_digest(digest, checksums: dict, name: str, path: Path) -> None:
    if digest.hexdigest() != checksums[name]:
        raise ModelFileError(
            f"{path}: checksum mismatch for {name}; the file was modified or is "
            "damaged."
        )


def _format_version(manifest: dict, path: Path) -> int:
    if "format_version" not in manifest:
        raise ModelFileError(f"{path}: its {MANIFEST} gives no format version.")
    version = manifest["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: invalid format version {short_json(version)}.")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by skmnist {_writer(manifest)} in format version "
            f"{short_json(version)}; this skmnist {__version__} reads versions up "
            f"to {FORMAT_VERSION}. Upgrade skmnist to load it."
        )
    return version


def _writer(manifest: dict) -> str:
    """The skmnist version the manifest names, for a message."""
    version = manifest.get("skmnist_version")
    if version is None:
        return "?"
    if isinstance(version, str) and version.isascii() and version.isprintable():
        return shortened(version, 40)
    return short_json(version)


def _check_member_size(info: zipfile.ZipInfo, path: Path, is_array: bool) -> None:
    """Refuse, from the zip directory, a member larger than a model file has,
    or an array member not stored as skmnist stores them."""
    if info.file_size > _MAX_MEMBER_BYTES:
        raise ModelFileError(
            f"{path}: {info.filename} is too large for an skmnist model file "
            f"({info.file_size} bytes, at most {_MAX_MEMBER_BYTES})."
        )
    if (
        info.file_size > 2**20
        and info.file_size > _MAX_COMPRESSION_RATIO * info.compress_size
    ):
        raise ModelFileError(
            f"{path}: {info.filename} expands {info.file_size} bytes from "
            f"{info.compress_size}: not a file skmnist wrote."
        )
    if not is_array:
        return
    # Weights are written stored, since they do not compress; the ratio limit
    # alone would let members that deflate 50-fold expand before anything
    # else is checked.
    if info.compress_type != zipfile.ZIP_STORED:
        raise ModelFileError(
            f"{path}: {info.filename} is compressed, but skmnist stores weights "
            "uncompressed: not a file skmnist wrote."
        )


def _read_small(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    size = archive.getinfo(name).file_size
    if size > _MAX_JSON_BYTES:
        raise ModelFileError(
            f"{path}: {name} is too large for an skmnist model file ({size} bytes, "
            f"at most {_MAX_JSON_BYTES})."
        )
    # Asked for its declared size: zipfile inflates as much as it is asked for
    # (archive.read asks for up to 2 GB at once), and stops at the declared
    # size.
    with archive.open(name) as stream:
        return stream.read(size)


def parse_json(data: bytes, where: str):
    """``data`` parsed as JSON, or a :class:`ModelFileError` saying why not."""
    try:
        return json.loads(data.decode("utf-8"), parse_int=_parse_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{where} is not valid JSON: {error}") from None
    except ValueError:
        # Raised by _parse_int, or by int() itself where an application set a
        # lower limit (its message would tell the user to raise it).
        raise ModelFileError(
            f"{where} holds a number too long to be one skmnist wrote."
        ) from None
    except RecursionError:
        raise ModelFileError(f"{where} is nested too deeply.") from None


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise ValueError("too many digits")
    return int(text)
