"""Idempotency-Key for the admin endpoints: the first answer is stored and given again.

A key is claimed (row inserted) before the work starts, in its own committed statement, so
two requests racing with one key never both do the work: the second gets 409 "in progress"
until the first has stored its answer. The same key with another body is refused (422).
A claim whose work died with its process (no answer after CLAIM_TIMEOUT) may be taken over:
the work itself is safe to repeat (a refund finds its own row again by this key).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg

from shared.db import Autocommit
from shared.http import HttpError

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
CLAIM_TIMEOUT = timedelta(seconds=120)
MISSING_KEY = "Idempotency-Key header is required"
KEY_REUSED = "Idempotency-Key was already used with a different request"
IN_PROGRESS = "A request with this Idempotency-Key is still in progress; retry shortly"

Work = Callable[[], Awaitable[dict[str, Any]]]


def idempotency_key(headers) -> str:
    key = (headers.get(HEADER) or "").strip()
    if not key:
        raise HttpError(MISSING_KEY, 400)
    if len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise HttpError(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return key


def request_hash(endpoint: str, body: dict[str, Any]) -> str:
    canonical = json.dumps([endpoint, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def run_once(
    pool: asyncpg.Pool, endpoint: str, key: str, digest: str, work: Work
) -> tuple[int, dict[str, Any]]:
    """(status, body) of the first request with this key; runs `work` (its 200 body) only
    for that one. 4xx answers are kept too (the same request gets the same refusal); a failure that
    raises (5xx) releases the key so a retry does the work."""
    async with pool.acquire() as conn:
        claimed = await Autocommit(conn).fetchval(
            "INSERT INTO idempotent_requests (endpoint, key, request_hash) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true", endpoint, key, digest)
        if not claimed:
            stored = await conn.fetchrow(
                "SELECT * FROM idempotent_requests WHERE endpoint = $1 AND key = $2",
                endpoint, key)
            if stored is None:  # released meanwhile: ask the client to come again
                raise HttpError(IN_PROGRESS, 409, {"Retry-After": "1"})
            if stored["request_hash"] != digest:
                raise HttpError(KEY_REUSED, 422)
            if stored["response"] is not None:
                return stored["status_code"], stored["response"]
            claimed = await Autocommit(conn).fetchval(
                "UPDATE idempotent_requests SET created_at = now()"
                " WHERE endpoint = $1 AND key = $2 AND response IS NULL"
                " AND created_at < now() - $3::interval RETURNING true",
                endpoint, key, CLAIM_TIMEOUT)
            if not claimed:
                raise HttpError(IN_PROGRESS, 409, {"Retry-After": "1"})
    try:
        status, answer = 200, await work()
    except HttpError as exc:
        if exc.status >= 500:
            await _release(pool, endpoint, key)
            raise
        status, answer = exc.status, {"message": exc.message}
    except BaseException:
        await _release(pool, endpoint, key)
        raise
    async with pool.acquire() as conn:
        await Autocommit(conn).execute(
            "UPDATE idempotent_requests SET status_code = $3, response = $4::text::jsonb,"
            " completed_at = now() WHERE endpoint = $1 AND key = $2",
            endpoint, key, status, json.dumps(answer, default=str))
    return status, answer


async def _release(pool: asyncpg.Pool, endpoint: str, key: str) -> None:
    try:
        async with pool.acquire() as conn:
            await Autocommit(conn).execute(
                "DELETE FROM idempotent_requests WHERE endpoint = $1 AND key = $2"
                " AND response IS NULL", endpoint, key)
    except Exception:  # noqa: BLE001 - the claim then times out instead
        pass
