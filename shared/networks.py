"""Address ranges from settings (GATEWAY_TRUSTED_PROXIES, ADMIN_ALLOWED_NETWORKS). Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def parse_networks(entries: Iterable[str], setting: str) -> tuple:
    """Addresses or CIDR ranges. A bad entry raises, naming `setting`: a typo must not open
    or close a door silently."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"invalid entry in {setting}: {entry!r}") from exc
    return tuple(networks)
