"""`make run`'s runner: migrate, seed a demo booking, start everything, stop on SIGTERM;
and the newcomer's loop from its banner: create-order, the sandbox checkout page as
printed, back through our callback, to the confirmation mail with both passes in the
bundled mail catcher."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import zxingcpp
from PIL import Image

from shared.logging import scrub
from testkit import infra
from testkit.api_client import call
from testkit.infra import eventually, free_port
from testkit.stack import SERVICES, SINGLETONS

pytestmark = pytest.mark.e2e


def read_until(proc, marker: str, timeout: float = 150) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} in runner output: {lines}")


@pytest.fixture
async def newcomers_broker_and_database():
    """A database the runner creates itself and a vhost of its own: with the session's,
    the e2e stack's notifier (polling the same mail outbox) could send this test's mail
    to its own catcher."""
    database_url = infra.database_url(infra.unique_name("a6pay_runner"))
    vhost = infra.unique_name("a6pay_runner_vhost")
    infra.create_vhost(vhost)
    try:
        yield database_url, infra.amqp_url(vhost)
    finally:
        await infra.drop_database(database_url)
        infra.delete_vhost(vhost)


async def test_runner_starts_everything_and_sigterm_stops_it_all(
    newcomers_broker_and_database, http, tmp_path
):
    database_url, amqp_url = newcomers_broker_and_database
    ports = {var: str(free_port())
             for var in [*SERVICES.values(), "SMTP_PORT", "STOREFRONT_PORT"]}
    env = {**os.environ, **ports, "DATABASE_URL": database_url, "AMQP_URL": amqp_url,
           "RAZORPAY_BASE_URL": f"http://127.0.0.1:{ports['SANDBOX_PORT']}"}
    for unset in ("RAZORPAY_KEY_ID", "SMTP_HOST", "SANDBOX_CALLBACK_URL"):
        env.pop(unset, None)  # the defaults a newcomer gets
    for name in ("ORDER_SERVICE", "VERIFICATION_SERVICE", "WEBHOOK_SERVICE"):
        env[f"{name}_URL"] = f"http://127.0.0.1:{ports[name + '_PORT']}"
    stderr = open(tmp_path / "runner.err", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "ops.runner"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    try:
        lines = read_until(proc, "Ctrl-C stops everything.")
        demo = json.loads(next(ln for ln in lines if ln.startswith("Demo booking:"))
                          .split(":", 1)[1])
        assert any("(up)" in ln for ln in lines), lines
        gateway = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
        status, body, _ = await call(http, "POST", f"{gateway}/api/razorpay/create-order",
                                     json={"booking_id": demo["booking_id"],
                                           "customer_id": demo["customer_id"],
                                           "amount": demo["amount"]})
        assert status == 200, body
        await follow_the_banner(http, lines, body["order_id"], demo, env)
        await storefront_may_call_the_gateway(http, ports)
        children = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        # the runner, one sandbox, one mail catcher, and WORKERS (1) of every service
        expected = 1 + len(SINGLETONS) + (len(SERVICES) - len(SINGLETONS))
        assert len(children) >= expected, children
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
        if not left:
            break
        time.sleep(0.2)
    assert left == [], "services outlived SIGTERM to the process group"
    stderr.close()
    errors = (tmp_path / "runner.err").read_text()
    assert "Traceback" not in errors, errors[-3000:]


async def follow_the_banner(http, lines, order_id, demo, env):
    """Every URL the banner prints answers as printed; paying on the checkout page it
    names ends in a confirmation mail with both passes in the catcher it names."""
    banner = "".join(lines[lines.index(next(ln for ln in lines if "A6 Pay gateway" in ln)):])
    # a placeholder (`order_id=<order_id from create-order>`) stands for the real order id
    urls = [u.split("<")[0] + order_id if "<" in u else u
            for u in re.findall(r"http://[^\s)]+", banner)]
    checkout = next(u for u in urls if "/checkout?" in u)
    catcher = next(u for u in urls if u.startswith(
        f"http://127.0.0.1:{env['MAIL_CATCHER_PORT']}"))
    for url in urls:
        async with http.get(url, allow_redirects=False) as answer:
            assert answer.status == 200, (url, answer.status, await answer.text())
    # The checkout page, as printed: its form goes to the sandbox with our callback in it.
    async with http.get(checkout) as answer:
        page = await answer.text()
    fields = dict(re.findall(r'name="(order_id|callback_url)" value="([^"]*)"', page))
    assert fields["order_id"] == order_id
    assert fields["callback_url"].endswith("/api/razorpay/callback")
    sandbox = checkout.split("/checkout?")[0]
    async with http.post(f"{sandbox}/checkout/pay", data={**fields, "outcome": "captured"}) as a:
        back = await a.text()  # the page that posts Razorpay's fields to the callback
    action = re.search(r'action="([^"]+)"', back).group(1)
    posted = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', back))
    async with http.post(action, data=posted, allow_redirects=False) as answer:
        assert answer.status == 303, await answer.text()
        assert "/payment/success" in answer.headers["Location"]

    async def mail():
        async with http.get(f"{catcher.rstrip('/')}/api/mails") as answer:
            mails = await answer.json()
        return [m for m in mails if f"#{demo['booking_id']}" in m["subject"]]

    [confirmation] = await eventually(mail, timeout=60, interval=0.5)
    # the banner is scrubbed as every log line is: it names the address by its fingerprint
    assert [scrub(to) for to in confirmation["to"]] == [demo["customer_email"]]
    async with http.get(f"{catcher.rstrip('/')}/mails/{confirmation['number']}.eml") as a:
        raw = await a.read()
    from email import message_from_bytes, policy

    message = message_from_bytes(raw, policy=policy.default)
    tokens = sorted(
        zxingcpp.read_barcodes(Image.open(io.BytesIO(part.get_payload(decode=True))))[0].text
        for part in message.iter_attachments())
    assert [t.split(".")[2:4] for t in tokens] == [
        [str(demo["booking_id"]), "collection"], [str(demo["booking_id"]), "return"]]
    async with http.get(catcher) as answer:  # the page a newcomer opens shows it
        assert f"#{demo['booking_id']}" in await answer.text()


async def storefront_may_call_the_gateway(http, ports):
    """The storefront's page loads the sandbox's Checkout script, and the gateway lets its
    origin (and a frontend developer's localhost:3000) call create-order."""
    storefront = f"http://127.0.0.1:{ports['STOREFRONT_PORT']}"
    async with http.get(storefront + "/") as answer:
        page = await answer.text()
    script = re.search(r'<script src="(http[^"]+/v1/checkout\.js)"', page).group(1)
    assert script == f"http://127.0.0.1:{ports['SANDBOX_PORT']}/v1/checkout.js"
    async with http.get(script) as answer:
        assert answer.status == 200 and "window.Razorpay" in await answer.text()
    gateway = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
    assert f'data-backend="{gateway}"' in page
    for origin in (storefront, "http://localhost:3000"):
        status, _, headers = await call(
            http, "OPTIONS", f"{gateway}/api/razorpay/create-order",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type"})
        assert (status, headers.get("Access-Control-Allow-Origin")) == (200, origin)
