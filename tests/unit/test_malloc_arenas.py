"""Threads share two malloc arenas (shared.service.cap_malloc_arenas), so what a thread
freed stays usable by the others instead of resident in an arena of its own."""

import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys, tempfile, threading
from shared.service import cap_malloc_arenas
if sys.argv[1] == "capped":
    assert cap_malloc_arenas()
libc = ctypes.CDLL("libc.so.6")
start, kept = threading.Barrier(8), []
def allocate():
    start.wait()  # all at once: each would take an arena of its own
    kept.append([bytes(4096 + i) for i in range(200)])
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.fdopen.restype = ctypes.c_void_p
libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fflush.argtypes = [ctypes.c_void_p]
report = tempfile.TemporaryFile()
stream = libc.fdopen(report.fileno(), b"w")
libc.malloc_info(0, stream)
libc.fflush(stream)
report.seek(0)
print(report.read().count(b"<heap nr="))
"""


def arenas_used(mode: str) -> int:
    answer = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True,
                            text=True, check=True, timeout=60)
    return int(answer.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_threads_share_two_arenas():
    assert arenas_used("uncapped") > 2  # what the cap is for
    assert arenas_used("capped") <= 2
