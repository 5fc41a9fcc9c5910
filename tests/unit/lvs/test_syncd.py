"""lvs/syncd.py without a kernel: the messages as pyroute2's own IPVS parser reads them, the
replies as the kernel sends them, and the sync daemon following a VRRP instance as keepalived
(the kernel side is proven in tests/integration/ipvs/test_lvs_syncd.py)."""

from __future__ import annotations

import asyncio
import errno

import pytest
from fakeclock import FakeClock
from fakes import FakeIpvs

from lvsagent.config import loads
from lvsagent.config.model import LvsTimeouts, SyncDaemon
from lvsagent.ipvs import IpvsError
from lvsagent.lvs import syncd
from lvsagent.lvs.engine import LvsEngine

pyroute2_ipvs = pytest.importorskip("pyroute2.netlink.generic.ipvs")

COMMANDS = {
    syncd.IPVS_CMD_NEW_DAEMON: "new_daemon",
    syncd.IPVS_CMD_DEL_DAEMON: "del_daemon",
    syncd.IPVS_CMD_GET_DAEMON: "get_daemon",
    syncd.IPVS_CMD_SET_CONFIG: "set_config",
    syncd.IPVS_CMD_GET_CONFIG: "get_config",
    syncd.IPVS_CMD_FLUSH: "flush",
}


def u32(value: int) -> str:
    """A 32-bit attribute as pyroute2's ipvsmsg shows it (hex, host byte order)."""
    return ":".join(f"{byte:02x}" for byte in value.to_bytes(4, "little"))


def as_kernel_reads(message):
    """The request re-read by pyroute2's ipvsmsg (the daemon attribute comes back as hex)."""
    message.encode()
    parsed = pyroute2_ipvs.ipvsmsg(bytes(message.data))
    parsed.decode()
    return parsed


class GenlRecorder(FakeIpvs):
    """FakeIpvs plus genl_request: records (command, attributes) and answers from `replies`."""

    def __init__(self):
        super().__init__()
        self.requests: list = []
        self.replies: dict = {}  # command name -> tuple of reply messages
        self.errors: dict = {}  # command name -> errno

    def genl_request(self, action, message, flags):
        parsed = as_kernel_reads(message)
        command = COMMANDS[parsed["cmd"]]
        attrs = {name: value for name, value in parsed["attrs"]}
        if "IPVS_CMD_ATTR_DAEMON" in attrs:
            attrs = syncd._daemon_from(
                syncd._attributes(syncd._raw_bytes(attrs.pop("IPVS_CMD_ATTR_DAEMON")))
            )
        self.requests.append((command, attrs))
        if command in self.errors:
            raise IpvsError(f"cannot {action}", self.errors[command])
        return self.replies.get(command, ())

    def daemon_commands(self) -> list:
        """[(command, state)] of the daemon requests."""
        return [(command, attrs[0]) for command, attrs in self.requests if "daemon" in command]


def test_a_daemon_request_carries_every_setting():
    client = GenlRecorder()
    config = syncd.DaemonConfig("eth1", 7, 1400, 8850, 2, "239.1.2.3")
    syncd.start_daemon(client, syncd.MASTER, config)
    assert client.requests == [("new_daemon", (syncd.MASTER, config))]


def test_an_ipv6_group_goes_in_its_own_attribute():
    client = GenlRecorder()
    config = syncd.DaemonConfig("eth1", 3, group="ff05::81")
    syncd.start_daemon(client, syncd.BACKUP, config)
    assert client.requests == [("new_daemon", (syncd.BACKUP, config))]


def daemon_reply(state: str, config: syncd.DaemonConfig):
    """A GET_DAEMON answer as the kernel sends it, parsed by the socket's ipvsmsg."""
    message = syncd.IpvsConfigMessage()
    message["cmd"] = syncd.IPVS_CMD_GET_DAEMON
    message["version"] = 1
    attrs = [
        ("IPVS_DAEMON_ATTR_STATE", syncd.DAEMON_STATES[state]),
        ("IPVS_DAEMON_ATTR_MCAST_IFN", config.interface),
        ("IPVS_DAEMON_ATTR_SYNC_ID", config.sync_id),
        ("IPVS_DAEMON_ATTR_SYNC_MAXLEN", config.max_len),
        ("IPVS_DAEMON_ATTR_MCAST_PORT", config.port),
        ("IPVS_DAEMON_ATTR_MCAST_TTL", config.ttl),
        ("IPVS_DAEMON_ATTR_MCAST_GROUP", config.group),
    ]
    message["attrs"] = [("IPVS_CMD_ATTR_DAEMON", {"attrs": attrs})]
    return as_kernel_reads(message)


def test_running_daemons_reads_the_kernel_answer():
    client = GenlRecorder()
    master = syncd.DaemonConfig("eth0", 51, 1472, 8848, 1, "224.0.0.81")
    backup = syncd.DaemonConfig("eth1", 9, 1472, 8848, 1, "224.0.0.81")
    client.replies["get_daemon"] = (
        daemon_reply(syncd.MASTER, master),
        daemon_reply(syncd.BACKUP, backup),
    )
    assert syncd.running_daemons(client) == {syncd.MASTER: master, syncd.BACKUP: backup}


def test_stopping_a_daemon_that_does_not_run_is_not_an_error():
    client = GenlRecorder()
    assert syncd.stop_daemon(client, syncd.MASTER)
    client.errors["del_daemon"] = errno.ESRCH
    assert not syncd.stop_daemon(client, syncd.MASTER)
    client.errors["del_daemon"] = errno.EPERM
    with pytest.raises(IpvsError):
        syncd.stop_daemon(client, syncd.MASTER)


def test_timeouts_set_only_what_is_given_and_read_back():
    client = GenlRecorder()
    syncd.set_timeouts(client, LvsTimeouts(tcp=900, udp=5))
    syncd.set_timeouts(client, LvsTimeouts())
    sent = client.requests[0][1]
    assert client.requests == [("set_config", sent)]
    assert sent == {
        "IPVS_CMD_ATTR_TIMEOUT_TCP": u32(900),
        "IPVS_CMD_ATTR_TIMEOUT_UDP": u32(5),
    }
    client.replies["get_config"] = (config_reply(LvsTimeouts(900, 120, 300)),)
    assert syncd.read_timeouts(client) == LvsTimeouts(900, 120, 300)


def config_reply(timeouts: LvsTimeouts):
    """A GET_CONFIG answer as the kernel sends it, parsed by the socket's ipvsmsg."""
    reply = syncd.IpvsConfigMessage()
    reply["cmd"] = syncd.IPVS_CMD_GET_CONFIG
    reply["attrs"] = [
        (syncd.TIMEOUT_ATTRS[name], getattr(timeouts, name)) for name in syncd.TIMEOUT_ATTRS
    ]
    return as_kernel_reads(reply)


def drive(follower, transitions) -> None:
    """start(), `transitions` as VRRP reports them, stop(): on an engine or a control."""

    async def scenario():
        await follower.start()
        for instance, state in transitions:
            follower.on_vrrp_state(instance, state)
            await asyncio.sleep(0)
        await follower.stop()

    asyncio.run(scenario())


def follow(daemon: SyncDaemon, *transitions, initial=None) -> list:
    """The daemon commands a control sends from start, through `transitions`, to stop."""
    client = GenlRecorder()
    drive(syncd.SyncDaemonControl(client, daemon, initial), transitions)
    return client.daemon_commands()


FOLLOWING = SyncDaemon("eth1", "VI_1", 51)
LEFTOVERS = [("del_daemon", syncd.MASTER), ("del_daemon", syncd.BACKUP)]


def test_a_daemon_following_an_instance_is_backup_then_master_then_backup():
    assert follow(FOLLOWING, ("VI_1", "BACKUP"), ("VI_1", "MASTER"), ("VI_1", "FAULT")) == [
        *LEFTOVERS,
        ("new_daemon", syncd.BACKUP),
        ("del_daemon", syncd.BACKUP),
        ("new_daemon", syncd.MASTER),
        ("del_daemon", syncd.MASTER),
        ("new_daemon", syncd.BACKUP),
        ("del_daemon", syncd.BACKUP),
    ]


def test_init_at_stop_and_other_instances_change_nothing():
    commands = follow(FOLLOWING, ("VI_2", "BACKUP"), ("VI_1", "INIT"), initial="MASTER")
    assert commands == [*LEFTOVERS, ("new_daemon", syncd.MASTER), ("del_daemon", syncd.MASTER)]


def test_without_an_instance_master_and_backup_run_all_the_time():
    commands = follow(SyncDaemon("eth1", None, 0), ("VI_1", "MASTER"))
    assert commands == [
        *LEFTOVERS,
        ("new_daemon", syncd.MASTER),
        ("new_daemon", syncd.BACKUP),
        ("del_daemon", syncd.MASTER),
        ("del_daemon", syncd.BACKUP),
    ]


def test_the_daemon_is_started_with_the_configured_settings():
    client = GenlRecorder()
    daemon = SyncDaemon("eth1", "VI_1", 7, 1400, 8850, 2, "239.1.2.3")
    asyncio.run(syncd.SyncDaemonControl(client, daemon).start())
    started = [attrs for command, attrs in client.requests if command == "new_daemon"]
    assert started == [(syncd.BACKUP, syncd.DaemonConfig("eth1", 7, 1400, 8850, 2, "239.1.2.3"))]


ENGINE_CONFIG = """
global_defs {{
{globals}
}}
vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {{
        10.0.0.100
    }}
}}
virtual_server 10.0.0.100 80 {{
    lvs_sched rr
    lvs_method DR
    protocol TCP
    real_server 10.0.0.2 80 {{
    }}
}}
"""


def engine_run(*global_lines: str, transitions=()) -> GenlRecorder:
    """An engine started, taken through VRRP `transitions`, stopped; returns its client."""
    config = loads(ENGINE_CONFIG.format(globals="\n".join(global_lines)), "test.conf")
    client = GenlRecorder()
    client.replies["get_config"] = (config_reply(LvsTimeouts(900, 120, 300)),)
    drive(LvsEngine(config, client, FakeClock()), transitions)
    return client


def test_the_engine_without_these_keywords_sends_none_of_these_commands():
    assert engine_run().requests == []


def test_lvs_flush_empties_the_table_before_the_services_go_in():
    client = engine_run(" lvs_flush")
    assert client.requests[0] == ("flush", {})
    assert client.calls[0][0] == "add_service"


def test_lvs_flush_on_stop_flushes_instead_of_deleting_each_service():
    client = engine_run(" lvs_flush_on_stop")
    assert [command for command, _ in client.requests] == ["flush"]
    assert client.kernel == {}


def test_lvs_timeouts_are_set_and_the_kernel_values_restored_at_stop():
    client = engine_run(" lvs_timeouts tcp 60 udp 10")
    assert [(command, attrs) for command, attrs in client.requests if command != "get_config"] == [
        ("set_config", {
            "IPVS_CMD_ATTR_TIMEOUT_TCP": u32(60),
            "IPVS_CMD_ATTR_TIMEOUT_UDP": u32(10),
        }),
        ("set_config", {
            "IPVS_CMD_ATTR_TIMEOUT_TCP": u32(900),
            "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN": u32(120),
            "IPVS_CMD_ATTR_TIMEOUT_UDP": u32(300),
        }),
    ]  # fmt: skip


def test_the_engine_runs_the_daemon_after_the_instance():
    client = engine_run(" lvs_sync_daemon eth1 VI_1", transitions=[("VI_1", "MASTER")])
    assert client.daemon_commands() == [
        *LEFTOVERS,
        ("new_daemon", syncd.BACKUP),
        ("del_daemon", syncd.BACKUP),
        ("new_daemon", syncd.MASTER),
        ("del_daemon", syncd.MASTER),
    ]


def test_a_reload_restarts_the_daemon_only_when_its_settings_change():
    def config(*lines):
        return loads(ENGINE_CONFIG.format(globals="\n".join(lines)), "test.conf")

    client = GenlRecorder()

    async def scenario():
        engine = LvsEngine(config(" lvs_sync_daemon eth1 VI_1"), client, FakeClock())
        await engine.start()
        engine.on_vrrp_state("VI_1", "MASTER")
        await asyncio.sleep(0)
        client.requests.clear()
        await engine.apply_config(config("", " lvs_sync_daemon eth1 VI_1"))  # moved: same
        assert client.daemon_commands() == []
        await engine.apply_config(config(" lvs_sync_daemon eth1 VI_1 port 8849"))
        await engine.stop()

    asyncio.run(scenario())
    assert client.daemon_commands() == [
        ("del_daemon", syncd.MASTER),
        *LEFTOVERS,
        ("new_daemon", syncd.MASTER),
        ("del_daemon", syncd.MASTER),
    ]
