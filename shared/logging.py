"""JSON logs that never carry secrets, signatures or payment identifiers.

Razorpay ids (`pay_…`, `order_…`) become a short fingerprint so one payment can still be
followed through the logs without the id itself being readable. Anything 64-hex (an HMAC
signature) is dropped. The same scrubbing wraps stdout, because the razorpay SDK `print`s
request errors that contain URLs with ids in them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import sys
import time

# A Razorpay id is the prefix and 14 random base-62 characters; other APIs' test ids are
# shorter but carry a digit or a capital. Plain words (our own `order_service`, `order_id`)
# are left alone.
_ID_RE = re.compile(
    r"\b(pay|order|rcpt)_(?!service\b)"
    r"(?:[A-Za-z0-9]{10,}|[A-Za-z0-9]*[A-Z0-9][A-Za-z0-9]*)\b"
)
_HEX_SIG_RE = re.compile(r"\b[0-9a-fA-F]{64}\b")
# A customer's address is theirs, not the logs': mail servers echo it in their refusals.
# The local part is bounded (64, as RFC 5321 bounds it): unbounded, every start in a long
# run of letters would scan to its end, quadratic in the run for a line with no address.
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_secrets: list[str] = []


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:10]


def scrub(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, "[secret]")
    if "@" in text:  # most lines hold no address: the search would cost them all
        text = _EMAIL_RE.sub(lambda m: f"email#{fingerprint(m.group(0).lower())}", text)
    text = _ID_RE.sub(lambda m: f"{m.group(1)}#{fingerprint(m.group(0))}", text)
    return _HEX_SIG_RE.sub("[signature]", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "ctx", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, default=str, ensure_ascii=False))


class ScrubbingStream(io.TextIOBase):
    """Wraps a text stream and scrubs whatever is written to it."""

    def __init__(self, inner):
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(scrub(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()


_AMQP_LIBRARIES = ("aiormq", "aio_pika")


class AmqpLibraryNoise(logging.Filter):
    """aio-pika and aiormq report a broker restart as errors with tracebacks, then once per
    reconnect attempt. Our code says it once each way (shared.messaging.BrokerWatch), so
    their lines below CRITICAL become DEBUG: shown only when LOG_LEVEL is DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] in _AMQP_LIBRARIES and record.levelno < logging.CRITICAL:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


class PoolFloorNoise(logging.Filter):
    """asyncpg logs each failed attempt to reopen a pool's floor of connections as a
    warning with a traceback, for as long as the database is away. shared.outage's
    DatabaseWatch says it once each way, so these lines become DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "asyncpg.pool" and str(record.msg).startswith(
                "Failed to restore the pool connection floor"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def register_secrets(secrets: list[str]) -> None:
    _secrets[:] = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)


def setup_logging(service: str, level: str = "INFO", secrets: list[str] | None = None) -> None:
    register_secrets(secrets or [])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(AmqpLibraryNoise())
    handler.addFilter(PoolFloorNoise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for library in _AMQP_LIBRARIES:  # their INFO chatter stays out even at DEBUG
        logging.getLogger(library).setLevel("WARNING")
    if not isinstance(sys.stdout, ScrubbingStream):
        sys.stdout = ScrubbingStream(sys.stdout)


def log_ctx(**fields) -> dict:
    """`logger.info("msg", extra=log_ctx(booking_id=1))` adds structured fields."""
    return {"ctx": fields}
