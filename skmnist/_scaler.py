"""PixelScaler: images or flat pixel rows to float32 features in [0, 1].

Also :func:`validated_as_is`, which :class:`skmnist.MNISTClassifier` shares:
scikit-learn's ``validate_data`` costs some 0.12 ms whatever the input (dataframe
detection, tags), more than scaling and classifying one image; for the input
it would hand back unchanged, without a word, a few NumPy checks say so first.
"""

import math
import warnings
from numbers import Real

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from skmnist._compat import Interval, validate_estimator_params


class PixelScaler(TransformerMixin, BaseEstimator):
    """Flatten images and scale their pixels to float32 in [0, 1].

    Accepts a stack of images of shape ``(n_samples, height, width)``, such as
    MNIST's 28x28 digits, or pixel rows of shape ``(n_samples, n_pixels)``, as
    arrays of any numeric dtype, nested lists or DataFrames. Every pixel is
    divided by ``max_value``. Pixels outside ``[0, max_value]``, NaN or infinite
    values, non-numeric data and an image shape (or, for flat rows, a pixel
    count) other than the one seen in ``fit`` raise a ``ValueError`` naming the
    problem. Input that looks scaled already (booleans, or floats no brighter
    than 1 where ``max_value`` is larger) gives a ``UserWarning``:
    scaled twice, its pixels would all be nearly black.

    Parameters
    ----------
    max_value : float, default=255
        The brightest possible pixel value; it is mapped to 1.

    Attributes
    ----------
    image_shape_ : tuple of int
        Shape of one sample seen in ``fit``: ``(height, width)`` for images,
        ``(n_pixels,)`` for flat rows. ``inverse_transform`` restores it.
    n_features_in_ : int
        Number of pixels per sample.
    feature_names_in_ : ndarray of str
        Column names of ``X``, when ``X`` was a DataFrame with string columns.

    See Also
    --------
    sklearn.preprocessing.MinMaxScaler : scales by the range seen in the data.

    Examples
    --------
    >>> import numpy as np
    >>> from skmnist import PixelScaler
    >>> images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    >>> PixelScaler().fit_transform(images)
    array([[0. , 1. , 0.2, 0.4]], dtype=float32)
    """

    _parameter_constraints: dict = {
        "max_value": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, max_value=255):
        self.max_value = max_value

    def fit(self, X, y=None):
        """Record the image shape and pixel count of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_pixels)
            Images or flat pixel rows.
        y : None
            Ignored.

        Returns
        -------
        self : PixelScaler
            The fitted scaler.
        """
        validate_estimator_params(self)
        self._validate_pixels(X, reset=True)
        return self

    def transform(self, X):
        """Flatten ``X`` and divide its pixels by ``max_value``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or (n_samples, n_pixels)
            Images or flat pixel rows with as many pixels as seen in ``fit``.

        Returns
        -------
        X_scaled : ndarray of shape (n_samples, n_pixels), dtype float32
            Pixels in [0, 1].
        """
        check_is_fitted(self)
        pixels = self._validate_pixels(X, reset=False)
        return pixels.astype(np.float32) / np.float32(self.max_value)

    def inverse_transform(self, X):
        """Scale features back to pixel values in the image shape seen in ``fit``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_pixels)
            Scaled pixels, as returned by ``transform``.

        Returns
        -------
        X_original : ndarray of float32
            Pixels in ``[0, max_value]``, of shape ``(n_samples, *image_shape_)``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return (X * np.float32(self.max_value)).reshape(-1, *self.image_shape_)

    def get_feature_names_out(self, input_features=None):
        """Names of the output pixels.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input column names, for flat input only.

        Returns
        -------
        feature_names_out : ndarray of str
            ``pixel_<row>_<column>`` for images; the input names (or ``x0``,
            ``x1``, ...) for flat rows.
        """
        check_is_fitted(self)
        if len(self.image_shape_) == 1:
            # scikit-learn's rule for one output per input feature.
            return OneToOneFeatureMixin.get_feature_names_out(self, input_features)
        rows, columns = self.image_shape_
        return np.asarray(
            [f"pixel_{r}_{c}" for r in range(rows) for c in range(columns)],
            dtype=object,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def _validate_pixels(self, X, *, reset: bool) -> np.ndarray:
        X, image_shape = _flatten_images(X)
        if not reset and image_shape is not None:
            self._check_image_size(image_shape)
        if reset or not validated_as_is(self, X, "numeric"):
            X = validate_data(self, X, reset=reset, dtype="numeric")
        if reset:
            self.image_shape_ = image_shape or (X.shape[1],)
        self._check_pixel_range(X)
        self._warn_if_already_scaled(X)
        return X

    def _check_image_size(self, image_shape: tuple) -> None:
        n_pixels = int(np.prod(image_shape))
        fitted_on_images = len(self.image_shape_) == 2
        if n_pixels != self.n_features_in_ or (
            fitted_on_images and tuple(image_shape) != tuple(self.image_shape_)
        ):
            got = "x".join(map(str, image_shape))
            expected = "x".join(map(str, self.image_shape_))
            raise ValueError(
                f"X has images of {got} = {n_pixels} pixels, but PixelScaler was "
                f"fitted on {expected} = {self.n_features_in_} pixels per sample."
            )

    def _warn_if_already_scaled(self, X: np.ndarray) -> None:
        if X.dtype.kind == "b":
            looks = "boolean pixels"
        elif X.dtype.kind == "f" and X.size and self.max_value > 1 and 0 < X.max() <= 1:
            looks = "float pixels no brighter than 1"
        else:
            return
        warnings.warn(
            f"PixelScaler got {looks}, which look scaled to [0, 1] already; "
            f"dividing them by max_value={self.max_value} leaves them nearly "
            "black. Pass the unscaled pixels, or set max_value=1.",
            UserWarning,
            stacklevel=4,
        )

    def _check_pixel_range(self, X: np.ndarray) -> None:
        if X.size == 0:
            return
        low, high = X.min(), X.max()
        if low < 0:
            raise ValueError(
                f"Negative values in data passed to PixelScaler (minimum pixel "
                f"{low}); pixels must lie in [0, max_value={self.max_value}]."
            )
        if high > self.max_value:
            raise ValueError(
                f"X has pixel values above max_value={self.max_value} (maximum "
                f"{high}); set max_value to the brightest possible pixel."
            )


def validated_as_is(estimator, X, dtype) -> bool:
    """Whether ``validate_data(estimator, X, reset=False, dtype=dtype)`` would
    return ``X`` itself, with neither an error nor a warning.

    True only for a plain 2-D ndarray of at least one row, of ``dtype`` (a NumPy
    dtype, or ``"numeric"`` for booleans, integers and reals), whose floats are
    finite, with the ``n_features_in_`` of the fitted ``estimator``, which saw
    no feature names, and no array API dispatch: what ``check_array``
    returns as it is, and ``_check_feature_names`` and ``_check_n_features``
    let pass. Anything else (a DataFrame, a list, sparse, a conversion, a NaN,
    a mismatch) returns False, and the caller validates it as before, so every
    error and warning comes from scikit-learn as it always did.
    """
    if type(X) is not np.ndarray or X.ndim != 2 or not X.shape[0]:
        return False
    if dtype == "numeric":
        if X.dtype.kind not in "biuf":
            return False
    elif X.dtype != dtype:
        return False
    return (
        X.shape[1] == getattr(estimator, "n_features_in_", None)
        and not hasattr(estimator, "feature_names_in_")
        # scikit-learn's own test: the sum is not finite if a value is not (and,
        # rarely, by overflow, which leaves it to scikit-learn).
        and (X.dtype.kind != "f" or math.isfinite(X.sum()))
        and not get_config()["array_api_dispatch"]
    )


def _flatten_images(X):
    """Reshape a stack of 2-D images to rows of pixels; leave 2-D input alone."""
    if hasattr(X, "iloc") or hasattr(X, "tocsr"):  # DataFrames and sparse matrices
        return X, None
    array = np.asarray(X)
    if array.ndim == 3:
        return array.reshape(array.shape[0], -1), array.shape[1:]
    if array.ndim > 3:
        raise ValueError(
            f"X has {array.ndim} dimensions; expected images of shape "
            "(n_samples, height, width) or flat pixels (n_samples, n_pixels)."
        )
    return X, None
