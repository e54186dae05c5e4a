"""The counter's page in a real Chromium: a staff member signs in once, the phone's camera
(Chromium's fake camera, fed a video of the pass) reads the QR code, and the page answers
green, then red when the same pass is shown again; the typed fallback does the same."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from shared.passes import qr_data_url
from shared.settings import load_settings
from testkit.api_client import STAFF_TOKEN
from testkit.factories import make_confirmed_booking
from tests.browser.conftest import launch_chromium

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshots" / "staff.png"
PHONE = {"width": 390, "height": 844}


def camera_video(token: str, path: Path) -> Path:
    """A Y4M video (what --use-file-for-fake-video-capture plays) of the pass held up to
    the camera: the QR code the customer was mailed, on a white 640x480 frame."""
    import base64

    png = base64.b64decode(qr_data_url(token).split(",", 1)[1])
    frame = Image.new("L", (640, 480), 255)
    code = Image.open(io.BytesIO(png)).convert("L")
    frame.paste(code, ((640 - code.width) // 2, (480 - code.height) // 2))
    luma, chroma = frame.tobytes(), bytes([128]) * (320 * 240)
    with path.open("wb") as out:
        out.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(10):
            out.write(b"FRAME\n" + luma + chroma + chroma)
    return path


@pytest.fixture
async def booking(pool, stack):
    return await make_confirmed_booking(pool, load_settings().pass_signing_secret)


async def sign_in(page, gateway: str):
    await page.goto(f"{gateway}/staff")
    await page.get_by_label("Staff token").fill(STAFF_TOKEN)
    await page.get_by_role("button", name="Start scanning").click()


async def test_the_camera_reads_a_pass_green_then_red(playwright_driver, stack, booking,
                                                      tmp_path):
    video = camera_video(booking["passes"]["collection"], tmp_path / "pass.y4m")
    browser = await launch_chromium(
        playwright_driver, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}")
    try:
        context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                            permissions=["camera"])
        page = await context.new_page()
        urls, console = [], []
        page.on("request", lambda request: urls.append(request.url))
        page.on("console", lambda message: console.append(message.text))
        await sign_in(page, stack.gateway)

        answer = page.locator("#answer")
        await answer.and_(page.locator(".ok")).wait_for(timeout=20_000)
        assert await page.locator("#verdict").inner_text() == "✔ COLLECTED"
        assert await page.locator("#answer-booking").inner_text() == f"#{booking['booking_id']}"
        assert await page.locator("#answer-car").inner_text() == "Maruti Swift"
        assert await page.locator("#answer-customer").inner_text() == "John Doe"
        assert "hand over" in (await page.locator("#answer-next").inner_text())
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

        await page.get_by_role("button", name="Scan next pass").click()  # the same pass again
        await answer.and_(page.locator(".refused")).wait_for(timeout=20_000)
        assert await page.locator("#verdict").inner_text() == "✘ STOP"
        assert (await page.locator("#answer-message").inner_text()).startswith(
            "Pass already used at ")
        await page.screenshot(path=str(SCREENSHOT.with_name("staff-refused.png")),
                              full_page=True)

        assert not any(STAFF_TOKEN in url for url in urls)  # only ever in a header
        assert not any("Content Security Policy" in line for line in console), console
    finally:
        await browser.close()


async def test_the_typed_code_works_without_a_camera_and_the_sign_in_lasts_the_tab(
        chromium_browser, stack, booking, pool):
    context = await chromium_browser.new_context(viewport=PHONE)
    page = await context.new_page()
    await sign_in(page, stack.gateway)
    await page.get_by_text("Camera unavailable").wait_for()  # no camera in this browser
    await page.reload()  # signed in once: the token stays in this tab's sessionStorage
    code = page.get_by_label("Or type the pass code")
    await code.fill(booking["passes"]["return"])
    await page.get_by_role("button", name="Check pass").click()
    await page.locator("#answer.refused").wait_for()
    assert "collection pass first" in await page.locator("#answer-message").inner_text()

    await page.get_by_role("button", name="Scan next pass").click()
    await code.fill(booking["passes"]["collection"])
    await page.get_by_role("button", name="Check pass").click()
    await page.locator("#answer.ok").wait_for()
    assert await pool.fetchval("SELECT status FROM bookings WHERE id = $1",
                               booking["booking_id"]) == "collected"

    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_label("Staff token").wait_for()
    assert await page.evaluate("sessionStorage.length") == 0
    await context.close()


async def check_typed(page, token: str, verdict: str):
    """Type a pass code on the scanner and wait for the answer panel's verdict (ok/refused)."""
    await page.get_by_label("Or type the pass code").fill(token)
    await page.get_by_role("button", name="Check pass").click()
    await page.locator(f"#answer.{verdict}").wait_for()


async def test_a_refusal_without_a_booking_shows_nothing_of_the_previous_customer(
        chromium_browser, stack, booking):
    context = await chromium_browser.new_context(viewport=PHONE)
    page = await context.new_page()
    await sign_in(page, stack.gateway)
    await check_typed(page, booking["passes"]["collection"], "ok")
    assert await page.locator("#answer-customer").inner_text() == "John Doe"

    await page.get_by_role("button", name="Scan next pass").click()
    await check_typed(page, "garbage", "refused")
    assert "Not an A6 Cars pass" in await page.locator("#answer-message").inner_text()
    assert not await page.locator("#answer-details").is_visible(), "details still shown"
    assert "John Doe" not in await page.locator("body").inner_text()
    assert await page.get_by_text("John Doe").count() == 0  # not even in a hidden field
    await context.close()


async def test_a_refused_return_pass_says_to_take_the_car_back(chromium_browser, stack,
                                                                booking, pool):
    context = await chromium_browser.new_context(viewport=PHONE)
    page = await context.new_page()
    await sign_in(page, stack.gateway)
    await check_typed(page, booking["passes"]["collection"], "ok")
    # refunded in full while the car is out: the car comes back whatever the money did
    await pool.execute("UPDATE payments SET refunded_paise = amount_paise WHERE booking_id = $1",
                       booking["booking_id"])

    await page.get_by_role("button", name="Scan next pass").click()
    await check_typed(page, booking["passes"]["return"], "refused")
    assert await page.locator("#answer-message").inner_text() == (
        "Booking refunded: take the keys, call the office")
    step = await page.locator("#answer-next").inner_text()
    assert "Do not hand over the car" not in step, step
    assert "take the car and its keys back" in step.lower(), step
    await context.close()
