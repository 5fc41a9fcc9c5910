"""global_defs keywords for the IPVS side: lvs_sync_daemon, lvs_timeouts, lvs_flush,
lvs_flush_on_stop, and vrrp_instance's old lvs_sync_daemon_interface.

Read as keepalived 2.2.7's global_parser.c and vrrp_parser.c read them: a bad option is
reported in keepalived's words and skipped, the rest of the line still counts.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Callable, Optional

from .errors import Invalid
from .model import Config, GlobalDefs, Location, SyncDaemon, VrrpInstance

if TYPE_CHECKING:
    from .lexer import Node
    from .values import Reader

IFNAME_MAX = 15  # IP_VS_IFNAME_MAXLEN less the terminating NUL
LVS_MAX_TIMEOUT = 86400 * 31  # keepalived's limit for lvs_timeouts, in seconds
SYNC_MAXLEN_MAX = 65535 - 20 - 8  # a UDP payload after the IPv4 and UDP headers
TIMEOUT_NAMES = ("tcp", "tcpfin", "udp")
FLUSH_ON_STOP = {None: "full", "VS": "VS"}


def _where(node: Node) -> Location:
    return Location(node.file, node.line)


def _unsigned(low: int, high: int) -> Callable[[str], Optional[int]]:
    """keepalived's read_unsigned: a decimal integer within [low, high], else None."""

    def read(raw: str) -> Optional[int]:
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw, 10) <= high:
            return None
        return int(raw, 10)

    return read


def _multicast(raw: str) -> Optional[str]:
    try:
        return ipaddress.ip_address(raw).compressed
    except ValueError:
        return None


# lvs_sync_daemon's options that take a value: attribute, reader, messages (no value, invalid).
SYNC_OPTIONS = {
    "id": (
        "sync_id",
        _unsigned(0, 255),
        "No value specified for lvs_sync_daemon id, defaulting to vrid",
        "Invalid syncid ({value}) - defaulting to vrid",
    ),
    "maxlen": (
        "max_len",
        _unsigned(1, SYNC_MAXLEN_MAX),
        "No value specified for lvs_sync_daemon maxlen - ignoring",
        "Invalid lvs_sync_daemon maxlen ({value}) - ignoring",
    ),
    "port": (
        "port",
        _unsigned(1, 65535),
        "No value specified for lvs_sync_daemon port - ignoring",
        "Invalid lvs_sync_daemon port ({value}) - ignoring",
    ),
    "ttl": (
        "ttl",
        _unsigned(1, 255),
        "No value specified for lvs_sync_daemon ttl - ignoring",
        "Invalid lvs_sync_daemon ttl ({value}) - ignoring",
    ),
    "group": (
        "group",
        _multicast,
        "No value specified for lvs_sync_daemon group - ignoring",
        "Invalid lvs_sync_daemon group ({value}) - ignoring",
    ),
}


class LvsGlobals:
    """The handlers, reading with the parser's reader; `config` is the one being built."""

    def __init__(self, read: Reader, config: Config):
        self.read = read
        self.config = config

    def global_handlers(self) -> dict:
        return {
            "lvs_sync_daemon": self.lvs_sync_daemon,
            "lvs_timeouts": self.lvs_timeouts,
            "lvs_flush": self.lvs_flush,
            "lvs_flush_on_stop": self.lvs_flush_on_stop,
            "lvs_flush_onstop": self.lvs_flush_on_stop,  # keepalived's spelling before 2.1.5
        }

    def words(self, node: Node) -> list[str]:
        if node.is_block:
            self.read.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        return node.args

    def lvs_sync_daemon(self, node: Node, defs: GlobalDefs) -> None:
        """lvs_sync_daemon INTERFACE [[inst] INSTANCE] [id ID] [maxlen LEN] [port PORT]
        [ttl TTL] [group ADDRESS]; keepalived 1.x's `INTERFACE INSTANCE ID` still reads."""
        warn = self.read.warning
        words = self.words(node)
        known = defs.lvs_sync_daemon
        if known is not None:
            warn(
                node,
                f"lvs_sync_daemon has already been specified as {known.interface} "
                f"{known.instance or ''} - ignoring",
            )
            return
        if not words:
            warn(node, "lvs_sync_daemon requires interface")
            return
        if len(words[0].encode()) > IFNAME_MAX:  # strlen, as keepalived
            warn(node, f"lvs_sync_daemon interface name '{words[0]}' too long - ignoring")
            return
        daemon = SyncDaemon(words[0], location=_where(node))
        position = 1  # words[position] is keepalived's strvec slot position + 1
        while position < len(words):
            option = words[position]
            value = words[position + 1] if position + 1 < len(words) else None
            if option == "inst":
                if value is None:
                    self.read.error(node, "lvs_sync_daemon inst: missing instance name")
                    raise Invalid
                if daemon.instance is not None:
                    warn(
                        node,
                        "lvs_sync_daemon vrrp instance has already been specified as "
                        f"{daemon.instance} - ignoring",
                    )
                else:
                    daemon.instance = value
                position += 2
            elif option in SYNC_OPTIONS:
                attribute, read, missing, invalid = SYNC_OPTIONS[option]
                if value is None:
                    warn(node, missing)
                    position += 1
                    continue
                parsed = read(value)
                if parsed is None:
                    warn(node, invalid.format(value=value))
                elif option == "group" and not ipaddress.ip_address(parsed).is_multicast:
                    warn(node, f"lvs_sync_daemon group address {value} is not multicast - ignoring")
                else:
                    setattr(daemon, attribute, parsed)
                position += 2
            elif position == 1:
                daemon.instance = option
                position += 1
            elif position == 2:
                sync_id = _unsigned(0, 255)(option)
                if sync_id is None:
                    warn(node, f"Invalid syncid ({option}) - defaulting to vrid")
                else:
                    warn(node, 'Please use keyword "id" before lvs_sync_daemon SYNCID')
                    daemon.sync_id = sync_id
                position += 1
            else:
                warn(node, f"Unknown option {option} specified for lvs_sync_daemon")
                position += 1
        defs.lvs_sync_daemon = daemon

    def lvs_sync_daemon_interface(self, node: Node, instance: VrrpInstance) -> None:
        """vrrp_instance's keepalived 1.2 spelling: the daemon follows this instance, and its
        sync id is 0 (keepalived takes the instance's VRID only for lvs_sync_daemon)."""
        name = instance.name
        self.read.warning(
            node,
            f"({name}) Specifying lvs_sync_daemon_interface against a vrrp is deprecated. "
            "Please use global lvs_sync_daemon",
        )
        interface = self.read.value(node)
        defs = self.config.global_defs
        if defs.lvs_sync_daemon is not None:
            self.read.warning(
                node,
                f"({name}) lvs_sync_daemon_interface has already been specified as "
                f"{defs.lvs_sync_daemon.interface} - ignoring",
            )
            return
        defs.lvs_sync_daemon = SyncDaemon(interface, name, 0, location=_where(node))

    def lvs_timeouts(self, node: Node, defs: GlobalDefs) -> None:
        """lvs_timeouts [tcp SECS] [tcpfin SECS] [udp SECS]."""
        warn = self.read.warning
        words = self.words(node)
        if len(words) < 2:
            warn(node, "lvs_timeouts requires at least one option")
            return
        read = _unsigned(0, LVS_MAX_TIMEOUT)
        position = 0
        while position < len(words):
            option = words[position]
            if option not in TIMEOUT_NAMES:
                warn(node, f"Unknown option {option} specified for lvs_timeouts")
                position += 1
                continue
            if position + 1 == len(words):
                warn(node, f"No value specified for lvs_timeout {option} - ignoring")
                break
            seconds = read(words[position + 1])
            if seconds is None:
                warn(node, f"Invalid lvs_timeout {option} ({words[position + 1]}) - ignoring")
            else:
                setattr(defs.lvs_timeouts, option, seconds)
            position += 2

    def lvs_flush(self, node: Node, defs: GlobalDefs) -> None:
        self.words(node)  # keepalived reads nothing after the keyword
        defs.lvs_flush = True

    def lvs_flush_on_stop(self, node: Node, defs: GlobalDefs) -> None:
        """lvs_flush_on_stop [VS]: flush the whole table at stop, or delete each virtual
        server without deleting its real servers first (the same end state here)."""
        words = self.words(node)
        kind = words[0] if words else None
        if kind not in FLUSH_ON_STOP:
            self.read.warning(node, f"Unknown lvs_flush_on_stop type {kind}")
            return
        defs.lvs_flush_on_stop = FLUSH_ON_STOP[kind]
