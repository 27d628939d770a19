"""Random distortions of digit images inside the compiled training step.

A network trained only on MNIST's writers, centred and size-normalised by one
procedure, loses much of its accuracy on digits that are a little rotated,
slanted, thicker or thinner: the digits people draw and photograph. Training on
distorted copies of each batch is the remedy the literature measured (Simard,
Steinkraus & Platt 2003: the same one-hidden-layer MLP from 1.6% to 0.7% test
error with elastic distortions).

:class:`DigitDistortion` is a Keras layer that distorts its input images when
training and passes them through unchanged otherwise, so the distortion runs in
the compiled training program of either backend (no host round trip per batch,
no program per fit) and draws from the layer's seed generator, whose state is a
variable of the model: the same seed gives the same distortions, and a saved
model goes on with the stream where it stopped. Its inputs are flat rows of
``height * width`` pixels (or images of that shape), ink light on a dark
background of 0, as :class:`skmnist.PixelScaler` gives.

A distortion is an affine map (rotation, shear, scale, translation) about the
image's centre, optionally composed with Simard's elastic field (a uniform
random field smoothed by a Gaussian, scaled by ``alpha``), sampled bilinearly
with zero outside the image, and a change of stroke thickness (3x3 grey
dilation or erosion). The drawing (:meth:`DigitDistortion.draw`) and the
mapping (:func:`distort`) are apart, so that tests can check the mapping for
given parameters against SciPy's.
"""

import math

import keras
import numpy as np
from keras import ops


def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """The ``(size, size)`` matrix ``G`` for which ``G @ f`` is SciPy's
    ``gaussian_filter1d(f, sigma, mode="constant")`` along the first axis (its
    kernel truncated at 4 sigma and normalised before the zero padding)."""
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    matrix = np.zeros((size, size))
    for i in range(size):
        for j in range(max(0, i - radius), min(size, i + radius + 1)):
            matrix[i, j] = kernel[j - i + radius]
    return matrix.astype(np.float32)


def distort(images, matrices, shifts, displacements=None, grow=None):
    """``images`` of shape ``(batch, height, width)`` mapped per image.

    Output pixel ``p`` (row, column) takes the input's value at
    ``A^-1 (p - c - t) + c + d(p)``, bilinearly, 0 outside: ``A`` is the
    image's 2x2 ``matrices`` entry (in row, column coordinates), ``c`` the
    image's centre, ``t`` its ``shifts`` entry (rows, columns) and ``d`` its
    ``displacements`` entry of shape ``(2, height, width)``, if given. ``grow``
    (one value per image) then dilates the strokes where it is positive and
    erodes them where it is negative, with a 3x3 window.
    """
    batch, height, width = ops.shape(images)
    dtype = images.dtype
    rows, columns = np.meshgrid(
        np.arange(height, dtype=np.float32),
        np.arange(width, dtype=np.float32),
        indexing="ij",
    )
    centre = np.array([(height - 1) / 2, (width - 1) / 2], np.float32)
    # (2, h*w): the output pixels about the centre.
    grid = ops.convert_to_tensor(
        np.stack([rows.ravel() - centre[0], columns.ravel() - centre[1]]), dtype
    )
    a, b = matrices[:, 0, 0], matrices[:, 0, 1]
    c, d = matrices[:, 1, 0], matrices[:, 1, 1]
    determinant = a * d - b * c
    inverse = (
        ops.stack([ops.stack([d, -b], axis=-1), ops.stack([-c, a], axis=-1)], axis=1)
        / determinant[:, None, None]
    )
    moved = grid[None] - shifts[:, :, None]
    source = ops.einsum("bij,bjp->bip", inverse, moved)
    source = source + ops.convert_to_tensor(centre[None, :, None], dtype)
    if displacements is not None:
        source = source + ops.reshape(displacements, (batch, 2, height * width))
    flat = ops.reshape(images, (batch, height * width))
    result = _bilinear(flat, source[:, 0], source[:, 1], height, width)
    result = ops.reshape(result, (batch, height, width))
    if grow is not None:
        result = _thicken(result, grow)
    return result


def _bilinear(flat, y, x, height: int, width: int):
    y0, x0 = ops.floor(y), ops.floor(x)
    wy, wx = y - y0, x - x0
    total = 0
    for dy, row_weight in ((0, 1 - wy), (1, wy)):
        for dx, column_weight in ((0, 1 - wx), (1, wx)):
            row, column = y0 + dy, x0 + dx
            inside = (row >= 0) & (row <= height - 1) & (column >= 0)
            inside = inside & (column <= width - 1)
            index = ops.cast(
                ops.clip(row, 0, height - 1) * width + ops.clip(column, 0, width - 1),
                "int32",
            )
            values = ops.take_along_axis(flat, index, axis=1)
            weight = row_weight * column_weight * ops.cast(inside, flat.dtype)
            total = total + values * weight
    return total


def _thicken(images, grow):
    stack = images[..., None]
    dilated = ops.max_pool(stack, pool_size=3, strides=1, padding="same")[..., 0]
    eroded = -ops.max_pool(-stack, pool_size=3, strides=1, padding="same")[..., 0]
    grow = grow[:, None, None]
    return ops.where(grow > 0, dilated, ops.where(grow < 0, eroded, images))


_DISTORTION_ARGUMENTS = (
    "image_shape",
    "rotation",
    "shear",
    "scale",
    "translation",
    "elastic_alpha",
    "elastic_sigma",
    "thickness",
)


@keras.saving.register_keras_serializable(package="skmnist")
class DigitDistortion(keras.layers.Layer):
    """Random distortions of digit images while training; the identity otherwise.

    Parameters
    ----------
    image_shape : tuple of int
        ``(height, width)`` of the images; the inputs are rows of
        ``height * width`` pixels or images of that shape.
    rotation : float, default=0.0
        Largest rotation, in degrees (each image's uniform in +-rotation).
    shear : float, default=0.0
        Largest horizontal shear (a slant: columns move by ``shear`` times the
        row's distance from the centre).
    scale : tuple of float, default=(1.0, 1.0)
        Range of the scale factor.
    translation : float, default=0.0
        Largest shift in each direction, as a fraction of the image's side.
    elastic_alpha, elastic_sigma : float, default=0.0, 4.0
        Simard's elastic distortion: strength in pixels (0: none) and the
        smoothing of the random field.
    thickness : float, default=0.0
        Probability that an image's strokes change thickness by a pixel, half
        of them thicker, half thinner.
    seed : int, default=None
        Seed of the layer's seed generator.
    """

    def __init__(
        self,
        image_shape,
        rotation=0.0,
        shear=0.0,
        scale=(1.0, 1.0),
        translation=0.0,
        elastic_alpha=0.0,
        elastic_sigma=4.0,
        thickness=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(side) for side in image_shape)
        self.rotation = float(rotation)
        self.shear = float(shear)
        self.scale = tuple(float(factor) for factor in scale)
        self.translation = float(translation)
        self.elastic_alpha = float(elastic_alpha)
        self.elastic_sigma = float(elastic_sigma)
        self.thickness = float(thickness)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "image_shape": self.image_shape,
            "rotation": self.rotation,
            "shear": self.shear,
            "scale": self.scale,
            "translation": self.translation,
            "elastic_alpha": self.elastic_alpha,
            "elastic_sigma": self.elastic_sigma,
            "thickness": self.thickness,
            "seed": self.seed,
        }

    def distortion_config(self) -> dict:
        """The constructor's arguments but the seed: what the distortions are."""
        config = self.get_config()
        return {name: config[name] for name in _DISTORTION_ARGUMENTS}

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs, training=False):
        if not training:
            return inputs
        batch = ops.shape(inputs)[0]
        images = ops.reshape(inputs, (batch, *self.image_shape))
        distorted = distort(images, *self.draw(batch, inputs.dtype))
        return ops.reshape(distorted, ops.shape(inputs))

    def draw(self, batch, dtype="float32") -> tuple:
        """Random ``(matrices, shifts, displacements, grow)`` for ``batch``
        images, as :func:`distort` takes them."""
        height, width = self.image_shape
        uniform = keras.random.uniform(
            (batch, 6), seed=self.seed_generator, dtype=dtype
        )

        def symmetric(column, limit):
            return (2 * uniform[:, column] - 1) * limit

        angle = symmetric(0, math.radians(self.rotation))
        slant = symmetric(1, self.shear)
        low, high = self.scale
        factor = low + uniform[:, 2] * (high - low)
        cos, sin = ops.cos(angle), ops.sin(angle)
        # scale * slant @ rotation: the rotated image slanted (columns move by
        # slant times the row), then scaled.
        matrices = (
            ops.stack(
                [
                    ops.stack([cos, -sin], axis=-1),
                    ops.stack([sin + cos * slant, cos - sin * slant], axis=-1),
                ],
                axis=1,
            )
            * factor[:, None, None]
        )
        shifts = ops.stack(
            [
                symmetric(3, self.translation * height),
                symmetric(4, self.translation * width),
            ],
            axis=-1,
        )
        displacements = None
        if self.elastic_alpha:
            field = keras.random.uniform(
                (batch, 2, height, width),
                minval=-1.0,
                maxval=1.0,
                seed=self.seed_generator,
                dtype=dtype,
            )
            rows = ops.convert_to_tensor(
                gaussian_matrix(height, self.elastic_sigma), dtype
            )
            columns = ops.convert_to_tensor(
                gaussian_matrix(width, self.elastic_sigma), dtype
            )
            smooth = ops.einsum("ij,bcjk,lk->bcil", rows, field, columns)
            displacements = smooth * self.elastic_alpha
        grow = None
        if self.thickness:
            u = uniform[:, 5]
            half = self.thickness / 2
            grow = ops.where(u < half, 1.0, ops.where(u < self.thickness, -1.0, 0.0))
        return matrices, shifts, displacements, grow


# MNISTClassifier's augmentation__* parameters and their values with
# augmentation=True. Strengths a digit drawn or photographed by someone meets,
# after skmnist's preprocessing has re-centred and re-scaled it.
DEFAULTS = {
    "rotation": 15.0,
    "shear": 0.3,
    "scale": 0.15,
    "translation": 0.05,
    "elastic_alpha": 34.0,
    "elastic_sigma": 4.0,
    "thickness": 0.2,
}
_LIMITS = {  # largest value of each, far beyond any useful one
    "rotation": 180.0,
    "shear": 1.0,
    "scale": 0.95,
    "translation": 0.5,
    "elastic_alpha": 1000.0,
    "elastic_sigma": 28.0,
    "thickness": 1.0,
}


def distortion_config(routed: dict, n_features: int | None) -> dict | None:
    """The :class:`DigitDistortion` arguments (but the seed) of the
    ``augmentation__*`` parameters ``routed`` (prefix removed) for rows of
    ``n_features`` pixels; ``ValueError`` naming what is wrong otherwise. With
    ``n_features=None`` (augmentation off), only the check: None."""
    unknown = sorted(set(routed) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown augmentation parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(f'augmentation__{name}' for name in unknown)}; the "
            f"parameters are {', '.join(f'augmentation__{n}' for n in DEFAULTS)}."
        )
    values = {}
    for name, default in DEFAULTS.items():
        value = routed.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"augmentation__{name} must be a number, not {value!r}.")
        value = float(value)
        limit = _LIMITS[name]
        if not math.isfinite(value) or value < 0 or (limit and value > limit):
            bound = f"from 0 to {limit:g}"
            raise ValueError(f"augmentation__{name} must be {bound}, not {value!r}.")
        values[name] = value
    if values["elastic_sigma"] == 0 and values["elastic_alpha"]:
        raise ValueError("augmentation__elastic_sigma must be more than 0.")
    if n_features is None:
        return None
    side = math.isqrt(n_features)
    if side * side != n_features or side < 3:
        what = (
            f"the pixels of an image of at least 3x3 (they make a {side}x{side} one)"
            if side * side == n_features
            else "the pixels of a square image (28x28 = 784 for MNIST's)"
        )
        raise ValueError(
            f"augmentation distorts images, but X's rows of {n_features} "
            f"features are not {what}: pass images' pixels, as PixelScaler "
            "gives them, or set augmentation=False."
        )
    scale = values.pop("scale")
    # Simard's pixels are a 28x28 image's: the same distortion, resampled. The
    # smoothed field's size goes as alpha / sigma, so alpha as the area.
    values["elastic_sigma"] *= side / 28
    values["elastic_alpha"] *= (side / 28) ** 2
    return {"image_shape": (side, side), "scale": (1 - scale, 1 + scale), **values}
