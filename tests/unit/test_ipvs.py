"""lvsagent.ipvs against a fake netlink family: value handling, requests, parsing, errors."""

from __future__ import annotations

import errno
import socket
import struct
import sys

import pytest
from ipvs_fake import FakeIpvsNetlink

from lvsagent import ipvs
from lvsagent.ipvs import (
    Destination,
    IpvsClient,
    IpvsError,
    Service,
    ServiceKey,
    codec,
    format_endpoint,
    format_service,
    model,
    render_table,
)
from lvsagent.ipvs import client as ipvs_client
from lvsagent.ipvs.plan import Change

WEB = ServiceKey.for_address("10.0.0.100", 80)


@pytest.fixture
def kernel():
    return FakeIpvsNetlink()


@pytest.fixture
def client(kernel):
    return IpvsClient(kernel)


# -- values ---------------------------------------------------------------------------------


def test_service_key_normalizes_and_infers_family():
    key = ServiceKey.for_address("2001:DB8:0::1", "443", "UDP")
    assert key == ServiceKey(6, "udp", "2001:db8::1", 443)
    assert ServiceKey.for_fwmark(7).family == 4


def test_real_servers_share_one_canonical_string_per_address():
    """Ten thousand real servers are built pass after pass: text already canonical (the
    parser's) is kept as it is, other spellings all get one and the same canonical string."""
    given = "".join(["10.7.", "0.2"])  # a string of its own, as the parser makes them
    assert Destination(given, 80).address is given
    first, second = Destination("2001:DB8:0::7", 80), Destination("2001:DB8:0::7", 81)
    assert first.address == "2001:db8::7" and first.address is second.address
    assert (first.family, Destination(given, 80).family) == (6, 4)
    for wrong in ("10.7.0.300", "010.7.0.2", "10.7.2", "10.7.0.2 ", "0x0a.7.0.2", "2001:db8::7::1"):
        with pytest.raises(ValueError, match="not an IP address"):
            Destination(wrong, 80)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"family": 4, "protocol": "tcp", "address": "10.0.0.1"}, "needs address, port"),
        ({"family": 4, "protocol": "icmp", "address": "10.0.0.1", "port": 1}, "protocol"),
        ({"family": 6, "protocol": "tcp", "address": "10.0.0.1", "port": 1}, "not an IPv6"),
        ({"family": 4, "protocol": "tcp", "address": "10.0.0.1", "port": 70000}, "port"),
        ({"family": 4, "fwmark": 0}, "fwmark must be"),
        ({"family": 4, "fwmark": 1, "port": 80}, "no protocol, address or port"),
        ({"family": 5, "fwmark": 1}, "family"),
    ],
)
def test_service_key_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ServiceKey(**kwargs)


def test_scheduler_flags_are_named_after_the_scheduler():
    under_sh = Service(WEB, "sh", flags={"flag-1", "flag-2", "ops"})
    assert under_sh.flags == {"sh-fallback", "sh-port", "ops"}
    assert under_sh.flag_bits == 0x8 | 0x10 | 0x4
    # the same bits under rr carry the generic names, so equality follows the kernel bits
    assert Service(WEB, "rr", flags={"sh-port"}).flags == {"flag-2"}
    with pytest.raises(ValueError, match="unknown service flag 'hashed'"):
        Service(WEB, flags={"hashed"})


def test_persistence_sets_the_persistent_bit_and_normalizes_the_netmask():
    service = Service(WEB, persistence_timeout=300, persistence_netmask=24)
    assert service.flag_bits == model.FLAG_PERSISTENT
    assert service.persistence_netmask == "255.255.255.0"
    assert Service(WEB).persistence_netmask == "255.255.255.255"
    v6 = Service(ServiceKey.for_fwmark(1, family=6), persistence_netmask="/64")
    assert v6.persistence_netmask == 64
    with pytest.raises(ValueError, match="prefix length"):
        Service(ServiceKey.for_fwmark(1, family=6), persistence_netmask="255.255.255.0")
    with pytest.raises(ValueError, match="not an IPv4 netmask"):
        Service(WEB, persistence_netmask="255.0.255.0")


def test_destination_validation_and_comparison_ignores_counters():
    assert Destination("10.0.0.2", 80, active_connections=5) == Destination("10.0.0.2", 80)
    assert Destination("10.0.0.2", 80) != Destination("10.0.0.2", 80, weight=2)
    with pytest.raises(ValueError, match="forwarding"):
        Destination("10.0.0.2", 80, "route")
    with pytest.raises(ValueError, match="lower_threshold 5 is above upper_threshold 0"):
        Destination("10.0.0.2", 80, lower_threshold=5)
    with pytest.raises(ValueError, match="weight cannot be negative"):
        Destination("10.0.0.2", 80, weight=-1)


def test_formatting_as_keepalived_logs_it():
    assert format_endpoint("10.0.0.2", 80) == "[10.0.0.2]:80"
    assert format_service(WEB) == "[10.0.0.100]:80"
    dns = ServiceKey.for_address("2001:db8::1", 53, "udp")
    assert format_service(dns) == "[2001:db8::1]:53/udp"
    assert format_service(ServiceKey.for_fwmark(3, family=6)) == "FWM 3 IPv6"


# -- requests and parsing -------------------------------------------------------------------


def test_add_then_read_back_every_field(client, kernel):
    service = Service(WEB, "sh", 600, "255.255.255.0", {"sh-port", "ops"})
    client.add_service(service)
    back = client.service(WEB)
    assert back == service  # HASHED (set by the "kernel") is masked, persistence read back
    assert back.stats is not None
    assert (
        kernel.services[(socket.AF_INET, 6, "10.0.0.100", 80)]["IPVS_SVC_ATTR_FLAGS"]["flags"]
        & model.FLAG_HASHED
    )


def test_ipv6_prefix_length_travels_in_host_byte_order(client, kernel):
    key = ServiceKey.for_address("2001:db8::1", 80)
    client.add_service(Service(key, persistence_timeout=60, persistence_netmask=64))
    raw = next(iter(kernel.services.values()))["IPVS_SVC_ATTR_NETMASK"]
    assert socket.inet_aton(raw) == (64).to_bytes(4, sys.byteorder)
    assert client.service(key).persistence_netmask == 64


def test_fwmark_service_always_carries_a_netmask(client):
    key = ServiceKey.for_fwmark(5)
    client.add_service(Service(key, "rr"))  # the fake, like the kernel, refuses it without one
    assert client.services() == [Service(key, "rr")]


def test_edit_uses_set_never_update(client, kernel):
    client.add_service(Service(WEB))
    client.edit_service(Service(WEB, "rr", 30))
    assert ("service", "set") in kernel.commands
    assert all(command != "update" for _request, command in kernel.commands)
    assert client.service(WEB) == Service(WEB, "rr", 30)


def test_persistence_is_off_when_the_flag_is_clear_even_with_a_timeout(client, kernel):
    kernel.put_service(
        {
            "IPVS_SVC_ATTR_PROTOCOL": 6,
            "IPVS_SVC_ATTR_ADDR": "10.0.0.100",
            "IPVS_SVC_ATTR_PORT": 80,
            "IPVS_SVC_ATTR_SCHED_NAME": "wlc",
            "IPVS_SVC_ATTR_FLAGS": {"flags": model.FLAG_HASHED, "mask": 0xFFFFFFFF},
            "IPVS_SVC_ATTR_TIMEOUT": 300,
            "IPVS_SVC_ATTR_NETMASK": "255.255.255.255",
        }
    )
    assert client.service(WEB).persistence_timeout == 0


def test_destinations_round_trip(client):
    client.add_service(Service(WEB))
    dests = [
        Destination("10.0.0.2", 80, "dr", 1),
        Destination("10.0.0.3", 8080, "nat", 5, upper_threshold=100, lower_threshold=10),
        Destination("10.0.0.4", 80, "tun", 0),
    ]
    for dest in dests:
        client.add_destination(WEB, dest)
    assert sorted(client.destinations(WEB), key=lambda d: d.address) == dests
    client.edit_destination(WEB, Destination("10.0.0.2", 80, "dr", 7))
    client.delete_destination(WEB, "10.0.0.4", 80)
    table = client.table()
    assert list(table) == [WEB]
    assert {d.address: d.weight for d in table[WEB][1]} == {"10.0.0.2": 7, "10.0.0.3": 5}


def test_service_returns_none_when_absent(client):
    assert client.service(WEB) is None


def test_close_closes_the_socket(kernel):
    with IpvsClient(kernel):
        pass
    assert kernel.closed


# -- batches and lazy reads ----------------------------------------------------------------


def test_changes_go_in_one_datagram_and_an_error_names_its_entry(client, kernel):
    client.add_service(Service(WEB))
    client.add_destination(WEB, Destination("10.0.0.3", 80))
    kernel.datagrams.clear()
    changes = [
        Change("add_destination", WEB, destination=Destination("10.0.0.2", 80)),
        Change("add_destination", WEB, destination=Destination("10.0.0.3", 80)),  # exists
        Change("edit_destination", WEB, destination=Destination("10.0.0.3", 80, weight=9)),
    ]
    kernel.received = 0
    failed = client.apply(changes)
    assert kernel.datagrams == [3]  # one round trip
    assert kernel.received == 2  # the failure, then the last request's acknowledgement
    assert [(change, str(exc)) for change, exc in failed] == [
        (changes[1], "cannot add real server [10.0.0.3]:80 to [10.0.0.100]:80: it already exists")
    ]
    assert {d.address: d.weight for d in client.destinations(WEB)} == {"10.0.0.2": 1, "10.0.0.3": 9}


@pytest.mark.parametrize(
    "dest",
    [
        Destination("10.0.0.2", 8080, "nat", 7, upper_threshold=100, lower_threshold=5),
        Destination("2001:db8::1", 65535, "tun", 2**31 - 1),
    ],
)
def test_a_real_server_request_decodes_to_the_real_server_it_encodes(dest):
    """destination_attr packs the nested attribute in one struct: every length, type,
    byte order and padding must still be what the kernel (and the decoder) read."""
    data = codec.destination_attr(dest)
    assert codec.NLA_HEADER.unpack_from(data) == (len(data), codec.CMD_ATTR_DEST)
    reply = codec.GENL_HEADER.pack(codec.CMD_NEW_DEST, codec.IPVS_GENL_VERSION, 0) + data
    replies = [(reply, 0, len(reply))]
    assert codec.decode_destinations(replies, dest.family, stats=False) == [dest]
    assert codec.fingerprints(replies) == {codec.expected_fingerprint(dest)}


def _reply(*attributes: bytes) -> tuple:
    """One GET_DEST reply: the generic netlink header and IPVS_CMD_ATTR_DEST around them."""
    data = codec.GENL_HEADER.pack(codec.CMD_NEW_DEST, codec.IPVS_GENL_VERSION, 0)
    data += codec.attr(codec.CMD_ATTR_DEST, b"".join(attributes))
    return data, 0, len(data)


def _u32(kind: int, value: int) -> bytes:
    return codec.attr(kind, struct.pack("=I", value))


def test_replies_laid_out_otherwise_are_not_read_by_the_layout_before():
    """A dump is decoded by the layout learnt from a reply as long as the next one fits it
    (same size, same attribute headers): a reply of another size, or of the same size with
    its attributes in another order, is read by its own layout."""
    address = codec.attr(codec.DEST_ADDR, socket.inet_pton(socket.AF_INET, "10.0.0.2") + bytes(12))
    port = codec.attr(codec.DEST_PORT, struct.pack("!H", 80))
    method = _u32(codec.DEST_FWD_METHOD, codec.FORWARDING["dr"])
    counters = codec.attr(
        codec.DEST_STATS64, b"".join(codec.attr(k, struct.pack("=Q", k * 10)) for k in range(1, 11))
    )
    replies = [
        _reply(address, port, method, _u32(codec.DEST_WEIGHT, 3), _u32(codec.DEST_U_THRESH, 9)),
        _reply(address, port, method, _u32(codec.DEST_U_THRESH, 8), _u32(codec.DEST_WEIGHT, 4)),
        _reply(address, port, method, _u32(codec.DEST_WEIGHT, 5), counters),
        _reply(address, port, method, _u32(codec.DEST_WEIGHT, 6)),
    ]
    decoded = codec.decode_destinations(replies, 4)
    assert [(d.weight, d.upper_threshold) for d in decoded] == [(3, 9), (4, 8), (5, 0), (6, 0)]
    assert [d.stats and d.stats.bytes_out for d in decoded] == [None, None, 50, None]
    assert {f[2:4] for f in codec.fingerprints(replies)} == {(3, 9), (4, 8), (5, 0), (6, 0)}


def test_a_malformed_attribute_ends_a_reply_as_attrs_ends_it():
    address = codec.attr(codec.DEST_ADDR, socket.inet_pton(socket.AF_INET, "10.0.0.2"))
    broken = struct.pack("=HH", 2, codec.DEST_WEIGHT)  # shorter than its own header
    data, start, end = _reply(address, _u32(codec.DEST_WEIGHT, 3), broken + bytes(8))
    assert codec.decode_destinations([(data, start, end)], 4) == [
        Destination("10.0.0.2", 0, "nat", 3)
    ]
    nothing = codec.GENL_HEADER.pack(codec.CMD_NEW_DEST, 1, 0)[:3]
    assert codec.decode_destinations([(nothing, 0, 3)], 4) == []


def test_a_large_batch_is_split_below_the_socket_buffer(client, kernel):
    client.add_service(Service(WEB))
    dests = [Destination(f"10.1.{i // 250}.{i % 250 + 1}", 80) for i in range(1000)]
    kernel.datagrams.clear()
    assert client.apply([Change("add_destination", WEB, destination=d) for d in dests]) == []
    assert len(kernel.datagrams) > 1 and sum(kernel.datagrams) == 1000
    assert len(client.destinations(WEB)) == 1000


def test_a_large_batch_is_encoded_a_datagram_at_a_time(client, kernel, monkeypatch):
    """Requests are encoded as their datagram is filled: a table of 10,000 real servers is
    never held all encoded at once (a few megabytes at the build's peak)."""
    encoded, at_send = [], []
    encode = ipvs_client._change_request
    monkeypatch.setattr(ipvs_client, "_change_request", lambda c: encoded.append(c) or encode(c))
    send = kernel.send
    monkeypatch.setattr(kernel, "send", lambda data: at_send.append(len(encoded)) or send(data))
    client.add_service(Service(WEB))
    dests = [Destination(f"10.1.{i // 250}.{i % 250 + 1}", 80) for i in range(1000)]
    at_send.clear()
    assert client.apply([Change("add_destination", WEB, destination=d) for d in dests]) == []
    assert len(at_send) > 2 and at_send[0] < 1000 // 2 and at_send[-1] == 1000
    assert at_send == sorted(at_send) and len(set(at_send)) == len(at_send)


def test_a_failure_in_a_later_datagram_names_its_change(client, kernel):
    client.add_service(Service(WEB))
    dests = [Destination(f"10.1.{i // 250}.{i % 250 + 1}", 80) for i in range(1000)]
    changes = [Change("add_destination", WEB, destination=d) for d in dests]
    changes.insert(900, changes[5])  # already there by then: EEXIST
    failed = client.apply(changes)
    assert [(change, exc.errno) for change, exc in failed] == [(changes[900], errno.EEXIST)]
    assert "add real server [10.1.0.6]:80 to [10.0.0.100]:80" in str(failed[0][1])


def test_datagrams_are_received_into_one_reused_buffer(monkeypatch):
    """The real socket, on the host's generic netlink controller (no IPVS needed)."""
    monkeypatch.setattr(codec, "IPVS_GENL_NAME", "nlctrl")
    sock = ipvs_client.NetlinkSocket()
    try:
        assert sock.family == codec.GENL_ID_CTRL
        buffer = sock._buffer
        assert sock._resolve("nlctrl") == codec.GENL_ID_CTRL  # the same buffer, read again
        assert sock._buffer is buffer
        request = codec.attr(codec.CTRL_ATTR_FAMILY_NAME, b"nlctrl\0")
        sock.send(codec.message(codec.GENL_ID_CTRL, 1, 7, codec.CTRL_CMD_GETFAMILY, request))
        data = sock.recv()
        assert isinstance(data, bytes) and len(data) == struct.unpack_from("=I", data)[0]
    finally:
        sock.close()
    with pytest.raises(ValueError):  # closed with the socket
        buffer[:1]


def test_reads_without_counters_and_fingerprints(client):
    client.add_service(Service(WEB))
    dest = Destination("10.0.0.2", 8080, "nat", 5, upper_threshold=9, lower_threshold=2)
    client.add_destination(WEB, dest)
    assert client.services(stats=False)[0].stats is None
    assert client.destinations(WEB, stats=False) == [dest]
    assert client.destinations(WEB, stats=False)[0].stats is None
    expected = frozenset({codec.expected_fingerprint(dest)})
    assert client.changed_destinations(WEB, expected) is None
    client.edit_destination(WEB, Destination("10.0.0.2", 8080, "nat", 6, 9, 2))
    assert [d.weight for d in client.changed_destinations(WEB, expected)] == [6]


def test_an_audit_remembers_a_matching_service_by_digests_only(client, kernel):
    """What an audit keeps of each service it found as expected is two 16-byte digests (the
    fingerprints themselves were 1.5 MB at 100 x 100); a different expectation still
    reads the real servers again."""
    client.add_service(Service(WEB))
    dests = [Destination(f"10.0.0.{n}", 80, "dr", n) for n in range(2, 12)]
    for dest in dests:
        client.add_destination(WEB, dest)
    for held in kernel.destinations.values():  # counters after the settings, as the kernel
        for attrs in held.values():
            attrs["IPVS_DEST_ATTR_ACTIVE_CONNS"] = 0
    expected = frozenset(codec.expected_fingerprint(d) for d in dests)
    assert client.changed_destinations(WEB, expected) is None
    assert client.changed_destinations(WEB, expected) is None  # by the digests
    (fingerprints, settings), = client._verified.values()  # fmt: skip
    assert (len(fingerprints), len(settings)) == (16, 16)
    moved = frozenset(codec.expected_fingerprint(d) for d in [*dests[1:], dests[0]])
    assert codec.fingerprints_digest(moved) == fingerprints  # order does not matter
    other = expected - {codec.expected_fingerprint(dests[0])}
    assert len(client.changed_destinations(WEB, other)) == len(dests)


# -- errors ---------------------------------------------------------------------------------


def test_errors_are_translated(client):
    client.add_service(Service(WEB))
    with pytest.raises(IpvsError, match=r"cannot add virtual service \[10.0.0.100\]:80: it al"):
        client.add_service(Service(WEB))
    other = ServiceKey.for_address("10.0.0.101", 80)
    with pytest.raises(IpvsError, match="cannot change .*: the virtual service does not exist"):
        client.edit_service(Service(other))
    with pytest.raises(IpvsError, match="no ip_vs_bogus module") as scheduler_error:
        client.add_service(Service(other, "bogus"))
    assert scheduler_error.value.errno == errno.ENOENT
    with pytest.raises(IpvsError, match=r"real server \[10.0.0.9\]:80 .*does not exist") as exc:
        client.delete_destination(WEB, "10.0.0.9", 80)
    assert exc.value.errno == errno.ENOENT
    with pytest.raises(IpvsError, match="virtual service does not exist"):
        client.add_destination(other, Destination("10.0.0.2", 80))
    with pytest.raises(IpvsError, match="invalid"):
        client.add_destination(WEB, Destination("2001:db8::2", 80, "dr"))


def test_missing_ipvs_in_the_kernel(monkeypatch):
    """The generic netlink controller answers ENOENT for a family it does not know."""

    class NoIpvs:
        def __init__(self):
            raise OSError(errno.ENOENT, "generic netlink family IPVS")

    monkeypatch.setattr(ipvs_client, "NetlinkSocket", NoIpvs)
    with pytest.raises(IpvsError) as exc:
        IpvsClient()
    assert str(exc.value) == "IPVS is not available in this kernel: load the ip_vs module"


# -- ipvsadm layout -------------------------------------------------------------------------


def test_render_matches_ipvsadm_layout():
    dns = ServiceKey.for_address("2001:db8::53", 53, "udp")
    mark = ServiceKey.for_fwmark(1)
    table = {
        WEB: (
            Service(WEB, "wrr", 300, "255.255.255.0", {"ops"}),
            [
                Destination("10.0.0.3", 80, "nat", 2, active_connections=12),
                Destination("10.0.0.2", 80, "dr", 1, inactive_connections=3),
            ],
        ),
        dns: (Service(dns, "sh", flags={"sh-port"}), [Destination("2001:db8::2", 53, "tun")]),
        mark: (Service(mark, "rr"), []),
    }
    assert render_table(table).splitlines() == [
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        "TCP  10.0.0.100:80 wrr persistent 300 mask 255.255.255.0 ops",
        "  -> 10.0.0.2:80                  Route   1      0          3         ",
        "  -> 10.0.0.3:80                  Masq    2      12         0         ",
        "UDP  [2001:db8::53]:53 sh (sh-port)",
        "  -> [2001:db8::2]:53             Tunnel  1      0          0         ",
        "FWM  1 rr",
    ]


def test_render_annotates_each_real_server():
    table = {WEB: (Service(WEB), [Destination("10.0.0.2", 80)])}
    text = render_table(table, annotate=lambda key, dest: f"up {format_service(key)}")
    assert text.splitlines()[-1].endswith("0          0          up [10.0.0.100]:80")


def test_render_stats_abbreviates_large_counters():
    stats = ipvs.Stats(connections=7, packets_in=123_456_789, bytes_in=5_000_000_000_000)
    table = {WEB: (Service(WEB, stats=stats), [])}
    lines = render_table(table, stats=True).splitlines()
    assert lines[0] == f"{'Prot LocalAddress:Port':<33}" + "".join(
        f" {title:>8}" for title in ("Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
    )
    assert lines[2].split() == ["TCP", "10.0.0.100:80", "7", "123456K", "0", "5000G", "0"]


@pytest.mark.skipif(sys.version_info < (3, 10), reason="dataclass slots need Python 3.10")
def test_objects_made_per_real_server_carry_no_instance_dict():
    """Built by the ten thousand (a table's build, a status read): a __dict__ each was
    about a hundred bytes more."""
    dest = Destination("10.0.0.2", 80, stats=model.Stats())
    for value in (dest, dest.stats, Change("add_destination", WEB, destination=dest)):
        assert not hasattr(value, "__dict__"), type(value).__name__
