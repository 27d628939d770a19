"""The distortions of skmnist._augmentation: the mapping against SciPy's for
given parameters, and the layer's drawing, seeding and place in training."""

import keras
import numpy as np
import pytest
from scipy import ndimage
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import skmnist
from skmnist import MNISTClassifier
from skmnist._augmentation import (
    DigitDistortion,
    distort,
    distortion_config,
    gaussian_matrix,
)

# Run again under Keras's JAX backend by .ci/run (see CONTRIBUTING.md).
pytestmark = pytest.mark.each_backend

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


@pytest.mark.parametrize(
    "jit_compile",
    [
        pytest.param(
            False,
            marks=pytest.mark.skipif(
                keras.backend.backend() == "jax",
                reason="JAX has no graph without XLA: jit_compile=False runs the "
                "step eagerly, op by op, as no skmnist fit does",
            ),
        ),
        True,
    ],
)
@pytest.mark.slow
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


# -- through MNISTClassifier ---------------------------------------------------

TINY = {"hidden_units": 16, "epochs": 2, "batch_size": 64, "random_state": 0}


@pytest.mark.slow
def test_the_same_seed_trains_the_same_model_and_predicting_does_not_distort(
    digits_flat,
):
    X, y = digits_flat
    first = MNISTClassifier(**TINY, augmentation=True).fit(X, y)
    again = MNISTClassifier(**TINY, augmentation=True).fit(X, y)
    plain = MNISTClassifier(**TINY).fit(X, y)
    proba = first.predict_proba(X)
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    assert not np.allclose(plain.predict_proba(X), proba)
    # One row goes through NumPy, many through the compiled pass: neither
    # distorts, so each row's answer is the same either way and every time.
    np.testing.assert_allclose(first.predict_proba(X[:1]), proba[:1], atol=1e-6)
    np.testing.assert_array_equal(first.predict_proba(X), proba)


def test_the_weights_are_drawn_as_without_augmentation(digits_flat):
    X, y = digits_flat
    with_it = MNISTClassifier(**TINY, augmentation=True).fit(X[:64], y[:64])
    without = MNISTClassifier(**TINY).fit(X[:64], y[:64])
    # The layer draws its seed after the network's: same initial weights.
    first = np.random.RandomState(with_it._seed)
    second = np.random.RandomState(without._seed)
    assert with_it._seed == without._seed
    a = with_it._build_network(first, with_it._fitted_network())
    b = without._build_network(second, without._fitted_network())
    for name in ("hidden", "output"):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a.get_layer(name).kernel),
            keras.ops.convert_to_numpy(b.get_layer(name).kernel),
        )


@pytest.mark.parametrize(
    "params, X_columns, match",
    [
        ({}, 50, "50 features are not the pixels of a square image"),
        (
            {},
            4,
            r"4 features are not the pixels of an image of at least 3x3 "
            r"\(they make a 2x2",
        ),
        ({"augmentation__rotaton": 3}, 64, "unknown augmentation parameter"),
        ({"augmentation__thickness": 2}, 64, "thickness must be from 0 to 1"),
        ({"augmentation__rotation": -1}, 64, "rotation must be from 0 to 180"),
        ({"augmentation__shear": float("nan")}, 64, "shear must be .* not nan"),
        ({"augmentation__scale": "big"}, 64, "scale must be a number"),
        ({"augmentation__shear": 1e9}, 64, "shear must be from 0 to 1"),
        ({"augmentation__elastic_sigma": 1e12}, 64, "sigma must be from 0 to 28"),
        ({"augmentation": False, "augmentation__rotaton": 3}, 64, "unknown"),
    ],
)
def test_what_cannot_be_augmented_is_refused_by_name(
    digits_flat, params, X_columns, match
):
    X, y = digits_flat
    clf = MNISTClassifier(**{**TINY, "augmentation": True, **params})
    with pytest.raises(ValueError, match=match):
        clf.fit(X[:, :X_columns], y)


@pytest.mark.slow
def test_strengths_are_searchable_numpy_typed_parameters(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**TINY, augmentation=True)
    # Two candidates (each strength compiles a training step of its own): a
    # NumPy array's float32 values, and a list of np.int64.
    search = GridSearchCV(
        clf,
        {
            "augmentation__rotation": np.array([0.0, 20.0], np.float32),
            "augmentation__elastic_alpha": [np.int64(34)],
        },
        cv=2,
    ).fit(X[:400], y[:400])
    assert len(search.cv_results_["params"]) == 2
    best = search.best_estimator_
    distortion = best.model_.get_layer("augmentation").distortion_config()
    assert distortion["rotation"] == float(
        search.best_params_["augmentation__rotation"]
    )
    assert (
        clone(clf)
        .set_params(augmentation__shear=0.1)
        .get_params()["augmentation__shear"]
        == 0.1
    )


def test_continued_training_keeps_the_distortions_it_was_fitted_with(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**TINY, augmentation=True, warm_start=True).fit(X, y)
    clf.fit(X, y)
    clf.partial_fit(X[:100], y[:100])
    clf.set_params(augmentation__rotation=30, augmentation__thickness=0.5)
    with pytest.raises(
        ValueError,
        match=r"augmentation__rotation, augmentation__thickness changed since",
    ):
        clf.fit(X, y)
    clf.set_params(
        augmentation=False, augmentation__rotation=15, augmentation__thickness=0.2
    )
    with pytest.raises(ValueError, match=r"^augmentation changed since"):
        clf.partial_fit(X, y)


@pytest.mark.slow
def test_a_saved_augmented_model_loads_and_trains_on(digits_flat, tmp_path):
    X, y = digits_flat
    clf = MNISTClassifier(**TINY, augmentation=True, augmentation__shear=0.1).fit(X, y)
    path = tmp_path / "m.skmnist"
    skmnist.save(clf, path)
    loaded = skmnist.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert loaded.get_params()["augmentation__shear"] == 0.1
    # The seed generator's state travelled: both go on drawing the same.
    clf.partial_fit(X, y)
    loaded.partial_fit(X, y)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_an_array_of_images_is_its_rows_of_pixels(digits_flat):
    X, y = digits_flat
    images = X.reshape(-1, 8, 8)
    from_images = MNISTClassifier(**TINY, augmentation=True).fit(images, y)
    from_rows = MNISTClassifier(**TINY, augmentation=True).fit(X, y)
    assert from_images.n_features_in_ == 64
    np.testing.assert_array_equal(
        from_images.predict_proba(images), from_rows.predict_proba(X)
    )
    np.testing.assert_array_equal(from_images.predict(X[:5]), from_rows.predict(X[:5]))
    with pytest.raises(ValueError, match="has 49 features"):
        from_images.predict(np.zeros((2, 7, 7), np.float32))
    with pytest.raises(ValueError, match=r"square shape .* not \(2, 4, 16\)"):
        from_images.predict(np.zeros((2, 4, 16), np.float32))
    with pytest.raises(ValueError, match="0 sample"):
        MNISTClassifier(**TINY).fit(np.zeros((0, 8, 8), np.float32), [])


def test_the_elastic_field_moves_a_digit_by_the_same_share_of_its_side():
    # Simard's alpha and sigma are a 28x28 image's pixels: at 8x8 the same
    # distortion moves pixels by 8/28 as far.
    def spread(side):
        config = distortion_config({}, side * side)
        smooth = gaussian_matrix(side, config["elastic_sigma"]).astype(float)
        field = np.random.default_rng(0).uniform(-1, 1, (200, side, side))
        moved = smooth @ field @ smooth.T * config["elastic_alpha"]
        # The middle, away from the zero padding's edge effects.
        middle = slice(side // 4, side - side // 4)
        return moved[:, middle, middle].std() / side

    assert spread(8) == pytest.approx(spread(28), rel=0.2)
    assert spread(56) == pytest.approx(spread(28), rel=0.2)
