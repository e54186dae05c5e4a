"""The broker is not believed: what the notifier's handlers raise for an event the
database does not stand behind, and the digest that tells a redelivery from an event id
reused on another fact."""

from __future__ import annotations

import hashlib

from shared.events import Event


class UnbackedEvent(Exception):
    """An event the database does not stand behind (forged, or corrupt): refused, never
    retried, dead-lettered at once and raised as an alarm."""

    alarm = "unbacked_event"


def fact_of(event: Event) -> bytes:
    """A digest of what an event reports: the inbox keeps it beside the event id, so an id
    reused on another fact is told apart from a redelivery (which carries the same fact)."""
    return hashlib.sha256(
        f"{event.routing_key}\n{event.model_dump_json()}".encode()).digest()[:16]
