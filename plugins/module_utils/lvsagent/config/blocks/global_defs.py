"""global_defs: the settings of the whole daemon (the IPVS ones are in `lvs_globals`)."""

from __future__ import annotations

import ipaddress
import re
from typing import Callable

from ..errors import Invalid
from ..lexer import Node
from ..lvs_globals import LvsGlobals
from ..model import (
    DATA_PLANES,
    DEFAULT_NFTABLES_TABLE,
    FIFO_PREFIXES,
    Config,
    GlobalDefs,
    MetricsListen,
)
from ..redact import excerpt
from ..values import (
    GARP_DELAY_MAX,
    INT32_MAX,
    TIMER_MIN,
    UINT32_MAX,
    UINT_TIMER_MAX,
    Handler,
    Ignored,
    Reader,
    decimal,
    location,
    whole,
)
from . import ParseState

NFT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,62}")  # an nft identifier


class GlobalDefsBlock:
    """global_defs, read into `state.config.global_defs`."""

    def __init__(self, read: Reader, state: ParseState):
        self.read = read
        self.state = state

    def top_level(self) -> dict[str, Handler]:
        return {"global_defs": self.global_defs}

    def tables(self) -> dict[str, dict[str, Handler]]:
        return {"global_defs": self.global_defs_table()}

    def global_defs(self, node: Node, config: Config) -> None:
        self.read.require_block(node)
        config.global_defs.location = location(node)
        self.read.walk(node, "global_defs", config.global_defs)

    def global_defs_table(self) -> dict[str, Handler]:
        return {
            "router_id": self.read.scalar("router_id", self.read.text),
            "vrrp_version": self.read.lenient(
                "vrrp_version", whole(2, 3), "VRRP Error: Version must be either 2 or 3"
            ),
            "vrrp_garp_master_delay": self.read.lenient(
                "vrrp_garp_master_delay",
                whole(0, GARP_DELAY_MAX),
                "vrrp_garp_master_delay '{value}' invalid - ignoring",
            ),
            "vrrp_garp_master_repeat": self.read.repeat_count(
                "vrrp_garp_master_repeat", "vrrp_garp_master_repeat"
            ),
            "vrrp_garp_master_refresh": self.read.lenient(
                "vrrp_garp_master_refresh",
                whole(0, UINT32_MAX),
                "Invalid vrrp_garp_master_refresh '{value}' - ignoring",
            ),
            "vrrp_garp_master_refresh_repeat": self.read.repeat_count(
                "vrrp_garp_master_refresh_repeat", "vrrp_garp_master_refresh_repeat"
            ),
            "vrrp_garp_interval": self.read.lenient(
                "vrrp_garp_interval",
                decimal(TIMER_MIN, UINT_TIMER_MAX),
                "vrrp_garp_interval '{value}' is invalid",
            ),
            "vrrp_gna_interval": self.read.lenient(
                "vrrp_gna_interval",
                decimal(TIMER_MIN, UINT_TIMER_MAX),
                "vrrp_gna_interval '{value}' is invalid",
            ),
            "vrrp_startup_delay": self.read.lenient(
                "vrrp_startup_delay",
                decimal(0.001, UINT_TIMER_MAX),
                "vrrp_startup_delay '{value}' is invalid",
            ),
            "vrrp_mcast_group4": self.read.scalar("vrrp_mcast_group4", self.multicast_group(4)),
            "vrrp_mcast_group6": self.read.scalar("vrrp_mcast_group6", self.multicast_group(6)),
            "script_user": self.read.scalar("script_user", self.read.script_user),
            "enable_script_security": self.read.scalar(
                "enable_script_security", self.read.bare_flag
            ),
            "set_supplementary_groups": self.read.scalar(
                "set_supplementary_groups", self.read.bare_flag
            ),
            "vrrp_strict": self.read.scalar("vrrp_strict", self.read.bare_flag),
            "nftables": self.read.scalar("nftables", self.nftables_table),
            "nftables_priority": self.read.ranged("nftables_priority", -INT32_MAX - 1, INT32_MAX),
            "nftables_counters": self.read.scalar("nftables_counters", self.read.bare_flag),
            "nftables_ifindex": self.read.scalar("nftables_ifindex", self.read.bare_flag),
            "vrrp_iptables": self.vrrp_iptables,
            "vrrp_min_garp": self.min_garp,
            **{
                f"{kind}_script{suffix}": handler
                for kind in ("startup", "shutdown")
                for suffix, handler in (
                    ("", self.start_stop_script(kind)),
                    (
                        "_timeout",
                        self.read.lenient(
                            f"{kind}_script_timeout",
                            whole(1, 1000),
                            f"{kind}_script_timeout '{{value}}' must be in [1, 1000] - ignoring",
                        ),
                    ),
                )
            },
            "vrrp_down_timer_adverts": self.read.lenient(
                "vrrp_down_timer_adverts",
                whole(1, 100),
                "Invalid vrrp_down_timer_adverts [1:100] '{value}'",
            ),
            "default_interface": self.read.scalar("default_interface", self.read.interface_name),
            "vmac_prefix": self.vmac_prefix,
            "v3_checksum_as_v2": self.read.scalar("v3_checksum_as_v2", self.read.flag),
            "vrrp_check_unicast_src": self.read.scalar(
                "vrrp_check_unicast_src", self.read.bare_flag
            ),
            "vrrp_garp_lower_prio_delay": self.read.lenient(
                "vrrp_garp_lower_prio_delay",
                whole(0, GARP_DELAY_MAX),
                "vrrp_garp_lower_prio_delay '{value}' invalid - ignoring",
            ),
            "vrrp_garp_lower_prio_repeat": self.read.lenient(
                "vrrp_garp_lower_prio_repeat",
                whole(0, INT32_MAX),
                "Invalid vrrp_garp_lower_prio_repeat '{value}'",
            ),
            "vrrp_lower_prio_no_advert": self.read.scalar(
                "vrrp_lower_prio_no_advert", self.read.flag
            ),
            "vrrp_higher_prio_send_advert": self.read.scalar(
                "vrrp_higher_prio_send_advert", self.read.flag
            ),
            **{
                f"{prefix}notify_fifo{suffix}": self.read.scalar(
                    f"{prefix}notify_fifo{suffix}", reader
                )
                for prefix in FIFO_PREFIXES
                for suffix, reader in (("", self.fifo_path), ("_script", self.read.script))
            },
            **LvsGlobals(self.read, self.state.config).global_handlers(),
            "metrics_listen": self.read.scalar("metrics_listen", self.metrics_listen),
            "lvs_data_plane": self.read.scalar(
                "lvs_data_plane", lambda node: self.read.choice(node, DATA_PLANES)
            ),
        }

    def metrics_listen(self, node: Node) -> MetricsListen:
        """ADDRESS:PORT, an IPv6 address in brackets."""
        host, colon, port = self.read.value(node).rpartition(":")
        bracketed = host.startswith("[") and host.endswith("]")
        if not colon or (":" in host and not bracketed):
            self.read.error(node, f"{node.keyword}: expected ADDRESS:PORT or [IPV6]:PORT")
            raise Invalid
        address = self.read.address(node, host[1:-1] if bracketed else host)
        return MetricsListen(address, self.read.integer(node, 1, 65535, port), location(node))

    def multicast_group(self, family: int) -> Callable[[Node], str]:
        def read(node: Node) -> str:
            address = ipaddress.ip_address(self.read.address(node))
            if address.version != family or not address.is_multicast:
                self.read.error(
                    node, f"{node.keyword}: {address} is not an IPv{family} multicast address"
                )
                raise Invalid
            return str(address)

        return read

    def fifo_path(self, node: Node) -> str:
        """keepalived's optional owner after the FIFO's name is not supported."""
        if len(node.args) > 1:
            self.read.error(
                node, f"{node.keyword}: an owner for the FIFO is not supported by lvs-agent"
            )
            raise Invalid
        return self.read.value(node)

    def nftables_table(self, node: Node) -> str:
        """A table name nft reads as one word (keepalived passes any name to libnftnl)."""
        if not node.args:
            return DEFAULT_NFTABLES_TABLE
        name = self.read.value(node)
        if not NFT_NAME.fullmatch(name):
            self.read.error(
                node, f"nftables: table name '{excerpt(name)}' not supported by lvs-agent"
            )
            raise Invalid
        return name

    def start_stop_script(self, kind: str) -> Handler:
        """keepalived keeps the first startup_script / shutdown_script."""

        def handle(node: Node, global_defs: GlobalDefs) -> None:
            if getattr(global_defs, f"{kind}_script") is not None:
                self.read.warning(node, f"{kind} script already specified")
                raise Ignored
            setattr(global_defs, f"{kind}_script", self.read.script(node))

        return handle

    def min_garp(self, node: Node, global_defs: GlobalDefs) -> None:
        """keepalived's vrrp_min_garp: one gratuitous ARP / NA, no delayed burst, no refresh;
        only the settings still at their default when it is read change."""
        if not self.read.flag(node):
            return
        defaults = GlobalDefs()
        for name, value in (("repeat", 1), ("refresh", 0), ("refresh_repeat", 0), ("delay", 0)):
            attribute = f"vrrp_garp_master_{name}"
            if getattr(global_defs, attribute) == getattr(defaults, attribute):
                setattr(global_defs, attribute, value)

    def vrrp_iptables(self, node: Node, global_defs: GlobalDefs) -> None:
        """keepalived 2.2.7 as Debian builds it has no iptables: it uses its nftables table."""
        self.read.warning(
            node,
            "iptables not supported, using nftables instead. Please replace 'vrrp_iptables "
            "and 'vrrp_ipsets' with 'nftables' config option",
        )
        if global_defs.nftables is None:
            global_defs.nftables = DEFAULT_NFTABLES_TABLE

    def vmac_prefix(self, node: Node, global_defs: GlobalDefs) -> None:
        """keepalived keeps the first vmac_prefix."""
        prefix = self.read.value(node)
        if global_defs.vmac_prefix is not None:
            self.read.warning(node, f"vmac prefix has already been specified - ignoring {prefix}")
            raise Ignored
        global_defs.vmac_prefix = prefix
