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
    a canvas twice its size so that nothing is cut off."""
    canvas = np.pad(image, [(s // 2, s // 2) for s in image.shape])
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
        Of the images' dtype (integer pixels rounded). The canvas is 2x the
        images' height and width for the affine corruptions, 4 and 8 pixels
        larger for thickness and elastic, 3x for off-centre.

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
    images = np.asarray(images)
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
    # Interpolation and grey morphology mix pixels with the zeros around
    # them, so floats stay within the images' range and zero.
    corrupted = [draw(image, rng) for image in images.astype(np.float64)]
    if not corrupted:  # no images: the canvas's shape from an empty one
        empty = draw(np.zeros(images.shape[1:]), np.random.RandomState(0))
        return np.zeros((0, *empty.shape), images.dtype)
    corrupted = np.stack(corrupted)
    if np.issubdtype(images.dtype, np.integer):
        info = np.iinfo(images.dtype)
        corrupted = np.clip(np.rint(corrupted), info.min, info.max)
    return corrupted.astype(images.dtype)
