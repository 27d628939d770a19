"""The zip archive of a model file: its manifest, checksums and size limits.

``manifest.json`` names the format and its version, the skmnist and Keras
versions that wrote the file, the SHA-256 of every other member and the dtype
and shape of every ``.npy`` member. Reading checks all that the zip directory
and the manifest declare (member names, sizes, compression ratios, array
shapes) before it extracts or allocates anything, and every checksum before
anything is used. What the members mean is :mod:`._registry`'s business.

Format version 1 stored each classifier's weights as a Keras ``.keras`` member
(HDF5 inside), which only h5py and the HDF5 library parse: such a file is read
only when the caller trusts it (see :func:`read_archive`).
"""

import hashlib
import json
import shutil
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skmnist._persistence._codec import declared_npy, npy_bytes, read_npy
from skmnist._persistence._errors import ModelFileError, UntrustedFileError
from skmnist._version import __version__

FORMAT_NAME = "skmnist"
FORMAT_VERSION = 2

MANIFEST = "manifest.json"
ESTIMATOR = "estimator.json"
ZIP_MAGIC = b"PK\x03\x04"
# A JSON member larger than this is not one skmnist wrote (the estimator
# description is a few kilobytes plus the training history).
_MAX_JSON_BYTES = 64 * 2**20
# Limits on the weight members, checked (from the zip directory) before
# anything is extracted, so that a crafted file cannot fill the memory or the
# disk: the size of one member, of all members together, and how much better
# than this ratio a member over 1 MiB may compress (skmnist stores weights
# uncompressed; a "zip bomb" expands a thousandfold).
_MAX_MEMBER_BYTES = 2**30
_MAX_TOTAL_BYTES = 2 * 2**30
_MAX_COMPRESSION_RATIO = 50
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
    import keras

    checksums, declarations = {}, {}
    with zipfile.ZipFile(path, "w") as archive:
        estimator_json = json.dumps(document, indent=1).encode()
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


def read_archive(path: Path, folder: Path, *, trusted: bool) -> Contents:
    """Check the manifest, sizes and checksums of the file at ``path``; return
    its estimator description and arrays (and, for a trusted file of format
    version 1, its ``.keras`` members extracted into ``folder``)."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an skmnist model file")
    if not path.is_file():
        raise FileNotFoundError(f"no skmnist model file at {path}")
    with open(path, "rb") as file:
        head = file.read(len(ZIP_MAGIC))
    if head != ZIP_MAGIC:
        what = (
            "it looks like a joblib or pickle file: load it with joblib.load, and "
            "only if you trust it, since unpickling runs code from the file"
            if head.startswith(_PICKLE_MAGIC)
            else "it is not a zip archive"
        )
        raise ModelFileError(f"{path} is not an skmnist model file: {what}.")
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_members(archive, path, folder, trusted)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        # zipfile finds a truncated or damaged archive (bad CRC, missing central
        # directory) here.
        raise ModelFileError(
            f"{path} is a damaged or truncated skmnist model file: {error}"
        ) from None


def _read_members(archive: zipfile.ZipFile, path: Path, folder: Path, trusted: bool):
    names = archive.namelist()
    if MANIFEST not in names:
        raise ModelFileError(
            f"{path} is a zip archive but not an skmnist model file: it has no "
            f"{MANIFEST}."
        )
    manifest = parse_json(_read_small(archive, MANIFEST), f"{path}: {MANIFEST}")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{path} is not an skmnist model file: its {MANIFEST} does not name "
            f"the {FORMAT_NAME!r} format."
        )
    version = _format_version(manifest, path)
    checksums = manifest.get("sha256")
    expected = set(names) - {MANIFEST}
    if version == 1 and expected - {ESTIMATOR} and not trusted:
        # (An unfitted estimator's file has no weights, so nothing to distrust.)
        raise UntrustedFileError(
            f"{path} is an skmnist file of format version 1 (skmnist "
            f"{manifest.get('skmnist_version', '?')}), whose weights are a Keras "
            ".keras file that only h5py and the HDF5 library can read, parsers "
            "not made for files from strangers; it is loaded only if you trust "
            "its source.",
            "If you do, load it with skmnist.load(path, trusted=True) and save it "
            f"again with skmnist.save to convert it to format version "
            f"{FORMAT_VERSION}, which is safe to load from anyone.",
        )
    declarations = manifest.get("arrays", {}) if version >= 2 else {}
    if (
        not isinstance(checksums, dict)
        or set(checksums) != expected
        or len(names) != len(set(names))
        or ESTIMATOR not in expected
        or not isinstance(declarations, dict)
        or (version >= 2 and set(declarations) != expected - {ESTIMATOR})
    ):
        raise ModelFileError(
            f"{path}: the archive's members do not match its manifest; the file "
            "was modified or is damaged."
        )
    infos = [archive.getinfo(name) for name in sorted(expected)]
    if sum(info.file_size for info in infos) > _MAX_TOTAL_BYTES:
        raise ModelFileError(f"{path}: the archive is too large for an skmnist file.")
    shapes = {
        name: declared_npy(declaration, f"{path}: {name}")
        for name, declaration in declarations.items()
    }
    for info in infos:
        if info.filename != ESTIMATOR:
            _check_member_size(info, path)
    contents = Contents(version, None)
    for name in sorted(expected):
        digest = hashlib.sha256()
        if name == ESTIMATOR:
            estimator_json = _read_small(archive, name)
            digest.update(estimator_json)
        elif version >= 2:
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
        if digest.hexdigest() != checksums[name]:
            raise ModelFileError(
                f"{path}: checksum mismatch for {name}; the file was modified or "
                "is damaged."
            )
    contents.document = parse_json(estimator_json, f"{path}: {ESTIMATOR}")
    return contents


def _format_version(manifest: dict, path: Path) -> int:
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: invalid format version {version!r}.")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by skmnist {manifest.get('skmnist_version', '?')} "
            f"in format version {version}; this skmnist {__version__} reads "
            f"versions up to {FORMAT_VERSION}. Upgrade skmnist to load it."
        )
    return version


def _check_member_size(info: zipfile.ZipInfo, path: Path) -> None:
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


def _read_small(archive: zipfile.ZipFile, name: str) -> bytes:
    if archive.getinfo(name).file_size > _MAX_JSON_BYTES:
        raise ModelFileError(f"{name} is too large for an skmnist model file.")
    return archive.read(name)


def parse_json(data: bytes, where: str):
    """``data`` parsed as JSON, or a :class:`ModelFileError` saying why not."""
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{where} is not valid JSON: {error}") from None
    except RecursionError:
        raise ModelFileError(f"{where} is nested too deeply.") from None
