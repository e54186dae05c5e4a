"""The counter's page as the gateway serves it: its own files only, under a strict CSP, no
inline script or style, and the vendored QR decoder exactly the one its SOURCE names."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway import staff_page
from gateway.app import create_app
from shared.settings import load_settings

STATIC = Path(staff_page.__file__).parent / "static" / "staff"


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.inline_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        if self.tags and self.tags[-1][0] in ("script", "style") and data.strip():
            self.inline_script = True


@pytest.fixture
async def client():
    async with TestClient(TestServer(create_app(load_settings()))) as client:
        yield client


@pytest.mark.parametrize("path", list(staff_page.FILES))
async def test_every_file_is_served_with_the_strict_policy(client, path):
    response = await client.get(path)
    assert response.status == 200
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self';" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "form-action 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Access-Control-Allow-Origin" not in response.headers
    name, content_type = staff_page.FILES[path]
    assert response.content_type == content_type
    assert await response.read() == (STATIC / name).read_bytes()


def test_the_page_has_no_inline_script_or_style_and_loads_only_our_files():
    parser = _Tags()
    parser.feed((STATIC / "index.html").read_text())
    assert not parser.inline_script
    for tag, attrs in parser.tags:
        assert "style" not in attrs and not any(a.startswith("on") for a in attrs), tag
        if tag == "script":
            assert attrs["src"] in staff_page.FILES
        if tag == "link":
            assert attrs["href"] in staff_page.FILES


def test_the_staff_token_goes_only_into_the_authorization_header():
    script = (STATIC / "staff.js").read_text()
    assert "sessionStorage" in script and "localStorage" not in script
    assert "console." not in script  # nothing of a scan reaches a log
    assert re.search(r'"Authorization": "Bearer " \+ token', script)
    assert ".innerHTML" not in script  # the server's words are text, never markup


def test_the_vendored_decoder_is_the_release_its_source_names():
    source = (STATIC / "vendor" / "SOURCE").read_text()
    digest = re.search(r"sha256 ([0-9a-f]{64})", source)[1]
    vendored = (STATIC / "vendor" / "jsQR.js").read_bytes()
    assert hashlib.sha256(vendored).hexdigest() == digest
    assert "Apache License" in (STATIC / "vendor" / "jsQR.LICENSE").read_text()


async def test_the_scan_route_has_its_own_rate_limit():
    from testkit.infra import free_port

    settings = load_settings(rate_limit_pass_scan=2, rate_limit_window_seconds=60,
                             order_service_url=f"http://127.0.0.1:{free_port()}")
    async with TestClient(TestServer(create_app(settings))) as client:
        answers = [(await client.post("/api/passes/scan", json={"token": "t"})).status
                   for _ in range(3)]
        assert answers == [503, 503, 429]  # nothing listens upstream; the third is refused
        other = await client.post("/api/razorpay/create-order", json={})
        assert other.status == 503  # another route's budget is untouched
