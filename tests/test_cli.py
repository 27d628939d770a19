"""The command line, end to end."""

import subprocess
import sys
import time

import numpy as np
import pytest

PIL = pytest.importorskip("PIL.Image")


def _skmnist(*args, env=None, check=True):
    return subprocess.run(
        [sys.executable, "-m", "skmnist", *args],
        capture_output=True,
        text=True,
        check=check,
        env=env,
    )


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["predict"]])
def test_help_is_immediate_and_imports_no_tensorflow(command):
    start = time.perf_counter()
    result = _skmnist(*command, "--help")
    assert time.perf_counter() - start < 1.5  # including the interpreter start
    assert "usage: skmnist" in result.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom skmnist._cli import main\n"
            f"try:\n    main({[*command, '--help']!r})\nexcept SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules, file=sys.stderr)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stderr.strip().splitlines()[-1] == "False"


def test_invalid_option_is_a_one_line_error():
    result = _skmnist("train", "--epochs", "0", check=False)
    assert result.returncode == 2
    assert "must be a positive integer" in result.stderr


@pytest.fixture(scope="module")
def trained_model(mnist_path, tmp_path_factory):
    """``skmnist train`` with its defaults, as a new user runs it."""
    model = tmp_path_factory.mktemp("model") / "mnist.joblib"
    result = _skmnist("train", "--data", str(mnist_path), "--output", str(model))
    return model, result


@pytest.mark.mnist
def test_train_reproduces_the_seed_notebook(trained_model):
    model, result = trained_model
    lines = result.stdout.strip().splitlines()
    assert "Epoch 5/5" in result.stdout
    assert "accuracy:" in result.stdout and "loss:" in result.stdout
    assert lines[-1].startswith("test_acc: ")
    assert float(lines[-1].split()[1]) >= 0.975
    assert model.is_file()


@pytest.mark.mnist
def test_evaluate_reports_accuracy_and_confusion_matrix(trained_model, mnist_path):
    model, _ = trained_model
    result = _skmnist("evaluate", str(model), "--data", str(mnist_path))
    assert "precision" in result.stdout and "recall" in result.stdout
    assert "confusion matrix" in result.stdout
    assert float(result.stdout.strip().splitlines()[-1].split()[1]) >= 0.975


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
def test_predict_classifies_user_images(trained_model, mnist, tmp_path):
    model, _ = trained_model
    _, (x_test, y_test) = mnist
    rng = np.random.RandomState(0)
    files, labels = [], []
    for i in rng.choice(len(x_test), 200, replace=False):
        path = tmp_path / f"digit{i}.{'png' if i % 2 else 'jpg'}"
        _as_user_photo(x_test[i], rng).save(path)
        files.append(path)
        labels.append(y_test[i])
    result = _skmnist("predict", str(model), *map(str, files))
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(files)
    predicted = [int(line.split(": ")[1].split()[0]) for line in lines]
    names = [line.split(": ")[0] for line in lines]
    assert names == [file.name for file in files]
    assert np.mean(np.array(predicted) == np.array(labels)) >= 0.95


@pytest.mark.mnist
def test_predict_reports_unreadable_files_and_answers_the_rest(
    trained_model, mnist, tmp_path
):
    model, _ = trained_model
    _, (x_test, _) = mnist
    good = tmp_path / "good.png"
    PIL.fromarray(x_test[0]).save(good)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    result = _skmnist("predict", str(model), str(broken), str(good), check=False)
    assert result.returncode == 1
    assert "broken.png" in result.stderr and "error" in result.stderr
    assert result.stdout.startswith("good.png: ")


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
def test_evaluate_writes_the_plot(small_model, mnist_path, tmp_path):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    figure = tmp_path / "evaluation.png"
    result = _skmnist(
        "evaluate", str(small_model), "--data", str(mnist_path), "--plot", str(figure)
    )
    lines = result.stdout.strip().splitlines()
    assert lines[-2].startswith("wrote the confusion matrix and misclassified")
    assert lines[-2].endswith(str(figure))
    assert lines[-1].startswith("test_acc: ")
    pixels = matplotlib_image.imread(figure)
    assert pixels.shape[0] > 500 and pixels.shape[1] > 1000  # two panels, side by side
    assert pixels[..., :3].std() > 0.1  # not a blank canvas


@pytest.mark.parametrize(
    ("name", "message"),
    [("evaluation.xyz", "must end in one of"), ("missing/evaluation.png", "no such")],
)
def test_evaluate_checks_the_plot_file_before_loading(tmp_path, name, message):
    pytest.importorskip("matplotlib")
    # No model file exists either: the plot file is checked first.
    result = _skmnist(
        "evaluate", str(tmp_path / "none.joblib"), "--plot", str(tmp_path / name),
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert message in result.stderr and "--plot" in result.stderr
    assert not (tmp_path / name).exists()


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_ctrl_c_in_train_keeps_the_saved_model(tmp_path):
    import os
    import signal
    import threading

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
    command = [sys.executable, "-m", "skmnist", "train", "--data", str(data)]
    command += ["--epochs", "100000", "--hidden-units", "16", "--output", str(saved)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A background job (nohup, "&", some CI runners) ignores SIGINT and its
        # children inherit that; the child gets the default, as in a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # Whatever happens, the training ends within bounds.
    watchdog = threading.Timer(300, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:  # wait until training is under way
            if line.startswith("Epoch 3/"):
                break
        os.kill(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        watchdog.cancel()
        process.kill()
    assert process.returncode == 130, stderr
    assert "training interrupted; nothing saved" in stderr
    assert "Traceback" not in stderr
    assert saved.read_bytes() == b"a model the user saved earlier"


def test_search_format_option_is_parsed_like_train_s():
    from skmnist._cli import _parser

    for command in ("train", "search"):
        extra = ["--param", "clf__epochs=1"] if command == "search" else []
        args = _parser().parse_args([command, *extra, "--format", "skmnist"])
        assert args.format == "skmnist"
        assert _parser().parse_args([command, *extra]).format is None


@pytest.mark.mnist
def test_search_saves_in_the_format_asked_for(mnist_path, tmp_path):
    from skmnist._persistence import is_skmnist_file, load

    model = tmp_path / "best.bin"  # an extension that names no format
    _skmnist(
        "search", "--param", "clf__hidden_units=8", "--param", "clf__epochs=1",
        "--cv", "2", "--limit", "300", "--n-workers", "0", "--random-state", "0",
        "--data", str(mnist_path), "--output", str(model), "--format", "skmnist",
    )  # fmt: skip
    assert is_skmnist_file(model)
    assert load(model).get_params()["clf__hidden_units"] == 8
