"""The seed's frontend code in a real browser: the demo storefront, served from an origin
of its own, calls the gateway of a running stack (CORS) and pays through the sandbox's
Checkout script and modal. Screenshots of what a person sees go to docs/screenshots/."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import zxingcpp
from aiohttp import web
from PIL import Image
from playwright.async_api import expect

from ops.storefront.app import create_app as storefront_app
from shared.settings import load_settings
from testkit import infra
from testkit.factories import make_booking
from testkit.stack import Stack
from tests.browser.conftest import SCREENSHOTS
from tests.e2e.flows import wait_paid

pytestmark = pytest.mark.e2e

MODAL = "iframe[title='Razorpay Checkout']"
CALLBACK_FLOW = "Pay, then return to the site"
HANDLER_FLOW = "Pay here and get my passes"


@dataclass
class Shop:
    stack: Stack
    pool: object
    storefront: str  # an origin CORS_ALLOWED_ORIGINS lists
    stranger: str  # the same page from an origin it does not list

    async def page_for(self, page, booking, origin: str | None = None):
        query = (f"booking_id={booking['booking_id']}&customer_id={booking['customer_id']}"
                 f"&amount={booking['amount']:.2f}")
        await page.goto(f"{origin or self.storefront}/?{query}")


@asynccontextmanager
async def serving(app: web.Application, port: int):
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
async def shop(base_settings):
    """One stack for the module, on a database and vhost of its own, whose checkout
    callback ends on the gateway's own pages (as `make run`'s does)."""
    vhost = infra.unique_name("a6pay_browser_vhost")
    await asyncio.to_thread(infra.create_vhost, vhost)
    allowed, stranger = infra.free_port(), infra.free_port()
    try:
        async with infra.own_database(base_settings) as (settings, pool):
            with tempfile.TemporaryDirectory(prefix="a6pay-browser-") as log_dir:
                stack = Stack(settings.database_url, infra.amqp_url(vhost), Path(log_dir),
                              {"CORS_ALLOWED_ORIGINS": f"http://127.0.0.1:{allowed}"})
                stack.env["CHECKOUT_SUCCESS_URL"] = f"{stack.gateway}/payment/success"
                stack.env["CHECKOUT_FAILURE_URL"] = f"{stack.gateway}/payment/failure"
                front = load_settings(storefront_gateway_url=stack.gateway,
                                      storefront_checkout_script_url=(
                                          f"{stack.sandbox}/v1/checkout.js"))
                try:
                    await asyncio.to_thread(stack.start_all)
                    async with serving(storefront_app(front), allowed) as storefront, \
                            serving(storefront_app(front), stranger) as other:
                        yield Shop(stack, pool, storefront, other)
                finally:
                    await asyncio.to_thread(stack.stop_all)
    finally:
        await asyncio.to_thread(infra.delete_vhost, vhost)


@pytest.fixture
async def booking(shop):
    return await make_booking(shop.pool, 249_900, name="Asha Verma")


async def open_checkout(page, flow: str):
    await page.get_by_role("button", name=flow).click()
    modal = page.frame_locator(MODAL)
    await expect(modal.get_by_role("button", name="Pay", exact=True)).to_be_visible()
    return modal


async def test_callback_flow_ends_on_the_success_page_with_the_booking_paid(shop, booking,
                                                                            page):
    await shop.page_for(page, booking)
    await expect(page.get_by_role("heading", name="Pay for your booking")).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "storefront.png")
    modal = await open_checkout(page, CALLBACK_FLOW)
    # What the modal shows comes from the order and the page's options
    await expect(modal.get_by_text("\u20b92,499.00")).to_be_visible()
    await expect(modal.get_by_role("heading", name="A6 Cars")).to_be_visible()
    await expect(modal.get_by_text("Asha Verma")).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "checkout-modal.png")

    await modal.get_by_role("button", name="Pay", exact=True).click()
    await page.wait_for_url(f"{shop.stack.gateway}/payment/success?booking_id="
                            f"{booking['booking_id']}")
    await expect(page.get_by_role("heading", name="Payment received")).to_be_visible()
    async with aiohttp.ClientSession() as http:
        status = await wait_paid(http, shop.stack, booking["booking_id"])
    assert status["status"] == "paid"


def qr_text(data_url: str) -> str:
    assert data_url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    return zxingcpp.read_barcodes(image)[0].text


async def test_handler_flow_gets_both_qr_codes_from_verify_payment(shop, booking, page):
    errors = []  # a script, frame or call the pages' CSPs refused would show here
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await shop.page_for(page, booking)
    modal = await open_checkout(page, HANDLER_FLOW)
    await modal.get_by_role("button", name="Pay", exact=True).click()
    await expect(page.locator("#passes")).to_be_visible()
    await expect(page.get_by_role("status")).to_contain_text("Payment verified")
    await expect(page.locator(MODAL)).to_have_count(0)
    tokens = [qr_text(await page.get_by_alt_text(name).get_attribute("src"))
              for name in ("Collection pass", "Return pass")]
    assert [t.split(".")[2:4] for t in tokens] == [
        [str(booking["booking_id"]), "collection"], [str(booking["booking_id"]), "return"]]
    await page.screenshot(path=SCREENSHOTS / "storefront-passes.png", full_page=True)
    assert errors == []


async def test_authorize_only_ends_with_a_payment_verify_payment_does_not_take(shop, booking,
                                                                               page):
    await shop.page_for(page, booking)
    modal = await open_checkout(page, HANDLER_FLOW)
    await modal.get_by_role("button", name="Authorize only").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Verification failed: Payment not captured by Razorpay. Status: authorized")
    await expect(page.locator("#passes")).to_be_hidden()


async def test_fail_reaches_payment_failed_with_the_error_object(shop, booking, page):
    await shop.page_for(page, booking)
    modal = await open_checkout(page, HANDLER_FLOW)
    await modal.get_by_role("button", name="Fail").click()
    failure = page.locator("#failure")
    await expect(failure).to_be_visible()
    error = json.loads(await failure.text_content())
    assert set(error) == {"code", "description", "source", "step", "reason", "metadata"}
    assert error["code"] == "BAD_REQUEST_ERROR"
    order_id = await shop.pool.fetchval(
        "SELECT razorpay_order_id FROM payments WHERE booking_id = $1", booking["booking_id"])
    assert error["metadata"]["order_id"] == order_id
    assert error["metadata"]["payment_id"].startswith("pay_")
    # As Razorpay's, the modal stays open for a retry, saying what happened
    await expect(modal.get_by_role("alert")).to_contain_text("Payment failed")
    await page.screenshot(path=SCREENSHOTS / "checkout-modal-failed.png")


async def test_fail_with_redirect_posts_the_error_form_to_the_failure_page(shop, booking,
                                                                           page):
    await shop.page_for(page, booking)
    modal = await open_checkout(page, CALLBACK_FLOW)
    await modal.get_by_role("button", name="Fail").click()
    await page.wait_for_url(f"{shop.stack.gateway}/payment/failure?reason=payment_failed")
    await expect(page.get_by_role("heading", name="Payment not completed")).to_be_visible()


async def test_close_calls_ondismiss(shop, booking, page):
    await shop.page_for(page, booking)
    modal = await open_checkout(page, HANDLER_FLOW)
    await modal.get_by_role("button", name="Close").click()
    await expect(page.get_by_role("status")).to_have_text(
        "Checkout closed; nothing was charged.")
    await expect(page.locator(MODAL)).to_have_count(0)


async def test_wrong_key_or_unknown_order_shows_razorpays_error_and_calls_nothing(
        shop, booking, page):
    await shop.page_for(page, booking)
    order_id = await shop.pool.fetchval(  # an order of ours, with the wrong key
        "SELECT razorpay_order_id FROM payments LIMIT 1")
    for key, order, message in (("rzp_test_wrongkey", order_id,
                                 "The api key provided is invalid"),
                                (load_settings().razorpay_key_id, "order_NoSuchOrder0001",
                                 "The id provided does not exist")):
        await page.evaluate("""([key, order]) => {
            window.called = [];
            new Razorpay({key: key, order_id: order, name: "A6 Cars",
                          handler: () => window.called.push("handler"),
                          modal: {ondismiss: () => window.called.push("ondismiss")}})
              .on("payment.failed", () => window.called.push("payment.failed")).open();
        }""", [key, order])
        modal = page.frame_locator(MODAL)
        await expect(modal.get_by_role("alert")).to_contain_text(message)
        await expect(modal.get_by_role("button", name="Pay", exact=True)).to_have_count(0)
        await modal.get_by_role("button", name="Close").click()
        await expect(page.locator(MODAL)).to_have_count(0)
        assert await page.evaluate("window.called") == ["ondismiss"]


async def test_a_disallowed_origin_is_refused_by_the_browser(shop, booking, page):
    console = []
    page.on("console", lambda message: console.append(message.text))
    await shop.page_for(page, booking, origin=shop.stranger)
    await page.get_by_role("button", name=HANDLER_FLOW).click()
    await expect(page.get_by_role("status")).to_have_text(
        "Could not create the order: Failed to fetch")
    assert any("CORS policy" in line for line in console), console
    # The preflight was refused, so the create-order call itself never left the browser
    assert await shop.pool.fetchval(
        "SELECT count(*) FROM payments WHERE booking_id = $1", booking["booking_id"]) == 0


async def test_close_from_the_page_removes_the_modal_without_ondismiss(shop, booking, page):
    """`rzp.close()` is the page's own doing: ondismiss is for the customer closing it."""
    await shop.page_for(page, booking)
    await page.evaluate("""(key) => {
        window.called = [];
        window.rzp = new Razorpay({key: key, order_id: "order_NoSuchOrder0001",
                                   modal: {ondismiss: () => window.called.push("ondismiss")}});
        window.rzp.open();
    }""", load_settings().razorpay_key_id)
    await expect(page.frame_locator(MODAL).get_by_role("button", name="Close")).to_be_visible()
    await page.evaluate("window.rzp.close()")
    await expect(page.locator(MODAL)).to_have_count(0)
    assert await page.evaluate("window.called") == []
