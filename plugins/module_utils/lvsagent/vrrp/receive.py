"""What a received advertisement must pass before the state machine sees it, and the drops.

The rules of RFC 3768/9568 section 7.1 as keepalived applies them, cheapest first: TTL / hop
limit, then the header, length and checksum (`packet.parse`), version, authentication,
interval, multicast or unicast destination, unicast source; only a packet that passed them all
has its addresses turned into objects. Every dropped packet is counted under its reason (the
status' `vrrp_drops`) and logged in keepalived's words, but at most once per reason and
instance per `DROP_LOG_PERIOD`, with the count of the ones held back: a flood never floods
the journal.
"""

from __future__ import annotations

import collections
import hmac
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ..config.model import GlobalDefs, VrrpInstance
from . import packet
from .packet import InvalidPacket, IPAddress

if TYPE_CHECKING:
    from .machine import Clock

log = logging.getLogger("lvsagent.vrrp")

DROP_LOG_PERIOD = 1.0  # seconds between two log lines of one drop reason of one instance


@dataclass
class _Held:
    """One rate-limited key: when it may log again, and what was held back meanwhile."""

    allowed_at: float
    count: int = 0
    last: tuple = ()
    timer: Any = field(default=None, repr=False)


class RateLimitedLog:
    """At most one line per key per period; the lines held back are summed up in one line
    (the last of them, with their count) when the period is over."""

    def __init__(self, clock: Clock, logger: logging.Logger, period: float = DROP_LOG_PERIOD):
        self.clock = clock
        self.logger = logger
        self.period = period
        self._keys: dict[Any, _Held] = {}

    def log(self, key: Any, level: int, message: str, *args: Any, exc_info: bool = False) -> None:
        """`exc_info` adds the traceback to a line written now (a summed-up one has none)."""
        now = self.clock.monotonic()
        held = self._keys.get(key)
        if held is None or (held.timer is None and now >= held.allowed_at):
            self.logger.log(level, message, *args, exc_info=exc_info)
            self._keys[key] = _Held(now + self.period)
            return
        held.count += 1
        held.last = (level, message, args)
        if held.timer is None:
            held.timer = self.clock.call_at(held.allowed_at, lambda: self._report(key))

    def _report(self, key: Any) -> None:
        held = self._keys[key]
        level, message, args = held.last
        if held.count > 1:
            message, args = message + " (%d times since the last report)", (*args, held.count)
        self.logger.log(level, message, *args)
        self._keys[key] = _Held(self.clock.monotonic() + self.period)


class Drops:
    """Dropped packets: `counts` per reason (what the status shows), logged rate-limited."""

    def __init__(self, clock: Clock, counts: Optional[collections.Counter] = None) -> None:
        self.counts = collections.Counter() if counts is None else counts
        self.log = RateLimitedLog(clock, log)

    def drop(
        self, who: str, reason: str, message: str, level: int = logging.INFO, exc_info=False
    ) -> None:
        """Count one drop; `who` (an instance name or an interface) keys the log limit."""
        self.counts[reason] += 1
        self.log.log((who, reason), level, "%s", message, exc_info=exc_info)


class ReceiveRules:
    """One instance's receive rules, computed once from its configuration."""

    def __init__(
        self, config: VrrpInstance, global_defs: GlobalDefs, source: Optional[IPAddress]
    ) -> None:
        self.name = config.name
        self.version = config.version
        self.source = source
        self.auth_type = packet.AUTH_TYPES.get(config.auth_type, packet.AUTH_NONE)
        self.auth_data = packet.auth_data_for(config.auth_pass)
        self.interval = config.advert_int
        self.unicast = bool(config.unicast_peers)
        self.peers: Optional[frozenset] = None
        if self.unicast and (config.check_unicast_src or global_defs.vrrp_check_unicast_src):
            self.peers = frozenset(ipaddress.ip_address(peer) for peer in config.unicast_peers)
        self.vips = sorted(
            vip.address.ip.packed
            for vip in config.virtual_ipaddresses
            if vip.family == config.family
        )

    def check(self, message: bytes, source: IPAddress, destination: IPAddress, ttl: int):
        """The advertisement to hand to the machine; raises `InvalidPacket` to drop it."""
        if not self.unicast and ttl != -1 and ttl != packet.VRRP_TTL:
            # keepalived: 255 is required of multicast adverts only, so that routed unicast
            # peers work
            raise InvalidPacket("ttl", f"invalid TTL/HL. Received {ttl} and expect 255")
        parsed = packet.parse(message, source, destination)
        if parsed.version != self.version:
            raise InvalidPacket(
                "version", f"wrong version. Received {parsed.version} and expect {self.version}"
            )
        if parsed.version == 2:
            self._check_v2(parsed)
        if destination.is_multicast == self.unicast:
            expected, got = ("un", "mult") if self.unicast else ("mult", "un")
            raise InvalidPacket(
                "destination", f"Expected {expected}icast packet but received {got}icast packet"
            )
        if self.peers is not None and source not in self.peers:
            raise InvalidPacket(
                "unicast source", f"unicast source address {source} not a unicast peer"
            )
        return parsed

    def _check_v2(self, parsed: packet.Message) -> None:
        if parsed.auth_type != self.auth_type:
            raise InvalidPacket(
                "auth_type", f"received a {parsed.auth_type} auth, expecting {self.auth_type}!"
            )
        if self.auth_type == packet.AUTH_PASS and not hmac.compare_digest(
            parsed.auth_data, self.auth_data
        ):
            raise InvalidPacket("auth_password", "received an invalid passwd!")
        if parsed.interval != self.interval:
            raise InvalidPacket(
                "interval",
                f"advertisement interval mismatch mine={self.interval:g} sec "
                f"rcv'd={parsed.interval:g} sec",
            )

    def same_addresses(self, parsed: packet.Message) -> bool:
        return sorted(parsed.packed_addresses()) == self.vips
