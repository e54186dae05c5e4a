"""Unix sockets between the gateway and the services it calls, for a stack on one machine.

With `SOCKET_DIR` set, each process of order_service, verification_service and
webhook_service also listens on `<SOCKET_DIR>/<service>-<WORKER>.sock`, and the gateway
connects there instead of to their URLs. A loopback TCP exchange runs the whole TCP stack
twice, on both ends; a Unix socket copies bytes between two buffers, so the busiest
reads (payment-status) cost less CPU in the gateway and in the service.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat

# Services the gateway forwards to: the ones that listen on a socket when asked to.
SERVICES = ("order_service", "verification_service", "webhook_service")


def socket_path(socket_dir: str, service: str, worker: int) -> str:
    return os.path.join(socket_dir, f"{service}-{worker}.sock")


def worker_paths(socket_dir: str, service: str, workers: int) -> tuple[str, ...]:
    """Every process's socket of a service that runs `workers` processes."""
    return tuple(socket_path(socket_dir, service, n) for n in range(1, workers + 1))


class SocketInUse(RuntimeError):
    pass


def claim(path: str) -> None:
    """Make `path` free to bind: a socket file a dead process left behind is removed; one a
    live process still answers on is not (that is a second copy started by mistake, as a
    taken TCP port would say). Anything at `path` that is not a socket is left alone too,
    and the bind then fails on it."""
    # Only our own user may connect: behind these sockets no gateway checks anything.
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    finally:
        probe.close()
    raise SocketInUse(f"another process is listening on {path}")


def release(path: str) -> None:
    """Remove our socket file on the way out (asyncio leaves it behind)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
