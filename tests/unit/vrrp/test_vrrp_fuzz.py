"""Fuzzing the decoder and an instance's receive path with real keepalived packets, mutated.

Seeded, so a failure replays: 100,000+ packets, random bytes and mutations of every advert of
the reference captures (bit flips, overwritten, cut or grown bytes, then often a checksum made
right again so that the later rules are reached too), with random TTL, source and destination.
The decoder raises nothing but `InvalidPacket`; the receive path raises nothing at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import struct

import pytest
from test_vrrp_instance import OURS, PEER, conf_text, started
from test_vrrp_packet import DATA, vrrp_frames

from lvsagent.vrrp import packet
from lvsagent.vrrp.packet import InvalidPacket
from lvsagent.vrrp.sockets import Received

SEED = 20261201
PACKETS = 50_000  # per run: the decoder, then the receive path of two instances
SOURCES = [PEER, OURS, ipaddress.ip_address("192.168.77.66"), ipaddress.ip_address("fe80::1")]
DESTINATIONS = [packet.MCAST_GROUP4, OURS, packet.MCAST_GROUP6, ipaddress.ip_address("fe80::2")]
TTLS = [255, 255, 255, 64, 1, 0, -1]


def seeds() -> list[tuple[bytes, packet.IPAddress, packet.IPAddress]]:
    found = []
    for capture in ("keepalived-2.2.7-vrrpv2-pass.pcap", "keepalived-2.2.7-vrrpv3.pcap"):
        found += vrrp_frames(os.path.join(DATA, capture))
    return found


def fix_checksum(data: bytearray, source, destination) -> None:
    if len(data) < packet.HEADER_LEN:
        return
    data[6:8] = b"\0\0"
    covered = bytes(data)
    if data[0] >> 4 == 3:
        covered = packet.pseudo_header(source, destination, 112, len(data)) + covered
    data[6:8] = struct.pack("!H", packet.internet_checksum(covered))


def mutated(rng: random.Random, originals) -> tuple[bytes, packet.IPAddress, packet.IPAddress]:
    if rng.random() < 0.1:
        source, destination = rng.choice(SOURCES), rng.choice(DESTINATIONS)
        return rng.randbytes(rng.randrange(0, 80)), source, destination
    message, source, destination = rng.choice(originals)
    data = bytearray(message)
    for _mutation in range(rng.randrange(1, 4)):
        kind = rng.randrange(5)
        if kind == 0 and data:
            at = rng.randrange(len(data))
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:
            data[rng.randrange(len(data))] = rng.choice((0, 1, 2, 3, 0x0F, 0x7F, 0xFF))
        elif kind == 2:
            del data[rng.randrange(len(data) + 1) :]
        elif kind == 3:
            data += rng.randbytes(rng.randrange(1, 40))
        elif len(data) > 3:
            data[3] = rng.randrange(256)  # the address count
    if rng.random() < 0.2:
        source = rng.choice(SOURCES)
    if rng.random() < 0.2:
        destination = rng.choice(DESTINATIONS)
    if rng.random() < 0.7:
        fix_checksum(data, source, destination)
    return bytes(data), source, destination


def test_decoder_raises_only_invalid_packet():
    rng = random.Random(SEED)
    originals = seeds()
    reasons = set()
    decoded = 0
    for _packet in range(PACKETS):
        data, source, destination = mutated(rng, originals)
        try:
            packet.decode(data, source, destination)
            decoded += 1
        except InvalidPacket as bad:
            reasons.add(bad.reason)
    assert decoded > PACKETS // 20  # the mutations reach past the checksum
    assert {"truncated", "version", "type", "checksum", "interval 0"} <= reasons


UNICAST_V3 = (
    "  version 3\n  unicast_src_ip 192.168.77.11\n  unicast_peer {\n    192.168.77.12\n  }\n"
    "  check_unicast_src\n"
)


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("", {"ttl", "checksum", "auth_password", "destination", "version"}),
        (UNICAST_V3, {"checksum", "destination", "unicast source", "version"}),
    ],
    ids=["v2 multicast", "v3 unicast"],
)
def test_receive_path_never_raises(extra, expected):
    rng = random.Random(SEED + len(extra))
    originals = seeds()

    async def scenario():
        instance, shared = await started(conf_text(priority=100, extra=extra))
        handler = shared.sockets.handlers[51]
        for _packet in range(PACKETS):
            data, source, destination = mutated(rng, originals)
            handler(Received(data, source, destination, rng.choice(TTLS), "eth0"))
        drops = dict(shared.drops.counts)
        await instance.stop()
        return drops

    drops = asyncio.run(scenario())
    assert sum(drops.values()) < PACKETS  # some got through to the machine
    assert expected <= set(drops)
