"""pacing.dumps: json.dumps's text, with the loop running between its slices."""

from __future__ import annotations

import asyncio
import json

from loopticks import LoopTicks

from lvsagent import pacing


def test_dumps_writes_json_dumps_text_and_lets_the_loop_run(monkeypatch):
    monkeypatch.setattr(pacing, "LOOP_SLICE", 0.0)  # a slice per piece
    rows = [{"address": f"10.0.0.{n}", "weight": n, "counters": None} for n in range(50)]
    reply = {
        "ipvs": [{"service": "[10.0.0.100]:80", "realservers": rows, "flags": []}],
        "vrrp": {"VI_1": {"state": "MASTER", "priority": 150.5, "ok": True}},
        "agent": {"reloads": {"ok": 1}, "last_reload": None, 1: "a key that is not text"},
    }

    async def test():
        async with LoopTicks() as ticks:
            text = await pacing.dumps(reply)
        return text, ticks.count

    text, ticks = asyncio.run(test())
    assert text == json.dumps(reply)
    assert ticks >= len(rows)  # the loop ran between the real servers' rows
