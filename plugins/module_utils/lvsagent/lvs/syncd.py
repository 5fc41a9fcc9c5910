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
from ..ipvs.codec import attr, attrs

log = logging.getLogger("lvsagent.lvs")

# include/uapi/linux/ip_vs.h
IPVS_CMD_NEW_DAEMON = 9
IPVS_CMD_DEL_DAEMON = 10
IPVS_CMD_GET_DAEMON = 11
IPVS_CMD_SET_CONFIG = 12
IPVS_CMD_GET_CONFIG = 13
IPVS_CMD_FLUSH = 17
CMD_ATTR_DAEMON = 3
TIMEOUT_ATTRS = {"tcp": 4, "tcpfin": 5, "udp": 6}  # IPVS_CMD_ATTR_TIMEOUT_TCP, _TCP_FIN, _UDP
DAEMON_STATE, DAEMON_MCAST_IFN, DAEMON_SYNC_ID, DAEMON_SYNC_MAXLEN = 1, 2, 3, 4
DAEMON_MCAST_GROUP, DAEMON_MCAST_GROUP6, DAEMON_MCAST_PORT, DAEMON_MCAST_TTL = 5, 6, 7, 8
MASTER, BACKUP = "master", "backup"
DAEMON_STATES = {MASTER: 1, BACKUP: 2}  # IP_VS_STATE_MASTER, IP_VS_STATE_BACKUP
FOLLOWED_STATES = ("MASTER", "BACKUP", "FAULT")
_U8, _U16, _U32 = struct.Struct("=B"), struct.Struct("=H"), struct.Struct("=I")


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


def encode_daemon(state: str, config: Optional[DaemonConfig] = None) -> bytes:
    """IPVS_CMD_ATTR_DAEMON: the state alone (to stop one), or with every setting (to start)."""
    parts = [attr(DAEMON_STATE, _U32.pack(DAEMON_STATES[state]))]
    if config is not None:
        parts.append(attr(DAEMON_MCAST_IFN, config.interface.encode() + b"\0"))
        parts.append(attr(DAEMON_SYNC_ID, _U32.pack(config.sync_id)))
        optional = (
            (DAEMON_SYNC_MAXLEN, _U16, config.max_len),
            (DAEMON_MCAST_PORT, _U16, config.port),
            (DAEMON_MCAST_TTL, _U8, config.ttl),
        )
        parts += [
            attr(kind, packer.pack(value)) for kind, packer, value in optional if value is not None
        ]
        if config.group is not None:
            group = ipaddress.ip_address(config.group)
            kind = DAEMON_MCAST_GROUP6 if group.version == 6 else DAEMON_MCAST_GROUP
            parts.append(attr(kind, group.packed))
    return attr(CMD_ATTR_DAEMON, b"".join(parts))


def decode_daemon(payload: bytes) -> tuple:
    """(state, DaemonConfig) of one IPVS_CMD_ATTR_DAEMON's contents."""
    found = _payloads(payload)

    def number(kind: int, packer: struct.Struct) -> Optional[int]:
        raw = found.get(kind)
        return packer.unpack(raw[: packer.size])[0] if raw and len(raw) >= packer.size else None

    code = number(DAEMON_STATE, _U32)
    state = next(name for name, value in DAEMON_STATES.items() if value == code)
    group = None
    for kind in (DAEMON_MCAST_GROUP, DAEMON_MCAST_GROUP6):
        if found.get(kind):
            group = ipaddress.ip_address(found[kind]).compressed
    config = DaemonConfig(
        found.get(DAEMON_MCAST_IFN, b"").split(b"\0", 1)[0].decode(errors="replace"),
        number(DAEMON_SYNC_ID, _U32) or 0,
        number(DAEMON_SYNC_MAXLEN, _U16),
        number(DAEMON_MCAST_PORT, _U16),
        number(DAEMON_MCAST_TTL, _U8),
        group,
    )
    return state, config


def _payloads(data: bytes) -> dict:
    """{attribute type: its bytes} of a run of netlink attributes."""
    return {kind: data[start:end] for kind, (start, end) in attrs(data, 0, len(data)).items()}


def start_daemon(client, state: str, config: DaemonConfig) -> None:
    action = f"start the IPVS sync daemon as {state} on {config.interface}"
    client.command(action, IPVS_CMD_NEW_DAEMON, encode_daemon(state, config))


def stop_daemon(client, state: str) -> bool:
    """False when no daemon ran in that state."""
    try:
        client.command(
            f"stop the IPVS {state} sync daemon", IPVS_CMD_DEL_DAEMON, encode_daemon(state)
        )
    except IpvsError as exc:
        if exc.errno == errno.ESRCH:
            return False
        raise
    return True


def running_daemons(client) -> dict:
    """{state: DaemonConfig} of the daemons the kernel runs (what `ipvsadm -L --daemon` shows)."""
    found = {}
    for reply in client.command("list the IPVS sync daemons", IPVS_CMD_GET_DAEMON, dump=True):
        daemon = _payloads(reply).get(CMD_ATTR_DAEMON)
        if daemon:
            state, config = decode_daemon(daemon)
            found[state] = config
    return found


def read_timeouts(client) -> LvsTimeouts:
    """The kernel's tcp, tcpfin and udp timeouts, in seconds."""
    values = {}
    for reply in client.command("read the IPVS timeouts", IPVS_CMD_GET_CONFIG):
        found = _payloads(reply)
        for name, kind in TIMEOUT_ATTRS.items():
            if len(found.get(kind, b"")) >= _U32.size:
                values[name] = _U32.unpack(found[kind][: _U32.size])[0]
    return LvsTimeouts(**values)


def set_timeouts(client, timeouts: LvsTimeouts) -> None:
    """Sets the non-zero ones; the kernel leaves a timeout it is not given as it was."""
    given = [(kind, getattr(timeouts, name)) for name, kind in TIMEOUT_ATTRS.items()]
    payload = b"".join(attr(kind, _U32.pack(seconds)) for kind, seconds in given if seconds)
    if payload:
        client.command("set the IPVS timeouts", IPVS_CMD_SET_CONFIG, payload)


def flush(client) -> None:
    """Empties the whole IPVS table (lvs_flush, lvs_flush_on_stop)."""
    client.command("flush the IPVS table", IPVS_CMD_FLUSH)


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
