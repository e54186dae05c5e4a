"""Live Razorpay keys refuse to start on secrets anyone could know: placeholders, short
ones, one secret reused for another, no customer auth (unless anonymous on purpose); and a
service refusing says so in one line naming the variable, with a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from shared.settings import SmtpTls, load_settings

ROOT = Path(__file__).resolve().parents[2]
STRONG = {
    "razorpay_key_id": "rzp_live_ABCDEFGHIJKLMN",
    "razorpay_key_secret": "live-key-secret-from-dashboard",
    "razorpay_webhook_secret": "w" * 40,
    "pass_signing_secret": "p" * 40,
    "admin_api_token": "a" * 40,
    "auth_jwt_secret": "j" * 40,
}


def refused(**changes) -> str:
    with pytest.raises(ValidationError) as caught:
        load_settings(**{**STRONG, **changes})
    return str(caught.value)


def test_live_keys_with_strong_secrets_of_their_own_start():
    assert load_settings(**STRONG).live


@pytest.mark.parametrize("name, value", [
    ("razorpay_webhook_secret", "CHANGE-ME"),
    ("pass_signing_secret", "CHANGE-ME-to-a-long-random-value"),
    ("auth_jwt_secret", "CHANGE-ME-a-long-random-value-for-jwt-tokens"),
    ("admin_api_token", "change-me-please-change-me-please-000"),
])
def test_the_shipped_placeholders_are_refused(name, value):
    assert f"{name.upper()} is a documented placeholder" in refused(**{name: value})


@pytest.mark.parametrize("name", ["razorpay_webhook_secret", "pass_signing_secret",
                                  "auth_jwt_secret"])
def test_a_short_secret_is_refused(name):
    assert f"{name.upper()} is shorter than 32 characters" in refused(**{name: "x" * 31})


def test_a_short_rotation_entry_is_refused():
    message = refused(razorpay_webhook_secret=f"{'w' * 40},short")
    assert "RAZORPAY_WEBHOOK_SECRET is shorter than 32 characters" in message


def test_one_secret_for_two_purposes_is_refused():
    message = refused(pass_signing_secret="w" * 40)
    assert "PASS_SIGNING_SECRET equals RAZORPAY_WEBHOOK_SECRET" in message
    same_as_key = "k" * 40
    assert "ADMIN_API_TOKEN equals RAZORPAY_KEY_SECRET" in refused(
        razorpay_key_secret=same_as_key, admin_api_token=same_as_key)


def test_live_keys_need_customer_auth_unless_anonymous_on_purpose():
    assert "AUTH_JWT_SECRET is not set" in refused(auth_jwt_secret="")
    assert load_settings(**{**STRONG, "auth_jwt_secret": "",
                            "allow_anonymous_customers": True}).live


def test_admin_tokens_are_32_characters_even_with_test_keys():
    with pytest.raises(ValidationError, match="ADMIN_API_TOKEN is shorter than 32"):
        load_settings(admin_api_token="short-admin-token")
    assert load_settings(admin_api_token="a" * 32).admin_api_token


def test_smtp_tls_is_required_with_live_keys_and_a_remote_server():
    assert load_settings().smtp_tls is SmtpTls.AUTO
    assert load_settings(**STRONG, smtp_host="smtp.example.com").smtp_tls is SmtpTls.REQUIRED
    assert load_settings(**STRONG, smtp_host="127.0.0.1").smtp_tls is SmtpTls.AUTO
    assert load_settings(smtp_starttls="false").smtp_tls is SmtpTls.AUTO  # never "in clear"
    assert load_settings(smtp_starttls="true").smtp_tls is SmtpTls.REQUIRED


def test_the_examples_ship_empty_secrets_not_placeholders():
    secret = yaml.safe_load((ROOT / "deploy" / "secret.example.yaml").read_text())
    for name in ("RAZORPAY_KEY_SECRET", "RAZORPAY_WEBHOOK_SECRET", "PASS_SIGNING_SECRET",
                 "ADMIN_API_TOKEN", "AUTH_JWT_SECRET"):
        assert secret["stringData"][name] == "", name
    for line in (ROOT / ".env.example").read_text().splitlines():
        if "PASSWORD=" in line and not line.startswith("#"):
            assert line.split("=", 1)[1] == "", line


def test_a_service_refuses_to_start_in_one_line_naming_the_variable():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAZORPAY", "PASS"))}
    env.update({key.upper(): value for key, value in STRONG.items()},
               RAZORPAY_WEBHOOK_SECRET="CHANGE-ME")
    done = subprocess.run([sys.executable, "-m", "webhook_service"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "RAZORPAY_WEBHOOK_SECRET" in lines[0], done.stderr


def test_each_service_is_refused_only_for_the_secrets_it_holds():
    # what deploy/ gives the gateway: the key id, the customers' token secret, Redis
    gateway = {"razorpay_key_id": STRONG["razorpay_key_id"],
               "auth_jwt_secret": STRONG["auth_jwt_secret"]}
    assert load_settings(a6pay_service="gateway", **gateway).live
    with pytest.raises(ValidationError, match="AUTH_JWT_SECRET is not set"):
        load_settings(a6pay_service="gateway", razorpay_key_id=STRONG["razorpay_key_id"])
    with pytest.raises(ValidationError, match="PASS_SIGNING_SECRET"):
        load_settings(a6pay_service="notifier", razorpay_key_id=STRONG["razorpay_key_id"])
    with pytest.raises(ValidationError, match="RAZORPAY_WEBHOOK_SECRET is a documented"):
        load_settings(a6pay_service="webhook_service", **{
            **STRONG, "razorpay_webhook_secret": "a6_sandbox_webhook_secret"})
