"""No single node of the data tier loses a payment: paid bookings stream through the
gateway while the PostgreSQL primary is killed and its synchronous standby promoted, then
while the RabbitMQ node leading the notifier's queue is stopped. Real servers, built on
this machine for the test and removed after (ops/ha_cluster.py); the services are given
the multi-host DATABASE_URL and the list of broker nodes, and migrated by `a6pay migrate`
through that URL. How long each outage lasted is `make chaos-ha`'s to print, not this
test's to assert."""

from __future__ import annotations

import pytest

from bench.chaos_ha.run import render, run

pytestmark = pytest.mark.e2e

BOOKINGS = 30


async def test_every_booking_is_confirmed_once_through_a_failover_and_a_broker_node_loss():
    report = await run(BOOKINGS, per_second=3, failover_back=False, pause=1.0,
                       settle_seconds=60)
    summary = render(report)
    assert report.settled, summary
    ledger = report.ledger
    assert (ledger["sent"], ledger["confirmed"], ledger["lost"], ledger["doubled"]) == (
        BOOKINGS, BOOKINGS, 0, 0), summary
    assert ledger["mails_caught"] == BOOKINGS, summary  # one confirmation mail each
    _, broker = report.outages
    assert broker["webhook 5xx"] == 0, summary  # the outbox absorbs a broker node's loss
    # both outages were felt (each component says so once) and ridden out
    felt = " ".join(report.outage_warnings)
    assert "database unavailable" in felt and "broker unavailable" in felt, summary
    assert not report.tracebacks, report.tracebacks[:3]
    assert not report.unhandled, report.unhandled[:3]
