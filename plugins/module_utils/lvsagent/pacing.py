"""Long work on the event loop, in slices: the loop runs its timers (VRRP adverts, checks)
between two slices however large the table and however slow the machine."""

from __future__ import annotations

import asyncio
import json
import time

LOOP_SLICE = 0.01  # seconds of work on the loop between two yields
# Containers split down to this depth (a status reply, its "ipvs" list, a service, its
# real servers); what lies deeper (one real server's row) is encoded in one call.
JSON_SPLIT_DEPTH = 4


class Pacer:
    """Lets the loop run once LOOP_SLICE seconds of work went by."""

    def __init__(self) -> None:
        self._since = time.monotonic()

    async def pace(self) -> None:
        if time.monotonic() - self._since >= LOOP_SLICE:
            await asyncio.sleep(0)
            self._since = time.monotonic()


async def dumps(value) -> str:
    """json.dumps(value), the same text, encoded in slices: a status of 10,000 real servers
    is megabytes of JSON, which json.dumps would encode in one call holding the loop (and the
    GIL) for hundreds of milliseconds."""
    return await _encode(value, Pacer(), 0)


async def _encode(value, pacer: Pacer, depth: int) -> str:
    if depth < JSON_SPLIT_DEPTH and isinstance(value, dict):
        parts = []
        for key, item in value.items():
            name = json.dumps(key if isinstance(key, str) else json.dumps(key))
            parts.append(f"{name}: {await _encode(item, pacer, depth + 1)}")
        return "{" + ", ".join(parts) + "}"
    if depth < JSON_SPLIT_DEPTH and isinstance(value, list):
        parts = [await _encode(item, pacer, depth + 1) for item in value]
        return "[" + ", ".join(parts) + "]"
    await pacer.pace()
    return json.dumps(value)
