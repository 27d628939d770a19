"""The errors that saving and loading raise, and how their messages name values.

Shared by every layer of the format (archive, codec, registry), so that a
refusal reads the same wherever it is found.
"""

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
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
