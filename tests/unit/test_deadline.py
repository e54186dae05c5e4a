"""The caller's deadline: parsed defensively, and a request past it is abandoned (its
handler cancelled, a 504 answered) instead of finished for nobody."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.deadline import DEADLINE_HEADER, budget_seconds, deadline_header, deadline_middleware


@pytest.mark.parametrize(("header", "budget"), [
    ("15000", 14.9), ("100", 0.05), ("1", 0.001), (deadline_header(2.5), 2.4),
    ("99999999", None), ("-5", None), ("1.5", None), ("", None), ("١٢", None), (None, None),
])
def test_budget_is_what_the_caller_waits_less_a_margin(header, budget):
    assert budget_seconds(header) == budget


async def test_a_request_past_its_deadline_is_cancelled_and_answered_504():
    events: list[str] = []

    async def slow(_: web.Request) -> web.Response:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise
        events.append("finished")
        return web.json_response({})

    async def own_timeout(_: web.Request) -> web.Response:
        raise TimeoutError  # e.g. a database call's own timeout: not the deadline's business

    app = web.Application(middlewares=[deadline_middleware])
    app.router.add_get("/slow", slow)
    app.router.add_get("/own", own_timeout)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            url = str(server.make_url("/slow"))
            async with http.get(url, headers={DEADLINE_HEADER: "400"}) as answer:
                assert answer.status == 504
                assert "deadline" in (await answer.json())["message"]
            assert events == ["cancelled"]
            async with http.get(str(server.make_url("/own")),
                                headers={DEADLINE_HEADER: "5000"}) as answer:
                # passed on to the next layer (aiohttp's own plain 504), not taken for ours
                assert answer.content_type != "application/json"
    finally:
        await server.close()
