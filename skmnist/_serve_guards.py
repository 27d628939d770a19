"""What stands between the network and ``skmnist serve``'s endpoints.

The service has no authentication and speaks plain HTTP: it belongs on
loopback, or behind a proxy that adds both. What it defends itself against
even there (the first three by ASGI middleware around the FastAPI
application):

- *DNS rebinding*: a web page whose name resolves to 127.0.0.1 would reach a
  loopback server from the user's browser; only requests whose ``Host`` names
  an allowed host are served (Starlette's ``TrustedHostMiddleware``).
- *Cross-origin requests*: a browser that sends an ``Origin`` other than the
  server's own (another site's page posting to ``/predict``) is refused;
  clients that send none (curl, scripts) are served.
- *Framing, sniffing and leaking referrers*: every response carries
  ``X-Content-Type-Options: nosniff``, a ``Content-Security-Policy`` that fits
  the self-contained draw page (and FastAPI's ``/docs`` pages, which load
  their scripts from a CDN), ``frame-ancestors 'none'`` and a
  ``Referrer-Policy``.
- *Too much work at once* (not middleware: the endpoint takes its turn, so
  that no path spelling escapes it): :class:`Turns` lets the prediction
  endpoint work on a bounded number of requests at a time, each over its
  whole request, body reading included; a bounded number of others wait with
  their bodies unread (the server reads no more than its flow-control buffer
  of each), and any more are refused at once, so memory does not grow with
  the number of clients. Other endpoints (``/health``) never wait behind
  them.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Hosts every server answers to, whatever address it is bound to.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

_PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's Swagger UI and ReDoc pages: an inline script and assets from
# jsDelivr, as FastAPI serves them.
_DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.jsdelivr.net; "
    "worker-src blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/redoc")
_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


def add_guards(app: Starlette, *, allowed_hosts: Sequence[str]) -> None:
    """Put the middleware of this module around ``app``'s routes (the
    outermost last: a request from a foreign host or origin is refused before
    it reaches an endpoint, to wait for a turn or be read)."""
    app.add_middleware(SameOriginOnly)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(SecurityHeaders)


def security_headers(path: str) -> dict[str, str]:
    """The headers every response to ``path`` carries (for responses made
    outside the middleware, such as the 500 handler's)."""
    policy = _DOCS_POLICY if path.startswith(_DOCS_PATHS) else _PAGE_POLICY
    return {**_HEADERS, "content-security-policy": policy}


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        own = [
            (name.encode(), value.encode())
            for name, value in security_headers(_route_path(scope)).items()
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in _OWN_HEADER_NAMES
                ]
                message = {**message, "headers": headers + own}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_OWN_HEADER_NAMES = {name.encode() for name in security_headers("/")}


class SameOriginOnly:
    """Refuse (403) a request whose ``Origin`` is not the server's own: the
    ``Origin``'s scheme must be the request's (``https`` behind a proxy that
    says so) and its host and port those of the ``Host`` header, which
    :class:`TrustedHostMiddleware` has checked."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not _same_origin(
                origin, scope.get("scheme", "http"), headers.get("host")
            ):
                response = JSONResponse(
                    {
                        "detail": "cross-origin requests are not served: this "
                        "service answers its own page and clients that send no "
                        "Origin header (curl, scripts)"
                    },
                    403,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _same_origin(origin: str, scheme: str, host: str | None) -> bool:
    """Whether ``origin`` names the request's ``scheme`` and the host and port
    of its ``Host`` header (a port left out is the scheme's default); "null"
    (a sandboxed page, a local file) never does."""
    try:
        theirs, ours = urlsplit(origin), urlsplit(f"//{host}")
        default = {"http": 80, "https": 443}.get(theirs.scheme.lower())
        return (
            host is not None
            and default is not None
            and theirs.scheme.lower() == scheme.lower()
            and theirs.hostname is not None
            and (theirs.hostname, theirs.port or default)
            == (ours.hostname, ours.port or default)
        )
    except ValueError:  # a port that is no number, a malformed IPv6 literal
        return False


class Busy(Exception):
    """More requests wait for a turn than :class:`Turns` lets wait."""


class Turns:
    """At most ``limit`` holders of a turn at once; at most ``waiting`` others
    wait for one, and any more are refused at once (:class:`Busy`): a waiting
    connection costs the server its buffered bytes (up to about 140 KB), so
    their number is bounded too. One semaphore per event loop (a test client
    runs a loop per client)."""

    def __init__(self, limit: int, waiting: int):
        self.limit = limit
        self.waiting = waiting
        self._semaphores: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._waiters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @contextlib.asynccontextmanager
    async def turn(self):
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self.limit)
        if semaphore.locked() and self._waiters.get(loop, 0) >= self.waiting:
            raise Busy
        self._waiters[loop] = self._waiters.get(loop, 0) + 1
        try:
            await semaphore.acquire()
        finally:
            self._waiters[loop] -= 1
        try:
            yield
        finally:
            semaphore.release()


def _route_path(scope: Scope) -> str:
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
