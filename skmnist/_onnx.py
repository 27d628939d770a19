"""ONNX export: skl2onnx converters for skmnist's estimators, and :func:`to_onnx`.

A fitted pipeline should serve predictions where TensorFlow is not installed.
scikit-learn users do that with skl2onnx and onnxruntime; registering a shape
calculator and a converter per skmnist estimator lets ``skl2onnx.to_onnx`` convert
any scikit-learn pipeline that holds them, next to scikit-learn's own steps. The
network is rewritten from the fitted Keras model's weights as MatMul, Add and the
activation's ONNX operators, written out from Keras 3's own definitions so that the
ONNX model computes what ``predict_proba`` computes.
"""

import functools
import os

import numpy as np
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from skmnist._classifier import MNISTClassifier
from skmnist._files import write_atomically
from skmnist._images import DigitImagePreprocessor
from skmnist._scaler import PixelScaler

try:
    import onnx
    import skl2onnx
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
        UInt8TensorType,
    )
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"ONNX export needs skl2onnx and onnx ({error}); install them with "
        "pip install 'skmnist[onnx]'"
    ) from error

_FLOAT = onnx.TensorProto.FLOAT
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# The input element types skmnist.to_onnx offers, by the name users pass.
_INPUT_TYPES = {
    "float32": FloatTensorType,
    "float64": DoubleTensorType,
    "uint8": UInt8TensorType,
    "int64": Int64TensorType,
}


class _Graph:
    """Adds float32 constants and nodes to a converter's container under names
    unique in the whole ONNX graph."""

    def __init__(self, scope, container):
        self._scope = scope
        self._container = container

    def constant(self, value, hint: str = "constant", dtype=np.float32) -> str:
        array = np.asarray(value, dtype=dtype)
        name = self._scope.get_unique_variable_name(hint)
        self._container.add_initializer(
            name,
            onnx.helper.np_dtype_to_tensor_dtype(array.dtype),
            list(array.shape),
            array.ravel().tolist(),
        )
        return name

    def strings(self, values, hint: str = "classes") -> str:
        name = self._scope.get_unique_variable_name(hint)
        encoded = [str(value).encode("utf-8") for value in values]
        self._container.add_initializer(
            name, onnx.TensorProto.STRING, [len(encoded)], encoded
        )
        return name

    def node(self, op_type: str, *inputs: str, output: str | None = None, **attrs):
        output = output or self._scope.get_unique_variable_name(op_type.lower())
        self._container.add_node(
            op_type,
            list(inputs),
            [output],
            name=self._scope.get_unique_operator_name(op_type),
            **attrs,
        )
        return output


# -- activations ---------------------------------------------------------------
#
# Each function writes one Keras 3 activation (keras.src.backend.*.nn) as ONNX
# operators available since opset 13, taking the activation's keyword arguments.
# glu is not here: it halves the units, so MNISTClassifier cannot fit with it.


def _relu(g, x, negative_slope=0.0, max_value=None, threshold=0.0):
    # keras.activations.ReLU.static_call, step by step.
    if negative_slope != 0.0 and max_value is None and threshold == 0:
        return g.node("LeakyRelu", x, alpha=float(negative_slope))
    if negative_slope != 0.0:
        shifted = g.node("Neg", x)
        if threshold != 0:
            shifted = g.node("Add", shifted, g.constant(threshold))
        negative_part = g.node("Relu", shifted)
    if threshold != 0:
        above = g.node("Greater", x, g.constant(threshold))
        y = g.node("Where", above, x, g.constant(0.0))
    else:
        y = g.node("Relu", x)
    if max_value is not None:
        y = g.node("Clip", y, g.constant(0.0), g.constant(max_value))
    if negative_slope != 0.0:
        slope = g.node("Mul", g.constant(negative_slope), negative_part)
        y = g.node("Sub", y, slope)
    return y


def _hard_sigmoid(g, x):
    # relu6(x + 3) / 6, as Keras writes it.
    shifted = g.node("Add", x, g.constant(3.0))
    y = g.node("Clip", shifted, g.constant(0.0), g.constant(6.0))
    return g.node("Div", y, g.constant(6.0))


def _gelu(g, x, approximate=False):
    half_x = g.node("Mul", x, g.constant(0.5))
    if approximate:
        # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        cube = g.node("Mul", g.node("Mul", x, x), x)
        inner = g.node("Add", x, g.node("Mul", cube, g.constant(0.044715)))
        inner = g.node("Mul", inner, g.constant(np.sqrt(2 / np.pi)))
        core = g.node("Tanh", inner)
    else:
        # 0.5 x (1 + erf(x / sqrt(2)))
        core = g.node("Erf", g.node("Div", x, g.constant(np.sqrt(2.0))))
    return g.node("Mul", half_x, g.node("Add", core, g.constant(1.0)))


def _elu(g, x, alpha=1.0):
    return g.node("Elu", x, alpha=float(alpha))


def _celu(g, x, alpha=1.0):
    # max(x, 0) + alpha * expm1(min(x, 0) / alpha)
    negative = g.node("Div", g.node("Min", x, g.constant(0.0)), g.constant(alpha))
    expm1 = g.node("Sub", g.node("Exp", negative), g.constant(1.0))
    return g.node(
        "Add",
        g.node("Max", x, g.constant(0.0)),
        g.node("Mul", expm1, g.constant(alpha)),
    )


def _softplus(g, x):
    return g.node("Softplus", x)


def _silu(g, x):
    return g.node("Mul", x, g.node("Sigmoid", x))


def _mish(g, x):
    return g.node("Mul", x, g.node("Tanh", _softplus(g, x)))


def _log_sigmoid(g, x):
    return g.node("Neg", _softplus(g, g.node("Neg", x)))


def _hard_silu(g, x):
    return g.node("Mul", x, _hard_sigmoid(g, x))


def _hard_tanh(g, x):
    return g.node("Clip", x, g.constant(-1.0), g.constant(1.0))


def _tanh_shrink(g, x):
    return g.node("Sub", x, g.node("Tanh", x))


def _soft_shrink(g, x, threshold=0.5):
    return g.node("Shrink", x, bias=float(threshold), lambd=float(threshold))


def _hard_shrink(g, x, threshold=0.5):
    return g.node("Shrink", x, bias=0.0, lambd=float(threshold))


def _threshold(g, x, threshold, default_value):
    above = g.node("Greater", x, g.constant(threshold))
    return g.node("Where", above, x, g.constant(default_value))


def _squareplus(g, x, b=4):
    root = g.node("Sqrt", g.node("Add", g.node("Mul", x, x), g.constant(b)))
    return g.node("Div", g.node("Add", x, root), g.constant(2.0))


def _sparse_plus(g, x):
    # 0 for x <= -1, (x + 1)^2 / 4 for -1 < x < 1, x for x >= 1
    shifted = g.node("Add", x, g.constant(1.0))
    middle = g.node("Mul", g.node("Mul", shifted, shifted), g.constant(0.25))
    upper = g.node("Where", g.node("Less", x, g.constant(1.0)), middle, x)
    low = g.node("LessOrEqual", x, g.constant(-1.0))
    return g.node("Where", low, g.constant(0.0), upper)


def _sparse_sigmoid(g, x):
    # 0 for x <= -1, 1 for x >= 1, (x + 1) / 2 between
    middle = g.node("Mul", g.node("Add", x, g.constant(1.0)), g.constant(0.5))
    upper = g.node(
        "Where", g.node("GreaterOrEqual", x, g.constant(1.0)), g.constant(1.0), middle
    )
    low = g.node("LessOrEqual", x, g.constant(-1.0))
    return g.node("Where", low, g.constant(0.0), upper)


def _simple(op_type: str, **attrs):
    def write(g, x):
        return g.node(op_type, x, **attrs)

    return write


def _softmax_like(op_type: str):
    def write(g, x, axis=-1):
        if axis not in (-1, 1):
            raise _unsupported_activation(op_type.lower(), f"axis={axis}")
        return g.node(op_type, x, axis=-1)

    return write


_ACTIVATIONS = {
    "linear": _simple("Identity"),
    "relu": _relu,
    "leaky_relu": lambda g, x, negative_slope=0.2: g.node(
        "LeakyRelu", x, alpha=float(negative_slope)
    ),
    "relu6": lambda g, x: g.node("Clip", x, g.constant(0.0), g.constant(6.0)),
    "elu": _elu,
    "selu": _simple("Selu", alpha=1.6732632423543772, gamma=1.0507009873554805),
    "celu": _celu,
    "gelu": _gelu,
    "sigmoid": _simple("Sigmoid"),
    "hard_sigmoid": _hard_sigmoid,
    "sparse_sigmoid": _sparse_sigmoid,
    "log_sigmoid": _log_sigmoid,
    "tanh": _simple("Tanh"),
    "hard_tanh": _hard_tanh,
    "tanh_shrink": _tanh_shrink,
    "softplus": _softplus,
    "softsign": _simple("Softsign"),
    "silu": _silu,
    "hard_silu": _hard_silu,
    "mish": _mish,
    "exponential": _simple("Exp"),
    "soft_shrink": _soft_shrink,
    "hard_shrink": _hard_shrink,
    "threshold": _threshold,
    "squareplus": _squareplus,
    "sparse_plus": _sparse_plus,
    "softmax": _softmax_like("Softmax"),
    "log_softmax": _softmax_like("LogSoftmax"),
}


def _unsupported_activation(name: str, detail: str = "") -> ValueError:
    detail = f" with {detail}" if detail else ""
    return ValueError(
        f"cannot export the activation {name!r}{detail} to ONNX; the supported "
        f"activations are {', '.join(sorted(_ACTIVATIONS))}."
    )


def _keras_activation(activation) -> tuple[str, dict]:
    """The Keras activation name and keyword arguments of a layer's activation:
    a Keras activation function, or a ``functools.partial`` of one with keywords
    (such as ``partial(keras.activations.gelu, approximate=True)``)."""
    import keras

    keywords: dict = {}
    function = activation
    if isinstance(activation, functools.partial):
        if activation.args:
            raise _unsupported_activation(
                getattr(activation.func, "__name__", repr(activation.func)),
                "positional arguments",
            )
        function, keywords = activation.func, dict(activation.keywords)
    name = getattr(function, "__name__", repr(function))
    try:
        known = keras.activations.get(name)
    except (ValueError, TypeError):
        known = None
    if known is not function or name not in _ACTIVATIONS:
        raise _unsupported_activation(name)
    return name, keywords


def _write_activation(g: _Graph, activation, x: str) -> str:
    name, keywords = _keras_activation(activation)
    try:
        return _ACTIVATIONS[name](g, x, **keywords)
    except TypeError:
        raise _unsupported_activation(
            name, ", ".join(f"{k}={v!r}" for k, v in keywords.items())
        ) from None


# -- the network -------------------------------------------------------------


def _write_network(g: _Graph, model, x: str) -> str:
    """The Keras model's forward pass at inference: Dense layers as MatMul, Add
    and activation; Dropout and augmentation's distortions do nothing at
    inference and are left out."""
    import keras

    from skmnist._augmentation import DigitDistortion

    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout | DigitDistortion):
            continue
        if not isinstance(layer, keras.layers.Dense):
            raise ValueError(
                f"cannot export the Keras layer {layer.name!r} "
                f"({type(layer).__name__}) to ONNX; only Dense and Dropout layers "
                "are supported."
            )
        weights = layer.get_weights()
        x = g.node("MatMul", x, g.constant(weights[0], f"{layer.name}_kernel"))
        if layer.use_bias:
            x = g.node("Add", x, g.constant(weights[1], f"{layer.name}_bias"))
        x = _write_activation(g, layer.activation, x)
    return x


# -- PixelScaler -----------------------------------------------------------------


def _pixel_scaler_shape(operator) -> None:
    n_samples = operator.inputs[0].get_first_dimension()
    scaler = operator.raw_operator
    operator.outputs[0].type = FloatTensorType([n_samples, scaler.n_features_in_])


def _convert_pixel_scaler(scope, operator, container) -> None:
    # transform: flatten, cast to float32, divide by max_value, in that order.
    # The ONNX model does not check the pixel range as transform does.
    g = _Graph(scope, container)
    flat = g.node("Flatten", operator.inputs[0].full_name, axis=1)
    pixels = g.node("Cast", flat, to=_FLOAT)
    g.node(
        "Div",
        pixels,
        g.constant(operator.raw_operator.max_value),
        output=operator.outputs[0].full_name,
    )


# -- MNISTClassifier ---------------------------------------------------------


def _onnx_classes(classifier, options) -> np.ndarray:
    """``classes_`` as ONNX labels: int64 numbers or strings, as skl2onnx
    converts the labels of scikit-learn classifiers; with skl2onnx's option
    ``nocl``, the class indices."""
    classes = np.asarray(classifier.classes_)
    if options.get("nocl", False):
        return np.arange(len(classes), dtype=np.int64)
    if classes.dtype.kind in "iubf":
        # Number labels that scikit-learn accepts for classification are
        # integers, even when stored as floats; ONNX's are int64, which
        # astype would wrap (uint64) or make up (floats) beyond its range.
        for label in classes.tolist():
            if not _INT64_MIN <= label <= _INT64_MAX:
                raise ValueError(
                    f"cannot export the class label {label!r} "
                    f"({classes.dtype}) to ONNX: ONNX labels are int64 numbers or "
                    "strings, and it is outside int64's range, -2**63 to "
                    "2**63 - 1 (skl2onnx refuses such labels for scikit-learn's "
                    "classifiers too). Train on labels within that range, or on "
                    "strings."
                )
        return classes.astype(np.int64)
    return classes.astype(str)


def _classifier_shape(operator) -> None:
    n_samples = operator.inputs[0].get_first_dimension()
    classifier = operator.raw_operator
    options = operator.scope_inst.get_options(classifier, {"nocl": False})
    classes = _onnx_classes(classifier, options)
    label_type = Int64TensorType if classes.dtype == np.int64 else StringTensorType
    operator.outputs[0].type = label_type([n_samples])
    operator.outputs[1].type = FloatTensorType([n_samples, len(classes)])


def _convert_classifier(scope, operator, container) -> None:
    classifier = operator.raw_operator
    g = _Graph(scope, container)
    # predict_proba casts its input to float32 (validate_data) before the network.
    x = g.node("Cast", operator.inputs[0].full_name, to=_FLOAT)
    proba = _write_network(g, classifier.model_, x)
    probabilities = operator.outputs[1].full_name
    if classifier.model_.layers[-1].units == 1:
        # One sigmoid unit: the probability of classes_[1]; predict_proba adds
        # 1 - p for classes_[0].
        negative = g.node("Sub", g.constant(1.0), proba)
        g.node("Concat", negative, proba, axis=1, output=probabilities)
    else:
        g.node("Identity", proba, output=probabilities)
    # predict: the class of the largest probability, the first one on ties.
    best = g.node("ArgMax", probabilities, axis=1, keepdims=0)
    classes = _onnx_classes(
        classifier, container.get_options(classifier, {"nocl": False})
    )
    if classes.dtype == np.int64:
        table = g.constant(classes, "classes", dtype=np.int64)
    else:
        table = g.strings(classes)
    g.node("Gather", table, best, axis=0, output=operator.outputs[0].full_name)


# -- DigitImagePreprocessor ------------------------------------------------------


def _refuse_digit_image_preprocessor(scope, model, inputs, custom_parsers=None):
    raise ValueError(
        "cannot export DigitImagePreprocessor to ONNX: it reads images of any "
        "size and format with NumPy and Pillow, which ONNX cannot express. Export "
        "the steps after it, and run skmnist.preprocess_digit_image (or the "
        "preprocessor) before the ONNX model."
    )


# -- registration and export --------------------------------------------------


@functools.cache
def register_onnx_converters() -> None:
    """Register skmnist's estimators with skl2onnx.

    After this call, ``skl2onnx.to_onnx`` converts scikit-learn pipelines that
    contain :class:`PixelScaler` and :class:`MNISTClassifier` steps, as it
    converts scikit-learn's own estimators; :func:`skmnist.to_onnx` calls it.
    ``MNISTClassifier`` accepts skl2onnx's classifier option ``zipmap`` (True,
    False or ``"columns"``). Calling it again does nothing.

    Examples
    --------
    >>> import skmnist
    >>> skmnist.register_onnx_converters()
    """
    skl2onnx.update_registered_converter(
        PixelScaler,
        "SkmnistPixelScaler",
        _pixel_scaler_shape,
        _convert_pixel_scaler,
    )
    skl2onnx.update_registered_converter(
        MNISTClassifier,
        "SkmnistMNISTClassifier",
        _classifier_shape,
        _convert_classifier,
        options={"zipmap": [True, False, "columns"], "nocl": [False, True]},
    )
    skl2onnx.update_registered_converter(
        DigitImagePreprocessor,
        "SkmnistDigitImagePreprocessor",
        _pixel_scaler_shape,  # never reached: the parser refuses
        _convert_pixel_scaler,
        parser=_refuse_digit_image_preprocessor,
    )


def to_onnx(
    model,
    path: str | os.PathLike | None = None,
    *,
    dtype: str = "float32",
    zipmap: bool = True,
) -> "onnx.ModelProto":
    """Convert a fitted skmnist pipeline or estimator to an ONNX model.

    The ONNX model runs in onnxruntime, without TensorFlow or scikit-learn. It
    takes what the model takes: images ``(n_samples, height, width)`` when the
    model starts with a :class:`PixelScaler` fitted on images, else rows of
    ``n_features_in_`` features; its name is ``"input"``. A classifier's outputs
    are the ones skl2onnx gives every classifier: by default ``output_label``
    (the predicted classes, int64 numbers or strings, equal to ``predict``'s)
    and ``output_probability`` (a list of ``{class: probability}`` dicts); with
    ``zipmap=False``, ``label`` and ``probabilities``, a float32 array of shape
    ``(n_samples, n_classes)`` equal to ``predict_proba``'s within 1e-5.

    Parameters
    ----------
    model : estimator or sklearn.pipeline.Pipeline
        A fitted :func:`make_mnist_pipeline`, :class:`MNISTClassifier`,
        :class:`PixelScaler`, or a scikit-learn pipeline of these and other
        estimators skl2onnx converts (such as ``StandardScaler``).
    path : str or path-like, default=None
        Where to write the ``.onnx`` file. It is written atomically: an
        existing file is replaced only once the new one is complete.
    dtype : {"float32", "float64", "uint8", "int64"}, default="float32"
        Element type of the model's input. ``"uint8"`` takes MNIST's images as
        they are stored; float32 holds any uint8 or uint16 pixel exactly.
    zipmap : bool, default=True
        If False, the probabilities are a plain array (output ``probabilities``)
        instead of skl2onnx's default list of dicts (``output_probability``).

    Returns
    -------
    onnx_model : onnx.ModelProto
        The converted model, also written to ``path`` when given.

    Raises
    ------
    ValueError
        For what ONNX cannot hold: a :class:`DigitImagePreprocessor` step, an
        unsupported Keras activation or layer, or a number class label outside
        int64's range (such as a uint64 label of 2**63 or more).

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime
    >>> from skmnist import make_mnist_pipeline, to_onnx
    >>> rng = np.random.RandomState(0)
    >>> images = rng.randint(0, 256, (40, 28, 28)).astype(np.uint8)
    >>> pipe = make_mnist_pipeline(hidden_units=8, epochs=1, random_state=0)
    >>> pipe = pipe.fit(images, np.arange(40) % 2)
    >>> session = onnxruntime.InferenceSession(
    ...     to_onnx(pipe, dtype="uint8").SerializeToString()
    ... )
    >>> labels, proba = session.run(None, {"input": images[:3]})
    >>> bool((labels == pipe.predict(images[:3])).all())
    True
    """
    if dtype not in _INPUT_TYPES:
        raise ValueError(
            f"dtype must be one of {', '.join(_INPUT_TYPES)}, got {dtype!r}."
        )
    check_is_fitted(model)
    register_onnx_converters()
    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    if isinstance(first, DigitImagePreprocessor):
        _refuse_digit_image_preprocessor(None, first, None)
    if isinstance(first, PixelScaler):
        shape = [None, *first.image_shape_]
    elif hasattr(first, "n_features_in_"):
        shape = [None, first.n_features_in_]
    else:
        raise ValueError(
            f"cannot tell the input shape of {type(first).__name__}; convert with "
            "skl2onnx.to_onnx(model, X[:1]) after skmnist.register_onnx_converters()."
        )
    options = None
    last = model.steps[-1][1] if isinstance(model, Pipeline) else model
    if not zipmap and is_classifier(last):
        options = {id(last): {"zipmap": False}}
    onnx_model = skl2onnx.to_onnx(
        model,
        initial_types=[("input", _INPUT_TYPES[dtype](shape))],
        options=options,
    )
    if path is not None:
        write_atomically(path, lambda temporary: onnx.save(onnx_model, temporary))
    return onnx_model
