"""skmnist/_compat.py: each private API has a public fallback that gives the same
result, and no other module reaches for a private API."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import InvalidParameterError

from skmnist import MNISTClassifier, PixelScaler, _compat
from skmnist._compat import (
    assign_values,
    build_training_state,
    call_concrete_function,
    dask_distributed_backend,
    tensorflow_global_seed,
    validate_estimator_params,
)
from skmnist._training import (
    epoch_runner,
    fit_compiled_epochs,
    is_validation_epoch,
)

PACKAGE = Path(__file__).parent.parent / "skmnist"
N_FEATURES, N_CLASSES = 6, 3


def _model() -> keras.Model:
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input((N_FEATURES,)),
            keras.layers.Dense(8, activation="relu", name="hidden"),
            keras.layers.Dense(N_CLASSES, activation="softmax", name="output"),
        ],
        name="net",  # variable paths that two models share
    )
    model.compile(
        optimizer=keras.optimizers.RMSprop(name="rmsprop"),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _data():
    rng = np.random.RandomState(0)
    X = rng.rand(50, N_FEATURES).astype(np.float32)
    return X, X[:, :N_CLASSES].argmax(axis=1).astype(np.int64)


def _state(model: keras.Model) -> list:
    variables = [*model.variables, *model.metrics_variables, *model.optimizer.variables]
    return [(v.path, tuple(v.shape), np.asarray(v.value).copy()) for v in variables]


def _assert_same_state(a: list, b: list) -> None:
    assert [(path, shape) for path, shape, _ in a] == [
        (path, shape) for path, shape, _ in b
    ]
    for (path, _, x), (_, _, y) in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7, err_msg=path)


def _train(model, X, y) -> list:
    fit_compiled_epochs(
        epoch_runner(model),
        X,
        y,
        random_state=np.random.RandomState(1),
        batch_size=16,
        epochs=2,
    )
    return _state(model)


def test_training_state_is_built_the_same_without_symbolic_build(monkeypatch):
    X, y = _data()
    private = _model()
    build_training_state(private, X, y)
    built_privately = _state(private)
    trained_privately = _train(private, X, y)

    owner = next(k for k in type(private).__mro__ if "_symbolic_build" in vars(k))
    monkeypatch.delattr(owner, "_symbolic_build")
    public = _model()
    build_training_state(public, X, y)
    _assert_same_state(_state(public), built_privately)
    _assert_same_state(_train(public, X, y), trained_privately)


def test_last_batch_is_trained_the_same_without_kerass_metric_internals(
    monkeypatch,
):
    X, y = _data()  # 50 rows at batch 16: a last batch of 2 rows

    def fit(model):
        return fit_compiled_epochs(
            epoch_runner(model), X, y, random_state=np.random.RandomState(0),
            batch_size=16, epochs=2, shuffle=False,
        ).history  # fmt: skip

    private = _model()
    private_history = fit(private)
    assert _compat.masked_metrics_update(object()) is None
    # As where Keras's internals moved: the last batch is trained on its rows.
    monkeypatch.setattr("skmnist._training.masked_metrics_update", lambda model: None)
    public = _model()
    public_history = fit(public)
    for got, want in zip(public.get_weights(), private.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert public_history.keys() == private_history.keys()
    for name, values in private_history.items():
        np.testing.assert_allclose(public_history[name], values, rtol=1e-4)


def test_concrete_function_without_call_flat_is_called_normally():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow's concrete functions")
    import tensorflow as tf

    kernel = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2))
    bias = tf.Variable(np.array([0.5, -1.0], np.float32))

    def affine(trainable, non_trainable, x):
        return x @ trainable[0] + non_trainable[0]

    concrete = tf.function(affine, autograph=False).get_concrete_function(
        [kernel], [bias], tf.TensorSpec((4, 3), tf.float32)
    )
    x = tf.constant(np.arange(12, dtype=np.float32).reshape(4, 3))
    fast = call_concrete_function(concrete, [kernel], [bias], x)

    # What a TensorFlow without _call_flat looks like to the wrapper.
    def without_call_flat(*args):
        return concrete(*args)

    assert not hasattr(without_call_flat, "_call_flat")
    public = call_concrete_function(without_call_flat, [kernel], [bias], x)
    np.testing.assert_array_equal(fast.numpy(), public.numpy())
    np.testing.assert_allclose(
        fast.numpy(), x.numpy() @ kernel.numpy() + bias.numpy(), rtol=1e-6
    )


@pytest.fixture
def tensorflow_seed():
    tf = pytest.importorskip("tensorflow")
    before = tensorflow_global_seed()
    yield tf
    tf.random.set_seed(before)


@pytest.mark.parametrize("seed", [None, 0, 42, 2**31 - 2])
def test_global_seed_is_read_without_the_eager_context(
    tensorflow_seed, monkeypatch, seed
):
    tf = tensorflow_seed
    tf.random.set_seed(seed)
    private = tensorflow_global_seed()
    assert private == seed

    # TensorFlow's own public code reads the private getter: away from
    # skmnist only.
    monkeypatch.setattr(_compat, "_eager_context_global_seed", lambda: None)
    assert tensorflow_global_seed() == private


@pytest.mark.parametrize("seed", [42, 87654321])
def test_reading_the_global_seed_without_the_eager_context_draws_nothing(
    tensorflow_seed, monkeypatch, seed
):
    tf = tensorflow_seed
    tf.random.set_seed(seed)
    expected = tf.random.uniform([3]).numpy()
    monkeypatch.setattr(_compat, "_eager_context_global_seed", lambda: None)
    tf.random.set_seed(seed)
    assert tensorflow_global_seed() == seed
    # The next random op gets the operation seed it would have got anyway
    # (except for the one seed get_seed cannot tell from "unset").
    drawn = tf.random.uniform([3]).numpy()
    if seed != 87654321:  # TensorFlow's DEFAULT_GRAPH_SEED
        np.testing.assert_array_equal(drawn, expected)


@pytest.mark.slow
def test_the_global_seed_fallback_works_under_op_determinism():
    pytest.importorskip("tensorflow")
    # Op determinism cannot be switched off again: in a process of its own.
    code = (
        "import tensorflow as tf\n"
        "from skmnist import _compat\n"
        "tf.config.experimental.enable_op_determinism()\n"
        "_compat._eager_context_global_seed = lambda: None\n"
        "print(_compat.tensorflow_global_seed())\n"
        "tf.random.set_seed(7)\n"
        "print(_compat.tensorflow_global_seed())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["None", "7"]


@pytest.mark.slow
def test_importing_the_compat_module_imports_no_keras():
    # PixelScaler, the dask helpers and the CLI import it: TensorFlow must not
    # come with it.
    code = (
        "import sys, skmnist._compat, skmnist._scaler, skmnist._random; "
        "print(sorted({'keras', 'tensorflow', 'scikeras'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_scikeras_helpers_are_scikeras_own():
    from scikeras import _utils
    from scikeras.utils import transformers

    assert _compat.route_params is _utils.route_params
    assert (
        _compat.is_categorical_crossentropy is transformers._is_categorical_crossentropy
    )
    with pytest.raises(AttributeError, match="no_such_helper"):
        _compat.no_such_helper


def test_global_seed_is_none_without_tensorflow(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    assert tensorflow_global_seed() is None


def test_dask_backend_class_from_joblibs_registry(monkeypatch):
    pytest.importorskip("distributed")
    from joblib import parallel

    private = dask_distributed_backend()
    assert private.__name__ == "DaskDistributedBackend"

    # A joblib whose dask backend moved: only its registry knows the class.
    monkeypatch.setitem(sys.modules, "joblib._dask", None)
    monkeypatch.delitem(parallel.BACKENDS, "dask", raising=False)
    monkeypatch.setitem(
        parallel.EXTERNAL_BACKENDS,
        "dask",
        lambda: parallel.register_parallel_backend("dask", private),
    )
    assert dask_distributed_backend() is private


@pytest.mark.parametrize(
    "estimator",
    [PixelScaler(max_value=-1), MNISTClassifier(epochs=0), MNISTClassifier(loss=3)],
    ids=["scaler", "classifier-range", "classifier-type"],
)
def test_parameters_are_checked_the_same_without_validate_params(
    monkeypatch, estimator
):
    X, y = np.ones((4, 6)), np.array([0, 1, 0, 1])
    with pytest.raises(InvalidParameterError) as private:
        validate_estimator_params(estimator)
    monkeypatch.delattr(BaseEstimator, "_validate_params")
    assert not hasattr(estimator, "_validate_params")
    with pytest.raises(InvalidParameterError) as public:
        validate_estimator_params(estimator)
    assert str(public.value) == str(private.value)
    # fit checks them first, through the same door.
    with pytest.raises(InvalidParameterError) as fitting:
        estimator.fit(X, y)
    assert str(fitting.value) == str(private.value)


# -- what skmnist owns instead of borrowing -----------------------------------


@pytest.mark.parametrize(
    "validation_freq", [1, 2, 3, 5, np.int64(2), [1, 4, 7], [], [12]]
)
def test_validation_epochs_follow_keras(validation_freq):
    model = _model()
    if not hasattr(model, "_should_eval"):
        pytest.skip("this Keras has no _should_eval to compare with")
    keras_freq = (
        list(validation_freq) if isinstance(validation_freq, list) else validation_freq
    )
    for epoch in range(12):
        assert is_validation_epoch(epoch, validation_freq) == model._should_eval(
            epoch, int(keras_freq) if isinstance(keras_freq, np.integer) else keras_freq
        )
    with pytest.raises(ValueError, match="validation_freq"):
        is_validation_epoch(0, 0.5)


# -- the rule ------------------------------------------------------------------

PRIVATE_MODULES = re.compile(
    r"^(keras\.src|scikeras\._utils|tensorflow\.python|joblib\._dask|sklearn\.utils\._)"
)
PRIVATE_ATTRIBUTES = re.compile(
    r"\.(_symbolic_build|_should_eval|_call_flat|captured_inputs|_sklearn_output_config"
    r"|_loss_tracker|_compile_metrics|_flat_metrics|_flat_weighted_metrics"
    r"|_validate_params)\b"
)


def private_uses(path: Path) -> list[str]:
    """The private imports and known private attributes that ``path`` uses."""
    source = path.read_text()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if not node.module.startswith("skmnist"):
                # A private name from a public module (e.g. sklearn's
                # _check_feature_names_in) counts too.
                names += [
                    f"{node.module}._" for a in node.names if a.name.startswith("_")
                ]
        else:
            continue
        found += [
            f"line {node.lineno}: import {name}"
            for name in names
            if PRIVATE_MODULES.match(name) or name.endswith("._")
        ]
    found += [
        f"line {source.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for m in PRIVATE_ATTRIBUTES.finditer(source)
    ]
    return found


def test_only_the_compat_module_uses_private_apis():
    offenders = {
        str(path.relative_to(PACKAGE.parent)): uses
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_compat.py" and (uses := private_uses(path))
    }
    assert offenders == {}


def test_the_rule_sees_private_imports(tmp_path):
    module = tmp_path / "_example.py"
    module.write_text(
        "from keras.src.trainers import trainer\n"
        "import tensorflow.python.eager.context\n"
        "from sklearn.utils.validation import _check_feature_names_in\n"
        "def f(model):\n"
        "    from joblib._dask import DaskDistributedBackend\n"
        "    model._validate_params()\n"
        "    return model._symbolic_build()\n"
    )
    assert len(private_uses(module)) == 6
    assert private_uses(PACKAGE / "_compat.py")  # where they all are


def test_values_are_assigned_the_same_without_direct_assignment(monkeypatch):
    model = _model()
    # As the compiled epochs return them: arrays of the backend.
    values = [
        keras.ops.convert_to_tensor(np.full(v.shape, 0.5, v.dtype))
        for v in model.variables
    ]
    assign_values(model.variables, values)
    # The public path: Variable.assign for every value.
    monkeypatch.setattr(_compat, "keras_backend", lambda: "another")
    other = _model()
    assign_values(other.variables, values)
    for a, b in zip(model.variables, other.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a.value), np.asarray(b.value))
    np.testing.assert_array_equal(np.asarray(model.variables[0].value), 0.5)
