"""ONNX export: the exported models run in onnxruntime and agree with scikit-learn."""

import functools
import subprocess
import sys

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

onnxruntime = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")
keras = pytest.importorskip("keras")

from skmnist import (  # noqa: E402
    DigitImagePreprocessor,
    MNISTClassifier,
    PixelScaler,
    make_mnist_pipeline,
    register_onnx_converters,
    save,
    to_onnx,
)

TINY = {"hidden_units": 16, "epochs": 3, "batch_size": 32, "random_state": 0}


def _session(onnx_model):
    return onnxruntime.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )


def _run(onnx_model, X):
    session = _session(onnx_model)
    return session.run(None, {session.get_inputs()[0].name: X})


def _assert_same_predictions(model, X, **options):
    """The exported model's labels equal ``predict`` and its probabilities
    ``predict_proba`` within 1e-5."""
    labels, proba = _run(to_onnx(model, dtype=str(X.dtype), zipmap=False, **options), X)
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(labels, model.predict(X))
    return labels, proba


@pytest.fixture(scope="module")
def digit_images(digits):
    images, labels = digits
    return images[:600], labels[:600]


@pytest.fixture(scope="module")
def digits_pipeline(digit_images):
    pipe = make_mnist_pipeline(**TINY).set_params(scale__max_value=16)
    return pipe.fit(*digit_images)


# -- real MNIST ------------------------------------------------------------------


@pytest.mark.mnist
@pytest.mark.slow
def test_mnist_pipeline_converts_with_skl2onnx_and_agrees_on_the_test_set(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    pipe = make_mnist_pipeline(hidden_units=128, epochs=2, random_state=0)
    pipe.fit(x_train[:20000], y_train[:20000])
    register_onnx_converters()
    # As scikit-learn users convert: the input type is the sample's, uint8 images.
    onnx_model = skl2onnx.to_onnx(
        pipe, x_train[:1], options={id(pipe.steps[-1][1]): {"zipmap": False}}
    )
    labels, proba = _run(onnx_model, x_test)
    assert proba.shape == (10000, 10)
    np.testing.assert_allclose(proba, pipe.predict_proba(x_test), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(labels, pipe.predict(x_test))
    assert (labels == y_test).mean() > 0.9


# -- inputs ----------------------------------------------------------------------


def test_default_output_is_skl2onnx_zipmap(digits_pipeline, digit_images):
    images = digit_images[0][:5]
    register_onnx_converters()
    labels, maps = _run(skl2onnx.to_onnx(digits_pipeline, images[:1]), images)
    expected = digits_pipeline.predict_proba(images)
    assert [sorted(row) for row in maps] == [list(range(10))] * 5
    got = np.array([[row[c] for c in range(10)] for row in maps])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(labels, digits_pipeline.predict(images))


@pytest.mark.parametrize("dtype", ["uint8", "float32", "float64", "int64"])
def test_images_of_any_dtype(digits_pipeline, digit_images, dtype):
    _assert_same_predictions(digits_pipeline, digit_images[0].astype(dtype))


def test_one_row(digits_pipeline, digit_images):
    labels, proba = _assert_same_predictions(digits_pipeline, digit_images[0][:1])
    assert labels.shape == (1,)
    assert proba.shape == (1, 10)


def test_ten_thousand_rows(digits_pipeline, digits):
    images, _ = digits
    noise = np.random.RandomState(0).randint(0, 3, (10000, 8, 8))
    many = np.clip(images[np.arange(10000) % len(images)] + noise, 0, 16)
    _assert_same_predictions(digits_pipeline, many.astype(np.uint8))


def test_flat_pixels(digits):
    images, labels = digits
    flat = images[:600].reshape(600, -1)
    pipe = make_mnist_pipeline(**TINY).set_params(scale__max_value=16)
    _assert_same_predictions(pipe.fit(flat, labels[:600]), flat)


def test_classifier_alone_on_float_features(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**TINY).fit(X[:600], y[:600])
    _assert_same_predictions(clf, X[:600])


def test_standard_scaler_between_the_skmnist_steps(digit_images):
    pipe = Pipeline(
        [
            ("scale", PixelScaler(max_value=16)),
            ("standardize", StandardScaler()),
            ("clf", MNISTClassifier(**TINY)),
        ]
    ).fit(*digit_images)
    _assert_same_predictions(pipe, digit_images[0])


def test_scikit_learn_steps_on_float64_rows(digits):
    images, labels = digits
    X = images[:600].reshape(600, -1).astype(np.float64)
    pipe = Pipeline(
        [
            ("identity", FunctionTransformer()),  # skl2onnx converts identity only
            ("standardize", StandardScaler()),
            ("clf", MNISTClassifier(**TINY)),
        ]
    ).fit(X, labels[:600])
    _assert_same_predictions(pipe, X)


def test_pixel_scaler_alone():
    images = np.random.RandomState(0).randint(0, 256, (7, 28, 28)).astype(np.uint8)
    scaler = PixelScaler().fit(images)
    (scaled,) = _run(to_onnx(scaler, dtype="uint8"), images)
    np.testing.assert_array_equal(scaled, scaler.transform(images))


# -- labels and outputs --------------------------------------------------------


def test_string_labels(digit_images):
    images, labels = digit_images
    names = np.array(["zero", "one", "two", "three", "four"] * 2)[labels]
    pipe = make_mnist_pipeline(**TINY).set_params(scale__max_value=16)
    onnx_labels, _ = _assert_same_predictions(pipe.fit(images, names), images)
    assert set(onnx_labels) <= set(names)


@pytest.mark.parametrize(
    "loss", ["sparse_categorical_crossentropy", "binary_crossentropy"]
)
def test_two_classes(digit_images, loss):
    images, labels = digit_images
    pipe = make_mnist_pipeline(loss=loss, **TINY).set_params(scale__max_value=16)
    pipe.fit(images, np.where(labels < 5, 3, 7))
    units = pipe[-1].model_.layers[-1].units
    assert units == (1 if loss == "binary_crossentropy" else 2)
    _assert_same_predictions(pipe, images)


@pytest.mark.slow
def test_twenty_six_classes():
    rng = np.random.RandomState(0)
    centres = rng.rand(26, 40)
    y = np.arange(1300) % 26
    X = (centres[y] + 0.05 * rng.rand(1300, 40)).astype(np.float32)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))[y]
    clf = MNISTClassifier(hidden_units=32, epochs=5, random_state=0).fit(X, letters)
    _, proba = _assert_same_predictions(clf, X)
    assert proba.shape == (1300, 26)


def test_float_labels_that_are_integers(digits_flat):
    X, y = digits_flat
    clf = MNISTClassifier(**TINY).fit(X[:300], y[:300].astype(float))
    _assert_same_predictions(clf, X[:300])


def test_uint64_labels_beyond_int64_are_refused(digits_flat):
    # ONNX labels are int64: casting wrapped 2**63 to -2**63, silently without
    # ZipMap. (Float labels that large scikit-learn refuses as continuous.)
    X, y = digits_flat
    labels = np.array([7, 2**63, 2**64 - 1], dtype=np.uint64)
    clf = MNISTClassifier(**{**TINY, "epochs": 1}).fit(X[:90], labels[y[:90] % 3])
    message = (
        r"cannot export the class label 9223372036854775808 \(uint64\) to ONNX: "
        r"ONNX labels are int64 numbers or strings, and it is outside int64's range"
    )
    for zipmap in (False, True):  # ZipMap refused them, unclearly
        with pytest.raises(ValueError, match=message):
            to_onnx(clf, zipmap=zipmap)
    register_onnx_converters()
    with pytest.raises(ValueError, match=message):
        skl2onnx.to_onnx(clf, X[:1])


def test_uint64_labels_within_int64_are_exact(digits_flat):
    X, y = digits_flat
    labels = np.array([0, 2**40 + 1, 2**63 - 1], dtype=np.uint64)[y[:300] % 3]
    clf = MNISTClassifier(**TINY).fit(X[:300], labels)
    onnx_labels, _ = _run(to_onnx(clf, zipmap=False), X[:300])
    assert onnx_labels.tolist() == clf.predict(X[:300]).tolist()
    assert set(onnx_labels.tolist()) <= {0, 2**40 + 1, 2**63 - 1}


# -- architectures -------------------------------------------------------------


@pytest.mark.parametrize(
    "hidden_units, dropout, loss, n_classes",
    [
        ((32, 16, 8), 0.3, "sparse_categorical_crossentropy", 10),
        ([16, 16], 0.0, "binary_crossentropy", 2),
        (np.array([24, 12]), 0.1, "categorical_crossentropy", 3),
    ],
    ids=["three-layers-dropout", "two-layers-sigmoid", "array-one-hot"],
)
@pytest.mark.slow
def test_deep_networks(digit_images, hidden_units, dropout, loss, n_classes):
    images, labels = digit_images
    params = {**TINY, "hidden_units": hidden_units}
    pipe = make_mnist_pipeline(dropout=dropout, loss=loss, alpha=1e-3, **params)
    pipe.set_params(scale__max_value=16).fit(images, labels % n_classes)
    layers = pipe[-1].model_.layers
    dense = [layer for layer in layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == len(hidden_units) + 1
    _, proba = _assert_same_predictions(pipe, images)
    assert proba.shape == (len(images), n_classes)


_ACTIVATIONS = [
    "relu",
    "tanh",
    "sigmoid",
    "gelu",
    functools.partial(keras.activations.gelu, approximate=True),
    "softmax",
    "log_softmax",
    "elu",
    functools.partial(keras.activations.elu, alpha=0.5),
    "selu",
    "celu",
    "softplus",
    "softsign",
    "swish",
    "silu",
    "mish",
    "linear",
    "leaky_relu",
    functools.partial(keras.activations.leaky_relu, negative_slope=0.05),
    "relu6",
    functools.partial(keras.activations.relu, max_value=2.0),
    functools.partial(keras.activations.relu, negative_slope=0.1, threshold=0.2),
    functools.partial(
        keras.activations.relu, negative_slope=0.1, max_value=3.0, threshold=-0.1
    ),
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "tanh_shrink",
    "soft_shrink",
    "hard_shrink",
    "exponential",
    "log_sigmoid",
    "sparse_sigmoid",
    "sparse_plus",
    "squareplus",
    functools.partial(keras.activations.threshold, threshold=0.1, default_value=-1),
]


@pytest.mark.parametrize(
    "activation",
    _ACTIVATIONS,
    ids=lambda a: a if isinstance(a, str) else f"{a.func.__name__}{a.keywords}",
)
@pytest.mark.slow
def test_activation(digit_images, activation):
    images, labels = digit_images
    pipe = make_mnist_pipeline(
        activation=activation, hidden_units=16, epochs=1, random_state=0
    ).set_params(scale__max_value=16)
    _assert_same_predictions(pipe.fit(images[:200], labels[:200]), images)


@pytest.mark.parametrize(
    "activation, name",
    [("sparsemax", "sparsemax"), (lambda x: x * 2, "<lambda>")],
)
def test_unsupported_activation_is_named(digit_images, activation, name):
    images, labels = digit_images
    pipe = make_mnist_pipeline(
        activation=activation, hidden_units=4, epochs=1, random_state=0
    ).fit(images[:50], labels[:50])
    with pytest.raises(ValueError, match=f"activation '{name}'.*supported"):
        to_onnx(pipe)


def test_dropout_is_inactive(digit_images):
    images, labels = digit_images
    pipe = make_mnist_pipeline(dropout=0.5, **TINY).set_params(scale__max_value=16)
    pipe.fit(images, labels)
    assert any(
        isinstance(layer, keras.layers.Dropout) for layer in pipe[-1].model_.layers
    )
    _assert_same_predictions(pipe, images)


# -- what cannot be exported ---------------------------------------------------


def test_digit_image_preprocessor_is_refused_by_name(digit_images):
    images, labels = digit_images
    pipe = Pipeline(
        [("prep", DigitImagePreprocessor()), *make_mnist_pipeline(**TINY).steps]
    )
    pipe.fit(images[:50] * 15, labels[:50])
    with pytest.raises(ValueError, match="cannot export DigitImagePreprocessor"):
        to_onnx(pipe)
    register_onnx_converters()
    with pytest.raises(ValueError, match="cannot export DigitImagePreprocessor"):
        skl2onnx.to_onnx(pipe, images[:1])


def test_unfitted_and_bad_dtype(digits_pipeline):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        to_onnx(make_mnist_pipeline())
    with pytest.raises(ValueError, match="dtype must be one of"):
        to_onnx(digits_pipeline, dtype="int8")


# -- files and the command line ------------------------------------------------


def test_written_file_replaces_the_old_one(digits_pipeline, digit_images, tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    returned = to_onnx(digits_pipeline, path, dtype="uint8")
    assert path.read_bytes() == returned.SerializeToString()
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary


def _skmnist(*args, tmp_path):
    return subprocess.run(
        [sys.executable, "-m", "skmnist", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )


@pytest.mark.slow
def test_cli_export_end_to_end(digits_pipeline, digit_images, tmp_path):
    import onnx

    save(digits_pipeline, tmp_path / "model.skmnist")
    result = _skmnist(
        "export", "model.skmnist", "out.onnx", "--dtype", "uint8", tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "wrote the ONNX model to out.onnx" in result.stdout
    images = digit_images[0]
    labels, maps = _run(onnx.load(tmp_path / "out.onnx"), images)
    proba = np.array([[row[c] for c in range(10)] for row in maps])
    np.testing.assert_allclose(
        proba, digits_pipeline.predict_proba(images), rtol=0, atol=1e-5
    )
    np.testing.assert_array_equal(labels, digits_pipeline.predict(images))


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.skmnist", "out.onnx"], "no model file at missing.skmnist"),
        (
            ["model.skmnist", "model.skmnist/out.onnx"],
            "OUT.onnx model.skmnist/out.onnx: model.skmnist is a file, not a folder",
        ),
        (["model.skmnist", "model.skmnist"], "OUT.onnx model.skmnist is also an input"),
        (
            ["preprocessed.skmnist", "out.onnx"],
            "cannot export DigitImagePreprocessor to ONNX: it reads images",
        ),
    ],
)
def test_cli_export_errors_are_one_line(
    digits_pipeline, digit_images, tmp_path, args, message, monkeypatch, run_cli
):
    # In this process: the command's own process (its exit status, TensorFlow's
    # C++ lines kept off stderr) is test_cli.py's and the end-to-end test's.
    save(digits_pipeline, tmp_path / "model.skmnist")
    with_preprocessor = Pipeline(
        [("prep", DigitImagePreprocessor()), *digits_pipeline.steps]
    )
    # (Saved in the safe format, as such pipelines now are.)
    save(with_preprocessor, tmp_path / "preprocessed.skmnist")
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli("export", *args)
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"skmnist: error: {message}")
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.slow
def test_augmentation_is_left_out_as_prediction_leaves_it(digits_flat):
    X, y = digits_flat
    model = MNISTClassifier(**TINY, augmentation=True).fit(X, y)
    _assert_same_predictions(model, X[:50])
