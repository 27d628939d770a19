"""A cross-validated search of the MNIST pipeline, checked whole before any work.

``skmnist search`` and ``benchmarks/search.py`` run their searches through this
module: a mistake in the grid, the scorer or the folds is found here in a second,
in the user's terms, instead of after a cluster has started and every fit has
failed; the search itself runs in this process or, through
:func:`skmnist.dask_parallel_config`, on a dask cluster where a lost worker costs
time, not the search; and its progress is printed while it runs.
"""

import sys
import threading
import warnings
from contextlib import ExitStack
from numbers import Real

import numpy as np

STEP_PARAMETER_HELP = "search the parameters of the pipeline's steps, such as "


class SearchUsageError(ValueError):
    """The search asked for cannot run: a bad option, found before any work."""


class SearchFailedError(RuntimeError):
    """The search ran but gave no result worth keeping."""


def check_param_grid(params, pipeline) -> dict:
    """The grid of ``(name, values)`` pairs, each value checked on a clone of
    ``pipeline`` as a fit would use it."""
    grid = {}
    for name, values in params:
        if name in grid:
            raise SearchUsageError(f"--param {name} given twice")
        grid[name] = list(values)
        for index, value in enumerate(grid[name]):
            # The same candidate twice is the same fits run twice.
            for other in grid[name][:index]:
                if _same_value(value, other):
                    raise SearchUsageError(
                        f"--param {name}: the value {_format_value(value)} is "
                        "given twice"
                    )
                if _same_hidden_layers(name, value, other):
                    raise SearchUsageError(
                        f"--param {name}: {_format_value(other)} and "
                        f"{_format_value(value)} are the same hidden layers"
                    )
    defaults = pipeline.get_params()
    steps = [name for name, _ in pipeline.steps]
    for name, values in grid.items():
        step, nested, _ = name.partition("__")
        if not nested or step not in steps:
            examples = ", ".join(sorted(key for key in defaults if "__" in key)[:4])
            raise SearchUsageError(
                f"--param {name}: not a parameter of a step of the pipeline "
                f"(steps: {', '.join(steps)}; replacing a whole step is not "
                f"supported); {STEP_PARAMETER_HELP}{examples}"
            )
        for value in values:
            _check_value(pipeline, name, value, defaults)
    _check_early_stopping(pipeline, grid)
    return grid


def _check_early_stopping(pipeline, grid: dict) -> None:
    """Refuse a candidate with early stopping and no validation rows (a
    ``validation_fraction`` of 0), which every fit of it would refuse."""
    from sklearn.model_selection import ParameterGrid

    step = pipeline.steps[-1][0]
    names = [f"{step}__early_stopping", f"{step}__validation_fraction"]
    defaults = pipeline.get_params()
    if not all(name in defaults for name in names):
        return
    relevant = {
        name: list(grid[name]) if name in grid else [defaults[name]] for name in names
    }
    for candidate in ParameterGrid(relevant):
        early_stopping, fraction = (candidate[name] for name in names)
        if (
            isinstance(early_stopping, bool | np.bool_)
            and early_stopping
            and fraction == 0
        ):
            raise SearchUsageError(
                f"--param {names[0]}=True with {names[1]}={_format_value(fraction)}: "
                "early stopping needs validation rows; give a fraction above 0 "
                "(None holds out 0.1)"
            )


def _check_value(pipeline, name, value, defaults) -> None:
    from sklearn.base import clone

    from skmnist._compat import validate_estimator_params

    shown = f"--param {name}={_format_value(value)}"
    default = defaults.get(name)
    if (
        isinstance(value, bool)
        and isinstance(default, Real)
        and not isinstance(default, bool)
    ):
        raise SearchUsageError(f"{shown}: expects a number, not a truth value")
    if isinstance(value, Real) and not isinstance(value, bool):
        # A fit takes NaN or infinity without a word (a NaN learning rate trains
        # NaN weights, scored at chance) where no constraint refuses it.
        if not np.isfinite(value):
            raise SearchUsageError(f"{shown}: not a finite number")
        if name.endswith("optimizer__learning_rate") and value <= 0:
            raise SearchUsageError(f"{shown}: the learning rate must be positive")
    candidate = clone(pipeline)
    try:
        candidate.set_params(**{name: value})
        for _, step in candidate.steps:
            validate_estimator_params(step)
        _check_hidden_layers(candidate.steps[-1][1])
        _check_optimizer(candidate.steps[-1][1])
        _check_loss(candidate.steps[-1][1])
    except (ValueError, TypeError) as error:
        # The first line only: scikit-learn goes on with advice for Python code
        # ("set it in the constructor").
        message = str(error).splitlines()[0]
        if name not in candidate.get_params():
            known = sorted(key for key in defaults if "__" in key)
            message += f" Known parameters: {', '.join(known)}."
        raise SearchUsageError(f"{shown}: {message}") from None


def _check_hidden_layers(classifier) -> None:
    """The widths of ``hidden_units`` as the network's build reads them: the
    parameter constraints accept any sequence, ``(512, 0)`` or ``("a",)`` too."""
    params = classifier.get_params()
    if "hidden_units" in params:
        from skmnist._architecture import hidden_layer_widths

        hidden_layer_widths(params["hidden_units"])


def _same_hidden_layers(name: str, a, b) -> bool:
    """Whether ``a`` and ``b`` are two spellings of the same hidden layers, such
    as ``512`` and ``(512,)``."""
    if name.rpartition("__")[2] != "hidden_units":
        return False
    from skmnist._architecture import hidden_layer_widths

    try:
        return hidden_layer_widths(a) == hidden_layer_widths(b)
    except ValueError:  # not widths: refused by _check_value
        return False


def _check_optimizer(classifier) -> None:
    """Build the optimizer a fit would build, from its name or class and the
    routed ``optimizer__*`` arguments: Keras refuses unknown names, unknown
    arguments and bad values."""
    params = classifier.get_params()
    if "optimizer" not in params:
        return
    optimizer = params["optimizer"]
    arguments = {
        key.removeprefix("optimizer__"): value
        for key, value in params.items()
        if key.startswith("optimizer__")
    }
    if not isinstance(optimizer, str | type):
        return  # an optimizer object, built by its owner
    import keras

    if isinstance(optimizer, str):
        keras.optimizers.get({"class_name": optimizer, "config": arguments})
    else:
        optimizer(**arguments)


def _check_loss(classifier) -> None:
    """Look up a loss given by name as the fit's compile would: Keras refuses
    unknown names."""
    loss = classifier.get_params().get("loss")
    if isinstance(loss, str):
        import keras

        keras.losses.get(loss)


def _same_value(a, b) -> bool:
    return type(a) is type(b) and a == b


def check_cluster_options(scheduler, n_workers, threads_per_worker) -> None:
    """Refuse local-cluster options given with a remote scheduler."""
    if scheduler is not None and (
        n_workers is not None or threads_per_worker is not None
    ):
        raise SearchUsageError(
            "--n-workers and --threads-per-worker configure a local cluster; "
            "set the workers of a remote one where they are started"
        )


def check_random_state(random_state) -> None:
    """Refuse seeds NumPy cannot use, before any data is loaded."""
    if random_state is not None and not 0 <= random_state < 2**32:
        raise SearchUsageError(
            f"--random-state must be between 0 and 2**32 - 1, got {random_state}"
        )


def check_scoring(scoring: str | None, y=None) -> None:
    """Refuse an unknown scorer, and one that cannot score the labels ``y``
    (where given), by scoring a classifier that predicts the class frequencies:
    ``roc_auc`` on ten classes, ``f1`` on more than two."""
    if scoring is None:
        return
    from sklearn.dummy import DummyClassifier
    from sklearn.metrics import get_scorer, get_scorer_names

    if scoring not in get_scorer_names():
        raise SearchUsageError(
            f"--scoring: unknown scorer {scoring!r}; the names are listed by "
            "sklearn.metrics.get_scorer_names()"
        )
    if y is None:
        return
    n_classes = len(np.unique(y))
    features = np.zeros((len(y), 1))
    reason = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dummy = DummyClassifier(strategy="prior").fit(features, y)
            score = get_scorer(scoring)(dummy, features, y)
        except (ValueError, TypeError) as error:
            reason = str(error).splitlines()[0]
        else:
            if not np.isfinite(score):
                reason = f"it scores {score}"
    if reason is not None:
        hint = ""
        if scoring.startswith("roc_auc") or scoring.startswith("average_precision"):
            hint = "; for several classes use roc_auc_ovr or roc_auc_ovo"
        elif n_classes > 2 and scoring.split("_")[0] in {"f1", "precision", "recall"}:
            hint = f"; for several classes use {scoring}_macro or {scoring}_weighted"
        raise SearchUsageError(
            f"--scoring {scoring} cannot score {n_classes} classes ({reason}){hint}"
        )


def check_folds(n_splits: int, y=None) -> None:
    """Refuse fewer than 2 folds, and folds that the labels ``y`` (where given)
    cannot fill: every training fold must hold every class, as stratified folds
    do when each class has at least ``n_splits`` rows."""
    if n_splits < 2:
        raise SearchUsageError(f"--cv must be at least 2 folds, got {n_splits}")
    if y is None:
        return
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise SearchUsageError(
            f"the {len(y)} training images searched hold only one class; use a "
            "larger --limit"
        )
    if counts.min() < n_splits:
        rarest = classes[np.argmin(counts)]
        raise SearchUsageError(
            f"--cv {n_splits} needs at least {n_splits} images of every class, but "
            f"the {len(y)} training images searched hold {counts.min()} of class "
            f"{rarest}; use a larger --limit or fewer folds"
        )


def run_search(
    params,
    *,
    cv: int = 3,
    n_iter: int | None = None,
    scoring: str | None = None,
    random_state: int | None = None,
    limit: int | None = None,
    data=None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    out=None,
):
    """Check, run and report the search of ``skmnist search``.

    Everything that can be checked is checked before the data is loaded, and
    what needs the labels before any worker starts. Prints the cluster, the
    progress, the reruns and the table of candidates to ``out`` (default: stdout).
    Returns the fitted search and the MNIST test set.
    """
    from skmnist._pipeline import make_mnist_pipeline
    from skmnist.datasets import load_mnist

    out = sys.stdout if out is None else out
    check_cluster_options(scheduler, n_workers, threads_per_worker)
    check_random_state(random_state)
    pipeline = make_mnist_pipeline(random_state=random_state)
    grid = check_param_grid(params, pipeline)
    check_scoring(scoring)  # the name; the classes come below
    check_folds(cv)
    if n_workers != 0:
        try:
            from skmnist._dask import FitProgress, NoWorkersError, dask_client
        except ImportError as error:
            raise SearchFailedError(
                f"{error}; install the dask extra (pip install 'skmnist[dask]') "
                "or search in this process with --n-workers 0"
            ) from error
    search = make_search(
        pipeline,
        grid,
        cv=cv,
        scoring=scoring,
        n_iter=n_iter,
        random_state=random_state,
        # With joblib's dask backend, n_jobs=-1 means every thread of the cluster.
        n_jobs=None if n_workers == 0 else -1,
    )
    try:
        (x_train, y_train), test = load_mnist(data)
    except (OSError, ValueError) as error:  # no data, or not MNIST's format
        raise SearchFailedError(" ".join(str(error).split())) from None
    x_train, y_train = x_train[:limit], y_train[:limit]
    check_folds(cv, y_train)
    check_scoring(scoring, y_train)

    if n_workers == 0:
        _fit_or_fail(search, x_train, y_train)
    else:
        progress = FitProgress(total=count_fits(search, x_train, y_train))
        with ExitStack() as stack:
            client = _connect(
                stack, dask_client, scheduler, n_workers, threads_per_worker
            )
            print(f"dask cluster: {describe_cluster(client)}", file=out, flush=True)
            try:
                with ProgressPrinter(progress, out):
                    _fit_or_fail(
                        search, x_train, y_train, client=client, progress=progress
                    )
            except NoWorkersError as error:
                raise SearchFailedError(str(error)) from None
        print(
            f"fits rerun after lost workers: {progress.retried} "
            f"({progress.lost_workers} workers lost)",
            file=out,
        )
    check_scores(search)
    print(results_table(search.cv_results_), file=out)
    print(f"best parameters: {format_params(search.best_params_)}", file=out)
    print(f"best cv score: {search.best_score_:.4f}", file=out)
    return search, test


def _connect(stack, dask_client, scheduler, n_workers, threads_per_worker):
    """Enter ``dask_client`` on ``stack``; an address dask cannot parse or
    reach (its connect timeout bounds the wait) is one line, not a traceback."""
    try:
        return stack.enter_context(
            dask_client(
                scheduler,
                n_workers=n_workers,
                threads_per_worker=threads_per_worker or 1,
            )
        )
    except (OSError, ValueError) as error:  # TimeoutError is an OSError
        where = (
            f"reach the dask scheduler at {scheduler}"
            if scheduler is not None
            else "start a local dask cluster"
        )
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise SearchFailedError(f"cannot {where}: {first_line}") from None


def _fit_or_fail(search, X, y, **options):
    """A fit failing for its own reasons ends the search with its error, in one
    line (the options were checked, so this is rare: a fit out of memory, say)."""
    try:
        return fit_search(search, X, y, **options)
    except (ValueError, TypeError, RuntimeError, MemoryError, OSError) as error:
        if type(error).__name__ == "NoWorkersError":
            raise
        first_line = (str(error).splitlines() or [""])[0]
        raise SearchFailedError(
            f"a fit failed: {type(error).__name__}: {first_line}"
        ) from error


def make_search(
    pipeline,
    grid: dict,
    *,
    cv: int = 3,
    scoring: str | None = None,
    n_iter: int | None = None,
    random_state=None,
    n_jobs=None,
    refit: bool = True,
):
    """A ``GridSearchCV`` (or ``RandomizedSearchCV`` with ``n_iter``) of
    :mod:`skmnist.model_selection`, whose fits train in packs where they can, in
    which a failing fit fails the search at once (``error_score="raise"``): its
    error, not a table of NaN, is what the user needs."""
    from skmnist.model_selection import GridSearchCV, RandomizedSearchCV

    options = {
        "scoring": scoring,
        "cv": cv,
        "n_jobs": n_jobs,
        "refit": refit,
        "error_score": "raise",
    }
    if n_iter is None:
        return GridSearchCV(pipeline, grid, **options)
    return RandomizedSearchCV(
        pipeline, grid, n_iter=n_iter, random_state=random_state, **options
    )


def count_fits(search, X, y) -> int:
    """Fits the cross-validation of ``search`` runs: candidates x folds."""
    from sklearn.base import is_classifier
    from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv

    if hasattr(search, "n_iter"):
        candidates = ParameterSampler(
            search.param_distributions, search.n_iter, random_state=0
        )
    else:
        candidates = ParameterGrid(search.param_grid)
    folds = check_cv(search.cv, y, classifier=is_classifier(search.estimator))
    return len(candidates) * folds.get_n_splits(X, y)


def fit_search(search, X, y, *, client=None, progress=None):
    """Fit ``search`` in this process, or on the cluster of ``client`` through
    :func:`skmnist.dask_parallel_config`, updating ``progress``."""
    if client is None:
        return search.fit(X, y)
    from skmnist._dask import dask_parallel_config

    with dask_parallel_config(client, (X, y), progress=progress):
        return search.fit(X, y)


def check_scores(search) -> None:
    """A search in which every candidate scored NaN has no best candidate."""
    scores = np.asarray(search.cv_results_["mean_test_score"], dtype=float)
    if np.isnan(scores).all():
        raise SearchFailedError(
            f"every one of the {len(scores)} candidates scored NaN: nothing to "
            "choose from"
        )


class ProgressPrinter:
    """Print a search's :class:`~skmnist._dask.FitProgress` while it runs: a bar
    redrawn in place on a terminal, else a plain line whenever fits have finished
    (at most one every ``interval`` seconds), and a last line at the end.

    Parameters
    ----------
    progress : FitProgress
        The counts to show; ``progress.total`` should be set.
    stream : file-like, default=sys.stdout
    interval : float or None, default=None
        Seconds between updates: None means 0.5 on a terminal, else 10.
    """

    def __init__(self, progress, stream=None, *, interval: float | None = None):
        self.progress = progress
        self.stream = sys.stdout if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.interval = interval if interval is not None else (0.5 if self.tty else 10)
        self._stop = threading.Event()
        self._shown = None

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(timeout=5)
        if exc_info[0] is None:
            self._show(final=True)
        elif self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._show()

    def _show(self, final: bool = False) -> None:
        progress = self.progress
        state = (progress.done, progress.retried)
        if not final and (state == self._shown or progress.done == progress.total):
            return  # nothing new; or all done, which the last line says
        self._shown = state
        done, total = progress.done, progress.total or 0
        text = f"fits {done}/{total}, {_duration(progress.elapsed)} elapsed"
        remaining = progress.remaining
        if not final:
            text += (
                f", about {_duration(remaining)} left"
                if remaining is not None
                else ", time left not known yet"
            )
        if progress.retried:
            text += (
                f", {progress.retried} rerun after {progress.lost_workers} "
                "lost worker(s)"
            )
        if self.tty:
            width = 30
            filled = int(width * done / total) if total else 0
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {text}\033[K" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def describe_cluster(client) -> str:
    """Workers, threads and the scheduler's address; the dashboard's where it has
    one."""
    threads = client.nthreads()
    text = (
        f"{len(threads)} workers, {sum(threads.values())} threads "
        f"(scheduler {client.scheduler.address})"
    )
    services = client.scheduler_info().get("services", {})
    if "dashboard" in services:
        text += f", dashboard {client.dashboard_link}"
    return text


def results_table(cv_results: dict) -> str:
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
            f"{format_params(cv_results['params'][i])}"
        )
    return "\n".join(lines)


def format_params(params: dict) -> str:
    return " ".join(
        f"{name}={_format_value(value)}" for name, value in sorted(params.items())
    )


def _format_value(value) -> str:
    return repr(value)
