import pytest
from pydantic import ValidationError

from shared.settings import load_settings

LIVE = {"razorpay_key_id": "rzp_live_ABCDEFGHIJKLMN", "razorpay_key_secret": "live-secret",
        "razorpay_webhook_secret": "live-webhook-secret", "pass_signing_secret": "live-pass"}


def test_defaults_work_for_the_sandbox():
    settings = load_settings()
    assert settings.webhook_secrets and settings.public_defaults_in_use() == []


@pytest.mark.parametrize("left_default", ["razorpay_key_secret", "razorpay_webhook_secret",
                                          "pass_signing_secret"])
def test_live_keys_refuse_published_default_secrets(left_default):
    values = {k: v for k, v in LIVE.items() if k != left_default}
    with pytest.raises(ValidationError) as refused:
        load_settings(**values)
    assert left_default.upper() in str(refused.value)


def test_live_keys_with_their_own_secrets_start():
    assert load_settings(**LIVE).webhook_secrets == ["live-webhook-secret"]


def test_rotation_list_and_test_keys_warn_about_defaults():
    settings = load_settings(razorpay_key_id="rzp_test_XYZ", razorpay_webhook_secret=" a , b ,")
    assert settings.webhook_secrets == ["a", "b"]
    assert settings.public_defaults_in_use() == ["PASS_SIGNING_SECRET"]


def test_smtp_from_must_be_an_address():
    assert load_settings(smtp_from="Shop <shop@x.example>").smtp_from == "Shop <shop@x.example>"
    for bad in ("A6 Cars", "", "a@b.example\r\nBcc: c@d.example"):
        with pytest.raises(ValidationError):
            load_settings(smtp_from=bad)
