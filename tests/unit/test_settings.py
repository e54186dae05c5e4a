import pytest
from pydantic import ValidationError

from shared.settings import load_settings, local_postgres_url

LIVE = {"razorpay_key_id": "rzp_live_ABCDEFGHIJKLMN", "razorpay_key_secret": "live-secret",
        "razorpay_webhook_secret": "live-webhook-secret-" + "w" * 20,
        "pass_signing_secret": "live-pass-" + "p" * 30, "allow_anonymous_customers": True}


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
    assert load_settings(**LIVE).webhook_secrets == [LIVE["razorpay_webhook_secret"]]


def test_rotation_list_and_test_keys_warn_about_defaults():
    settings = load_settings(razorpay_key_id="rzp_test_XYZ", razorpay_webhook_secret=" a , b ,")
    assert settings.webhook_secrets == ["a", "b"]
    assert settings.public_defaults_in_use() == ["PASS_SIGNING_SECRET"]


def test_smtp_from_must_be_an_address():
    assert load_settings(smtp_from="Shop <shop@x.example>").smtp_from == "Shop <shop@x.example>"
    for bad in ("A6 Cars", "", "a@b.example\r\nBcc: c@d.example"):
        with pytest.raises(ValidationError):
            load_settings(smtp_from=bad)


@pytest.mark.parametrize("url, exposed", [
    ("amqp://guest:guest@127.0.0.1:5672/", False),
    ("amqp://guest:guest@localhost/", False),
    ("amqp://guest:guest@[::1]:5672/", False),
    ("amqp://guest:guest@rabbitmq:5672/", True),
    ("amqp://rabbit.example.com/", True),  # no credentials: the client sends guest/guest
    ("amqp://guest:guest@10.0.0.5/vhost", True),
    ("amqp://a6pay:s3cret@rabbitmq:5672/", False),
    ("amqp://guest:other@rabbitmq:5672/", False),
    # a cluster: any node reached with the default account is one too many
    ("amqp://a6pay:s3cret@rabbit-0:5672/,amqp://a6pay:s3cret@rabbit-1:5672/", False),
    ("amqp://a6pay:s3cret@rabbit-0:5672/,amqp://guest:guest@rabbit-1:5672/", True),
])
def test_the_default_broker_account_on_another_host_is_flagged(url, exposed):
    assert load_settings(amqp_url=url).broker_default_account_exposed() is exposed


def test_services_warn_at_start_about_an_exposed_default_broker_account(monkeypatch, caplog):
    from aiohttp import web

    from shared import service

    monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@broker.internal:5672/")
    monkeypatch.setattr(service, "setup_logging", lambda *a, **k: None)
    monkeypatch.setattr(web, "run_app", lambda *a, **k: None)
    service.serve("notifier", lambda s: web.Application(), lambda s: 1)
    warned = [r for r in caplog.records if "guest" in r.getMessage()]
    assert warned and warned[0].levelname == "WARNING"


def test_a_process_is_one_of_the_workers():
    assert load_settings(workers=3, worker=3).worker == 3
    with pytest.raises(ValidationError, match="WORKER=3 is not one of WORKERS=2"):
        load_settings(workers=2, worker=3)


def test_the_local_postgres_is_reached_on_its_socket_when_it_has_one(tmp_path):
    assert local_postgres_url("a6pay", str(tmp_path)) == "postgresql://postgres@127.0.0.1:5432/a6pay"
    (tmp_path / ".s.PGSQL.5432").touch()
    assert local_postgres_url("a6pay", str(tmp_path)) \
        == f"postgresql://postgres@/a6pay?host={tmp_path}"


def test_a_socket_dir_too_long_for_a_socket_path_is_refused():
    assert load_settings(socket_dir="/run/" + "a" * 60).socket_dir
    with pytest.raises(ValidationError, match="too long for a Unix socket path"):
        load_settings(socket_dir="/run/" + "a" * 90)


def test_cors_origins_are_exact_origins():
    settings = load_settings(cors_allowed_origins="https://shop.example, http://localhost:3000")
    assert settings.cors_origins == ["https://shop.example", "http://localhost:3000"]
    assert load_settings().cors_origins == []
    for bad in ("https://shop.example/", "shop.example", "https://*.shop.example",
                "https://shop.example/pay", "ftp://shop.example"):
        with pytest.raises(ValidationError, match="not an exact origin"):
            load_settings(cors_allowed_origins=bad)


def test_a_mail_lease_shorter_than_one_mail_s_longest_send_is_refused():
    settings = load_settings()  # the defaults hold together
    assert settings.mail_lease_seconds > settings.mail_send_seconds_at_most
    with pytest.raises(ValidationError, match="MAIL_LEASE_SECONDS"):
        load_settings(smtp_data_timeout_seconds=600, smtp_timeout_seconds=15,
                      mail_lease_seconds=700)
    assert load_settings(smtp_data_timeout_seconds=60, smtp_timeout_seconds=5,
                         mail_lease_seconds=120).mail_send_seconds_at_most == 100
