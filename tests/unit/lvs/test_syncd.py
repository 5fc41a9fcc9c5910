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
from lvsagent.ipvs import IpvsError, codec
from lvsagent.lvs import syncd
from lvsagent.lvs.engine import LvsEngine

pyroute2_genl = pytest.importorskip("pyroute2.netlink")

COMMANDS = {
    syncd.IPVS_CMD_NEW_DAEMON: "new_daemon",
    syncd.IPVS_CMD_DEL_DAEMON: "del_daemon",
    syncd.IPVS_CMD_GET_DAEMON: "get_daemon",
    syncd.IPVS_CMD_SET_CONFIG: "set_config",
    syncd.IPVS_CMD_GET_CONFIG: "get_config",
    syncd.IPVS_CMD_FLUSH: "flush",
}
TIMEOUT_NAMES = {
    "tcp": "IPVS_CMD_ATTR_TIMEOUT_TCP",
    "tcpfin": "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN",
    "udp": "IPVS_CMD_ATTR_TIMEOUT_UDP",
}


class ConfigMessage(pyroute2_genl.genlmsg):
    """The daemon and config commands laid out by pyroute2: an encoder and decoder that is not
    ours, to hold lvs/syncd.py's bytes against."""

    prefix = "IPVS_CMD_ATTR_"
    nla_map = (
        ("IPVS_CMD_ATTR_UNSPEC", "none"),
        ("IPVS_CMD_ATTR_SERVICE", "none"),
        ("IPVS_CMD_ATTR_DEST", "none"),
        ("IPVS_CMD_ATTR_DAEMON", "daemon"),
        ("IPVS_CMD_ATTR_TIMEOUT_TCP", "uint32"),
        ("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", "uint32"),
        ("IPVS_CMD_ATTR_TIMEOUT_UDP", "uint32"),
    )

    class daemon(pyroute2_genl.nla):  # noqa: N801 - pyroute2 names an NLA type by its class
        prefix = "IPVS_DAEMON_ATTR_"
        nla_map = (
            ("IPVS_DAEMON_ATTR_UNSPEC", "none"),
            ("IPVS_DAEMON_ATTR_STATE", "uint32"),
            ("IPVS_DAEMON_ATTR_MCAST_IFN", "asciiz"),
            ("IPVS_DAEMON_ATTR_SYNC_ID", "uint32"),
            ("IPVS_DAEMON_ATTR_SYNC_MAXLEN", "uint16"),
            ("IPVS_DAEMON_ATTR_MCAST_GROUP", "ip4addr"),
            ("IPVS_DAEMON_ATTR_MCAST_GROUP6", "ip6addr"),
            ("IPVS_DAEMON_ATTR_MCAST_PORT", "uint16"),
            ("IPVS_DAEMON_ATTR_MCAST_TTL", "uint8"),
        )


def read_by_pyroute2(command: int, payload: bytes) -> dict:
    """Our request's attributes as pyroute2 decodes them: {name: value}."""
    message = ConfigMessage(codec.message(0x20, 1, 1, command, payload))
    message.decode()
    found = {}
    for name, value in message["attrs"]:
        if name == "IPVS_CMD_ATTR_DAEMON":
            value = dict(value["attrs"])
        found[name] = value
    return found


def written_by_pyroute2(command: int, attrs: list) -> bytes:
    """A kernel reply laid out by pyroute2: its attribute bytes, as IpvsClient.command gives."""
    message = ConfigMessage()
    message["cmd"] = command
    message["version"] = 1
    message["attrs"] = attrs
    message.encode()
    return bytes(message.data[codec.NLMSG_HEADER.size + codec.GENL_HEADER.size :])


class CommandRecorder(FakeIpvs):
    """FakeIpvs plus IpvsClient.command: records (command, attributes as pyroute2 reads them)
    and answers from `replies`."""

    def __init__(self):
        super().__init__()
        self.requests: list = []
        self.replies: dict = {}  # command name -> list of reply attribute bytes
        self.errors: dict = {}  # command name -> errno

    def command(self, action, command, payload=b"", *, dump=False):
        name = COMMANDS[command]
        self.requests.append((name, read_by_pyroute2(command, payload)))
        if name in self.errors:
            raise IpvsError(f"cannot {action}", self.errors[name])
        return self.replies.get(name, [])

    def daemon_commands(self) -> list:
        """[(command, state)] of the daemon requests."""
        states = {code: name for name, code in syncd.DAEMON_STATES.items()}
        return [
            (command, states[attrs["IPVS_CMD_ATTR_DAEMON"]["IPVS_DAEMON_ATTR_STATE"]])
            for command, attrs in self.requests
            if "daemon" in command
        ]


DAEMON_FIELDS = (
    ("IPVS_DAEMON_ATTR_MCAST_IFN", "interface"),
    ("IPVS_DAEMON_ATTR_SYNC_ID", "sync_id"),
    ("IPVS_DAEMON_ATTR_SYNC_MAXLEN", "max_len"),
    ("IPVS_DAEMON_ATTR_MCAST_PORT", "port"),
    ("IPVS_DAEMON_ATTR_MCAST_TTL", "ttl"),
)


def daemon_attrs(state: str, config: syncd.DaemonConfig) -> dict:
    found = {"IPVS_DAEMON_ATTR_STATE": syncd.DAEMON_STATES[state]}
    found.update(
        (name, getattr(config, field))
        for name, field in DAEMON_FIELDS
        if getattr(config, field) is not None
    )
    if config.group is not None:
        six = ":" in config.group
        found["IPVS_DAEMON_ATTR_MCAST_GROUP" + ("6" if six else "")] = config.group
    return found


def test_a_daemon_request_carries_every_setting():
    client = CommandRecorder()
    config = syncd.DaemonConfig("eth1", 7, 1400, 8850, 2, "239.1.2.3")
    syncd.start_daemon(client, syncd.MASTER, config)
    expected = {"IPVS_CMD_ATTR_DAEMON": daemon_attrs(syncd.MASTER, config)}
    assert client.requests == [("new_daemon", expected)]


def test_an_ipv6_group_goes_in_its_own_attribute():
    client = CommandRecorder()
    config = syncd.DaemonConfig("eth1", 3, group="ff05::81")
    syncd.start_daemon(client, syncd.BACKUP, config)
    expected = {"IPVS_CMD_ATTR_DAEMON": daemon_attrs(syncd.BACKUP, config)}
    assert client.requests == [("new_daemon", expected)]


def daemon_reply(state: str, config: syncd.DaemonConfig) -> bytes:
    """A GET_DAEMON answer as the kernel sends it."""
    attrs = list(daemon_attrs(state, config).items())
    return written_by_pyroute2(
        syncd.IPVS_CMD_GET_DAEMON, [("IPVS_CMD_ATTR_DAEMON", {"attrs": attrs})]
    )


def test_running_daemons_reads_the_kernel_answer():
    client = CommandRecorder()
    master = syncd.DaemonConfig("eth0", 51, 1472, 8848, 1, "224.0.0.81")
    backup = syncd.DaemonConfig("eth1", 9, 1472, 8848, 1, "224.0.0.81")
    client.replies["get_daemon"] = [
        daemon_reply(syncd.MASTER, master),
        daemon_reply(syncd.BACKUP, backup),
    ]
    assert syncd.running_daemons(client) == {syncd.MASTER: master, syncd.BACKUP: backup}


def test_stopping_a_daemon_that_does_not_run_is_not_an_error():
    client = CommandRecorder()
    assert syncd.stop_daemon(client, syncd.MASTER)
    assert client.requests == [
        ("del_daemon", {"IPVS_CMD_ATTR_DAEMON": {"IPVS_DAEMON_ATTR_STATE": 1}})
    ]
    client.errors["del_daemon"] = errno.ESRCH
    assert not syncd.stop_daemon(client, syncd.MASTER)
    client.errors["del_daemon"] = errno.EPERM
    with pytest.raises(IpvsError):
        syncd.stop_daemon(client, syncd.MASTER)


def config_reply(timeouts: LvsTimeouts) -> bytes:
    """A GET_CONFIG answer as the kernel sends it."""
    attrs = [(TIMEOUT_NAMES[name], getattr(timeouts, name)) for name in TIMEOUT_NAMES]
    return written_by_pyroute2(syncd.IPVS_CMD_GET_CONFIG, attrs)


def test_timeouts_set_only_what_is_given_and_read_back():
    client = CommandRecorder()
    syncd.set_timeouts(client, LvsTimeouts(tcp=900, udp=5))
    syncd.set_timeouts(client, LvsTimeouts())
    assert client.requests == [
        ("set_config", {"IPVS_CMD_ATTR_TIMEOUT_TCP": 900, "IPVS_CMD_ATTR_TIMEOUT_UDP": 5})
    ]
    client.replies["get_config"] = [config_reply(LvsTimeouts(900, 120, 300))]
    assert syncd.read_timeouts(client) == LvsTimeouts(900, 120, 300)


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
    client = CommandRecorder()
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
    client = CommandRecorder()
    daemon = SyncDaemon("eth1", "VI_1", 7, 1400, 8850, 2, "239.1.2.3")
    asyncio.run(syncd.SyncDaemonControl(client, daemon).start())
    started = [attrs for command, attrs in client.requests if command == "new_daemon"]
    config = syncd.DaemonConfig("eth1", 7, 1400, 8850, 2, "239.1.2.3")
    assert started == [{"IPVS_CMD_ATTR_DAEMON": daemon_attrs(syncd.BACKUP, config)}]


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


def engine_run(*global_lines: str, transitions=()) -> CommandRecorder:
    """An engine started, taken through VRRP `transitions`, stopped; returns its client."""
    config = loads(ENGINE_CONFIG.format(globals="\n".join(global_lines)), "test.conf")
    client = CommandRecorder()
    client.replies["get_config"] = [config_reply(LvsTimeouts(900, 120, 300))]
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
    assert [request[0] for request in client.requests] == ["flush"]
    assert client.kernel == {}


def test_lvs_timeouts_are_set_and_the_kernel_values_restored_at_stop():
    client = engine_run(" lvs_timeouts tcp 60 udp 10")
    assert [(command, attrs) for command, attrs in client.requests if command != "get_config"] == [
        ("set_config", {
            "IPVS_CMD_ATTR_TIMEOUT_TCP": 60,
            "IPVS_CMD_ATTR_TIMEOUT_UDP": 10,
        }),
        ("set_config", {
            "IPVS_CMD_ATTR_TIMEOUT_TCP": 900,
            "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN": 120,
            "IPVS_CMD_ATTR_TIMEOUT_UDP": 300,
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

    client = CommandRecorder()

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
