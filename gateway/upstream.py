"""The gateway's kept-alive connections to its own services, through aiohttp's client.

One `UpstreamPool` per lane (gateway/routes.py) holds at most `limit` calls at once, so a
lane stuck on a slow Razorpay never takes the connections another lane needs. A service on
this machine can be reached on Unix sockets, one per process of it
(shared/local_sockets.py): calls take them in turn, skipping one that does not answer (a
process restarting).

Failures map to what the caller can safely say (gateway/proxy.py):
- `NotSent`: no connection could be had in time, or none could be made: the service cannot
  have acted, so a retry is safe.
- `Disconnected`: the connection broke after the request was written, or the answer did
  not parse.
- `UpstreamTimeout`: no complete answer within the deadline. The connection is closed, so
  the service sees the caller go (and stops, shared/deadline.py).
aiohttp sends a GET once more on a new connection when a kept one turns out closed by the
service (a restart, an idle timeout): a GET changes nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

# An idle connection older than this is closed rather than reused: aiohttp's server closes
# idle keep-alive connections after 75 s, and a request written just as the service closes
# one would be lost on the way.
IDLE_SECONDS = 30.0
CONNECT_SECONDS = 5.0  # the longest a call waits for a new connection, within its deadline


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
    """Where a service listens: its base URL, or the sockets of its processes."""

    base_url: str  # scheme, host, port and path prefix: "http://svc:8081/prefix"
    unix_paths: tuple[str, ...] = ()  # set: connect to these sockets, not to the URL's host

    @classmethod
    def local(cls, unix_paths: tuple[str, ...]) -> Upstream:
        """A service on this machine, one Unix socket per process of it."""
        if not unix_paths:
            raise ValueError("no socket to connect to")
        return cls("http://localhost", unix_paths)

    @classmethod
    def parse(cls, base_url: str) -> Upstream:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        return cls(f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}")

    def url(self, target: str) -> URL:
        """`target` (path and query as the client sent them) under the base, not re-quoted."""
        return URL(self.base_url + target, encoded=True)


class UpstreamPool:
    """At most `limit` calls at once (to any of the services it is used for), on connections
    kept alive between calls. Callers beyond the limit wait, within their own deadline."""

    def __init__(self, limit: int, keep_headers: Iterable[str]) -> None:
        self._limit = limit
        self._slots = asyncio.Semaphore(limit)
        self._keep = tuple(keep_headers)
        self._sessions: dict[str | None, aiohttp.ClientSession] = {}  # by socket; None: TCP
        self._turns: dict[Upstream, itertools.count] = {}  # whose socket a call takes

    async def request(self, upstream: Upstream, method: str, target: str,
                      headers: Iterable[tuple[str, str]], body: bytes,
                      timeout: float) -> Answer:
        """`target`: the path and query as the client sent them (percent-encoded)."""
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:
            raise NotSent("no connection free in time") from None
        try:
            refused = NotSent("no socket")
            for path in self._sockets_in_turn(upstream):
                try:
                    return await self._exchange(self._session(path), method,
                                                upstream.url(target), headers, body, deadline)
                except NotSent as exc:  # this process is away: the next one may answer
                    refused = exc
            raise refused
        finally:
            self._slots.release()

    def _sockets_in_turn(self, upstream: Upstream) -> list[str | None]:
        paths = upstream.unix_paths
        if not paths:
            return [None]
        # From a random first one: several gateways do not all start on the same process.
        turns = self._turns.get(upstream)
        if turns is None:
            turns = self._turns[upstream] = itertools.count(random.randrange(len(paths)))
        first = next(turns)
        return [paths[(first + n) % len(paths)] for n in range(len(paths))]

    def _session(self, unix_path: str | None) -> aiohttp.ClientSession:
        session = self._sessions.get(unix_path)
        if session is None:
            options = {"limit": self._limit, "keepalive_timeout": IDLE_SECONDS}
            connector = (aiohttp.UnixConnector(unix_path, **options) if unix_path
                         else aiohttp.TCPConnector(**options))
            session = self._sessions[unix_path] = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # one client's cookies never reach another
                auto_decompress=False,
                # the service sees the client's own headers, not defaults of ours
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return session

    async def _exchange(self, session: aiohttp.ClientSession, method: str, url: URL,
                        headers: Iterable[tuple[str, str]], body: bytes,
                        deadline: float) -> Answer:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise NotSent("no time left to connect")
        timeout = aiohttp.ClientTimeout(total=remaining,
                                        connect=min(CONNECT_SECONDS, remaining))
        try:
            async with session.request(method, url, headers=list(headers), data=body,
                                       allow_redirects=False, timeout=timeout) as response:
                content = await response.read()
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotSent(f"cannot connect: {type(exc).__name__}") from None
        except TimeoutError:
            raise UpstreamTimeout("no answer in time") from None
        except aiohttp.ClientError as exc:
            raise Disconnected(f"no whole answer: {type(exc).__name__}") from None
        kept = {name.lower(): response.headers[name] for name in self._keep
                if name in response.headers}
        return Answer(response.status, response.reason or "", kept, content)

    async def close(self) -> None:
        """Closes the connections; a call still in flight fails as Disconnected."""
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
