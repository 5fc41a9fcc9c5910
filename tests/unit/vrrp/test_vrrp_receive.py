"""The receive rules, cheapest first, and the rate-limited drop log, under a fake clock."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import pytest

from lvsagent.config import loads
from lvsagent.vrrp import packet
from lvsagent.vrrp.machine import LoopClock
from lvsagent.vrrp.packet import Advertisement, InvalidPacket
from lvsagent.vrrp.receive import Drops, RateLimitedLog, ReceiveRules
from lvsagent.vrrp.sockets import Received, SocketPool

OURS = ipaddress.ip_address("192.168.77.11")
PEER = ipaddress.ip_address("192.168.77.12")
STRANGER = ipaddress.ip_address("192.168.77.66")
VIP = ipaddress.ip_address("192.168.77.100")


def rules(extra="", version=2, global_extra=""):
    auth = "  authentication {\n    auth_type PASS\n    auth_pass secret12\n  }\n"
    text = (
        f"global_defs {{\n{global_extra}}}\n"
        f"vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 51\n  version {version}\n"
        f"{auth if version == 2 else ''}{extra}  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
    config = loads(text)
    return ReceiveRules(config.vrrp_instances[0], config.global_defs, OURS)


UNICAST = "  unicast_src_ip 192.168.77.11\n  unicast_peer {\n    192.168.77.12\n  }\n"


def message(version=2, priority=150, interval=1.0, password="secret12", source=PEER, to=None):
    advert = Advertisement(
        version=version,
        vrid=51,
        priority=priority,
        addresses=(VIP,),
        interval=interval,
        auth_type=packet.AUTH_PASS if version == 2 else packet.AUTH_NONE,
        auth_data=packet.auth_data_for(password),
    )
    return packet.encode(advert, source, to or packet.MCAST_GROUP4)


def reason(rule, data, source=PEER, to=packet.MCAST_GROUP4, ttl=255):
    with pytest.raises(InvalidPacket) as caught:
        rule.check(data, source, to, ttl)
    return caught.value.reason


def test_interval_0_is_dropped_under_its_own_reason():
    assert reason(rules(), message(interval=0)) == "interval 0"
    assert reason(rules(version=3), message(version=3, interval=0)) == "interval 0"


def test_cheap_checks_come_before_any_address_object(monkeypatch):
    def no_objects(_raw):
        raise AssertionError("an address object was built for a packet that is dropped")

    monkeypatch.setattr(packet.ipaddress, "ip_address", no_objects)
    rule = rules()
    assert reason(rule, message(password="wrong123")) == "auth_password"
    assert reason(rule, message(interval=0)) == "interval 0"
    assert reason(rule, message(), ttl=64) == "ttl"
    assert rule.check(message(), PEER, packet.MCAST_GROUP4, 255).priority == 150


def test_multicast_needs_ttl_255_unicast_takes_routed_peers():
    assert reason(rules(), message(), ttl=64) == "ttl"
    unicast = rules(UNICAST)
    assert unicast.check(message(to=OURS), PEER, OURS, 61).priority == 150


def test_multicast_and_unicast_destinations_do_not_mix():
    assert reason(rules(), message(to=OURS), to=OURS) == "destination"
    assert reason(rules(UNICAST), message()) == "destination"


def test_check_unicast_src_accepts_the_peers_only():
    advert = message(source=STRANGER, to=OURS)
    assert rules(UNICAST).check(advert, STRANGER, OURS, 255).priority == 150  # not asked for
    checked = rules(UNICAST + "  check_unicast_src\n")
    assert reason(checked, advert, source=STRANGER, to=OURS) == "unicast source"
    assert checked.check(message(to=OURS), PEER, OURS, 255).priority == 150
    everywhere = rules(UNICAST, global_extra="  vrrp_check_unicast_src\n")
    assert reason(everywhere, advert, source=STRANGER, to=OURS) == "unicast source"


def test_same_addresses_compares_bytes():
    rule = rules()
    assert rule.same_addresses(packet.parse(message(), PEER, packet.MCAST_GROUP4))
    other = Advertisement(2, 51, 150, (PEER,), 1.0, packet.AUTH_PASS, b"secret12")
    assert not rule.same_addresses(packet.parse(packet.encode(other), PEER, OURS))


def test_a_flood_of_drops_is_counted_and_logged_once_a_second(clock, caplog):
    caplog.set_level(logging.DEBUG, logger="lvsagent")
    drops = Drops(clock)
    for _packet in range(10_000):
        drops.drop("VI_1", "ttl", "(VI_1) invalid TTL/HL. Received 64 and expect 255")
        drops.drop("VI_1", "checksum", "(VI_1) Invalid VRRPv2 checksum")
        clock.advance(0.0001)  # 10,000 packets a second of each kind
    clock.advance(1.0)
    assert dict(drops.counts) == {"ttl": 10_000, "checksum": 10_000}
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "(VI_1) invalid TTL/HL. Received 64 and expect 255",
        "(VI_1) Invalid VRRPv2 checksum",
        "(VI_1) invalid TTL/HL. Received 64 and expect 255 (9999 times since the last report)",
        "(VI_1) Invalid VRRPv2 checksum (9999 times since the last report)",
    ]


def test_rate_limit_reports_what_it_held_back_then_logs_again(clock, caplog):
    caplog.set_level(logging.INFO, logger="test")
    limited = RateLimitedLog(clock, logging.getLogger("test"), period=1.0)
    for step in range(5):  # at 0, 0.25, 0.5, 0.75 and 1.0 s: the report at 1.0 s comes first
        limited.log("k", logging.INFO, "drop %d", step)
        clock.advance(0.25)
    clock.advance(5.0)
    limited.log("k", logging.INFO, "drop %d", 99)
    assert [record.getMessage() for record in caplog.records] == [
        "drop 0",
        "drop 3 (3 times since the last report)",
        "drop 4",  # held back alone: shown as it was, at 2 s
        "drop 99",
    ]


def test_a_bug_hit_by_every_packet_is_counted_and_logged_once_with_its_traceback(caplog):
    async def scenario():
        pool = SocketPool(asyncio.get_running_loop(), Drops(LoopClock(asyncio.get_running_loop())))
        pool._handlers[("eth0", 4)] = {51: lambda got: 1 / 0}
        for _packet in range(1000):
            pool._dispatch(("eth0", 4), Received(message(), PEER, packet.MCAST_GROUP4, 255, "eth0"))
        return pool.drops.counts

    assert dict(asyncio.run(scenario())) == {"internal": 1000}
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info[0] is ZeroDivisionError
