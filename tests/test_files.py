"""skmnist._files: atomic writes, and output paths checked before the slow work.

What the commands and :func:`skmnist.save` promise on top of these (a failed
save keeps the previous model, ``--output`` refused before the data loads) is
tested with them, in test_persistence.py and test_cli.py.
"""

import os
import signal
import time
from pathlib import Path

import joblib
import pytest

from skmnist import _files
from skmnist._files import OutputPathError, check_writable_output, write_atomically

OLD = b"the model the user saved yesterday"


@pytest.fixture
def existing(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(OLD)
    return path


def _write_half_then(error):
    def write(temporary):
        Path(temporary).write_bytes(b"half of the new")
        raise error

    return write


def test_write_atomically_replaces_the_file_once_written(existing):
    write_atomically(existing, lambda temporary: Path(temporary).write_bytes(b"new"))
    assert existing.read_bytes() == b"new"
    assert os.listdir(existing.parent) == ["model.bin"]


@pytest.mark.parametrize(
    "error", [OSError("disk full"), ValueError("cannot encode"), KeyboardInterrupt()]
)
def test_a_failed_write_keeps_the_previous_file(existing, error):
    with pytest.raises(type(error)):
        write_atomically(existing, _write_half_then(error))
    assert existing.read_bytes() == OLD
    assert os.listdir(existing.parent) == ["model.bin"]  # no temporary file left


def test_ctrl_c_while_writing_keeps_the_previous_file(existing):
    # A real SIGINT, delivered while the new content is half written; the test
    # installs Python's own handler, since it may run where SIGINT is ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def write(temporary):
        with open(temporary, "wb") as file:
            file.write(b"half of the new")
            file.flush()
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100):  # the handler runs at the next bytecode
                time.sleep(0.01)
            file.write(b" and the rest")

    try:
        with pytest.raises(KeyboardInterrupt):
            write_atomically(existing, write)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert existing.read_bytes() == OLD
    assert os.listdir(existing.parent) == ["model.bin"]


def test_a_failed_rename_keeps_the_previous_file(existing, monkeypatch):
    def fail(source, target):
        raise OSError("the disk went away")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="the disk went away"):
        write_atomically(existing, lambda temporary: Path(temporary).write_bytes(b"x"))
    assert existing.read_bytes() == OLD
    assert os.listdir(existing.parent) == ["model.bin"]


def test_write_atomically_never_replaces_a_pipe(tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    called = []
    with pytest.raises(OutputPathError, match="not a regular file"):
        write_atomically(pipe, called.append)
    assert called == []
    assert os.listdir(tmp_path) == ["pipe"]


def test_written_files_get_the_default_permissions(tmp_path):
    # mkstemp creates its file for its owner only; the result is what open()
    # would have created under the user's umask.
    mask = os.umask(0o027)
    try:
        write_atomically(
            tmp_path / "b.joblib", lambda temporary: joblib.dump(1, temporary)
        )
    finally:
        os.umask(mask)
    assert (tmp_path / "b.joblib").stat().st_mode & 0o777 == 0o640
    assert _files._umask() == mask


# -- check_writable_output -------------------------------------------------------


def test_a_writable_output_is_accepted_and_nothing_is_changed(existing, tmp_path):
    assert check_writable_output(str(existing)) == existing
    assert existing.read_bytes() == OLD
    new = tmp_path / "new" / "folders" / "m.skmnist"
    assert check_writable_output(new, inputs=[None, existing]) == new
    # The folders saving would create are there; no file is, not even a probe.
    assert new.parent.is_dir() and os.listdir(new.parent) == []
    assert sorted(os.listdir(tmp_path)) == ["model.bin", "new"]


def _refusals(tmp_path, existing):
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "hard-link").hardlink_to(existing)
    return {
        "folder": (tmp_path / "folder", [], "is a folder; give a file name"),
        "parent-is-a-file": (
            existing / "m.skmnist",
            [],
            f"{existing} is a file, not a folder",
        ),
        "grandparent-is-a-file": (
            existing / "sub" / "m.skmnist",
            [],
            f"{existing} is a file, not a folder",
        ),
        "unwritable-place": (Path("/proc/skmnist/m.skmnist"), [], "cannot be written"),
        "pipe": (tmp_path / "pipe", [], "is not a regular file"),
        "an-input": (existing, [existing], "is also an input of this command"),
        "an-input-by-another-name": (
            tmp_path / "." / "hard-link",
            [None, existing],
            "is also an input of this command",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "folder",
        "parent-is-a-file",
        "grandparent-is-a-file",
        "unwritable-place",
        "pipe",
        "an-input",
        "an-input-by-another-name",
    ],
)
def test_check_writable_output_refusals_name_the_path(case, tmp_path, existing):
    path, inputs, message = _refusals(tmp_path, existing)[case]
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(OutputPathError) as error:
        check_writable_output(path, inputs=inputs, what="--output")
    assert str(error.value).startswith(f"--output {path}")
    assert message in str(error.value)
    assert existing.read_bytes() == OLD
    assert sorted(os.listdir(tmp_path)) == before


def test_a_read_only_file_is_refused(existing):
    # Renaming over it would work, but the user protected it: refused whoever
    # runs the command, root included (whom os.access lets write anything; a
    # probe as root overwrote a read-only mnist.npz with an ONNX model).
    existing.chmod(0o444)
    with pytest.raises(OutputPathError, match=f"^output {existing} is read-only"):
        check_writable_output(existing)
    assert existing.read_bytes() == OLD


def test_output_path_errors_are_value_errors():
    # The command line and skmnist.save catch ValueError for refusals.
    assert issubclass(OutputPathError, ValueError)
