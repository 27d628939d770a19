"""The ``skmnist`` command line: train, evaluate and predict.

Heavy imports (TensorFlow through the estimators) happen inside the commands, so
``skmnist --help`` answers at once.
"""

import argparse
import os
import sys
from pathlib import Path

DEFAULT_MODEL = "mnist_pipeline.joblib"


def main(argv=None) -> int:
    """Run the ``skmnist`` command line; returns the exit status."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's logs quiet
    return args.command(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skmnist",
        description="Train, evaluate and use the classic MNIST network.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train on MNIST, report test accuracy, save the model",
        description="Fit the MNIST pipeline (PixelScaler + MNISTClassifier) on the "
        "MNIST training set, evaluate it on the test set and save it. The last line "
        "printed is 'test_acc: <accuracy>'.",
    )
    train.add_argument("--epochs", type=_positive_int, default=5)
    train.add_argument("--batch-size", type=_positive_int, default=128)
    train.add_argument("--hidden-units", type=_positive_int, default=512)
    train.add_argument("--random-state", type=int, default=None)
    _add_data_argument(train)
    train.add_argument(
        "--output",
        default=DEFAULT_MODEL,
        help=f"where to save the fitted pipeline (default: {DEFAULT_MODEL})",
    )
    train.add_argument(
        "--format",
        choices=["joblib", "skmnist"],
        default=None,
        help="file format: 'skmnist' is pickle-free and safe to load from "
        "untrusted sources, 'joblib' a pickle (default: skmnist if --output ends "
        "in .skmnist, else joblib)",
    )
    train.set_defaults(command=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="test accuracy, per-class precision/recall, confusion matrix",
        description="Evaluate a saved model on the MNIST test set.",
    )
    evaluate.add_argument("model", help="a model saved by 'skmnist train'")
    _add_data_argument(evaluate)
    evaluate.set_defaults(command=_evaluate)

    predict = commands.add_parser(
        "predict",
        help="classify your own digit images (PNG, JPEG, ...)",
        description="Classify digit images after MNIST-style preprocessing. Prints "
        "'<file>: <digit> (<probability>)' per image; exits with status 1 if any "
        "image could not be read.",
    )
    predict.add_argument("model", help="a model saved by 'skmnist train'")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.set_defaults(command=_predict)
    return parser


def _add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        help="mnist.npz or a folder of IDX files (default: $SKMNIST_DATA, Keras's "
        "cache, else download)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _train(args) -> int:
    from skmnist import make_mnist_pipeline
    from skmnist.datasets import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    pipeline = make_mnist_pipeline(
        hidden_units=args.hidden_units,
        epochs=args.epochs,
        batch_size=args.batch_size,
        random_state=args.random_state,
        verbose=2,
    )
    pipeline.fit(x_train, y_train)
    test_acc = pipeline.score(x_test, y_test)
    _save_model(pipeline, Path(args.output), args.format)
    print(f"saved the fitted pipeline to {args.output}")
    print(f"test_acc: {test_acc:.4f}")
    return 0


def _evaluate(args) -> int:
    from sklearn.metrics import classification_report, confusion_matrix

    from skmnist.datasets import load_mnist

    pipeline = _load_model(args.model)
    _, (x_test, y_test) = load_mnist(args.data)
    predicted = pipeline.predict(x_test)
    print(classification_report(y_test, predicted, digits=4))
    print("confusion matrix (rows: true digit, columns: predicted digit)")
    print(confusion_matrix(y_test, predicted))
    print(f"test_acc: {(predicted == y_test).mean():.4f}")
    return 0


def _predict(args) -> int:
    import numpy as np

    from skmnist._images import load_digit_image

    pipeline = _load_model(args.model)
    failed = False
    for name in args.images:
        try:
            digit = load_digit_image(name)
        except (OSError, ValueError) as error:
            print(f"{name}: error: {error}", file=sys.stderr)
            failed = True
            continue
        proba = pipeline.predict_proba(digit[np.newaxis])[0]
        best = int(np.argmax(proba))
        print(f"{Path(name).name}: {pipeline.classes_[best]} ({proba[best]:.3f})")
    return 1 if failed else 0


def _load_model(path: str):
    import joblib

    from skmnist._persistence import is_skmnist_file, load

    if not Path(path).is_file():
        raise SystemExit(f"skmnist: error: no model file at {path}")
    # By content, not extension: both formats load whatever the file is called.
    if is_skmnist_file(path):
        try:
            return load(path)
        except ValueError as error:
            raise SystemExit(f"skmnist: error: {error}") from None
    try:
        return joblib.load(path)
    except Exception as error:  # unpickling garbage fails in many ways
        raise SystemExit(
            f"skmnist: error: {path} is neither an skmnist model file nor a joblib "
            f"pickle ({type(error).__name__}: {error})"
        ) from None


def _save_model(model, path: Path, file_format: str | None) -> None:
    """Save atomically, so that a crash never leaves a half-written model in place
    of a good one."""
    import joblib

    from skmnist._persistence import save, write_atomically

    if file_format is None:
        file_format = "skmnist" if path.suffix == ".skmnist" else "joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    if file_format == "skmnist":
        save(model, path)
    else:
        write_atomically(path, lambda temporary: joblib.dump(model, temporary))


if __name__ == "__main__":
    sys.exit(main())
