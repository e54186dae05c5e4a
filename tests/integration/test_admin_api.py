"""order_service's admin API as an app: disabled without ADMIN_API_TOKEN, 401 without the
right bearer token (checked before anything else is read)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from order_service.admin import ADMIN_DISABLED, ADMIN_REQUIRED
from order_service.app import create_app

PATHS = ("/api/razorpay/refunds", "/api/razorpay/bookings/1/cancel")


@pytest.mark.parametrize("path", PATHS)
async def test_disabled_when_the_token_is_unset(base_settings, path):
    app = create_app(base_settings.model_copy(update={"admin_api_token": ""}),
                     relay=False, reconciler=False)
    async with TestClient(TestServer(app)) as client:
        response = await client.post(path, json={"booking_id": 1},
                                     headers={"Authorization": "Bearer ", "Idempotency-Key": "k"})
        assert (response.status, await response.json()) == (403, {"message": ADMIN_DISABLED})


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic c2VjcmV0", "secret"])
async def test_unauthorised_without_the_right_bearer_token(base_settings, path, authorization):
    app = create_app(base_settings.model_copy(update={"admin_api_token": "secret"}),
                     relay=False, reconciler=False)
    headers = {"Idempotency-Key": "k"} | ({"Authorization": authorization} if authorization
                                         else {})
    async with TestClient(TestServer(app)) as client:
        response = await client.post(path, json={"booking_id": 1}, headers=headers)
        assert (response.status, await response.json()) == (401, {"message": ADMIN_REQUIRED})
        assert response.headers["WWW-Authenticate"] == "Bearer"
