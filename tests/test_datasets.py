import contextlib
import gzip
import io
import os
import struct
import threading
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from skmnist.datasets import load_mnist


def _idx_header(shape):
    return bytes([0, 0, 0x08, len(shape)]) + b"".join(
        struct.pack(">I", size) for size in shape
    )


def _write_idx(path, array, compress=False):
    opener = gzip.open if compress else open
    with opener(path, "wb") as file:
        file.write(_idx_header(array.shape) + array.astype(np.uint8).tobytes())


def _fake_mnist(n_train=12, n_test=6, seed=0):
    rng = np.random.RandomState(seed)
    return {
        "x_train": rng.randint(0, 256, (n_train, 28, 28)).astype(np.uint8),
        "y_train": rng.randint(0, 10, n_train).astype(np.uint8),
        "x_test": rng.randint(0, 256, (n_test, 28, 28)).astype(np.uint8),
        "y_test": rng.randint(0, 10, n_test).astype(np.uint8),
    }


_IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@pytest.mark.mnist
def test_real_mnist_loads_like_keras(mnist_path, recwarn):
    (x_train, y_train), (x_test, _) = load_mnist(mnist_path)
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28)
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert not [w for w in recwarn if "genuine" in str(w.message)]


def test_environment_variable_is_used(tmp_path, monkeypatch):
    arrays = _fake_mnist()
    np.savez(tmp_path / "mnist.npz", **arrays)
    monkeypatch.setenv("SKMNIST_DATA", str(tmp_path / "mnist.npz"))
    with pytest.warns(UserWarning, match="not genuine MNIST"):
        (x_train, _), _ = load_mnist(download=False)
    np.testing.assert_array_equal(x_train, arrays["x_train"])


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_idx_folder(tmp_path, compress):
    arrays = _fake_mnist()
    for key, name in _IDX_NAMES.items():
        suffix = ".gz" if compress else ""
        _write_idx(tmp_path / (name + suffix), arrays[key], compress)
    with pytest.warns(UserWarning, match="not genuine"):
        (_, y_train), (x_test, _) = load_mnist(tmp_path)
    np.testing.assert_array_equal(x_test, arrays["x_test"])
    np.testing.assert_array_equal(y_train, arrays["y_train"])


def test_idx_folder_missing_a_file(tmp_path):
    arrays = _fake_mnist()
    for key, name in list(_IDX_NAMES.items())[:3]:
        _write_idx(tmp_path / name, arrays[key])
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_truncated_idx_file_is_named(tmp_path):
    arrays = _fake_mnist()
    for key, name in _IDX_NAMES.items():
        _write_idx(tmp_path / name, arrays[key])
    images = tmp_path / _IDX_NAMES["x_train"]
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*truncated"):
        load_mnist(tmp_path)


def test_truncated_npz_is_refused(tmp_path):
    np.savez(tmp_path / "mnist.npz", **_fake_mnist())
    data = (tmp_path / "mnist.npz").read_bytes()
    (tmp_path / "mnist.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"mnist\.npz"):
        load_mnist(tmp_path / "mnist.npz")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("y_test"), "lacks y_test"),
        (lambda a: a.update(y_train=a["y_train"][:-1]), "12 images but y_train 11"),
        (lambda a: a.update(x_test=a["x_test"][:, :20]), r"expected \(n, 28, 28\)"),
        (lambda a: a.update(y_test=a["y_test"] + 10), "label"),
        (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "uint8"),
        (lambda a: a.update(y_test=a["y_test"].astype(object)), "dtype object"),
        (lambda a: a.update(x_test=np.asfortranarray(a["x_test"])), "Fortran"),
    ],
    ids=[
        "missing-array",
        "count-mismatch",
        "shape",
        "label-range",
        "dtype",
        "pickled",
        "fortran-order",
    ],
)
def test_wrong_layout_is_refused(tmp_path, change, message):
    arrays = _fake_mnist()
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_mnist(tmp_path / "bad.npz")


def test_offline_without_copy_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv("SKMNIST_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(FileNotFoundError, match=r"keras/datasets/mnist\.npz"):
        load_mnist(download=False)


def test_keras_cache_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("SKMNIST_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    np.savez(tmp_path / "datasets" / "mnist.npz", **_fake_mnist(n_train=3))
    with pytest.warns(UserWarning):
        (x_train, _), _ = load_mnist(download=False)
    assert len(x_train) == 3


# -- issue 12, item 11 and 12: paths people give ---------------------------------


def test_a_folder_holding_mnist_npz_is_accepted_as_path(tmp_path, monkeypatch):
    monkeypatch.delenv("SKMNIST_DATA", raising=False)
    arrays = _fake_mnist()
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.warns(UserWarning, match="not genuine"):
        (x_train, _), _ = load_mnist(tmp_path, download=False)
    np.testing.assert_array_equal(x_train, arrays["x_train"])


def test_an_npy_file_is_refused_by_name(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 28, 28), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"x\.npy is not an \.npz archive"):
        load_mnist(tmp_path / "x.npy")


def test_a_corrupt_idx_header_reports_a_true_size(tmp_path):
    arrays = _fake_mnist()
    for key, name in _IDX_NAMES.items():
        _write_idx(tmp_path / name, arrays[key])
    images = tmp_path / _IDX_NAMES["x_train"]
    data = bytearray(images.read_bytes())
    data[4:16] = struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    images.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        load_mnist(tmp_path)
    announced = str(info.value).split(" = ")[1].split()[0]
    assert int(announced) == (2**32 - 1) ** 3


def test_skmnist_data_naming_a_missing_file_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("SKMNIST_DATA", str(tmp_path / "nowhere.npz"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    import skmnist.datasets._mnist as mnist_module

    def no_download():
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(mnist_module, "_download_keras_mnist", no_download)
    with pytest.raises(FileNotFoundError, match=r"SKMNIST_DATA is set to .*nowhere"):
        load_mnist()


# -- security, item "data files": every declared size checked before inflating --

# What loading any of the crafted files below may allocate, at most: far less
# than what they declare or inflate to (50 MB to 3 GB).
_MEMORY_BOUND = 20 * 2**20


def _gzip_of_zeros(path, head, n_zeros):
    """A gzip file of ``head`` and ``n_zeros`` zero bytes, written without
    holding them (100 MB of zeros gzip to 100 KB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip
    with open(path, "wb") as file:
        file.write(compressor.compress(head))
        for start in range(0, n_zeros, 2**20):
            file.write(compressor.compress(bytes(min(2**20, n_zeros - start))))
        file.write(compressor.flush())


def _idx_folder(folder, compress=False):
    """A folder of the four IDX files of :func:`_fake_mnist`, for one of them
    to be replaced."""
    arrays = _fake_mnist()
    for key, name in _IDX_NAMES.items():
        _write_idx(folder / (name + (".gz" if compress else "")), arrays[key], compress)
    return arrays


def _npy(shape, data=b"", descr="|u1"):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return header.getvalue() + data


def _write_npz(path, members, compression=zipfile.ZIP_STORED):
    """An .npz of ``members``: .npy bytes, or (header, count of zero bytes)
    for large members, written without holding them."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, content in members.items():
            if isinstance(content, bytes):
                archive.writestr(name, content)
                continue
            head, n_zeros = content
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(head)
                for start in range(0, n_zeros, 2**20):
                    member.write(bytes(min(2**20, n_zeros - start)))


def _fake_npz_members(**replaced):
    members = {
        f"{key}.npy": _npy(a.shape, a.tobytes()) for key, a in _fake_mnist().items()
    }
    members.update({f"{key}.npy": value for key, value in replaced.items()})
    return members


def _load_measuring_memory(path):
    """``load_mnist(path)``'s ValueError (None if none) and the peak of the
    memory that Python and NumPy allocated meanwhile."""
    error = None
    tracemalloc.start()
    try:
        load_mnist(path)
    except ValueError as raised:
        error = raised
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, peak


def test_gzip_idx_declaring_more_than_it_can_hold_is_not_inflated(tmp_path):
    # 4,000,000 images declared (3.1 GB) in a gzip file of a few dozen bytes.
    _idx_folder(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    _gzip_of_zeros(bomb, _idx_header((4_000_000, 28, 28)), 1000)
    with pytest.raises(ValueError, match=r"idx3-ubyte.gz.*refused before inflating"):
        load_mnist(tmp_path)


def test_gzip_bomb_idx_is_refused_by_its_ratio_before_inflating(tmp_path):
    # 100 MB of zeros, declared as such, in a gzip file of 100 KB: far more
    # than MNIST's data compresses (about 5:1).
    _idx_folder(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    _gzip_of_zeros(bomb, _idx_header((128_000, 28, 28)), 128_000 * 28 * 28)
    assert bomb.stat().st_size < 200_000
    error, peak = _load_measuring_memory(tmp_path)
    assert "refused before inflating" in str(error), error
    assert peak < _MEMORY_BOUND


def test_gzip_idx_with_trailing_data_stops_at_its_declared_size(tmp_path):
    # 12 images declared, followed by 100 MB of zeros that are never inflated.
    arrays = _idx_folder(tmp_path, compress=True)
    images = arrays["x_train"]
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    _gzip_of_zeros(bomb, _idx_header(images.shape) + images.tobytes(), 100 * 2**20)
    error, peak = _load_measuring_memory(tmp_path)
    assert "idx3-ubyte.gz has trailing data" in str(error), error
    assert peak < _MEMORY_BOUND


@pytest.mark.parametrize("layout", ["npz", "idx", "idx.gz"])
def test_a_split_of_no_images_loads(tmp_path, layout):
    # Arrays are read into place, chunk by chunk: an empty one too.
    arrays = _fake_mnist(n_test=0)
    if layout == "npz":
        np.savez(tmp_path / "mnist.npz", **arrays)
    else:
        compress = layout == "idx.gz"
        for key, name in _IDX_NAMES.items():
            _write_idx(tmp_path / (name + ".gz" * compress), arrays[key], compress)
    with pytest.warns(UserWarning, match="not genuine"):
        (x_train, _), (x_test, y_test) = load_mnist(tmp_path)
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    assert x_test.shape == (0, 28, 28) and y_test.shape == (0,)


def test_raw_idx_with_trailing_data_is_refused_by_its_size(tmp_path):
    _idx_folder(tmp_path)
    with open(tmp_path / "t10k-labels-idx1-ubyte", "ab") as file:
        file.write(bytes(100))
    with pytest.raises(ValueError, match=r"idx1-ubyte holds 106 bytes of data"):
        load_mnist(tmp_path)


@pytest.mark.parametrize(
    "name, shape, message",
    [
        ("train-images-idx3-ubyte", (12, 784), r"x_train has shape \(12, 784\)"),
        ("train-images-idx3-ubyte", (12, 28, 27), r"expected \(n, 28, 28\)"),
        ("t10k-labels-idx1-ubyte", (6, 1), "y_test must be one-dimensional"),
    ],
    ids=["flat-images", "27-columns", "2d-labels"],
)
def test_idx_header_of_the_wrong_dimensions_is_refused_before_its_data(
    tmp_path, name, shape, message
):
    # Its gzip stream is cut short (no end marker, no trailer): reading the
    # data would fail.
    _idx_folder(tmp_path, compress=True)
    data = np.random.RandomState(0).randint(0, 256, np.prod(shape), dtype=np.uint8)
    gzipped = gzip.compress(_idx_header(shape) + data.tobytes())
    (tmp_path / f"{name}.gz").write_bytes(gzipped[:-9])
    with pytest.raises(ValueError, match=message):
        load_mnist(tmp_path)


def test_npy_header_declaring_more_than_its_member_holds_is_refused(tmp_path):
    images = _fake_mnist()["x_train"]
    members = _fake_npz_members(x_train=_npy((2**40, 28, 28), images.tobytes()))
    _write_npz(tmp_path / "mnist.npz", members)
    with pytest.raises(
        ValueError,
        match=r"x_train holds 9408 bytes of data, but its \.npy header announces",
    ):
        load_mnist(tmp_path / "mnist.npz")


def test_npz_bomb_member_is_refused_by_its_ratio_before_inflating(tmp_path):
    # 50 MB of zeros deflated to 50 KB, declared as 64,000 images.
    shape = (64_000, 28, 28)
    members = _fake_npz_members(x_train=(_npy(shape), int(np.prod(shape))))
    _write_npz(tmp_path / "mnist.npz", members, zipfile.ZIP_DEFLATED)
    assert (tmp_path / "mnist.npz").stat().st_size < 100_000
    error, peak = _load_measuring_memory(tmp_path / "mnist.npz")
    assert "x_train declares 50176128 bytes compressed to" in str(error), error
    assert "refused before inflating" in str(error)
    assert peak < _MEMORY_BOUND


def test_npz_members_that_claim_the_whole_file_are_refused(tmp_path):
    """Each member declaring the whole archive as its compressed size passes a
    per-member ratio check, while its own deflate stream of a few KB inflates
    to 20 MB: the members' declared compressed sizes must fit in the file."""
    shape = (25_000, 28, 28)  # 19.6 MB of zeros, deflated to about 20 KB
    members = _fake_npz_members(x_train=(_npy(shape), int(np.prod(shape))))
    members["padding.bin"] = np.random.RandomState(0).bytes(2 * 2**20)
    path = tmp_path / "mnist.npz"
    _write_npz(path, members, zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")  # each central directory entry
    while at >= 0:
        name_length, extra_length = struct.unpack_from("<HH", data, at + 28)
        name = bytes(data[at + 46 : at + 46 + name_length])
        offset = struct.unpack_from("<I", data, at + 42)[0]
        if name.endswith(b".npy"):
            # Each claims all the bytes from its own start to near the end.
            claim = len(data) - offset - 4096
            extra = at + 46 + name_length
            if struct.unpack_from("<I", data, at + 20)[0] == 0xFFFFFFFF:
                # ZIP64: the sizes are in the extra field (uncompressed first).
                while extra < at + 46 + name_length + extra_length:
                    tag, length = struct.unpack_from("<HH", data, extra)
                    if tag == 1:
                        struct.pack_into("<Q", data, extra + 12, claim)
                    extra += 4 + length
            else:
                struct.pack_into("<I", data, at + 20, claim)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:  # the forgery as zipfile reads it
        info = archive.getinfo("x_train.npy")
        assert info.file_size < 20 * info.compress_size
    error, peak = _load_measuring_memory(path)
    assert "overlaps" in str(error) and "refused before inflating" in str(error), error
    assert peak < _MEMORY_BOUND


@pytest.fixture
def zipfile_never_opened(monkeypatch):
    """Fail a test in which a zip directory is read, once its files are written."""

    def refuse(*args, **kwargs):
        raise AssertionError("zipfile.ZipFile read the zip directory")

    return lambda: monkeypatch.setattr(zipfile, "ZipFile", refuse)


@pytest.mark.parametrize("forged_count", [False, True], ids=["count", "forged-count"])
def test_npz_of_many_entries_is_refused_before_reading_its_directory(
    tmp_path, zipfile_never_opened, forged_count
):
    # zipfile builds an object for each entry the directory's size holds,
    # whatever its count says; 1M entries took 480 MB.
    members = _fake_npz_members()
    members.update({f"{i}.npy": b"" for i in range(10_000)})
    path = tmp_path / "mnist.npz"
    _write_npz(path, members)
    message = "declares 10004 entries"
    if forged_count:
        data = bytearray(path.read_bytes())
        end = data.rfind(b"PK\x05\x06")
        data[end + 8 : end + 12] = struct.pack("<HH", 4, 4)
        path.write_bytes(bytes(data))
        message = r"declares 4 entries in \d{6} bytes"
    zipfile_never_opened()
    with pytest.raises(
        ValueError, match=f"mnist.npz is not Keras's mnist.npz: .*{message}"
    ):
        load_mnist(path)


def _with_zip64_end_record(data, entries):
    """``data``, a zip archive, with its end records in ZIP64 form: a ZIP64 end
    record declaring ``entries``, its locator, and an end of central directory
    record that defers to them."""
    end = data.rfind(b"PK\x05\x06")
    size, offset = struct.unpack_from("<II", data, end + 12)
    record = struct.pack(
        "<4sQHHII4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, size, offset
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, end, 1)
    eocd = struct.pack(
        "<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0
    )
    return data[:end] + record + locator + eocd


@pytest.mark.parametrize("entries", [4, 10_000])
def test_zip64_end_record_is_checked(tmp_path, entries):
    np.savez(tmp_path / "plain.npz", **_fake_mnist())
    path = tmp_path / "mnist.npz"
    path.write_bytes(
        _with_zip64_end_record((tmp_path / "plain.npz").read_bytes(), entries)
    )
    if entries == 4:
        with pytest.warns(UserWarning, match="not genuine"):
            load_mnist(path)
    else:
        with pytest.raises(ValueError, match="declares 10000 entries"):
            load_mnist(path)


def _without_blocking(call, pipe, timeout=30):
    """``call()``'s exception, or a failure if it has not returned within
    ``timeout`` seconds (blocked opening ``pipe``; then released)."""
    outcome = {}

    def run():
        try:
            call()
        except BaseException as error:  # handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        with contextlib.suppress(OSError):  # no reader waits: nothing to release
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"loading MNIST blocked opening the pipe {pipe} for {timeout} s")
    return outcome.get("error")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
@pytest.mark.parametrize(
    "pipe_name, path_name",
    [
        ("data.npz", "data.npz"),
        ("mnist.npz", "."),
        ("train-images-idx3-ubyte", "."),
    ],
    ids=["the-file", "mnist.npz-in-a-folder", "idx-file-in-a-folder"],
)
def test_a_named_pipe_is_refused_without_opening_it(tmp_path, pipe_name, path_name):
    _idx_folder(tmp_path)
    pipe = tmp_path / pipe_name
    with contextlib.suppress(FileNotFoundError):
        pipe.unlink()
    os.mkfifo(pipe)
    error = _without_blocking(lambda: load_mnist(tmp_path / path_name), pipe)
    assert isinstance(error, ValueError), error
    assert f"{pipe} is not a regular file (a pipe, socket or device)" in str(error)
