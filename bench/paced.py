"""A steady webhook rate, in a process of its own: sends pre-signed deliveries (the file
bench/lua/webhook.lua reads) on a fixed timetable, without waiting for answers before the
next send (an open loop, so a slow server cannot slow the offered load down).

    python -m bench.paced URL BODIES RATE SECONDS

Prints one JSON line: sent, ok, errors, and how late the sender itself ran (p99, ms).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def send(http, url, line: str, results: dict) -> None:
    signature, event_id, body = line.rstrip("\n").split("\t", 2)
    headers = {"Content-Type": "application/json", "X-Razorpay-Signature": signature,
               "X-Razorpay-Event-Id": event_id}
    try:
        async with http.post(url, data=body.encode(), headers=headers) as resp:
            await resp.read()
            results["ok" if resp.status == 200 else "errors"] += 1
    except (aiohttp.ClientError, TimeoutError):
        results["errors"] += 1


async def main(url: str, path: str, rate: float, seconds: float) -> dict:
    with open(path) as f:
        lines = f.readlines()
    count = min(len(lines), int(rate * seconds))
    results = {"sent": count, "ok": 0, "errors": 0}
    lateness = []
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=256)) as http:
        tasks = []
        start = time.perf_counter()
        for i in range(count):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lateness.append(max(0.0, time.perf_counter() - due))
            tasks.append(asyncio.create_task(send(http, url, lines[i], results)))
        await asyncio.gather(*tasks)
    lateness.sort()
    results["late_p99_ms"] = round(lateness[int(0.99 * (len(lateness) - 1))] * 1000, 2)
    return results


if __name__ == "__main__":
    url, path, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(asyncio.run(main(url, path, rate, seconds))))
