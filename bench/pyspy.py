"""py-spy (sampling profiler, its own process) recording one of our processes for as long
as a `with` block runs: where its CPU went during one phase of a benchmark."""

from __future__ import annotations

import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def recording(pid: int, output: Path | None, *, gil: bool = False):
    """Collapsed stacks (one per line) of `pid` into `output`; nothing when output is None.
    `gil`: only the thread holding the GIL, i.e. where the CPU goes (a thread waiting for
    the GIL would otherwise count as busy)."""
    if output is None:
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        ["py-spy", "record", "--nonblocking", *(["--gil"] if gil else []), "--format", "raw",
         "-o", str(output), "--pid", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
        spy.wait(timeout=30)
