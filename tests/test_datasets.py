import gzip
import struct

import numpy as np
import pytest

from skmnist.datasets import load_mnist


def _write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        struct.pack(">I", size) for size in array.shape
    )
    opener = gzip.open if compress else open
    with opener(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


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
    ],
    ids=["missing-array", "count-mismatch", "shape", "label-range", "dtype"],
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
