"""skmnist.save / skmnist.load: the pickle-free file format."""

import hashlib
import io
import json
import os
import pickle
import re
import stat
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
import zlib

import h5py
import joblib
import keras
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import skmnist
from skmnist import (
    DigitImagePreprocessor,
    MNISTClassifier,
    PixelScaler,
    _persistence,
    make_mnist_pipeline,
)
from skmnist._persistence import _archive, _registry

# Run again under Keras's JAX backend by .ci/run (see CONTRIBUTING.md).
pytestmark = pytest.mark.each_backend

TINY = {"hidden_units": 16, "epochs": 1, "batch_size": 32, "random_state": 0}


@pytest.fixture(scope="module")
def data(digits):
    images, labels = digits
    return images[:240], labels[:240]


@pytest.fixture(scope="module")
def fitted_pipeline(data):
    images, labels = data
    return make_mnist_pipeline(dropout=0.2, **TINY).fit(images, labels)


@pytest.fixture(scope="module")
def saved_pipeline(fitted_pipeline, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "pipeline.skmnist"
    skmnist.save(fitted_pipeline, path)
    return path


def _variables(clf):
    model = clf.model_
    return [np.asarray(v.value) for v in model.variables + model.optimizer.variables]


def _assert_same_fitted_classifier(loaded, original):
    for name in (
        "classes_",
        "n_classes_",
        "n_features_in_",
        "n_outputs_",
        "n_outputs_expected_",
        "target_type_",
        "history_",
        "_seed",
        "_random_state",
        *_CONVERGENCE_ATTRIBUTES,
    ):
        np.testing.assert_array_equal(
            getattr(loaded, name), getattr(original, name), err_msg=name
        )
    assert loaded.classes_.dtype == original.classes_.dtype
    assert _comparable(loaded.get_params()) == _comparable(original.get_params())
    for ours, theirs in zip(_variables(loaded), _variables(original), strict=True):
        np.testing.assert_array_equal(ours, theirs)


# What fit reports as MLPClassifier does, saved since skmnist 0.2.
_CONVERGENCE_ATTRIBUTES = (
    "n_iter_",
    "loss_",
    "loss_curve_",
    "validation_loss_curve_",
    "validation_scores_",
    "best_validation_score_",
    "best_loss_",
    "t_",
    "_no_improvement_count",
)


def _comparable(params: dict) -> dict:
    """``params`` with arrays and Keras schedules as values that compare equal."""

    def value(item):
        if isinstance(item, np.ndarray):
            return ("ndarray", item.dtype.str, item.tolist())
        if isinstance(item, keras.optimizers.schedules.LearningRateSchedule):
            return (type(item), item.get_config())
        return item

    return {name: value(item) for name, item in params.items()}


@pytest.mark.slow
def test_pipeline_round_trip_is_exact(fitted_pipeline, saved_pipeline, data):
    images, _ = data
    loaded = skmnist.load(saved_pipeline)
    assert type(loaded) is Pipeline
    assert [name for name, _ in loaded.steps] == ["scale", "clf"]
    assert loaded[0].image_shape_ == fitted_pipeline[0].image_shape_ == (8, 8)
    _assert_same_fitted_classifier(loaded[-1], fitted_pipeline[-1])
    np.testing.assert_array_equal(
        loaded.predict_proba(images), fitted_pipeline.predict_proba(images)
    )
    np.testing.assert_array_equal(
        loaded.predict(images), fitted_pipeline.predict(images)
    )


def test_loaded_model_continues_training_exactly_as_the_original(data, tmp_path):
    # Covers the optimizer state and dropout's seed generator, which Keras's own
    # file (and so a joblib pickle) leaves out: one more epoch must give the same
    # weights.
    images, labels = data
    original = make_mnist_pipeline(dropout=0.2, **TINY).fit(images, labels)
    skmnist.save(original, tmp_path / "pipeline.skmnist")
    loaded = skmnist.load(tmp_path / "pipeline.skmnist")
    X = original[0].transform(images)
    original[-1].partial_fit(X, labels)
    loaded[-1].partial_fit(X, labels)
    assert len(loaded[-1].history_["loss"]) == 2
    np.testing.assert_array_equal(
        loaded.predict_proba(images), original.predict_proba(images)
    )


def test_loaded_estimator_refits_warm_starts_and_clones(saved_pipeline, data):
    images, labels = data
    loaded = skmnist.load(saved_pipeline)
    before = loaded.predict_proba(images)
    loaded.set_params(clf__warm_start=True).fit(images, labels)
    assert not np.array_equal(loaded.predict_proba(images), before)
    fresh = clone(loaded).set_params(clf__warm_start=False).fit(images, labels)
    assert fresh.score(images, labels) >= 0
    assert clone(loaded).get_params()["clf__hidden_units"] == 16


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["zero", "one", "two"]),
        np.array(["zero", "one", "two"], dtype=object),
        np.array([3, 5, 7], dtype=np.uint8),
        np.array([1.0, 2.0, 4.0]),
        np.array([True, False, False]),
    ],
    ids=["str", "object", "uint8", "float", "bool"],
)
def test_class_labels_keep_their_dtype(labels, digits_flat, tmp_path):
    X, y = digits_flat
    y = labels[y[:150] % len(labels)]
    clf = MNISTClassifier(**TINY).fit(X[:150], y)
    skmnist.save(clf, tmp_path / "clf.skmnist")
    loaded = skmnist.load(tmp_path / "clf.skmnist")
    assert loaded.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.predict(X).dtype == clf.predict(X).dtype


def test_feature_names_class_weight_and_routed_parameters(digits_flat, tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = digits_flat
    frame = pd.DataFrame(X[:150]).add_prefix("px")
    clf = MNISTClassifier(
        class_weight={0: 2.0, 1: 0.5}, optimizer__learning_rate=0.01, **TINY
    ).fit(frame, y[:150])
    skmnist.save(clf, tmp_path / "clf.skmnist")
    loaded = skmnist.load(tmp_path / "clf.skmnist")
    np.testing.assert_array_equal(loaded.feature_names_in_, clf.feature_names_in_)
    assert loaded.class_weight == {0: 2.0, 1: 0.5}
    assert loaded.optimizer__learning_rate == 0.01
    np.testing.assert_array_equal(loaded.predict_proba(frame), clf.predict_proba(frame))


def test_unfitted_estimators_are_saved_as_their_parameters(tmp_path):
    pipeline = make_mnist_pipeline(hidden_units=32, epochs=2)
    skmnist.save(pipeline, tmp_path / "unfitted.skmnist")
    loaded = skmnist.load(tmp_path / "unfitted.skmnist")
    assert loaded.get_params()["clf__hidden_units"] == 32
    with pytest.raises(NotFittedError):
        loaded.predict(np.zeros((1, 8, 8)))


def test_scaler_alone_round_trips(tmp_path):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    scaler = PixelScaler(max_value=30).set_output(transform="pandas").fit(images)
    skmnist.save(scaler, tmp_path / "scaler")
    loaded = skmnist.load(tmp_path / "scaler")
    assert loaded.image_shape_ == (3, 4) and loaded.max_value == 30
    assert loaded.transform(images).equals(scaler.transform(images))


def test_written_to_exactly_the_path_given(fitted_pipeline, tmp_path):
    path = tmp_path / "no-extension"
    skmnist.save(fitted_pipeline, str(path))
    assert os.listdir(tmp_path) == ["no-extension"]
    assert _persistence.is_skmnist_file(path)


@pytest.mark.parametrize(
    "estimator, message",
    [
        (LogisticRegression(), "not LogisticRegression"),
        (Pipeline([("scale", StandardScaler())]), "not StandardScaler"),
        (
            MNISTClassifier(callbacks=[keras.callbacks.EarlyStopping()]),
            "hyper-parameter 'callbacks' of MNISTClassifier: .*EarlyStopping",
        ),
        (
            make_mnist_pipeline(optimizer=keras.optimizers.Adam()),
            "'optimizer' of step 'clf'.*Adam.*not JSON",
        ),
        (MNISTClassifier(random_state=np.random.RandomState(0)), "RandomState"),
        (MNISTClassifier(activation=np.tanh), "ufunc"),
    ],
    ids=["other-estimator", "other-step", "callbacks", "optimizer", "rng", "callable"],
)
def test_unsaveable_estimators_are_refused_suggesting_joblib(
    estimator, message, tmp_path
):
    with pytest.raises(TypeError, match=message) as error:
        skmnist.save(estimator, tmp_path / "refused.skmnist")
    assert "joblib" in str(error.value)
    assert os.listdir(tmp_path) == []


def test_failed_save_leaves_the_previous_file_intact(
    fitted_pipeline, saved_pipeline, tmp_path, monkeypatch
):
    path = tmp_path / "model.skmnist"
    path.write_bytes(saved_pipeline.read_bytes())
    before = path.read_bytes()

    def crash(array, where):  # after estimator.json went into the archive
        raise OSError("disk full")

    monkeypatch.setattr(_archive, "npy_bytes", crash)
    with pytest.raises(OSError, match="disk full"):
        skmnist.save(fitted_pipeline, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.skmnist"]  # no temporary file left


def test_loading_unpickles_nothing(saved_pipeline, monkeypatch, data):
    def refuse(*args, **kwargs):
        raise AssertionError("skmnist.load must not unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", refuse)
    monkeypatch.setattr(keras.saving, "load_model", refuse)
    # Nor read HDF5 (format version 2 has no HDF5 in it).
    monkeypatch.setattr(h5py, "File", refuse)
    monkeypatch.setattr(keras.Model, "load_weights", refuse)
    assert skmnist.load(saved_pipeline).predict(data[0][:3]).shape == (3,)


class _Payload:
    def __reduce__(self):
        return (os.mkdir, ("pwned",))


def test_a_pickle_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    joblib.dump(_Payload(), "model.skmnist")
    with pytest.raises(ValueError, match="joblib or pickle file"):
        skmnist.load("model.skmnist")
    assert not (tmp_path / "pwned").exists()


# -- damaged, modified and foreign files ---------------------------------------


def _members(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_members(path, members: dict, deflated=()) -> None:
    """Write ``members`` to ``path``, stored, but those named in ``deflated``."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            method = zipfile.ZIP_DEFLATED if name in deflated else zipfile.ZIP_STORED
            archive.writestr(name, content, method)


def _edit_json(members: dict, name: str, edit) -> None:
    document = json.loads(members[name])
    edit(document)
    members[name] = json.dumps(document).encode()


def _resign(members: dict) -> None:
    """Recompute the manifest's checksums, as a deliberate forger would."""
    _edit_json(
        members,
        "manifest.json",
        lambda manifest: manifest["sha256"].update(
            {
                name: hashlib.sha256(content).hexdigest()
                for name, content in members.items()
                if name != "manifest.json"
            }
        ),
    )


def _set_hidden_units(document):
    params = document["steps"][1][1]["params"]
    params["hidden_units"] = 8


def _tampered(saved, edit, path):
    """``path``, written with the members of the file ``saved``, changed by
    ``edit``."""
    members = _members(saved)
    edit(members)
    _write_members(path, members)
    return path


def _future_version(members):
    _edit_json(members, "manifest.json", lambda m: m.update(format_version=99))


def _wrong_checksum(members):
    _edit_json(
        members,
        "manifest.json",
        lambda m: m["sha256"].update({"estimator.json": "0" * 64}),
    )


def _changed_json(members):
    _edit_json(members, "estimator.json", _set_hidden_units)


def _changed_json_resigned(members):
    _changed_json(members)
    _resign(members)


def _changed_weights(members):
    weights = bytearray(members["weights/0.npy"])
    weights[len(weights) // 2] ^= 0xFF
    members["weights/0.npy"] = bytes(weights)


def _extra_member(members):
    members["extra.py"] = b"print('hello')"


def _no_manifest(members):
    del members["manifest.json"]


def _other_format(members):
    _edit_json(members, "manifest.json", lambda m: m.update(format="keras"))


def _private_parameter(members):
    _edit_json(
        members,
        "estimator.json",
        lambda d: d["steps"][1][1]["params"].update(_fit_keras_model="x"),
    )
    _resign(members)


def _garbage_json(members):
    members["estimator.json"] = b"{not json"
    _resign(members)


@pytest.mark.parametrize(
    "edit, message",
    [
        (_future_version, "format version 99.*Upgrade skmnist"),
        (_wrong_checksum, r"checksum mismatch for estimator\.json"),
        (_changed_json, r"checksum mismatch for estimator\.json"),
        (_changed_weights, r"checksum mismatch for weights/0\.npy"),
        (_changed_json_resigned, "weights do not fit the network"),
        (_extra_member, "members do not match its manifest"),
        (_no_manifest, r"no manifest\.json"),
        (_other_format, "does not name the 'skmnist' format"),
        (_private_parameter, "invalid parameter name '_fit_keras_model'"),
        (_garbage_json, r"estimator\.json is not valid JSON"),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
def test_modified_files_are_refused(saved_pipeline, tmp_path, edit, message):
    path = _tampered(saved_pipeline, edit, tmp_path / "modified.skmnist")
    with pytest.raises(ValueError, match=message):
        skmnist.load(path)


def _version_from_a_terminal(members):
    _edit_json(
        members,
        "manifest.json",
        lambda m: m.update(
            format_version=3, skmnist_version="\x1b]0;title\x07\x1b[2J" + "9" * 500
        ),
    )


def _no_version(members):
    _edit_json(members, "manifest.json", lambda m: m.pop("format_version"))


@pytest.mark.parametrize(
    "edit, message, from_the_layout",
    [
        (_future_version, "format version 99.*Upgrade skmnist", True),
        (_extra_member, "members do not match its manifest", True),
        (_no_manifest, r"no manifest\.json", True),
        (_other_format, "does not name the 'skmnist' format", True),
        (_no_version, r"its manifest\.json gives no format version\.$", True),
        # The version the file names, with no character a terminal acts on.
        (
            _version_from_a_terminal,
            r'skmnist "\\u001b\]0;title\\u0007',
            True,
        ),
        (_wrong_checksum, None, False),  # these need estimator.json read
        (_changed_json_resigned, None, False),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
def test_what_the_layout_refuses_is_refused_before_reading_members(
    saved_pipeline, tmp_path, edit, message, from_the_layout
):
    """check_archive, which the command line runs before it imports
    TensorFlow, refuses what the zip directory and manifest alone refuse, with
    load's message, and passes what only the members' content refuses."""
    path = _tampered(saved_pipeline, edit, tmp_path / "modified.skmnist")
    with pytest.raises(ValueError) as refused:
        skmnist.load(path)
    if not from_the_layout:
        _persistence.check_archive(path)
        return
    assert re.search(message, str(refused.value)), refused.value
    with pytest.raises(ValueError) as early:
        _persistence.check_archive(path)
    assert str(early.value) == str(refused.value)
    assert len(str(early.value)) < 300 and "\x1b" not in str(early.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_pipe_is_refused_as_one_without_being_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.skmnist")
    for refuse in (skmnist.load, _persistence.check_archive):
        with pytest.raises(skmnist.ModelFileError, match="not a regular file"):
            refuse(tmp_path / "pipe.skmnist")


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.3, 0.6, 0.9, 0.999])
def test_truncated_files_are_refused(saved_pipeline, tmp_path, fraction):
    content = saved_pipeline.read_bytes()
    path = tmp_path / "truncated.skmnist"
    path.write_bytes(content[: int(len(content) * fraction)])
    with pytest.raises(ValueError, match="skmnist model file"):
        skmnist.load(path)


def test_flipped_bytes_anywhere_are_refused(saved_pipeline, tmp_path):
    content = saved_pipeline.read_bytes()
    rng = np.random.RandomState(0)
    path = tmp_path / "flipped.skmnist"
    for position in rng.choice(len(content), 25, replace=False):
        damaged = bytearray(content)
        damaged[position] ^= 0x55
        path.write_bytes(bytes(damaged))
        try:
            skmnist.load(path)
        except ValueError:
            continue
        # A flip in a field no reader uses (a timestamp, a comment) is harmless;
        # checksums guard everything that is read.
        assert _members(path) == _members(saved_pipeline)


@pytest.mark.parametrize(
    "content, message",
    [
        # Random, but for a first byte that no pickle (b"\x80") or compressed
        # joblib file (b"x", ...) starts with: 1 in 128 random files did, and
        # was called a pickle.
        (b"\x00" + os.urandom(499), "not a zip archive"),
        (b"", "not a zip archive"),
        (b"PK\x03\x04" + os.urandom(200), "damaged or truncated"),
    ],
    ids=["random", "empty", "zip-magic-then-garbage"],
)
def test_foreign_files_are_refused(content, message, tmp_path):
    path = tmp_path / "foreign.skmnist"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        skmnist.load(path)


def test_a_plain_keras_file_is_refused(fitted_pipeline, tmp_path):
    path = tmp_path / "model.keras"
    keras.saving.save_model(fitted_pipeline[-1].model_, path)
    with pytest.raises(ValueError, match=r"no manifest\.json"):
        skmnist.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no skmnist model file"):
        skmnist.load(tmp_path / "absent.skmnist")


def test_the_weights_are_plain_npy_arrays(saved_pipeline, fitted_pipeline):
    # numpy reads them without pickle; Keras's .keras file is an export
    # (model_.save), not part of the format.
    members = _members(saved_pipeline)
    manifest = json.loads(members["manifest.json"])
    node = json.loads(members["estimator.json"])["steps"][1][1]
    assert manifest["format_version"] == 2
    assert not any(name.endswith((".keras", ".h5")) for name in members)
    stored = [
        np.load(io.BytesIO(members[name]), allow_pickle=False)
        for name in node["weights"]
    ]
    for array, name in zip(stored, node["weights"], strict=True):
        assert manifest["arrays"][name] == {
            "dtype": array.dtype.str,
            "shape": list(array.shape),
        }
    for ours, theirs in zip(stored, _variables(fitted_pipeline[-1]), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def _to_file(content: bytes, path):
    path.write_bytes(content)
    return path


# -- command line --------------------------------------------------------------


def _skmnist(*args):
    return subprocess.run(
        [sys.executable, "-m", "skmnist", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.backend_independent
@pytest.mark.mnist
@pytest.mark.slow
def test_cli_trains_to_the_safe_format_and_detects_it_by_content(
    mnist_path, tmp_path, run_cli
):
    # In this process (test_cli.py runs the command line in processes of its
    # own): what is tested is the format the command writes and detects.
    model = tmp_path / "model.skmnist"
    status, _, err = run_cli(
        "train", "--data", mnist_path, "--epochs", "1", "--hidden-units", "16",
        "--random-state", "0", "--output", model,
    )  # fmt: skip
    assert status == 0, err
    assert zipfile.is_zipfile(model)
    pipeline = skmnist.load(model)
    assert pipeline[-1].hidden_units == 16
    # The same file under a joblib name still loads: formats are told by content.
    renamed = tmp_path / "model.joblib"
    renamed.write_bytes(model.read_bytes())
    status, out, err = run_cli("evaluate", renamed, "--data", mnist_path)
    assert status == 0, err
    assert float(out.strip().splitlines()[-1].split()[1]) > 0.8


@pytest.mark.backend_independent
@pytest.mark.slow
def test_cli_refuses_a_damaged_model_in_one_line(saved_pipeline, tmp_path):
    path = tmp_path / "damaged.skmnist"
    path.write_bytes(saved_pipeline.read_bytes()[:1000])
    result = _skmnist("predict", str(path), "digit.png")
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("skmnist: error: ")
    assert "damaged or truncated" in last_line
    assert "Traceback" not in result.stderr


def test_cli_format_option_overrides_the_extension(tmp_path):
    from skmnist import _cli

    pipeline = make_mnist_pipeline()
    _cli._save_model(pipeline, tmp_path / "a.bin", "skmnist")
    _cli._save_model(pipeline, tmp_path / "b.skmnist", None)
    _cli._save_model(pipeline, tmp_path / "c.bin", None)  # the safe default
    _cli._save_model(pipeline, tmp_path / "d.joblib", None)
    _cli._save_model(pipeline, tmp_path / "e.bin", "joblib")
    for name in ("a.bin", "b.skmnist", "c.bin"):
        assert _persistence.is_skmnist_file(tmp_path / name)
    assert isinstance(joblib.load(tmp_path / "d.joblib"), Pipeline)
    assert isinstance(joblib.load(tmp_path / "e.bin"), Pipeline)
    for name in ("a.bin", "b.skmnist", "c.bin"):
        assert isinstance(_cli.load_model(str(tmp_path / name)), Pipeline)
    # The suffix chooses the format written, never consent to unpickle.
    for name in ("d.joblib", "e.bin"):
        with pytest.raises(_cli.CommandError, match="only with --trust"):
            _cli.load_model(str(tmp_path / name))
        assert isinstance(_cli.load_model(str(tmp_path / name), True), Pipeline)


@pytest.mark.parametrize("name", ["c.skmnist", "c.SKMNIST", "c.SkMnist"])
def test_cli_never_writes_a_pickle_under_the_safe_name(tmp_path, name):
    from skmnist import _cli

    with pytest.raises(_cli.CommandError, match="never a joblib pickle"):
        _cli._save_model(make_mnist_pipeline(), tmp_path / name, "joblib")
    _cli._save_model(make_mnist_pipeline(), tmp_path / name, None)
    assert _persistence.is_skmnist_file(tmp_path / name)


def test_classes_given_to_partial_fit_keep_their_order(digits_flat, tmp_path):
    X, y = digits_flat
    labels = np.array(["b", "a", "c"])[y[:150] % 3]
    clf = MNISTClassifier(**TINY).partial_fit(X[:150], labels, classes=["c", "a", "b"])
    skmnist.save(clf, tmp_path / "clf.skmnist")
    loaded = skmnist.load(tmp_path / "clf.skmnist")
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


# -- forged hyper-parameters and sizes -----------------------------------------
# Each file below has checksums recomputed, as a deliberate forger would, so only
# the checks on the content itself can refuse it.


def _forge(part, **changes):
    """An edit of the classifier's ``params`` or ``fitted`` part of the file."""

    def edit(members):
        _edit_json(
            members,
            "estimator.json",
            lambda d: d["steps"][1][1][part].update(changes),
        )
        _resign(members)

    return edit


def _forge_params(**changes):
    return _forge("params", **changes)


def _forge_fitted(**changes):
    return _forge("fitted", **changes)


_KERAS_FUNCTION = {"class_name": "function", "module": "builtins", "config": "relu"}


# A schedule as Keras serialises it, which only Keras's deserialiser would read.
_KERAS_SCHEDULE = {
    "module": "keras.optimizers.schedules",
    "class_name": "ExponentialDecay",
    "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9},
    "registered_name": None,
}
_FLOAT_WIDTHS = {"__ndarray__": {"dtype": "<f8", "shape": [2], "values": [16.0, 8.0]}}


def _forge_schedule(name="ExponentialDecay", **arguments):
    """A learning_rate_schedule as skmnist stores Keras's, with ``arguments``
    changed (None removes one)."""
    config = {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9}
    config.update(arguments)
    config = {key: value for key, value in config.items() if value is not None}
    return _forge_params(
        learning_rate_schedule={"keras_schedule": name, "config": config}
    )


def _without_fitted(name):
    def edit(members):
        _edit_json(
            members, "estimator.json", lambda d: d["steps"][1][1]["fitted"].pop(name)
        )
        _resign(members)

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (_forge_params(activation=_KERAS_FUNCTION), "'activation' must be the name"),
        (_forge_params(activation="keras.src>relu"), "'activation' must be the name"),
        (_forge_params(optimizer={"class_name": "Adam"}), "'optimizer' must be"),
        (_forge_params(loss=["mse"]), "'loss' must be the name"),
        (_forge_params(metrics=[_KERAS_FUNCTION]), "'metrics' must be None or"),
        (_forge_params(metrics="accuracy"), "'metrics' must be None or"),
        (_forge_params(callbacks=[]), "'callbacks' must be None"),
        (_forge_params(model="mnist_mlp"), "'model' must be None"),
        (_forge_params(build_fn={"class_name": "x"}), "'build_fn' must be None"),
        (_forge_params(run_eagerly="yes"), "'run_eagerly' must be a boolean"),
        (_forge_params(optimizer__beta_1=[_KERAS_FUNCTION]), "'optimizer__beta_1'"),
        (_forge_params(loss__reduction={"a": 1}), "'loss__reduction' must be"),
        (_forge_params(fit="not a method"), "invalid parameter name 'fit'"),
        (_forge_params(epochs=-3), "'epochs' parameter of MNISTClassifier"),
        (_forge_params(hidden_units=2.5), "'hidden_units' parameter"),
        (_forge_params(dropout=1.5), "'dropout' parameter"),
        (_forge_params(class_weight={"0": [1]}), "'class_weight' must map"),
        (_forge_params(validation_batch_size=0), "'validation_batch_size' must"),
        (_forge_fitted(_random_state="0"), "_random_state: expected int"),
        # The parameters of skmnist 0.2.
        (_forge_params(hidden_units=[16, 0]), r"hidden_units .*0 in \[16, 0\]"),
        (_forge_params(hidden_units=[]), "at least one hidden layer"),
        (_forge_params(hidden_units={"__tuple__": [16, True]}), r"True in \(16, Tr"),
        (_forge_params(hidden_units=_FLOAT_WIDTHS), r"16\.0 in array\(\[16\., 8"),
        (_forge_params(hidden_units=[[16]]), r"\[16\] in \[\[16\]\]"),
        (_forge_params(alpha="0.1"), "'alpha' must be a number"),
        (_forge_params(alpha=-1.0), "'alpha' parameter of MNISTClassifier"),
        (_forge_params(tol=[0.1]), "'tol' must be a number"),
        (_forge_params(early_stopping=1), "'early_stopping' must be a boolean"),
        (_forge_params(validation_fraction="0.1"), "'validation_fraction' must"),
        (_forge_params(validation_fraction=1.0), "'validation_fraction' parameter"),
        (_forge_params(n_iter_no_change=0), "'n_iter_no_change' must be a posit"),
        (_forge_params(validation_split=[0.1]), "'validation_split' must be a"),
        (_forge_params(learning_rate_schedule="cyclic"), "'learning_rate_schedule' p"),
        (
            _forge_params(learning_rate_schedule=_KERAS_SCHEDULE),
            "'learning_rate_schedule' must be 'constant', 'adaptive' or a Keras",
        ),
        (
            _forge_schedule("LearningRateSchedule"),
            "'LearningRateSchedule' is not one of Keras's learning rate schedules",
        ),
        (_forge_schedule("Lambda"), "'Lambda' is not one of Keras's"),
        (_forge_schedule(module="os"), "ExponentialDecay takes no argument 'module'"),
        (
            _forge_schedule(initial_learning_rate=_KERAS_FUNCTION),
            "argument 'initial_learning_rate' of ExponentialDecay must be a number",
        ),
        (
            _forge_schedule(decay_rate="0.9"),
            "argument 'decay_rate' of ExponentialDecay must be a number",
        ),
        (
            _forge_schedule(decay_steps=0),
            "invalid arguments of ExponentialDecay: Argument `decay_steps` must be",
        ),
        (_forge_schedule(decay_steps=None), "invalid arguments of ExponentialDecay"),
    ],
    ids=[
        "activation-dict",
        "activation-module-path",
        "optimizer-dict",
        "loss-list",
        "metrics-dicts",
        "metrics-str",
        "callbacks",
        "model",
        "build_fn",
        "run_eagerly",
        "routed-list",
        "routed-dict",
        "method-name",
        "negative-epochs",
        "float-hidden-units",
        "dropout-range",
        "class-weight",
        "validation-batch-size",
        "random-state",
        "hidden-units-zero",
        "hidden-units-empty",
        "hidden-units-bool",
        "hidden-units-floats",
        "hidden-units-nested",
        "alpha-str",
        "alpha-negative",
        "tol-list",
        "early-stopping-int",
        "validation-fraction-str",
        "validation-fraction-range",
        "n-iter-no-change",
        "validation-split-list",
        "schedule-name",
        "schedule-keras-config",
        "schedule-base-class",
        "schedule-unknown-class",
        "schedule-argument-name",
        "schedule-argument-dict",
        "schedule-argument-str",
        "schedule-keras-refuses",
        "schedule-missing-argument",
    ],
)
def test_forged_hyper_parameters_are_refused_before_keras_sees_them(
    saved_pipeline, tmp_path, monkeypatch, edit, message
):
    path = _tampered(saved_pipeline, edit, tmp_path / "forged.skmnist")

    def refuse(*args, **kwargs):
        raise AssertionError("a forged value reached Keras's deserialiser")

    monkeypatch.setattr(keras.saving, "deserialize_keras_object", refuse)
    monkeypatch.setattr(
        "keras.src.saving.serialization_lib.deserialize_keras_object", refuse
    )
    monkeypatch.setattr(MNISTClassifier, "_build_network", refuse)
    with pytest.raises(_persistence.ModelFileError, match=message):
        skmnist.load(path)


def _pipeline_memory(members):
    _edit_json(
        members, "estimator.json", lambda d: d["params"].update(memory="/tmp/cache")
    )
    _resign(members)


def _scaler_range(members):
    _edit_json(
        members,
        "estimator.json",
        lambda d: d["steps"][0][1]["params"].update(max_value=-1),
    )
    _resign(members)


@pytest.mark.parametrize(
    "edit, message",
    [
        (_pipeline_memory, "'memory' must be None"),
        (_scaler_range, "'max_value' parameter of PixelScaler"),
    ],
    ids=["pipeline-memory", "scaler-max-value"],
)
def test_forged_pipeline_and_scaler_parameters_are_refused(
    saved_pipeline, tmp_path, edit, message
):
    path = _tampered(saved_pipeline, edit, tmp_path / "forged.skmnist")
    with pytest.raises(_persistence.ModelFileError, match=message):
        skmnist.load(path)


def _forge_scaler(**changes):
    def edit(members):
        _edit_json(
            members,
            "estimator.json",
            lambda d: d["steps"][0][1]["fitted"].update(changes),
        )
        _resign(members)

    return edit


def _array(dtype, values):
    return {"__ndarray__": {"dtype": dtype, "shape": [len(values)], "values": values}}


@pytest.mark.parametrize(
    "edit, message",
    [
        (_forge_scaler(n_features_in_="64"), "n_features_in_ must be a positive"),
        (_forge_scaler(image_shape_="x"), "image_shape_ 'x' is not a shape"),
        (_forge_scaler(image_shape_={"__tuple__": [0, 0]}), "not a shape of 64 pixels"),
        (_forge_scaler(image_shape_={"__tuple__": [10**6] * 2}), "not a shape"),
        (_forge_scaler(feature_names_in_=_array("|O", ["a", 1])), "64 strings"),
        (_forge_fitted(target_type_="multilabel-indicator"), "target_type_"),
        (_forge_fitted(target_type_=[1]), "invalid target_type_"),
        (_forge_fitted(history_="x"), "history_ must map"),
        (_forge_fitted(history_={"loss": ["x"]}), "history_ must map"),
        # What fit reports since skmnist 0.2.
        (_forge_fitted(n_iter_="3"), "n_iter_ must be a non-negative integer"),
        (_forge_fitted(n_iter_=-1), "n_iter_ must be a non-negative integer"),
        (_forge_fitted(t_=1.5), "t_ must be None or a non-negative integer"),
        (_forge_fitted(_no_improvement_count=None), "_no_improvement_count must"),
        (_forge_fitted(loss_="nan"), "loss_ must be None or a number"),
        (_forge_fitted(loss_curve_=None), "loss_curve_ must be a list of numbers"),
        (_forge_fitted(loss_curve_=[1.0, True]), "loss_curve_ must be a list of"),
        (_forge_fitted(validation_scores_=0.5), "validation_scores_ must be None or"),
        (_forge_fitted(validation_loss_curve_=[[1.0]]), "validation_loss_curve_ mus"),
        (_forge_fitted(best_loss_=[1.0]), "best_loss_ must be None or a number"),
        (_forge_fitted(best_validation_score_=0.5), "must both be None"),
        (_without_fitted("n_iter_"), "attributes n_iter_ are missing beside "),
    ],
    ids=[
        "scaler-n-features-str",
        "scaler-shape-str",
        "scaler-shape-zero",
        "scaler-shape-huge",
        "scaler-feature-names",
        "target-type",
        "target-type-list",
        "history-str",
        "history-values",
        "n-iter-str",
        "n-iter-negative",
        "t-float",
        "no-improvement-none",
        "loss-str",
        "loss-curve-none",
        "loss-curve-bool",
        "validation-scores-number",
        "validation-loss-curve-nested",
        "best-loss-list",
        "best-validation-score-alone",
        "n-iter-missing",
    ],
)
def test_forged_fitted_attributes_are_refused(saved_pipeline, tmp_path, edit, message):
    # Each of these loaded before, into a model that predicted or failed later
    # with a message contradicting itself ("64 pixels, but fitted on 64").
    path = _tampered(saved_pipeline, edit, tmp_path / "forged.skmnist")
    with pytest.raises(_persistence.ModelFileError, match=message):
        skmnist.load(path)


def test_forged_unfitted_parameters_are_refused_too(tmp_path):
    path = tmp_path / "unfitted.skmnist"
    skmnist.save(MNISTClassifier(), path)
    members = _members(path)
    _edit_json(
        members, "estimator.json", lambda d: d["params"].update(metrics=[{"a": 1}])
    )
    _resign(members)
    _write_members(path, members)
    with pytest.raises(_persistence.ModelFileError, match="'metrics'"):
        skmnist.load(path)


@pytest.mark.parametrize(
    "edit",
    [
        _forge_params(hidden_units=10**8),
        _forge_fitted(n_features_in_=10**10),
        _forge_params(hidden_units={"__tuple__": [16, 10**8]}),
        _forge_params(hidden_units=[16, 2**31 - 1, 10]),
    ],
    ids=["hidden-units", "n-features", "deep", "deep-widest"],
)
def test_huge_networks_are_refused_before_they_are_allocated(
    saved_pipeline, tmp_path, monkeypatch, edit
):
    path = _tampered(saved_pipeline, edit, tmp_path / "huge.skmnist")

    def refuse(*args, **kwargs):
        raise AssertionError("the network was built")

    monkeypatch.setattr(MNISTClassifier, "_build_network", refuse)
    with pytest.raises(_persistence.ModelFileError, match="weight bytes, more than"):
        skmnist.load(path)


def test_oversized_members_are_refused_before_extraction(saved_pipeline, monkeypatch):
    monkeypatch.setattr(_archive, "_MAX_MEMBER_BYTES", 1000)
    monkeypatch.setattr(
        _archive, "read_npy", lambda *args: pytest.fail("the member was read")
    )
    with pytest.raises(_persistence.ModelFileError, match="too large"):
        skmnist.load(saved_pipeline)


def test_oversized_archives_are_refused(saved_pipeline, monkeypatch):
    monkeypatch.setattr(_archive, "_MAX_TOTAL_BYTES", 1000)
    with pytest.raises(_persistence.ModelFileError, match="too large"):
        skmnist.load(saved_pipeline)


def test_zip_bombs_are_refused_before_extraction(saved_pipeline, tmp_path, monkeypatch):
    members = _members(saved_pipeline)
    members["weights/0.npy"] = bytes(8 * 2**20)  # deflates a thousandfold
    _resign(members)
    path = tmp_path / "bomb.skmnist"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    monkeypatch.setattr(
        _archive, "read_npy", lambda *args: pytest.fail("the member was read")
    )
    with pytest.raises(_persistence.ModelFileError, match="expands"):
        skmnist.load(path)


@pytest.mark.parametrize("where", ["top", "params"])
def test_deeply_nested_json_is_refused(saved_pipeline, tmp_path, where):
    members = _members(saved_pipeline)
    depth = 100_000
    if where == "top":
        members["estimator.json"] = b"[" * depth + b"]" * depth
    else:
        document = json.loads(members["estimator.json"])
        nested = "N"
        text = json.dumps(document).replace(
            '"hidden_units": 16',
            '"optimizer__x": '
            + '{"__tuple__": [' * 5000
            + json.dumps(nested)
            + "]}" * 5000,
        )
        members["estimator.json"] = text.encode()
    _resign(members)
    path = tmp_path / "deep.skmnist"
    _write_members(path, members)
    with pytest.raises(_persistence.ModelFileError, match="nested too deeply"):
        skmnist.load(path)


def test_save_never_replaces_a_device_or_pipe(tmp_path):
    # os.replace would swap the pipe (or, as root, /dev/null) for a model file.
    pipe = tmp_path / "pipe.skmnist"
    os.mkfifo(pipe)
    with pytest.raises(ValueError, match="not a regular file"):
        skmnist.save(skmnist.PixelScaler(), pipe)
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    assert [path.name for path in tmp_path.iterdir()] == ["pipe.skmnist"]


def test_saved_files_get_the_default_permissions(fitted_pipeline, tmp_path):
    # write_atomically's own test is in test_files.py.
    mask = os.umask(0o027)
    try:
        skmnist.save(fitted_pipeline, tmp_path / "a.skmnist")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.skmnist").stat().st_mode & 0o777 == 0o640


# -- declared sizes (issue 12, item 2) -----------------------------------------


def _forge_scaler_array(dtype, shape, values):
    def edit(members):
        _edit_json(
            members,
            "estimator.json",
            lambda d: d["steps"][0][1]["fitted"].update(
                feature_names_in_={
                    "__ndarray__": {"dtype": dtype, "shape": shape, "values": values}
                }
            ),
        )
        _resign(members)

    return edit


@pytest.mark.parametrize(
    "dtype, shape, values, message",
    [
        ("<U500000", [10], ["a"] * 10, "declared as <U500000"),
        # (Over all the arrays a description may declare together: refused
        # by that count first.)
        ("<U500000000", [100], ["a"] * 100, "declares arrays of 200000000"),
        ("<f8", [10**6], [0.5], "declared with 1 values"),
        ("<U5", [-1], [], "invalid array shape"),
        ([["name", "<U500000000"]], [2], ["a", "b"], "unsupported array dtype"),
        ("(100000000,)f8", [1], [0.5], "unsupported array dtype"),
    ],
    ids=["wide-strings", "huge-strings", "shape-count", "negative-shape", "struct",
         "subarray"],
)  # fmt: skip
def test_declared_array_sizes_are_checked_before_allocation(
    saved_pipeline, tmp_path, dtype, shape, values, message
):
    forge = _forge_scaler_array(dtype, shape, values)
    path = _tampered(saved_pipeline, forge, tmp_path / "forged.skmnist")
    assert path.stat().st_size < 2**20  # a tiny file
    _assert_refused_in_little_memory(path, message)


def _assert_refused_in_little_memory(path, message, limit=64 * 2**20):
    """``skmnist.load(path)`` refused with ``message``, in one line naming the
    file, having allocated less than ``limit`` bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(_persistence.ModelFileError, match=message) as refused:
            skmnist.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # NumPy, zipfile and json report their allocations to tracemalloc: nothing
    # near the declared size (hundreds of megabytes and more) was allocated.
    assert peak < limit, f"{peak} bytes allocated"
    text = str(refused.value)
    assert text.startswith(str(path)) and "\n" not in text, text


def test_honest_wide_string_arrays_still_load(tmp_path, digits_flat):
    X, _ = digits_flat
    # Names genuinely 5000 characters long: 64 x 20 kB of storage, more than
    # what is allocated unchecked.
    frame = pytest.importorskip("pandas").DataFrame(
        X[:100], columns=[f"pixel {i:04d} " + "x" * 4989 for i in range(X.shape[1])]
    )
    scaler = PixelScaler(max_value=1).fit(frame)
    skmnist.save(scaler, tmp_path / "s.skmnist")
    loaded = skmnist.load(tmp_path / "s.skmnist")
    np.testing.assert_array_equal(loaded.feature_names_in_, scaler.feature_names_in_)


# -- what save writes, load reads (issue 12, item 3) ---------------------------


def test_save_refuses_what_load_would_refuse(tmp_path):
    pipeline = make_mnist_pipeline().set_params(memory=str(tmp_path / "cache_dir"))
    with pytest.raises(ValueError, match="'memory' must be None") as info:
        skmnist.save(pipeline, tmp_path / "m.skmnist")
    assert "skmnist.load would refuse" in str(info.value)
    assert not (tmp_path / "m.skmnist").exists()


def test_save_runs_the_loaders_checks(tmp_path, monkeypatch):
    seen = []
    original = _registry._params

    def spy(node, kind, where):
        seen.append(kind)
        return original(node, kind, where)

    monkeypatch.setattr(_registry, "_params", spy)
    skmnist.save(make_mnist_pipeline(), tmp_path / "m.skmnist")
    assert seen == ["PixelScaler", "MNISTClassifier", "Pipeline"]


def test_a_network_changed_after_fit_saves_what_loads(fitted_pipeline, data, tmp_path):
    images, _ = data
    changed = joblib.load(_to_joblib(fitted_pipeline, tmp_path / "copy.joblib"))
    changed.set_params(clf__hidden_units=32)
    path = tmp_path / "changed.skmnist"
    try:
        skmnist.save(changed, path)
    except ValueError as error:
        assert "hidden_units changed after fit" in str(error)
        assert not path.exists()
    else:  # once the classifier keeps its fitted architecture
        np.testing.assert_array_equal(
            skmnist.load(path).predict_proba(images),
            fitted_pipeline.predict_proba(images),
        )


@pytest.mark.parametrize(
    "fitted_with, changed_to",
    [
        ({}, {"optimizer": "adam"}),  # more optimizer variables than RMSprop's
        ({}, {"optimizer": "sgd", "optimizer__momentum": 0.9}),  # as many
        ({"optimizer": "sgd"}, {"optimizer__momentum": 0.9}),  # momentum slots
    ],
    ids=["rmsprop-to-adam", "rmsprop-to-sgd-momentum", "sgd-gains-momentum"],
)
@pytest.mark.slow
def test_an_optimizer_changed_after_fit_saves_what_loads(
    digits_flat, tmp_path, fitted_with, changed_to
):
    X, y = digits_flat
    X, y = X[:120], y[:120]
    clf = MNISTClassifier(**{**TINY, **fitted_with}).fit(X, y)
    clf.set_params(**changed_to)
    path = tmp_path / "changed.skmnist"
    # Refused when saving, not when loading the file later (or, loaded with
    # one optimizer's state in another, training on differently).
    with pytest.raises(ValueError, match="optimizer changed after fit"):
        skmnist.save(clf, path)
    assert not path.exists()
    # As the message says: training once more switches the optimizer.
    clf.set_params(warm_start=True).fit(X, y)
    skmnist.save(clf, path)
    loaded = skmnist.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    loaded.fit(X, y)
    clf.fit(X, y)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def _to_joblib(estimator, path):
    joblib.dump(estimator, path)
    return path


# -- weights without HDF5 (issue 13, item 2) ------------------------------------
# The weights are .npy members: header and values checked against the manifest
# before anything is allocated, never unpickled. Each file is re-signed.

# weights/0.npy of saved_pipeline: the hidden layer's kernel, 64 x 16 float32.
_KERNEL = "weights/0.npy"


def _npy(descr, shape, data: bytes) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": descr, "fortran_order": False, "shape": tuple(shape)}
    )
    return header.getvalue() + data


def _forge_weights(content=None, declared=None, names=None):
    """Replace the kernel's member, its manifest entry or the classifier's list
    of weight members, then re-sign. Members no longer named are removed, as a
    forger would to get past the check of arrays that no estimator uses."""

    def edit(members):
        if content is not None:
            members[_KERNEL] = content
        if declared is not None:
            _edit_json(
                members,
                "manifest.json",
                lambda manifest: manifest["arrays"].update({_KERNEL: declared}),
            )
        if names is not None:
            node = json.loads(members["estimator.json"])["steps"][1][1]
            named = names(node)
            _edit_json(
                members,
                "estimator.json",
                lambda d: d["steps"][1][1].update(weights=named),
            )
            for name in set(node["weights"]) - set(named):
                _remove_member(members, name)
        _resign(members)

    return edit


def _remove_member(members: dict, name: str) -> None:
    """Remove a weights member, and its entries in the manifest."""
    del members[name]

    def remove(manifest):
        del manifest["arrays"][name], manifest["sha256"][name]

    _edit_json(members, "manifest.json", remove)


def _huge_kernel_of_a_huge_network(members):
    _forge_params(hidden_units=100_000)(members)
    _forge_weights(
        _npy("<f4", (100_000, 1000), bytes(100)),
        declared={"dtype": "<f4", "shape": [100_000, 1000]},
    )(members)


_F4_KERNEL = bytes(64 * 16 * 4)
_F8_KERNEL = _npy("<f8", (64, 16), bytes(64 * 16 * 8))
_PICKLED = pickle.dumps(np.array([_Payload()], dtype=object))


@pytest.mark.parametrize(
    "edit, message",
    [
        # The header says another dtype than the manifest.
        (_forge_weights(_F8_KERNEL), "stored as float64"),
        # Both say float64: refused against the network's float32.
        (
            _forge_weights(_F8_KERNEL, declared={"dtype": "<f8", "shape": [64, 16]}),
            "do not fit the network.*dtype float64",
        ),
        # Pickled objects, declared as such or hidden behind a float manifest.
        (
            _forge_weights(
                _npy("|O", (1,), _PICKLED), declared={"dtype": "|O", "shape": [1]}
            ),
            "unsupported weights dtype '|O'",
        ),
        (_forge_weights(_npy("|O", (64, 16), _PICKLED)), "stored as object"),
        (
            _forge_weights(declared={"dtype": [["a", "<f4"]], "shape": [64, 16]}),
            "unsupported weights dtype",
        ),
        # Shapes and counts.
        (_forge_weights(_npy("<f4", (16, 64), _F4_KERNEL)), r"has shape \(16, 64\)"),
        (
            _forge_weights(
                _npy("<f4", (16, 64), _F4_KERNEL),
                declared={"dtype": "<f4", "shape": [16, 64]},
            ),
            r"do not fit the network.*shape \(16, 64\)",
        ),
        (_forge_weights(names=lambda node: node["weights"][:-1]), "10 weight arrays"),
        (_forge_weights(names=lambda node: []), "weight bytes, more than the 0 bytes"),
        (_forge_weights(names=lambda node: ["weights/99.npy"]), "missing weights"),
        (
            _forge_weights(declared={"dtype": "<f4", "shape": [-64, 16]}),
            "invalid array shape",
        ),
        # Huge declared shapes in a tiny file: refused before allocation, as
        # more than the network holds, or, for a network that large, as more
        # than the member holds.
        (
            _forge_weights(
                _npy("<f4", (100_000, 1000), bytes(100)),
                declared={"dtype": "<f4", "shape": [100_000, 1000]},
            ),
            # The total counts the random states' few bytes, which differ
            # by backend.
            r"weights of 4000056\d\d bytes, more than a network of its hyper-par",
        ),
        (
            _huge_kernel_of_a_huge_network,
            "needs 400000000 bytes, but the member holds 100",
        ),
        (
            _forge_weights(
                _npy("<f4", (10**6, 10**6), bytes(100)),
                declared={"dtype": "<f4", "shape": [10**6, 10**6]},
            ),
            "too large",
        ),
        # Truncated values, and a header with no values at all.
        (
            _forge_weights(_npy("<f4", (64, 16), _F4_KERNEL[:-100])),
            "needs 4096 bytes, but the member holds 3996",
        ),
        (_forge_weights(b"\x93NUMPY\x01\x00"), "not a .npy array"),
        (_forge_weights(b"\x93NUMPY\x01\x00\x10\x00{'descr': "), "invalid .npy header"),
    ],
    ids=[
        "header-dtype", "declared-dtype", "object-declared", "object-hidden",
        "structured", "header-shape", "declared-shape", "count", "no-weights",
        "missing-member", "negative-shape", "huge-shape", "huge-shape-huge-network",
        "huger-shape", "truncated", "magic-only", "broken-header",
    ],
)  # fmt: skip
def test_forged_weights_are_refused_before_allocation(
    saved_pipeline, tmp_path, monkeypatch, edit, message
):
    def refuse(*args, **kwargs):
        raise AssertionError("skmnist.load must not unpickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.chdir(tmp_path)  # where the pickled payload would mkdir
    path = _tampered(saved_pipeline, edit, tmp_path / "forged.skmnist")
    assert path.stat().st_size < 2**20  # a tiny file
    _assert_refused_in_little_memory(path, message)
    assert not (tmp_path / "pwned").exists()


def test_every_weight_member_must_be_declared(saved_pipeline, tmp_path):
    members = _members(saved_pipeline)
    _edit_json(members, "manifest.json", lambda m: m["arrays"].pop(_KERNEL))
    _write_members(tmp_path / "undeclared.skmnist", members)
    with pytest.raises(_persistence.ModelFileError, match="do not match its manifest"):
        skmnist.load(tmp_path / "undeclared.skmnist")


def _unused_array(members):
    members["weights/99.npy"] = _npy("<f4", (4,), bytes(16))
    _edit_json(
        members,
        "manifest.json",
        lambda m: m["arrays"].update(
            {"weights/99.npy": {"dtype": "<f4", "shape": [4]}}
        ),
    )
    _resign(members)


def _kernel_twice(members):
    # weights/6.npy, RMSprop's slot for the kernel, has the kernel's shape: only
    # naming the same member twice gives it away.
    _forge_weights(
        names=lambda node: [
            _KERNEL if name == "weights/6.npy" else name for name in node["weights"]
        ]
    )(members)


def _scaler_with_weights(members):
    # Loaded before, the list ignored: nothing may name weights it does not use.
    _edit_json(members, "estimator.json", lambda d: d["steps"][0][1].update(weights=[]))
    _resign(members)


@pytest.mark.parametrize(
    "edit, message",
    [
        (_unused_array, r"arrays that no estimator uses: \['weights/99.npy'\]"),
        (_kernel_twice, "the same weights named twice"),
        (_scaler_with_weights, "a PixelScaler has no weights, but the file lists"),
        (
            _forge_weights(
                _npy("<f4", (10**30, 0), b""),
                declared={"dtype": "<f4", "shape": [10**30, 0]},
            ),
            r"invalid array shape \(10+, 0\)",
        ),
    ],
    ids=["unused-array", "named-twice", "scaler-with-weights", "empty-with-huge-size"],
)  # fmt: skip
def test_every_array_is_used_once_and_sized_sanely(
    saved_pipeline, tmp_path, edit, message
):
    path = _tampered(saved_pipeline, edit, tmp_path / "forged.skmnist")
    with pytest.raises(_persistence.ModelFileError, match=message):
        skmnist.load(path)


def _fortran_kernel(members):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": True, "shape": (64, 16)}
    )
    _forge_weights(header.getvalue() + _F4_KERNEL)(members)


def _long_header(members):
    # NumPy refuses headers over 10,000 bytes, with a message of several lines.
    content = members[_KERNEL]
    size = int.from_bytes(content[8:10], "little")
    header = content[10 : 10 + size].rstrip(b"\n") + b" " * 60_000 + b"\n"
    members[_KERNEL] = content[:8] + len(header).to_bytes(2, "little") + header
    members[_KERNEL] += content[10 + size :]
    _resign(members)


@pytest.mark.parametrize(
    "edit, message",
    [
        (_fortran_kernel, "weights/0.npy: the array is stored in Fortran order"),
        (_long_header, "weights/0.npy: invalid .npy header: Header info length"),
        (_forge_weights(_npy("<f8", (64, 16), bytes(8192))), "stored as float64"),
    ],
    ids=["fortran-order", "long-header", "header-dtype"],
)
def test_refused_weights_are_named_with_their_file_in_one_line(
    saved_pipeline, tmp_path, edit, message
):
    path = _tampered(saved_pipeline, edit, tmp_path / "forged.skmnist")
    with pytest.raises(_persistence.ModelFileError) as refused:
        skmnist.load(path)
    text = str(refused.value)
    assert text.startswith(f"{path}: {_KERNEL}: "), text
    assert message in text
    assert "\n" not in text


def test_a_folder_is_not_a_model_file(tmp_path):
    folder = tmp_path / "model.skmnist"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder, not an skmnist model"):
        skmnist.load(folder)


# -- every declared size checked before inflating ---------------------------------
# Crafted files of tens of megabytes that made skmnist.load inflate, read or
# parse far more (gigabytes) before refusing them: each is refused from the zip
# directory, manifest.json and estimator.json alone, reading no weights.


def _add_array(members: dict, name: str, values: bytes) -> None:
    """Add a float32 weights member of ``values``, declared in the manifest."""
    shape = [len(values) // 4]
    members[name] = _npy("<f4", shape, values)
    _edit_json(
        members,
        "manifest.json",
        lambda m: m["arrays"].update({name: {"dtype": "<f4", "shape": shape}}),
    )


def _deflating_40_fold(size: int) -> bytes:
    """``size`` bytes that deflate about 40-fold: under the ratio limit."""
    values = np.zeros(size, np.uint8)
    values[::104] = np.random.RandomState(0).randint(0, 256, len(values[::104]))
    return values.tobytes()


def _unused_deflated(members):
    # The attacker's probe: two unused members at about 40:1 took 4.0 GB.
    for name in ("weights/98.npy", "weights/99.npy"):
        _add_array(members, name, _deflating_40_fold(30 * 2**20))
    return ("weights/98.npy", "weights/99.npy")


def _unused_stored(members):
    _add_array(members, "weights/99.npy", bytes(24 * 2**20))
    return ()


def _deflated_kernel(members):
    return (_KERNEL,)


def _larger_than_the_network(members):
    # RMSprop's slot for the kernel, as large as a kernel of 24,576 hidden units.
    name = "weights/6.npy"
    del members[name]
    _add_array(members, name, bytes(64 * 24_576 * 4))
    return ()


@pytest.mark.parametrize(
    "craft, message",
    [
        (_unused_deflated, r"weights/98\.npy is compressed, but skmnist stores"),
        (_unused_stored, r"arrays that no estimator uses: \['weights/99\.npy'\]"),
        (_deflated_kernel, r"weights/0\.npy is compressed, but skmnist stores"),
        (
            _larger_than_the_network,
            r"step 'clf': weights of \d+ bytes, more than a network of its "
            r"hyper-parameters holds with its optimizer's state \(at most 78144\)",
        ),
    ],
    ids=["unused-deflated", "unused-stored", "deflated-weights", "larger-than-network"],
)
def test_weights_are_refused_from_the_directory_and_estimator_json(
    saved_pipeline, tmp_path, monkeypatch, craft, message
):
    members = _members(saved_pipeline)
    deflated = craft(members)
    _resign(members)
    path = tmp_path / "crafted.skmnist"
    _write_members(path, members, deflated)
    with zipfile.ZipFile(path) as archive:  # all within the ratio limit
        assert all(
            info.file_size <= _archive._MAX_COMPRESSION_RATIO * info.compress_size
            for info in archive.infolist()
        )
    monkeypatch.setattr(
        _archive, "read_npy", lambda *args: pytest.fail("weights were read")
    )
    _assert_refused_in_little_memory(path, message, limit=4 * 2**20)


def _many_members(count: int, name_length: int = 1, comment: bytes = b""):
    def write(path):
        with zipfile.ZipFile(path, "w") as archive:
            archive.comment = comment
            for index in range(count):
                archive.writestr(f"{index:0{name_length}d}", b"")

    return write


@pytest.mark.parametrize(
    "write, message",
    [
        (_many_members(5000), "its zip directory lists 5000 members, far more"),
        # Over 65,535 members: ZIP64 end records, whose counts zipfile reads.
        (_many_members(70_000), "its zip directory lists 70000 members"),
        # The end record found behind an archive comment, as zipfile finds it.
        (_many_members(5000, comment=b"#" * 60_000), "lists 5000 members"),
        # Few members, but of long names.
        (_many_members(500, name_length=2500), r"its zip directory is \d+ bytes"),
    ],
    ids=["many", "zip64", "comment", "long-names"],
)
@pytest.mark.slow
def test_zip_directories_are_refused_before_zipfile_reads_them(
    tmp_path, monkeypatch, write, message
):
    # zipfile reads a directory whole and makes an object of each entry: a
    # million empty entries took 480 MB and 6 s.
    path = tmp_path / "many.skmnist"
    write(path)
    monkeypatch.setattr(
        zipfile, "ZipFile", lambda *args: pytest.fail("zipfile read the directory")
    )
    _assert_refused_in_little_memory(path, message, limit=2**20)


@pytest.mark.parametrize("limit", [None, 0], ids=["default-limit", "no-limit"])
@pytest.mark.parametrize(
    "member, field",
    [("estimator.json", '"hidden_units": '), ("manifest.json", '"format_version": ')],
    ids=["estimator", "manifest"],
)
def test_numbers_too_long_are_refused_naming_the_member(
    saved_pipeline, tmp_path, member, field, limit
):
    # json.loads raised a plain ValueError telling the user to call
    # sys.set_int_max_str_digits; where an application did, the 4 million
    # digits a JSON member may hold took a minute to convert.
    members = _members(saved_pipeline)
    text = members[member].decode()
    assert field in text
    members[member] = re.sub(f"{field}[0-9]+", field + "9" * 5000, text).encode()
    if member != "manifest.json":
        _resign(members)
    path = tmp_path / "long.skmnist"
    _write_members(path, members)
    previous = sys.get_int_max_str_digits()
    try:
        if limit is not None:
            sys.set_int_max_str_digits(limit)
        with pytest.raises(_persistence.ModelFileError) as refused:
            skmnist.load(path)
    finally:
        sys.set_int_max_str_digits(previous)
    assert str(refused.value) == (
        f"{path}: {member} holds a number too long to be one skmnist wrote."
    )


@pytest.mark.parametrize("member", ["manifest.json", "estimator.json", _KERNEL])
def test_members_beyond_the_end_of_the_file_are_refused(
    saved_pipeline, tmp_path, member
):
    # zipfile asks the file for a member's compressed size at once, and Python
    # allocated that much (1 GiB here) to read the few bytes there are.
    data = bytearray(saved_pipeline.read_bytes())
    entry = data.find(b"PK\x01\x02")  # the directory's entries
    while data[entry + 46 : entry + 46 + len(member)] != member.encode():
        entry = data.index(b"PK\x01\x02", entry + 4)
    struct.pack_into("<I", data, entry + 20, 1_500_000_000)  # compressed size
    path = tmp_path / "beyond.skmnist"
    path.write_bytes(bytes(data))
    _assert_refused_in_little_memory(
        path,
        f"damaged or truncated .*: {member} ends beyond the end of the file",
        limit=2**20,
    )


def test_json_members_are_refused_before_they_are_parsed(saved_pipeline, tmp_path):
    # json.loads makes a 64-byte dict of each "{}, " : 4.8 MB parsed into
    # 0.1 GB (64 MiB, the limit before, into 1.5 GB).
    edit = _forge_params(optimizer__x=[{}] * 1_200_000)
    path = _tampered(saved_pipeline, edit, tmp_path / "long.skmnist")
    _assert_refused_in_little_memory(
        path,
        r"estimator\.json is too large for an skmnist model file \(\d+ bytes, at "
        r"most 4194304\)",
        limit=2**20,
    )


def test_save_refuses_a_description_too_long_to_load(
    fitted_pipeline, tmp_path, monkeypatch
):
    monkeypatch.setattr(_archive, "_MAX_JSON_BYTES", 1000)
    with pytest.raises(ValueError, match=r"more than skmnist\.load reads"):
        skmnist.save(fitted_pipeline, tmp_path / "long.skmnist")
    assert list(tmp_path.iterdir()) == []


# -- round trips of every kind of classifier (issue 13, item 2) -----------------


@pytest.mark.parametrize(
    "params, labels",
    [
        ({"loss": "binary_crossentropy"}, np.array(["no", "yes"])),
        ({"loss": "categorical_crossentropy"}, np.arange(3)),
        ({"dropout": 0.3, "optimizer": "adam"}, np.arange(4)),
    ],
    ids=["binary-sigmoid", "one-hot", "dropout-adam"],
)
def test_round_trips_continue_training_exactly(params, labels, digits_flat, tmp_path):
    X, y = digits_flat
    X, y = X[:200], labels[y[:200] % len(labels)]
    original = MNISTClassifier(**{**TINY, **params}).fit(X, y)
    skmnist.save(original, tmp_path / "clf.skmnist")
    loaded = skmnist.load(tmp_path / "clf.skmnist")
    _assert_same_fitted_classifier(loaded, original)
    np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))
    for clf in (original, loaded):  # warm_start, then partial_fit
        clf.set_params(warm_start=True).fit(X, y)
        clf.partial_fit(X, y)
    _assert_same_fitted_classifier(loaded, original)
    np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))


# -- DigitImagePreprocessor ------------------------------------------------------


@pytest.fixture(scope="module")
def photos(digits):
    """Digit images on 0..240, as DigitImagePreprocessor takes any."""
    images, labels = digits
    return images[:120] * 15, labels[:120]


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_pipeline(
            DigitImagePreprocessor(), PixelScaler(), MNISTClassifier(**TINY)
        ),
        # In front of a pipeline, as examples/plot_own_digits.py puts it.
        lambda: Pipeline(
            [("prep", DigitImagePreprocessor()), ("mnist", make_mnist_pipeline(**TINY))]
        ),
    ],
    ids=["make_pipeline", "in-front-of-a-pipeline"],
)
@pytest.mark.slow
def test_pipelines_with_the_image_preprocessor_round_trip(make, photos, tmp_path):
    images, labels = photos
    pipeline = make().fit(images, labels)
    skmnist.save(pipeline, tmp_path / "photos.skmnist")
    loaded = skmnist.load(tmp_path / "photos.skmnist")
    assert [name for name, _ in loaded.steps] == [name for name, _ in pipeline.steps]
    assert type(loaded[0]) is DigitImagePreprocessor
    np.testing.assert_array_equal(
        loaded.predict_proba(images), pipeline.predict_proba(images)
    )
    np.testing.assert_array_equal(loaded.predict(images), pipeline.predict(images))


def test_the_image_preprocessor_takes_no_parameters_from_a_file(photos, tmp_path):
    path = tmp_path / "prep.skmnist"
    skmnist.save(DigitImagePreprocessor(), path)
    images, _ = photos
    np.testing.assert_array_equal(
        skmnist.load(path).transform(images),
        DigitImagePreprocessor().transform(images),
    )
    members = _members(path)
    _edit_json(members, "estimator.json", lambda d: d["params"].update(size=10**9))
    _resign(members)
    _write_members(path, members)
    with pytest.raises(
        _persistence.ModelFileError, match=r"unknown parameters \['size'\]"
    ):
        skmnist.load(path)


# -- files of format version 1 (a Keras .keras member) --------------------------

_VERSION_1 = os.path.join(os.path.dirname(__file__), "data", "format_version_1.skmnist")


def _as_version_1(estimator, path):
    """Write ``estimator`` as skmnist 0.1's format version 1 wrote it: weights in
    a Keras .keras member, dropout's seed state as JSON beside it."""
    from skmnist._persistence import _codec

    arrays = {}
    document = _registry.describe(estimator, arrays, where="estimator")
    members = {}
    nodes = [document, *(step for _, step in document.get("steps", []))]
    for node in nodes:
        names = node.pop("weights", None)
        if names is None:
            continue
        clf = estimator[-1] if "steps" in document else estimator
        member = f"models/{len(members)}.keras"
        keras_file = path.with_suffix(".keras")
        keras.saving.save_model(clf.model_, keras_file)
        members[member] = keras_file.read_bytes()
        keras_file.unlink()
        node["model"] = {
            "member": member,
            "non_trainable_variables": [
                _codec.array_to_json(np.asarray(variable.value), "state")
                for variable in clf.model_.non_trainable_variables
            ],
        }
    members["estimator.json"] = json.dumps(document).encode()
    manifest = {"format": "skmnist", "format_version": 1, "sha256": {}}
    manifest.update(
        skmnist_version=skmnist.__version__, keras_version=keras.__version__
    )
    members["manifest.json"] = json.dumps(manifest).encode()
    _resign(members)
    _write_members(path, members)
    return path


def test_version_1_files_load_only_when_trusted(tmp_path, monkeypatch):
    # Written by skmnist before format version 2 (git show dbca199).
    def refuse(*args, **kwargs):
        raise AssertionError("an untrusted .keras member was extracted or read")

    with monkeypatch.context() as patch:
        patch.setattr(h5py, "File", refuse)
        patch.setattr(keras.Model, "load_weights", refuse)
        with pytest.raises(_persistence.UntrustedFileError) as error:
            skmnist.load(_VERSION_1)
    message = str(error.value)
    assert "format version 1" in message and "HDF5" in message
    assert "skmnist.load(path, trusted=True)" in message
    loaded = skmnist.load(_VERSION_1, trusted=True)
    images = np.random.RandomState(1).randint(0, 256, (20, 28, 28), dtype=np.uint8)
    # The same weights Keras itself reads from the member.
    network = keras.saving.load_model(
        _to_file(_members(_VERSION_1)["models/0.keras"], tmp_path / "m.keras")
    )
    expected = network.predict(loaded[0].transform(images), verbose=0)
    np.testing.assert_allclose(loaded.predict_proba(images), expected, rtol=1e-5)
    # Saved again, it is a version 2 file that loads without trust.
    skmnist.save(loaded, tmp_path / "converted.skmnist")
    converted = skmnist.load(tmp_path / "converted.skmnist")
    np.testing.assert_array_equal(
        converted.predict_proba(images), loaded.predict_proba(images)
    )


def test_trusted_version_1_files_round_trip_exactly(data, tmp_path):
    images, labels = data
    original = make_mnist_pipeline(dropout=0.2, **TINY).fit(images, labels)
    path = _as_version_1(original, tmp_path / "v1.skmnist")
    with pytest.raises(_persistence.UntrustedFileError):
        skmnist.load(path)
    loaded = skmnist.load(path, trusted=True)
    _assert_same_fitted_classifier(loaded[-1], original[-1])
    X = original[0].transform(images)
    for pipeline in (original, loaded):  # dropout's seed state was stored too
        pipeline[-1].partial_fit(X, labels)
    np.testing.assert_array_equal(
        loaded.predict_proba(images), original.predict_proba(images)
    )


def test_unfitted_version_1_files_need_no_trust(tmp_path):
    path = _as_version_1(make_mnist_pipeline(hidden_units=32), tmp_path / "v1.skmnist")
    assert skmnist.load(path).get_params()["clf__hidden_units"] == 32


@pytest.mark.slow
def test_files_load_under_the_other_backend(fitted_pipeline, saved_pipeline, data):
    # Weights are plain arrays: a file saved under TensorFlow loads under JAX
    # and back (their integer counters differ: int64, int32 and uint32).
    pytest.importorskip("jax", reason="the JAX backend needs skmnist[jax]")
    images, labels = data
    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    folder = saved_pipeline.parent
    script = (
        "import sys, numpy as np, skmnist\n"
        "images, labels = np.load(sys.argv[2]), np.load(sys.argv[3])\n"
        "loaded = skmnist.load(sys.argv[1])\n"
        "np.save(sys.argv[4], loaded.predict_proba(images))\n"
        "loaded[-1].partial_fit(loaded[0].transform(images), labels)\n"
        "skmnist.save(loaded, sys.argv[5])\n"
    )
    np.save(folder / "images.npy", images)
    np.save(folder / "labels.npy", labels)
    subprocess.run(
        [sys.executable, "-c", script, str(saved_pipeline), str(folder / "images.npy"),
         str(folder / "labels.npy"), str(folder / "proba.npy"),
         str(folder / "back.skmnist")],
        env={**os.environ, "KERAS_BACKEND": other}, check=True, timeout=300,
        capture_output=True,
    )  # fmt: skip
    expected = fitted_pipeline.predict_proba(images)
    # The backends' float32 kernels round differently, in the last bits only.
    np.testing.assert_allclose(np.load(folder / "proba.npy"), expected, atol=1e-6)
    back = skmnist.load(folder / "back.skmnist")
    assert len(back[-1].history_["loss"]) == 2
    assert back.predict_proba(images).shape == expected.shape


# -- a second probe: compressed JSON, zip features, shared bytes, hash floods ----


@pytest.mark.slow
def test_a_deflated_json_member_is_inflated_no_further_than_declared(
    saved_pipeline, tmp_path
):
    """manifest.json's directory entry declares its true size, but its deflated
    stream goes on to 200 MB of zeros: zipfile inflated all of it in one call
    (a 1.6 MB file took the loader to 2.8 GB). Read up to the declared size,
    the member is the genuine manifest and the file loads."""
    members = _members(saved_pipeline)
    manifest = members.pop("manifest.json")
    path = tmp_path / "bomb.skmnist"
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = compressor.compress(manifest)
    for _ in range(200):
        stream += compressor.compress(bytes(2**20))
    stream += compressor.flush()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content, zipfile.ZIP_STORED)
        info = zipfile.ZipInfo("manifest.json")
        info.compress_type = zipfile.ZIP_DEFLATED
        # The genuine entry, deflated as below; then its data is swapped.
        archive.writestr(info, manifest, compresslevel=9)
    data = path.read_bytes()
    genuine = zlib.compressobj(9, zlib.DEFLATED, -15)
    genuine = genuine.compress(manifest) + genuine.flush()
    at = data.rindex(genuine)
    # Same size, CRC and name in both headers; only the compressed size grows.
    forged = bytearray(data[:at] + stream + data[at + len(genuine) :])
    grown = len(stream) - len(genuine)
    local = data.rindex(b"PK\x03\x04", 0, at)
    struct.pack_into("<I", forged, local + 18, len(stream))
    central = forged.rindex(b"PK\x01\x02")
    struct.pack_into("<I", forged, central + 20, len(stream))
    end = forged.rindex(b"PK\x05\x06")
    (directory,) = struct.unpack_from("<I", forged, end + 16)
    struct.pack_into("<I", forged, end + 16, directory + grown)
    path.write_bytes(bytes(forged))
    assert path.stat().st_size < 2 * 2**20
    tracemalloc.start()
    try:
        loaded = skmnist.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(loaded, Pipeline)
    assert peak < 64 * 2**20, peak


@pytest.mark.parametrize(
    "flag_bits, method, message",
    [
        (0x1, zipfile.ZIP_STORED, "manifest.json is encrypted or patched"),
        (0x20, zipfile.ZIP_STORED, "manifest.json is encrypted or patched"),
        (0, zipfile.ZIP_BZIP2, "manifest.json is compressed with method 12"),
        (0, 99, "manifest.json is compressed with method 99"),
    ],
    ids=["encrypted", "patched", "bzip2", "unknown-method"],
)
def test_zip_features_zipfile_cannot_bound_are_model_file_errors(
    saved_pipeline, tmp_path, flag_bits, method, message
):
    # zipfile raised RuntimeError or NotImplementedError (a traceback in the
    # command line), or inflated bzip2 without bound.
    data = bytearray(saved_pipeline.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length] == b"manifest.json":
            struct.pack_into("<HH", data, at + 8, flag_bits, method)
        at = data.find(b"PK\x01\x02", at + 4)
    path = tmp_path / "odd.skmnist"
    path.write_bytes(bytes(data))
    _assert_refused_in_little_memory(path, message)


def test_weight_members_sharing_their_bytes_are_refused(saved_pipeline, tmp_path):
    """Members that each claim bytes up to the end of the file (checksums and
    CRCs right) were all read before the count of arrays refused them: 900 of
    them took a 2.5 MB file to 3.2 GB."""
    path = tmp_path / "shared.skmnist"
    path.write_bytes(saved_pipeline.read_bytes())
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length] == b"weights/0.npy":
            (offset,) = struct.unpack_from("<I", data, at + 42)
            # Its compressed (stored) bytes now run into the next member's.
            struct.pack_into("<I", data, at + 20, len(data) // 2 - offset)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    _assert_refused_in_little_memory(path, r"weights/0\.npy overlaps ")


def test_many_small_string_arrays_are_refused_before_any_is_made(
    saved_pipeline, tmp_path
):
    """Each array of one empty string declared 1 MiB wide stays under the
    per-array limit; 3,000 of them (55 KB of file) took the loader to 3.8 GB."""
    wide = {"__ndarray__": {"dtype": "<U262144", "shape": [1], "values": [""]}}
    path = _tampered(
        saved_pipeline,
        _forge_params(fit__sample_weight_note=[wide] * 3000),
        tmp_path / "strings.skmnist",
    )
    _assert_refused_in_little_memory(path, r"declares arrays of 31457280\d\d bytes")


def test_dict_keys_chosen_to_share_a_hash_are_refused(saved_pipeline, tmp_path):
    # k * (2**61 - 1) all hash to 0: building a dict of 40,000 took 8 s, of
    # 135,000 two minutes.
    keys = [[k * (2**61 - 1), 1.0] for k in range(1, 40_001)]
    path = _tampered(
        saved_pipeline,
        _forge_params(class_weight={"__dict__": keys}),
        tmp_path / "flood.skmnist",
    )
    # Refused by its keys, before a dict of them is built.
    _assert_refused_in_little_memory(path, "a dict key is an integer beyond 64 bits")


# -- skmnist 0.2: deep networks, early stopping, schedules, older files ---------


_ONE_EPOCH = {"epochs": 1, "batch_size": 32, "random_state": 0}


def _deep_early_stopped(X, y):
    return MNISTClassifier(
        hidden_units=(16, 8),
        dropout=0.1,
        alpha=1e-3,
        early_stopping=True,
        n_iter_no_change=2,
        epochs=30,
        batch_size=32,
        random_state=0,
        learning_rate_schedule=keras.optimizers.schedules.ExponentialDecay(
            0.01, 20, 0.9
        ),
    ).fit(X, y)


@pytest.mark.slow
def test_deep_early_stopped_models_round_trip_and_continue_training_exactly(
    digits_flat, tmp_path
):
    X, y = digits_flat
    X, y = X[:300], y[:300]
    original = _deep_early_stopped(X, y)
    assert original.n_iter_ < 30  # it stopped early
    skmnist.save(original, tmp_path / "deep.skmnist")
    loaded = skmnist.load(tmp_path / "deep.skmnist")
    assert loaded.hidden_units == (16, 8)
    assert type(loaded.learning_rate_schedule) is type(original.learning_rate_schedule)
    assert [layer.name for layer in loaded.model_.layers] == [
        "hidden", "dropout", "hidden_2", "dropout_2", "output",
    ]  # fmt: skip
    _assert_same_fitted_classifier(loaded, original)
    assert loaded.validation_scores_ and loaded.best_loss_ is None
    np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))
    # Continued training: early stopping carries on from the saved record, and
    # goes back to the best epoch's weights if it finds none better.
    for clf in (original, loaded):
        clf.set_params(warm_start=True, n_iter_no_change=4).fit(X, y)
    _assert_same_fitted_classifier(loaded, original)
    np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))
    for clf in (original, loaded):
        clf.partial_fit(X, y)
    _assert_same_fitted_classifier(loaded, original)
    np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))


@pytest.mark.parametrize(
    "hidden_units",
    [(16, 8), [16, 8], np.array([16, 8]), np.array([16, 8], dtype=np.uint16), 12],
    ids=["tuple", "list", "int64-array", "uint16-array", "int"],
)
def test_hidden_units_load_back_as_saved(hidden_units, digits_flat, tmp_path):
    X, y = digits_flat
    original = MNISTClassifier(hidden_units=hidden_units, **_ONE_EPOCH)
    for fitted in (False, True):
        if fitted:
            original.fit(X[:100], y[:100])
        skmnist.save(original, tmp_path / "clf.skmnist")
        loaded = skmnist.load(tmp_path / "clf.skmnist")
        assert type(loaded.hidden_units) is type(hidden_units)
        if isinstance(hidden_units, np.ndarray):
            assert loaded.hidden_units.dtype == hidden_units.dtype
        np.testing.assert_array_equal(loaded.hidden_units, hidden_units)
    np.testing.assert_array_equal(loaded.predict_proba(X), original.predict_proba(X))


_SCHEDULES = [
    keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9, staircase=True),
    keras.optimizers.schedules.InverseTimeDecay(0.01, 10, 0.5),
    keras.optimizers.schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]),
    keras.optimizers.schedules.PolynomialDecay(0.01, 100, power=2.0, cycle=True),
    keras.optimizers.schedules.CosineDecay(
        0.01, 100, warmup_target=0.02, warmup_steps=5
    ),
    keras.optimizers.schedules.CosineDecayRestarts(0.01, 50, name="restarts"),
]


@pytest.mark.parametrize("schedule", _SCHEDULES, ids=lambda s: type(s).__name__)
def test_keras_schedules_are_saved_by_name_and_arguments(
    schedule, tmp_path, monkeypatch
):
    skmnist.save(MNISTClassifier(learning_rate_schedule=schedule), tmp_path / "c")
    document = json.loads(_members(tmp_path / "c")["estimator.json"])
    stored = document["params"]["learning_rate_schedule"]
    assert stored["keras_schedule"] == type(schedule).__name__

    def refuse(*args, **kwargs):
        raise AssertionError("a schedule from a file reached Keras's deserialiser")

    monkeypatch.setattr(keras.saving, "deserialize_keras_object", refuse)
    monkeypatch.setattr(
        "keras.src.saving.serialization_lib.deserialize_keras_object", refuse
    )
    loaded = skmnist.load(tmp_path / "c").learning_rate_schedule
    assert type(loaded) is type(schedule)
    assert loaded.get_config() == schedule.get_config()
    assert float(loaded(7)) == float(schedule(7))


def test_schedules_of_ones_own_are_refused_when_saving(tmp_path):
    class Halving(keras.optimizers.schedules.ExponentialDecay):
        pass

    clf = MNISTClassifier(learning_rate_schedule=Halving(0.01, 10, 0.5))
    with pytest.raises(TypeError) as refused:
        skmnist.save(clf, tmp_path / "c")
    message = str(refused.value)
    assert "'learning_rate_schedule'" in message and "\n" not in message
    assert "Halving is not one of Keras's own learning rate schedules" in message
    assert not (tmp_path / "c").exists()


def test_a_validation_split_set_in_skmnist_0_2_is_kept(tmp_path):
    skmnist.save(MNISTClassifier(validation_split=0.0), tmp_path / "zero")
    skmnist.save(MNISTClassifier(validation_split=0.25), tmp_path / "quarter")
    assert skmnist.load(tmp_path / "zero").validation_split == 0.0
    assert skmnist.load(tmp_path / "quarter").validation_split == 0.25
    skmnist.save(MNISTClassifier(), tmp_path / "default")
    assert skmnist.load(tmp_path / "default").validation_split == "deprecated"


# Written by skmnist 0.1.0 (git show 2f4200e) in format version 2: a pipeline of
# PixelScaler(max_value=16) and MNISTClassifier(hidden_units=8, dropout=0.2,
# epochs=2, batch_size=32, random_state=0) fitted on load_digits' first 300
# images; its parameters include validation_split=0.0, and its fitted
# attributes none of n_iter_, loss_curve_ and the rest.
_RELEASE_0_1 = os.path.join(
    os.path.dirname(__file__), "data", "format_version_2_skmnist_0.1.0.skmnist"
)


def test_files_of_skmnist_0_1_load_predict_and_train_on(digits, tmp_path):
    images, labels = digits
    images, labels = images[:300], labels[:300]
    members = _members(_RELEASE_0_1)
    node = json.loads(members["estimator.json"])["steps"][1][1]
    assert node["params"]["validation_split"] == 0.0
    assert "validation_fraction" not in node["params"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no FutureWarning of validation_split
        loaded = skmnist.load(_RELEASE_0_1)
    clf = loaded[-1]
    assert clf.validation_split == "deprecated"
    assert clf.hidden_units == 8 and clf.early_stopping is False
    # What fit reports, derived from history_.
    assert clf.n_iter_ == 2 and clf.loss_curve_ == clf.history_["loss"]
    assert clf.loss_ == clf.loss_curve_[-1] == clf.best_loss_
    assert clf.validation_scores_ is None and clf.t_ is None
    # The network computes what the stored weights compute.
    kernel, bias, _, output_kernel, output_bias = (
        np.load(io.BytesIO(members[name])) for name in node["weights"][:5]
    )
    X = images.reshape(300, -1).astype(np.float32) / 16
    logits = np.maximum(X @ kernel + bias, 0) @ output_kernel + output_bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loaded.predict_proba(images), expected, atol=1e-6)
    np.testing.assert_array_equal(loaded.predict(images), expected.argmax(axis=1))
    # Saved again as skmnist 0.2 saves, it loads the same.
    skmnist.save(loaded, tmp_path / "again.skmnist")
    again = skmnist.load(tmp_path / "again.skmnist")
    _assert_same_fitted_classifier(again[-1], clf)
    # It trains on, without the deprecation warning a validation_split gives.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for pipeline in (loaded, again):
            pipeline.set_params(clf__warm_start=True).fit(images, labels)
    assert clf.loss_curve_[:2] == node["fitted"]["history_"]["loss"]
    assert len(clf.loss_curve_) == 4 and clf.n_iter_ == 2
    _assert_same_fitted_classifier(again[-1], clf)


def _rename_param(old, new):
    def edit(members):
        def rename(document):
            params = document["steps"][1][1]["params"]
            params[new] = params.pop(old)

        _edit_json(members, "estimator.json", rename)
        _resign(members)

    return edit


def test_unknown_parameters_are_dropped_with_a_warning(
    fitted_pipeline, saved_pipeline, data, tmp_path
):
    images, _ = data
    # A parameter of a newer skmnist, and another with a routed parameter's look
    # but no routing prefix.
    edit = _forge_params(momentum=0.9, learning_rate_init=0.01)
    path = _tampered(saved_pipeline, edit, tmp_path / "newer.skmnist")
    with pytest.warns(UserWarning) as caught:
        loaded = skmnist.load(path)
    first, second = sorted(str(warning.message) for warning in caught)
    assert "ignoring the parameter 'learning_rate_init' of the MNISTClass" in first
    assert "ignoring the parameter 'momentum'" in second
    assert "newer skmnist" in second
    assert not hasattr(loaded[-1], "momentum")
    np.testing.assert_array_equal(
        loaded.predict_proba(images), fitted_pipeline.predict_proba(images)
    )
    # Saved again, the file no longer names them.
    skmnist.save(loaded, tmp_path / "again.skmnist")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        skmnist.load(tmp_path / "again.skmnist")


def test_a_misspelt_unfitted_parameter_loads_as_the_default(tmp_path):
    skmnist.save(make_mnist_pipeline(hidden_units=5), tmp_path / "unfitted.skmnist")
    path = _tampered(
        tmp_path / "unfitted.skmnist",
        _rename_param("hidden_units", "hiden_units"),
        tmp_path / "misspelt.skmnist",
    )
    with pytest.warns(UserWarning, match="ignoring the parameter 'hiden_units'"):
        loaded = skmnist.load(path)
    assert loaded[-1].hidden_units == 512


@pytest.mark.parametrize("units", [16, 4200], ids=["smaller", "larger"])
def test_a_misspelt_network_parameter_is_named_when_the_weights_do_not_fit(
    units, digits_flat, tmp_path
):
    # Without hidden_units, the file describes the default network of 512
    # units, for which its weights are too few (refused as it is rebuilt,
    # before the network is) or too many (refused before they are read).
    X, y = digits_flat
    pipeline = make_mnist_pipeline(hidden_units=units, **_ONE_EPOCH)
    pipeline.set_params(scale__max_value=1).fit(X[:64], y[:64])
    skmnist.save(pipeline, tmp_path / "clf.skmnist")
    path = _tampered(
        tmp_path / "clf.skmnist",
        _rename_param("hidden_units", "hiden_units"),
        tmp_path / "misspelt.skmnist",
    )
    expected = (
        "weight bytes, more than the" if units < 512 else "weights of .* more than a"
    )
    hint = (
        r"the file names parameters that this skmnist does not know and ignored "
        r"\('hiden_units'\), which may describe its network"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_persistence.ModelFileError, match=f"{expected}.*{hint}"):
            skmnist.load(path)
    # Too few weights: warned as the estimator is rebuilt, then refused; too
    # many: refused by the checks that run before, which do not warn.
    assert len(caught) == (1 if units < 512 else 0)


def test_inflated_weights_of_deep_networks_are_refused_before_they_are_read(
    digits_flat, tmp_path, monkeypatch
):
    from skmnist._architecture import count_weights

    X, y = digits_flat
    clf = MNISTClassifier(hidden_units=(16, 8), **_ONE_EPOCH).fit(X[:64], y[:64])
    skmnist.save(clf, tmp_path / "deep.skmnist")
    members = _members(tmp_path / "deep.skmnist")
    manifest = json.loads(members["manifest.json"])
    # The second hidden layer's kernel, 16 x 8, declared 16 x 4000.
    name = next(
        member
        for member, array in manifest["arrays"].items()
        if array["shape"] == [16, 8]
    )
    members[name] = _npy("<f4", (16, 4000), bytes(100))
    _edit_json(
        members,
        "manifest.json",
        lambda m: m["arrays"].update({name: {"dtype": "<f4", "shape": [16, 4000]}}),
    )
    _resign(members)
    path = tmp_path / "inflated.skmnist"
    _write_members(path, members)
    monkeypatch.setattr(
        _archive, "read_npy", lambda *args: pytest.fail("weights were read")
    )
    # What a network of 64 -> 16 -> 8 -> 10 holds, with 8 copies of 8 bytes.
    most = 64 * count_weights(64, (16, 8), 10) + 64 * len(manifest["arrays"])
    _assert_refused_in_little_memory(
        path, rf"weights of \d+ bytes, more than .*\(at most {most}\)", limit=4 * 2**20
    )


def test_a_routed_validation_split_beside_validation_fraction_is_refused():
    params = {"validation_fraction": 0.1, "fit__validation_split": 0.2}
    with pytest.raises(_persistence.ModelFileError, match="both set"):
        _registry._check_classifier_params(params, "estimator.json")


def test_an_interrupt_inside_a_member_write_is_the_interrupt(
    fitted_pipeline, tmp_path, monkeypatch
):
    # A Ctrl-C that lands while zipfile holds a member open: closing the
    # archive would raise "Can't close the ZIP file while there is an open
    # writing handle" in its place, which the command line reported as an
    # error (exit status 1) rather than an interrupt (130).
    path = tmp_path / "model.skmnist"
    skmnist.save(fitted_pipeline, path)
    before = path.read_bytes()
    writestr = zipfile.ZipFile.writestr

    def interrupted(self, name, data, *args, **kwargs):
        if str(name).endswith(".npy"):
            member = self.open(str(name), "w")
            member.write(bytes(data)[:10])
            raise KeyboardInterrupt
        return writestr(self, name, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", interrupted)
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(KeyboardInterrupt):
        skmnist.save(fitted_pipeline, path)
    import gc

    gc.collect()
    # Nothing reported later by the abandoned archive's __del__ either.
    assert unraisable == []
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.skmnist"]
