"""AMQP_URL as a list of nodes, against the real broker: a connection goes to the first
node that answers, and one that is away costs a refused attempt, not the connection."""

from __future__ import annotations

import asyncio
import gc

import pytest

from shared.messaging import BrokerNodes
from shared.settings import load_settings
from testkit.infra import free_port


def away() -> str:
    return f"amqp://guest:guest@127.0.0.1:{free_port()}/"  # nothing listens there


async def test_a_connection_goes_to_the_first_node_that_answers(amqp_url):
    nodes = BrokerNodes(load_settings(amqp_url=f"{away()},{amqp_url}"))
    connection = await nodes.connect(timeout=5)
    try:
        channel = await connection.channel()
        await channel.declare_queue(exclusive=True)  # a working broker connection
    finally:
        await connection.close()
    # the node that answered is tried first next time: the one away costs nothing more
    assert nodes.first == amqp_url


async def test_no_node_answering_is_the_last_nodes_error():
    nodes = BrokerNodes(load_settings(amqp_url=f"{away()},{away()}"))
    with pytest.raises(ConnectionError):
        await nodes.connect(timeout=2)
    # the failed connections were closed: collected off the loop's thread, as the SDK's
    # worker threads do, they leave no coroutine behind that nobody awaits
    await asyncio.to_thread(gc.collect)
