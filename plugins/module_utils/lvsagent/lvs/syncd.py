"""The kernel's IPVS connection-sync daemon, IPVS timeouts and flush, over generic netlink.

The sync daemon copies the connection table of a master director to its backups (multicast
on one interface), so that established connections survive a failover. keepalived 2.2.7
drives it so (vrrp.c, vrrp_scheduler.c, ipvswrapper.c, check_daemon.c), and so does
`SyncDaemonControl`:
- `lvs_sync_daemon IF INSTANCE`: at start as backup; when INSTANCE becomes MASTER the backup
  daemon stops and a master one starts; when it leaves MASTER the reverse; at stop the
  running one stops.
- `lvs_sync_daemon IF` without an instance: master and backup both, all the time.

Every function taking `client` is a job for the IPVS netlink thread (`IpvsThread.run`):
`client` is an `IpvsClient`, whose socket already speaks the "IPVS" family.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import struct
from dataclasses import dataclass
from typing import Optional

from ..config.model import LvsTimeouts, SyncDaemon
from ..ipvs import IpvsError
from ..netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, genlmsg, nla

log = logging.getLogger("lvsagent.lvs")

# include/uapi/linux/ip_vs.h
IPVS_CMD_NEW_DAEMON = 9
IPVS_CMD_DEL_DAEMON = 10
IPVS_CMD_GET_DAEMON = 11
IPVS_CMD_SET_CONFIG = 12
IPVS_CMD_GET_CONFIG = 13
IPVS_CMD_FLUSH = 17
IPVS_GENL_VERSION = 1
MASTER, BACKUP = "master", "backup"
DAEMON_STATES = {MASTER: 1, BACKUP: 2}  # IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP
DAEMON_ATTRS = (
    "IPVS_DAEMON_ATTR_UNSPEC",
    "IPVS_DAEMON_ATTR_STATE",
    "IPVS_DAEMON_ATTR_MCAST_IFN",
    "IPVS_DAEMON_ATTR_SYNC_ID",
    "IPVS_DAEMON_ATTR_SYNC_MAXLEN",
    "IPVS_DAEMON_ATTR_MCAST_GROUP",
    "IPVS_DAEMON_ATTR_MCAST_GROUP6",
    "IPVS_DAEMON_ATTR_MCAST_PORT",
    "IPVS_DAEMON_ATTR_MCAST_TTL",
)
TIMEOUT_ATTRS = {
    "tcp": "IPVS_CMD_ATTR_TIMEOUT_TCP",
    "tcpfin": "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN",
    "udp": "IPVS_CMD_ATTR_TIMEOUT_UDP",
}
FOLLOWED_STATES = ("MASTER", "BACKUP", "FAULT")
REQUEST = NLM_F_REQUEST | NLM_F_ACK
DUMP = NLM_F_REQUEST | NLM_F_DUMP


class IpvsConfigMessage(genlmsg):
    """The daemon and config commands, which pyroute2's ipvsmsg carries only as hex."""

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

    class daemon(nla):  # noqa: N801 - pyroute2 names an NLA type by its class
        prefix = "IPVS_DAEMON_ATTR_"
        nla_map = tuple(
            zip(
                DAEMON_ATTRS,
                ("none", "uint32", "asciiz", "uint32", "uint16", "ip4addr", "ip6addr", "uint16",
                 "uint8"),
            )
        )  # fmt: skip


@dataclass(frozen=True)
class DaemonConfig:
    """What the kernel's daemon is started with; None leaves the kernel's default."""

    interface: str
    sync_id: int = 0
    max_len: Optional[int] = None
    port: Optional[int] = None
    ttl: Optional[int] = None
    group: Optional[str] = None

    @classmethod
    def of(cls, daemon: SyncDaemon) -> DaemonConfig:
        return cls(
            daemon.interface,
            daemon.sync_id or 0,
            daemon.max_len,
            daemon.port,
            daemon.ttl,
            daemon.group,
        )


def _request(client, action: str, command: int, attrs=(), flags: int = REQUEST) -> tuple:
    message = IpvsConfigMessage()
    message["cmd"] = command
    message["version"] = IPVS_GENL_VERSION
    message["attrs"] = list(attrs)
    return client.genl_request(action, message, flags)


def start_daemon(client, state: str, config: DaemonConfig) -> None:
    attrs = [
        ("IPVS_DAEMON_ATTR_STATE", DAEMON_STATES[state]),
        ("IPVS_DAEMON_ATTR_MCAST_IFN", config.interface),
        ("IPVS_DAEMON_ATTR_SYNC_ID", config.sync_id),
    ]
    optional = (
        ("IPVS_DAEMON_ATTR_SYNC_MAXLEN", config.max_len),
        ("IPVS_DAEMON_ATTR_MCAST_PORT", config.port),
        ("IPVS_DAEMON_ATTR_MCAST_TTL", config.ttl),
    )
    attrs += [(name, value) for name, value in optional if value is not None]
    if config.group is not None:
        version = ipaddress.ip_address(config.group).version
        group = "IPVS_DAEMON_ATTR_MCAST_GROUP" + ("6" if version == 6 else "")
        attrs.append((group, config.group))
    action = f"start the IPVS sync daemon as {state} on {config.interface}"
    _request(client, action, IPVS_CMD_NEW_DAEMON, [("IPVS_CMD_ATTR_DAEMON", {"attrs": attrs})])


def stop_daemon(client, state: str) -> bool:
    """False when no daemon ran in that state."""
    daemon = {"attrs": [("IPVS_DAEMON_ATTR_STATE", DAEMON_STATES[state])]}
    try:
        _request(
            client,
            f"stop the IPVS {state} sync daemon",
            IPVS_CMD_DEL_DAEMON,
            [("IPVS_CMD_ATTR_DAEMON", daemon)],
        )
    except IpvsError as exc:
        if exc.errno == errno.ESRCH:
            return False
        raise
    return True


def running_daemons(client) -> dict:
    """{state: DaemonConfig} of the daemons the kernel runs (what `ipvsadm -L --daemon` shows)."""
    found = {}
    for message in _request(client, "list the IPVS sync daemons", IPVS_CMD_GET_DAEMON, (), DUMP):
        raw = message.get_attr("IPVS_CMD_ATTR_DAEMON")
        if raw:
            state, config = _daemon_from(_attributes(_raw_bytes(raw)))
            found[state] = config
    return found


def _raw_bytes(value) -> bytes:
    """pyroute2's ipvsmsg decodes the daemon and timeout attributes as 'aa:bb:..' text."""
    return value if isinstance(value, bytes) else bytes.fromhex(value.replace(":", ""))


def _attributes(data: bytes) -> dict:
    """Netlink attributes (length, type, payload, padded to 4) as {type: payload}."""
    found, offset = {}, 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def _daemon_from(attrs: dict) -> tuple:
    def number(name: str, fmt: str) -> Optional[int]:
        payload = attrs.get(DAEMON_ATTRS.index(name))
        return struct.unpack(fmt, payload[: struct.calcsize(fmt)])[0] if payload else None

    code = number("IPVS_DAEMON_ATTR_STATE", "=I")
    state = next(name for name, value in DAEMON_STATES.items() if value == code)
    interface = attrs.get(DAEMON_ATTRS.index("IPVS_DAEMON_ATTR_MCAST_IFN"), b"")
    group = None
    for name in ("IPVS_DAEMON_ATTR_MCAST_GROUP", "IPVS_DAEMON_ATTR_MCAST_GROUP6"):
        payload = attrs.get(DAEMON_ATTRS.index(name))
        if payload:
            group = ipaddress.ip_address(payload).compressed
    config = DaemonConfig(
        interface.split(b"\0", 1)[0].decode(errors="replace"),
        number("IPVS_DAEMON_ATTR_SYNC_ID", "=I") or 0,
        number("IPVS_DAEMON_ATTR_SYNC_MAXLEN", "=H"),
        number("IPVS_DAEMON_ATTR_MCAST_PORT", "=H"),
        number("IPVS_DAEMON_ATTR_MCAST_TTL", "=B"),
        group,
    )
    return state, config


def read_timeouts(client) -> LvsTimeouts:
    """The kernel's tcp, tcpfin and udp timeouts, in seconds."""
    replies = _request(client, "read the IPVS timeouts", IPVS_CMD_GET_CONFIG)
    values = {}
    for message in replies:
        for name, attr in TIMEOUT_ATTRS.items():
            raw = message.get_attr(attr)
            if raw is not None:
                values[name] = struct.unpack("=I", _raw_bytes(raw)[:4])[0]
    return LvsTimeouts(**values)


def set_timeouts(client, timeouts: LvsTimeouts) -> None:
    """Sets the non-zero ones; the kernel leaves a timeout it is not given as it was."""
    attrs = [(TIMEOUT_ATTRS[name], getattr(timeouts, name)) for name in TIMEOUT_ATTRS]
    attrs = [(name, seconds) for name, seconds in attrs if seconds]
    if attrs:
        _request(client, "set the IPVS timeouts", IPVS_CMD_SET_CONFIG, attrs)


def flush(client) -> None:
    """Empties the whole IPVS table (lvs_flush, lvs_flush_on_stop)."""
    _request(client, "flush the IPVS table", IPVS_CMD_FLUSH)


def _switch(client, stop: tuple, start: tuple, config: DaemonConfig) -> None:
    for state in stop:
        stop_daemon(client, state)
    for state in start:
        start_daemon(client, state, config)


class SyncDaemonControl:
    """Runs the sync daemon as keepalived does, following one VRRP instance's state.

    `ipvs` offers `async run(job, *args)` (IpvsThread). Transitions are applied in the
    background one at a time, each to the latest state. Failures are logged, never raised:
    the sync daemon adds to load balancing, it is no condition for it.
    """

    def __init__(self, ipvs, daemon: SyncDaemon, instance_state: Optional[str] = None):
        self._ipvs = ipvs
        self.daemon = daemon
        self.config = DaemonConfig.of(daemon)
        self._state = instance_state
        self._running: tuple = ()
        self._stopped = False
        self._lock = asyncio.Lock()
        self._pending: set = set()

    def wanted(self) -> tuple:
        if self.daemon.instance is None:
            return (MASTER, BACKUP)
        return (MASTER,) if self._state == "MASTER" else (BACKUP,)

    async def start(self) -> None:
        """Stops whatever a killed run left (its settings may differ), then starts."""
        async with self._lock:
            await self._apply((MASTER, BACKUP), self.wanted())

    def on_vrrp_state(self, instance_name: str, state: str) -> None:
        """Leaving MASTER (for BACKUP or FAULT) makes a backup; INIT at stop changes nothing,
        as keepalived stops the daemon of the state the instance was in."""
        if instance_name != self.daemon.instance or state not in FOLLOWED_STATES:
            return
        self._state = state
        task = asyncio.ensure_future(self._converge())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def stop(self) -> None:
        await asyncio.gather(*self._pending, return_exceptions=True)
        async with self._lock:
            self._stopped = True
            await self._apply(self._running, ())

    async def _converge(self) -> None:
        async with self._lock:
            if not self._stopped and self.wanted() != self._running:
                await self._apply(self._running, self.wanted())

    async def _apply(self, stop: tuple, start: tuple) -> None:
        try:
            await self._ipvs.run(_switch, stop, start, self.config)
        except IpvsError as exc:
            log.error("%s", exc)
        self._running = start
