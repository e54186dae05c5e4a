"""The gateway's kept-alive upstream calls (gateway/upstream.py) against real servers on
loopback: an aiohttp app like our services, and raw asyncio servers that answer in ways
an aiohttp app would not (chunked, a closing answer, garbage, silence)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from gateway.upstream import (
    Disconnected,
    NotSent,
    Upstream,
    UpstreamPool,
    UpstreamTimeout,
)

KEEP = ("Content-Type", "Retry-After")


@pytest_asyncio.fixture
async def service():
    """An aiohttp app that echoes, and records which client port each request came from."""
    peers: list[int] = []
    disconnects: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername")[1])
        if "sleep" in request.query:
            try:
                await asyncio.sleep(float(request.query["sleep"]))
            except asyncio.CancelledError:
                disconnects.append(request.path)
                raise
        body = await request.read()
        return web.json_response(
            {"method": request.method, "target": request.raw_path,
             "x": request.headers.get("X-Thing"), "body": body.decode()},
            headers={"Retry-After": "3", "X-Not-Kept": "1"}, status=int(
                request.query.get("status", 200)))

    app = web.Application(handler_args={"handler_cancellation": True})
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield Upstream.parse(str(server.make_url("")).rstrip("/")), peers, disconnects
    await server.close()


async def serve_raw(handle) -> tuple[asyncio.Server, Upstream]:
    """A raw asyncio server on a free loopback port, as an upstream."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, Upstream.parse(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")


async def raw_server(answer: bytes | None):
    """A server that reads one request and writes `answer` (None: says nothing)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        await asyncio.sleep(5)
        writer.close()

    return await serve_raw(handle)


async def answer_ok(reader, writer, seen: list[int]) -> None:
    """Read one request and answer 200 "ok", kept alive; note the client's port."""
    seen.append(writer.get_extra_info("peername")[1])
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await writer.drain()


async def test_answers_come_back_with_only_the_kept_headers(service):
    upstream, _, _ = service
    pool = UpstreamPool(4, KEEP)
    answer = await pool.request(upstream, "POST", "/a/b?q=%20x", [("X-Thing", "yes")],
                                b'{"k": 1}', timeout=5)
    assert answer.status == 200
    assert answer.reason == "OK"
    assert answer.headers == {"content-type": "application/json; charset=utf-8",
                              "retry-after": "3"}
    assert answer.body == (b'{"method": "POST", "target": "/a/b?q=%20x", "x": "yes",'
                           b' "body": "{\\"k\\": 1}"}')
    await pool.close()


async def test_a_connection_is_kept_and_reused(service):
    upstream, peers, _ = service
    pool = UpstreamPool(4, KEEP)
    for _ in range(5):
        assert (await pool.request(upstream, "GET", "/x", [], b"", timeout=5)).status == 200
    assert len(set(peers)) == 1
    await pool.close()


async def test_an_error_status_is_an_answer_too(service):
    upstream, _, _ = service
    pool = UpstreamPool(4, KEEP)
    answer = await pool.request(upstream, "GET", "/x?status=503", [], b"", timeout=5)
    assert answer.status == 503
    await pool.close()


async def test_a_base_path_prefixes_the_target(service):
    upstream, _, _ = service
    prefixed = Upstream.parse(f"{upstream.base_url}/prefix/")
    pool = UpstreamPool(1, KEEP)
    answer = await pool.request(prefixed, "GET", "/y", [], b"", timeout=5)
    assert b'"target": "/prefix/y"' in answer.body
    await pool.close()


async def test_a_slow_answer_times_out_and_the_service_sees_the_caller_go(service):
    upstream, peers, disconnects = service
    pool = UpstreamPool(4, KEEP)
    with pytest.raises(UpstreamTimeout):
        await pool.request(upstream, "GET", "/slow?sleep=5", [], b"", timeout=0.3)
    for _ in range(50):
        if disconnects:
            break
        await asyncio.sleep(0.05)
    assert disconnects == ["/slow"]
    # the timed-out connection is never reused: the next call opens another
    assert (await pool.request(upstream, "GET", "/x", [], b"", timeout=5)).status == 200
    assert len(set(peers)) == 2
    await pool.close()


async def test_a_caller_past_the_limit_waits_and_gives_up_unsent(service):
    upstream, peers, _ = service
    pool = UpstreamPool(1, KEEP)
    slow = asyncio.create_task(pool.request(upstream, "GET", "/slow?sleep=1", [], b"", 5))
    await asyncio.sleep(0.1)
    with pytest.raises(NotSent):
        await pool.request(upstream, "GET", "/x", [], b"", timeout=0.2)
    assert len(peers) == 1  # the second never reached the service
    assert (await slow).status == 200
    assert (await pool.request(upstream, "GET", "/x", [], b"", timeout=5)).status == 200
    await pool.close()


async def test_nobody_listening_is_not_sent():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = UpstreamPool(1, KEEP)
    with pytest.raises(NotSent):
        await pool.request(Upstream.parse(f"http://127.0.0.1:{port}"), "GET", "/", [], b"", 2)
    await pool.close()


async def test_a_chunked_answer_is_read_whole():
    answer = (b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    server, upstream = await raw_server(answer)
    pool = UpstreamPool(1, KEEP)
    got = await pool.request(upstream, "GET", "/", [], b"", timeout=2)
    assert (got.status, got.reason, got.body) == (201, "Created", b"hello world")
    await pool.close()
    server.close()


async def test_an_answer_that_closes_is_not_reused():
    connections = []

    async def handle(reader, writer):
        connections.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(5)  # the service keeps its end open: the client must not reuse it
        writer.close()

    server, upstream = await serve_raw(handle)
    pool = UpstreamPool(1, KEEP)
    assert (await pool.request(upstream, "GET", "/", [], b"", timeout=2)).body == b"ok"
    assert (await pool.request(upstream, "GET", "/", [], b"", timeout=2)).body == b"ok"
    assert len(connections) == 2
    await pool.close()
    server.close()


@pytest.mark.parametrize("answer", [b"SPDY/9 nonsense\r\n\r\n", b"HTTP/1.1 200 OK\r\nConte"])
async def test_garbage_or_a_cut_answer_is_disconnected(answer):
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()  # and hang up

    server, upstream = await serve_raw(handle)
    pool = UpstreamPool(1, KEEP)
    with pytest.raises(Disconnected):
        await pool.request(upstream, "GET", "/", [], b"", timeout=2)
    await pool.close()
    server.close()


async def test_a_connection_the_service_closed_while_idle_is_not_used():
    seen = []

    async def handle(reader, writer):
        await answer_ok(reader, writer, seen)
        writer.close()  # kept alive by the answer, closed by the service a moment later

    server, upstream = await serve_raw(handle)
    pool = UpstreamPool(1, KEEP)
    for method in ("GET", "POST"):
        await asyncio.sleep(0.05)
        assert (await pool.request(upstream, method, "/", [], b"", timeout=2)).body == b"ok"
    assert len(set(seen)) == 2
    await pool.close()
    server.close()


async def test_a_header_value_with_a_line_break_is_never_written(service):
    upstream, peers, _ = service
    pool = UpstreamPool(1, KEEP)
    with pytest.raises(ValueError):
        await pool.request(upstream, "GET", "/x", [("X-Thing", "a\r\nX-Evil: 1")], b"", 5)
    assert peers == []
    await pool.close()


def test_only_http_urls_are_upstreams():
    with pytest.raises(ValueError):
        Upstream.parse("ftp://127.0.0.1:21")
    assert Upstream.parse("https://svc.internal").base_url == "https://svc.internal"
    assert Upstream.parse("http://svc:8081/").url("/a%20b?c=d") == URL(
        "http://svc:8081/a%20b?c=d", encoded=True)


async def test_a_get_on_a_dropped_kept_connection_is_sent_again_on_a_new_one():
    """A raw service that answers the first request on a connection and hangs up on the
    second without a byte: the GET goes again on a fresh connection and succeeds."""
    seen = []

    async def handle(reader, writer):
        await answer_ok(reader, writer, seen)
        if len(seen) == 1:  # the first connection: take the next request, then hang up
            await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server, upstream = await serve_raw(handle)
    pool = UpstreamPool(1, KEEP)
    assert (await pool.request(upstream, "GET", "/", [], b"", timeout=2)).body == b"ok"
    assert (await pool.request(upstream, "GET", "/", [], b"", timeout=2)).body == b"ok"
    assert len(seen) == 2
    await pool.close()
    server.close()


async def test_a_post_on_a_dropped_kept_connection_is_not_sent_again():
    requests = []

    async def handle(reader, writer):
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()  # took the second request, answered nothing

    server, upstream = await serve_raw(handle)
    pool = UpstreamPool(1, KEEP)
    await pool.request(upstream, "POST", "/", [], b"", timeout=2)
    with pytest.raises(Disconnected):
        await pool.request(upstream, "POST", "/", [], b"", timeout=2)
    await asyncio.sleep(0.1)
    assert len(requests) == 2  # never a third
    await pool.close()
    server.close()


# --- a service on this machine, one Unix socket per process of it ------------------------


async def socket_app(path: str, name: str) -> web.AppRunner:
    """An aiohttp app on a Unix socket, as a service process with SOCKET_DIR listens."""

    async def who(request: web.Request) -> web.Response:
        return web.json_response({"process": name, "target": request.raw_path,
                                  "host": request.headers.get("Host")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", who)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, path).start()
    return runner


async def test_a_local_upstream_spreads_new_connections_over_its_processes(tmp_path):
    paths = tuple(str(tmp_path / f"svc-{n}.sock") for n in (1, 2))
    runners = [await socket_app(path, f"p{n}") for n, path in enumerate(paths, start=1)]
    pool = UpstreamPool(4, KEEP)
    upstream = Upstream.local(paths)
    # Four at once: four new connections, taken in turn.
    answers = await asyncio.gather(*(pool.request(upstream, "GET", f"/x?n={n}", [], b"", 5)
                                     for n in range(4)))
    seen = [json.loads(a.body) for a in answers]
    assert sorted(s["process"] for s in seen) == ["p1", "p1", "p2", "p2"]
    assert {s["host"] for s in seen} == {"localhost"}
    assert sorted(s["target"] for s in seen) == [f"/x?n={n}" for n in range(4)]
    await pool.close()
    for runner in runners:
        await runner.cleanup()


async def test_a_local_process_that_is_down_is_skipped(tmp_path):
    """A restarting process: its socket refuses (a file left behind) or is gone."""
    stale = str(tmp_path / "svc-1.sock")
    left_behind = socket.socket(socket.AF_UNIX)
    left_behind.bind(stale)  # bound, never listening: connecting is refused
    live = str(tmp_path / "svc-2.sock")
    runner = await socket_app(live, "p2")
    missing = str(tmp_path / "svc-3.sock")
    pool = UpstreamPool(6, KEEP)
    upstream = Upstream.local((stale, live, missing))
    answers = await asyncio.gather(*(pool.request(upstream, "GET", "/", [], b"", 5)
                                     for _ in range(6)))
    assert {a.status for a in answers} == {200}
    await pool.close()
    await runner.cleanup()
    left_behind.close()


async def test_no_local_process_answering_is_not_sent(tmp_path):
    pool = UpstreamPool(1, KEEP)
    with pytest.raises(NotSent):
        await pool.request(Upstream.local((str(tmp_path / "gone.sock"),)), "POST", "/", [],
                           b"{}", timeout=2)
    await pool.close()
    with pytest.raises(ValueError):
        Upstream.local(())
