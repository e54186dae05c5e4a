"""RabbitMQ going away and coming back, as an operator reads it: /readyz says so on every
service that uses the broker (the producers and the gateway stay ready: events wait in the
outbox; the notifier, which cannot work, is not), and each process logs one warning when it
goes and one when it is back, never a traceback or a warning per reconnect attempt from the
AMQP library."""

from __future__ import annotations

import asyncio

import pytest

from testkit.api_client import call
from testkit.infra import eventually
from tests.support.logs import BROKER_USERS, log_sizes, new_lines

pytestmark = pytest.mark.e2e

PRODUCERS = ("order_service", "verification_service", "webhook_service")
OUTAGE_SECONDS = 12  # long enough for several reconnect attempts (aio-pika's are 5 s apart)


async def readiness(http, stack, name: str) -> tuple[int, dict]:
    status, body, _ = await call(http, "GET", f"http://127.0.0.1:{stack.ports[name]}/readyz")
    return status, body


async def test_broker_outage_is_one_warning_each_way_and_readyz_follows(stack, rabbit, http):
    async def all_ready():
        answers = [await readiness(http, stack, name) for name in (*BROKER_USERS, "gateway")]
        return all(status == 200 for status, _ in answers)

    await eventually(all_ready, timeout=30, interval=0.5)
    since = log_sizes(stack)
    await asyncio.to_thread(rabbit.stop)
    try:
        async def broker_down_everywhere():
            answers = {name: await readiness(http, stack, name) for name in BROKER_USERS}
            return answers if all(
                body["checks"]["broker"] != "ok" and body["checks"]["database"] == "ok"
                for _, body in answers.values()) else None

        answers = await eventually(broker_down_everywhere, timeout=20, interval=0.5)
        for name in PRODUCERS:  # they serve on: create-order, verify, webhooks
            status, body = answers[name]
            assert (status, body["status"]) == (200, "ready"), (name, body)
            assert body["checks"]["broker"].startswith("degraded: "), (name, body)
        assert answers["notifier"][0] == 503, answers["notifier"]
        status, body = await readiness(http, stack, "gateway")
        assert (status, body["status"]) == (200, "ready"), body
        assert body["checks"]["order_service"] == "ok"
        status, _, _ = await call(http, "POST", f"{stack.gateway}/api/razorpay/create-order",
                                  json={})
        assert status == 400  # the API answers as ever: here, the body is refused
        await asyncio.sleep(OUTAGE_SECONDS)
    finally:
        await asyncio.to_thread(rabbit.start)
    await eventually(all_ready, timeout=60, interval=0.5)

    for name, lines in new_lines(stack, since).items():
        raw = [line["raw"] for line in lines if "raw" in line]
        assert not any("Traceback" in text for text in raw), (name, raw[:5])
        tracebacks = [line for line in lines if "Traceback" in str(line.get("error"))]
        assert not tracebacks, (name, tracebacks[:2])
        loud = [line for line in lines
                if line.get("level") in ("warning", "error", "critical")]
        assert [line["msg"] for line in loud] == ["broker unavailable", "broker back"], (
            name, [(line.get("logger"), line.get("msg")) for line in loud])
