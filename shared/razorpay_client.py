"""The one way our services talk to Razorpay: the official SDK, off the event loop, with a
timeout on every call, and every failure turned into one of three exceptions."""

from __future__ import annotations

import asyncio
import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import razorpay
import requests
import requests.adapters
import requests.utils
from razorpay.errors import BadRequestError, GatewayError, ServerError

from shared import metrics
from shared.settings import Settings

REFUND_NOTE = "a6_refund_id"  # the notes key naming our refund row on a Razorpay refund


class RazorpayError(Exception):
    """Base: Razorpay could not give us an answer we can act on."""


class RazorpayRejected(RazorpayError):
    """BAD_REQUEST_ERROR: Razorpay refused the request. Retrying the same request won't help."""


class RazorpayUnavailable(RazorpayError):
    """Connection refused/reset, 5xx, or an unreadable answer: retry later with back-off."""


class RazorpayTimeout(RazorpayUnavailable):
    """No answer within our timeout. The request may still have taken effect at Razorpay."""


@dataclass(frozen=True)
class OrderRequest:
    amount_paise: int
    receipt: str
    notes: dict[str, str]
    currency: str = "INR"
    capture_automatically: bool = True
    unique_receipt: bool = True


class RazorpayClient:
    def __init__(self, settings: Settings):
        workers = settings.razorpay_max_concurrency
        # Our own threads, and a connection pool as large: slow Razorpay answers must not
        # starve the default executor, which other blocking work (QR rendering) shares.
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=workers)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        base_url = settings.razorpay_base_url.rstrip("/")
        # requests reads proxy settings (HTTPS_PROXY, NO_PROXY…) from the environment on
        # every request: read them once, for the one host we call.
        session.proxies = requests.utils.get_environ_proxies(base_url)
        # ...and the CA bundle requests would take from the environment (a TLS-inspecting
        # proxy's CA): trust_env off would drop it with the proxies' per-request lookup.
        session.verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                          or os.environ.get("CURL_CA_BUNDLE") or True)
        session.trust_env = False
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="razorpay")
        self._client = razorpay.Client(
            session=session,
            auth=(settings.razorpay_key_id, settings.razorpay_key_secret),
            base_url=base_url,
        )
        self._client.set_app_details({"title": "A6Pay", "version": "0.1.0"})
        self.timeout = settings.razorpay_timeout_seconds

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.session.close()

    async def create_order(self, request: OrderRequest) -> dict[str, Any]:
        # unique_receipt: a retry with the same receipt returns the order the lost answer
        # had created, instead of a second order.
        body = {
            "amount": request.amount_paise,
            "currency": request.currency,
            "receipt": request.receipt,
            "notes": request.notes,
            "payment_capture": 1 if request.capture_automatically else 0,
        }
        if request.unique_receipt:
            body["unique_receipt"] = True
        return await self._call("create_order", self._client.order.create, body)

    async def find_order_by_receipt(self, receipt: str) -> dict[str, Any] | None:
        answer = await self._call("find_order", self._client.order.all, {"receipt": receipt})
        items = [o for o in answer.get("items", []) if o.get("receipt") == receipt]
        return items[0] if items else None

    async def fetch_order_payments(self, order_id: str) -> list[dict[str, Any]]:
        answer = await self._call("fetch_order_payments", self._client.order.payments, order_id)
        return list(answer.get("items", []))

    async def fetch_payment(self, payment_id: str) -> dict[str, Any]:
        return await self._call("fetch_payment", self._client.payment.fetch, payment_id)

    async def capture_payment(self, payment_id: str, amount_paise: int) -> dict[str, Any]:
        return await self._call("capture_payment", self._client.payment.capture,
                                payment_id, amount_paise, {"currency": "INR"})

    async def capture_or_fetch(self, payment_id: str, amount_paise: int) -> dict[str, Any]:
        """Capture; if Razorpay refuses (captured meanwhile by someone else), the payment
        as it now is."""
        try:
            return await self.capture_payment(payment_id, amount_paise)
        except RazorpayRejected:
            return await self.fetch_payment(payment_id)

    async def refund_payment(
        self, payment_id: str, amount_paise: int, *, refund_id: int, receipt: str
    ) -> dict[str, Any]:
        """Ask for a refund. `refund_id` (our row) goes into notes so that a refund whose
        answer was lost is found again by `find_refund` instead of being asked for twice, and
        names Razorpay's refund idempotency key: a retry of the call gets the same refund."""
        body = {
            "amount": amount_paise,
            "speed": "normal",
            "receipt": receipt,
            "notes": {REFUND_NOTE: str(refund_id)},
        }
        headers = {"X-Refund-Idempotency": f"a6-refund-{refund_id}"}  # one row, one key
        return await self._call("refund_payment", self._client.payment.refund, payment_id, body,
                                headers=headers)

    async def fetch_payment_refunds(self, payment_id: str) -> list[dict[str, Any]]:
        answer = await self._call("fetch_payment_refunds",
                                  self._client.payment.fetch_multiple_refund, payment_id,
                                  {"count": 100})
        return list(answer.get("items", []))

    async def find_refund(self, payment_id: str, refund_id: int) -> dict[str, Any] | None:
        """The refund Razorpay made for our refund row `refund_id`, if it made one."""
        for refund in await self.fetch_payment_refunds(payment_id):
            if str((refund.get("notes") or {}).get(REFUND_NOTE)) == str(refund_id):
                return refund
        return None

    async def fetch_refund(self, razorpay_refund_id: str) -> dict[str, Any]:
        return await self._call("fetch_refund", self._client.refund.fetch, razorpay_refund_id)

    async def recent_refunds(self, count: int = 100) -> list[dict[str, Any]]:
        """The newest refunds on the account, whoever made them (GET /v1/refunds)."""
        answer = await self._call("list_refunds", self._client.refund.all, {"count": count})
        return list(answer.get("items", []))

    async def fetch_dispute(self, dispute_id: str) -> dict[str, Any]:
        return await self._call("fetch_dispute", self._client.dispute.fetch, dispute_id)

    async def accept_dispute(self, dispute_id: str) -> dict[str, Any]:
        return await self._call("accept_dispute", self._client.dispute.accept, dispute_id, {})

    async def contest_dispute(self, dispute_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("contest_dispute", self._client.dispute.contest, dispute_id,
                                body)

    async def upload_document(self, name: str, content: bytes, mime_type: str,
                              purpose: str = "dispute_evidence") -> dict[str, Any]:
        """POST /v1/documents, multipart: the file and its purpose."""
        return await self._call("create_document", self._client.document.create,
                                {"file": (name, content, mime_type), "purpose": purpose})

    async def list_settlements(self, *, since: int, count: int, skip: int
                               ) -> list[dict[str, Any]]:
        """Settlements made from `since` (unix seconds) on, newest first, one page."""
        answer = await self._call("list_settlements", self._client.settlement.all,
                                  {"from": since, "count": count, "skip": skip})
        return list(answer.get("items", []))

    async def settlement_recon(self, year: int, month: int, day: int, *, count: int,
                               skip: int) -> list[dict[str, Any]]:
        """One page of the items settled on that day (`/v1/settlements/recon/combined`)."""
        answer = await self._call("settlement_recon", self._client.settlement.report,
                                  {"year": year, "month": month, "day": day, "count": count,
                                   "skip": skip})
        return list(answer.get("items", []))

    async def _call(self, operation: str, method, *args, **options) -> dict[str, Any]:
        """Every call is counted by operation and result (ok, rejected, unavailable,
        timeout) and timed: the dashboard's Razorpay latency and error rate."""
        started = time.perf_counter()
        result = "unavailable"
        try:
            answer = await self._call_sdk(method, *args, **options)
            result = "ok"
            return answer
        except RazorpayTimeout:
            result = "timeout"
            raise
        except RazorpayRejected:
            result = "rejected"
            raise
        except asyncio.CancelledError:
            result = "cancelled"
            raise
        finally:
            metrics.RAZORPAY_REQUESTS.labels(operation, result).inc()
            metrics.RAZORPAY_DURATION.labels(operation).observe(time.perf_counter() - started)

    async def _call_sdk(self, method, *args, **options) -> dict[str, Any]:
        call = functools.partial(method, *args, timeout=self.timeout, **options)
        try:
            # The SDK is blocking (requests); keep it off the event loop. The outer
            # wait_for is a backstop in case the socket timeout does not fire.
            loop = asyncio.get_running_loop()
            answer = await asyncio.wait_for(
                loop.run_in_executor(self._executor, call), self.timeout + 2
            )
        except BadRequestError as exc:
            raise RazorpayRejected(str(exc)) from None
        except (ServerError, GatewayError) as exc:
            raise RazorpayUnavailable(type(exc).__name__) from None
        except (requests.Timeout, TimeoutError):
            raise RazorpayTimeout("Razorpay did not answer in time") from None
        except (requests.RequestException, ValueError) as exc:
            raise RazorpayUnavailable(type(exc).__name__) from None
        if not isinstance(answer, dict):
            raise RazorpayUnavailable("unexpected answer")
        return answer
