"""Driving `wrk` (the Debian package): the load generator runs in its own process, in C, so
the Python client is never what limits a figure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).with_name("lua")
THREADS = 2


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    status_errors: int  # answers other than 2xx/3xx
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def require_wrk() -> str:
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk not found: `make bench` installs it (apt-get install -y wrk)")
    return exe


def run(url: str, script: str, *, seconds: float, connections: int, env: dict | None = None,
        threads: int = THREADS) -> WrkResult:
    """`script` names a file in bench/lua; the JSON reporter is appended to it."""
    source = (LUA / script).read_text() + "\n" + (LUA / "report.lua").read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(source)
    try:
        out = subprocess.run(
            [require_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
             "--timeout", "10s", "-s", f.name, url],
            env={**os.environ, "BENCH_THREADS": str(threads), **(env or {})},
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    d = json.loads(line.removeprefix("WRKJSON "))
    ms = lambda us: us / 1000  # noqa: E731
    return WrkResult(d["requests"], d["duration_us"] / 1e6, d["status_errors"],
                     d["socket_errors"], ms(d["p50_us"]), ms(d["p90_us"]), ms(d["p99_us"]),
                     ms(d["max_us"]))
