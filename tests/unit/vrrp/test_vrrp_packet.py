"""The codec against real keepalived 2.2.7 bytes (docs: ../shared/reference/vrrp-wire.md)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lvsagent.vrrp import packet
from lvsagent.vrrp.packet import Advertisement, InvalidPacket

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
NODE1 = ipaddress.ip_address("192.168.77.11")
VIP4 = ipaddress.ip_address("192.168.77.100")
VIP6 = ipaddress.ip_address("fd00:77::100")
LINK_LOCAL = ipaddress.ip_address("fe80::b4bb:adff:fe3f:d5")

V2_PASS_FRAME = (
    "01005e000012deff2ed707a8080045c0002800010000ff70ccdec0a84d0be0000012"
    "213396010101cc3ec0a84d647365637265743132"
)
V2_PASS_PRIORITY0_VRRP = "213300010101623fc0a84d647365637265743132"
V3_IPV4_FRAME = (
    "01005e000012b6bbad3f00d5080045c0002000010000ff70cce6c0a84d0be00000123133960100643c17c0a84d64"
)
V3_IPV4_PRIORITY0_VRRP = "313300010064d217c0a84d64"
V3_IPV6_FRAME = (
    "333300000012b6bbad3f00d586dd6c037449001870fffe80000000000000b4bbadfffe3f00d5"
    "ff020000000000000000000000000012313496010064d9fffd000077000000000000000000000100"
)
GARP_FRAME = "ffffffffffffdeff2ed707a808060001080006040001deff2ed707a8c0a84d64ffffffffffffc0a84d64"


def read_pcap(path: str) -> list[bytes]:
    """Frames of a classic libpcap file (either byte order, Ethernet link type)."""
    with open(path, "rb") as handle:
        data = handle.read()
    order = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    frames, offset = [], 24
    while offset + 16 <= len(data):
        captured = struct.unpack_from(order + "I", data, offset + 8)[0]
        frames.append(data[offset + 16 : offset + 16 + captured])
        offset += 16 + captured
    return frames


def vrrp_frames(path: str) -> list[tuple[bytes, packet.IPAddress, packet.IPAddress]]:
    """(VRRP message, source, destination) of each VRRP frame in a capture."""
    found = []
    for frame in read_pcap(path):
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        if ethertype == 0x0800 and frame[14 + 9] == packet.IPPROTO_VRRP:
            header = packet.parse_ipv4_header(frame[14:])
            message = frame[14 + header.header_len : 14 + header.total_len]
            found.append((message, header.source, header.destination))
        elif ethertype == 0x86DD and frame[14 + 6] == packet.IPPROTO_VRRP:
            length = struct.unpack_from("!H", frame, 18)[0]
            source = ipaddress.ip_address(frame[22:38])
            destination = ipaddress.ip_address(frame[38:54])
            found.append((frame[54 : 54 + length], source, destination))
    return found


def test_v2_pass_is_byte_exact():
    advert = Advertisement(
        version=2,
        vrid=51,
        priority=150,
        addresses=(VIP4,),
        interval=1.0,
        auth_type=packet.AUTH_PASS,
        auth_data=packet.auth_data_for("secret12"),
    )
    message = packet.encode(advert)
    frame = bytes.fromhex(V2_PASS_FRAME)
    assert message == frame[34:]
    assert packet.ipv4_header(NODE1, packet.MCAST_GROUP4, len(message), 1) == frame[14:34]
    resigning = Advertisement(**{**advert.__dict__, "priority": 0})
    assert packet.encode(resigning).hex() == V2_PASS_PRIORITY0_VRRP


def test_v3_ipv4_is_byte_exact_with_pseudo_header():
    advert = Advertisement(version=3, vrid=51, priority=150, addresses=(VIP4,), interval=1.0)
    frame = bytes.fromhex(V3_IPV4_FRAME)
    assert packet.encode(advert, NODE1, packet.MCAST_GROUP4) == frame[34:]
    resigning = Advertisement(version=3, vrid=51, priority=0, addresses=(VIP4,))
    assert packet.encode(resigning, NODE1, packet.MCAST_GROUP4).hex() == V3_IPV4_PRIORITY0_VRRP


def test_v3_ipv6_is_byte_exact():
    advert = Advertisement(version=3, vrid=52, priority=150, addresses=(VIP6,), interval=1.0)
    frame = bytes.fromhex(V3_IPV6_FRAME)
    assert packet.encode(advert, LINK_LOCAL, packet.MCAST_GROUP6) == frame[54:]


def test_v3_ipv4_without_pseudo_header_round_trips():
    advert = Advertisement(
        version=3, vrid=51, priority=150, addresses=(VIP4,), pseudo_header_checksum=False
    )
    message = packet.encode(advert, NODE1, packet.MCAST_GROUP4)
    assert packet.internet_checksum(message) == 0
    decoded = packet.decode(message, NODE1, packet.MCAST_GROUP4)
    assert decoded.pseudo_header_checksum is False
    captured = packet.decode(bytes.fromhex(V3_IPV4_FRAME)[34:], NODE1, packet.MCAST_GROUP4)
    assert captured.pseudo_header_checksum is True


def test_gratuitous_arp_is_byte_exact():
    assert packet.gratuitous_arp("de:ff:2e:d7:07:a8", VIP4).hex() == GARP_FRAME


def test_unsolicited_na_matches_capture():
    frames = read_pcap(os.path.join(DATA, "keepalived-2.2.7-vrrpv3.pcap"))
    captured = [f for f in frames if f[12:14] == b"\x86\xdd" and f[20] == 58 and f[54] == 136]
    assert captured
    assert packet.unsolicited_neighbour_advert("b6:bb:ad:3f:00:d5", VIP6) == captured[0]


@pytest.mark.parametrize(
    "capture", ["keepalived-2.2.7-vrrpv2-pass.pcap", "keepalived-2.2.7-vrrpv3.pcap"]
)
def test_every_captured_advert_decodes_and_re_encodes(capture):
    adverts = vrrp_frames(os.path.join(DATA, capture))
    assert len(adverts) > 10
    for message, source, destination in adverts:
        advert = packet.decode(message, source, destination)
        assert advert.vrid in (51, 52)
        assert advert.interval == 1.0
        assert packet.encode(advert, source, destination) == message


def test_v2_decode_fields():
    advert = packet.decode(bytes.fromhex(V2_PASS_FRAME)[34:], NODE1, packet.MCAST_GROUP4)
    assert (advert.version, advert.vrid, advert.priority) == (2, 51, 150)
    assert advert.addresses == (VIP4,)
    assert advert.auth_type == packet.AUTH_PASS
    assert advert.auth_data == b"secret12"


def test_short_password_is_nul_padded():
    assert packet.auth_data_for("abc") == b"abc\0\0\0\0\0"
    assert packet.auth_data_for("longer than eight") == b"longer t"


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda m: m[:5], "truncated"),
        (lambda m: bytes([0x41]) + m[1:], "version"),
        (lambda m: bytes([0x22]) + m[1:], "type"),
        (lambda m: m[:2] + bytes([m[2] ^ 1]) + m[3:], "checksum"),
        (lambda m: m[:3] + bytes([5]) + m[4:], "truncated"),
    ],
)
def test_invalid_packets_name_their_reason(mutate, reason):
    message = bytes.fromhex(V2_PASS_FRAME)[34:]
    with pytest.raises(InvalidPacket) as caught:
        packet.decode(mutate(message), NODE1, packet.MCAST_GROUP4)
    assert caught.value.reason == reason


def test_v2_over_ipv6_is_a_version_error():
    message = bytes.fromhex(V2_PASS_FRAME)[34:]
    with pytest.raises(InvalidPacket) as caught:
        packet.decode(message, LINK_LOCAL, packet.MCAST_GROUP6)
    assert caught.value.reason == "version"


@given(st.binary(max_size=80), st.booleans())
def test_decode_never_raises_anything_else(data, ipv6):
    source, destination = (
        (LINK_LOCAL, packet.MCAST_GROUP6) if ipv6 else (NODE1, packet.MCAST_GROUP4)
    )
    with contextlib.suppress(InvalidPacket):
        packet.decode(data, source, destination)
    with contextlib.suppress(InvalidPacket):
        packet.parse_ipv4_header(data)


def test_ipv4_header_carries_unicast_ttl():
    header = packet.ipv4_header(NODE1, NODE1, 20, 1, ttl=7)
    assert packet.parse_ipv4_header(header + bytes(20)).ttl == 7
    assert packet.ipv4_header(NODE1, NODE1, 20, 1)[8] == packet.VRRP_TTL
