"""The ``skmnist`` command line: train, evaluate, predict, search and export.

Heavy imports (TensorFlow through the estimators) happen inside the commands, so
``skmnist --help`` answers at once.
"""

import argparse
import os
import sys
import warnings
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
    _add_format_argument(train)
    train.set_defaults(command=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="test accuracy, per-class precision/recall, confusion matrix",
        description="Evaluate a saved model on the MNIST test set.",
    )
    evaluate.add_argument("model", help="a model saved by 'skmnist train'")
    _add_data_argument(evaluate)
    evaluate.add_argument(
        "--plot",
        metavar="FILE",
        default=None,
        help="also write one figure with the confusion matrix and the first 25 "
        "misclassified test digits to FILE (.png, .pdf, .svg, ...); needs "
        "matplotlib (pip install 'skmnist[plot]')",
    )
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

    _add_search_parser(commands)
    _add_export_parser(commands)
    return parser


def _add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        help="mnist.npz or a folder of IDX files (default: $SKMNIST_DATA, Keras's "
        "cache, else download)",
    )


def _add_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=["joblib", "skmnist"],
        default=None,
        help="file format: 'skmnist' is pickle-free and safe to load from "
        "untrusted sources, 'joblib' a pickle (default: skmnist if --output ends "
        "in .skmnist, else joblib)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _train(args) -> int:
    from skmnist import FitInterruptedWarning, make_mnist_pipeline
    from skmnist.datasets import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    pipeline = make_mnist_pipeline(
        hidden_units=args.hidden_units,
        epochs=args.epochs,
        batch_size=args.batch_size,
        random_state=args.random_state,
        verbose=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitInterruptedWarning)  # said below
        try:
            pipeline.fit(x_train, y_train)
        except KeyboardInterrupt:
            # A partly trained model must not replace a saved one.
            print(
                f"skmnist: training interrupted; nothing saved to {args.output}",
                file=sys.stderr,
            )
            return 130
    test_acc = pipeline.score(x_test, y_test)
    _save_model(pipeline, Path(args.output), args.format)
    print(f"saved the fitted pipeline to {args.output}")
    print(f"test_acc: {test_acc:.4f}")
    return 0


def _evaluate(args) -> int:
    from sklearn.metrics import classification_report, confusion_matrix

    from skmnist.datasets import load_mnist

    if args.plot is not None:
        _check_plot_file(args.plot)  # before the slow part, not after
    pipeline = _load_model(args.model)
    _, (x_test, y_test) = load_mnist(args.data)
    predicted = pipeline.predict(x_test)
    print(classification_report(y_test, predicted, digits=4))
    print("confusion matrix (rows: true digit, columns: predicted digit)")
    print(confusion_matrix(y_test, predicted))
    if args.plot is not None:
        from skmnist._plotting import _evaluation_figure

        _evaluation_figure(x_test, y_test, predicted).savefig(args.plot)
        print(f"wrote the confusion matrix and misclassified digits to {args.plot}")
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
        epilog="example: skmnist search --param clf__hidden_units=128,512 "
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
        "values read as int, float, true/false, none, else text; repeat for "
        "several parameters",
    )
    search.add_argument(
        "--cv", type=_positive_int, default=3, help="folds per candidate (default: 3)"
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
        type=int,
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
    search.set_defaults(command=_search, parser=search)


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _search_param(text: str) -> tuple[str, list]:
    """``name=v1,v2`` -> ``(name, [v1, v2])`` with each value parsed."""
    name, equals, values = text.partition("=")
    name = name.strip()
    if not equals or not name.replace("__", "_").isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE[,VALUE...] such as clf__hidden_units=128,512, "
            f"got {text!r}"
        )
    parsed = [_parse_value(value.strip()) for value in values.split(",")]
    if any(value == "" for value in parsed):
        raise argparse.ArgumentTypeError(f"empty value in {text!r}")
    return name, parsed


def _parse_value(text: str):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _param_grid(args) -> dict:
    """The grid of ``--param`` options, checked against the pipeline, so that a
    typo is a usage error now rather than a failed fit on the cluster."""
    from sklearn.base import clone

    from skmnist import make_mnist_pipeline

    grid = {}
    for name, values in args.param:
        if name in grid:
            args.parser.error(f"argument --param: {name} given twice")
        grid[name] = values
    pipeline = make_mnist_pipeline()
    for name, values in grid.items():
        for value in values:
            candidate = clone(pipeline)
            try:
                candidate.set_params(**{name: value})
                for _, step in candidate.steps:
                    step._validate_params()
            except (ValueError, TypeError) as error:
                # The first line only: scikit-learn goes on with advice for
                # Python code ("set it in the constructor").
                message = str(error).splitlines()[0]
                if name not in candidate.get_params():
                    known = sorted(key for key in pipeline.get_params() if "__" in key)
                    message += f" Known parameters: {', '.join(known)}."
                args.parser.error(f"argument --param: {name}={value!r}: {message}")
    return grid


def _search(args) -> int:
    from sklearn.metrics import get_scorer_names
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    from skmnist import make_mnist_pipeline
    from skmnist.datasets import load_mnist

    local = args.n_workers is not None or args.threads_per_worker is not None
    if args.scheduler is not None and local:
        args.parser.error(
            "--n-workers and --threads-per-worker configure a local cluster; "
            "set the workers of a remote one where they are started"
        )
    grid = _param_grid(args)
    pipeline = make_mnist_pipeline(random_state=args.random_state)
    if args.scoring is not None and args.scoring not in get_scorer_names():
        args.parser.error(
            f"argument --scoring: unknown scorer {args.scoring!r}; the names are "
            "listed by sklearn.metrics.get_scorer_names()"
        )
    if args.n_workers != 0:
        try:
            from skmnist._dask import dask_client
        except ImportError as error:
            raise SystemExit(
                f"skmnist search: error: {error}; install the dask extra "
                "(pip install 'skmnist[dask]') or search in this process with "
                "--n-workers 0"
            ) from error
    # With joblib's dask backend, n_jobs=-1 means every thread of the cluster.
    options = {
        "scoring": args.scoring,
        "cv": args.cv,
        "n_jobs": None if args.n_workers == 0 else -1,
    }
    if args.n_iter is None:
        search = GridSearchCV(pipeline, grid, **options)
    else:
        search = RandomizedSearchCV(
            pipeline,
            grid,
            n_iter=args.n_iter,
            random_state=args.random_state,
            **options,
        )
    (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    x_train, y_train = x_train[: args.limit], y_train[: args.limit]

    if args.n_workers == 0:
        search.fit(x_train, y_train)
    else:
        import joblib

        with dask_client(
            args.scheduler,
            n_workers=args.n_workers,
            threads_per_worker=args.threads_per_worker or 1,
        ) as client:
            print(f"dask cluster: {_describe_cluster(client)}", flush=True)
            with joblib.parallel_config(backend="dask"):
                search.fit(x_train, y_train)

    print(_results_table(search.cv_results_))
    print(f"best parameters: {_format_params(search.best_params_)}")
    print(f"best cv score: {search.best_score_:.4f}")
    _save_model(search.best_estimator_, Path(args.output), args.format)
    print(f"saved the refitted best pipeline to {args.output}")
    print(f"test_acc: {search.best_estimator_.score(x_test, y_test):.4f}")
    return 0


def _describe_cluster(client) -> str:
    threads = client.nthreads()
    return (
        f"{len(threads)} workers, {sum(threads.values())} threads "
        f"(scheduler {client.scheduler.address})"
    )


def _results_table(cv_results: dict) -> str:
    """The candidates, best first: rank, mean and std of the test score, mean fit
    time and parameters."""
    rows = sorted(
        range(len(cv_results["params"])),
        key=lambda i: (cv_results["rank_test_score"][i], i),
    )
    lines = [f"{'rank':>4}  {'score':>6}  {'std':>6}  {'fit_s':>6}  params"]
    for i in rows:
        lines.append(
            f"{cv_results['rank_test_score'][i]:>4}  "
            f"{cv_results['mean_test_score'][i]:>6.4f}  "
            f"{cv_results['std_test_score'][i]:>6.4f}  "
            f"{cv_results['mean_fit_time'][i]:>6.1f}  "
            f"{_format_params(cv_results['params'][i])}"
        )
    return "\n".join(lines)


def _format_params(params: dict) -> str:
    return " ".join(f"{name}={value!r}" for name, value in sorted(params.items()))


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
    export.set_defaults(command=_export)


def _export(args) -> int:
    output = Path(args.output)
    if not output.parent.is_dir():
        raise SystemExit(f"skmnist: error: {args.output}: no such folder")
    try:
        from skmnist._onnx import to_onnx
    except ImportError as error:
        raise SystemExit(f"skmnist: error: {error}") from None
    model = _load_model(args.model)
    try:
        to_onnx(model, output, dtype=args.dtype, zipmap=args.zipmap)
    except ValueError as error:
        raise SystemExit(f"skmnist: error: {error}") from None
    print(f"wrote the ONNX model to {args.output}")
    return 0


def _check_plot_file(path: str) -> None:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(
            "skmnist: error: --plot needs matplotlib: pip install 'skmnist[plot]'"
        ) from None
    matplotlib.use("Agg")  # write files; never open a window
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lstrip(".").lower()
    if suffix not in formats:
        raise SystemExit(
            f"skmnist: error: --plot {path}: the file name must end in one of "
            f"{', '.join('.' + name for name in sorted(formats))}"
        )
    if not Path(path).parent.is_dir():
        raise SystemExit(f"skmnist: error: --plot {path}: no such folder")


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
