"""How our Razorpay client sets up the official SDK (no network)."""

from importlib.metadata import version

import pytest

from shared.razorpay_client import RazorpayClient
from shared.settings import load_settings


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE",
                 "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def client_for(base_url: str) -> RazorpayClient:
    return RazorpayClient(load_settings(razorpay_base_url=base_url))


def test_a_proxy_from_the_environment_is_still_used(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    client = client_for("https://api.razorpay.com")
    assert client._client.session.proxies == {"https": "http://proxy.example:3128"}
    client.close()


def test_no_proxy_in_the_environment_is_still_honoured(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "api.razorpay.com")
    client = client_for("https://api.razorpay.com")
    assert client._client.session.proxies == {}
    client.close()


def test_a_ca_bundle_from_the_environment_is_still_trusted(monkeypatch, tmp_path):
    bundle = tmp_path / "corporate-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    client = client_for("https://api.razorpay.com")
    assert client._client.session.verify == str(bundle)
    client.close()


def test_without_a_ca_bundle_the_default_one_verifies():
    client = client_for("https://api.razorpay.com")
    assert client._client.session.verify is True
    client.close()


def test_the_user_agent_still_names_the_sdk_version():
    client = client_for("http://127.0.0.1:8090")
    options = client._client._update_user_agent_header({})
    assert options["headers"]["User-Agent"].startswith(f"Razorpay-Python/{version('razorpay')} ")
    client.close()
