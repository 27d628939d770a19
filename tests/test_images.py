import numpy as np
import pytest
from scipy import ndimage

from skmnist import DigitImagePreprocessor, preprocess_digit_image

PIL = pytest.importorskip("PIL.Image")


def _stroke(height=120, width=90, ink=0, paper=255, box=(20, 100, 30, 50)):
    page = np.full((height, width), paper, dtype=np.uint8)
    top, bottom, left, right = box
    page[top:bottom, left:right] = ink
    return page


def _check_mnist_style(digit):
    assert digit.shape == (28, 28) and digit.dtype == np.uint8
    rows, columns = np.nonzero(digit)
    assert rows.max() - rows.min() + 1 <= 20 and columns.max() - columns.min() + 1 <= 20
    centre = ndimage.center_of_mass(digit.astype(float))
    assert np.allclose(centre, (13.5, 13.5), atol=1)
    assert digit[0].max() == 0  # dark background


@pytest.mark.parametrize(
    "page",
    [
        _stroke(),  # dark ink on white paper
        _stroke(ink=255, paper=0),  # light ink on black
        _stroke(box=(5, 60, 5, 20)),  # off-centre
    ],
    ids=["dark-on-light", "light-on-dark", "off-centre"],
)
def test_digit_becomes_mnist_style(page):
    _check_mnist_style(preprocess_digit_image(page))


def test_colour_and_pil_images():
    colour = np.stack([_stroke()] * 3, axis=-1)
    from_array = preprocess_digit_image(colour)
    from_pil = preprocess_digit_image(PIL.fromarray(colour).convert("RGBA"))
    _check_mnist_style(from_array)
    np.testing.assert_array_equal(from_array, from_pil)


def _colour_photo():
    """Red and blue ink on yellowish paper, with soft edges: its channel mean and
    its luma differ, and differ between the two inks."""
    rng = np.random.default_rng(0)
    height, width = 90, 70
    paper = np.array([250, 230, 120], dtype=float)
    photo = np.tile(paper, (height, width, 1))
    ink = np.zeros((height, width))
    ink[15:75, 30:42] = 1.0
    ink = ndimage.gaussian_filter(ink, 1.5)
    colours = np.where(
        np.arange(height)[:, None, None] < 45, [200, 30, 40], [30, 40, 200]
    )
    photo = photo * (1 - ink[..., None]) + colours * ink[..., None]
    photo += rng.normal(0, 2, photo.shape)
    return np.clip(np.rint(photo), 0, 255).astype(np.uint8)


def test_rgb_array_and_pil_image_give_the_same_digit():
    photo = _colour_photo()
    from_array = preprocess_digit_image(photo)
    from_pil = preprocess_digit_image(PIL.fromarray(photo, mode="RGB"))
    _check_mnist_style(from_array)
    # Within 1/255 of the [0, 1] features the classifier sees.
    np.testing.assert_allclose(from_array, from_pil, atol=1, rtol=0)
    # The weights are Pillow's "L" (ITU-R 601-2 luma), not the channel mean.
    from_grey = preprocess_digit_image(PIL.fromarray(photo, mode="RGB").convert("L"))
    np.testing.assert_allclose(from_array, from_grey, atol=1, rtol=0)


def test_aspect_ratio_is_kept():
    digit = preprocess_digit_image(_stroke(box=(10, 110, 40, 60)))  # 100 x 20 stroke
    rows, columns = np.nonzero(digit > 50)
    assert rows.max() - rows.min() + 1 == 20
    assert columns.max() - columns.min() + 1 <= 6


def test_blank_image_is_refused():
    with pytest.raises(ValueError, match="blank"):
        preprocess_digit_image(np.full((30, 30), 255, dtype=np.uint8))


def test_transformer_matches_the_function():
    pages = [_stroke(), _stroke(ink=255, paper=0)]
    out = DigitImagePreprocessor().fit_transform(pages)
    assert out.shape == (2, 28, 28)
    np.testing.assert_array_equal(out[0], preprocess_digit_image(pages[0]))


def _scan(dtype, paper, ink):
    """_stroke at another bit depth: paper and ink on that type's scale."""
    page = np.full((120, 90), paper, dtype=dtype)
    page[20:100, 30:50] = ink
    page[60:100, 50:70] = (paper + ink) / 2  # some mid-tone ink too
    return page


@pytest.mark.parametrize(
    "page, mode",
    [
        (_scan(np.uint16, 65535, 1000), "I;16"),
        (_scan(np.uint16, 0, 30000), "I;16"),
        (_scan(np.int32, 65535, 1000), "I"),
        (_scan(np.int32, 255, 0), "I"),
        (_scan(np.float32, 1.0, 0.0), "F"),
        (_scan(np.float32, 0.0, 0.5), "F"),
        (_scan(np.float32, 255.0, 0.0), "F"),
    ],
    ids=[
        "16-bit",
        "16-bit-dark",
        "32-bit",
        "32-bit-8-bit-range",
        "float",
        "float-dark",
        "float-255",
    ],
)
def test_deep_grey_pil_images_keep_their_ink(page, mode):
    image = PIL.fromarray(page)
    assert image.mode == mode
    from_pil = preprocess_digit_image(image)
    _check_mnist_style(from_pil)
    np.testing.assert_array_equal(from_pil, preprocess_digit_image(page))
    # The same as the 8-bit scan, within rounding.
    scale = 255 / (65535 if page.max() > 255 else 1 if page.max() <= 1 else 255)
    eight_bit = np.rint(page.astype(float) * scale).astype(np.uint8)
    np.testing.assert_allclose(
        from_pil, preprocess_digit_image(eight_bit), atol=2, rtol=0
    )


def test_16_bit_big_endian_pil_image():
    page = _scan(np.uint16, 65535, 1000)
    image = PIL.frombytes("I;16B", page.shape[::-1], page.astype(">u2").tobytes())
    np.testing.assert_array_equal(
        preprocess_digit_image(image), preprocess_digit_image(page)
    )


def test_pillow_would_have_clipped_these():
    # What the Pillow conversion alone does: the reason skmnist scales itself.
    ink = np.asarray(PIL.fromarray(_scan(np.uint16, 65535, 1000)).convert("L"))
    assert ink.min() == 255
