"""The ``skmnist`` command line: train, evaluate, predict, search, serve and
export.

Heavy imports (TensorFlow through the estimators) happen inside the commands,
after each command's own checks of its options, so ``skmnist --help`` and a
misused command line answer at once. Every expected failure ends the command
with one line, ``skmnist: error: ...``, on standard error (exit status 2 for a
misused command line, 1 for a failure), and everything that can be checked
(options, output files, the model file) is checked before data is loaded or a
model trained, so that a mistake never costs a training run. Ctrl-C ends any
command with one line and exit status 130, from start-up on; it stops training
at the end of the current epoch at the latest, and never leaves a file
half-saved or replaced by a model of an interrupted run
(:mod:`skmnist._interrupts`).
"""

import argparse
import contextlib
import math
import os
import sys
import warnings
from pathlib import Path

from skmnist._interrupts import raise_if_interrupted, recorded_interrupts
from skmnist._quiet_keras import import_keras_quietly

DEFAULT_MODEL = "mnist_pipeline.skmnist"
# The seeds NumPy's RandomState (and so scikit-learn) accepts.
_MAX_SEED = 2**32 - 1
# skmnist._architecture.MAX_COUNT, here without its NumPy import (--help).
_MAX_COUNT = 2**31 - 1
# The exit status of a command stopped by Ctrl-C, as shells report SIGINT.
INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line in the command's own format."""

    def error(self, message: str):
        self.exit(2, f"skmnist: error: {message} (see '{self.prog} --help')\n")


class CommandError(Exception):
    """An expected failure: reported as one line, exit status 1."""


def main(argv=None) -> int:
    """Run the ``skmnist`` command line; returns the exit status."""
    args = None
    format_warning = warnings.formatwarning
    # A warning is one line too, without the source line Python would quote.
    warnings.formatwarning = _format_warning
    try:
        with recorded_interrupts():
            try:
                args = _parser().parse_args(argv)
                # Options checked before TensorFlow is imported (seconds).
                getattr(args, "check", lambda args: None)(args)
                import_keras_quietly()
                with warnings.catch_warnings():
                    # Said by the one line below, for every command (a search
                    # interrupts fits too).
                    warnings.filterwarnings(
                        "ignore", "Training interrupted after", UserWarning
                    )
                    status = args.command(args)
                if not getattr(args, "stops_on_ctrl_c", False):
                    raise_if_interrupted()  # one that a gc callback swallowed
                return status
            except KeyboardInterrupt:
                print(f"skmnist: {_interrupted(args)}", file=sys.stderr, flush=True)
                return INTERRUPTED
    except CommandError as error:
        print(f"skmnist: error: {_one_line(error)}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = format_warning


def _interrupted(args) -> str:
    """What Ctrl-C stopped, and what became of the command's output file."""
    output = getattr(args, "output", None)
    if output is None or getattr(args, "command", None) is _evaluate:
        return "interrupted"
    if getattr(args, "saved", False):
        return f"interrupted after saving {output}"
    return f"interrupted; nothing saved to {output}"


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"skmnist: warning: {_one_line(message)}\n"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="skmnist",
        description="Train, evaluate and use the classic MNIST network.",
    )
    commands = parser.add_subparsers(
        required=True, metavar="COMMAND", parser_class=_Parser
    )

    train = commands.add_parser(
        "train",
        help="train on MNIST, report test accuracy, save the model",
        description="Fit the MNIST pipeline (PixelScaler + MNISTClassifier) on the "
        "MNIST training set, evaluate it on the test set and save it. The last line "
        "printed is 'test_acc: <accuracy>'.",
    )
    train.add_argument(
        "--robust",
        action="store_true",
        help="train the recipe for digits people draw and photograph: "
        "augmented images (rotated, slanted, scaled, distorted, thicker and "
        "thinner strokes), two hidden layers of 1024 units, Adam with a cosine "
        "learning rate, 30 epochs (some 10 minutes on 2 cores); the options "
        "below change it",
    )
    train.add_argument(
        "--epochs", type=_count, default=None, help="default: 5, 30 with --robust"
    )
    train.add_argument(
        "--batch-size",
        type=_count,
        default=128,
        help="rows per training step (default: 128); one larger than the "
        "training set trains on all of it at once",
    )
    train.add_argument(
        "--hidden-units",
        type=_hidden_units,
        default=None,
        metavar="WIDTHS",
        help="units of the hidden layer, or comma-separated widths of several "
        "hidden layers in turn, e.g. 512,256 (default: 512; 1024,1024 with "
        "--robust)",
    )
    train.add_argument(
        "--dropout",
        type=_fraction,
        default=None,
        metavar="FRACTION",
        help="fraction of the units dropped after every hidden layer while "
        "training, from 0 to below 1 (default: 0)",
    )
    train.add_argument(
        "--alpha",
        type=_non_negative_number,
        default=None,
        help="strength of the L2 penalty on the weights, as MLPClassifier's "
        "alpha (default: 0, none)",
    )
    train.add_argument(
        "--learning-rate",
        type=_positive_number,
        default=None,
        metavar="RATE",
        help="the optimizer's (starting) learning rate, above 0 (default: "
        "RMSprop's, 0.001)",
    )
    train.add_argument(
        "--learning-rate-schedule",
        choices=["constant", "adaptive"],
        default=None,
        help="'adaptive' divides the learning rate by 5 whenever "
        "--n-iter-no-change epochs bring no --tol improvement (of the validation "
        "accuracy with --early-stopping, else of the training loss) "
        "(default: constant)",
    )
    stopping = train.add_argument_group("early stopping")
    stopping.add_argument(
        "--early-stopping",
        action="store_true",
        help="hold out --validation-fraction of the training images, stop when "
        "their accuracy has not improved by --tol for --n-iter-no-change epochs "
        "(--epochs is then the most trained) and keep the weights of the best "
        "epoch",
    )
    stopping.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=None,
        metavar="FRACTION",
        help="fraction of the training images held out, stratified by digit, to "
        "report validation loss and accuracy after every epoch, from 0 to below 1 "
        "(default: 0.1 with --early-stopping, else none)",
    )
    stopping.add_argument(
        "--n-iter-no-change",
        type=_count,
        default=None,
        metavar="N",
        help="epochs without improvement before stopping, or before the "
        "adaptive schedule lowers the learning rate (default: 10)",
    )
    stopping.add_argument(
        "--tol",
        type=_non_negative_number,
        default=None,
        help="the least improvement that counts (default: 0.0001)",
    )
    train.add_argument("--random-state", type=_seed, default=None)
    _add_data_argument(train)
    train.add_argument(
        "--output",
        default=DEFAULT_MODEL,
        help=f"where to save the fitted pipeline (default: {DEFAULT_MODEL})",
    )
    _add_format_argument(train)
    train.set_defaults(command=_train, check=_check_train, parser=train)

    evaluate = commands.add_parser(
        "evaluate",
        help="test accuracy, per-class precision/recall, confusion matrix",
        description="Evaluate a saved model on the MNIST test set.",
    )
    evaluate.add_argument("model", help="a model saved by 'skmnist train'")
    _add_trust_pickle_argument(evaluate)
    _add_data_argument(evaluate)
    evaluate.add_argument(
        "--plot",
        metavar="FILE",
        default=None,
        help="also write one figure with the confusion matrix and the first 25 "
        "misclassified test digits to FILE (.png, .pdf, .svg, ...); needs "
        "matplotlib (pip install 'skmnist[plot]')",
    )
    evaluate.set_defaults(command=_evaluate, check=_check_evaluate, parser=evaluate)

    predict = commands.add_parser(
        "predict",
        help="classify your own digit images (PNG, JPEG, ...)",
        description="Classify digit images after MNIST-style preprocessing. Prints "
        "'<file>: <digit> (<probability>)' per image; each image that cannot be "
        "read is reported on standard error, the others are still classified, "
        "and the exit status is then 1.",
    )
    predict.add_argument("model", help="a model saved by 'skmnist train'")
    _add_trust_pickle_argument(predict)
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.set_defaults(command=_predict, check=_check_model, parser=predict)

    _add_search_parser(commands)
    _add_serve_parser(commands)
    _add_export_parser(commands)
    return parser


def _add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        help="mnist.npz or a folder holding it or the IDX files (default: "
        "$SKMNIST_DATA, Keras's cache, else download)",
    )


def _add_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=["joblib", "skmnist"],
        default=None,
        help="file format: 'skmnist' is pickle-free and safe to load from "
        "untrusted sources, 'joblib' a pickle, never written to a .skmnist "
        "name (default: joblib if --output ends in .joblib, else skmnist)",
    )


def _add_trust_pickle_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust",
        dest="trust_pickle",
        action="store_true",
        help="only for a MODEL you trust: unpickle it if it is a joblib pickle, "
        "whatever its name (unpickling runs code from the file; a .skmnist file "
        "is never unpickled), and read it if it is an skmnist file of the old "
        "format version 1 (whose weights HDF5 parses)",
    )


def _integer(kind: str, low: int, high: float = float("inf")):
    """An argparse ``type`` accepting the integers from ``low`` to ``high``; any
    other text is refused as "must be <kind>, got <text>", so that a word and an
    out-of-range number get the same message naming what is expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {kind}, got {value}")
        return value

    return parse


_positive_int = _integer("a positive integer", 1)


def _seconds(text: str) -> float:
    """An argparse ``type`` for a positive, finite number of seconds (at most a
    day)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds above 0, at most 86400, got {text!r}"
        )
    return value


def _number(
    kind: str,
    low: float,
    high: float = math.inf,
    *,
    above: bool = False,
    below: bool = False,
):
    """An argparse ``type`` accepting the finite numbers from ``low`` (or, with
    ``above``, above it) to ``high`` (or, with ``below``, below it); anything
    else is refused as "must be <kind>, got <text>"."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (
            math.isfinite(value)
            and (low < value if above else low <= value)
            and (value < high if below else value <= high)
        ):
            raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}")
        return value

    return parse


_positive_number = _number("a number above 0", 0, above=True)
_non_negative_number = _number("a number, 0 or more", 0)
_fraction = _number("a number from 0 to below 1", 0, 1, below=True)
_count = _integer(f"an integer from 1 to {_MAX_COUNT}", 1, _MAX_COUNT)
_non_negative_int = _integer("an integer, 0 or more", 0)
_seed = _integer(f"an integer from 0 to {_MAX_SEED}", 0, _MAX_SEED)
_port = _integer("a port number from 0 to 65535", 0, 65535)


def _hidden_units(text: str) -> int | tuple[int, ...]:
    """An argparse ``type`` for ``--hidden-units``: one width (``512``, an int)
    or comma-separated widths of several hidden layers (``512,256``, a tuple),
    optionally in parentheses as ``search --param`` writes them."""
    widths = text.strip()
    if widths.startswith("(") and widths.endswith(")"):
        widths = widths[1:-1]
    try:
        parsed = tuple(_count(width.strip()) for width in widths.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            "must be a width or comma-separated widths of hidden layers such as "
            f"512,256, each an integer from 1 to {_MAX_COUNT}, got {text!r}"
        ) from None
    return parsed[0] if len(parsed) == 1 else parsed


# The classifier's parameters that train sets from options given (an option
# left out leaves the classifier's default).
_TRAIN_PARAMETERS = {
    "dropout": "dropout",
    "alpha": "alpha",
    "learning_rate": "optimizer__learning_rate",
    "learning_rate_schedule": "learning_rate_schedule",
    "validation_fraction": "validation_fraction",
    "n_iter_no_change": "n_iter_no_change",
    "tol": "tol",
}


def _check_train(args) -> None:
    if args.early_stopping and args.validation_fraction == 0:
        args.parser.error(
            "argument --validation-fraction: --early-stopping needs validation "
            "images: give a fraction above 0 (default: 0.1)"
        )
    if not (args.early_stopping or args.learning_rate_schedule == "adaptive"):
        for option in ("n_iter_no_change", "tol"):
            if getattr(args, option) is not None:
                args.parser.error(
                    f"argument --{option.replace('_', '-')}: has an effect only "
                    "with --early-stopping or --learning-rate-schedule adaptive"
                )
    args.output_path = _check_model_output(args)
    from skmnist._architecture import ROBUST_EPOCHS, ROBUST_HIDDEN_UNITS

    if args.hidden_units is None:
        args.hidden_units = ROBUST_HIDDEN_UNITS if args.robust else 512
    if args.epochs is None:
        args.epochs = ROBUST_EPOCHS if args.robust else 5
    _check_network_fits_in_memory(args.hidden_units, args.parser)


def _train(args) -> int:
    from skmnist._pipeline import make_mnist_pipeline, robust_recipe

    (x_train, y_train), (x_test, y_test) = _load_mnist(args.data)
    given = {
        parameter: getattr(args, option)
        for option, parameter in _TRAIN_PARAMETERS.items()
        if getattr(args, option) is not None
    }
    if args.robust and args.learning_rate_schedule is None:
        # The recipe's schedule starts from --learning-rate.
        given.pop("optimizer__learning_rate", None)
    pipeline = make_mnist_pipeline(
        hidden_units=args.hidden_units,
        epochs=args.epochs,
        batch_size=args.batch_size,
        early_stopping=args.early_stopping,
        random_state=args.random_state,
        verbose=2,
        **given,
    )
    if args.robust:
        # The cosine falls to 0 over the rows trained: those the classifier's
        # validation split leaves (train_test_split rounds the held-out up).
        held_out = pipeline[-1]._validation_fraction(None, warn=False)
        recipe = robust_recipe(
            len(x_train) - math.ceil(held_out * len(x_train)),
            epochs=args.epochs,
            batch_size=args.batch_size,
            **({"learning_rate": args.learning_rate} if args.learning_rate else {}),
        )
        # The options given, --hidden-units, --epochs and --batch-size among
        # them, change the recipe.
        pipeline[-1].set_params(
            **{
                name: value
                for name, value in recipe.items()
                if name not in given
                and name not in ("hidden_units", "epochs", "batch_size")
            }
        )
    try:
        pipeline.fit(x_train, y_train)  # main says an interruption in one line
    except ValueError as error:
        # What only the data can refuse: a --validation-fraction that holds
        # out too few images, or not every digit, of a small --data.
        raise CommandError(_one_line(error)) from None
    if args.early_stopping:
        print(_early_stopping_report(pipeline[-1], args.epochs))
    test_acc = pipeline.score(x_test, y_test)
    _save_model(pipeline, args.output_path, args.format)
    args.saved = True
    print(f"saved the fitted pipeline to {args.output}")
    print(f"test_acc: {test_acc:.4f}")
    return 0


def _early_stopping_report(classifier, epochs: int) -> str:
    """One line: the epochs early stopping let train, and the best validation
    accuracy, whose epoch's weights the classifier keeps."""
    scores = classifier.validation_scores_
    best_epoch = scores.index(max(scores)) + 1  # the earliest of equals
    return (
        f"early stopping: trained {classifier.n_iter_} of {epochs} epochs, best "
        f"validation accuracy {classifier.best_validation_score_:.4f} at epoch "
        f"{best_epoch} (the weights kept)"
    )


def _check_evaluate(args) -> None:
    if args.plot is not None:
        _check_plot_file(args.plot, inputs=(args.model, *_data_inputs(args.data)))
    _check_model(args)


def _evaluate(args) -> int:
    from sklearn.metrics import classification_report, confusion_matrix

    pipeline = load_digit_model(args.model, args.trust_pickle, digit_labels=True)
    _, (x_test, y_test) = _load_mnist(args.data)
    predicted = pipeline.predict(x_test)
    print(classification_report(y_test, predicted, digits=4))
    print("confusion matrix (rows: true digit, columns: predicted digit)")
    print(confusion_matrix(y_test, predicted))
    if args.plot is not None:
        from skmnist._files import write_atomically
        from skmnist._plotting import _evaluation_figure

        figure = _evaluation_figure(x_test, y_test, predicted)
        file_format = Path(args.plot).suffix.lstrip(".").lower()
        try:
            write_atomically(
                args.plot,
                lambda temporary: figure.savefig(temporary, format=file_format),
            )
        except (OSError, ValueError, RuntimeError) as error:
            raise CommandError(f"--plot {args.plot}: {error}") from None
        print(f"wrote the confusion matrix and misclassified digits to {args.plot}")
    print(f"test_acc: {(predicted == y_test).mean():.4f}")
    return 0


def _predict(args) -> int:
    import numpy as np

    from skmnist._images import load_digit_image

    pipeline = load_digit_model(args.model, args.trust_pickle, digit_labels=False)
    failed = False
    for name in args.images:
        raise_if_interrupted()  # between images: one a gc callback swallowed
        try:
            digit = _read_digit(name, load_digit_image)
        except Exception as error:
            # Images come from anywhere and Pillow fails in many ways (OSError,
            # ValueError, DecompressionBombError, SyntaxError...): say which file
            # and go on with the others.
            print(f"skmnist: error: {name}: {_one_line(error)}", file=sys.stderr)
            failed = True
            continue
        proba = pipeline.predict_proba(digit[np.newaxis])[0]
        best = int(np.argmax(proba))
        print(f"{name}: {pipeline.classes_[best]} ({proba[best]:.3f})", flush=True)
    return 1 if failed else 0


def _read_digit(name: str, load_digit_image):
    path = Path(name)
    if path.is_dir():
        raise ValueError("is a folder, not an image")
    if not path.exists():
        raise ValueError("no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError("the file is empty")
    return load_digit_image(path)


def _add_search_parser(commands) -> None:
    search = commands.add_parser(
        "search",
        help="grid or randomized search with cross-validation on a dask cluster",
        description="Cross-validate every combination of --param values of the "
        "MNIST pipeline on a dask.distributed cluster (a local one of worker "
        "processes unless --scheduler is given), print the results sorted by "
        "score and the best parameters, refit the best pipeline on all the "
        "training data, report its test accuracy and save it. Needs "
        "'pip install skmnist[dask]'. The last line printed is "
        "'test_acc: <accuracy>'.",
        epilog="example: skmnist search --param 'clf__hidden_units=128,512,(512,256)' "
        "--param clf__optimizer__learning_rate=1e-3,3e-4 --limit 10000 --cv 3",
    )
    search.add_argument(
        "--param",
        action="append",
        type=_search_param,
        required=True,
        metavar="NAME=V1[,V2...]",
        help="a pipeline parameter and the values to try, e.g. "
        "clf__hidden_units=128,512 or clf__optimizer__learning_rate=1e-3,3e-4; "
        "values read as int, float, true/false, none, else text, and a value "
        "in parentheses as a tuple: 'clf__hidden_units=256,(512,256)' tries one "
        "hidden layer of 256 units and two of 512 and 256 (quote it for the "
        "shell); repeat for several parameters",
    )
    search.add_argument(
        "--cv",
        type=_integer(f"an integer from 2 to {_MAX_COUNT}", 2, _MAX_COUNT),
        default=3,
        help="folds per candidate, at least 2 (default: 3)",
    )
    search.add_argument(
        "--n-iter",
        type=_positive_int,
        default=None,
        help="try this many combinations drawn at random (RandomizedSearchCV) "
        "instead of all of them",
    )
    search.add_argument(
        "--scoring",
        default=None,
        help="a scikit-learn scorer name, e.g. balanced_accuracy (default: accuracy)",
    )
    search.add_argument(
        "--random-state",
        type=_seed,
        default=None,
        help="seeds every fit and the --n-iter draw: equal seeds give equal scores "
        "on any cluster",
    )
    search.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="use only the first N training images (default: all 60000)",
    )
    _add_data_argument(search)
    search.add_argument(
        "--output",
        default=DEFAULT_MODEL,
        help=f"where to save the refitted best pipeline (default: {DEFAULT_MODEL})",
    )
    _add_format_argument(search)
    cluster = search.add_argument_group("cluster")
    cluster.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="address of a running dask scheduler, e.g. tcp://10.0.0.5:8786 "
        "(default: start a local cluster)",
    )
    cluster.add_argument(
        "--n-workers",
        type=_non_negative_int,
        default=None,
        help="worker processes of the local cluster (default: one per available "
        "core divided by --threads-per-worker); 0 searches in this process, "
        "without dask",
    )
    cluster.add_argument(
        "--threads-per-worker",
        type=_positive_int,
        default=None,
        help="fits each local worker runs at once; TensorFlow's thread pools in "
        "every worker are sized to it (default: 1)",
    )
    search.set_defaults(command=_search, check=_check_search, parser=search)


def _search_param(text: str) -> tuple[str, list]:
    """``name=v1,v2`` -> ``(name, [v1, v2])`` with each value parsed; a value in
    parentheses is a tuple: ``name=256,(512,256)`` -> ``(name, [256, (512,
    256)])``."""
    name, equals, values = text.partition("=")
    name = name.strip()
    if not equals or not name.replace("__", "_").isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE[,VALUE...] such as clf__hidden_units=128,512, "
            f"got {text!r}"
        )
    return name, [_parse_item(value, text) for value in _split_values(values, text)]


def _split_values(values: str, text: str) -> list[str]:
    """``values`` split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for index, character in enumerate(values):
        if character == "(":
            depth += 1
            if depth > 1:
                raise argparse.ArgumentTypeError(
                    f"parentheses within parentheses in {text!r}: a value is a "
                    "tuple of plain values, such as (512,256)"
                )
        elif character == ")":
            depth -= 1
            if depth < 0:
                raise argparse.ArgumentTypeError(f"unbalanced ')' in {text!r}")
        elif character == "," and depth == 0:
            parts.append(values[start:index])
            start = index + 1
    if depth:
        raise argparse.ArgumentTypeError(f"unbalanced '(' in {text!r}")
    parts.append(values[start:])
    return parts


def _parse_item(item: str, text: str):
    """One value of ``--param``: a plain value, or a tuple of them written in
    parentheses (``(512,256)``; ``(512)`` and ``(512,)`` are 1-tuples)."""
    item = item.strip()
    if "(" not in item and ")" not in item:
        if item == "":
            raise argparse.ArgumentTypeError(f"empty value in {text!r}")
        return _parse_value(item)
    if not (item.startswith("(") and item.endswith(")")):
        raise argparse.ArgumentTypeError(
            f"{item!r} in {text!r}: a tuple is a whole value in parentheses, "
            "such as (512,256)"
        )
    elements = [element.strip() for element in item[1:-1].split(",")]
    if len(elements) > 1 and elements[-1] == "":
        elements.pop()  # (512,): Python's 1-tuple
    if "" in elements:
        raise argparse.ArgumentTypeError(f"empty value in {item!r} in {text!r}")
    return tuple(_parse_value(element) for element in elements)


def _parse_value(text: str):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _check_search(args) -> None:
    """What needs neither TensorFlow nor the data: the rest is checked by
    :func:`skmnist._search.run_search`, still before the data loads."""
    from skmnist._search import SearchUsageError, check_cluster_options

    try:
        check_cluster_options(args.scheduler, args.n_workers, args.threads_per_worker)
    except SearchUsageError as error:
        args.parser.error(_one_line(error))
    _check_model_output(args)  # before the cluster starts and the data loads
    for name, values in args.param:
        if name.rpartition("__")[2] == "hidden_units":
            for value in values:
                # Widths; other values (text, a truth value) are refused by
                # run_search's check of every value against the estimator.
                if isinstance(value, tuple) or (
                    isinstance(value, int) and not isinstance(value, bool)
                ):
                    _check_network_fits_in_memory(value, args.parser, f"--param {name}")


def _search(args) -> int:
    """``skmnist search``: checked and run by :func:`skmnist._search.run_search`;
    the command line adds the saving of the best pipeline."""
    from skmnist._search import SearchFailedError, SearchUsageError, run_search

    try:
        search, (x_test, y_test) = run_search(
            args.param,
            cv=args.cv,
            n_iter=args.n_iter,
            scoring=args.scoring,
            random_state=args.random_state,
            limit=args.limit,
            data=args.data,
            scheduler=args.scheduler,
            n_workers=args.n_workers,
            threads_per_worker=args.threads_per_worker,
        )
    except SearchUsageError as error:
        args.parser.error(_one_line(error))
    except SearchFailedError as error:
        raise CommandError(str(error)) from None
    _save_model(search.best_estimator_, Path(args.output), args.format)
    args.saved = True
    print(f"saved the refitted best pipeline to {args.output}")
    print(f"test_acc: {search.best_estimator_.score(x_test, y_test):.4f}")
    return 0


def _add_serve_parser(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="a web page to draw digits on and a prediction API",
        description="Serve a saved model over HTTP: a page at / to draw a digit "
        "on and see the prediction, POST /predict for images (raw body or "
        "multipart upload), GET /health, GET /model, and the API's "
        "documentation at /docs. Needs 'pip install skmnist[serve]'.",
    )
    serve.add_argument("model", help="a model saved by 'skmnist train'")
    _add_trust_pickle_argument(serve)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; "
        "0.0.0.0 for every network)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=8000,
        help="TCP port (default: 8000; 0 picks a free one)",
    )
    serve.add_argument(
        "--max-waiting",
        type=_integer("an integer from 1 to 100000", 1, 100_000),
        default=64,
        metavar="N",
        help="predictions that may wait for a turn; more get status 503 at once "
        "(default: 64)",
    )
    serve.add_argument(
        "--upload-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="an upload must arrive within this many seconds once its turn has "
        "come, else status 408: slow clients cannot hold the turns (default: 30)",
    )
    serve.add_argument(
        "--max-upload-bytes",
        type=_integer("an integer from 1 to 1073741824", 1, 2**30),
        default=10 * 2**20,
        metavar="N",
        help="larger uploads are refused with status 413 (default: 10 MiB)",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name (or address) clients may use to reach the service, "
        "besides --host, localhost, 127.0.0.1 and [::1]: requests naming any other "
        "host in their Host header are refused (DNS rebinding); repeat for several",
    )
    serve.add_argument(
        "--max-concurrent",
        type=_integer("an integer from 1 to 1024", 1, 1024),
        default=None,
        metavar="N",
        help="predictions handled at once, each from the first byte of its upload "
        "to its answer; others wait unread (default: the CPU cores available)",
    )
    serve.add_argument(
        "--root-path",
        default="",
        metavar="PREFIX",
        help="the path prefix under which a reverse proxy forwards to this "
        "service, e.g. /mnist (default: none)",
    )
    # Ctrl-C is how a server is stopped: exit status 0.
    serve.set_defaults(command=_serve, check=_check_model, stops_on_ctrl_c=True)


def _serve(args) -> int:
    try:
        from skmnist._serve import serve
    except ImportError as error:
        raise CommandError(
            f"serve needs FastAPI and uvicorn ({error}): pip install 'skmnist[serve]'"
        ) from None
    model = load_digit_model(args.model, args.trust_pickle, digit_labels=False)
    try:
        serve(
            model,
            host=args.host,
            port=args.port,
            root_path=args.root_path.rstrip("/"),
            max_upload_bytes=args.max_upload_bytes,
            allowed_hosts=args.allow_host,
            max_concurrent=args.max_concurrent,
            max_waiting=args.max_waiting,
            upload_timeout=args.upload_timeout,
            announce=lambda line: print(line, flush=True),
        )
    except (OSError, TypeError) as error:
        # The port is taken, the address is not this machine's, or the file
        # holds no classifier.
        raise CommandError(_one_line(error)) from None
    return 0


def _add_export_parser(commands) -> None:
    export = commands.add_parser(
        "export",
        help="convert a saved model to ONNX, to serve it with onnxruntime",
        description="Convert a model saved by 'skmnist train' or 'skmnist search' "
        "(or skmnist.save) to an ONNX file that onnxruntime runs without "
        "TensorFlow. Its input 'input' takes images of the shape the model was "
        "fitted on; its outputs are 'output_label' and 'output_probability' (with "
        "--no-zipmap, 'label' and 'probabilities'). "
        "Needs 'pip install skmnist[onnx]'.",
    )
    export.add_argument("model", help="a model saved by 'skmnist train'")
    _add_trust_pickle_argument(export)
    export.add_argument("output", metavar="OUT.onnx", help="the ONNX file to write")
    export.add_argument(
        "--dtype",
        choices=["float32", "float64", "uint8", "int64"],
        default="float32",
        help="element type of the ONNX model's input (default: float32; uint8 "
        "takes MNIST's images as stored)",
    )
    export.add_argument(
        "--no-zipmap",
        dest="zipmap",
        action="store_false",
        help="write the probabilities as an (n_samples, n_classes) array instead "
        "of skl2onnx's default list of {class: probability} maps",
    )
    export.set_defaults(command=_export, check=_check_export)


def _check_export(args) -> None:
    from skmnist._files import OutputPathError, check_writable_output

    # The model first: checking OUT.onnx creates its missing folders.
    _check_model(args)
    try:
        check_writable_output(args.output, inputs=(args.model,), what="OUT.onnx")
    except OutputPathError as error:
        raise CommandError(str(error)) from None


def _export(args) -> int:
    try:
        from skmnist._onnx import to_onnx
    except ImportError as error:
        raise CommandError(
            f"export needs skl2onnx and onnx ({error}): pip install 'skmnist[onnx]'"
        ) from None
    model = load_model(args.model, args.trust_pickle)
    try:
        to_onnx(model, args.output, dtype=args.dtype, zipmap=args.zipmap)
    except (OSError, ValueError) as error:
        raise CommandError(_one_line(error)) from None
    print(f"wrote the ONNX model to {args.output}")
    return 0


def _check_plot_file(path: str, inputs=()) -> None:
    try:
        import matplotlib
    except ImportError:
        raise CommandError(
            "--plot needs matplotlib: pip install 'skmnist[plot]'"
        ) from None
    matplotlib.use("Agg")  # write files; never open a window
    from matplotlib.backend_bases import FigureCanvasBase

    from skmnist._files import OutputPathError, check_writable_output

    # pgf is LaTeX source, written only where LaTeX is installed.
    formats = set(FigureCanvasBase.get_supported_filetypes()) - {"pgf"}
    suffix = Path(path).suffix.lstrip(".").lower()
    if suffix not in formats:
        raise CommandError(
            f"--plot {path}: the file name must end in one of "
            f"{', '.join('.' + name for name in sorted(formats))}"
        )
    if not Path(path).parent.is_dir():
        raise CommandError(f"--plot {path}: no such folder")
    try:
        check_writable_output(path, inputs=inputs, what="--plot")
    except OutputPathError as error:
        raise CommandError(str(error)) from None


def _check_network_fits_in_memory(
    hidden_units, parser, option: str = "argument --hidden-units"
) -> None:
    """Refuse hidden layer widths that are no widths, and a network whose
    training would need more memory than the machine has, before the data
    loads: its weights for 28x28 images and ten classes, in float32, about six
    times over (the estimator's, the training copy's, their gradients and
    RMSprop's slots)."""
    from skmnist._architecture import count_weights, hidden_layer_widths

    try:
        widths = hidden_layer_widths(hidden_units, option)
    except ValueError as error:
        parser.error(_one_line(error))
    weights = count_weights(28 * 28, widths, 10)
    needed = 6 * 4 * weights
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        return
    if needed > memory:
        network = (
            f"{widths[0]} hidden units"
            if len(widths) == 1
            else f"hidden layers of {', '.join(map(str, widths))} units"
        )
        parser.error(
            f"{option}: a network of {network} "
            f"has {weights:,} weights, which need about {needed / 2**30:.0f} GiB "
            f"to train, more than this machine's {memory / 2**30:.0f} GiB of memory"
        )


def _check_model_output(args) -> Path:
    """``--output`` and ``--format``, checked before any data is loaded: a usage
    error for a pickle under the safe name, a failure for a place that cannot
    be written or that is an input."""
    from skmnist._files import OutputPathError, check_writable_output
    from skmnist._model_files import output_format

    try:
        output_format(args.output, args.format)
    except ValueError as error:
        args.parser.error(f"argument --output: {error}")
    try:
        return check_writable_output(
            args.output, inputs=_data_inputs(args.data), what="--output"
        )
    except OutputPathError as error:
        raise CommandError(str(error)) from None


def _data_inputs(data: str | None) -> list:
    """The files that loading ``--data`` (or the default data) may read, which
    no output may overwrite: the named file, the mnist.npz or IDX files in a
    named folder, $SKMNIST_DATA and Keras's cached mnist.npz."""
    from skmnist.datasets._mnist import _input_files

    return [data, os.environ.get("SKMNIST_DATA") or None, *_input_files(data)]


def _load_mnist(path):
    """:func:`load_mnist`, its expected failures as one line."""
    from skmnist.datasets import load_mnist

    try:
        return load_mnist(path)
    except (OSError, ValueError) as error:
        raise CommandError(_one_line(error)) from None


def _check_model(args) -> None:
    """The model file, checked before TensorFlow is imported (seconds): no
    file, a folder, an unreadable file or a pickle without ``--trust``."""
    from skmnist._model_files import check_model_file

    with _model_file_errors(args.model):
        check_model_file(args.model, trusted=args.trust_pickle)


def load_model(path: str, trust_pickle: bool = False):
    """:func:`skmnist._model_files.load_model` for a command: its expected
    failures (no file, untrusted pickle, damaged or forged file) raise
    :class:`CommandError` with a one-line message."""
    from skmnist._model_files import load_model as load_model_file

    with _model_file_errors(path):
        return load_model_file(path, trusted=trust_pickle)


@contextlib.contextmanager
def _model_file_errors(path: str):
    """Reading a model file's expected failures as a one-line :class:`CommandError`."""
    try:
        yield
    except (OSError, ValueError) as error:
        message = _one_line(error)
        # (Folded as the message is, and as pathlib spells it: "./m.skmnist"
        # is named "m.skmnist"; the operating system's own words name no path.)
        spelled = (path, Path(path)) if path else (path,)
        named = {" ".join(str(name).split()) for name in spelled}
        if not any(name in message for name in named):
            reason = getattr(error, "strerror", None) or message
            message = f"cannot read {path}: {reason}"
        raise CommandError(message) from None


def load_digit_model(path: str, trust_pickle: bool = False, *, digit_labels: bool):
    """:func:`load_model`, then check that the model classifies 28x28 images
    (and, with ``digit_labels``, into the digits 0-9)."""
    from skmnist._model_files import check_digit_model

    model = load_model(path, trust_pickle)
    try:
        check_digit_model(model, path, digit_labels=digit_labels)
    except ValueError as error:
        raise CommandError(_one_line(error)) from None
    return model


# Kept for the search command, which calls them by these names.
_load_model = load_model


def _save_model(model, path: Path, file_format: str | None) -> None:
    """Save atomically, so that a crash never leaves a half-written model in place
    of a good one; a refusal (a model the format cannot hold) is one line."""
    from skmnist._model_files import save_model

    try:
        save_model(model, path, file_format)
    except (OSError, TypeError, ValueError) as error:
        raise CommandError(f"cannot save {path}: {_one_line(error)}") from None


if __name__ == "__main__":
    sys.exit(main())
