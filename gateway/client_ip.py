"""Who is the client? The TCP peer, unless that peer is a proxy we trust.

`X-Forwarded-For` is only believed when the socket peer is a trusted proxy. Then the
chain is read right to left (each proxy appends the address it saw) and the first
address that is not itself a trusted proxy is the client. Everything left of it was
written by the client and could be forged. Pure: no aiohttp objects.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

from shared.networks import parse_networks

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Addresses or CIDR ranges. A bad entry raises: a typo here must not pass silently."""
    return parse_networks(entries, "GATEWAY_TRUSTED_PROXIES")


# The longest address a proxy writes: "[" + 45 characters of IPv6 + "]:65535", with room
# for spaces. Anything longer is no address, and must not fill the cache below (a client
# behind a trusted proxy writes what it likes into X-Forwarded-For).
_MAX_ADDRESS_CHARS = 64


def parse_ip(text: str | None) -> IPAddress | None:
    """An address as a proxy may write it ("1.2.3.4", "1.2.3.4:80", "[::1]:80"), or None."""
    if not text or len(text) > _MAX_ADDRESS_CHARS:
        return None
    return _parse_ip(text)


# Pure and called on every request with the few addresses a connection pool reuses: cached
# (ipaddress parses in Python, several microseconds an address).
@functools.lru_cache(maxsize=4096)
def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("["):  # "[v6]" or "[v6]:port"
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # "v4:port"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; compare them as IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> str:
    """The client's address as a string; `forwarded_for` holds every X-Forwarded-For value."""
    if not forwarded_for:
        return _peer_as_client(peer)
    peer_ip = parse_ip(peer)
    if peer_ip is None:
        return peer or "unknown"
    if not is_trusted(peer_ip, trusted):
        return str(peer_ip)
    client = peer_ip
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            continue  # garbage in the chain is skipped, not believed
        client = address
        if not is_trusted(address, trusted):
            break
    return str(client)


# Most requests carry no X-Forwarded-For: then the client is the peer, trusted or not, and
# the same few peers (kept-alive connections, a proxy's) come back on every request.
@functools.lru_cache(maxsize=4096)
def _peer_as_client(peer: str | None) -> str:
    peer_ip = parse_ip(peer)
    return peer or "unknown" if peer_ip is None else str(peer_ip)


@functools.lru_cache(maxsize=4096)
def rate_limit_key(client: str) -> str:
    """Whom a rate limit counts: an IPv4 address, or an IPv6 client's whole /64 (one
    subscriber gets a /64 and could walk it for fresh limits). Anything else as it is."""
    address = parse_ip(client)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return client
