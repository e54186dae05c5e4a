"""Typed keys for what the app holds, shared by the views."""

from __future__ import annotations

from aiohttp import web

from razorpay_sandbox.disputes import DisputeBook
from razorpay_sandbox.faults import FaultInjector
from razorpay_sandbox.refunds import RefundSettler
from razorpay_sandbox.settlements import SettlementBook
from razorpay_sandbox.store import Store
from razorpay_sandbox.webhooks import WebhookDispatcher
from shared.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
FAULTS = web.AppKey("faults", FaultInjector)
DISPATCHER = web.AppKey("dispatcher", WebhookDispatcher)
REFUND_SETTLER = web.AppKey("refund_settler", RefundSettler)
DISPUTES = web.AppKey("disputes", DisputeBook)
BOOK = web.AppKey("settlement_book", SettlementBook)
