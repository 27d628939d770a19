"""Digits as a drawn or photographed digit differs from MNIST's.

MNIST's writers were centred and size-normalised by one procedure; the digits
people draw on a page or photograph are rotated, slanted, larger or smaller,
written with another pen, wobbly, or anywhere on the picture. These are the
MNIST-C-style corruptions (Mu & Gilmer 2019) of ``benchmarks/robustness.py``,
here so that the benchmark, the gallery and a user measuring their own model
draw the same ones. Each image is returned on a canvas large enough that no
ink leaves it: what a photo gives :func:`skmnist.preprocess_digit_image`, which
then crops, scales and centres it as ``skmnist predict`` does.
"""

import numpy as np
from scipy import ndimage
from sklearn.utils import check_random_state

from skmnist._compat import StrOptions, validate_params


def _affine(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``image`` mapped by the 2x2 ``matrix`` about its centre (bilinear), on
    a square canvas twice its longer side: no rotation, slant or scale drawn
    here takes ink off it (each stays within 1.3 times the longer side)."""
    height, width = image.shape
    side = 2 * max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    canvas = np.pad(image, [(top, side - height - top), (left, side - width - left)])
    centre = (np.array(canvas.shape) - 1) / 2
    # affine_transform maps output coordinates to input ones: the inverse.
    inverse = np.linalg.inv(matrix)
    return ndimage.affine_transform(
        canvas, inverse, offset=centre - inverse @ centre, order=1
    )


def _rotation(image, rng):
    angle = np.deg2rad(rng.uniform(-30, 30))
    cos, sin = np.cos(angle), np.sin(angle)
    return _affine(image, np.array([[cos, -sin], [sin, cos]]))


def _shear(image, rng):
    # Rows are the first axis: x' = x + s * y slants the digit.
    return _affine(image, np.array([[1.0, 0.0], [rng.uniform(-0.3, 0.3), 1.0]]))


def _scale(image, rng):
    return _affine(image, np.eye(2) * rng.uniform(0.6, 1.3))


def _thickness(image, rng):
    grow = ndimage.grey_dilation if rng.random_sample() < 0.5 else ndimage.grey_erosion
    return grow(np.pad(image, 2), size=(3, 3))


def _elastic(image, rng, alpha=34.0, sigma=4.0):
    canvas = np.pad(image, 4)
    dy, dx = (
        ndimage.gaussian_filter(
            rng.uniform(-1, 1, canvas.shape), sigma, mode="constant"
        )
        * alpha
        for _ in range(2)
    )
    rows, columns = np.meshgrid(*map(np.arange, canvas.shape), indexing="ij")
    return ndimage.map_coordinates(canvas, [rows + dy, columns + dx], order=1)


def _off_centre(image, rng):
    height, width = image.shape
    canvas = np.zeros((3 * height, 3 * width), image.dtype)
    top = rng.randint(0, 2 * height + 1)
    left = rng.randint(0, 2 * width + 1)
    canvas[top : top + height, left : left + width] = image
    return canvas


#: Each corruption, what it draws per image, in ``benchmarks/robustness.py``'s order.
CORRUPTIONS = {
    "rotation": _rotation,  # uniform in +-30 degrees
    "shear": _shear,  # a horizontal slant, uniform in +-0.3
    "scale": _scale,  # uniform in 0.6-1.3
    "thickness": _thickness,  # 3x3 grey dilation or erosion: +-1 pixel of stroke
    "elastic": _elastic,  # Simard, Steinkraus & Platt (2003): alpha 34, sigma 4
    "off-centre": _off_centre,  # anywhere on a canvas three times its size
}


@validate_params(
    {
        "images": ["array-like"],
        "corruption": [StrOptions(set(CORRUPTIONS))],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def corrupt_digits(images, corruption, *, random_state=None) -> np.ndarray:
    """Digit images as a drawn or photographed digit differs from MNIST's.

    Each image gets its own draw of ``corruption``, MNIST-C-style (Mu & Gilmer
    2019), at the strength ``benchmarks/robustness.py`` measures:

    * ``"rotation"``: rotated by an angle uniform in +-30 degrees;
    * ``"shear"``: slanted, a horizontal shear uniform in +-0.3;
    * ``"scale"``: scaled by a factor uniform in 0.6-1.3;
    * ``"thickness"``: strokes one pixel thicker or thinner (3x3 grey
      dilation or erosion, one or the other at random; erosion can erase a
      thin stroke altogether);
    * ``"elastic"``: Simard, Steinkraus & Platt's (2003) elastic distortion,
      alpha 34, sigma 4 pixels;
    * ``"off-centre"``: the digit anywhere on a canvas three times its size.

    Read the result through :func:`skmnist.preprocess_digit_image` (as
    ``skmnist predict`` reads a photo) before a classifier trained on MNIST:
    the canvases are larger than the images, so that no ink is cut off.

    Parameters
    ----------
    images : array-like of shape (n_images, height, width)
        Light digits on a dark background, as MNIST's ``x_train``.
    corruption : {"rotation", "shear", "scale", "thickness", "elastic", \
"off-centre"}
        Which corruption to draw.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws; the same seed gives the same images.

    Returns
    -------
    corrupted : ndarray of shape (n_images, canvas_height, canvas_width)
        Of the images' dtype (integer pixels rounded). The canvas is a square
        twice the images' longer side for rotation, shear and scale, the
        images with 2 pixels more on every side for thickness and 4 for
        elastic, and three times their height and width for off-centre: no
        ink leaves it, for digits with MNIST's margin of 4 pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from skmnist.datasets import corrupt_digits
    >>> digit = np.zeros((1, 28, 28), np.uint8)
    >>> digit[0, 6:22, 13:15] = 255  # a one
    >>> corrupt_digits(digit, "rotation", random_state=0).shape
    (1, 56, 56)
    >>> corrupt_digits(digit, "off-centre", random_state=0).shape
    (1, 84, 84)
    """
    try:
        images = np.asarray(images)
    except ValueError:  # a ragged list
        raise ValueError(
            "images must all have one size: pass an array of shape "
            "(n_images, height, width)"
        ) from None
    if images.ndim != 3 or 0 in images.shape[1:]:
        raise ValueError(
            "images must be an array of shape (n_images, height, width), got "
            f"shape {images.shape}"
        )
    if not (
        np.issubdtype(images.dtype, np.integer)
        or np.issubdtype(images.dtype, np.floating)
    ):
        raise ValueError(f"images must hold numbers, got dtype {images.dtype}")
    if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
        raise ValueError("images hold NaN or infinite pixels")
    rng = check_random_state(random_state)
    draw = CORRUPTIONS[corruption]
    # Every canvas has one shape, so the result is allocated once, in the
    # images' dtype, and each image is worked on alone (in float64): memory
    # is the result and a few canvases, not a float64 copy of them all.
    canvas = draw(np.zeros(images.shape[1:]), np.random.RandomState(0)).shape
    corrupted = np.empty((len(images), *canvas), images.dtype)
    # Interpolation and grey morphology mix pixels with the zeros around them,
    # so the results stay within the images' range and zero; float pixels are
    # worked on as fractions of the largest, whose sums cannot overflow.
    unit = 1.0
    if np.issubdtype(images.dtype, np.floating) and images.size:
        unit = float(np.abs(images).max()) or 1.0
    for i, image in enumerate(images):
        picture = draw(image.astype(np.float64) / unit, rng) * unit
        if np.issubdtype(images.dtype, np.integer):
            picture = np.clip(np.rint(picture), *_representable(images.dtype))
        corrupted[i] = picture
    return corrupted


def _representable(dtype: np.dtype) -> tuple[float, float]:
    """The float64 bounds that cast into integer ``dtype`` without wrapping
    (float64 rounds int64's largest value up, past it)."""
    info = np.iinfo(dtype)
    low, high = float(info.min), float(info.max)
    if int(high) > info.max:
        high = float(np.nextafter(high, 0))
    return low, high
