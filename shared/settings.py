"""One settings object for every service, read from the environment once in `main()`."""

from __future__ import annotations

import os
from email.utils import parseaddr
from enum import StrEnum
from ipaddress import ip_address
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import live_guard, local_sockets

SANDBOX_KEY_ID = "rzp_test_a6sandbox"
SANDBOX_KEY_SECRET = "a6_sandbox_key_secret"
SANDBOX_WEBHOOK_SECRET = "a6_sandbox_webhook_secret"
LOCAL_PASS_SECRET = "a6_local_pass_signing_secret"


_SUN_PATH_MAX = 107  # bytes of a Unix socket's path, its terminating NUL aside (Linux)

# Where Debian's PostgreSQL (and most packages of it) puts its Unix socket.
POSTGRES_SOCKET_DIR = "/var/run/postgresql"


def local_postgres_url(database: str, socket_dir: str = POSTGRES_SOCKET_DIR) -> str:
    """The PostgreSQL on this machine as psql reaches it: its Unix socket when it has one (less
    CPU per query than loopback TCP: python -m bench.db_socket_ab), else 127.0.0.1:5432."""
    if os.path.exists(os.path.join(socket_dir, ".s.PGSQL.5432")):
        return f"postgresql://postgres@/{database}?host={socket_dir}"
    return f"postgresql://postgres@127.0.0.1:5432/{database}"


def split_csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


# What a mail can wait on before its data, each for up to SMTP_TIMEOUT_SECONDS: connecting,
# the greeting, EHLO, STARTTLS, EHLO again, AUTH, MAIL, RCPT (the sender holds it to that).
SMTP_STEPS_BEFORE_DATA = 8


class SmtpTls(StrEnum):
    AUTO = "auto"
    REQUIRED = "required"
    OFF = "off"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Infrastructure
    database_url: str = Field(default_factory=lambda: local_postgres_url("a6pay"))
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    amqp_exchange: str = "a6pay.events"
    db_pool_min: int = 1
    db_pool_max: int = 10
    db_command_timeout: float = 5.0
    db_statement_cache_size: int = 100  # 0 behind a PgBouncer older than 1.21 (transaction mode)
    # Server-side session limits (shared/db.py): longer than any transaction we hold on
    # purpose (the relay waits up to 10 s for a broker confirm inside its batch).
    db_idle_in_transaction_timeout: float = 60.0
    db_statement_timeout: float = 30.0
    db_keepalives_idle: int = 30  # seconds of silence before the server probes the peer
    db_keepalives_interval: int = 10
    db_keepalives_count: int = 3
    # Who holds a connection, in pg_stat_activity: each service names itself at start
    db_application_name: str = "a6pay"

    # Razorpay (the bundled sandbox unless RAZORPAY_KEY_ID is set)
    razorpay_key_id: str = SANDBOX_KEY_ID
    razorpay_key_secret: str = SANDBOX_KEY_SECRET
    razorpay_webhook_secret: str = SANDBOX_WEBHOOK_SECRET  # comma-separated for rotation
    razorpay_base_url: str = "http://127.0.0.1:8090"
    razorpay_timeout_seconds: float = 5.0
    razorpay_max_concurrency: int = 32  # Razorpay calls in flight per process
    capture_on_verify: bool = False  # capture `authorized` payments (verify, webhook, reconcile)
    create_order_concurrency: int = 5  # creates waiting on Razorpay at once, per process

    # Where each service listens; `WORKERS` processes of each share its port (SO_REUSEPORT)
    bind_host: str = "127.0.0.1"
    workers: int = Field(default=1, ge=1, le=64)
    worker: int = Field(default=1, ge=1, le=64)  # which of them this is; its launcher says
    # Set: the services the gateway calls also listen on `<socket_dir>/<service>-<worker>.sock`
    # and the gateway reaches them there, not at their URLs (shared/local_sockets.py). For
    # a stack on one machine: `make run` sets it. Unset: TCP only (pods, several hosts).
    socket_dir: str = ""
    gateway_port: int = 8080
    order_service_port: int = 8081
    verification_service_port: int = 8082
    webhook_service_port: int = 8083
    notifier_port: int = 8084
    sandbox_port: int = 8090

    # Gateway
    order_service_url: str = "http://127.0.0.1:8081"
    verification_service_url: str = "http://127.0.0.1:8082"
    webhook_service_url: str = "http://127.0.0.1:8083"
    gateway_trusted_proxies: str = ""  # comma-separated IPs whose X-Forwarded-For is believed
    gateway_max_body_bytes: int = 64 * 1024
    gateway_upstream_timeout_seconds: float = 15.0
    # Connections per lane (create-order, verify, payment-status) and for webhooks
    gateway_lane_connections: int = Field(default=100, ge=1)
    gateway_webhook_connections: int = Field(default=100, ge=1)
    gateway_body_read_timeout_seconds: float = 30.0
    # payment-status requests in flight share calls to order_service (gateway/status_batch.py).
    # Off: one call each, e.g. while order_service runs a version without the batch route.
    gateway_status_batch: bool = True
    rate_limit_max_clients: int = 100_000
    rate_limit_create_order: int = 100
    rate_limit_verify_payment: int = 100
    rate_limit_payment_status: int = 1000
    rate_limit_window_seconds: float = 60.0
    # Set: the limits hold across every gateway process and machine (e.g. redis://host:6379/0)
    redis_url: str = ""
    rate_limit_redis_prefix: str = "a6pay:ratelimit"  # every key the limiter writes
    auth_jwt_secret: str = ""  # set to require a customer bearer token (HS256, sub = customer id)
    admin_api_token: str = ""  # the admin API (cancel, refund) is disabled while unset
    # Live keys refuse to start without AUTH_JWT_SECRET unless this says so on purpose
    allow_anonymous_customers: bool = False
    auth_jwt_audience: str = ""  # set: a token's `aud` must name it (unset: `aud` not checked)
    auth_jwt_issuer: str = ""  # set: a token's `iss` must be it
    # Where admin calls, /metrics, /internal/* and the detailed /readyz may come from
    admin_allowed_networks: str = ("127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,"
                                   "192.168.0.0/16,fc00::/7")
    rate_limit_failed_auth: int = 10  # refused admin/staff tokens per client per window

    # Checkout callback (seed 000): where the browser is sent after paying
    checkout_success_url: str = "http://127.0.0.1:8080/payment/success"
    checkout_failure_url: str = "http://127.0.0.1:8080/payment/failure"

    # QR passes
    pass_signing_secret: str = LOCAL_PASS_SECRET
    # Passes at the counter (order_service/pass_scans.py)
    pass_signing_secrets_old: str = ""  # rotated-out secrets whose passes still scan (CSV)
    # The staff's bearer token (POST /api/passes/scan, the /staff page): disabled while unset
    staff_api_token: str = ""
    pass_grace_hours: float = Field(default=24.0, ge=0)  # a pass scans this far outside the dates
    counter_timezone: str = "Asia/Kolkata"  # the rental dates' time zone
    rate_limit_pass_scan: int = 120

    # Background work
    outbox_sweep_seconds: float = 2.0
    outbox_batch_size: int = 100
    reconcile_first_delay_seconds: float = 900.0
    reconcile_max_gap_seconds: float = 3600.0
    reconcile_poll_seconds: float = 30.0
    reconcile_give_up_after_seconds: float = 3 * 24 * 3600.0
    refund_poll_seconds: float = 2.0  # refunds waiting to be sent to Razorpay, or pending there
    # A captured payment whose booking is still pending this long is stuck: its event is
    # re-emitted (then after doubling gaps, capped) and it is reported.
    stuck_after_seconds: float = 300.0
    stuck_repair_max_gap_seconds: float = 3600.0
    notifier_delivery_limit: int = 5
    # Messages each notifier holds at once: enough for two full confirmation batches
    # (shared/coalesce.group_commit), so one commits while the next fills.
    notifier_prefetch: int = 128

    # Mail over SMTP. `make run` starts the bundled catcher on this host and port when
    # SMTP_HOST is not set; set SMTP_HOST (and the rest) to use a real mail server.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = "A6 Cars <bookings@a6cars.example>"
    # auto: upgrade with STARTTLS whenever the server offers it; required: never send
    # without TLS; off: never upgrade. Unset: required with live keys and an SMTP host
    # off this machine, else auto.
    smtp_starttls: SmtpTls | None = None
    smtp_ca_file: str = ""  # CA bundle the SMTP server's certificate must chain to
    smtp_timeout_seconds: float = Field(default=15.0, gt=0)  # connect, each command before DATA
    # DATA, the message and the server's answer to it: a relay may check the mail before it
    # answers, and a mail given up on here may have been taken (it counts as a try; RFC 5321
    # 4.5.3.2.6 asks clients to wait long for that answer; a submission relay answers sooner)
    smtp_data_timeout_seconds: float = Field(default=120.0, gt=0)
    mail_catcher_port: int = 8025  # the bundled catcher's web page (make run)
    mail_poll_seconds: float = 2.0  # and at once when the notifier itself enqueues a mail
    mail_batch_size: int = Field(default=20, ge=1)
    # Senders at once, each with its own SMTP connection and claimed batch: with one, a
    # burst's mails queue behind every round trip to a distant provider in turn.
    mail_concurrency: int = Field(default=4, ge=1, le=32)
    # A confirmation mail is due this long after the confirmation: verify-payment, usually
    # running for the customer's browser right then, draws the passes once, for both.
    mail_passes_wait_seconds: float = Field(default=1.0, ge=0)
    # Transient refusals of one mail, or tries whose data went unanswered (not a server
    # outage), end in `failed` after this many: it bounds the copies a late answer costs
    mail_max_attempts: int = Field(default=10, ge=1)
    # A claimed mail not marked by then is claimed again: longer than one mail's longest send
    # (mail_send_seconds_at_most), or a slow send could go out twice at once
    mail_lease_seconds: float = 300.0
    # A notifier told to stop waits this long for the mails in transfer to be answered and
    # marked (after the HTTP drain): within the orchestrator's grace period.
    mail_stop_grace_seconds: float = Field(default=15.0, ge=0)
    mail_retry_base_seconds: float = 2.0  # back-off after a transient failure, doubling
    # to at most a minute: once the server is back, no mail waits longer than that
    mail_retry_max_seconds: float = 60.0
    # Confirmations first: while the notifier's consumer has events in hand (or had one in
    # the last 50 ms), the sender waits up to this long before each mail; never longer, so
    # mail keeps moving under any load.
    mail_give_way_seconds: float = 0.1

    # Disputes (chargebacks): who is told when one opens, and how often the open ones are
    # looked at (gauges, the ops mail, linking a dispute to a capture seen after it)
    ops_email: str = "ops@a6cars.example"
    dispute_watch_seconds: float = 5.0

    # Sandbox
    sandbox_webhook_url: str = "http://127.0.0.1:8080/api/razorpay/webhook"
    # where the checkout page returns the browser when the link names no callback_url
    sandbox_callback_url: str = "http://127.0.0.1:8080/api/razorpay/callback"
    sandbox_webhook_retry_base_seconds: float = 0.5
    sandbox_webhook_max_delay_seconds: float = 30.0
    sandbox_webhook_max_attempts: int = 10
    sandbox_webhook_timeout_seconds: float = 5.0
    sandbox_unique_receipt_supported: bool = True
    sandbox_refund_delay_seconds: float = 5.0  # pending → processed, like a real refund

    # Observability
    metrics_enabled: bool = True  # /metrics and per-request counting; off to measure its cost
    metrics_poll_seconds: float = 5.0  # outbox lag, dead letters: polled this often

    # Settlements (order_service/settlements.py). A captured payment with no settlement item
    # this many days later is flagged unsettled:
    settlement_due_days: int = Field(default=3, ge=1)
    settlement_poll_seconds: float = 24 * 3600.0  # Razorpay's list, for missed webhooks
    settlement_check_seconds: float = 30.0  # pending settlements are looked for this often
    # The bundled sandbox settles what is captured or refunded every this many seconds
    # (0: only when a test or `make run` asks), charging this fee plus GST on it.
    sandbox_settle_every: float = Field(default=0.0, ge=0)
    sandbox_fee_basis_points: int = Field(default=200, ge=0, le=10_000)
    sandbox_gst_percent: int = Field(default=18, ge=0, le=100)
    # The clock the sandbox's recon API dates its days by, minutes east of UTC (Razorpay's
    # docs do not say; 330 is India's).
    sandbox_recon_utc_offset_minutes: int = Field(default=0, ge=-720, le=840)

    log_level: str = Field(default="INFO")
    # Which service this process is (serve() says): live keys check only the secrets it uses
    a6pay_service: str = ""

    @field_validator("smtp_starttls", mode="before")
    @classmethod
    def _starttls_from_older_booleans(cls, value):
        """SMTP_STARTTLS was a boolean: true meant "always", false the unsafe "never"."""
        if isinstance(value, bool) or str(value).lower() in ("true", "false", "1", "0"):
            return SmtpTls.REQUIRED if str(value).lower() in ("true", "1") else SmtpTls.AUTO
        return value or None

    @property
    def smtp_tls(self) -> SmtpTls:
        if self.smtp_starttls is not None:
            return self.smtp_starttls
        if self.live and not _is_local(self.smtp_host):
            return SmtpTls.REQUIRED
        return SmtpTls.AUTO

    # The browser frontend (docs/frontend.md): exact origins (scheme://host[:port]) whose
    # pages may call create-order, verify-payment and payment-status; comma-separated.
    cors_allowed_origins: str = ""
    # The demo storefront `make run` serves on a port (an origin) of its own
    storefront_port: int = 8070
    storefront_gateway_url: str = "http://127.0.0.1:8080"  # the gateway, as a browser sees it
    storefront_checkout_script_url: str = "http://127.0.0.1:8090/v1/checkout.js"

    @field_validator("cors_allowed_origins")
    @classmethod
    def _exact_origins(cls, value: str) -> str:
        """A browser sends its Origin as scheme://host[:port]: anything else (a path, a
        trailing slash, a wildcard) would never match, so say so at start."""
        for origin in split_csv(value):
            parts = urlsplit(origin)
            if (parts.scheme not in ("http", "https") or not parts.netloc
                    or origin != f"{parts.scheme}://{parts.netloc}" or "*" in origin):
                raise ValueError(f"CORS_ALLOWED_ORIGINS: {origin!r} is not an exact origin"
                                 " such as https://shop.example or http://localhost:3000")
        return value

    @property
    def cors_origins(self) -> list[str]:
        return split_csv(self.cors_allowed_origins)

    @field_validator("counter_timezone")
    @classmethod
    def _a_known_time_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"COUNTER_TIMEZONE is not a time zone: {value!r}") from None
        return value

    @field_validator("smtp_from")
    @classmethod
    def _from_is_an_address(cls, value: str) -> str:
        address = parseaddr(value)[1]
        if "@" not in address or any(ord(c) < 32 for c in value):
            raise ValueError("SMTP_FROM must be a mail address, e.g. 'A6 Cars <a@b.example>'")
        return value

    @property
    def mail_send_seconds_at_most(self) -> float:
        """The longest one mail's send takes: the steps before its data, then the data."""
        return (SMTP_STEPS_BEFORE_DATA * self.smtp_timeout_seconds
                + self.smtp_data_timeout_seconds)

    @model_validator(mode="after")
    def _mail_lease_outlasts_a_send(self) -> Settings:
        if self.mail_lease_seconds <= self.mail_send_seconds_at_most:
            raise ValueError(
                f"MAIL_LEASE_SECONDS={self.mail_lease_seconds:g} must be longer than the"
                f" longest send of one mail, {self.mail_send_seconds_at_most:g} s"
                f" ({SMTP_STEPS_BEFORE_DATA} x SMTP_TIMEOUT_SECONDS before the data, then"
                " SMTP_DATA_TIMEOUT_SECONDS): another sender would claim a mail still being"
                " sent")
        return self

    @model_validator(mode="after")
    def _worker_is_one_of_workers(self) -> Settings:
        if self.worker > self.workers:
            raise ValueError(f"WORKER={self.worker} is not one of WORKERS={self.workers}")
        return self

    @field_validator("socket_dir")
    @classmethod
    def _socket_paths_fit(cls, value: str) -> str:
        """A Unix socket's path holds at most 107 bytes (sun_path): say so at start, not
        as a bind error in one service."""
        longest = max((local_sockets.socket_path(value, service, 64)  # WORKER at most 64
                       for service in local_sockets.SERVICES), key=len)
        if value and len(longest.encode()) > _SUN_PATH_MAX:
            raise ValueError(f"SOCKET_DIR is too long for a Unix socket path: {longest!r} is"
                             f" over {_SUN_PATH_MAX} bytes")
        return value

    @model_validator(mode="after")
    def _live_keys_need_their_own_secrets(self) -> Settings:
        """With live keys, a secret anyone could know lets them forge webhooks or passes or use
        the admin API: refuse to start rather than take real money so (docs/security.md)."""
        short = [f"{name} is shorter than {live_guard.MIN_SECRET_CHARS} characters"
                 for name, value in self._tokens().items()
                 if value and len(value) < live_guard.MIN_SECRET_CHARS]
        if short:
            raise ValueError("; ".join(short))
        if not self.live:
            return self
        used = live_guard.used_by(self.a6pay_service)

        def uses(name: str) -> bool:
            return used is None or name in used

        secrets = {name: values for name, values in self._live_secrets().items() if uses(name)}
        key_secret = self.razorpay_key_secret if uses("RAZORPAY_KEY_SECRET") else ""
        reasons = live_guard.weak_secrets(secrets, key_secret=key_secret)
        if uses("RAZORPAY_KEY_SECRET") and live_guard.is_placeholder(key_secret or "<unset>"):
            reasons.insert(0, "RAZORPAY_KEY_SECRET is a documented placeholder")
        if uses("RAZORPAY_WEBHOOK_SECRET") and not self.webhook_secrets:
            reasons.append("RAZORPAY_WEBHOOK_SECRET is not set")
        if uses("PASS_SIGNING_SECRET") and not self.pass_signing_secret:
            reasons.append("PASS_SIGNING_SECRET is not set")
        if uses("AUTH_JWT_SECRET") and not (self.auth_jwt_secret
                                            or self.allow_anonymous_customers):
            reasons.append("AUTH_JWT_SECRET is not set (or set ALLOW_ANONYMOUS_CUSTOMERS=true"
                           " on purpose: anyone can then read any booking's payment status)")
        if reasons:
            raise ValueError("live Razorpay keys: " + "; ".join(reasons))
        return self

    @property
    def live(self) -> bool:
        return self.razorpay_key_id.startswith("rzp_live_")

    def _tokens(self) -> dict[str, str]:
        """The bearer tokens of the admin and staff APIs that are configured here."""
        return {"ADMIN_API_TOKEN": self.admin_api_token, "STAFF_API_TOKEN": self.staff_api_token}

    def _live_secrets(self) -> dict[str, list[str]]:
        singles = {"PASS_SIGNING_SECRET": self.pass_signing_secret,
                   "AUTH_JWT_SECRET": self.auth_jwt_secret, **self._tokens()}
        return {"RAZORPAY_WEBHOOK_SECRET": self.webhook_secrets,
                **{name: [value] for name, value in singles.items() if value}}

    def public_defaults_in_use(self) -> list[str]:
        """Secrets still at their published defaults while a non-sandbox key is set."""
        if self.razorpay_key_id == SANDBOX_KEY_ID:
            return []
        return [name for name, bad in (
            ("RAZORPAY_WEBHOOK_SECRET", SANDBOX_WEBHOOK_SECRET in self.webhook_secrets),
            ("PASS_SIGNING_SECRET", self.pass_signing_secret == LOCAL_PASS_SECRET),
        ) if bad]

    def broker_default_account_exposed(self) -> bool:
        """We reach a broker on another host with RabbitMQ's published guest/guest account
        (also what an AMQP URL without credentials means): anyone there can publish to us."""
        return any(_guest_on_another_host(url) for url in split_csv(self.amqp_url))

    @property
    def webhook_secrets(self) -> list[str]:
        return split_csv(self.razorpay_webhook_secret)

    @property
    def trusted_proxies(self) -> set[str]:
        return set(split_csv(self.gateway_trusted_proxies))

    @property
    def secrets(self) -> list[str]:
        """Every configured secret, so logging can scrub them."""
        values = [self.razorpay_key_secret, self.pass_signing_secret, self.auth_jwt_secret,
                  self.smtp_password, self.admin_api_token, self.staff_api_token]
        return [v for v in values + self.webhook_secrets + self.pass_secrets if v]

    @property
    def pass_secrets(self) -> list[str]:
        """The secret passes are signed with, then those whose passes still verify."""
        return [self.pass_signing_secret, *split_csv(self.pass_signing_secrets_old)]


def _guest_on_another_host(amqp_url: str) -> bool:
    url = urlsplit(amqp_url)
    user, password = unquote(url.username or "guest"), unquote(url.password or "guest")
    return (user, password) == ("guest", "guest") and not _is_local(url.hostname)


def _is_local(host: str | None) -> bool:
    if not host or host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides) -> Settings:
    return Settings(**overrides)
