"""A per-user compilation cache on disk, so that a new process starts warm.

Every Keras model the estimators train or predict with runs as XLA programs,
and compiling them is most of a first fit's time: several seconds for each new
architecture on a small CPU, paid again by every new process (``skmnist
train``, each worker process of ``GridSearchCV(n_jobs=...)``). JAX can keep
compiled programs in a folder and load them in later processes instead of
compiling again; this module switches that on for the JAX backend, in a
per-user cache folder, before the first compile.

``SKMNIST_COMPILATION_CACHE`` moves the folder (a path) or turns the cache off
(``off``). JAX keeps it under 256 MiB, evicting the least recently used
programs, unless the user set JAX's own limit
(``JAX_COMPILATION_CACHE_MAX_SIZE``) or ``filelock`` is missing (JAX needs it
to evict). A user's own JAX cache configuration
(``JAX_COMPILATION_CACHE_DIR``,
``jax.config.update("jax_compilation_cache_dir", ...)``,
``jax_enable_compilation_cache=False``) is left as it is. A folder that cannot
be written never stops a fit: it warns once, and training goes on uncached.

TensorFlow's counterpart is not used: with
``TF_XLA_FLAGS=--tf_xla_persistent_cache_directory=...`` TensorFlow 2.21 writes
an entry for each ``jit_compile`` function on the CPU, but a new process fails
to read it back ("Error parsing text-format tensorflow.XlaSerializedCacheEntry")
and compiles again (see docs/performance.rst).
"""

import os
import tempfile
import warnings
from pathlib import Path

ENVIRONMENT_VARIABLE = "SKMNIST_COMPILATION_CACHE"
# JAX evicts the least recently used programs beyond this. One architecture's
# programs take tens of kilobytes; a user's searches must not fill the disk.
MAX_CACHE_BYTES = 256 * 2**20
_OFF = {"off", "0", "false", "no", "none"}

# What configure() found, so that it runs (and warns) once per process.
_configured: "Path | bool | None" = False


def cache_folder() -> Path | None:
    """The folder the cache should be in, or None where the user turned it off.

    ``SKMNIST_COMPILATION_CACHE`` if set, else ``$XDG_CACHE_HOME/skmnist/jax``,
    else ``~/.cache/skmnist/jax``. A relative ``SKMNIST_COMPILATION_CACHE`` is
    taken from the current folder now: JAX opens the folder later, from
    wherever the process is then. A relative ``XDG_CACHE_HOME`` is ignored, as
    the XDG specification asks.
    """
    setting = os.environ.get(ENVIRONMENT_VARIABLE)
    if setting is not None:
        if setting.strip().lower() in _OFF or not setting.strip():
            return None
        return Path(setting).expanduser().absolute()
    base = Path(os.environ.get("XDG_CACHE_HOME") or "")
    if not base.is_absolute():
        base = Path.home() / ".cache"
    return base / "skmnist" / "jax"


def configure(backend: str) -> Path | None:
    """Switch JAX's persistent compilation cache on in :func:`cache_folder`.

    Called when the estimators import Keras, before anything compiles. Does
    nothing on other backends, where the user configured JAX's cache, or where
    the cache is turned off.

    Parameters
    ----------
    backend : str
        The Keras backend of this process.

    Returns
    -------
    folder : Path or None
        The cache folder in use, None if this call did not set one.
    """
    global _configured
    if _configured is not False:
        return _configured or None
    _configured = None
    if backend != "jax":
        return None
    import jax

    if (
        jax.config.jax_compilation_cache_dir is not None
        or not jax.config.jax_enable_compilation_cache
    ):
        return None  # the user's own configuration
    folder = cache_folder()
    if folder is None or not _writable(folder):
        return None
    # Cache every program: the estimators' are small and quick to compile
    # one by one (JAX's default keeps only those of a second or more), but a
    # first fit compiles a dozen of them.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    if jax.config.jax_compilation_cache_max_size == -1 and _can_bound_size():
        jax.config.update("jax_compilation_cache_max_size", MAX_CACHE_BYTES)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    _configured = folder
    return folder


def _can_bound_size() -> bool:
    """Whether JAX can keep the cache under a size: its evicting cache locks
    the folder with ``filelock`` (the ``jax`` extra installs it); without it,
    setting a size makes JAX give up the cache altogether."""
    try:
        import filelock  # noqa: F401
    except ImportError:
        return False
    return True


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (made if missing); warns once
    where not, naming the folder and the way to move the cache."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as error:
        warnings.warn(
            f"The compilation cache folder {str(folder)!r} cannot be written "
            f"({error.strerror or error}); training goes on without the cache. "
            f"Set {ENVIRONMENT_VARIABLE} to another folder, or to 'off'.",
            RuntimeWarning,
            stacklevel=4,
        )
        return False
    return True
