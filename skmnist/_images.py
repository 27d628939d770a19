"""Turning a photo or scan of one handwritten digit into an MNIST-style image."""

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin

# MNIST digits are scaled to fit a 20x20 box and centred by centre of mass in a
# 28x28 field (LeCun et al.); ink is light on a dark background.
_FIELD = 28
_BOX = 20
# Pixels fainter than this fraction of the brightest ink count as background
# when cropping to the digit.
_INK_THRESHOLD = 0.2
# Colour to grey: the ITU-R 601-2 luma weights of R, G and B, as Pillow's
# convert("L") uses them, for arrays and Pillow images alike.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


def preprocess_digit_image(image) -> np.ndarray:
    """Make one digit image look like an MNIST digit.

    Greyscale; inverted to light ink on a dark background where the background is
    the brighter side; cropped to the digit; scaled to fit 20x20 keeping the aspect
    ratio; placed in a 28x28 field centred by centre of mass.

    Parameters
    ----------
    image : PIL.Image.Image or array-like of shape (height, width[, channels])
        The digit, any size, grey or colour, dark-on-light or light-on-dark.
        Colour is turned to grey with the ITU-R 601-2 luma weights (as Pillow's
        ``convert("L")``), so an RGB array and the same picture as a Pillow image
        give the same digit. A Pillow image's transparent parts count as white
        paper; an array's alpha channel is ignored. Pixel values are read on the
        0..255 scale by type, for arrays and Pillow images alike: 16-bit ones
        (``uint16``, Pillow's ``I;16`` modes) are divided by 257; floats (Pillow's
        ``F``) are taken as 0..1 if none exceeds 1, else as 0..255; other
        integers (Pillow's 32-bit ``I``, in which Pillow opens some 16-bit PNGs)
        as 0..255 if none exceeds 255, else as 16-bit; booleans (bilevel) as
        0 and 255.

    Returns
    -------
    digit : ndarray of shape (28, 28), dtype uint8
        Pixels 0..255, ready for :class:`skmnist.PixelScaler`.

    Examples
    --------
    >>> import numpy as np
    >>> from skmnist import preprocess_digit_image
    >>> page = np.full((100, 60), 255, dtype=np.uint8)
    >>> page[20:80, 25:35] = 0  # a dark stroke on white paper: a "1"
    >>> digit = preprocess_digit_image(page)
    >>> digit.shape, digit.dtype, int(digit[0, 0]), int(digit.max())
    ((28, 28), dtype('uint8'), 0, 255)
    """
    grey = _to_grey(image)
    ink = _ink_on_dark(grey)
    if ink.max() <= 0:
        raise ValueError("the image is blank: no digit found")
    cropped = _crop_to_ink(ink)
    boxed = _fit_into_box(cropped)
    return _centre_by_mass(boxed)


def load_digit_image(path) -> np.ndarray:
    """Read an image file (PNG, JPEG, ...) and preprocess it with
    :func:`preprocess_digit_image`.

    Parameters
    ----------
    path : str or path-like
        The image file.

    Returns
    -------
    digit : ndarray of shape (28, 28), dtype uint8
        The MNIST-style digit.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return preprocess_digit_image(image)
    except UnidentifiedImageError as error:
        raise ValueError(f"not an image file that Pillow can read: {path}") from error


class DigitImagePreprocessor(TransformerMixin, BaseEstimator):
    """:func:`preprocess_digit_image` as a transformer, for use in pipelines.

    It has no parameters and learns nothing: ``fit`` returns it unchanged and sets
    no attributes (not even ``n_features_in_``, as the images may have any
    sizes), and ``transform`` preprocesses each image of a sequence of images.

    Examples
    --------
    >>> import numpy as np
    >>> from skmnist import DigitImagePreprocessor
    >>> pages = [np.full((50, 40), 255, dtype=np.uint8) for _ in range(2)]
    >>> for page in pages:
    ...     page[10:40, 15:25] = 0
    >>> DigitImagePreprocessor().fit_transform(pages).shape
    (2, 28, 28)
    """

    def fit(self, X, y=None):
        """Nothing to learn; returns ``self``."""
        return self

    def transform(self, X):
        """Preprocess each image of ``X`` into a (n, 28, 28) uint8 array."""
        return np.stack([preprocess_digit_image(image) for image in X])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        return tags


def _to_grey(image) -> np.ndarray:
    if hasattr(image, "convert"):  # a PIL image
        image = _pil_to_array(image)
    array = _to_0_255(np.asarray(image))
    if array.ndim == 3 and array.shape[2] >= 3:
        # Colour, alpha (if any) ignored: weighted like Pillow's "L", in floats.
        array = array[..., :3].astype(np.float64) @ _LUMA_WEIGHTS
    elif array.ndim == 3 and array.shape[2] in (1, 2):
        array = array[..., 0]  # grey, or grey and alpha
    if array.ndim != 2 or min(array.shape) < 1:
        raise ValueError(f"expected one 2-D image, got an array of shape {array.shape}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError("the image has NaN or infinite pixels")
    return array


def _to_0_255(array: np.ndarray) -> np.ndarray:
    """Pixel values on the 0..255 scale, by type (see preprocess_digit_image):
    the brightness of the paper decides which side is ink."""
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.float64) * 255
    if kind == "f":
        array = array.astype(np.float64)
        finite = array[np.isfinite(array)]
        return array * 255 if finite.size and finite.max() <= 1 else array
    if kind == "u" and array.dtype.itemsize == 2:
        return array.astype(np.float64) / 257
    if kind in "iu" and array.size and array.max() > 255:
        return array.astype(np.float64) / 257
    return array


def _pil_to_array(image) -> np.ndarray:
    """A Pillow image as an array: colour as RGB, for the same grey conversion as
    arrays get; 32-bit integer, 16-bit and float grey as they are (``_to_0_255``
    scales them: Pillow's ``convert("L")`` would clip them to 0..255); other grey
    (8-bit, bilevel) as 8-bit grey."""
    from PIL import Image

    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return np.asarray(image)
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    if len(image.getbands()) >= 3:
        return np.asarray(image.convert("RGB"))
    return np.asarray(image.convert("L"))


def _ink_on_dark(grey: np.ndarray) -> np.ndarray:
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = np.median(border)
    # The border is paper: on light paper the ink is darker, on dark paper lighter.
    ink = background - grey if background >= 128 else grey - background
    if ink.max() <= 0:
        # Mid-grey paper with ink on the other side than its brightness suggests
        # (light ink on 128 grey, say).
        ink = -ink
    return np.clip(ink, 0, None)


def _crop_to_ink(ink: np.ndarray) -> np.ndarray:
    rows, columns = np.nonzero(ink > _INK_THRESHOLD * ink.max())
    return ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def _fit_into_box(ink: np.ndarray) -> np.ndarray:
    from PIL import Image

    scale = _BOX / max(ink.shape)
    height = max(1, round(ink.shape[0] * scale))
    width = max(1, round(ink.shape[1] * scale))
    normalised = (ink / ink.max() * 255).astype(np.float32)
    resized = Image.fromarray(normalised, mode="F").resize(
        (width, height), Image.Resampling.LANCZOS
    )
    return np.clip(np.asarray(resized), 0, 255)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    field = np.zeros((_FIELD, _FIELD), dtype=np.float64)
    top = (_FIELD - digit.shape[0]) // 2
    left = (_FIELD - digit.shape[1]) // 2
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    centre_row, centre_column = ndimage.center_of_mass(field)
    shift = (_FIELD / 2 - 0.5 - centre_row, _FIELD / 2 - 0.5 - centre_column)
    shifted = ndimage.shift(field, np.round(shift), order=0, mode="constant")
    return np.clip(np.rint(shifted), 0, 255).astype(np.uint8)
