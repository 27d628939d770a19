"""The command line, end to end."""

import ast
import contextlib
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

PIL = pytest.importorskip("PIL.Image")


# A bound on every command run here; the longest is a full training run on a
# loaded machine.
SUBPROCESS_TIMEOUT = 1200


def _skmnist(*args, env=None, check=True):
    return subprocess.run(
        [sys.executable, "-m", "skmnist", *args],
        capture_output=True,
        text=True,
        check=check,
        env=env,
        timeout=SUBPROCESS_TIMEOUT,
    )


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["predict"]])
def test_help_imports_no_deep_learning_framework(command):
    # What makes --help immediate; its speed itself belongs in benchmarks.
    result = _skmnist(*command, "--help")
    assert "usage: skmnist" in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom skmnist._cli import main\n"
            f"try:\n    main({[*command, '--help']!r})\nexcept SystemExit:\n    pass\n"
            "print(any(m in sys.modules for m in ('tensorflow', 'keras', 'jax')),"
            " file=sys.stderr)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert probe.stderr.strip().splitlines()[-1] == "False"


def test_invalid_option_is_a_one_line_error():
    result = _skmnist("train", "--epochs", "0", check=False)
    assert result.returncode == 2
    assert "must be an integer from 1 to" in result.stderr


@pytest.fixture(scope="module")
def trained_model(mnist_path, tmp_path_factory):
    """``skmnist train`` with its defaults, as a new user runs it."""
    model = tmp_path_factory.mktemp("model") / "mnist.joblib"
    result = _skmnist("train", "--data", str(mnist_path), "--output", str(model))
    return model, result


@pytest.mark.mnist
@pytest.mark.slow
def test_train_reproduces_the_seed_notebook(trained_model):
    model, result = trained_model
    lines = result.stdout.strip().splitlines()
    assert "Epoch 5/5" in result.stdout
    assert "accuracy:" in result.stdout and "loss:" in result.stdout
    assert lines[-1].startswith("test_acc: ")
    assert float(lines[-1].split()[1]) >= 0.975
    assert model.is_file()


@pytest.mark.mnist
@pytest.mark.slow
def test_evaluate_reports_accuracy_and_confusion_matrix(
    trained_model, mnist_path, run_cli
):
    model, _ = trained_model
    # train's default output is the pickle-free format; a joblib file (as
    # here) is read only with --trust. (In this process: a command's own
    # process is tested by test_persistence's end-to-end run.)
    status, out, err = run_cli("evaluate", model, "--trust", "--data", mnist_path)
    assert status == 0, err
    assert "precision" in out and "recall" in out
    assert "confusion matrix" in out
    assert float(out.strip().splitlines()[-1].split()[1]) >= 0.975


def _as_user_photo(digit: np.ndarray, rng: np.random.RandomState) -> "PIL.Image":
    """An MNIST digit as a user might photograph it: dark ink on light paper,
    enlarged, off-centre on a larger page, in colour."""
    scale = rng.randint(3, 7)
    big = np.kron(255 - digit, np.ones((scale, scale), dtype=np.uint8))
    page = np.full((big.shape[0] + 80, big.shape[1] + 60), 255, dtype=np.uint8)
    top, left = rng.randint(0, 80), rng.randint(0, 60)
    page[top : top + big.shape[0], left : left + big.shape[1]] = big
    return PIL.fromarray(page).convert("RGB")


@pytest.mark.mnist
@pytest.mark.slow
def test_predict_classifies_user_images(trained_model, mnist, tmp_path, run_cli):
    model, _ = trained_model
    _, (x_test, y_test) = mnist
    rng = np.random.RandomState(0)
    files, labels = [], []
    for i in rng.choice(len(x_test), 200, replace=False):
        path = tmp_path / f"digit{i}.{'png' if i % 2 else 'jpg'}"
        _as_user_photo(x_test[i], rng).save(path)
        files.append(path)
        labels.append(y_test[i])
    status, out, err = run_cli("predict", model, "--trust", *files)
    assert status == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == len(files)
    predicted = [int(line.split(": ")[1].split()[0]) for line in lines]
    names = [line.split(": ")[0] for line in lines]
    assert names == [str(file) for file in files]  # as given
    assert np.mean(np.array(predicted) == np.array(labels)) >= 0.95


@pytest.mark.mnist
@pytest.mark.slow
def test_predict_reports_unreadable_files_and_answers_the_rest(
    trained_model, mnist, tmp_path, run_cli
):
    model, _ = trained_model
    _, (x_test, _) = mnist
    good = tmp_path / "good.png"
    PIL.fromarray(x_test[0]).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    status, out, err = run_cli("predict", model, "--trust", broken, good)
    assert status == 1
    assert "broken.png" in err and "error" in err
    assert out.startswith(f"{good}: ")


@pytest.fixture(scope="module")
def small_model(mnist, tmp_path_factory):
    """A pipeline trained briefly on 2,000 images: fast, and wrong often enough to
    have misclassified digits to plot."""
    import joblib

    from skmnist import make_mnist_pipeline

    (x_train, y_train), _ = mnist
    pipeline = make_mnist_pipeline(hidden_units=64, epochs=1, random_state=0)
    pipeline.fit(x_train[:2000], y_train[:2000])
    path = tmp_path_factory.mktemp("small") / "small.joblib"
    joblib.dump(pipeline, path)
    return path


@pytest.mark.mnist
@pytest.mark.slow
def test_evaluate_writes_the_plot(small_model, mnist_path, tmp_path, run_cli):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    figure = tmp_path / "evaluation.png"
    status, out, err = run_cli(
        "evaluate", small_model, "--trust", "--data", mnist_path,
        "--plot", figure,
    )  # fmt: skip
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[-2].startswith("wrote the confusion matrix and misclassified")
    assert lines[-2].endswith(str(figure))
    assert lines[-1].startswith("test_acc: ")
    pixels = matplotlib_image.imread(figure)
    assert pixels.shape[0] > 500 and pixels.shape[1] > 1000  # two panels, side by side
    assert pixels[..., :3].std() > 0.1  # not a blank canvas


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("evaluation.xyz", "must end in one of"),
        ("missing/evaluation.png", "no such"),
        ("evaluation.pgf", "must end in one of"),  # pgf needs LaTeX
        ("folder.png", "is a folder"),
    ],
)
def test_evaluate_checks_the_plot_file_before_loading(tmp_path, name, message, run_cli):
    pytest.importorskip("matplotlib")
    if name == "folder.png":
        (tmp_path / name).mkdir()
    # No model file exists either: the plot file is checked first.
    status, _, err = run_cli(
        "evaluate", tmp_path / "none.joblib", "--plot", tmp_path / name
    )
    assert status == 1
    line = _one_error_line(err)
    assert message in line and "--plot" in line
    assert not (tmp_path / name).is_file()


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def _open_files(pid: int) -> list[str]:
    """The files a process has open (Linux), or [] once it is gone."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    targets = []
    for name in names:
        with contextlib.suppress(OSError):
            targets.append(os.readlink(f"/proc/{pid}/fd/{name}"))
    return targets


def _interrupted_train(folder: Path, data: Path, moment: str, saved: Path):
    """Run ``skmnist train`` and send SIGINT at ``moment``: a delay in seconds
    ("1.5"), while the data is read ("data"), at the start of an epoch
    ("epoch 2"), or while the model file is written ("save"). Returns the exit
    status, its standard output and error, and whether the moment came."""
    import signal

    epochs = "1" if moment == "save" else "100000"
    # A large network for the save, so that writing it takes a while.
    units = "8192" if moment == "save" else "16"
    command = [sys.executable, "-m", "skmnist", "train", "--data", str(data)]
    command += ["--epochs", epochs, "--hidden-units", units, "--output", str(saved)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A background job (nohup, "&", some CI runners) ignores SIGINT and its
        # children inherit that; the child gets the default, as in a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    out, err = [], []
    readers = [
        threading.Thread(target=lambda s=s, lines=lines: lines.extend(s), daemon=True)
        for s, lines in ((process.stdout, out), (process.stderr, err))
    ]
    for reader in readers:
        reader.start()

    def came() -> bool:
        if moment == "data":
            return any(str(data) in target for target in _open_files(process.pid))
        if moment == "save":  # after the epoch's line, not the output check
            return any("/step" in line for line in out) and any(
                name.endswith(".tmp") for name in os.listdir(folder)
            )
        if moment.startswith("epoch"):
            return any(line.startswith(f"Epoch {moment.split()[1]}/") for line in out)
        return time.monotonic() - started >= float(moment)

    started = time.monotonic()
    deadline = started + 240
    hit = False
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if came():
                process.send_signal(signal.SIGINT)
                hit = True
                break
            time.sleep(0.001)
        process.wait(timeout=120)
    finally:
        process.kill()
        process.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=30)
    return process.returncode, "".join(out), "".join(err), hit


@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux's /proc")
def test_ctrl_c_at_any_moment_stops_train_and_keeps_the_saved_file(mnist, tmp_path):
    """SIGINT at start-up, while the data is read, at the start of three
    epochs and while the model file is written: every time, exit status 130,
    one line on standard error, and the file saved earlier byte for byte."""
    import gzip

    def idx_folder(name: str, rows: int) -> Path:
        """The first ``rows`` of MNIST's training and test sets as gzipped IDX
        files, which take a moment to read."""
        (x_train, y_train), (x_test, y_test) = mnist
        folder = tmp_path / name
        folder.mkdir()
        for name, array in [
            ("train-images-idx3-ubyte", x_train[:rows]),
            ("train-labels-idx1-ubyte", y_train[:rows]),
            ("t10k-images-idx3-ubyte", x_test[:rows]),
            ("t10k-labels-idx1-ubyte", y_test[:rows]),
        ]:
            header = bytes([0, 0, 8, array.ndim])
            header += b"".join(size.to_bytes(4, "big") for size in array.shape)
            with gzip.open(folder / f"{name}.gz", "wb", compresslevel=1) as file:
                file.write(header + array.tobytes())
        return folder

    data = idx_folder("idx", len(mnist[0][0]))
    # The save's large network trains one epoch of a slice: what takes a
    # while there is writing the file, not training.
    slice_ = idx_folder("idx-slice", 2000)
    moments = ["0.3", "1.5", "3", "data", "epoch 1", "epoch 2", "epoch 4", "save"]

    def run(moment):
        folder = tmp_path / moment.replace(" ", "-")
        folder.mkdir()
        saved = folder / "model.skmnist"
        saved.write_bytes(b"a model the user saved earlier")
        source = slice_ if moment == "save" else data
        return moment, saved, _interrupted_train(folder, source, moment, saved)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, moments))
    for moment, saved, (status, out, err, hit) in results:
        assert hit, f"{moment}: the moment never came\n{out}\n{err}"
        # (TensorFlow's C++ lines at the test's TF_CPP_MIN_LOG_LEVEL, and the
        # warning that a slice is not all of MNIST, are not the command's.)
        lines = [
            line
            for line in err.splitlines()
            if not (line.startswith("skmnist: warning") or _CPP_LOG.match(line))
        ]
        # (Messages as text: pytest shortens other objects' reprs.)
        assert status == 130, f"{moment}: exit status {status}\n{err}"
        said = [f"skmnist: interrupted; nothing saved to {saved}"]
        if moment[0].isdigit():
            # Start-up: on a loaded machine the interrupt can come while the
            # command is still imported, before it has read its arguments.
            assert lines in (said, ["skmnist: interrupted"]), f"{moment}:\n{err}"
        else:
            assert lines == said, f"{moment}:\n{err}"
        assert saved.read_bytes() == b"a model the user saved earlier", moment
        assert sorted(os.listdir(saved.parent)) == ["model.skmnist"], moment


@pytest.mark.slow
def test_ctrl_c_in_train_keeps_the_saved_model(tmp_path):
    # The quick case of the test above, on a small random set (joblib output:
    # its previous file is kept too).
    rng = np.random.RandomState(0)
    data = tmp_path / "tiny.npz"
    np.savez(
        data,
        x_train=rng.randint(0, 256, (3000, 28, 28), dtype=np.uint8),
        y_train=rng.randint(0, 10, 3000).astype(np.uint8),
        x_test=rng.randint(0, 256, (100, 28, 28), dtype=np.uint8),
        y_test=rng.randint(0, 10, 100).astype(np.uint8),
    )
    saved = tmp_path / "model.joblib"
    saved.write_bytes(b"a model the user saved earlier")
    status, _, err, hit = _interrupted_train(tmp_path, data, "epoch 3", saved)
    assert hit and status == 130, err
    assert f"skmnist: interrupted; nothing saved to {saved}" in err
    assert "Traceback" not in err
    assert saved.read_bytes() == b"a model the user saved earlier"


def test_search_format_option_is_parsed_like_train_s():
    from skmnist._cli import DEFAULT_MODEL

    assert DEFAULT_MODEL == "mnist_pipeline.skmnist"  # the safe format by default
    from skmnist._cli import _parser

    for command in ("train", "search"):
        extra = ["--param", "clf__epochs=1"] if command == "search" else []
        args = _parser().parse_args([command, *extra, "--format", "skmnist"])
        assert args.format == "skmnist"
        assert _parser().parse_args([command, *extra]).format is None


@pytest.mark.mnist
@pytest.mark.slow
def test_search_saves_in_the_format_asked_for(mnist_path, tmp_path, run_cli):
    from skmnist._persistence import is_skmnist_file, load

    model = tmp_path / "best.bin"  # an extension that names no format
    status, _, err = run_cli(
        "search", "--param", "clf__hidden_units=8", "--param", "clf__epochs=1",
        "--cv", "2", "--limit", "300", "--n-workers", "0", "--random-state", "0",
        "--data", mnist_path, "--output", model, "--format", "skmnist",
    )  # fmt: skip
    assert status == 0, err
    assert is_skmnist_file(model)
    assert load(model).get_params()["clf__hidden_units"] == 8


# -- issue 12: nothing unpickled unasked, mistakes caught first, one line -------

_CPP_LOG = re.compile(r"^[IWEF]\d{4} \d+:\d+:\d+\.\d+ +\d+ \S+:\d+\]")


class _Payload:
    """A pickle that, when unpickled, creates the folder ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("skmnist: error: "), err
    return lines[0]


@pytest.fixture
def no_data_loading(monkeypatch):
    """Make loading MNIST fail loudly: what is checked first must not need it."""

    def refuse(*args, **kwargs):
        raise AssertionError("MNIST was loaded before the check")

    monkeypatch.setattr("skmnist.datasets.load_mnist", refuse)


@pytest.mark.parametrize(
    "name", ["m.skmnist", "m.SKMNIST", "m", "m.pkl", "m.joblib", "m.JOBLIB"]
)
@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "serve"])
def test_no_command_unpickles_a_file_unless_asked(
    command, name, tmp_path, run_cli, no_data_loading
):
    import joblib

    marker = tmp_path / "pwned"
    model = tmp_path / name
    joblib.dump(_Payload(marker), model)
    # The name is the sender's choice, never consent: *.joblib included.
    extra = {"predict": ["digit.png"], "export": [tmp_path / "m.onnx"]}
    extra = extra.get(command, [])
    for trust in ([], ["--trust"]):
        if trust and name.lower().endswith(".skmnist"):
            argv = [command, model, *trust, *extra]
        elif trust:
            continue  # asked for: tested below
        else:
            argv = [command, model, *extra]
        status, _, err = run_cli(*argv)
        assert status == 1
        line = _one_error_line(err)
        assert str(model) in line
        if not trust and not name.lower().endswith(".skmnist"):
            assert "only with --trust" in line and "skmnist.save(joblib.load(" in line
        assert not marker.exists(), "the pickle ran"


@pytest.mark.parametrize("name", ["m.joblib", "m.JOBLIB", "m.pkl"])
def test_a_pickle_is_unpickled_when_asked(name, tmp_path, run_cli):
    import joblib

    marker = tmp_path / "ran"
    joblib.dump(_Payload(marker), tmp_path / name)
    argv = ["predict", tmp_path / name, "digit.png"]
    status, _, err = run_cli(*argv, "--trust")
    assert marker.exists()  # the user asked for it, by the flag
    assert status == 1
    assert "holds a NoneType, not a scikit-learn classifier" in _one_error_line(err)


@pytest.mark.slow
def test_a_model_path_spelled_with_dot_slash_is_named_once(
    run_cli, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.skmnist").write_bytes(b"")
    status, _, err = run_cli("predict", "./empty.skmnist", "a.png")
    assert status == 1
    assert err == (
        "skmnist: error: empty.skmnist is not an skmnist model file: it is not "
        "a zip archive.\n"
    )


def test_a_pickle_named_skmnist_does_not_run_end_to_end(tmp_path):
    import joblib

    marker = tmp_path / "pwned"
    joblib.dump(_Payload(marker), tmp_path / "shared_model.skmnist")
    # As a user runs it: without TF_CPP_MIN_LOG_LEVEL, so the line is alone.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = _skmnist(
        "predict", str(tmp_path / "shared_model.skmnist"), "x.png", env=env,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "joblib or pickle file" in _one_error_line(result.stderr)
    assert not marker.exists()


@pytest.mark.parametrize("level", ["1", "2"])
@pytest.mark.slow
def test_a_users_log_level_hides_the_cpp_lines_below_it(level, tmp_path):
    # TensorFlow writes some lines before it reads TF_CPP_MIN_LOG_LEVEL; a user
    # who set 1 or 2 asked for no INFO lines, so the error stays one line. (A
    # zip archive that holds no model is refused by the safe loader, after
    # TensorFlow's import; a path or a pickle is refused before it.)
    import zipfile

    with zipfile.ZipFile(tmp_path / "model.skmnist", "w") as archive:
        archive.writestr("notes.txt", "not a model")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level}
    result = _skmnist(
        "predict", str(tmp_path / "model.skmnist"), "x.png", env=env, check=False
    )
    assert result.returncode == 1
    assert "has no manifest.json" in _one_error_line(result.stderr)


_VERSION_1 = Path(__file__).parent / "data" / "format_version_1.skmnist"


def test_the_trust_flag_has_one_name(tmp_path, run_cli):
    status, _, err = run_cli("predict", tmp_path / "m.pkl", "x.png", "--trust-pickle")
    assert status == 2 and "unrecognized arguments: --trust-pickle" in err


@pytest.mark.parametrize("flag", ["--trust"])
def test_an_old_format_file_is_read_only_when_trusted(flag, tmp_path, run_cli):
    # Format version 1 (weights in a .keras member, which HDF5 parses).
    PIL.fromarray(_digit_photo()).save(tmp_path / "d.png")
    status, out, err = run_cli("predict", _VERSION_1, tmp_path / "d.png")
    assert status == 1 and out == ""
    line = _one_error_line(err)
    assert "format version 1" in line and "pass --trust" in line
    status, out, err = run_cli("predict", _VERSION_1, tmp_path / "d.png", flag)
    assert status == 0, err
    assert re.fullmatch(r".*d\.png: \d \(\d\.\d{3}\)\n", out)


def _random_images(n, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (n, 28, 28), dtype=np.uint8)


def _digit_photo():
    """A dark stroke on white paper: something predict reads as a digit (random
    pixels it rightly refuses as noise)."""
    page = np.full((60, 50), 255, dtype=np.uint8)
    page[10:50, 22:28] = 0
    return page


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, digits, digits_flat):
    """Small models of every kind evaluate and predict may be handed."""
    import joblib

    from skmnist import MNISTClassifier, make_mnist_pipeline, save

    tiny = {"hidden_units": 8, "epochs": 1, "batch_size": 64, "random_state": 0}
    folder = tmp_path_factory.mktemp("models")
    images, labels = _random_images(200), np.arange(200) % 10
    save(make_mnist_pipeline(**tiny).fit(images, labels), folder / "good.skmnist")
    joblib.dump({"weights": [1, 2]}, folder / "dict.joblib")
    joblib.dump(make_mnist_pipeline(**tiny).fit(*digits), folder / "eight.joblib")
    joblib.dump(MNISTClassifier(**tiny).fit(*digits_flat), folder / "flat.joblib")
    words = np.array(["zero", "one"])[labels % 2]
    joblib.dump(make_mnist_pipeline(**tiny).fit(images, words), folder / "words.joblib")
    joblib.dump(make_mnist_pipeline(**tiny), folder / "unfitted.joblib")
    return folder


@pytest.mark.parametrize(
    "name, message",
    [
        ("dict.joblib", "holds a dict, not a scikit-learn classifier"),
        ("eight.joblib", "does not take 28x28 MNIST images"),
        ("flat.joblib", "does not take 28x28 MNIST images"),
        ("unfitted.joblib", "holds an unfitted Pipeline"),
        ("missing.skmnist", "no model file at"),
        (".", "is a folder, not a model file"),
    ],
)
@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.slow
def test_models_that_cannot_classify_mnist_are_one_line_errors(
    command, name, message, model_files, run_cli, no_data_loading
):
    extra = ["digit.png"] if command == "predict" else []
    trust = ["--trust"] if name.endswith(".joblib") else []
    status, _, err = run_cli(command, model_files / name, *trust, *extra)
    assert status == 1
    assert message in _one_error_line(err)


def _hostile_copy(good: Path, path: Path, kind: str) -> Path:
    """``good`` with its first weight member replaced by a hostile one that the
    manifest agrees with and the checksums cover, as a forger writes it."""
    import hashlib
    import json
    import zipfile

    with zipfile.ZipFile(good) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["manifest.json"])
    if kind == "long-header":  # NumPy's refusal runs over several lines
        declared = manifest["arrays"]["weights/0.npy"]
        shape = tuple(declared["shape"])
    else:  # empty, but of a size NumPy cannot even represent
        declared, shape = {"dtype": "<f4", "shape": [10**30, 0]}, (10**30, 0)
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (60_000 if kind == "long-header" else 0) + "\n"
    header = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()
    members["weights/0.npy"] = header
    manifest["arrays"]["weights/0.npy"] = declared
    manifest["sha256"] = {
        name: hashlib.sha256(content).hexdigest()
        for name, content in members.items()
        if name != "manifest.json"
    }
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


@pytest.mark.parametrize("kind", ["long-header", "absurd-empty-shape"])
@pytest.mark.parametrize("trust", [[], ["--trust"]])
@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_hostile_weights_are_one_line_errors_naming_the_file_trusted_or_not(
    command, trust, kind, model_files, run_cli, no_data_loading, tmp_path
):
    model = _hostile_copy(model_files / "good.skmnist", tmp_path / "m.skmnist", kind)
    extra = {"predict": ["digit.png"], "export": [tmp_path / "m.onnx"]}
    status, out, err = run_cli(command, model, *trust, *extra.get(command, []))
    assert status == 1 and out == ""
    line = _one_error_line(err)
    # --trust (for version 1 files) weakens no check of a version 2 file.
    assert f"{model}: weights/0.npy: " in line
    assert not (tmp_path / "m.onnx").exists()


def test_evaluate_needs_digit_labels_predict_prints_any(
    model_files, run_cli, no_data_loading, tmp_path
):
    status, _, err = run_cli("evaluate", model_files / "words.joblib", "--trust")
    assert status == 1
    assert "classes are ['one', 'zero'], not the digits 0-9" in _one_error_line(err)
    PIL.fromarray(_digit_photo()).save(tmp_path / "d.png")
    status, out, err = run_cli(
        "predict", model_files / "words.joblib", "--trust", tmp_path / "d.png"
    )
    assert status == 0, err
    assert re.fullmatch(r".*d\.png: (one|zero) \(\d\.\d{3}\)\n", out)


def _bomb_png(path, width=20000, height=10000):
    """A PNG that declares width x height pixels (over Pillow's decompression
    bomb limit) in a few bytes."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1)))
        + chunk(b"IEND", b"")
    )


def test_predict_reports_every_failing_file_and_classifies_the_rest(
    model_files, tmp_path, run_cli, monkeypatch
):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        PIL.fromarray(_digit_photo()).save(tmp_path / folder / "d.png")
    _bomb_png(tmp_path / "bomb.png")
    PIL.fromarray(np.full((40, 40), 255, dtype=np.uint8)).save(tmp_path / "blank.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    names = ["a/d.png", "bomb.png", "blank.png", "empty.png", "broken.jpg",
             "missing.png", "a", "b/d.png"]  # fmt: skip
    monkeypatch.chdir(tmp_path)  # the paths as a user types them
    status, out, err = run_cli("predict", model_files / "good.skmnist", *names)
    assert status == 1
    assert [line.split(": ")[0] for line in out.splitlines()] == ["a/d.png", "b/d.png"]
    failures = err.strip().splitlines()
    assert len(failures) == 6, err
    for name, line in zip(names[1:7], failures, strict=True):
        assert line.startswith(f"skmnist: error: {name}: "), line
    assert "blank" in failures[1]
    assert "the file is empty" in failures[2]
    assert "no such file" in failures[4]
    assert "is a folder" in failures[5]


@pytest.fixture
def tiny_npz(tmp_path):
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        x_train=_random_images(300),
        y_train=(np.arange(300) % 10).astype(np.uint8),
        x_test=_random_images(50, seed=1),
        y_test=(np.arange(50) % 10).astype(np.uint8),
    )
    return path


def _bad_outputs(tmp_path, data):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    # A device or pipe such as /dev/null: renaming a file over it would replace
    # the device itself (running as root, /dev/null became a model file).
    os.mkfifo(tmp_path / "pipe")
    return {
        "pipe": (tmp_path / "pipe", "not a regular file"),
        "folder": (tmp_path / "folder", "is a folder"),
        "parent-is-file": (tmp_path / "file" / "m.skmnist", "is a file, not a folder"),
        "unwritable": (Path("/proc/skmnist/m.skmnist"), "cannot be written"),
        "the-data": (data, "is also an input"),
        "the-data-by-another-name": (
            data.parent / "." / data.name,
            "is also an input",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "folder",
        "parent-is-file",
        "unwritable",
        "the-data",
        "the-data-by-another-name",
        "pipe",
    ],
)
@pytest.mark.parametrize("command", ["train", "search"])
def test_bad_outputs_are_refused_before_the_data_is_loaded(
    command, case, tmp_path, tiny_npz, run_cli, no_data_loading
):
    output, message = _bad_outputs(tmp_path, tiny_npz)[case]
    before = tiny_npz.read_bytes()
    extra = (
        ["--param", "clf__epochs=1", "--n-workers", "0"] if command == "search" else []
    )
    status, _, err = run_cli(command, *extra, "--data", tiny_npz, "--output", output)
    assert status == 1
    line = _one_error_line(err)
    assert "--output" in line and message in line
    assert tiny_npz.read_bytes() == before


@pytest.mark.parametrize("where", ["data-folder", "idx-folder", "keras-cache"])
@pytest.mark.parametrize("command", ["train", "search"])
def test_an_output_over_the_data_a_folder_or_cache_holds_is_refused(
    command, where, tmp_path, tiny_npz, run_cli, no_data_loading, monkeypatch
):
    # --data names a folder (or nothing: Keras's cache), not the file itself.
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("SKMNIST_DATA", raising=False)
    if where == "data-folder":
        data = folder / "mnist.npz"
        data.write_bytes(tiny_npz.read_bytes())
        argv = ["--data", folder]
    elif where == "idx-folder":
        data = folder / "train-images-idx3-ubyte.gz"
        data.write_bytes(b"IDX")
        argv = ["--data", folder]
    else:
        data = tmp_path / "keras" / "datasets" / "mnist.npz"
        data.parent.mkdir(parents=True)
        data.write_bytes(tiny_npz.read_bytes())
        argv = []
    before = data.read_bytes()
    extra = (
        ["--param", "clf__epochs=1", "--n-workers", "0"] if command == "search" else []
    )
    status, _, err = run_cli(command, *extra, *argv, "--output", data)
    assert status == 1
    assert "is also an input" in _one_error_line(err)
    assert data.read_bytes() == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--output", "m.skmnist", "--format", "joblib"], "never a joblib pickle"),
        (["--output", "m.SKMNIST", "--format", "joblib"], "never a joblib pickle"),
        (["--random-state", "-1"], "must be an integer from 0 to 4294967295, got -1"),
        (["--random-state", "99999999999"], "got 99999999999"),
    ],
    ids=["pickle-as-skmnist", "pickle-as-SKMNIST", "negative-seed", "huge-seed"],
)
@pytest.mark.parametrize("command", ["train", "search"])
def test_usage_errors_before_the_data_is_loaded(
    command, argv, message, tmp_path, run_cli, no_data_loading, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    extra = (
        ["--param", "clf__epochs=1", "--n-workers", "0"] if command == "search" else []
    )
    status, _, err = run_cli(command, *extra, *argv)
    assert status == 2
    assert message in _one_error_line(err)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "option, value, message",
    [
        (["train", "--epochs"], "many", "must be an integer from 1 to 2147483647"),
        (
            ["train", "--epochs"],
            "2.5",
            "must be an integer from 1 to 2147483647, got '2.5'",
        ),
        (["train", "--epochs"], "0", "must be an integer from 1 to 2147483647, got 0"),
        (
            ["train", "--batch-size"],
            "99999999999999999999",
            "must be an integer from 1 to 2147483647, got 99999999999999999999",
        ),
        (["train", "--hidden-units"], "1000000000", "a network of 1000000000 hidden"),
        (
            ["search", "--param", "clf__epochs=1", "--cv"],
            "1",
            "must be an integer from 2 to ",
        ),
        (
            ["serve", "m.skmnist", "--max-concurrent"],
            "0",
            "must be an integer from 1 to 1024, got 0",
        ),
        (["train", "--random-state"], "seven", "must be an integer from 0 to "),
        (["search", "--n-workers"], "two", "must be an integer, 0 or more, got 'two'"),
        (["search", "--n-workers"], "-1", "must be an integer, 0 or more, got -1"),
        (["serve", "m.skmnist", "--port"], "http", "must be a port number from 0"),
        (
            ["serve", "m.skmnist", "--port"],
            "65536",
            "must be a port number from 0 to 65535, got 65536",
        ),
    ],
)
def test_integer_options_name_what_they_expect(
    option, value, message, run_cli, no_data_loading
):
    status, out, err = run_cli(*option, value)
    assert (status, out) == (2, "")
    line = _one_error_line(err)
    assert f"argument {option[-1]}: {message}" in line
    assert "invalid" not in line and "_int" not in line  # no Python names


def test_data_problems_are_one_line(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SKMNIST_DATA", raising=False)
    status, _, err = run_cli("train", "--data", "minst.npz")  # a typo
    assert status == 1
    assert "No MNIST data at minst.npz" in _one_error_line(err)
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not a zip")
    status, _, err = run_cli("evaluate", "x.skmnist", "--data", "corrupt.npz")
    assert status == 1  # the model first: no such file
    assert "no model file at x.skmnist" in _one_error_line(err)
    status, _, err = run_cli("train", "--data", "corrupt.npz")
    assert status == 1
    assert "corrupt.npz is not a readable mnist.npz" in _one_error_line(err)
    assert not (tmp_path / "mnist_pipeline.skmnist").exists()


def test_the_first_run_without_data_says_what_to_do(tmp_path, run_cli, monkeypatch):
    import keras

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SKMNIST_DATA", str(tmp_path / "mnist.npz"))
    status, _, err = run_cli("train")
    assert status == 1
    assert "SKMNIST_DATA is set to" in _one_error_line(err)

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.delenv("SKMNIST_DATA")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(keras.utils, "get_file", offline)
    status, _, err = run_cli("train")
    assert status == 1
    assert "Could not download MNIST" in _one_error_line(err)


@pytest.mark.slow
def test_a_normal_run_prints_no_tensorflow_logs_and_saves_the_safe_format(
    tiny_npz, tmp_path
):
    from skmnist._persistence import is_skmnist_file

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONWARNINGS"] = "ignore"  # the tiny data is not genuine MNIST
    result = subprocess.run(
        [sys.executable, "-m", "skmnist", "train", "--data", str(tiny_npz),
         "--epochs", "1", "--hidden-units", "8"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not [line for line in result.stderr.splitlines() if _CPP_LOG.match(line)]
    assert "absl" not in result.stderr
    assert is_skmnist_file(tmp_path / "mnist_pipeline.skmnist")


def test_a_search_grid_too_large_for_memory_is_refused_at_once(run_cli, tmp_path):
    status, out, err = run_cli(
        "search", "--param", "clf__hidden_units=64,2000000000",
        "--n-workers", "0", "--output", tmp_path / "m.skmnist",
    )  # fmt: skip
    assert (status, out) == (2, "")
    line = _one_error_line(err)
    assert "--param clf__hidden_units: a network of 2000000000 hidden units" in line
    assert "more than this machine's" in line


# 28x28 -> 4096 -> 2,000,000,000 -> 10: about 8.2e12 weights, terabytes.
_HUGE_DEEP_WEIGHTS = (28 * 28 + 1) * 4096 + 4097 * 2_000_000_000 + 2_000_000_001 * 10


@pytest.mark.parametrize(
    "argv, option",
    [
        (["train", "--hidden-units", "4096,2000000000"], "argument --hidden-units"),
        (
            ["search", "--param", "clf__hidden_units=64,(4096,2000000000)"],
            "--param clf__hidden_units",
        ),
    ],
    ids=["train", "search-tuple"],
)
def test_a_deep_network_too_large_for_memory_is_refused_naming_its_widths(
    argv, option, run_cli, tmp_path, no_data_loading
):
    status, out, err = run_cli(
        *argv, "--n-workers" if argv[0] == "search" else "--epochs", "1",
        "--output", tmp_path / "m.skmnist",
    )  # fmt: skip
    assert (status, out) == (2, "")
    line = _one_error_line(err)
    # Every layer's weights counted, not those of one layer of the first width.
    assert (
        f"{option}: a network of hidden layers of 4096, 2000000000 units has "
        f"{_HUGE_DEEP_WEIGHTS:,} weights"
    ) in line
    assert "more than this machine's" in line
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["search", "--param", "clf__hidden_units=64,99999999999"],
            "--param clf__hidden_units must be a positive integer or a sequence",
        ),
        (
            ["search", "--param", "clf__hidden_units=(64,0)"],
            "0 in (64, 0) is not a whole number of units",
        ),
        (
            ["search", "--param", "clf__hidden_units=(64,true)"],
            "True in (64, True) is not a whole number of units",
        ),
    ],
    ids=["too-wide", "zero-in-tuple", "truth-value-in-tuple"],
)
def test_search_widths_that_are_no_widths_are_usage_errors(
    argv, message, run_cli, tmp_path, no_data_loading
):
    status, out, err = run_cli(
        *argv, "--n-workers", "0", "--output", tmp_path / "m.skmnist"
    )
    assert (status, out) == (2, "")
    assert message in _one_error_line(err)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("512", 512),
        ("512,256", (512, 256)),
        (" 512 , 256 ,128", (512, 256, 128)),
        ("(512, 256)", (512, 256)),  # as search --param writes a tuple
        ("(64)", 64),
    ],
)
def test_hidden_units_option_reads_one_width_or_several(text, expected):
    from skmnist._cli import _parser

    args = _parser().parse_args(["train", "--hidden-units", text])
    assert args.hidden_units == expected
    assert type(args.hidden_units) is type(expected)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--hidden-units", "512,x"],
            "argument --hidden-units: must be a width or comma-separated widths "
            "of hidden layers such as 512,256, each an integer from 1 to "
            "2147483647, got '512,x'",
        ),
        (["--hidden-units", "512,"], "got '512,'"),
        (["--hidden-units", "512,0"], "got '512,0'"),
        (["--hidden-units", "99999999999"], "got '99999999999'"),
        (["--alpha", "-0.1"], "argument --alpha: must be a number, 0 or more, got"),
        (["--alpha", "nan"], "argument --alpha: must be a number, 0 or more, got"),
        (["--tol", "-1", "--early-stopping"], "argument --tol: must be a number, 0"),
        (
            ["--dropout", "1"],
            "argument --dropout: must be a number from 0 to below 1, got '1'",
        ),
        (
            ["--validation-fraction", "1.5"],
            "argument --validation-fraction: must be a number from 0 to below 1",
        ),
        (
            ["--n-iter-no-change", "0", "--early-stopping"],
            "argument --n-iter-no-change: must be an integer from 1 to",
        ),
        (
            ["--learning-rate", "0"],
            "argument --learning-rate: must be a number above 0, got '0'",
        ),
        (["--learning-rate", "inf"], "argument --learning-rate: must be a number"),
        (
            ["--learning-rate-schedule", "invscaling"],
            "argument --learning-rate-schedule: invalid choice: 'invscaling'",
        ),
        (
            ["--early-stopping", "--validation-fraction", "0"],
            "argument --validation-fraction: --early-stopping needs validation images",
        ),
        # Options that would be ignored: nothing monitors the training.
        (
            ["--tol", "0.01"],
            "argument --tol: has an effect only with --early-stopping or "
            "--learning-rate-schedule adaptive",
        ),
        (["--n-iter-no-change", "3"], "argument --n-iter-no-change: has an effect"),
    ],
)
def test_train_options_are_usage_errors_before_the_data_is_loaded(
    argv, message, run_cli, tmp_path, monkeypatch, no_data_loading
):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli("train", *argv)
    assert (status, out) == (2, "")
    line = _one_error_line(err)
    assert message in line and line.endswith("(see 'skmnist train --help')")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--tol", "0.01", "--learning-rate-schedule", "adaptive"],
        ["--n-iter-no-change", "2", "--early-stopping"],
        ["--validation-fraction", "0.2"],  # validation losses, no early stopping
    ],
)
def test_monitoring_options_are_accepted_where_they_apply(argv):
    from skmnist._cli import _check_train, _parser

    args = _parser().parse_args(["train", *argv, "--output", "m.skmnist"])
    args.parser.error = lambda message: pytest.fail(message)
    _check_train(args)


def _saved_models(monkeypatch) -> list:
    """The models ``train`` saves from now on, in order, as it saves them."""
    import skmnist._cli

    saved = []
    save = skmnist._cli._save_model
    monkeypatch.setattr(
        skmnist._cli,
        "_save_model",
        lambda model, *args: (saved.append(model), save(model, *args)),
    )
    return saved


@pytest.mark.slow
def test_train_with_early_stopping_and_deep_layers_reports_the_epochs_trained(
    tmp_path, run_cli, monkeypatch
):

    # Random images and labels: nothing to learn, so the validation accuracy
    # stops improving and training stops long before --epochs.
    rng = np.random.RandomState(0)
    data = tmp_path / "noise.npz"
    np.savez(
        data,
        x_train=rng.randint(0, 256, (600, 28, 28), dtype=np.uint8),
        y_train=(np.arange(600) % 10).astype(np.uint8),
        x_test=_random_images(50, seed=1),
        y_test=(np.arange(50) % 10).astype(np.uint8),
    )
    saved = _saved_models(monkeypatch)
    output = tmp_path / "m.joblib"
    status, out, err = run_cli(
        "train", "--data", data, "--output", output, "--epochs", "40",
        "--batch-size", "64", "--hidden-units", "16,8", "--dropout", "0.1",
        "--alpha", "0.001", "--learning-rate", "0.003", "--early-stopping",
        "--validation-fraction", "0.2", "--n-iter-no-change", "1", "--tol", "0",
        "--learning-rate-schedule", "constant", "--random-state", "0",
    )  # fmt: skip
    assert status == 0, err
    clf = saved[0][-1]
    # Every option reached the classifier, under its own name.
    assert (
        clf.get_params()
        | {
            "hidden_units": (16, 8),
            "dropout": 0.1,
            "alpha": 0.001,
            "optimizer__learning_rate": 0.003,
            "early_stopping": True,
            "validation_fraction": 0.2,
            "n_iter_no_change": 1,
            "tol": 0.0,
            "learning_rate_schedule": "constant",
            "epochs": 40,
            "batch_size": 64,
            "random_state": 0,
        }
        == clf.get_params()
    )
    assert [layer.units for layer in clf.model_.layers if hasattr(layer, "units")] == [
        16,
        8,
        10,
    ]
    lines = out.strip().splitlines()
    assert lines[-1].startswith("test_acc: ")  # still the last line
    report = next(line for line in lines if line.startswith("early stopping: "))
    assert lines.index(report) < len(lines) - 1
    match = re.fullmatch(
        r"early stopping: trained (\d+) of 40 epochs, best validation accuracy "
        r"(\d\.\d{4}) at epoch (\d+) \(the weights kept\)",
        report,
    )
    assert match, report
    trained, best, best_epoch = int(match[1]), float(match[2]), int(match[3])
    assert trained == clf.n_iter_ < 40
    assert trained == sum(line.startswith("Epoch ") for line in lines)
    scores = clf.validation_scores_
    assert best == round(clf.best_validation_score_, 4) == round(max(scores), 4)
    assert best_epoch == scores.index(max(scores)) + 1
    assert output.is_file()


def test_train_without_early_stopping_reports_no_early_stopping(
    tiny_npz, tmp_path, run_cli
):
    status, out, err = run_cli(
        "train", "--data", tiny_npz, "--output", tmp_path / "m.joblib",
        "--epochs", "1", "--hidden-units", "8", "--validation-fraction", "0.2",
    )  # fmt: skip
    assert status == 0, err
    assert "early stopping" not in out
    assert "val_accuracy" in out  # the validation rows are reported, though
    assert out.strip().splitlines()[-1].startswith("test_acc: ")


@pytest.mark.slow
def test_train_robust_trains_the_recipe_the_options_change(
    tiny_npz, tmp_path, run_cli, monkeypatch
):
    import keras

    import skmnist

    saved = _saved_models(monkeypatch)
    status, out, err = run_cli(
        "train", "--data", tiny_npz, "--output", tmp_path / "m.skmnist",
        "--robust", "--epochs", "2", "--hidden-units", "8,8",
        "--learning-rate", "0.002", "--random-state", "0",
    )  # fmt: skip
    assert status == 0, err
    assert out.strip().splitlines()[-1].startswith("test_acc: ")
    params = saved[0][-1].get_params()
    assert params["augmentation"] is True
    assert params["augmentation__thickness"] == 0.5
    assert (params["hidden_units"], params["epochs"]) == ((8, 8), 2)
    assert params["optimizer"] == "adam"
    schedule = params["learning_rate_schedule"]
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    # From --learning-rate down over the 2 epochs of 300 images in batches of 128.
    assert schedule.get_config()["initial_learning_rate"] == 0.002
    assert schedule.get_config()["decay_steps"] == 2 * 3
    assert "optimizer__learning_rate" not in params
    loaded = skmnist.load(tmp_path / "m.skmnist")
    assert loaded[-1].get_params()["augmentation__rotation"] == 20.0


@pytest.mark.slow
def test_train_robust_sizes_its_schedule_by_the_rows_left_to_train(
    tiny_npz, tmp_path, run_cli, monkeypatch
):
    # 300 images, 0.2 held out for validation: 240 train, in 2 batches of 128
    # (all 300 would take 3); the cosine ends at 0 on the last of them.
    saved = _saved_models(monkeypatch)
    status, _, err = run_cli(
        "train", "--data", tiny_npz, "--output", tmp_path / "m.skmnist",
        "--robust", "--epochs", "1", "--hidden-units", "8",
        "--validation-fraction", "0.2",
    )  # fmt: skip
    assert status == 0, err
    schedule = saved[0][-1].get_params()["learning_rate_schedule"]
    assert schedule.get_config()["decay_steps"] == 2


def test_train_robust_defaults_are_the_recipes(tmp_path):
    from skmnist._cli import _check_train, _parser

    args = _parser().parse_args(["train", "--robust", "--output", "m.skmnist"])
    args.parser.error = lambda message: pytest.fail(message)
    _check_train(args)
    assert (args.hidden_units, args.epochs) == ((1024, 1024), 30)
    args = _parser().parse_args(["train", "--output", "m.skmnist"])
    args.parser.error = lambda message: pytest.fail(message)
    _check_train(args)
    assert (args.hidden_units, args.epochs) == (512, 5)  # the seed's


def test_a_validation_set_the_data_cannot_fill_is_one_line(tiny_npz, tmp_path, run_cli):
    # 300 images: 0.01 of them holds out 3, fewer than the 10 digits.
    status, _, err = run_cli(
        "train", "--data", tiny_npz, "--output", tmp_path / "m.joblib",
        "--epochs", "1", "--hidden-units", "8", "--early-stopping",
        "--validation-fraction", "0.01",
    )  # fmt: skip
    assert status == 1
    assert "validation_fraction=0.01 cannot hold out" in _one_error_line(err)
    assert not (tmp_path / "m.joblib").exists()


def test_a_loop_of_symbolic_links_is_one_line_naming_it(tmp_path, run_cli):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for argv in (
        ["train", "--data", tmp_path / "a", "--output", tmp_path / "m.skmnist"],
        ["search", "--param", "clf__epochs=1", "--n-workers", "0", "--data",
         tmp_path / "a", "--output", tmp_path / "m.skmnist"],
    ):  # fmt: skip
        status, _, err = run_cli(*argv)
        assert status == 1, err
        line = _one_error_line(err)
        assert "a symbolic link that leads nowhere" in line and str(tmp_path) in line


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="Linux's /proc")
def test_an_unreadable_model_path_is_named(run_cli):
    # /proc/self/mem is a regular file that cannot be read from its start.
    status, _, err = run_cli("predict", "/proc/self/mem", "x.png")
    assert status == 1
    assert "cannot read /proc/self/mem: Input/output error" in _one_error_line(err)


def test_a_model_path_with_odd_spaces_is_named_once(tmp_path, run_cli):
    # The one-line message folds the newline and the double space; the path is
    # still recognised in it, so no second "cannot read" prefix is added.
    path = tmp_path / "a  b\nc.skmnist"
    status, _, err = run_cli("evaluate", path)
    assert status == 1
    assert (
        _one_error_line(err)
        == f"skmnist: error: no model file at {tmp_path}/a b c.skmnist"
    )


def test_an_empty_or_broken_model_path_says_so(tmp_path, run_cli):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    for path, message in [
        ("", "no model file given: the path is empty"),
        (tmp_path / "loop", f"no model file at {tmp_path}/loop: it is a symbolic link"),
        (tmp_path / "dangling", f"no model file at {tmp_path}/dangling: it is a symb"),
    ]:
        status, _, err = run_cli("evaluate", path)
        assert status == 1
        assert _one_error_line(err).startswith(f"skmnist: error: {message}")
    # The library's loader says the same of an empty path (not "." a folder).
    from skmnist._model_files import load_model

    with pytest.raises(FileNotFoundError, match="the path is empty"):
        load_model("")


def test_the_conversion_hint_is_safe_to_paste(tmp_path, run_cli):
    # A pickle's name is its sender's choice: the command the refusal shows
    # must run nothing the name holds, in the shell or in Python.
    import shlex

    name = "it's  $(touch PWNED) `id`.joblib"  # two spaces: the message folds them
    (tmp_path / name).write_bytes(b"\x80\x04N.")
    status, _, err = run_cli("predict", tmp_path / name, "x.png")
    assert status == 1
    command = _one_error_line(err).partition("convert it once to the safe format: ")[2]
    program, option, code = shlex.split(command)
    assert (program, option) == ("python", "-c")
    # Python code whose only strings are the two paths, as literals.
    tree = ast.parse(code)
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    paths = [str(tmp_path / name), str(tmp_path / name[:-7]) + ".skmnist"]
    assert sorted(strings) == sorted(paths)
    calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert calls == ["skmnist.save", "joblib.load"]


# Command lines refused before TensorFlow is imported: usage errors (status
# 2), and model files that are missing, folders, links to nothing, pickles
# without --trust or no zip archive under the safe name, bad plot files and
# bad ONNX outputs (status 1): (status, part of the message, argv). {folder} is
# a folder of the test's own.
_REFUSED_EARLY = {
    "cv-1": (2, "--cv", ["search", "--param", "clf__hidden_units=8", "--cv", "1"]),
    "batch": (2, "--batch-size", ["train", "--batch-size", "99999999999999999999"]),
    "network": (2, "weights", ["train", "--hidden-units", "1000000000"]),
    "concurrency": (
        2,
        "--max-concurrent",
        ["serve", "m.skmnist", "--max-concurrent", "0"],
    ),
    "widths": (2, "--hidden-units", ["train", "--hidden-units", "512,x"]),
    "deep-network": (2, "weights", ["train", "--hidden-units", "4096,2000000000"]),
    "alpha": (2, "--alpha", ["train", "--alpha", "-1"]),
    "early-stopping-without-validation": (
        2,
        "--validation-fraction",
        ["train", "--early-stopping", "--validation-fraction", "0"],
    ),
    "tol-alone": (2, "--tol", ["train", "--tol", "0.1"]),
    "unbalanced-tuple": (
        2,
        "clf__hidden_units",
        ["search", "--param", "clf__hidden_units=(512,256"],
    ),
    "deep-network-in-grid": (
        2,
        "weights",
        ["search", "--param", "clf__hidden_units=8,(4096,2000000000)"],
    ),
    "zero-width-in-grid": (
        2,
        "clf__hidden_units",
        ["search", "--param", "clf__hidden_units=(8,0)"],
    ),
    "evaluate-no-model": (
        1,
        "no model file at {folder}/none.skmnist",
        ["evaluate", "{folder}/none.skmnist"],
    ),
    "evaluate-plot": (
        1,
        "--plot a.xyz: the file name must end in one of",
        ["evaluate", "{folder}/model.skmnist", "--plot", "a.xyz"],
    ),
    "predict-folder": (
        1,
        "{folder} is a folder, not a model file",
        ["predict", "{folder}", "digit.png"],
    ),
    "predict-link-to-nothing": (
        1,
        "no model file at {folder}/gone.skmnist: it is a symbolic link",
        ["predict", "{folder}/gone.skmnist", "a.png"],
    ),
    "predict-untrusted-pickle": (
        1,
        "loaded only with --trust",
        ["predict", "{folder}/model.joblib", "a.png"],
    ),
    "predict-pickle-named-safe": (
        1,
        "it looks like a joblib or pickle file",
        ["predict", "{folder}/pickle.skmnist", "a.png"],
    ),
    "predict-truncated": (
        1,
        "{folder}/truncated.skmnist is a damaged or truncated skmnist model file",
        ["predict", "{folder}/truncated.skmnist", "a.png"],
    ),
    "predict-members-not-in-manifest": (
        1,
        "{folder}/extra.skmnist: the archive's members do not match its manifest",
        ["predict", "{folder}/extra.skmnist", "a.png"],
    ),
    "serve-version-1-untrusted": (
        1,
        "is an skmnist file of format version 1",
        ["serve", "{folder}/version_1.skmnist", "--port", "0"],
    ),
    # A zip archive by content goes to the pickle-free loader, whatever its name.
    "evaluate-other-zip": (
        1,
        "{folder}/other.bin is a zip archive but not an skmnist model file",
        ["evaluate", "{folder}/other.bin"],
    ),
    "serve-no-model": (
        1,
        "no model file at {folder}/none.skmnist",
        ["serve", "{folder}/none.skmnist", "--port", "0"],
    ),
    "export-no-model": (
        1,
        "no model file at {folder}/none.skmnist",
        ["export", "{folder}/none.skmnist", "{folder}/o.onnx"],
    ),
    "export-over-its-input": (
        1,
        "OUT.onnx {folder}/model.skmnist is also an input",
        ["export", "{folder}/model.skmnist", "{folder}/model.skmnist"],
    ),
    # Refused for its model before OUT.onnx's missing folders are created.
    "export-no-model-into-new-folders": (
        1,
        "no model file at {folder}/none.skmnist",
        ["export", "{folder}/none.skmnist", "{folder}/new/sub/o.onnx"],
    ),
}


@pytest.fixture(scope="module")
def refused_early(tmp_path_factory):
    """Every command line of ``_REFUSED_EARLY`` run by ``main`` in one fresh
    process: each one's exit status, standard error and the frameworks
    imported once it returned."""
    import skmnist

    folder = tmp_path_factory.mktemp("refused")
    (folder / "model.joblib").write_bytes(b"a pickle, as far as anyone knows")
    skmnist.save(skmnist.make_mnist_pipeline(), folder / "model.skmnist")
    whole = (folder / "model.skmnist").read_bytes()
    (folder / "truncated.skmnist").write_bytes(whole[: len(whole) // 2])
    (folder / "extra.skmnist").write_bytes(whole)
    with zipfile.ZipFile(folder / "extra.skmnist", "a") as archive:
        archive.writestr("weights/9.npy", b"not in the manifest")
    (folder / "version_1.skmnist").write_bytes(
        (Path(__file__).parent / "data" / "format_version_1.skmnist").read_bytes()
    )
    with zipfile.ZipFile(folder / "other.bin", "w") as archive:
        archive.writestr("notes.txt", "a zip archive of something else")
    (folder / "pickle.skmnist").write_bytes(b"\x80\x04N.")
    (folder / "gone.skmnist").symlink_to(folder / "nothing")
    cases = {
        name: [part.format(folder=folder) for part in argv]
        for name, (_, _, argv) in _REFUSED_EARLY.items()
    }
    script = (
        "import contextlib, io, json, sys\n"
        "from skmnist._cli import main\n"
        "results = {}\n"
        f"for name, argv in {cases!r}.items():\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        try:\n"
        "            status = main(argv)\n"
        "        except SystemExit as exit_:\n"
        "            status = exit_.code\n"
        "    imported = sorted({'tensorflow', 'keras', 'jax'} & set(sys.modules))\n"
        "    results[name] = [status, err.getvalue(), imported]\n"
        "print(json.dumps(results))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    return folder, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(_REFUSED_EARLY))
def test_a_misused_command_line_is_refused_before_tensorflow_is_imported(
    name, refused_early
):
    # Counted in imports, not seconds: TensorFlow's import is what took 5 s.
    folder, results = refused_early
    status, err, imported = results[name]
    expected_status, message, _ = _REFUSED_EARLY[name]
    assert status == expected_status, err
    assert message.format(folder=folder) in err
    # The cases run in order in one process: the first to import a framework
    # is the one that fails here first.
    assert imported == [], err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("skmnist: error: "), err
    if name == "serve-version-1-untrusted":  # with the command line's how-to
        assert "If you do, pass --trust, and save it again" in err, err
    assert not [path for path in folder.rglob("*") if path.name in ("new", "o.onnx")]
