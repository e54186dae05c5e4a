"""Reading what the stack's processes logged since a point: the fault tests compare the
lines written during an outage with what an operator should see."""

from __future__ import annotations

import json

BROKER_USERS = ("order_service", "verification_service", "webhook_service", "notifier")


def log_sizes(stack) -> dict[str, int]:
    return {name: (stack.log_dir / f"{name}.log").stat().st_size for name in BROKER_USERS}


def new_lines(stack, since: dict[str, int]) -> dict[str, list[dict]]:
    lines = {}
    for name, offset in since.items():
        with open(stack.log_dir / f"{name}.log", "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        lines[name] = [json.loads(line) if line.startswith("{") else {"raw": line}
                       for line in text.splitlines() if line.strip()]
    return lines
