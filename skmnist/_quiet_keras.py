"""Importing Keras without the C++ start-up lines of TensorFlow and XLA.

Importing TensorFlow writes log lines from C++ ("Could not find cuda drivers",
oneDNN notes, cuInit errors), some of them before TensorFlow reads
``TF_CPP_MIN_LOG_LEVEL``, so a user's level 2 still shows INFO lines. The
command line and dask worker processes import Keras through here, with the
lines below the level left out.
"""

import contextlib
import os
import re
import sys
import tempfile

# The C++ log lines of TensorFlow and XLA ("I0000 00:00:... cudart_stub.cc:31]
# Could not find cuda drivers", oneDNN notes, cuInit errors) and absl's notice
# about them: noise on a normal run.
_CPP_LOG_LINE = re.compile(
    rb"^([IWEF]\d{4} \d+:\d+:\d+\.\d+ +\d+ [^ ]+:\d+\] |"
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called)"
)

# The severity of a C++ log line, by its first letter, in TF_CPP_MIN_LOG_LEVEL's
# terms.
_SEVERITY = {ord("I"): 0, ord("W"): 1, ord("E"): 2, ord("F"): 3}


def import_keras_quietly() -> None:
    """Import Keras (and its backend) with the C++ log lines below
    ``TF_CPP_MIN_LOG_LEVEL`` written during the import left out.

    Where the user has not set ``TF_CPP_MIN_LOG_LEVEL``, it is set to 3 (fatal
    errors only) first, for the rest of the process: TensorFlow's C++ logs read
    it once, at start. Anything else written meanwhile is passed on; an
    ImportError is left to where Keras is needed.
    """
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:  # a user's own setting wins
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if "keras" in sys.modules:
        return
    level = _log_level(os.environ["TF_CPP_MIN_LOG_LEVEL"])
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            with contextlib.suppress(ImportError):  # said where it is needed
                import keras  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured:
                if not (_CPP_LOG_LINE.match(line) and _severity(line) < level):
                    sys.stderr.buffer.write(line)
            sys.stderr.flush()


def _log_level(text: str) -> int:
    """TF_CPP_MIN_LOG_LEVEL as TensorFlow reads it: 0 (all) to 3 (fatal only)."""
    try:
        return min(max(int(text), 0), 3)
    except ValueError:
        return 0


def _severity(line: bytes) -> int:
    if line.startswith(b"WARNING: All log messages"):
        # absl's notice that introduces the early lines: as quiet as an INFO line.
        return 0
    return _SEVERITY[line[0]]
