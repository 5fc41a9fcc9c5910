"""An instance's receive rules, sending, VIPs and tracking with the network replaced by fakes."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket

from lvsagent.config import loads
from lvsagent.vrrp import packet, tracking
from lvsagent.vrrp.addresses import Announcer
from lvsagent.vrrp.engine import VrrpEngine
from lvsagent.vrrp.instance import Instance, Services
from lvsagent.vrrp.machine import LoopClock, State
from lvsagent.vrrp.receive import Drops
from lvsagent.vrrp.routes import RoutingManager, entry_key
from lvsagent.vrrp.sockets import Received
from lvsagent.vrrp.vmac import Vmac

OURS = ipaddress.ip_address("192.168.77.11")
PEER = ipaddress.ip_address("192.168.77.12")
V2_PASS_FRAME = (
    "01005e000012deff2ed707a8080045c0002800010000ff70ccdec0a84d0be0000012"
    "213396010101cc3ec0a84d647365637265743132"
)


def conf_text(state="BACKUP", priority=150, extra="", prefix=""):
    return f"""
{prefix}
vrrp_instance VI_1 {{
  state {state}
  interface eth0
  virtual_router_id 51
  priority {priority}
  advert_int 1
  authentication {{
    auth_type PASS
    auth_pass secret12
  }}
  virtual_ipaddress {{
    192.168.77.100/24
  }}
{extra}
}}
"""


class FakeSocket:
    def __init__(self):
        self.sent = []
        self.ttls = []
        self.ifindex = 2
        self.followed = []

    def join(self, group):
        self.group = group

    def follow(self, ifindex):
        if ifindex != self.ifindex:
            self.followed.append(ifindex)
        self.ifindex = ifindex

    def send(self, advert, source, destination, ttl=None):
        self.sent.append((packet.encode(advert, source, destination), source, destination))
        self.ttls.append(ttl)
        return True


class FakeSockets:
    def __init__(self):
        self.socket = FakeSocket()
        self.handlers = {}
        self.rules = {}

    def register(self, ifname, family, vrid, handler, rules):
        self.ifname = ifname
        self.handlers[vrid] = handler
        self.rules[vrid] = rules
        return self.socket

    def unregister(self, ifname, family, vrid):
        self.handlers.pop(vrid, None)

    def close(self):
        pass


class FakeAddresses:
    def __init__(self, present=()):
        self.held = set(present)
        self.log = []
        self.sources = []  # what the next looks for the source address find, then OURS

    async def source_address(self, ifname, family):
        return self.sources.pop(0) if self.sources else OURS

    async def present(self, vip, dev):
        return str(vip.address.ip) in self.held

    async def add(self, vip, dev):
        self.log.append(("add", str(vip.address), dev))
        self.held.add(str(vip.address.ip))

    async def remove(self, vip, dev):
        self.log.append(("remove", str(vip.address), dev))
        self.held.discard(str(vip.address.ip))

    async def rtnl(self):
        """The rtnetlink socket RoutingManager sends routes and rules on: these fakes log them."""
        return self

    async def route(self, command, **request):
        self.log.append(("route", "del" if command == "del" else "add", request["dst"]))

    async def rule(self, command, **request):
        self.log.append(("rule", command, request["priority"]))

    def close(self):
        pass


class FakeDeletions:
    """The kernel's reports of deleted routes and rules, told by the test (`delete`)."""

    def __init__(self):
        self.watched = {}  # entry_key -> (entry, on_deleted)

    async def watch(self, entry, on_deleted):
        self.watched[entry_key(entry)] = (entry, on_deleted)

    def unwatch(self, entry):
        self.watched.pop(entry_key(entry), None)

    def entries(self):
        return [entry for entry, _on_deleted in self.watched.values()]

    def delete(self, entry):
        self.watched.pop(entry_key(entry))[1](entry)

    async def close(self):
        self.watched.clear()


class FakeAnnouncer(Announcer):
    """The real slot keeping (vrrp_garp_interval / vrrp_gna_interval); frames recorded."""

    def __init__(self, loop):
        super().__init__(loop)
        self.loop = loop
        self.announced = []
        self.sent_at = []

    def announce(self, ifname, address):
        self.announced.append((ifname, str(address)))
        self.sent_at.append((ifname, address.version, self.loop.time()))
        return True


class FakeNotifier:
    def __init__(self):
        self.calls = []

    def state_changed(self, kind, name, state, priority, state_script, generic_script):
        self.calls.append((kind, name, state, priority))

    async def configure(self, global_defs):
        pass

    async def drain(self):
        pass


class FakeVmacs:
    def __init__(self):
        self.log = []

    async def create(self, vmac):
        self.log.append(("create", vmac))
        return 8

    async def remove(self, vmac):
        self.log.append(("remove", vmac))

    def close(self):
        pass


class FakeLinks:
    def __init__(self, up=True, missing=()):
        self.up = up
        self.missing = set(missing)
        self.listeners = []
        self.watched = []

    def watch(self, ifname, listener):
        self.listeners.append(listener)
        self.watched.append(ifname)
        return tracking.GONE if ifname in self.missing else tracking.Link(2, self.up)

    def unwatch(self, listener):
        while listener in self.listeners:
            self.listeners.remove(listener)

    def report(self, ifname, link):
        for listener in list(dict.fromkeys(self.listeners)):
            listener(ifname, link)

    def close(self):
        pass


def services(loop, addresses=None, links=None):
    addresses = addresses or FakeAddresses()
    return Services(
        vmacs=FakeVmacs(),
        loop=loop,
        sockets=FakeSockets(),
        addresses=addresses,
        routing=RoutingManager(addresses, FakeDeletions()),
        announcer=FakeAnnouncer(loop),
        notifier=FakeNotifier(),
        links=links or FakeLinks(),
        scripts={},
        drops=Drops(LoopClock(loop)),
    )


async def started(text, addresses=None, links=None):
    config = loads(text)
    shared = services(asyncio.get_running_loop(), addresses, links)
    shared.announcer.pace(config)
    instance = Instance(config.vrrp_instances[0], config.global_defs, shared, lambda *a: None)
    await instance.start()
    await asyncio.sleep(0)
    await instance._settle_vips()
    return instance, shared


def received(advert=None, ttl=255, message=None, source=PEER):
    if message is None:
        message = packet.encode(advert, source, packet.MCAST_GROUP4)
    return Received(message, source, packet.MCAST_GROUP4, ttl, "eth0")


def v2(priority, password="secret12", interval=1.0):
    return packet.Advertisement(
        version=2,
        vrid=51,
        priority=priority,
        addresses=(ipaddress.ip_address("192.168.77.100"),),
        interval=interval,
        auth_type=packet.AUTH_PASS,
        auth_data=packet.auth_data_for(password),
    )


def test_master_sends_keepalived_bytes_and_takes_the_vips():
    async def scenario():
        instance, shared = await started(conf_text(state="MASTER"))
        message, source, destination = shared.sockets.socket.sent[0]
        assert message == bytes.fromhex(V2_PASS_FRAME)[34:]
        assert (source, destination) == (OURS, packet.MCAST_GROUP4)
        assert shared.addresses.log == [("add", "192.168.77.100/24", "eth0")]
        assert shared.announcer.announced[:1] == [("eth0", "192.168.77.100")]
        assert len(shared.announcer.announced) == 5  # vrrp_garp_master_repeat
        assert shared.notifier.calls[-1] == ("INSTANCE", "VI_1", "MASTER", 150)
        await instance.stop()
        assert shared.sockets.socket.sent[-1][0][2] == 0  # priority 0 on the way out
        assert shared.addresses.log[-1] == ("remove", "192.168.77.100/24", "eth0")
        assert shared.notifier.calls[-1] == ("INSTANCE", "VI_1", "STOP", 150)

    asyncio.run(scenario())


def test_receive_rules_count_and_drop(caplog):
    caplog.set_level(logging.DEBUG, logger="lvsagent")

    async def scenario():
        instance, shared = await started(conf_text(priority=100))
        handler = shared.sockets.handlers[51]
        handler(received(v2(150), ttl=64))
        handler(received(v2(150, password="wrong123")))
        handler(received(v2(150, interval=2.0)))
        handler(received(message=b"\x21\x33"))
        broken = bytearray(packet.encode(v2(150)))
        broken[-1] ^= 1
        handler(received(message=bytes(broken)))
        v3 = packet.Advertisement(version=3, vrid=51, priority=150, addresses=())
        handler(received(v3))
        assert dict(shared.drops.counts) == {
            "ttl": 1,
            "auth_password": 1,
            "interval": 1,
            "truncated": 1,
            "checksum": 1,
            "version": 1,
        }
        assert instance.machine.master_address is None
        handler(received(v2(150)))
        assert instance.machine.master_address == PEER
        await instance.stop()

    asyncio.run(scenario())
    assert "(VI_1) received an invalid passwd!" in caplog.text
    assert "secret12" not in caplog.text


def test_master_steps_down_for_a_higher_keepalived_advert():
    async def scenario():
        instance, shared = await started(conf_text(state="MASTER", priority=100))
        shared.sockets.handlers[51](
            received(
                message=bytes.fromhex(V2_PASS_FRAME)[34:], source=OURS.__class__("192.168.77.13")
            )
        )
        await instance._settle_vips()
        assert instance.machine.state == State.BACKUP
        assert shared.addresses.log[-1][0] == "remove"
        assert shared.notifier.calls[-1][2] == "BACKUP"
        await instance.stop()

    asyncio.run(scenario())


ROUTES = """
  virtual_routes {
    10.9.0.0/24 via 192.168.77.1
    blackhole 10.9.1.0/24 table 100
  }
  virtual_rules {
    from 10.9.0.0/24 table 100 priority 200
  }
"""


def test_virtual_routes_and_rules_follow_the_vips_in_and_out_of_master():
    """Added after the VIPs on becoming MASTER (routes, then rules), removed before them in the
    reverse order on leaving it; a backup removes a killed run's leftovers at start."""

    async def scenario():
        instance, shared = await started(conf_text(extra=ROUTES))
        log = shared.addresses.log
        leftovers = [
            ("rule", "del", 200),
            ("route", "del", "10.9.1.0"),
            ("route", "del", "10.9.0.0"),
        ]
        assert log == leftovers
        log.clear()
        instance.machine.force_master()
        await instance._settle_vips()
        assert log == [
            ("add", "192.168.77.100/24", "eth0"),
            ("route", "add", "10.9.0.0"),
            ("route", "add", "10.9.1.0"),
            ("rule", "add", 200),
        ]
        log.clear()
        instance.machine.force_backup()
        await instance._settle_vips()
        assert log == [*leftovers, ("remove", "192.168.77.100/24", "eth0")]
        await instance.stop()

    asyncio.run(scenario())


def test_a_reloaded_master_changes_only_the_routes_that_changed():
    async def scenario():
        instance, shared = await started(conf_text(state="MASTER", extra=ROUTES))
        config = loads(
            conf_text(
                state="MASTER", extra=ROUTES.replace("table 100 priority", "table 101 priority")
            )
        )
        shared.addresses.log.clear()
        await instance.update(config.vrrp_instances[0], config.global_defs)
        assert shared.addresses.log == [("rule", "del", 200), ("rule", "add", 200)]
        shared.addresses.log.clear()
        await instance.stop()
        assert ("rule", "del", 200) in shared.addresses.log

    asyncio.run(scenario())


def test_leftover_vip_of_a_crashed_run_is_removed_at_start():
    async def scenario():
        addresses = FakeAddresses(present={"192.168.77.100"})
        instance, shared = await started(conf_text(), addresses=addresses)
        assert addresses.log == [("remove", "192.168.77.100/24", "eth0")]
        assert instance.machine.state == State.BACKUP
        await instance.stop()

    asyncio.run(scenario())


def test_interface_down_at_start_is_fault_and_link_up_recovers():
    async def scenario():
        links = FakeLinks(up=False)
        instance, _shared = await started(conf_text(), links=links)
        assert instance.machine.state == State.FAULT
        links.report("eth0", tracking.Link(2, True))
        assert instance.machine.state == State.BACKUP
        await instance.stop()

    asyncio.run(scenario())


def test_unicast_peers_get_each_advert():
    extra = (
        "  unicast_src_ip 192.168.77.11\n"
        "  unicast_peer {\n    192.168.77.12\n    192.168.77.13\n  }\n"
    )

    async def scenario():
        instance, shared = await started(conf_text(state="MASTER", extra=extra))
        destinations = [str(dest) for _message, _source, dest in shared.sockets.socket.sent]
        assert destinations == ["192.168.77.12", "192.168.77.13"]
        await instance.stop()

    asyncio.run(scenario())


def test_track_interface_weight_changes_effective_priority(caplog):
    """...and says so in keepalived's words, once per change."""
    extra = "  track_interface {\n    eth1 weight -60\n  }\n"
    changing = "(VI_1) Changing effective priority from"

    async def scenario():
        links = FakeLinks(up=True)
        instance, _shared = await started(conf_text(extra=extra), links=links)
        assert instance.machine.effective_priority == 150
        assert changing not in caplog.text
        links.report("eth1", tracking.Link(3, False))
        links.report("eth1", tracking.Link(3, False))
        assert instance.machine.effective_priority == 90
        assert instance.status()["effective_priority"] == 90
        links.report("eth1", tracking.Link(3, True))
        await instance.stop()

    caplog.set_level(logging.INFO, logger="lvsagent")
    asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records if changing in r.getMessage()] == [
        "(VI_1) Changing effective priority from 150 to 90",
        "(VI_1) Changing effective priority from 90 to 150",
    ]


class FakeTracker:
    """A file or process tracker whose state (a file's value, a quorum) the test sets."""

    def __init__(self, track, state):
        self.track, self.state = track, state
        self.listeners = []

    def subscribe(self, listener):
        self.listeners.append(listener)

    def unsubscribe(self, listener):
        if listener in self.listeners:
            self.listeners.remove(listener)

    def set(self, state):
        self.state = state
        for listener in list(self.listeners):
            listener(self.track.name, state)


async def started_with_trackers(text):
    config = loads(text)
    shared = services(asyncio.get_running_loop())
    shared.files = {name: FakeTracker(t, 0) for name, t in config.track_files.items()}
    shared.processes = {name: FakeTracker(t, True) for name, t in config.track_processes.items()}
    instance = Instance(config.vrrp_instances[0], config.global_defs, shared, lambda *a: None)
    await instance.start()
    return instance, shared


TRACKERS = """
track_file weighted {
  file /run/weighted
  weight 5
}
track_file failing {
  file /run/failing
}
vrrp_track_process up {
  process worker
  weight 20
}
vrrp_track_process needed {
  process needed
}
"""
TRACKING = """
  track_file {
    weighted
    failing weight 0
  }
  track_process {
    up
    needed
  }
"""


def test_track_file_value_times_weight_moves_priority_or_faults():
    async def scenario():
        instance, shared = await started_with_trackers(
            conf_text(state="MASTER", prefix=TRACKERS, extra=TRACKING)
        )
        machine = instance.machine
        assert machine.effective_priority == 170  # 150 + process "up" 20
        shared.files["weighted"].set(-4)
        assert machine.effective_priority == 150  # -4 * 5
        shared.files["weighted"].set(100)
        assert machine.effective_priority == 254  # 150 + 253 + 20, capped
        shared.files["weighted"].set(-60)  # -300: below -253, FAULT
        assert machine.state == State.FAULT
        shared.files["weighted"].set(0)
        assert "file weighted failed" not in machine.fault_reasons
        shared.files["failing"].set(1)  # weight 0: non-zero is FAULT
        assert machine.fault_reasons == {"file failing failed"}
        shared.files["failing"].set(0)
        assert not machine.fault_reasons and machine.effective_priority == 170
        await instance.stop()

    asyncio.run(scenario())


def test_track_process_quorum_moves_priority_or_faults():
    async def scenario():
        instance, shared = await started_with_trackers(
            conf_text(state="MASTER", prefix=TRACKERS, extra=TRACKING)
        )
        machine = instance.machine
        shared.processes["up"].set(False)
        assert machine.effective_priority == 150
        shared.processes["needed"].set(False)  # weight 0: FAULT
        assert machine.state == State.FAULT
        shared.processes["needed"].set(True)
        shared.processes["up"].set(True)
        assert not machine.fault_reasons and machine.effective_priority == 170
        await instance.stop()
        assert not shared.processes["up"].listeners  # stopped: no longer listening

    asyncio.run(scenario())


def two_members(group_block):
    """VI_1 and VI_2 (vrid 52, 192.168.77.101), after `group_block`."""
    return conf_text(prefix=group_block) + conf_text().replace("VI_1", "VI_2").replace(
        "virtual_router_id 51", "virtual_router_id 52"
    ).replace("192.168.77.100", "192.168.77.101")


def engine_on_fakes(config):
    engine = VrrpEngine(config, asyncio.get_running_loop())
    fakes = services(engine.loop)
    engine.sockets, engine.addresses, engine.links = fakes.sockets, fakes.addresses, fakes.links
    engine.announcer, engine.notifier = fakes.announcer, fakes.notifier
    engine.vmacs = fakes.vmacs
    engine.routing = engine.static.routing = fakes.routing
    engine.static.links = fakes.links
    return engine, fakes


STATIC = """
static_ipaddress {
  10.8.0.1/24 dev eth1
}
static_routes {
  10.8.1.0/24 via 10.8.0.254
}
static_rules {
  from 10.8.0.0/24 table 100 priority 300
}
"""


def test_static_entries_stay_whatever_the_state_and_go_at_stop():
    async def scenario():
        engine, fakes = engine_on_fakes(loads(STATIC + conf_text()))
        log = fakes.addresses.log
        await engine.start()
        added = [("add", "10.8.0.1/24", "eth1"), ("route", "add", "10.8.1.0"), ("rule", "add", 300)]
        removed = [
            ("rule", "del", 300),
            ("route", "del", "10.8.1.0"),
            ("remove", "10.8.0.1/24", "eth1"),
        ]
        assert log == removed + added  # a killed run's leftovers first, as keepalived
        log.clear()
        engine.instances["VI_1"].machine.force_master()
        engine.instances["VI_1"].machine.force_backup()
        await engine.instances["VI_1"]._settle_vips()
        assert [entry for entry in log if entry[0] in ("route", "rule")] == []
        log.clear()
        await engine.apply_config(
            loads(STATIC.replace("priority 300", "priority 301") + conf_text())
        )
        assert log == [("rule", "del", 300), ("rule", "add", 301)]
        log.clear()
        await engine.stop()
        assert [entry for entry in log if entry[0] != "remove" or entry[2] == "eth1"] == [
            ("rule", "del", 301),
            ("route", "del", "10.8.1.0"),
            ("remove", "10.8.0.1/24", "eth1"),
        ]

    asyncio.run(scenario())


def test_sync_group_members_follow_each_other():
    text = two_members("vrrp_sync_group G1 {\n  group {\n    VI_1\n    VI_2\n  }\n}\n")

    async def scenario():
        engine, fakes = engine_on_fakes(loads(text))
        seen = []
        engine.add_state_listener(lambda name, state: seen.append((name, state)))
        await engine.start()
        engine.instances["VI_1"].machine.force_master()
        assert {i.machine.state for i in engine.instances.values()} == {State.MASTER}
        engine.instances["VI_2"].machine.add_fault("eth1 down")
        assert {i.machine.state for i in engine.instances.values()} == {State.FAULT}
        engine.instances["VI_2"].machine.clear_fault("eth1 down")
        assert {i.machine.state for i in engine.instances.values()} == {State.BACKUP}
        assert ("GROUP", "G1", "FAULT", 0) in fakes.notifier.calls  # keepalived: a group has 0
        assert ("VI_2", "MASTER") in seen
        await engine.stop()
        groups = [call[2] for call in fakes.notifier.calls if call[0] == "GROUP"]
        # once per change of the group's state, as keepalived, and STOP at the end
        assert groups == ["BACKUP", "MASTER", "FAULT", "BACKUP", "STOP"]

    asyncio.run(scenario())


class FakeScriptTracker(FakeTracker):
    """A vrrp_script tracker whose result the test sets."""

    def __init__(self, script):
        super().__init__(script, not script.init_fail)
        self.script = script

    async def stop(self):
        pass


def test_sync_group_script_or_interface_failing_faults_every_member():
    """keepalived's sync_group_tracking_init: the group's track_script / track_interface
    (unweighted) apply to every member, so either failing is FAULT for the whole group."""
    group = (
        "vrrp_script chk {\n  script /bin/true\n}\n"
        "vrrp_sync_group G1 {\n  group {\n    VI_1\n    VI_2\n  }\n"
        "  track_script {\n    chk\n  }\n  track_interface {\n    eth1\n  }\n}\n"
    )
    text = two_members(group)

    async def scenario():
        config = loads(text)
        engine, fakes = engine_on_fakes(config)
        chk = engine.scripts["chk"] = FakeScriptTracker(config.vrrp_scripts["chk"])
        await engine.start()
        members = engine.instances.values()
        engine.instances["VI_1"].machine.force_master()
        assert {i.machine.state for i in members} == {State.MASTER}
        chk.set(False)
        assert {i.machine.state for i in members} == {State.FAULT}
        assert all("script chk failed" in i.machine.fault_reasons for i in members)
        chk.set(True)
        assert {i.machine.state for i in members} == {State.BACKUP}
        fakes.links.report("eth1", tracking.Link(3, False))
        assert all("interface eth1 failed" in i.machine.fault_reasons for i in members)
        assert {i.machine.state for i in members} == {State.FAULT}
        fakes.links.report("eth1", tracking.Link(3, True))
        assert {i.machine.state for i in members} == {State.BACKUP}
        await engine.stop()

    asyncio.run(scenario())


async def engine_with_fakes(text):
    engine, fakes = engine_on_fakes(loads(text))
    await engine.start()
    await asyncio.sleep(0)
    for instance in engine.instances.values():
        await instance._settle_vips()
    return engine, fakes


def sent_priorities(fakes):
    return [(message[1], message[2]) for message, _source, _dest in fakes.sockets.socket.sent]


def test_reloaded_master_keeps_its_state_and_the_common_vips(caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")
    before = conf_text(state="MASTER").replace(
        "192.168.77.100/24", "192.168.77.100/24\n    192.168.77.102/24"
    )
    after = conf_text(state="BACKUP", priority=120, extra="  nopreempt").replace(
        "192.168.77.100/24", "192.168.77.100/24\n    192.168.77.101/24"
    )

    async def scenario():
        engine, fakes = await engine_with_fakes(before)
        instance = engine.instances["VI_1"]
        fakes.addresses.log.clear()
        fakes.announcer.announced.clear()
        notified = list(fakes.notifier.calls)
        await engine.apply_config(loads(after))
        assert engine.instances["VI_1"] is instance
        assert instance.machine.state == State.MASTER
        assert instance.machine.effective_priority == 120
        assert not instance.machine.settings.preempt
        assert (51, 0) not in sent_priorities(fakes)
        assert fakes.addresses.log == [
            ("remove", "192.168.77.102/24", "eth0"),
            ("add", "192.168.77.101/24", "eth0"),
        ]
        assert fakes.addresses.held == {"192.168.77.100", "192.168.77.101"}
        assert ("eth0", "192.168.77.101") in fakes.announcer.announced
        assert fakes.notifier.calls == notified  # no transition, no notify script
        assert "removing VIPs" not in caplog.text
        await asyncio.sleep(1.1)  # the next advert: the new priority, the new address list
        advert = packet.decode(fakes.sockets.socket.sent[-1][0], OURS, packet.MCAST_GROUP4)
        assert advert.priority == 120
        assert set(map(str, advert.addresses)) == {"192.168.77.100", "192.168.77.101"}
        await engine.stop()

    asyncio.run(scenario())


def test_reloaded_backup_stays_backup_whatever_the_initial_state():
    async def scenario():
        engine, fakes = await engine_with_fakes(conf_text(priority=100))
        instance = engine.instances["VI_1"]
        fakes.sockets.handlers[51](received(v2(150)))
        await engine.apply_config(loads(conf_text(state="MASTER", priority=120)))
        assert engine.instances["VI_1"] is instance
        assert instance.machine.state == State.BACKUP
        assert instance.machine.effective_priority == 120
        assert instance.machine.master_address == PEER
        assert fakes.sockets.socket.sent == []
        assert fakes.addresses.log == []
        await engine.stop()

    asyncio.run(scenario())


def test_reload_with_another_vrid_restarts_the_instance():
    async def scenario():
        engine, fakes = await engine_with_fakes(conf_text(state="MASTER"))
        instance = engine.instances["VI_1"]
        fakes.addresses.log.clear()
        moved = conf_text(state="MASTER").replace("virtual_router_id 51", "virtual_router_id 52")
        await engine.apply_config(loads(moved))
        await asyncio.sleep(0)
        await engine.instances["VI_1"]._settle_vips()
        assert engine.instances["VI_1"] is not instance
        assert (51, 0) in sent_priorities(fakes)  # the old one resigned
        assert sent_priorities(fakes)[-1] == (52, 150)
        assert fakes.addresses.log == [
            ("remove", "192.168.77.100/24", "eth0"),
            ("add", "192.168.77.100/24", "eth0"),
        ]
        await engine.stop()

    asyncio.run(scenario())


def test_own_interface_deleted_is_fault_and_back_reopens_before_the_first_advert(caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")

    async def scenario():
        links = FakeLinks()
        instance, shared = await started(conf_text(state="MASTER", priority=255), links=links)
        sock = shared.sockets.socket
        assert instance.machine.state == State.MASTER
        links.report("eth0", tracking.Link(2, False))  # the kernel says down, then deleted
        links.report("eth0", tracking.GONE)
        await instance._settle_vips()
        assert instance.machine.state == State.FAULT
        assert shared.addresses.held == set()
        assert sock.followed == [None]
        sent_while_gone = len(sock.sent)
        links.report("eth0", tracking.Link(7, False))  # re-created, not up yet
        assert instance.machine.state == State.FAULT and sock.followed == [None, 7]
        assert len(sock.sent) == sent_while_gone
        links.report("eth0", tracking.Link(7, True))
        await instance._settle_vips()
        assert instance.machine.state == State.MASTER  # the owner takes over at once ...
        assert sock.ifindex == 7  # ... on the new socket
        assert shared.addresses.held == {"192.168.77.100"}
        await instance.stop()

    asyncio.run(scenario())
    assert "(VI_1) Entering FAULT STATE" in caplog.text


def test_backup_interface_recreated_comes_back_as_backup():
    async def scenario():
        links = FakeLinks()
        instance, shared = await started(conf_text(priority=100), links=links)
        links.report("eth0", tracking.GONE)
        assert instance.machine.state == State.FAULT
        links.report("eth0", tracking.Link(9, True))
        assert instance.machine.state == State.BACKUP
        assert shared.sockets.socket.followed == [None, 9]
        assert shared.sockets.socket.sent == []
        await instance.stop()

    asyncio.run(scenario())


def test_vip_device_gone_is_fault_even_with_dont_track_primary():
    extra = "  dont_track_primary\n"
    text = conf_text(extra=extra).replace(
        "192.168.77.100/24\n", "192.168.77.100/24\n    10.9.9.9/32 dev eth7\n"
    )

    async def scenario():
        links = FakeLinks()
        instance, shared = await started(text, links=links)
        assert links.watched == ["eth0", "eth7"]
        links.report("eth0", tracking.Link(2, False))  # not tracked: stays backup
        assert instance.machine.state == State.BACKUP
        links.report("eth7", tracking.GONE)
        assert instance.machine.state == State.FAULT
        links.report("eth7", tracking.Link(12, False))
        assert instance.machine.state == State.BACKUP
        assert shared.sockets.socket.followed == []  # the VRRP socket is on eth0
        await instance.stop()

    asyncio.run(scenario())


def test_interface_missing_at_watch_time_is_fault():
    async def scenario():
        links = FakeLinks(missing={"eth0"})
        instance, _shared = await started(conf_text(), links=links)
        assert instance.machine.state == State.FAULT
        await instance.stop()

    asyncio.run(scenario())


def test_recreated_interface_source_address_is_found_again(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")
    monkeypatch.setattr("lvsagent.vrrp.instance.SOURCE_WAIT", 0.01)
    new_source = ipaddress.ip_address("192.168.77.21")

    async def scenario():
        links = FakeLinks()
        instance, shared = await started(conf_text(priority=100), links=links)
        links.report("eth0", tracking.GONE)
        shared.addresses.sources = [None, None, new_source]  # the address comes a bit later
        links.report("eth0", tracking.Link(7, False))
        await asyncio.sleep(0.05)
        assert instance.source == OURS  # looked for once the link is up, not before
        links.report("eth0", tracking.Link(7, True))
        for _attempt in range(500):  # three looks SOURCE_WAIT apart; a loaded machine may be slower
            if instance.source == new_source:
                break
            await asyncio.sleep(0.01)
        assert instance.source == new_source
        assert instance.machine.settings.primary_address == new_source
        assert shared.addresses.sources == []
        links.report("eth0", tracking.Link(7, False))  # same index: nothing to look for
        links.report("eth0", tracking.Link(7, True))
        shared.addresses.sources = [OURS]
        await asyncio.sleep(0.05)
        assert instance.source == new_source
        await instance.stop()

    asyncio.run(scenario())
    assert "(VI_1) source address on eth0 is now 192.168.77.21" in caplog.text


def test_configured_source_address_is_kept_when_the_interface_comes_back():
    extra = "  unicast_src_ip 192.168.77.11\n  unicast_peer {\n    192.168.77.12\n  }\n"

    async def scenario():
        links = FakeLinks()
        instance, shared = await started(conf_text(extra=extra), links=links)
        links.report("eth0", tracking.GONE)
        shared.addresses.sources = [ipaddress.ip_address("192.168.77.21")]
        links.report("eth0", tracking.Link(7, True))
        await asyncio.sleep(0.05)
        assert instance.source == OURS and len(shared.addresses.sources) == 1
        await instance.stop()


def test_unicast_takes_a_routed_peer_and_check_unicast_src_refuses_strangers():
    extra = (
        "  unicast_src_ip 192.168.77.11\n  unicast_peer {\n    192.168.77.12\n  }\n"
        "  check_unicast_src\n"
    )

    async def scenario():
        instance, shared = await started(conf_text(priority=100, extra=extra))
        handler = shared.sockets.handlers[51]
        stranger = ipaddress.ip_address("192.168.77.66")
        to_us = packet.encode(v2(150), stranger, OURS)
        handler(Received(to_us, stranger, OURS, 255, "eth0"))
        assert dict(shared.drops.counts) == {"unicast source": 1}
        assert instance.machine.master_address is None
        routed = packet.encode(v2(150), PEER, OURS)
        handler(Received(routed, PEER, OURS, 62, "eth0"))  # three hops away
        assert instance.machine.master_address == PEER
        await instance.stop()

    asyncio.run(scenario())


def test_a_flood_of_bad_adverts_writes_a_bounded_log(caplog):
    caplog.set_level(logging.DEBUG, logger="lvsagent")

    async def scenario():
        instance, shared = await started(conf_text(priority=100))
        caplog.clear()
        handler = shared.sockets.handlers[51]
        flood = [
            received(v2(150), ttl=64),
            received(v2(255, password="wrong123")),
            received(v2(255, interval=0)),
        ]
        for _round in range(2000):
            for bad in flood:
                handler(bad)
        assert dict(shared.drops.counts) == {"ttl": 2000, "auth_password": 2000, "interval 0": 2000}
        assert instance.machine.state == State.BACKUP
        await instance.stop()

    asyncio.run(scenario())
    drop_lines = [r for r in caplog.records if "STATE" not in r.getMessage()]
    assert len(drop_lines) <= 6


def test_reload_hands_the_socket_the_new_receive_rules():
    async def scenario():
        engine, fakes = await engine_with_fakes(conf_text(priority=100))
        before = fakes.sockets.rules[51]
        await engine.apply_config(loads(conf_text(priority=100).replace("secret12", "other123")))
        after = fakes.sockets.rules[51]
        assert (before.auth_data, after.auth_data) == (b"secret12", b"other123")
        fakes.sockets.handlers[51](received(v2(150)))  # the old password is refused now
        assert dict(engine.drops) == {"auth_password": 1}  # what the status shows
        await engine.stop()

    asyncio.run(scenario())


def test_use_vmac_puts_the_vips_and_the_socket_on_the_macvlan():
    async def scenario():
        instance, shared = await started(conf_text(state="MASTER", extra="  use_vmac\n"))
        vmac = Vmac("vrrp.51", "eth0", 51, 4, "VI_1")
        assert shared.vmacs.log == [("create", vmac)]
        assert shared.sockets.ifname == "vrrp.51"
        assert shared.sockets.socket.sent[0][1] == OURS  # the source is still eth0's address
        assert shared.addresses.log == [("add", "192.168.77.100/24", "vrrp.51")]
        assert shared.announcer.announced[0] == ("vrrp.51", "192.168.77.100")
        await instance.stop()
        assert shared.addresses.log[-1] == ("remove", "192.168.77.100/24", "vrrp.51")
        assert shared.vmacs.log[-1] == ("remove", vmac)

    asyncio.run(scenario())


def test_vmac_xmit_base_sends_from_the_base_interface_and_keeps_the_vips_on_the_vmac():
    async def scenario():
        extra = "  use_vmac vip-web\n  vmac_xmit_base\n"
        instance, shared = await started(conf_text(state="MASTER", extra=extra))
        assert shared.sockets.ifname == "eth0"
        assert shared.addresses.log == [("add", "192.168.77.100/24", "vip-web")]
        await instance.stop()

    asyncio.run(scenario())


def test_the_vmac_is_made_again_when_its_interface_comes_back_and_moves_the_socket():
    async def scenario():
        links = FakeLinks()
        instance, shared = await started(conf_text(extra="  use_vmac\n"), links=links)
        assert "vrrp.51" in links.watched
        links.report("eth0", tracking.Link(2, False))  # down and up again: same interface
        links.report("eth0", tracking.Link(2, True))
        await asyncio.sleep(0)
        assert [what for what, _vmac in shared.vmacs.log] == ["create"]
        links.report("vrrp.51", tracking.GONE)  # deleted with eth0
        links.report("eth0", tracking.GONE)
        assert instance.machine.state == State.FAULT
        links.report("eth0", tracking.Link(9, True))  # eth0 back: the VMAC is made again
        await asyncio.sleep(0)
        assert [what for what, _vmac in shared.vmacs.log] == ["create", "create"]
        assert instance.machine.state == State.FAULT  # until the VMAC is there
        links.report("vrrp.51", tracking.Link(12, True))
        assert shared.sockets.socket.followed == [None, 12]
        assert instance.machine.state == State.BACKUP
        await instance.stop()

    asyncio.run(scenario())


def test_reload_that_turns_use_vmac_on_restarts_the_instance_on_its_vmac():
    async def scenario():
        engine, fakes = await engine_with_fakes(conf_text(state="MASTER"))
        fakes.addresses.log.clear()
        await engine.apply_config(loads(conf_text(state="MASTER", extra="  use_vmac\n")))
        await asyncio.sleep(0)
        await engine.instances["VI_1"]._settle_vips()
        assert fakes.addresses.log == [
            ("remove", "192.168.77.100/24", "eth0"),
            ("add", "192.168.77.100/24", "vrrp.51"),
        ]
        await engine.apply_config(loads(conf_text(state="MASTER")))
        assert [what for what, _vmac in fakes.vmacs.log] == ["create", "remove"]
        await engine.stop()


def test_a_tracked_virtual_rule_deleted_behind_a_master_makes_it_backup(caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")

    async def scenario():
        instance, shared = await started(conf_text(extra=ROUTES))
        instance.machine.force_master()
        await instance._settle_vips()
        deletions = shared.routing.deletions
        (rule,) = deletions.entries()  # the routes name no dev: not tracked, as keepalived
        deletions.delete(rule)
        assert instance.machine.state == State.BACKUP
        await instance._settle_vips()
        assert deletions.watched == {}
        await instance.stop()

    asyncio.run(scenario())
    assert "(VI_1) rule 200: from 10.9.0.0/24 lookup 100 deleted - going to BACKUP" in caplog.text


def test_a_tracked_static_rule_or_address_deleted_is_restored(caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")

    async def scenario():
        engine, fakes = engine_on_fakes(loads(STATIC + conf_text()))
        await engine.start()
        deletions, log = fakes.routing.deletions, fakes.addresses.log
        address, rule = deletions.entries()
        log.clear()
        deletions.delete(rule)
        deletions.delete(address)
        await asyncio.sleep(0.01)
        assert log == [("rule", "add", 300), ("add", "10.8.0.1/24", "eth1")]
        assert deletions.entries() == [rule, address]  # watched again
        await engine.stop()
        assert deletions.watched == {}

    asyncio.run(scenario())
    assert "Restoring deleted static rule 300: from 10.8.0.0/24 lookup 100" in caplog.text


def test_gratuitous_frames_of_one_kind_on_one_interface_keep_their_interval_apart():
    """vrrp_garp_interval spaces ARPs, vrrp_gna_interval NAs, per interface: every frame of the
    5-round burst (rounds finding an address waiting collapse into its frame, as keepalived's);
    leaving MASTER cancels the ones still waiting."""
    prefix = "global_defs {\n  vrrp_garp_interval 0.02\n  vrrp_gna_interval 0.05\n}\n"
    extra = "  virtual_ipaddress_excluded {\n    192.168.77.101/24\n    fd00:7::1/64\n  }\n"
    burst = {4: 3, 6: 2}  # .100 at once, .101 waiting, .100 of round 2; the NA and one more

    async def scenario():
        instance, shared = await started(conf_text(state="MASTER", extra=extra, prefix=prefix))
        sent = shared.announcer.sent_at
        for _wait in range(100):  # the last slot is 0.05 s away; timers run late under load
            if len(sent) == sum(burst.values()):
                break
            await asyncio.sleep(0.05)
        for version, spacing in ((4, 0.02), (6, 0.05)):
            times = [at for ifname, v, at in sent if (ifname, v) == ("eth0", version)]
            assert len(times) == burst[version]
            assert all(b - a >= spacing - 0.001 for a, b in zip(times, times[1:]))
        await instance.stop()

    async def resigning():
        prefix_slow = prefix.replace("0.02", "0.2")
        instance, shared = await started(conf_text(state="MASTER", extra=extra, prefix=prefix_slow))
        instance.machine.force_backup()
        sent_while_master = len(shared.announcer.sent_at)
        await asyncio.sleep(0.5)
        assert 0 < sent_while_master == len(shared.announcer.sent_at) < sum(burst.values())
        await instance.stop()

    asyncio.run(scenario())
    asyncio.run(resigning())


def test_excluded_vips_follow_the_state_but_stay_out_of_the_adverts():
    """keepalived's eVIPs: added, announced and removed with the VIPs, of either family, and
    never in the advert (its bytes are those of the instance without them)."""
    excluded = "  virtual_ipaddress_excluded {\n    10.7.0.1/24 dev eth1\n    fd00:7::1/64\n  }\n"

    async def scenario():
        instance, shared = await started(conf_text(state="MASTER", extra=excluded))
        message, _source, _destination = shared.sockets.socket.sent[0]
        assert message == bytes.fromhex(V2_PASS_FRAME)[34:]
        assert shared.addresses.log == [
            ("add", "192.168.77.100/24", "eth0"),
            ("add", "10.7.0.1/24", "eth1"),
            ("add", "fd00:7::1/64", "eth0"),
        ]
        assert ("eth1", "10.7.0.1") in shared.announcer.announced
        assert ("eth0", "fd00:7::1") in shared.announcer.announced
        shared.addresses.log.clear()
        instance.machine.force_backup()
        await instance._settle_vips()
        assert sorted(shared.addresses.log) == [
            ("remove", "10.7.0.1/24", "eth1"),
            ("remove", "192.168.77.100/24", "eth0"),
            ("remove", "fd00:7::1/64", "eth0"),
        ]
        await instance.stop()

    asyncio.run(scenario())


def test_counters_follow_what_was_sent_received_and_announced():
    async def scenario():
        instance, shared = await started(conf_text(state="MASTER", priority=100))
        assert instance.status()["counters"]["became_master"] == 1
        assert instance.counters.adverts_sent == 1
        assert instance.counters.gratuitous_announcements_sent == 5
        assert instance.last_transition is not None
        handler = shared.sockets.handlers[51]
        handler(received(v2(150, password="wrong123")))  # a drop, not a received advert
        assert instance.counters.adverts_received == 0
        handler(received(v2(0)))  # priority 0: the master answers with an advert
        assert instance.counters.priority_zero_received == 1
        assert instance.counters.adverts_sent == 2
        other_vips = dataclasses.replace(v2(200), addresses=())
        handler(received(other_vips))
        assert instance.machine.state == State.BACKUP
        await instance.stop()
        status = instance.status()
        assert status["counters"] == {
            "adverts_sent": 2,
            "adverts_received": 2,
            "priority_zero_sent": 0,  # it was a backup when it stopped
            "priority_zero_received": 1,
            "became_master": 1,
            "released_master": 1,
            "gratuitous_announcements_sent": 5,
            "address_list_mismatches": 1,
        }
        assert (status["virtual_router_id"], status["family"]) == (51, 4)

    asyncio.run(scenario())


def test_prio_advert_settings_come_from_global_defs_unless_the_instance_sets_them():
    async def settings(prefix, extra=""):
        instance, _shared = await started(conf_text(prefix=prefix, extra=extra))
        await instance.stop()
        machine = instance.machine.settings
        return machine.lower_prio_no_advert, machine.higher_prio_send_advert

    async def scenario():
        assert await settings("") == (False, False)
        both = "global_defs {\n vrrp_lower_prio_no_advert\n vrrp_higher_prio_send_advert\n}"
        assert await settings(both) == (True, True)
        assert await settings(both, "lower_prio_no_advert false") == (False, True)
        assert await settings("global_defs {\n vrrp_strict\n}") == (True, False)

    asyncio.run(scenario())


def test_a_resigning_master_counts_its_priority_zero_advert():
    async def scenario():
        instance, _shared = await started(conf_text(state="MASTER"))
        await instance.stop()
        assert instance.counters.priority_zero_sent == 1
        assert instance.counters.released_master == 1

    asyncio.run(scenario())


def test_lower_prio_no_advert_master_sends_nothing_back_on_the_wire():
    async def scenario():
        instance, shared = await started(
            conf_text(state="MASTER", priority=200, extra="lower_prio_no_advert")
        )
        before = len(shared.sockets.socket.sent)
        shared.sockets.handlers[51](received(v2(150)))
        assert len(shared.sockets.socket.sent) == before
        assert instance.machine.state == State.MASTER
        await instance.stop()

    asyncio.run(scenario())


def test_unicast_ttl_goes_with_each_unicast_advert():
    extra = "  unicast_ttl 7\n  unicast_peer {\n    192.168.77.12\n  }\n"

    async def scenario():
        instance, shared = await started(conf_text(state="MASTER", extra=extra))
        await instance.stop()
        assert shared.sockets.socket.ttls == [7, 7]  # the advert and the priority-0 one
        plain, plain_shared = await started(conf_text(state="MASTER"))
        await plain.stop()
        assert set(plain_shared.sockets.socket.ttls) == {None}

    asyncio.run(scenario())


def test_promote_secondaries_is_asked_at_start_and_given_back_at_stop():
    class Promotion:
        def __init__(self):
            self.calls = []

        async def acquire(self, ifname):
            self.calls.append(("acquire", ifname))

        async def release(self, ifname):
            self.calls.append(("release", ifname))

    async def scenario():
        config = loads(conf_text(extra="  promote_secondaries\n"))
        shared = services(asyncio.get_running_loop())
        shared.promotion = Promotion()
        instance = Instance(config.vrrp_instances[0], config.global_defs, shared, lambda *a: None)
        await instance.start()
        await instance.update(config.vrrp_instances[0], config.global_defs)
        assert shared.promotion.calls == [("acquire", "eth0")]
        await instance.stop()
        assert shared.promotion.calls == [("acquire", "eth0"), ("release", "eth0")]

    asyncio.run(scenario())


def test_vrrp_min_garp_master_sends_one_gratuitous_arp_and_no_refresh():
    prefix = "global_defs {\n  vrrp_min_garp\n  vrrp_garp_master_refresh 1\n}"

    async def scenario():
        instance, shared = await started(conf_text(state="MASTER", prefix=prefix))
        await asyncio.sleep(1.2)  # the refresh comes with vrrp_min_garp's 0 repeats
        assert shared.announcer.announced == [("eth0", "192.168.77.100")]
        await instance.stop()

    asyncio.run(scenario())


def lower_priority_garps(prefix="", extra="", wait=0.0, priority=200, adverts=1):
    """Gratuitous ARPs a master sends when it hears priority 100 (vrrp_garp_master_delay 0 so
    that its own start-up bursts are over)."""

    async def scenario():
        text = conf_text(state="MASTER", priority=priority, prefix=prefix, extra=extra)
        instance, shared = await started(text)
        assert instance.machine.state == State.MASTER
        before = len(shared.announcer.announced)
        for _flood in range(adverts):  # past the receive rules (auth under strict)
            instance.machine.receive(v2(100), PEER)
        await asyncio.sleep(wait)
        await instance.stop()
        return len(shared.announcer.announced) - before

    return asyncio.run(scenario())


NO_DELAY = "global_defs {\n  vrrp_garp_master_delay 0\n}"


def test_a_master_hearing_a_lower_priority_announces_its_vips_again():
    assert lower_priority_garps(NO_DELAY) == 5  # vrrp_garp_master_repeat, keepalived's default
    assert lower_priority_garps(NO_DELAY, adverts=100) == 5  # once per advert interval
    explicit = "  garp_lower_prio_repeat 2\n  garp_lower_prio_delay 1\n"
    assert lower_priority_garps(NO_DELAY, explicit, wait=1.2) == 4  # now and 1 s later
    globals_ = "global_defs {\n  vrrp_garp_master_delay 0\n  vrrp_garp_lower_prio_repeat 3\n}"
    assert lower_priority_garps(globals_) == 3
    assert lower_priority_garps(NO_DELAY, "  garp_lower_prio_repeat 0\n") == 0
    strict = "global_defs {\n  vrrp_garp_master_delay 0\n  vrrp_strict\n}"
    assert lower_priority_garps(strict, priority=255) == 0  # strict: MASTER only as owner


def test_the_other_sync_group_members_announce_too():
    group = "vrrp_sync_group G1 {\n  group {\n    VI_1\n    VI_2\n  }\n}\n"
    text = NO_DELAY + two_members(group).replace("VI_2 {", "VI_2 {\n  garp_lower_prio_repeat 2")

    async def scenario():
        engine, fakes = engine_on_fakes(loads(text))
        await engine.start()
        engine.instances["VI_1"].machine.force_master()
        fakes.announcer.announced.clear()
        engine.instances["VI_1"].machine.receive(v2(100), PEER)
        announced = list(fakes.announcer.announced)
        await engine.stop()
        assert announced.count(("eth0", "192.168.77.100")) == 5
        assert announced.count(("eth0", "192.168.77.101")) == 2

    asyncio.run(scenario())


def test_down_timer_adverts_reaches_the_machine():
    async def scenario():
        instance, _shared = await started(conf_text(extra="  down_timer_adverts 7\n"))
        await instance.stop()
        return instance.machine.settings.down_timer_adverts

    assert asyncio.run(scenario()) == 7


TRACKED_STATIC = """
track_group G1 {
  group {
    VI_1
  }
}
static_routes {
  10.8.1.0/24 dev eth1 track_group G1
}
"""


def test_a_track_group_instance_faults_while_its_static_route_cannot_be_restored(
    caplog, monkeypatch
):
    """keepalived (vrrp_static_track.c): the group's instances track the route's interface with
    weight 0; deleted while it is up, the route is restored and nothing else happens; down or
    gone, FAULT; up again, the route is added again (interface_up) and the fault clears."""
    caplog.set_level(logging.INFO, logger="lvsagent")
    monkeypatch.setattr(socket, "if_nametoindex", lambda name: 3)  # eth1, faked

    async def scenario():
        engine, fakes = engine_on_fakes(loads(TRACKED_STATIC + conf_text()))
        await engine.start()
        machine = engine.instances["VI_1"].machine
        machine.force_master()
        await engine.instances["VI_1"]._settle_vips()
        deletions, log = fakes.routing.deletions, fakes.addresses.log
        (route,) = deletions.entries()
        log.clear()
        deletions.delete(route)
        await asyncio.sleep(0.01)
        assert log == [("route", "add", "10.8.1.0")] and machine.state == State.MASTER
        log.clear()
        fakes.links.report("eth1", tracking.Link(3, False))
        assert machine.state == State.FAULT
        fakes.links.report("eth1", tracking.Link(3, True))
        await asyncio.sleep(0.01)
        assert [entry for entry in log if entry[0] == "route"] == [("route", "add", "10.8.1.0")]
        assert machine.state == State.BACKUP  # and master again when the peer's adverts stop
        fakes.links.report("eth1", tracking.GONE)
        assert machine.state == State.FAULT
        fakes.links.report("eth1", tracking.Link(4, True))
        assert machine.state == State.BACKUP
        await engine.stop()

    asyncio.run(scenario())
    assert caplog.text.count("Restoring deleted static route 10.8.1.0/24 dev eth1") == 3


def test_without_track_group_the_instance_ignores_the_static_route_interface(monkeypatch):
    monkeypatch.setattr(socket, "if_nametoindex", lambda name: 3)

    async def scenario():
        text = TRACKED_STATIC.replace(" track_group G1", "") + conf_text()
        engine, fakes = engine_on_fakes(loads(text))
        await engine.start()
        machine = engine.instances["VI_1"].machine
        fakes.links.report("eth1", tracking.Link(3, False))
        assert machine.state == State.BACKUP and not machine.fault_reasons
        fakes.links.report("eth1", tracking.Link(3, True))
        await asyncio.sleep(0.01)
        assert ("route", "add", "10.8.1.0") in fakes.addresses.log[-1:]  # restored all the same
        await engine.stop()

    asyncio.run(scenario())


def test_a_reload_that_takes_the_instance_out_of_the_track_group_clears_its_fault(monkeypatch):
    monkeypatch.setattr(socket, "if_nametoindex", lambda name: 3)

    async def scenario():
        engine, fakes = engine_on_fakes(loads(TRACKED_STATIC + conf_text()))
        await engine.start()
        machine = engine.instances["VI_1"].machine
        fakes.links.report("eth1", tracking.Link(3, False))
        assert machine.state == State.FAULT
        untracked = TRACKED_STATIC.replace(" track_group G1", "")
        await engine.apply_config(loads(untracked + conf_text()))
        assert engine.instances["VI_1"].machine is machine and machine.state == State.BACKUP
        await engine.apply_config(loads(TRACKED_STATIC + conf_text()))
        fakes.links.report("eth1", tracking.Link(3, False))
        assert machine.state == State.FAULT
        await engine.stop()

    asyncio.run(scenario())
