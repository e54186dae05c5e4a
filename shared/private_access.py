"""Who may reach the operator's endpoints: `/metrics`, `/internal/*`, the detailed
`/readyz`, and (at the gateway) the admin API. Only callers from ADMIN_ALLOWED_NETWORKS
(by default loopback and the private ranges: the cluster, the operator's network); a peer
on a Unix socket is this machine. Everyone else gets 404 for the private paths and only
`{"status": ...}` from /readyz, so nothing about the inside (dependencies, error names,
metric labels) leaks to the internet.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable

from aiohttp import web

from shared.http import NOT_FOUND, json_error
from shared.networks import parse_networks

ALLOWED_NETWORKS = web.AppKey("private_access_networks", tuple)
TRUSTED_CALLER = web.RequestKey("private_access_trusted_caller", bool)


@functools.lru_cache(maxsize=4096)
def caller_allowed(address: str | None, networks: tuple) -> bool:
    """True for an address inside `networks`, and for a caller with no IP address (a Unix
    socket peer: this machine)."""
    if not address:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return not any(c in address for c in ".:")  # a socket path, not a garbled address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def is_private_path(path: str) -> bool:
    return path == "/metrics" or path.startswith("/internal/")


def install(app: web.Application, networks: str, client_of: Callable[[web.Request], str | None],
            ) -> None:
    """Guard `app`'s private paths; `client_of(request)` says who is calling (the peer for
    a service, the client behind trusted proxies for the gateway)."""
    app[ALLOWED_NETWORKS] = parse_networks(
        (part for part in networks.split(",") if part.strip()), "ADMIN_ALLOWED_NETWORKS")

    @web.middleware
    async def private_access(request: web.Request, handler) -> web.StreamResponse:
        trusted = caller_allowed(client_of(request), request.app[ALLOWED_NETWORKS])
        request[TRUSTED_CALLER] = trusted
        if not trusted and is_private_path(request.path):
            return json_error(404, NOT_FOUND)
        return await handler(request)

    app.middlewares.append(private_access)


def trusted_caller(request: web.Request) -> bool:
    """Set by the middleware; an app without it (a test's bare app) shows everything."""
    return request.get(TRUSTED_CALLER, True)


def socket_peer(request: web.Request) -> str | None:
    """The TCP peer's address; None on a Unix socket."""
    peername = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peername, (list, tuple)) and peername:
        return str(peername[0])
    return None
