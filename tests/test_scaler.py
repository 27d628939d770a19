import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from skmnist import PixelScaler

IMAGES = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10


def test_images_are_flattened_and_scaled():
    out = PixelScaler().fit_transform(IMAGES)
    assert out.shape == (2, 12)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, IMAGES.reshape(2, -1).astype(np.float32) / 255)


@pytest.mark.parametrize(
    "X",
    [
        IMAGES.reshape(2, -1),
        IMAGES.reshape(2, -1).astype(np.int64),
        IMAGES.reshape(2, -1).astype(np.float64),
        IMAGES.reshape(2, -1).tolist(),
        IMAGES.tolist(),
        pd.DataFrame(IMAGES.reshape(2, -1)),
    ],
    ids=["uint8", "int64", "float64", "flat-list", "image-list", "dataframe"],
)
def test_accepted_inputs(X):
    out = PixelScaler().fit_transform(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, IMAGES.reshape(2, -1) / 255, rtol=1e-6)


def test_max_value():
    out = PixelScaler(max_value=16).fit_transform(np.array([[0, 8, 16]]))
    np.testing.assert_array_equal(out, [[0, 0.5, 1]])


@pytest.mark.parametrize(
    "X, message",
    [
        (-IMAGES.astype(int) - 1, "Negative values"),
        (IMAGES.astype(int) + 300, "above max_value"),
        (np.full((2, 12), np.nan), "NaN"),
        (np.full((2, 12), np.inf), "infinity"),
        (np.array([["a", "b"], ["c", "d"]]), "string"),
        (IMAGES.reshape(2, -1) + 1j, "Complex"),
        (np.zeros((2, 3, 4, 1)), "dimensions"),
        (np.zeros((0, 12)), "0 sample"),
    ],
    ids=["negative", "too-bright", "nan", "inf", "strings", "complex", "4d", "empty"],
)
def test_bad_pixels_raise_value_error(X, message):
    with pytest.raises(ValueError, match=message):
        PixelScaler().fit(X)


def test_bad_pixels_after_fit_raise_too():
    scaler = PixelScaler().fit(IMAGES)
    with pytest.raises(ValueError, match="above max_value"):
        scaler.transform(IMAGES.astype(int) * 10)


def test_other_pixel_count_than_fit():
    scaler = PixelScaler().fit(IMAGES)
    with pytest.raises(ValueError, match="3x4 = 12 pixels"):
        scaler.transform(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="X has 25 features, but PixelScaler"):
        scaler.transform(np.zeros((2, 25)))


def test_sparse_input_is_refused_with_type_error():
    with pytest.raises(TypeError, match="Sparse data"):
        PixelScaler().fit(sp.csr_matrix(IMAGES.reshape(2, -1)))


def test_inverse_transform_restores_the_image_shape():
    scaler = PixelScaler().fit(IMAGES)
    restored = scaler.inverse_transform(scaler.transform(IMAGES))
    assert restored.shape == IMAGES.shape
    np.testing.assert_allclose(restored, IMAGES, atol=1e-4)


def test_feature_names():
    assert list(PixelScaler().fit(IMAGES).get_feature_names_out()[:3]) == [
        "pixel_0_0",
        "pixel_0_1",
        "pixel_0_2",
    ]
    frame = pd.DataFrame(IMAGES.reshape(2, -1)).add_prefix("p")
    assert list(PixelScaler().fit(frame).get_feature_names_out()) == list(frame.columns)


def test_pandas_output():
    out = PixelScaler().set_output(transform="pandas").fit_transform(IMAGES)
    assert isinstance(out, pd.DataFrame)
    assert out.shape == (2, 12)
    assert out.columns[-1] == "pixel_2_3"


@pytest.mark.parametrize(
    "X",
    [IMAGES / 255, IMAGES.astype(np.float32) / 255, IMAGES > 100],
    ids=["float64-in-0-1", "float32-in-0-1", "boolean"],
)
def test_input_that_looks_scaled_already_gives_a_warning(X):
    with pytest.warns(UserWarning, match="look scaled to \\[0, 1\\] already"):
        PixelScaler().fit(X)
    scaler = PixelScaler().fit(IMAGES)
    with pytest.warns(UserWarning, match="look scaled"):
        scaler.transform(X)


@pytest.mark.parametrize(
    "X, max_value",
    [(IMAGES, 255), (IMAGES.astype(float), 255), (IMAGES / 255, 1), (IMAGES * 0, 255)],
    ids=["uint8", "float-0-255", "max_value-1", "black"],
)
def test_unscaled_input_gives_no_warning(X, max_value):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PixelScaler(max_value=max_value).fit_transform(X)


def test_images_of_another_shape_with_as_many_pixels_are_refused():
    scaler = PixelScaler().fit(np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"images of 14x56 = 784 pixels.*28x28"):
        scaler.transform(np.zeros((2, 14, 56), dtype=np.uint8))
    assert scaler.transform(np.zeros((2, 784), dtype=np.uint8)).shape == (2, 784)
