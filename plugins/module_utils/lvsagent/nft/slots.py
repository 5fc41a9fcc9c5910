"""Consistent slot tables for the hashing schedulers (sh, mh) of the nftables data plane.

A packet's source address is hashed by the kernel (`jhash ip saddr mod SLOTS`) into one of
SLOTS slots, and each slot belongs to one live real server. Each slot goes to the real server
with the highest weighted rendezvous score for it (highest random weight hashing, weighted as
in Schindelhauer & Schomaker's logarithmic method): a slot's owner changes only when that owner
goes (its slots spread over the others by their weights) or a newcomer outscores it (the
newcomer takes a share of every server's slots, nothing moves between the others). So adding
or removing one real server moves only that server's slots, and two directors with the same
real servers compute the same table: a client keeps its real server across a failover.
"""

from __future__ import annotations

import hashlib
import math
import struct
from functools import lru_cache

SLOTS = 256
SEED = 0x4C5648  # jhash's seed, fixed (the kernel picks a random one when none is given)


@lru_cache(maxsize=4096)
def _scores(address: str, port: int, weight: int) -> tuple:
    """weight / -ln(u) per slot, u a uniform draw in (0, 1) fixed by the real server's
    endpoint: its rendezvous score for each slot."""
    digest = hashlib.shake_128(f"{address} {port}".encode()).digest(8 * SLOTS)
    draws = struct.unpack(f">{SLOTS}Q", digest)
    return tuple(-weight / math.log((draw + 0.5) / 2.0**64) for draw in draws)


def owners(endpoints: list) -> tuple:
    """The index in `endpoints` ((address, port, weight), weight > 0) owning each slot.

    Scores are cached per endpoint and weight, and each slot's maximum is found by C-level
    max/index over its column: a health change of a 1,000-server service costs a few
    milliseconds on the loop."""
    if not endpoints:
        return ()
    columns = zip(*(_scores(*endpoint) for endpoint in endpoints))
    return tuple(column.index(max(column)) for column in columns)


def runs(owned: tuple) -> list:
    """(owner, first slot, last slot) for each run of consecutive slots with one owner."""
    result = []
    for slot, owner in enumerate(owned):
        if result and result[-1][0] == owner:
            result[-1][2] = slot
        else:
            result.append([owner, slot, slot])
    return [tuple(run) for run in result]
