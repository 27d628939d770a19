"""The errors that saving and loading raise, and how their messages name values.

Shared by every layer of the format (archive, codec, registry), so that a
refusal reads the same wherever it is found.
"""

import json

JOBLIB_HINT = (
    "To keep such an estimator, pickle it with joblib.dump instead (and load only "
    "files you trust: unpickling runs code from the file)."
)


class ModelFileError(ValueError):
    """The file is not an skmnist model file, or it is corrupt or was modified."""


class UntrustedFileError(ModelFileError):
    """A file of an older format that is loaded only when its source is trusted.

    ``reason`` says why, without the how-to (which differs between Python and the
    command line).
    """

    def __init__(self, reason: str, how: str):
        super().__init__(f"{reason} {how}")
        self.reason = reason


def expect(value, kind, where: str):
    """``value`` if it is a ``kind`` (never a bool for ``int``), else refuse it."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ModelFileError(
            f"{where}: expected {getattr(kind, '__name__', kind)}, got "
            f"{type(value).__name__}."
        )
    return value


def short_repr(value) -> str:
    return shortened(repr(value), 60)


def short_json(value, width: int = 40) -> str:
    """``value``, read from a file, for a message: as JSON spells it (ASCII
    only, so that no control character reaches a terminal), cut short."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = repr(value)
    return shortened(text, width)


def shortened(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, its end marked "..."."""
    return text if len(text) <= width else text[: width - 3] + "..."
