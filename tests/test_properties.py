"""Property-based tests of PixelScaler and the digit image preprocessing."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from skmnist import DigitImagePreprocessor, PixelScaler, preprocess_digit_image

pytest.importorskip("PIL.Image")

FAST = settings(max_examples=40, deadline=None)

_PIXEL_DTYPES = st.sampled_from(
    [np.uint8, np.uint16, np.int32, np.int64, np.float32, np.float64]
)


@st.composite
def pixel_stacks(draw):
    """Images (n, h, w) or flat rows (n, p) with pixels in [0, max_value]."""
    max_value = draw(st.sampled_from([1, 16, 255, 1000.5]))
    dtype = np.dtype(draw(_PIXEL_DTYPES))
    if dtype.kind in "ui":
        top = min(int(max_value), np.iinfo(dtype).max)
        elements = st.integers(0, top)
    else:
        elements = st.floats(0, max_value, width=dtype.itemsize * 8)
    shape = draw(array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=12))
    return draw(arrays(dtype, shape, elements=elements)), max_value


@FAST
@given(pixel_stacks())
def test_scaler_maps_valid_pixels_into_the_unit_interval(stack):
    X, max_value = stack
    scaled = PixelScaler(max_value=max_value).fit_transform(X)
    assert scaled.dtype == np.float32
    assert scaled.shape == (X.shape[0], int(np.prod(X.shape[1:])))
    assert scaled.min() >= 0 and scaled.max() <= 1
    np.testing.assert_allclose(
        scaled, X.reshape(len(X), -1) / max_value, rtol=1e-6, atol=1e-7
    )


@FAST
@given(pixel_stacks())
def test_scaler_inverse_transform_round_trips(stack):
    X, max_value = stack
    scaler = PixelScaler(max_value=max_value).fit(X)
    restored = scaler.inverse_transform(scaler.transform(X))
    assert restored.shape == X.shape
    assert restored.dtype == np.float32
    np.testing.assert_allclose(restored, X, rtol=1e-6, atol=max_value * 1e-6)


@st.composite
def digit_pages(draw):
    """A page of any size, grey or colour, with a stroke of ink somewhere, at
    least 4 pixels long (a smaller speck is no digit)."""
    height = draw(st.integers(6, 80))
    width = draw(st.integers(3, 80))
    colour = draw(st.booleans())
    paper = draw(st.integers(0, 255))
    ink = draw(st.integers(0, 255).filter(lambda value: abs(value - paper) > 60))
    page = np.full((height, width), paper, dtype=np.uint8)
    # The stroke stays clear of the border, which is read as the paper colour.
    top = draw(st.integers(1, height - 5))
    left = draw(st.integers(1, width - 2))
    bottom = draw(st.integers(top + 4, height - 1))
    right = draw(st.integers(left + 1, width - 1))
    page[top:bottom, left:right] = ink
    noise = draw(arrays(np.uint8, page.shape, elements=st.integers(0, 10)))
    page = np.where(page > 127, page - noise, page + noise).astype(np.uint8)
    if colour:
        page = np.stack([page] * 3, axis=-1)
    return page


@FAST
@given(digit_pages())
def test_preprocessing_gives_an_mnist_style_digit(page):
    digit = preprocess_digit_image(page)
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    assert digit.max() > 0  # the ink survived
    rows, columns = np.nonzero(digit)
    # Fits the 20x20 box, give or take the resampling filter's ringing.
    assert rows.max() - rows.min() < 24 and columns.max() - columns.min() < 24
    scaled = PixelScaler().fit_transform(digit[np.newaxis])
    assert scaled.shape == (1, 784) and 0 <= scaled.min() <= scaled.max() <= 1


@FAST
@given(st.lists(digit_pages(), min_size=1, max_size=3))
def test_preprocessor_matches_the_function_for_any_pages(pages):
    out = DigitImagePreprocessor().fit_transform(pages)
    assert out.shape == (len(pages), 28, 28) and out.dtype == np.uint8
    for digit, page in zip(out, pages, strict=True):
        np.testing.assert_array_equal(digit, preprocess_digit_image(page))
