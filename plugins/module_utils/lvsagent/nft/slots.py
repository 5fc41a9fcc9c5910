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
import threading
from collections import OrderedDict
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

    A table a few real servers away from one computed lately is derived from it: only the
    slots of the servers gone are scored again, and the newcomers' scores compared with each
    slot's owner's, so a health change costs O(SLOTS) rather than O(SLOTS x servers) (the
    result is the same: each slot still goes to its highest score)."""
    if not endpoints:
        return ()
    wanted = frozenset(endpoints)
    with _lock:
        owning = _recent.get(wanted)
        if owning is None:
            owning = _derived(wanted) or _computed(endpoints)
        _recent[wanted] = owning
        _recent.move_to_end(wanted)
        while len(_recent) > RECENT:
            _recent.popitem(last=False)
    index: dict = {}
    for position, endpoint in enumerate(endpoints):
        index.setdefault(endpoint, position)
    return tuple(index[endpoint] for endpoint in owning)


RECENT = 64  # slot tables remembered (a few per hashed service), the next one derived from one
NEAR = 8  # how many real servers (each way) a remembered table may differ by
_recent: OrderedDict = OrderedDict()  # frozenset of endpoints -> the endpoint owning each slot
_lock = threading.Lock()


def _computed(endpoints: list) -> tuple:
    """Each slot's maximum found by C-level max/index over its column (scores cached)."""
    columns = zip(*(_scores(*endpoint) for endpoint in endpoints))
    return tuple(endpoints[column.index(max(column))] for column in columns)


def _derived(wanted: frozenset):
    """The table for `wanted` from the latest remembered one near it, or None."""
    for base, owning in reversed(_recent.items()):
        gone, new = base - wanted, wanted - base
        if len(gone) > NEAR or len(new) > NEAR:
            continue
        result = list(owning)
        candidates = list(wanted)
        for slot, owner in enumerate(owning):
            if owner in gone:
                result[slot] = max(candidates, key=lambda e, slot=slot: _scores(*e)[slot])
            else:
                for endpoint in new:
                    if _scores(*endpoint)[slot] > _scores(*result[slot])[slot]:
                        result[slot] = endpoint
        return tuple(result)
    return None


def runs(owned: tuple) -> list:
    """(owner, first slot, last slot) for each run of consecutive slots with one owner."""
    result = []
    for slot, owner in enumerate(owned):
        if result and result[-1][0] == owner:
            result[-1][2] = slot
        else:
            result.append([owner, slot, slot])
    return [tuple(run) for run in result]
