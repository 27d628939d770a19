"""The distortions of skmnist._augmentation: the mapping against SciPy's for
given parameters, and the layer's drawing, seeding and place in training."""

import keras
import numpy as np
import pytest
from scipy import ndimage

from skmnist._augmentation import DigitDistortion, distort, gaussian_matrix

RNG = np.random.default_rng(0)


def _digits(n=3, side=20):
    """Blobs of ink away from the border, on 0."""
    images = np.zeros((n, side, side), np.float32)
    images[:, 5:15, 6:12] = RNG.uniform(0.2, 1.0, (n, 10, 6))
    return images


def _scipy_affine(image, matrix, shift):
    centre = (np.array(image.shape) - 1) / 2
    inverse = np.linalg.inv(matrix)
    offset = centre - inverse @ (centre + shift)
    return ndimage.affine_transform(
        image, inverse, offset=offset, order=1, mode="grid-constant"
    )


@pytest.mark.parametrize(
    "matrix, shift",
    [
        (np.eye(2), np.zeros(2)),
        (np.array([[0.8, -0.6], [0.6, 0.8]]), np.zeros(2)),  # about 37 degrees
        (np.array([[1.0, 0.0], [0.3, 1.0]]), np.array([1.5, -2.25])),
        (np.array([[0.7, 0.1], [-0.2, 1.2]]), np.array([-3.0, 0.5])),
    ],
)
def test_the_affine_map_is_scipys(matrix, shift):
    images = _digits()
    n = len(images)
    out = distort(
        keras.ops.convert_to_tensor(images),
        keras.ops.convert_to_tensor(np.repeat(matrix[None], n, 0).astype("float32")),
        keras.ops.convert_to_tensor(np.repeat(shift[None], n, 0).astype("float32")),
    )
    expected = np.stack([_scipy_affine(image, matrix, shift) for image in images])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), expected, atol=1e-5)


def test_the_elastic_field_is_scipys_map_coordinates():
    images = _digits(2)
    displacements = RNG.uniform(-2, 2, (2, 2, 20, 20)).astype(np.float32)
    out = distort(
        keras.ops.convert_to_tensor(images),
        keras.ops.convert_to_tensor(np.repeat(np.eye(2, dtype="float32")[None], 2, 0)),
        keras.ops.convert_to_tensor(np.zeros((2, 2), np.float32)),
        keras.ops.convert_to_tensor(displacements),
    )
    rows, columns = np.meshgrid(np.arange(20), np.arange(20), indexing="ij")
    expected = [
        ndimage.map_coordinates(
            image, [rows + d[0], columns + d[1]], order=1, mode="grid-constant"
        )
        for image, d in zip(images, displacements, strict=True)
    ]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), expected, atol=1e-5)


@pytest.mark.parametrize("sigma", [1.0, 4.0])
def test_the_smoothing_matrix_is_scipys_gaussian_filter(sigma):
    field = RNG.uniform(-1, 1, (28, 28))
    matrix = gaussian_matrix(28, sigma).astype(np.float64)
    np.testing.assert_allclose(
        matrix @ field @ matrix.T,
        ndimage.gaussian_filter(field, sigma, mode="constant"),
        atol=1e-6,
    )


def test_thickness_is_a_3x3_grey_dilation_or_erosion():
    images = _digits(3)
    n = len(images)
    out = distort(
        keras.ops.convert_to_tensor(images),
        keras.ops.convert_to_tensor(np.repeat(np.eye(2, dtype="float32")[None], n, 0)),
        keras.ops.convert_to_tensor(np.zeros((n, 2), np.float32)),
        grow=keras.ops.convert_to_tensor(np.array([1.0, -1.0, 0.0], np.float32)),
    )
    out = keras.ops.convert_to_numpy(out)
    np.testing.assert_allclose(out[0], ndimage.grey_dilation(images[0], size=3))
    np.testing.assert_allclose(out[1], ndimage.grey_erosion(images[1], size=3))
    np.testing.assert_allclose(out[2], images[2], atol=1e-6)


def _layer(**params):
    defaults = dict(rotation=20, shear=0.2, scale=(0.8, 1.2), translation=0.1)
    return DigitDistortion((20, 20), **{**defaults, **params})


def test_outside_training_it_is_the_identity():
    rows = _digits(4).reshape(4, -1)
    out = _layer(elastic_alpha=34, thickness=0.5, seed=1)(rows)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), rows)


def test_training_distorts_each_image_its_own_way_and_keeps_the_shape():
    rows = np.repeat(_digits(1).reshape(1, -1), 6, axis=0)
    out = keras.ops.convert_to_numpy(
        _layer(elastic_alpha=10, thickness=0.5, seed=1)(rows, training=True)
    )
    assert out.shape == rows.shape and out.dtype == np.float32
    assert len({o.tobytes() for o in out}) == 6
    assert not np.allclose(out[0], rows[0])
    assert np.all(out >= 0) and np.all(out <= 1 + 1e-6)


def test_images_as_images_or_as_rows_are_distorted_alike():
    images = _digits(3)
    as_rows = _layer(seed=5)(images.reshape(3, -1), training=True)
    as_images = _layer(seed=5)(images, training=True)
    assert keras.ops.shape(as_images) == (3, 20, 20)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(as_images).reshape(3, -1),
        keras.ops.convert_to_numpy(as_rows),
        atol=1e-6,
    )


def test_the_same_seed_draws_the_same_distortions_and_another_seed_others():
    rows = _digits(4).reshape(4, -1)

    def draw(seed):
        layer = _layer(elastic_alpha=34, thickness=0.5, seed=seed)
        return [
            keras.ops.convert_to_numpy(layer(rows, training=True)) for _ in range(2)
        ]

    first, second = draw(3)
    assert not np.allclose(first, second)  # the stream moves on
    np.testing.assert_array_equal(draw(3)[0], first)
    assert not np.allclose(draw(4)[0], first)


def test_the_layer_round_trips_through_its_config_and_a_saved_model(tmp_path):
    layer = _layer(elastic_alpha=34, elastic_sigma=3, thickness=0.25, seed=9)
    again = DigitDistortion.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    model = keras.Sequential(
        [keras.Input((400,)), layer, keras.layers.Dense(10, activation="softmax")]
    )
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[0], DigitDistortion)
    assert loaded.layers[0].get_config() == layer.get_config()
    rows = _digits(2).reshape(2, -1)
    np.testing.assert_allclose(
        loaded.predict(rows, verbose=0), model.predict(rows, verbose=0)
    )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_it_trains_inside_a_compiled_training_step(jit_compile):
    keras.utils.set_random_seed(0)
    x = np.repeat(_digits(2).reshape(2, -1), 32, axis=0)
    y = np.tile([0, 1], 32)
    model = keras.Sequential(
        [
            keras.Input((400,)),
            _layer(elastic_alpha=10, thickness=0.3, seed=2),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", jit_compile=jit_compile)
    state = keras.ops.convert_to_numpy(model.layers[0].seed_generator.state)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    # Four batches a epoch drew from the layer's stream.
    after = keras.ops.convert_to_numpy(model.layers[0].seed_generator.state)
    assert not np.array_equal(after, state)
