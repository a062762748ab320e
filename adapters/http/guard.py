"""What stands between a hostile client and the engine (issue 13), in front of every route.

* Every response carries an ``X-Request-Id``; an error no route expected is a JSON
  problem response (Open311: the spec's error list) with that id, never plain text,
  and one log line naming the error and where it happened (no local variables).
* Public reads (every GET under ``/open311/v2/``, ``/api/v1/track/…``, the index
  and the OpenAPI pages, and any GET without a bearer token) are limited per client
  address by a token bucket (``GRIDCASE_HTTP_PUBLIC_RATE`` a second, bursts of
  ``GRIDCASE_HTTP_PUBLIC_BURST``): over it, 429 with ``Retry-After``.
* At most ``GRIDCASE_HTTP_PUBLIC_THREADS`` public reads run at a time; the others
  wait on the event loop, holding no request thread, so writes and staff queries
  always find one free. Writes are never limited here: they need a token.
"""

from __future__ import annotations

import asyncio
import math
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from starlette.requests import Request

from adapters.http.errors import ApiError, error_response
from domain.redaction import describe_error

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("gridcase.http")

#: Paths every GET of which is public (no token needed), besides the Open311 side.
PUBLIC_PREFIXES = ("/open311/", "/api/v1/track/")
PUBLIC_PATHS = frozenset({"/", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
READ_METHODS = frozenset({"GET", "HEAD"})
#: Worker threads for request handlers (the app sets the thread pool to this).
REQUEST_THREADS = 4
#: Public reads that may wait for a free slot; past this they are told to come back (503).
MAX_WAITING = 200
#: Client addresses remembered at most; full buckets are forgotten first.
MAX_CLIENTS = 50_000


@dataclass
class Buckets:
    """A token bucket per client address: ``rate`` tokens a second, at most ``burst`` saved up."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    #: address -> (tokens left, when counted)
    levels: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, client: str) -> float:
        """Take one token for the client: 0 if it may go on, else the seconds until it may."""
        now = self.clock()
        tokens, then = self.levels.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens >= 1:
            self.levels[client] = (tokens - 1, now)
            if len(self.levels) > MAX_CLIENTS:
                self._forget(now)
            return 0.0
        self.levels[client] = (tokens, now)
        return (1 - tokens) / self.rate

    def _forget(self, now: float) -> None:
        full = self.burst / self.rate
        for client, (_, then) in list(self.levels.items()):
            if now - then >= full:
                del self.levels[client]
        if len(self.levels) > MAX_CLIENTS:  # a flood of fresh addresses: start over rather than grow
            self.levels.clear()


def is_public_read(scope: Scope) -> bool:
    """Whether a request is a public (or token-less) read, which the limits apply to."""
    if scope["method"] not in READ_METHODS:
        return False
    path: str = scope["path"]
    if path.startswith(PUBLIC_PREFIXES) or path in PUBLIC_PATHS:
        return True
    return not any(name == b"authorization" for name, _ in scope["headers"])


class Guard:
    """ASGI middleware: request ids, no unhandled error in plain text, the public reads' rate and slots."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.buckets: Buckets | None = None
        self.slots: asyncio.Semaphore | None = None
        self.waiting = 0

    def _configure(self, scope: Scope) -> tuple[Buckets, asyncio.Semaphore]:
        if self.buckets is None or self.slots is None:
            runtime = getattr(scope["app"].state, "runtime", None)
            settings = getattr(runtime, "settings", None)
            rate = float(getattr(settings, "http_public_rate", 10.0))
            burst = int(getattr(settings, "http_public_burst", 40))
            threads = int(getattr(settings, "http_public_threads", 2))
            self.buckets = Buckets(rate, burst)
            # Never every thread: a write always finds one free.
            self.slots = asyncio.Semaphore(max(1, min(threads, REQUEST_THREADS - 1)))
        return self.buckets, self.slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (or connection) through the guard."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            if is_public_read(scope):
                await self._public(scope, receive, sending)
            else:
                await self.app(scope, receive, sending)
        except Exception as error:  # noqa: BLE001 - the one place every unexpected error ends
            _log_failure(scope, request_id, error)
            if started:  # the answer is half sent: nothing better than to cut it short
                return
            problem = ApiError(500, "internal", f"internal error; the request id is {request_id}")
            response = error_response(Request(scope), problem)
            await response(scope, receive, sending)

    async def _public(self, scope: Scope, receive: Receive, send: Send) -> None:
        buckets, slots = self._configure(scope)
        client = scope.get("client")
        wait = buckets.take(client[0] if client else "unknown")
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            message = f"too many requests from this address: at most {buckets.rate:g} a second; retry in {seconds} s"
            await _refuse(scope, receive, send, 429, "rate_limited", message, seconds)
            return
        if self.waiting >= MAX_WAITING:
            await _refuse(scope, receive, send, 503, "busy", "too many public reads waiting; retry in 1 s", 1)
            return
        self.waiting += 1
        try:
            await slots.acquire()
        finally:
            self.waiting -= 1
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str,
                  retry_after: int) -> None:  # fmt: skip
    response = error_response(Request(scope), ApiError(status, code, message))
    response.headers["Retry-After"] = str(retry_after)
    await response(scope, receive, send)


def _log_failure(scope: Scope, request_id: str, error: BaseException) -> None:
    """One line: the request, the error and the innermost frame; the stack (never the locals) at debug level."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else "?"
    log.error("request failed", request_id=request_id, method=scope.get("method"), path=scope.get("path"),
              error=describe_error(error), at=where)  # fmt: skip
    log.debug("request failed: stack", request_id=request_id,
              stack="".join(traceback.format_list(frames)))  # fmt: skip
