import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skmnist.datasets import CORRUPTIONS, corrupt_digits


@pytest.fixture(scope="module")
def images(digits):
    """Sixteen of scikit-learn's digits, scaled to MNIST's 0-255, enlarged to
    24x24 and given MNIST's margin of 4 pixels: 32x32, light on dark."""
    pictures, _ = digits
    enlarged = np.kron(pictures[:16] * 15, np.ones((3, 3)))
    return np.pad(enlarged, [(0, 0), (4, 4), (4, 4)]).astype(np.uint8)


CANVAS = {
    "rotation": 64,
    "shear": 64,
    "scale": 64,
    "thickness": 36,
    "elastic": 40,
    "off-centre": 96,
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_each_corruption_is_seeded_drawn_per_image_and_sized_to_keep_the_ink(
    images, corruption
):
    corrupted = corrupt_digits(images, corruption, random_state=0)
    side = CANVAS[corruption]
    assert corrupted.shape == (len(images), side, side)
    assert corrupted.dtype == np.uint8
    np.testing.assert_array_equal(
        corrupted, corrupt_digits(images, corruption, random_state=0)
    )
    assert not np.array_equal(
        corrupted, corrupt_digits(images, corruption, random_state=1)
    )
    # The same digit eight times gets eight draws (thickness: a coin each).
    copies = corrupt_digits(np.stack([images[0]] * 8), corruption, random_state=0)
    assert any(not np.array_equal(copies[0], copy) for copy in copies[1:])
    # Nothing is cut off: the canvas's border stays dark.
    border = np.concatenate(
        [corrupted[:, 0], corrupted[:, -1], corrupted[:, :, 0], corrupted[:, :, -1]]
    )
    assert border.max() == 0


def _ink(images):
    return images.astype(np.float64).sum(axis=(1, 2))


@pytest.mark.parametrize("corruption", ["rotation", "shear"])
def test_rotation_and_shear_keep_the_area_of_ink(images, corruption):
    ratio = _ink(corrupt_digits(images, corruption, random_state=0)) / _ink(images)
    assert np.all(np.abs(ratio - 1) < 0.1), ratio


def test_scale_changes_the_ink_by_the_square_of_a_factor_in_its_range(images):
    ratio = _ink(corrupt_digits(images, "scale", random_state=0)) / _ink(images)
    assert np.all((ratio > 0.6**2 * 0.85) & (ratio < 1.3**2 * 1.15)), ratio
    assert ratio.min() < 0.8 and ratio.max() > 1.2  # both ways, over 16 draws


def test_thickness_thickens_some_strokes_and_thins_the_others(images):
    corrupted = corrupt_digits(images, "thickness", random_state=0)
    inner = corrupted[:, 2:-2, 2:-2].astype(int)
    thicker = np.all(inner >= images, axis=(1, 2))
    thinner = np.all(inner <= images, axis=(1, 2))
    assert np.all(thicker | thinner)
    assert thicker.any() and thinner.any()


def test_off_centre_places_the_digit_unchanged_anywhere_on_a_larger_canvas(images):
    corrupted = corrupt_digits(images, "off-centre", random_state=0)
    places = set()
    for image, canvas in zip(images, corrupted, strict=True):
        rows, columns = np.nonzero(canvas)
        top = rows.min() - np.nonzero(image)[0].min()
        left = columns.min() - np.nonzero(image)[1].min()
        np.testing.assert_array_equal(canvas[top : top + 32, left : left + 32], image)
        places.add((top, left))
    assert len(places) > 8


def test_float_images_keep_their_type_and_range(images):
    pixels = images.astype(np.float32) / 255
    for corruption in CORRUPTIONS:
        corrupted = corrupt_digits(pixels, corruption, random_state=0)
        assert corrupted.dtype == np.float32
        assert corrupted.min() >= 0 and corrupted.max() <= 1 + 1e-6


def test_no_images_give_an_empty_array_of_the_canvas_shape(images):
    assert corrupt_digits(images[:0], "elastic").shape == (0, 40, 40)


def test_a_list_of_images_is_accepted(images):
    as_list = images[:2].tolist()
    np.testing.assert_array_equal(
        corrupt_digits(as_list, "shear", random_state=3),
        corrupt_digits(images[:2].astype(np.int64), "shear", random_state=3),
    )


@pytest.mark.parametrize(
    "images, corruption, error, match",
    [
        (np.zeros((28, 28)), "shear", ValueError, r"shape \(n_images, height, width\)"),
        (np.zeros((2, 0, 28)), "shear", ValueError, r"got shape \(2, 0, 28\)"),
        (np.full((1, 4, 4), "a"), "shear", ValueError, "must hold numbers"),
        (np.full((1, 4, 4), np.nan), "scale", ValueError, "NaN or infinite"),
        ([np.zeros((2, 2)), np.zeros((3, 3))], "shear", ValueError, "one size"),
        (np.zeros((1, 4, 4)), "blur", InvalidParameterError, "'corruption'"),
    ],
    ids=["one-image", "empty-image", "strings", "nan", "ragged", "unknown"],
)
def test_what_is_not_digit_images_is_refused_by_name(images, corruption, error, match):
    with pytest.raises(error, match=match):
        corrupt_digits(images, corruption)


@pytest.mark.parametrize("corruption", ["rotation", "shear", "scale"])
@pytest.mark.parametrize("shape", [(10, 40), (40, 10), (27, 27)])
def test_odd_and_oblong_images_keep_all_their_ink(corruption, shape):
    full = np.full((8, *shape), 255, np.uint8)
    corrupted = corrupt_digits(full, corruption, random_state=0)
    assert corrupted.shape[1:] == (2 * max(shape),) * 2
    border = np.concatenate(
        [corrupted[:, 0], corrupted[:, -1], corrupted[:, :, 0], corrupted[:, :, -1]]
    )
    assert border.max() == 0


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.int16])
def test_the_extremes_of_integer_types_do_not_wrap(dtype):
    info = np.iinfo(dtype)
    images = np.full((1, 4, 4), info.max, dtype)
    corrupted = corrupt_digits(images, "off-centre", random_state=0)
    assert corrupted.max() >= info.max - 2048  # float64's step near 2**63
    assert corrupted.min() >= min(info.min, 0) and corrupted.min() <= 0


def test_memory_is_the_result_and_little_more():
    """2,000 MNIST-size digits off-centre: a 14 MB result (before: 341 MB at
    the peak, every canvas in float64, listed, then stacked and rounded)."""
    import tracemalloc

    images = np.random.RandomState(0).randint(0, 256, (2000, 28, 28)).astype(np.uint8)
    tracemalloc.start()
    try:
        corrupted = corrupt_digits(images, "off-centre", random_state=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < corrupted.nbytes + 2**20, peak


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_the_largest_floats_stay_finite(images, corruption):
    huge = images[:2].astype(np.float64) / 255 * np.finfo(np.float64).max
    corrupted = corrupt_digits(huge, corruption, random_state=1)
    assert np.isfinite(corrupted).all()
    assert corrupted.max() <= np.finfo(np.float64).max
