"""What a cluster's URLs mean to the services: AMQP_URL's node list, the quorum queues'
replication, a multi-host DATABASE_URL through the database helpers, and asyncpg's retry
lines kept out of the log."""

from __future__ import annotations

import io
import json
import logging

from shared.db import database_name, with_database
from shared.logging import JsonFormatter, PoolFloorNoise
from shared.messaging import broker_urls, quorum_queue_arguments
from shared.settings import load_settings

CLUSTER = ("amqp://a6:pw@rabbit-0:5672/a6, amqp://a6:pw@rabbit-1:5672/a6,"
           "amqp://a6:pw@rabbit-2:5672/a6")
MULTI_HOST = ("postgresql://a6pay@db-1:5432,db-2:5433/a6pay"
              "?target_session_attrs=read-write&connect_timeout=3")


def test_amqp_url_names_every_node_in_order():
    assert broker_urls(load_settings(amqp_url=CLUSTER)) == [
        "amqp://a6:pw@rabbit-0:5672/a6", "amqp://a6:pw@rabbit-1:5672/a6",
        "amqp://a6:pw@rabbit-2:5672/a6"]


def test_queues_get_a_replica_on_every_node_of_a_cluster():
    arguments = quorum_queue_arguments(load_settings(amqp_url=CLUSTER))
    assert arguments == {"x-queue-type": "quorum", "x-quorum-initial-group-size": 3}


def test_a_single_node_keeps_the_queue_arguments_it_always_had():
    # a queue redeclared with other arguments is refused by RabbitMQ (PRECONDITION_FAILED)
    single = load_settings(amqp_url="amqp://guest:guest@127.0.0.1:5672/")
    assert quorum_queue_arguments(single) == {"x-queue-type": "quorum"}


def test_the_database_helpers_keep_every_host_and_the_session_attributes():
    assert database_name(MULTI_HOST) == "a6pay"
    assert with_database(MULTI_HOST, "postgres") == (
        "postgresql://a6pay@db-1:5432,db-2:5433/postgres"
        "?target_session_attrs=read-write&connect_timeout=3")


def test_the_database_helpers_read_a_socket_url_too():
    url = "postgresql://postgres@/a6pay?host=/var/run/postgresql"
    assert database_name(url) == "a6pay"
    assert with_database(url, "postgres") == "postgresql://postgres@/postgres?host=/var/run/postgresql"


def _emit(record: logging.LogRecord) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    handler.addFilter(PoolFloorNoise())
    handler.handle(record)
    return stream.getvalue()


def test_asyncpgs_floor_retries_are_not_logged_with_their_traceback():
    try:
        raise ConnectionRefusedError("the database system is shutting down")
    except ConnectionRefusedError:
        import sys
        exc_info = sys.exc_info()
    retry = logging.LogRecord("asyncpg.pool", logging.WARNING, __file__, 1,
                              "Failed to restore the pool connection floor; retrying", (),
                              exc_info)
    assert _emit(retry) == ""  # DEBUG, and the root logger is not at DEBUG


def test_other_asyncpg_warnings_still_show():
    other = logging.LogRecord("asyncpg.pool", logging.WARNING, __file__, 1,
                              "Pool.close() is taking over 60 seconds to complete.", (), None)
    assert json.loads(_emit(other))["level"] == "warning"
