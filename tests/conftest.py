"""Session fixtures: one database and one vhost per test run, dropped afterwards.

Unit tests (tests/unit) use none of these; integration and e2e tests ask for them.
"""

from __future__ import annotations

import os

import pytest

from shared.db import create_database_if_missing, create_pool, migrate
from shared.settings import Settings, load_settings
from testkit import infra


@pytest.fixture(scope="session")
def run_names():
    return {"database": infra.unique_name(), "vhost": infra.unique_name("a6pay_vhost")}


@pytest.fixture(scope="session")
async def database_url(run_names):
    url = infra.database_url(run_names["database"])
    await create_database_if_missing(url)
    await migrate(url)
    yield url
    if not os.environ.get("A6PAY_KEEP_TEST_DB"):
        await infra.drop_database(url)


@pytest.fixture(scope="session")
def amqp_url(run_names):
    infra.create_vhost(run_names["vhost"])
    yield infra.amqp_url(run_names["vhost"])
    infra.delete_vhost(run_names["vhost"])


@pytest.fixture(scope="session")
def base_settings(database_url, amqp_url) -> Settings:
    """Settings for this run's database and vhost; tests derive from it with model_copy."""
    return load_settings(
        database_url=database_url,
        amqp_url=amqp_url,
        outbox_sweep_seconds=0.5,
        reconcile_first_delay_seconds=3600,
        razorpay_timeout_seconds=2.0,
        log_level="DEBUG",
    )


@pytest.fixture(scope="session")
async def pool(base_settings):
    pool = await create_pool(base_settings)
    yield pool
    await pool.close()
