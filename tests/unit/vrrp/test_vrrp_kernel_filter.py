"""The kernel filters, run by a small classic BPF interpreter: the hostile adverts go to the
bulk socket, and one that the receive rules accept always to the first socket (fuzzed with
mutated keepalived packets); every packet goes to exactly one of the two."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest
from test_vrrp_fuzz import mutated, seeds
from test_vrrp_receive import OURS, PEER, STRANGER, UNICAST, message, rules

from lvsagent.vrrp import kernel_filter, packet
from lvsagent.vrrp.packet import InvalidPacket


def run(program: bytes, data: bytes) -> int:
    """Classic BPF as the kernel runs it (the opcodes the filter uses); 0 = drop."""
    code = [struct.unpack_from("HBBI", program, at) for at in range(0, len(program), 8)]
    a = x = pc = 0
    memory = [0] * 16
    sizes = {0x20: 4, 0x28: 2, 0x30: 1}
    while True:
        op, jt, jf, k = code[pc]
        pc += 1
        if op in sizes:
            if k + sizes[op] > len(data):
                return 0
            a = int.from_bytes(data[k : k + sizes[op]], "big")
        elif op == 0x80:
            a = len(data)
        elif op == 0x60:
            a = memory[k]
        elif op == 0x61:
            x = memory[k]
        elif op == 0x01:
            x = k
        elif op == 0x02:
            memory[k] = a
        elif op == 0x0C:
            a = (a + x) & 0xFFFFFFFF
        elif op == 0x04:
            a = (a + k) & 0xFFFFFFFF
        elif op == 0x54:
            a &= k
        elif op == 0x74:
            a >>= k
        elif op == 0x07:
            x = a
        elif op == 0x87:
            a = x
        elif op == 0x05:
            pc += k
        elif op in (0x15, 0x35):
            taken = a == k if op == 0x15 else a >= k
            pc += jt if taken else jf
        elif op == 0x06:
            return k
        else:
            raise AssertionError(f"opcode {op:#x} not known to the test")


def first_program(rules_by_vrid):
    return kernel_filter.ipv4_programs(rules_by_vrid)[0]


def datagram(message_bytes, source=PEER, destination=packet.MCAST_GROUP4, ttl=255):
    header = bytearray(packet.ipv4_header(source, destination, len(message_bytes), 1))
    header[8] = ttl
    return bytes(header) + message_bytes


MULTICAST_V2 = rules()
UNICAST_V3 = rules(UNICAST + "  check_unicast_src\n", version=3)


@pytest.mark.parametrize(
    "rule, data",
    [
        (MULTICAST_V2, datagram(message())),
        (UNICAST_V3, datagram(message(version=3, to=OURS), destination=OURS, ttl=3)),
    ],
    ids=["v2 multicast", "v3 unicast routed"],
)
def test_the_real_advert_passes(rule, data):
    assert run(first_program({51: rule}), data) == kernel_filter.PASS


@pytest.mark.parametrize(
    "rule, data",
    [
        (MULTICAST_V2, datagram(message(priority=255), ttl=64)),
        (MULTICAST_V2, datagram(message(interval=0))),
        (MULTICAST_V2, datagram(message(password="guessed!"))),
        (MULTICAST_V2, datagram(message()[:6] + b"\0\0" + message()[8:])),
        (MULTICAST_V2, datagram(message(to=OURS), destination=OURS)),
        (UNICAST_V3, datagram(message(3, source=STRANGER, to=OURS), STRANGER, OURS)),
        (UNICAST_V3, datagram(message(3, interval=0, to=OURS), destination=OURS)),
        (UNICAST_V3, datagram(message(3, to=OURS)[:-1] + b"\1", destination=OURS)),
        (UNICAST_V3, datagram(message(3))),
    ],
    ids=[
        "ttl", "interval 0", "password", "checksum", "unicast to multicast",
        "not a peer", "v3 interval 0", "v3 checksum", "multicast to unicast",
    ],
)  # fmt: skip
def test_hostile_adverts_are_dropped_in_the_kernel(rule, data):
    assert run(first_program({51: rule}), data) == kernel_filter.DROP
    header = packet.parse_ipv4_header(data)
    with pytest.raises(InvalidPacket):
        rule.check(data[20:], header.source, header.destination, header.ttl)


def test_other_vrids_are_dropped_and_long_blocks_jump_right():
    forty_vips = rules(version=3)
    forty_vips.vips = [ipaddress.ip_address(f"192.168.77.{n}").packed for n in range(100, 140)]
    program = first_program({60: forty_vips, 51: MULTICAST_V2})
    assert len(program) // 8 > 300
    assert run(program, datagram(message())) == kernel_filter.PASS
    assert run(program, datagram(message().replace(b"\x21\x33", b"\x21\x34", 1))) == 0


def test_the_filter_never_drops_what_the_rules_accept():
    rng = random.Random(7)
    originals = seeds()
    programs = [
        (rule, kernel_filter.ipv4_programs({51: rule})) for rule in (MULTICAST_V2, UNICAST_V3)
    ]
    accepted = 0
    for _packet in range(20_000):
        message_bytes, source, destination = mutated(rng, originals)
        if source.version != 4 or destination.version != 4 or message_bytes[1:2] != b"\x33":
            continue  # the socket pool hands an instance its own VRID (51) only
        data = datagram(message_bytes, source, destination, rng.choice((255, 255, 64)))
        for rule, (first, bulk) in programs:
            verdicts = (run(first, data), run(bulk, data))
            assert sorted(verdicts) == [kernel_filter.DROP, kernel_filter.PASS], data.hex()
            try:
                rule.check(message_bytes, source, destination, data[8])
            except InvalidPacket:
                continue
            accepted += 1
            if message_bytes[3] == len(rule.vips):  # the other counts queue on the bulk socket
                assert verdicts[0] == kernel_filter.PASS, data.hex()
    assert accepted > 100


def test_what_the_filter_cannot_judge_queues_on_the_bulk_socket():
    two_vips = packet.Advertisement(
        2, 51, 150, (PEER, OURS), 1.0, packet.AUTH_PASS, packet.auth_data_for("secret12")
    )
    other_count = datagram(packet.encode(two_vips))
    with_options = bytearray(datagram(message()))
    with_options[0] = 0x46
    with_options[20:20] = b"\x01\x01\x01\x00"  # four bytes of no-op options
    first, bulk = kernel_filter.ipv4_programs({51: MULTICAST_V2})
    for data in (other_count, bytes(with_options)):
        assert (run(first, data), run(bulk, data)) == (kernel_filter.DROP, kernel_filter.PASS)
    assert MULTICAST_V2.check(other_count[20:], PEER, packet.MCAST_GROUP4, 255).count == 2
