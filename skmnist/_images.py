"""Turning a photo or scan of one handwritten digit into an MNIST-style image."""

import contextlib
import math
import os
import re
import stat

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin

# MNIST digits are scaled to fit a 20x20 box and centred by centre of mass in a
# 28x28 field (LeCun et al.); ink is light on a dark background. MNIST itself
# puts the centre of mass at pixel (14, 14), counting from 0 (its test digits:
# 13.99 and 14.01 on average, never more than half a pixel off), so that is
# where a digit goes: MNIST's own digits then come back unchanged.
_FIELD = 28
_BOX = 20
_CENTRE = 14.0
# On paper with noise or texture (photos, scans), pixels fainter than this
# fraction of the brightest ink count as background when cropping to the digit.
_INK_THRESHOLD = 0.2
# On flat paper (drawn or rendered images, MNIST itself) a lower one, so that
# the faint anti-aliased rim of a stroke stays part of the digit; not lower
# still, or the ringing around a JPEG's strokes widens the crop (on MNIST test
# digits drawn as JPEGs, 0.04 cost 1.2 points of accuracy that 0.1 did not).
_FLAT_INK_THRESHOLD = 0.1
# Paper counts as flat when this quantile of the border's deviation from the
# paper colour is zero: a few ink pixels touching the border do not count.
_FLAT_QUANTILE = 0.9
# Ink is darker than light paper and lighter than dark paper, unless the other
# side of the paper's colour holds this many times stronger marks.
_OTHER_SIDE = 4
# Colour to grey: the ITU-R 601-2 luma weights of R, G and B, as Pillow's
# convert("L") uses them, for arrays and Pillow images alike.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
# A picture with transparency is drawn in its alpha channel when its ink on
# white paper shows less than this fraction of the contrast its alpha has.
_ALPHA_CONTRAST = 0.5
# A digit needs a few hundred pixels across at most (it ends up 20x20): an
# image of more pixels than this (a phone photo, a crafted upload) is reduced by
# averaging blocks of pixels, tile by tile, before anything else, so that the
# float arithmetic below works on a few megabytes whatever the image's size.
_MAX_PIXELS = 1024 * 1024
# Nor a side longer than this: a 16-megapixel image one pixel high is no
# smaller for being reduced by the square root of its excess.
_MAX_SIDE = 2048
# Sides longer than this are refused from the header: Pillow decodes a PNG row
# by row with a few rows of buffer, so an image one pixel high but 16 million
# wide cost three times its decoded size. Photos and scans of a page are under
# 15,000 pixels a side.
_MAX_DECODED_SIDE = 2**15
# The full image is converted and reduced a tile of this many reduced pixels
# square at a time, so that no converted copy of it is ever made whole.
_TILE = 128
#: The image formats read from files and uploads: the raster formats people
#: save digits in. Pillow would also try formats that need an external program
#: (EPS and PDF run Ghostscript) or exotic parsers; they are never tried.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
_EXIF_ORIENTATION = 0x0112
# Each EXIF orientation's turn, applied after reduction (to the small image):
# ImageOps.exif_transpose would copy the full-size one.
_EXIF_TRANSPOSE = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}
# Ink spanning fewer pixels than this either way is a speck (dust, a stray
# dot), not a digit: scaled up to the 20x20 box it would be a square blotch.
# sklearn's 8x8 digits span 8.
_MIN_EXTENT = 4
# Paper whose strongest mark is within this many standard deviations of its
# own noise (estimated on the border) is blank: noise alone reaches 4 to 7
# (8 after JPEG compression) on a photo's pixels, a legible digit dozens.
_NOISE_FACTOR = 10
# Nor does the crop to the digit reach out to specks of noise: on a dim photo
# (noise of 15 levels) the ink threshold alone took in specks all over the page
# and shrank the digit to a fraction of the box.
_CROP_NOISE_FACTOR = 6
# Pixels of the border over which lighting counts as even, when estimating noise.
_NOISE_WINDOW = 15
_LAYOUTS = (
    "(height, width), (height, width, channels) with 1 (grey), 2 (grey and "
    "alpha), 3 (RGB) or 4 (RGBA) channels, or (1, height, width)"
)


def preprocess_digit_image(image) -> np.ndarray:
    """Make one digit image look like an MNIST digit.

    MNIST's own recipe: greyscale; inverted to light ink on a dark background
    where the background is the brighter side (unless the marks on its other
    side are far stronger: light ink on mid-grey paper, say); cropped to the
    digit, leaving out specks of the paper's noise; scaled to
    fit 20x20 keeping the aspect ratio (with Lanczos anti-aliasing); placed in a
    28x28 field with its centre of mass at pixel (14, 14), as in MNIST. An MNIST
    digit comes back almost unchanged (the default pipeline's test accuracy on
    MNIST's test digits passed through it is the same within 0.3 points).

    Parameters
    ----------
    image : PIL.Image.Image or array-like
        The digit, any size, grey or colour, dark-on-light or light-on-dark.
        Arrays may have the shape ``(height, width)``, ``(height, width,
        channels)`` with 1 (grey), 2 (grey and alpha), 3 (RGB) or 4 (RGBA)
        channels, or ``(1, height, width)`` (one image of a stack such as
        ``x_test[:1]``); a shape that fits two of these, such as ``(1, 28, 3)``,
        is refused as ambiguous. Colour is turned to grey with the ITU-R 601-2
        luma weights (as Pillow's ``convert("L")``), so an RGB array and the
        same picture as a Pillow image give the same digit. A Pillow image's
        EXIF orientation is applied (as :func:`PIL.ImageOps.exif_transpose`
        does), so a phone photo is read upright; one of more than 1024x1024
        pixels (or 2048 a side) is first reduced by averaging blocks of pixels
        (:meth:`PIL.Image.Image.reduce`), to spare memory. A Pillow image you
        opened yourself is yours: it is used whatever its format and size (the
        format allow-list and pixel limit of :func:`load_digit_image` apply to
        files, which it opens). Transparent parts (a Pillow
        image's, or an array's alpha channel) count as white paper, unless the
        picture is drawn in the alpha channel: when the ink would barely show
        on white paper (a light digit on a transparent canvas, as drawing apps
        export), the alpha channel is the ink. Pixel values are read on the
        0..255 scale by type, for arrays and Pillow images alike: 16-bit ones
        (``uint16``, Pillow's ``I;16`` modes) are divided by 257; floats
        (Pillow's ``F``) are taken as 0..1 if none exceeds 1, else as 0..255;
        other integers (Pillow's 32-bit ``I``, in which Pillow opens some
        16-bit PNGs) as 0..255 if none exceeds 255, else as 16-bit; booleans
        (bilevel) as 0 and 255.

    Returns
    -------
    digit : ndarray of shape (28, 28), dtype uint8
        Pixels 0..255, ready for :class:`skmnist.PixelScaler`.

    Raises
    ------
    ValueError
        If the image has no digit (the message says what it saw: every pixel
        the same value, a fully transparent image, only a speck of ink under
        4x4 pixels, or only the paper's noise, every mark within 10 standard
        deviations of the noise along the border), NaN or infinite pixels,
        pixel values that are no numbers (complex, dates, strings), a shape
        that is not one of the layouts above, or is no image at all (``None``,
        a file name: read files with :func:`load_digit_image`).

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
    return _digit_from_grey(_to_grey(image))


def preprocess_decoded_image(picture: np.ndarray) -> np.ndarray:
    """:func:`preprocess_digit_image` of what :func:`decode_image` returned,
    whose layout is known: ``(height, width)`` or channels last, even one
    pixel high."""
    return _digit_from_grey(_to_grey(picture, channels_last=True))


def _digit_from_grey(grey: np.ndarray) -> np.ndarray:
    ink = _ink_on_dark(grey)
    cropped = _crop_to_ink(ink, grey)
    boxed = _fit_into_box(cropped)
    return _centre_by_mass(boxed)


def load_digit_image(path) -> np.ndarray:
    """Read an image file (PNG, JPEG, ...) and preprocess it with
    :func:`preprocess_digit_image`.

    Only the formats of :data:`IMAGE_FORMATS` are read (PNG, JPEG, GIF, BMP,
    TIFF and WebP): formats that Pillow reads with an external program (EPS
    and PDF run Ghostscript) or rarely used parsers are refused unread. The
    EXIF orientation of the file (phone photos) is applied. An image of more
    pixels than :data:`PIL.Image.MAX_IMAGE_PIXELS` is refused before it is
    decoded. A JPEG of more than 1024x1024 pixels is decoded at a reduced
    scale (Pillow's ``draft``), any other image is reduced tile by tile as
    it is converted: reading costs the decoded image once and a few
    megabytes besides. Of an animated image (a GIF, say) the first frame is
    read.

    Parameters
    ----------
    path : str, path-like or binary file object
        The image file, or an open binary file (such as :class:`io.BytesIO`)
        positioned at the image's start; a file object is left open.

    Returns
    -------
    digit : ndarray of shape (28, 28), dtype uint8
        The MNIST-style digit.

    Raises
    ------
    ValueError
        For every problem with the file, with a message that names the file
        and the problem: it does not exist or cannot be read (the
        operating system's reason, such as a directory, permission denied or
        a loop of symbolic links; the :class:`OSError` is chained as the
        cause), it is not a regular file (a named pipe, socket or device,
        refused without opening it), it is not an image in one of the
        formats read, it is damaged or truncated (or in a form Pillow cannot
        decode), it has more pixels than Pillow decodes safely
        (:data:`PIL.Image.MAX_IMAGE_PIXELS`; a decompression bomb), or
        :func:`preprocess_digit_image` refuses the picture (a blank image).
        No other exception comes from reading the file.

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image, ImageDraw
    >>> from skmnist import load_digit_image
    >>> page = Image.new("L", (60, 80), 255)
    >>> ImageDraw.Draw(page).line([(30, 10), (30, 70)], fill=0, width=6)
    >>> path = os.path.join(tempfile.mkdtemp(), "one.png")
    >>> page.save(path)
    >>> load_digit_image(path).shape
    (28, 28)
    """
    if hasattr(path, "read"):
        # The caller's file: read here, and left open for the caller to close.
        name = str(getattr(path, "name", "<file object>"))
        source = contextlib.nullcontext(path)
    else:
        name = os.fspath(path)
        source = _open_image_file(path, name)
    with source as file:
        try:
            picture = decode_image(file)
        except ImageDecodeError as error:
            raise ValueError(f"cannot read {name!r}: {error}") from error
    try:
        return preprocess_decoded_image(picture)
    except ValueError as error:
        raise ValueError(f"{name!r}: {error}") from None


class ImageDecodeError(ValueError):
    """An image file or upload that is not read: ``reason`` says why, in one of
    the words ``"format"`` (not an image of :data:`IMAGE_FORMATS`), ``"size"``
    (more pixels than allowed; ``pixels`` says how many, as far as known) or
    ``"damaged"``; the message says it to a user."""

    def __init__(self, message: str, reason: str, pixels: str = ""):
        super().__init__(message)
        self.reason = reason
        self.pixels = pixels


def decode_image(file, max_pixels: int | None = None) -> np.ndarray:
    """The picture in an open binary image file, as an array at a working size.

    Only :data:`IMAGE_FORMATS` are tried, so no external program is ever run
    to read a file. An image of more than ``max_pixels`` pixels (by default
    Pillow's :data:`PIL.Image.MAX_IMAGE_PIXELS`) is refused from its header,
    before it is decoded; one of more than ``_MAX_PIXELS`` is decoded at a
    reduced scale where the format allows (JPEG's ``draft``), and otherwise
    reduced tile by tile as it is converted, so that decoding costs the
    decoded image once and a few megabytes besides. The file is closed by its
    caller; everything decoded here is released on return.

    Raises
    ------
    ImageDecodeError
        Saying why the file is not read.
    """
    from PIL import Image, UnidentifiedImageError

    if max_pixels is None:
        max_pixels = Image.MAX_IMAGE_PIXELS or math.inf
    try:
        image = Image.open(file, formats=IMAGE_FORMATS)
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"not an image file in one of the formats read "
            f"({', '.join(IMAGE_FORMATS)})",
            "format",
        ) from None
    except Image.DecompressionBombError as error:
        # Beyond twice Pillow's limit, refused in Image.open; its message
        # holds the image's size.
        found = re.search(r"\((\d+) pixels\)", str(error))
        pixels = f"{found.group(1)} pixels" if found else ""
        raise ImageDecodeError(_too_large(error), "size", pixels) from None
    except Exception as error:  # a damaged header fails in many ways
        raise _damaged(error) from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            # Pillow only warns between its limit and twice it: refused here.
            raise ImageDecodeError(
                _too_large(
                    f"{width}x{height} pixels, more than the limit of {max_pixels}"
                ),
                "size",
                f"{width}x{height} = {width * height} pixels",
            )
        if max(width, height) > _MAX_DECODED_SIDE:
            raise ImageDecodeError(
                _too_large(
                    f"{width}x{height} pixels, a side longer than {_MAX_DECODED_SIDE}"
                ),
                "size",
                f"{width}x{height} pixels, a side longer than {_MAX_DECODED_SIDE}",
            )
        try:
            factor = _reduction(image.size)
            if factor > 1:
                # A large JPEG decodes at a half, quarter or eighth of its size.
                image.draft(None, (width // factor, height // factor))
            return _pil_to_array(image)
        except MemoryError:
            raise ImageDecodeError(
                "the image is too large to decode in the memory available", "size"
            ) from None
        except Exception as error:
            raise _damaged(error) from None


def _too_large(detail) -> str:
    return (
        "the image is too large to decode safely, possibly a decompression bomb "
        f"({detail})"
    )


def _damaged(error: Exception) -> ImageDecodeError:
    # Pillow's decoders fail on damaged files with OSError ("image file is
    # truncated"), SyntaxError, EOFError, struct.error, ValueError and more:
    # whichever it is, the file is damaged.
    return ImageDecodeError(
        "the image file is damaged or truncated, or in a form Pillow cannot "
        f"decode ({type(error).__name__}: {first_line(error)})",
        "damaged",
    )


def first_line(error: Exception) -> str:
    """The first line of an exception's message (Pillow's and Keras's may run
    over many; refusals are one line)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def _open_image_file(path, name: str):
    """Open ``path`` for reading, apart from decoding, so that what the
    operating system refuses (a loop of symbolic links, say) is not reported
    as a damaged image; anything but a regular file is refused unopened
    (opening a named pipe waits for a writer for ever, a device never ends)."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISREG(mode):
            return open(path, "rb")
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(path)
    except FileNotFoundError as error:
        raise ValueError(f"cannot read {name!r}: no such file") from error
    except IsADirectoryError as error:
        raise ValueError(f"cannot read {name!r}: it is a directory") from error
    except PermissionError as error:
        raise ValueError(f"cannot read {name!r}: permission denied") from error
    except (OSError, ValueError) as error:  # ValueError: a NUL in the name
        reason = getattr(error, "strerror", None) or str(error)
        raise ValueError(f"cannot read {name!r}: {reason}") from error
    raise ValueError(
        f"cannot read {name!r}: it is not a regular file (a pipe, socket or device)"
    )


class DigitImagePreprocessor(TransformerMixin, BaseEstimator):
    """:func:`preprocess_digit_image` as a transformer, for use in pipelines.

    It has no parameters and learns nothing: ``fit`` returns it unchanged and sets
    no attributes (not even ``n_features_in_``, as the images may have any
    sizes), and ``transform`` preprocesses each image of a sequence of images
    (Pillow images or arrays, each in a layout :func:`preprocess_digit_image`
    accepts; an array of shape ``(n, height, width)`` is ``n`` grey images).
    MNIST's own digits pass through almost unchanged, so a pipeline trained on
    MNIST classifies them as well with it in front as without.

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
        """Preprocess each image of ``X`` into a (n, 28, 28) uint8 array.

        An image that :func:`preprocess_digit_image` refuses is named by its
        index in ``X``; ``X`` that is no sequence of images (one image, a 2-D
        array of flat rows, a file name) or holds none is refused too, each
        with a ``ValueError``.
        """
        images = _images_of(X)
        digits = []
        for index, image in enumerate(images):
            try:
                digits.append(preprocess_digit_image(image))
            except ValueError as error:
                raise ValueError(
                    f"image {index} (counting from 0) of X: {error}"
                ) from None
        return np.stack(digits)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        return tags


def _images_of(X) -> list:
    """The images of a transformer's X, or a ValueError saying what X is."""
    expected = (
        "X must be a sequence of images, such as a list of images or an array "
        "of shape (n_samples, height, width)"
    )
    if isinstance(X, str | bytes | os.PathLike) or hasattr(X, "convert"):
        kind = "one Pillow image" if hasattr(X, "convert") else type(X).__name__
        raise ValueError(f"{expected}; got a {kind}: for one image, pass [image]")
    # A 1-D object array holds images of mixed sizes; other arrays (and data
    # frames) under three dimensions hold no images, only rows of pixels.
    if (
        getattr(X, "ndim", 3) < 3
        and getattr(getattr(X, "dtype", None), "kind", "") != "O"
    ):
        raise ValueError(
            f"{expected}; got a {X.ndim}-D array of shape {tuple(X.shape)}: for "
            "one image, pass [image]; reshape flat rows of pixels to "
            "(n_samples, height, width)"
        )
    try:
        images = list(X)
    except TypeError:
        raise ValueError(f"{expected}; got a {type(X).__name__}") from None
    if not images:
        raise ValueError("X has no images: at least one is required")
    return images


def _to_grey(image, channels_last: bool = False) -> np.ndarray:
    """One 2-D float image on the 0..255 scale; alpha resolved (see
    preprocess_digit_image). A Pillow image's array, or one that
    ``channels_last`` says is laid out like it, is never ambiguous."""
    expected = "expected an image (an array or a Pillow image)"
    if image is None:
        raise ValueError(f"{expected}; got None")
    if isinstance(image, str | bytes | os.PathLike):
        raise ValueError(
            f"{expected}; got a {type(image).__name__}, {image!r}: to read an "
            "image file, use load_digit_image"
        )
    if hasattr(image, "convert"):  # a PIL image
        image = _pil_to_array(image)
        channels_last = True
    array = _numbers(image)
    array = _to_0_255(array if channels_last else _one_image(array))
    alpha = None
    if array.ndim == 3:
        channels = array.shape[2]
        if channels in (2, 4):
            alpha = array[..., -1].astype(np.float64)
        if channels >= 3:
            # Weighted like Pillow's "L", in floats.
            array = array[..., :3].astype(np.float64) @ _LUMA_WEIGHTS
        else:
            array = array[..., 0]
    array = array.astype(np.float64)
    if not np.isfinite(array).all() or (
        alpha is not None and not np.isfinite(alpha).all()
    ):
        raise ValueError("the image has NaN or infinite pixels")
    if alpha is not None:
        array = _resolve_alpha(array, alpha)
    return array


def _numbers(image) -> np.ndarray:
    """The image as an array of booleans, integers or floats."""
    try:
        array = np.asarray(image)
        if array.dtype.kind == "O":  # numbers as Python objects, or no numbers
            array = array.astype(np.float64)
    except (TypeError, ValueError):  # strings in an object array, ragged rows
        raise ValueError(
            "pixel values must be numbers (booleans, integers or floats), in "
            "rows of equal length"
        ) from None
    if array.dtype.kind not in "biuf":
        raise ValueError(
            "pixel values must be numbers (booleans, integers or floats); got "
            f"an array of dtype {array.dtype}"
        )
    return array


def _one_image(array: np.ndarray) -> np.ndarray:
    """The array as (height, width) or (height, width, channels), from the
    layouts that its shape can be; refuses a shape that fits none, or two."""
    shape = array.shape
    if array.ndim == 3:
        channels_last = shape[2] in (1, 2, 3, 4)
        stacked = shape[0] == 1
        if channels_last and stacked:
            raise ValueError(
                f"the image shape {shape} is ambiguous: a {shape[0]}x{shape[1]} "
                f"image with {shape[2]} channels, or one {shape[1]}x{shape[2]} "
                "grey image of a stack; pass (height, width) for grey images"
            )
        if stacked:
            array = array[0]
        elif not channels_last:
            array = None
    if array is None or array.ndim not in (2, 3) or min(array.shape[:2]) < 1:
        raise ValueError(
            f"expected one 2-D image, of shape {_LAYOUTS}; "
            f"got an array of shape {shape}"
        )
    return array


def _resolve_alpha(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The picture on white paper, or its alpha channel where the picture is
    drawn in it (light ink that white paper would hide)."""
    if alpha.max() <= 0:
        raise ValueError("the image is blank: no digit found (it is fully transparent)")
    opacity = np.clip(alpha / 255, 0, 1)
    on_white = grey * opacity + 255 * (1 - opacity)
    if alpha.min() == alpha.max():  # no drawing in the alpha channel
        return on_white
    if _ink_on_dark(on_white).max() < _ALPHA_CONTRAST * _ink_on_dark(alpha).max():
        return np.clip(alpha, 0, 255)
    return on_white


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
    """A Pillow image as an array, upright by its EXIF orientation: colour as
    RGB, with transparency as RGBA, for the same grey and alpha handling as
    arrays get; 32-bit integer, 16-bit and float grey as they are
    (``_to_0_255`` scales them: Pillow's ``convert("L")`` would clip them to
    0..255); other grey (8-bit, bilevel) as 8-bit grey. Reduced where larger
    than ``_MAX_PIXELS`` or ``_MAX_SIDE``, tile by tile, so that no converted
    copy of the full image is ever made."""
    from PIL import Image

    transpose = _EXIF_TRANSPOSE.get(_orientation(image))
    if image.mode.startswith("I;16"):
        # Pillow reduces 32-bit, not 16-bit, grey; the block averages fit 16
        # bits again, and stay on the 16-bit scale (by type, as unreduced).
        mode, dtype = "I", np.uint16
    elif image.mode in ("I", "F"):
        mode, dtype = image.mode, None
    elif image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        "transparency" in image.info
    ):
        mode, dtype = "RGBA", None
    else:
        mode, dtype = ("RGB" if len(image.getbands()) >= 3 else "L"), None
    factor = _reduction(image.size)
    if factor == 1:
        small = image if image.mode.startswith("I;16") else _converted(image, mode)
    else:
        image.load()
        width, height = image.size
        side = _TILE * factor
        small = Image.new(mode, (-(-width // factor), -(-height // factor)))
        for top in range(0, height, side):
            for left in range(0, width, side):
                tile = image.crop(
                    (left, top, min(left + side, width), min(top + side, height))
                )
                small.paste(
                    _converted(tile, mode).reduce(factor),
                    (left // factor, top // factor),
                )
    if transpose is not None:
        small = small.transpose(getattr(Image.Transpose, transpose))
    array = np.asarray(small)
    return array.astype(dtype) if dtype is not None and factor > 1 else array


def _converted(image, mode: str):
    return image if image.mode == mode else image.convert(mode)


def _orientation(image) -> int:
    """The image's EXIF orientation, 1 (upright) where it has none or its EXIF
    data cannot be read: metadata never stops a picture from being read."""
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a damaged or non-TIFF eXIf chunk: SyntaxError and more
        return 1


def _reduction(size: tuple[int, int]) -> int:
    """The whole factor that brings an image of ``size`` within _MAX_PIXELS
    and _MAX_SIDE."""
    width, height = size
    return max(
        1,
        math.ceil(math.sqrt(width * height / _MAX_PIXELS)),
        math.ceil(max(width, height) / _MAX_SIDE),
    )


def _ink_on_dark(grey: np.ndarray) -> np.ndarray:
    background = np.median(_border(grey))
    # The border is paper: on light paper the ink is darker, on dark paper lighter.
    ink = background - grey if background >= 128 else grey - background
    if -ink.min() > _OTHER_SIDE * max(ink.max(), 0):
        # The ink is on the other side than the paper's brightness suggests:
        # light ink on 128 grey, say, or a 0..1 float image read on the 0..255
        # scale because resampling overshot 1 (its white paper then looks
        # dark, with the overshoot as the only lighter "ink").
        ink = -ink
    return np.clip(ink, 0, None)


def _border(image: np.ndarray) -> np.ndarray:
    return np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])


def _crop_to_ink(ink: np.ndarray, grey: np.ndarray) -> np.ndarray:
    strongest = ink.max()
    if strongest <= 0:
        raise ValueError(f"the image is blank: no digit found ({_seen(grey)})")
    # Paper with noise or texture varies along the border; flat paper does not
    # (beyond a few ink pixels touching it), and then fainter ink is still ink.
    deviation = np.abs(_border(grey) - np.median(_border(grey)))
    flat = np.quantile(deviation, _FLAT_QUANTILE) == 0
    noise = _noise(grey)
    if strongest <= _NOISE_FACTOR * noise:
        raise ValueError(
            "the image is blank: no digit found (only noise: the strongest mark "
            f"is {strongest:.3g} levels from the paper on a 0..255 scale, the "
            f"paper's noise about {noise:.2g})"
        )
    threshold = max(
        (_FLAT_INK_THRESHOLD if flat else _INK_THRESHOLD) * strongest,
        _CROP_NOISE_FACTOR * noise,
    )
    rows, columns = np.nonzero(ink > threshold)
    cropped = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    if max(cropped.shape) < _MIN_EXTENT:
        raise ValueError(
            "the image is blank: no digit found (only a speck of ink, "
            f"{cropped.shape[0]}x{cropped.shape[1]} pixels)"
        )
    return cropped


def _noise(grey: np.ndarray) -> float:
    """The standard deviation of the paper's noise along the border: of what
    is left after a running median takes out the lighting (which changes
    slowly) and a few ink pixels touching the border; estimated from the
    median absolute value, as for a normal distribution."""
    edges = (grey[0], grey[-1], grey[:, 0], grey[:, -1])
    residuals = np.concatenate(
        [
            edge - ndimage.median_filter(edge, _NOISE_WINDOW, mode="nearest")
            for edge in edges
        ]
    )
    return float(1.4826 * np.median(np.abs(residuals)))


def _seen(grey: np.ndarray) -> str:
    """What a blank image showed, in a user's words."""
    return f"every pixel is {float(grey.flat[0]):g} on a 0..255 scale"


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
    # Whole pixels, as MNIST did: the digit itself is not resampled again.
    shift = np.round((_CENTRE - centre_row, _CENTRE - centre_column))
    shifted = ndimage.shift(field, shift, order=0, mode="constant")
    return np.clip(np.rint(shifted), 0, 255).astype(np.uint8)
