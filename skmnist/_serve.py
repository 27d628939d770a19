"""The ``skmnist serve`` web service: a prediction API and a draw-a-digit page.

An image posted to ``/predict`` is decoded by Pillow and goes through the same
:func:`~skmnist.preprocess_digit_image` as the files that ``skmnist predict``
reads with :func:`~skmnist.load_digit_image`, so the page, the API and the
command line give one answer for one PNG. FastAPI and
uvicorn are imported only here, so they stay an optional extra
(``pip install 'skmnist[serve]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from skmnist._images import (
    IMAGE_FORMATS,
    ImageDecodeError,
    decode_image,
    first_line,
    preprocess_decoded_image,
)
from skmnist._serve_guards import (
    LOOPBACK_NAMES,
    Busy,
    Turns,
    add_guards,
    security_headers,
)
from skmnist._version import __version__

#: Default limit on the bytes of one upload (413 above it).
DEFAULT_MAX_UPLOAD_BYTES = 10 * 2**20
#: Default number of requests that may wait for a turn (503 beyond).
DEFAULT_MAX_WAITING = 64
#: Default seconds an upload may take to arrive once its turn came (408 after).
DEFAULT_UPLOAD_TIMEOUT = 30.0
#: Default limit on the pixels of one image (413 above it): decoding turns a few
#: compressed bytes into width x height pixels, and preprocessing into floats.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096

_PAGE = "_static"
# What curl -d leaves of a PNG's signature: it drops line breaks (\r, \n).
_PNG_WITHOUT_LINE_BREAKS = b"\x89PNG\x1a"
# Details of refused uploads go to the log, never to the client.
_log = logging.getLogger("skmnist.serve")


def default_max_concurrent() -> int:
    """The CPU cores this process may use: predictions are CPU work, so more
    at once only queue inside the process, holding their images meanwhile."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class _TooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the upload is larger than the limit of {limit} bytes")


def create_app(
    model,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    allowed_hosts: Sequence[str] = LOOPBACK_NAMES,
    max_concurrent: int | None = None,
    max_waiting: int = DEFAULT_MAX_WAITING,
    upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT,
) -> FastAPI:
    """The web application serving ``model``: the page, ``/predict``, ``/health``
    and ``/model``.

    Parameters
    ----------
    model : fitted classifier or pipeline
        Anything with ``predict_proba`` and ``classes_`` that takes MNIST-style
        images of shape (n, 28, 28), such as a fitted
        :func:`~skmnist.make_mnist_pipeline`. It is shared by all requests, which
        call only its ``predict_proba``.
    max_upload_bytes : int, default=10 MiB
        Requests with a larger body get status 413; the body is counted while it
        is read, so a larger one is never held in memory.
    max_image_pixels : int, default=4096 * 4096
        Images with more pixels get status 413, before they are decoded.
    allowed_hosts : sequence of str, default=("localhost", "127.0.0.1", "[::1]")
        The names and addresses clients may reach the service by (the ``Host``
        header; IPv6 addresses in brackets; ``"*.example.com"`` for
        subdomains); requests naming another host get status 400, which stops
        DNS rebinding.
    max_concurrent : int, default=None
        How many ``/predict`` requests run at once, each from its first byte
        read to its answer; the others wait their turn unread. ``None``: the
        CPU cores this process may use.
    max_waiting : int, default=64
        How many ``/predict`` requests may wait for a turn; any more get status
        503 at once, so that waiting connections, which hold buffered bytes,
        cannot grow the server's memory without bound.
    upload_timeout : float, default=30
        Seconds an upload may take to arrive once its turn has come (status
        408 after), so that slow clients cannot hold the turns for ever.

    Returns
    -------
    app : fastapi.FastAPI
        An ASGI application, to run with uvicorn or any ASGI server.

    Examples
    --------
    With ``pipeline`` a fitted :func:`~skmnist.make_mnist_pipeline`:

    >>> from fastapi.testclient import TestClient
    >>> client = TestClient(create_app(pipeline))  # doctest: +SKIP
    >>> with open("my_digit.png", "rb") as image:  # doctest: +SKIP
    ...     answer = client.post("/predict", content=image.read()).json()
    >>> sorted(answer)  # doctest: +SKIP
    ['label', 'probabilities']
    """
    for attribute in ("predict_proba", "classes_"):
        if not hasattr(model, attribute):
            raise TypeError(
                f"the model to serve must be a fitted classifier with "
                f"{attribute}; got {type(model).__name__}"
            )
    if max_concurrent is None:
        max_concurrent = default_max_concurrent()
    if not (isinstance(upload_timeout, int | float) and upload_timeout > 0):
        raise ValueError(
            f"upload_timeout must be a positive number of seconds, got "
            f"{upload_timeout!r}"
        )
    for name, value in [
        ("max_upload_bytes", max_upload_bytes),
        ("max_image_pixels", max_image_pixels),
        ("max_concurrent", max_concurrent),
        ("max_waiting", max_waiting),
    ]:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    classes = [_plain(label) for label in model.classes_]
    _check_predicts_digits(model, len(classes))
    description = {
        "estimator": type(model).__name__,
        "classes": classes,
        "params": _scalar_params(model),
        "skmnist_version": __version__,
    }

    app = FastAPI(
        title="skmnist",
        version=__version__,
        description="Handwritten digit classification with an skmnist model.",
    )

    add_guards(app, allowed_hosts=allowed_hosts)
    turns = Turns(max_concurrent, max_waiting)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        # Errors are JSON like the others; uvicorn still logs the traceback.
        # Made outside the middleware, so the security headers are added here.
        return JSONResponse(
            {"detail": "internal error; see the server's log"},
            500,
            headers=security_headers(request.url.path),
        )

    app.mount("/static", StaticFiles(packages=[("skmnist", _PAGE)]), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(_static_file("index.html"), media_type="text/html")

    # async: answered on the event loop, never queued behind uploads for a
    # worker thread.
    @app.get("/health")
    async def health() -> dict:
        """Whether the service is up: ``{"status": "ok"}``."""
        return {"status": "ok"}

    @app.get("/model")
    def describe_model() -> dict:
        """The served model: its estimator class, classes, hyper-parameters
        (those that are numbers, text, booleans or null) and skmnist's version."""
        return description

    # HEAD too, as HTTP asks of every GET resource (curl -I, uptime checks);
    # left out of the OpenAPI description, where it would repeat the GET.
    for path, endpoint in [
        ("/", page),
        ("/health", health),
        ("/model", describe_model),
    ]:
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)

    @app.post(
        "/predict",
        responses={
            400: {"description": "not a readable image, or a truncated one"},
            403: {"description": "a cross-origin request (another site's page)"},
            408: {"description": "the upload took too long to arrive"},
            503: {"description": "too many uploads wait for a turn"},
            413: {"description": "over the size limit"},
            415: {"description": f"not an image in {', '.join(IMAGE_FORMATS)}"},
            422: {"description": "no digit found (a blank image)"},
            500: {"description": "the model gave no valid answer"},
        },
        openapi_extra={
            "requestBody": {
                "description": "An image (PNG, JPEG, GIF, BMP, TIFF or WebP) of "
                "one digit, any size, "
                "dark ink on light paper or light on dark: the raw request body, "
                "or the one file of a multipart/form-data upload.",
                "required": True,
                "content": {
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "format": "binary"}
                            },
                        }
                    },
                },
            }
        },
    )
    async def predict(request: Request) -> dict:
        """The digit in the posted image and the probability of every class:
        ``{"label": 7, "probabilities": {"0": ..., ..., "9": ...}}``."""
        # A turn from the first byte read to the answer: here, in the
        # endpoint, whatever path led to it (not by matching paths).
        try:
            async with turns.turn():
                return await _answer(request)
        except Busy:
            return JSONResponse(
                {"detail": "the service is busy: too many uploads wait; try again"},
                503,
                headers={"retry-after": "1"},
            )

    async def _answer(request: Request) -> dict:
        try:
            data = await asyncio.wait_for(
                _read_upload(request, max_upload_bytes), upload_timeout
            )
        except ClientDisconnect:
            # Nobody is left to answer; end quietly rather than log an error.
            return JSONResponse({"detail": "the client disconnected"}, 400)
        except TimeoutError:
            # A client that sends slowly would hold its turn for ever.
            raise HTTPException(
                408, f"the upload did not arrive within {upload_timeout:g} s"
            ) from None
        # Decoding and the network are CPU work: off the event loop, so that
        # other requests (and /health) are answered meanwhile.
        try:
            proba = await run_in_threadpool(
                _predict_proba, model, data, max_image_pixels
            )
        except HTTPException as error:
            if error.status_code == 415 and data.startswith(_PNG_WITHOUT_LINE_BREAKS):
                raise HTTPException(
                    415,
                    f"{error.detail}; this looks like a PNG whose line breaks "
                    "were removed, as curl -d @FILE does: send the file with "
                    "curl --data-binary @FILE",
                ) from None
            raise
        if not np.isfinite(proba).all():
            # A diverged network: no answer rather than a guess.
            raise HTTPException(
                500, "the model gave NaN or infinite probabilities for this image"
            )
        best = int(np.argmax(proba))
        return {
            "label": classes[best],
            "probabilities": {
                str(label): float(p) for label, p in zip(classes, proba, strict=True)
            },
        }

    return app


def serve(
    model,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    root_path: str = "",
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    allowed_hosts: Sequence[str] = (),
    max_concurrent: int | None = None,
    max_waiting: int = DEFAULT_MAX_WAITING,
    upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT,
    log_level: str = "info",
    announce=print,
) -> None:
    """Serve ``model`` with uvicorn until interrupted (Ctrl-C or SIGTERM).

    Warns (:class:`UserWarning`) when ``host`` is not a loopback address: the
    service has no authentication and speaks plain HTTP.

    Parameters
    ----------
    model : fitted classifier or pipeline
        See :func:`create_app`.
    host : str, default="127.0.0.1"
        The address to listen on; the default answers this machine only.
    port : int, default=8000
        The TCP port; 0 picks a free one.
    root_path : str, default=""
        The path prefix under which a reverse proxy forwards to this service,
        such as ``"/mnist"``, for the proxy to strip.
    max_upload_bytes : int, default=10 MiB
        See :func:`create_app`.
    allowed_hosts : sequence of str, default=()
        Names and addresses clients may reach the service by, besides
        ``host`` itself, ``localhost``, ``127.0.0.1`` and ``[::1]`` (see
        :func:`create_app`): the server's name on the network, or the name a
        reverse proxy forwards in the ``Host`` header.
    max_concurrent : int, default=None
        See :func:`create_app`.
    max_waiting : int, default=64
        See :func:`create_app`.
    upload_timeout : float, default=30
        See :func:`create_app`.
    log_level : str, default="info"
        uvicorn's log level.
    announce : callable, default=print
        Called with one line saying where the service listens, once it accepts
        connections.
    """
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    app = create_app(
        model,
        max_upload_bytes=max_upload_bytes,
        allowed_hosts=[*LOOPBACK_NAMES, shown.lower(), *allowed_hosts],
        max_concurrent=max_concurrent,
        max_waiting=max_waiting,
        upload_timeout=upload_timeout,
    )
    if not _is_loopback(host):
        message = (
            f"serving on {host}, beyond this machine: the service has no "
            "authentication and speaks plain HTTP; put it behind a reverse proxy "
            "that adds both, and name the host clients use with --allow-host"
        )
        warnings.warn(message, UserWarning, stacklevel=2)
    # Bound and listening before the announcement, so that whoever reads it can
    # connect at once, and port 0 is announced as the port it became.
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            listener.bind((host, port))
        except OSError as error:
            raise OSError(
                f"cannot listen on {host} port {port}: {error.strerror or error}"
            ) from None
        listener.listen(2048)
        bound_port = listener.getsockname()[1]
        behind = f", for a proxy's {root_path}/" if root_path else ""
        announce(
            f"serving on http://{shown}:{bound_port}/{behind} "
            f"(API docs at /docs; Ctrl-C to stop)"
        )
        config = uvicorn.Config(
            app, log_level=log_level, root_path=root_path, proxy_headers=True
        )
        # Ctrl-C is the way to stop it: uvicorn has shut down, and raises the
        # interrupt again only to pass it on; a traceback would read as a crash.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve to any address
        return False


class _ServerProcess:
    """``skmnist serve`` in a child process on a free port of 127.0.0.1, as the
    tests and the load benchmark run it: waited for within ``startup_timeout``
    seconds, and stopped by :meth:`stop` or on leaving a ``with`` block."""

    def __init__(self, model_path, log_path, *options: str, startup_timeout=180):
        self.log_path = Path(log_path)
        command = [sys.executable, "-m", "skmnist", "serve", str(model_path)]
        # A file, not a pipe, so that the server never blocks on its log; the
        # child keeps its own copy of the descriptor.
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [*command, "--host", "127.0.0.1", "--port", "0", *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Ctrl-C works in the child as in a terminal, even when this
                # process runs where SIGINT is ignored (a background job).
                preexec_fn=_default_interrupt,
            )
        try:
            self.url = self._wait_for_address(startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_for_address(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"serving on (http://\S+/)", self.log_path.read_text())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"the server did not start:\n{self.log_path.read_text()}")

    def stop(self, how: int = signal.SIGTERM) -> int:
        """Stop the server with the signal ``how`` (killed after 30 s);
        returns its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(how)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return self.process.returncode

    def memory(self, field: str = "VmRSS") -> int:
        """The server's resident memory in bytes (Linux): ``"VmRSS"`` now, or
        ``"VmHWM"``, the peak since it started or :meth:`reset_peak`."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} for the server process")

    def reset_peak(self) -> None:
        """Start the peak (``VmHWM``) afresh from the current RSS (Linux)."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def worst_case_upload() -> bytes:
    """The upload that costs a server with the default limits the most memory
    per byte sent: a digit on a 4096 x 4096 RGBA canvas (the most pixels
    accepted), a PNG of a few dozen KB that decodes to 64 MB."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (4096, 4096), (255, 255, 255, 255))
    ImageDraw.Draw(image).line([(1000, 800), (3000, 800), (2000, 3200)], "black", 300)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _default_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def _read_upload(request: Request, limit: int) -> bytes:
    """The image bytes of a raw or multipart body, never reading more than
    ``limit`` bytes of it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(limit)
    received = 0

    async def receive():
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _TooLarge(limit)
        return message

    counted = Request(request.scope, receive)
    # Media types are case-insensitive.
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith("multipart/form-data"):
        data = b"".join([chunk async for chunk in counted.stream()])
    else:
        async with counted.form(max_files=1, max_fields=10) as form:
            files = [value for _, value in form.multi_items() if hasattr(value, "read")]
            if len(files) != 1:
                raise HTTPException(
                    400, f"expected one file in the form upload, got {len(files)}"
                )
            data = await files[0].read()
    if not data:
        raise HTTPException(400, "the request has no image: its body is empty")
    return data


def _predict_proba(model, data: bytes, max_pixels: int) -> np.ndarray:
    # The same decoding as load_digit_image, which reads files by name: the
    # same picture goes to the same preprocess_digit_image, and each failure
    # gets its own status, in the client's terms; the details go to the log.
    try:
        picture = decode_image(io.BytesIO(data), max_pixels)
    except ImageDecodeError as error:
        _log.warning("refused an upload of %d bytes: %s", len(data), error)
        if error.reason == "format":
            raise HTTPException(
                415,
                f"not an image in one of the formats read ({', '.join(IMAGE_FORMATS)})",
            ) from None
        if error.reason == "size":
            raise HTTPException(
                413,
                f"the image has more pixels than the limit of {max_pixels} "
                f"({error.pixels or 'too many to decode'})",
            ) from None
        raise HTTPException(
            400, "the image cannot be read: it is damaged or truncated"
        ) from None
    try:
        digit = preprocess_decoded_image(picture)
    except ValueError as error:
        # Decoded above, so this is about what it shows: no digit.
        raise HTTPException(422, str(error)) from None
    return model.predict_proba(digit[np.newaxis])[0]


def _check_predicts_digits(model, n_classes: int) -> None:
    """Refuse a model that cannot classify one 28x28 digit, at start rather than
    with every request; the first prediction also readies the network."""
    try:
        proba = np.asarray(model.predict_proba(np.zeros((1, 28, 28), np.uint8)))
    except Exception as error:
        raise TypeError(
            f"the model to serve must classify MNIST-style digits of shape "
            f"(n, 28, 28); predicting one failed with {type(error).__name__}: "
            f"{first_line(error)}"
        ) from None
    if proba.shape != (1, n_classes):
        raise TypeError(
            f"the model to serve must give one probability per class; for one "
            f"digit it gave shape {proba.shape}, with {n_classes} classes"
        )


def _static_file(name: str):
    from importlib.resources import files

    return files("skmnist") / _PAGE / name


def _plain(value) -> Any:
    """A NumPy scalar as the Python one, for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _scalar_params(model) -> dict:
    params = {}
    for name, value in sorted(model.get_params(deep=True).items()):
        value = _plain(value)
        if value is None or isinstance(value, (bool, int, float, str)):
            params[name] = value
    return params
