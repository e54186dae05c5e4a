"""Every service's /metrics, /internal/* and detailed /readyz answer only callers from
ADMIN_ALLOWED_NETWORKS (a peer on a Unix socket is this machine); others get 404 and the
bare readiness status."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestServer

from order_service.app import create_app


async def get(url: str) -> tuple[int, dict | None]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        if resp.content_type != "application/json":
            return resp.status, None
        return resp.status, await resp.json()


async def post(url: str, body: dict) -> int:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        return resp.status


async def test_private_endpoints_refuse_callers_outside_the_admin_networks(base_settings):
    outside = TestServer(create_app(base_settings.model_copy(update={
        "admin_allowed_networks": "10.255.255.0/24"})), host="127.0.0.1")
    inside = TestServer(create_app(base_settings), host="127.0.0.1")
    for server in (outside, inside):
        await server.start_server()
    try:
        out, ins = (str(s.make_url("")).rstrip("/") for s in (outside, inside))
        assert (await get(out + "/metrics"))[0] == 404
        assert await post(out + "/internal/payment-statuses", {"reads": [[1, None]]}) == 404
        status, body = await get(out + "/readyz")
        assert status == 200 and set(body) == {"status"}
        assert (await get(out + "/healthz"))[0] == 200

        assert (await get(ins + "/metrics"))[0] == 200
        assert await post(ins + "/internal/payment-statuses", {"reads": [["1", None]]}) == 200
        status, body = await get(ins + "/readyz")
        assert status == 200 and "database" in body["checks"]
    finally:
        for server in (outside, inside):
            await server.close()
