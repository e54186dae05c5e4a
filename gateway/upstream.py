"""Kept-alive HTTP/1.1 connections from the gateway to its own services.

The gateway forwards every call to a service it knows (an aiohttp app that always answers
with a Content-Length or chunked body). aiohttp's ClientSession does much more per call
than that hop needs (URL objects, cookies, redirects, auto headers, tracing, a response
object with a stream): profiled under load it was half of the gateway's CPU per request.
Here a request is one write of ready bytes on an idle connection, and the answer is parsed
by httptools (llhttp, the parser of Node.js) as it arrives. A service on this machine can be
reached on Unix sockets, one per process of it (shared/local_sockets.py): new connections
take them in turn, skipping one that does not answer (a process restarting).

Failures map to what the caller can safely say (gateway/proxy.py):
- `NotSent`: no connection could be had in time, or none could be made: the service cannot
  have acted, so a retry is safe.
- `Disconnected`: the connection broke after the request was written, or the answer did
  not parse.
- `UpstreamTimeout`: no complete answer within the deadline. The connection is closed, so
  the service sees the caller go (and stops, shared/deadline.py).
A connection is reused only after a complete answer that allows it. A GET written on a
reused connection that the service had closed meanwhile (a restart, an idle timeout) and
that got no byte of an answer is sent once more on a new connection: a GET changes nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

# An idle connection older than this is closed rather than reused: aiohttp closes idle
# keep-alive connections after 75 s, and a request written just as the service closes
# one would be lost on the way (Disconnected) for no reason.
IDLE_SECONDS = 30.0


class UpstreamError(Exception):
    pass


class NotSent(UpstreamError):
    """Nothing reached the service."""


class Disconnected(UpstreamError):
    """The connection broke, or the answer was not HTTP, after the request was written."""


class UpstreamTimeout(UpstreamError):
    """The request was written and no complete answer came in time."""


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: dict[str, str]  # only the names the pool was asked to keep, lower case
    body: bytes


@dataclass(frozen=True)
class Upstream:
    """Where a service listens: from its base URL (`http://host:port/prefix`)."""

    host: str
    port: int
    ssl: bool
    prefix: str  # prepended to the request target; "" for a service at the root
    host_header: str
    unix_paths: tuple[str, ...] = ()  # set: connect to these sockets, not to host:port

    @classmethod
    def local(cls, unix_paths: tuple[str, ...]) -> Upstream:
        """A service on this machine, one Unix socket per process of it."""
        if not unix_paths:
            raise ValueError("no socket to connect to")
        return cls("localhost", 0, False, "", "localhost", unix_paths)

    @classmethod
    def parse(cls, base_url: str) -> Upstream:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        ssl = parts.scheme == "https"
        port = parts.port or (443 if ssl else 80)
        return cls(parts.hostname, port, ssl, parts.path.rstrip("/"), parts.netloc)


class _Connection(asyncio.Protocol):
    """One TCP connection and the answer it is reading; one request at a time."""

    def __init__(self, keep: frozenset[bytes]) -> None:
        self._keep = keep
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Answer] | None = None
        self._reason = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._reusable = False
        self.answered = False  # a byte of the current answer has arrived

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: this connection is not sane
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(Disconnected("the service's answer is not valid HTTP"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(Disconnected("the service closed the connection"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.answered = True

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in self._keep:
            self._headers[name.decode("latin-1")] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._reusable = self._parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self._parser.get_status_code(),
                                     self._reason.decode("latin-1"), self._headers,
                                     b"".join(self._body)))

    # ours
    def send(self, data: bytes) -> asyncio.Future[Answer]:
        self._reason, self._headers, self._body, self._reusable = b"", {}, [], False
        self.answered = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter

    @property
    def reusable(self) -> bool:
        return self._reusable and not self.closed and not self.transport.is_closing()

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """At most `limit` connections at once (to any of the services it is used for), kept
    alive between calls. Callers beyond the limit wait, within their own deadline."""

    def __init__(self, limit: int, keep_headers: Iterable[str],
                 connect_timeout: float = 5.0) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[Upstream, list[_Connection]] = {}
        self._keep = frozenset(name.lower().encode("latin-1") for name in keep_headers)
        self._connect_timeout = connect_timeout
        self._turns: dict[Upstream, itertools.count] = {}  # whose socket a new connection takes

    async def request(self, upstream: Upstream, method: str, target: str,
                      headers: Iterable[tuple[str, str]], body: bytes,
                      timeout: float) -> Answer:
        """`target`: the path and query as the client sent them (percent-encoded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        data = _request_bytes(method, upstream.prefix + target, upstream.host_header,
                              headers, body)
        if self._slots.locked():
            try:
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            except TimeoutError:
                raise NotSent("no connection free in time") from None
        else:
            await self._slots.acquire()  # free: returns at once
        try:
            conn = self._idle_connection(upstream)
            if conn is None:
                return await self._exchange(await self._connect(upstream, deadline), upstream,
                                            data, deadline)
            try:
                return await self._exchange(conn, upstream, data, deadline)
            except Disconnected:
                if method != "GET" or conn.answered:
                    raise
            # The service had closed the idle connection: a GET is safe to send again.
            return await self._exchange(await self._connect(upstream, deadline), upstream,
                                        data, deadline)
        finally:
            self._slots.release()

    async def _exchange(self, conn: _Connection, upstream: Upstream, data: bytes,
                        deadline: float) -> Answer:
        answer_waiter = conn.send(data)
        timer = asyncio.get_running_loop().call_at(deadline, _expire, answer_waiter)
        try:
            answer = await answer_waiter
        except BaseException:
            conn.close()  # a half-read answer (or a cancelled caller) ends the connection
            raise
        finally:
            timer.cancel()
        if conn.reusable:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(upstream, []).append(conn)
        else:
            conn.close()
        return answer

    def _idle_connection(self, upstream: Upstream) -> _Connection | None:
        idle = self._idle.get(upstream)
        too_old = time.monotonic() - IDLE_SECONDS
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closed
            if conn.reusable and conn.idle_since > too_old:
                return conn
            conn.close()
        return None

    async def _connect(self, upstream: Upstream, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        seconds = min(self._connect_timeout, max(0.0, deadline - loop.time()))
        try:
            async with asyncio.timeout(seconds):
                if upstream.unix_paths:
                    return await self._connect_local(upstream)
                _, conn = await loop.create_connection(
                    lambda: _Connection(self._keep), upstream.host, upstream.port,
                    ssl=upstream.ssl or None)
        except (OSError, TimeoutError) as exc:
            raise NotSent(f"cannot connect: {type(exc).__name__}") from None
        return conn

    async def _connect_local(self, upstream: Upstream) -> _Connection:
        """The next process's socket in turn; the ones after it if it does not answer."""
        paths = upstream.unix_paths
        # From a random first one: several gateways do not all start on the same process.
        turns = self._turns.get(upstream)
        if turns is None:
            turns = self._turns[upstream] = itertools.count(random.randrange(len(paths)))
        first = next(turns)
        loop = asyncio.get_running_loop()
        refused: OSError = OSError("no socket")
        for attempt in range(len(paths)):
            try:
                _, conn = await loop.create_unix_connection(
                    lambda: _Connection(self._keep), paths[(first + attempt) % len(paths)])
                return conn
            except OSError as exc:
                refused = exc
        raise refused

    async def close(self) -> None:
        """Closes the idle connections; one in use is closed by its call when that call is
        cancelled (the app cancels its handlers before its cleanup runs) or finishes."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout("no answer in time"))


def _request_bytes(method: str, target: str, host: str, headers: Iterable[tuple[str, str]],
                   body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    for name, value in headers:
        # The server's parser already refused CR/LF in what the client sent; this keeps a
        # value from ever splitting the request we write, whatever its origin.
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} holds a line break")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body
