"""Isolation for a test run: its own PostgreSQL database and its own RabbitMQ vhost."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

BASE_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BASE_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def unique_name(prefix: str = "a6pay_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def database_url(name: str) -> str:
    return urlunsplit(urlsplit(BASE_DATABASE_URL)._replace(path="/" + name))


def amqp_url(vhost: str) -> str:
    return BASE_AMQP_URL.rstrip("/") + "/" + quote(vhost, safe="")


def _rabbitmqctl(*args: str) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", *args], check=True, capture_output=True, timeout=60)


def create_vhost(vhost: str) -> None:
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")


def delete_vhost(vhost: str) -> None:
    _rabbitmqctl("delete_vhost", vhost)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.1):
    """Poll an async predicate until it returns truthy; returns that value or fails."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)
