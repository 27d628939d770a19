"""Bad input: each case either works correctly or raises a scikit-learn style
error (ValueError, TypeError, NotFittedError) that names the problem, never a
TensorFlow or Keras exception; and the estimator keeps working afterwards."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from skmnist import (
    DigitImagePreprocessor,
    MNISTClassifier,
    PixelScaler,
    _cli,
    make_mnist_pipeline,
    preprocess_digit_image,
)

TINY = {"hidden_units": 16, "epochs": 1, "batch_size": 32, "random_state": 0}


@pytest.fixture(scope="module")
def data(digits_flat):
    X, y = digits_flat
    return X[:150], y[:150]


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return MNISTClassifier(**TINY).fit(X, y)


@pytest.fixture(scope="module")
def fitted_pipeline(digits):
    images, labels = digits
    return make_mnist_pipeline(**TINY).fit(images[:150] * 15, labels[:150])


def _raises(error_type, match, call):
    """Call ``call`` expecting ``error_type`` whose message matches ``match``, and
    neither it nor anything it chains to is a TensorFlow or Keras exception."""
    with pytest.raises(error_type, match=match) as info:
        call()
    error = info.value
    while error is not None:
        assert not type(error).__module__.startswith(("tensorflow", "keras")), error
        error = error.__cause__ or error.__context__


# -- fit -----------------------------------------------------------------------

_X = np.random.RandomState(0).rand(20, 64).astype(np.float32)
_Y = np.arange(20) % 2


@pytest.mark.parametrize(
    "X, y, error, match",
    [
        (_X[:, 0], _Y, ValueError, "Expected 2D array, got 1D array"),
        # Square images are their rows of pixels; others are refused.
        (_X.reshape(20, 4, 16), _Y, ValueError, "images of a square shape"),
        (_X.reshape(20, 8, 8, 1), _Y, ValueError, "Found array with dim 4"),
        (np.where(_X > 0.5, np.nan, _X), _Y, ValueError, "Input X contains NaN"),
        (np.full((20, 64), np.inf), _Y, ValueError, "Input X contains infinity"),
        (np.full((20, 64), "a"), _Y, ValueError, "could not convert string"),
        (_X + 1j, _Y, ValueError, "Complex data not supported"),
        (np.zeros((0, 64)), np.zeros(0), ValueError, "0 sample"),
        (_X, np.zeros(20), ValueError, "at least 2 classes.*one class only"),
        (_X[:1], _Y[:1], ValueError, "one class only"),
        (_X, _Y[:10], ValueError, "inconsistent numbers of samples: \\[20, 10\\]"),
        (_X, np.c_[_Y, _Y], ValueError, "y should be a 1d array"),
        (_X, np.where(_Y > 0, np.nan, 0), ValueError, "Input y contains NaN"),
        (_X, _X[:, 0], ValueError, "Unknown label type: continuous"),
        (np.array([[1, "a"]] * 20, dtype=object), _Y, ValueError, "convert string"),
        ({"a": 1}, _Y, TypeError, "not 'dict'"),
    ],
    ids=[
        "1d-X",
        "3d-X",
        "4d-X",
        "nan",
        "inf",
        "strings",
        "complex",
        "empty",
        "one-class",
        "one-sample",
        "length-mismatch",
        "2d-y",
        "nan-in-y",
        "continuous-y",
        "object-with-strings",
        "dict",
    ],
)
def test_fit_refuses_bad_data_and_then_fits(X, y, error, match, data):
    clf = MNISTClassifier(**TINY)
    _raises(error, match, lambda: clf.fit(X, y))
    assert clf.fit(*data).predict(data[0][:5]).shape == (5,)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"epochs": 0}, ValueError, "'epochs' parameter.*Got 0"),
        ({"epochs": -1}, ValueError, "'epochs' parameter.*Got -1"),
        ({"batch_size": 0}, ValueError, "'batch_size' parameter.*Got 0"),
        ({"hidden_units": 0}, ValueError, "'hidden_units' parameter.*Got 0"),
        ({"hidden_units": 2.5}, ValueError, "'hidden_units' parameter.*Got 2.5"),
        ({"dropout": -0.1}, ValueError, "'dropout' parameter.*Got -0.1"),
        ({"dropout": 1.0}, ValueError, "'dropout' parameter.*Got 1.0"),
        ({"validation_split": 1.0}, ValueError, "'validation_split' parameter"),
        ({"class_weight": "bogus"}, ValueError, "'class_weight' parameter"),
        ({"optimizer": "sgdx"}, ValueError, "optimizer identifier: sgdx"),
        ({"activation": "reluu"}, ValueError, "activation function identifier"),
        ({"loss": "nope"}, ValueError, "loss identifier: nope"),
        ({"metrics": ["nope"]}, ValueError, "metric identifier: nope"),
        ({"optimizer__learning_rate": "fast"}, ValueError, "learning_rate"),
    ],
    ids=lambda value: "-".join(map(str, value)) if isinstance(value, dict) else None,
)
def test_absurd_hyper_parameters_are_named(params, error, match, data):
    clf = MNISTClassifier(**{**TINY, **params})
    _raises(error, match, lambda: clf.fit(*data))
    defaults = MNISTClassifier(**TINY).get_params()
    clf.set_params(**{name: defaults.get(name, 1e-3) for name in params})
    assert clf.fit(*data).score(*data) >= 0


def test_sample_weight_problems_are_named(data):
    X, y = data
    clf = MNISTClassifier(**TINY)
    _raises(ValueError, "sample_weight.shape", lambda: clf.fit(X, y, np.ones(5)))
    _raises(ValueError, "non-zero", lambda: clf.fit(X, y, np.zeros(len(y))))


# -- predict, predict_proba, score ---------------------------------------------


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((3, 10)), ValueError, "X has 10 features, but MNISTClassifier is "),
        (np.zeros((0, 64)), ValueError, "0 sample"),
        (np.zeros((3, 4, 16)), ValueError, "images of a square shape"),
        (np.zeros((3, 8, 8, 1)), ValueError, "Found array with dim 4"),
        (np.full((3, 64), np.nan), ValueError, "Input X contains NaN"),
        (np.full((3, 64), -np.inf), ValueError, "Input X contains infinity"),
        (np.full((3, 64), "x"), ValueError, "could not convert string"),
        (np.zeros((3, 64)) + 1j, ValueError, "Complex data not supported"),
    ],
    ids=["features", "empty", "3d", "4d", "nan", "inf", "strings", "complex"],
)
def test_prediction_refuses_bad_X(method, X, error, match, fitted, data):
    before = fitted.predict_proba(data[0])
    args = (X, np.zeros(len(X), dtype=int)) if method == "score" else (X,)
    _raises(error, match, lambda: getattr(fitted, method)(*args))
    np.testing.assert_array_equal(fitted.predict_proba(data[0]), before)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_prediction_before_fit(method, data):
    args = data if method == "score" else data[:1]
    _raises(
        NotFittedError,
        "not fitted yet",
        lambda: getattr(MNISTClassifier(), method)(*args),
    )


def test_score_with_labels_never_seen_in_fit_counts_them_wrong(fitted, data):
    # As scikit-learn's accuracy_score does: a label the classifier cannot
    # predict is simply a wrong answer, not an error.
    X, y = data
    assert fitted.score(X, y + 100) == 0.0
    half = np.where(np.arange(len(y)) % 2 == 0, y, y + 100)
    assert fitted.score(X, half) == pytest.approx(
        np.mean((fitted.predict(X) == y)[::2]) / 2, abs=1 / len(y)
    )


# -- inputs that work ----------------------------------------------------------


def _equivalent_inputs(X):
    read_only = X.copy()
    read_only.flags.writeable = False
    return {
        "csr": sp.csr_matrix(X),
        "csc": sp.csc_matrix(X),
        "coo": sp.coo_matrix(X),
        "read-only": read_only,
        "non-contiguous": np.asfortranarray(np.repeat(X, 2, axis=1))[:, ::2],
        "float64": X.astype(np.float64),
        "object-numbers": X.astype(object),
        "list": X.tolist(),
    }


@pytest.mark.parametrize("kind", list(_equivalent_inputs(np.zeros((1, 1)))))
def test_equivalent_inputs_give_the_same_predictions(kind, fitted, data):
    X = data[0][:40]
    other = _equivalent_inputs(X)[kind]
    np.testing.assert_array_equal(fitted.predict_proba(other), fitted.predict_proba(X))
    np.testing.assert_array_equal(fitted.predict(other), fitted.predict(X))


@pytest.mark.parametrize("kind", ["csr", "read-only", "non-contiguous"])
def test_fit_on_equivalent_inputs_gives_the_same_model(kind, fitted, data):
    X, y = data
    clf = MNISTClassifier(**TINY).fit(_equivalent_inputs(X)[kind], y)
    np.testing.assert_allclose(clf.predict_proba(X), fitted.predict_proba(X), atol=1e-6)


def test_one_sample(fitted, data):
    X = data[0]
    proba = fitted.predict_proba(X[:1])
    assert proba.shape == (1, 10)
    # Not bit-identical: the matrix product's summation order may depend on the
    # number of rows.
    np.testing.assert_allclose(proba, fitted.predict_proba(X)[:1], rtol=1e-5)
    assert fitted.predict(X[:1])[0] == fitted.predict(X)[0]


@pytest.mark.slow
def test_two_samples_of_two_classes_fit(data):
    X, _ = data
    clf = MNISTClassifier(**TINY).fit(X[:2], ["a", "b"])
    assert set(clf.predict(X)) <= {"a", "b"}


# -- PixelScaler and the pipeline ----------------------------------------------


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((2, 28, 28)), ValueError, "28x28 = 784 pixels.*8x8 = 64"),
        (-np.ones((2, 8, 8)), ValueError, "Negative values"),
        (np.full((2, 8, 8), 300), ValueError, "above max_value=255"),
        (np.full((2, 8, 8), np.nan), ValueError, "Input X contains NaN"),
        (np.zeros((2, 8, 8, 1)), ValueError, "4 dimensions"),
        (np.zeros((2, 63)), ValueError, "X has 63 features"),
        ([[1, 2], [3]], ValueError, "inhomogeneous"),
        (None, ValueError, "Expected 2D array, got scalar"),
        (sp.csr_matrix(np.zeros((2, 64))), TypeError, "Sparse data"),
    ],
    ids=[
        "28x28",
        "negative",
        "too-bright",
        "nan",
        "4d",
        "flat-63",
        "ragged",
        "none",
        "sparse",
    ],
)
@pytest.mark.parametrize("method", ["transform", "pipeline-predict"])
def test_pixel_problems_are_named(method, X, error, match, fitted_pipeline, digits):
    images = digits[0][:20] * 15
    before = fitted_pipeline.predict_proba(images)
    if method == "transform":
        call = lambda: fitted_pipeline[0].transform(X)  # noqa: E731
    else:
        call = lambda: fitted_pipeline.predict(X)  # noqa: E731
    _raises(error, match, call)
    np.testing.assert_array_equal(fitted_pipeline.predict_proba(images), before)


def test_pixel_scaler_before_fit_and_bad_max_value(digits):
    images = digits[0][:5]
    _raises(NotFittedError, "not fitted yet", lambda: PixelScaler().transform(images))
    _raises(ValueError, "'max_value' parameter", lambda: PixelScaler(0).fit(images))
    _raises(ValueError, "'max_value' parameter", lambda: PixelScaler("255").fit(images))


def test_pipeline_accepts_nested_lists_and_booleans(fitted_pipeline, digits):
    images = digits[0][:10] * 15
    np.testing.assert_array_equal(
        fitted_pipeline.predict_proba(images.tolist()),
        fitted_pipeline.predict_proba(images),
    )
    bright = images > 100
    np.testing.assert_array_equal(
        fitted_pipeline.predict_proba(bright),
        fitted_pipeline.predict_proba(bright.astype(np.uint8)),
    )


@pytest.mark.parametrize(
    "image, match",
    [
        (np.full((30, 30), 255, dtype=np.uint8), "blank"),
        (np.full((30, 30), np.nan), "NaN or infinite"),
        (np.zeros(30), "expected one 2-D image"),
        (np.zeros((0, 30)), "expected one 2-D image"),
        (np.zeros((4, 30, 30, 3)), "expected one 2-D image"),
    ],
    ids=["blank", "nan", "1d", "empty", "4d"],
)
def test_digit_image_problems_are_named(image, match):
    _raises(ValueError, match, lambda: preprocess_digit_image(image))
    _raises(ValueError, match, lambda: DigitImagePreprocessor().transform([image]))


# -- command line --------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "--epochs", "0"], "must be an integer from 1 to 2147483647, got 0"),
        (["train", "--batch-size", "-3"], "from 1 to 2147483647, got -3"),
        (["train", "--hidden-units", "many"], "from 1 to 2147483647, got 'many'"),
        (["train", "--format", "pickle"], "invalid choice: 'pickle'"),
        (["evaluate"], "the following arguments are required: model"),
    ],
    ids=["epochs-0", "negative-batch", "not-a-number", "unknown-format", "no-model"],
)
def test_cli_usage_errors(argv, match, capsys):
    with pytest.raises(SystemExit) as exit_:
        _cli.main(argv)
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("skmnist: error: ") and match in line


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "no model file at"),
        (b"\x80\x04garbage", "neither an skmnist model file nor a readable joblib"),
        (b"PK\x03\x04garbage", "damaged or truncated"),
    ],
    ids=["missing", "not-a-pickle", "not-a-zip"],
)
def test_cli_bad_model_files_are_one_line_errors(content, match, tmp_path, run_cli):
    path = tmp_path / "model.joblib"
    if content is not None:
        path.write_bytes(content)
    # (--trust: the file is unpickled, and what unpickling finds is reported.)
    status, _, err = run_cli("predict", path, "--trust", "digit.png")
    assert status == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("skmnist: error: ")
    assert match in line
