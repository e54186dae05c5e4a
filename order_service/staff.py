"""The counter's API: POST /api/passes/scan, for staff (Bearer STAFF_API_TOKEN) only."""

from __future__ import annotations

from aiohttp import web

from order_service import pass_scans
from order_service.bearer import require_bearer
from order_service.schemas import ScanBody
from shared.http import read_json_object
from shared.schemas import parse
from shared.service import POOL, SETTINGS

STAFF_DISABLED = "Staff API is disabled: set STAFF_API_TOKEN to enable it"
STAFF_REQUIRED = "Staff authentication required"
MISSING_TOKEN = "Missing required fields: token"


async def scan_pass(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    require_bearer(request, settings.staff_api_token,
                   disabled=STAFF_DISABLED, required=STAFF_REQUIRED)
    body = parse(ScanBody, await read_json_object(request), ("token",), MISSING_TOKEN)
    answer = await pass_scans.scan_pass(request.app[POOL], settings, body.token.strip(),
                                        request.headers.get("X-Request-Id"))
    return web.json_response(answer.body, status=answer.status)
