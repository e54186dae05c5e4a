"""shared/http.py's error middleware during a database outage: every request is answered
503, and the log says it twice (when the failures start and when a request gets through
again), never once per request."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shared import http
from shared.db import create_pool
from shared.outage import OutageWatch


@pytest.fixture
def fresh_watch(monkeypatch):
    # the watch is per process: another test's outage must not decide what this one logs
    monkeypatch.setattr(http, "_database", OutageWatch("database", "http"))
    monkeypatch.setattr(http, "_failed_routes", set())


def app_over(pools: list) -> web.Application:
    """A route that reads the database (through the newest pool) and one that does not."""

    async def one(_: web.Request) -> web.Response:
        return web.json_response({"one": await pools[-1].fetchval("SELECT 1")})

    app = web.Application(middlewares=[http.error_middleware])
    app.router.add_get("/one", one)
    app.router.add_get("/healthz", http.health)
    return app


def outage_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "shared.outage" and r.ctx["component"] == "http"]


async def test_an_outage_is_one_line_when_requests_fail_and_one_when_they_pass(
        base_settings, fresh_watch, caplog):
    gone = await create_pool(base_settings)
    await gone.close()  # the database "goes away" under the requests
    pools = [gone]
    async with TestClient(TestServer(app_over(pools))) as client:
        with caplog.at_level(logging.INFO):
            answers = await asyncio.gather(*(client.get("/one") for _ in range(50)))
            assert {a.status for a in answers} == {503}
            assert {(await a.json())["message"] for a in answers} == {http.DATABASE_AWAY}
            assert outage_lines(caplog) == ["database unavailable"]

            # a route that never reads the database answers all along: no news of it
            assert (await client.get("/healthz")).status == 200
            assert (await client.get("/one")).status == 503
            assert outage_lines(caplog) == ["database unavailable"]

            pools.append(await create_pool(base_settings))
            try:
                for _ in range(5):
                    assert (await client.get("/one")).status == 200
            finally:
                await pools[-1].close()
    assert outage_lines(caplog) == ["database unavailable", "database back"]
    assert not [r for r in caplog.records if r.name == "shared.http"]  # nothing per request
