"""Writing files so that nothing a user saved is lost or half-written.

Two ideas shared by :mod:`skmnist._persistence` and the command line: a file is
written atomically (to a temporary file beside it, renamed over the target once
complete), and an output path is checked *before* the slow work that produces
its content, so that a typo costs seconds, not a training run.
"""

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from skmnist._interrupts import deferred_interrupts, raise_if_interrupted


class OutputPathError(ValueError):
    """An output path that cannot be written, or that names an input."""


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)``, then rename the temporary file to ``path``.

    The temporary file is created in the directory of ``path`` so that the final
    ``os.replace`` is an atomic rename: readers see either the previous file or
    the complete new one, and a failure (or crash) while writing leaves the
    previous file untouched.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    write : callable
        Called with the temporary file's path; writes the content there.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from skmnist._files import write_atomically
    >>> path = os.path.join(tempfile.mkdtemp(), "greeting.txt")
    >>> write_atomically(path, lambda temporary: Path(temporary).write_text("hi"))
    >>> Path(path).read_text()
    'hi'
    """
    path = Path(path)
    _check_replaceable(path, "")
    temporary = None
    try:
        with deferred_interrupts():  # never a temporary file without its name
            temporary = _temporary_beside(path)
        raise_if_interrupted()
        write(temporary)
        # mkstemp creates the file readable by its owner only; give it the mode
        # a plain open() would have.
        os.chmod(temporary, 0o666 & ~_umask())
        # Flush to disk before the rename, so a power cut cannot leave the new
        # name pointing at unwritten data.
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        # The last moment at which Ctrl-C (even one a gc callback swallowed)
        # can keep the previous file.
        raise_if_interrupted()
        os.replace(temporary, path)
    except BaseException:
        if temporary is not None:
            with deferred_interrupts():
                Path(temporary).unlink(missing_ok=True)
        raise


def check_writable_output(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    what: str = "output",
) -> Path:
    """Check now that :func:`write_atomically` will be able to write ``path``.

    Creates missing parent folders (as saving would), then tries to create a
    temporary file beside ``path`` and removes it. Nothing existing is changed.

    Parameters
    ----------
    path : str or path-like
        The file to be written later.
    inputs : iterable of str or path-like, default=()
        Files the same run reads (``None`` entries are skipped); ``path`` must be
        none of them, under any name.
    what : str, default="output"
        How messages name the path, e.g. ``"--output"``.

    Returns
    -------
    path : Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    OutputPathError
        If ``path`` is a folder, its parent is a file, the place is not writable,
        or it is one of ``inputs``.
    """
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise OutputPathError(
                f"{what} {path} is also an input of this command; writing it would "
                "destroy the input. Choose another file name."
            )
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give a file name.")
    _check_replaceable(path, f"{what} ")
    for parent in (path.parent, *path.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(
                    f"{what} {path}: {parent} is a file, not a folder."
                )
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with deferred_interrupts():  # created and removed, even on Ctrl-C
            os.unlink(_temporary_beside(path))
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OutputPathError(
            f"{what} {path} cannot be written: {reason.lower()}."
        ) from None
    if path.exists() and not (os.access(path, os.W_OK) and path.stat().st_mode & 0o222):
        # Replacing works even so, but the user protected the file; root may
        # write anything, so its mode says so too.
        raise OutputPathError(f"{what} {path} is read-only.")
    return path


def _temporary_beside(path: Path) -> str:
    """A new empty file in the folder of ``path`` (so that renaming it over
    ``path`` is atomic), named after it."""
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    os.close(handle)
    return temporary


def _check_replaceable(path: Path, what: str) -> None:
    """Refuse an existing ``path`` that is not a regular file (a device such as
    /dev/null, a pipe, a socket): the atomic rename would replace the device
    itself, not write to it."""
    if path.exists() and not path.is_dir() and not path.is_file():
        raise OutputPathError(
            f"{what}{path} is not a regular file (a device, pipe or socket); "
            "give a file name."
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist yet, or is a loop of links
        try:
            return a.resolve() == b.resolve()
        except (OSError, RuntimeError):  # a loop of symbolic links
            return os.path.abspath(a) == os.path.abspath(b)


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (setting
    it to read it back is not thread-safe)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
