"""Typed model of a keepalived.conf, with keepalived's defaults.

The parser fills these objects; the VRRP and LVS engines, the Ansible modules and
`dump-config` read them. Values inherited in keepalived (real server from virtual server,
checker from real server) are resolved by the parser where DESIGN.md says so; a field left
at None means "inherit" as documented on the field.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional, Union

from ..ipvs.model import DEFAULT_SCHEDULER, SLOTS
from ..scripts import Identity

IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

LVS_METHODS = ("NAT", "DR", "TUN")
PROTOCOLS = ("TCP", "UDP", "SCTP")
# the notify FIFOs of global_defs: notify_fifo (every line), vrrp_notify_fifo, lvs_notify_fifo
FIFO_PREFIXES = ("", "vrrp_", "lvs_")
DEFAULT_PERSISTENCE_TIMEOUT = 360  # `persistence_timeout` with no value: 6 minutes
RTPROT_KEEPALIVED = 18  # the protocol keepalived's routes and rules carry unless no_track
DEFAULT_NFTABLES_TABLE = "keepalived"  # `nftables` with no name, and no_accept without it
DOWN_TIMER_ADVERTS = 3  # RFC 3768: Master_Down_Interval is 3 advert intervals plus the skew
DEFAULT_INTERFACE = "eth0"  # keepalived's default_interface: a static address with no dev
DATA_PLANES = ("ipvs", "nftables")  # lvs_data_plane (lvs-agent's own keyword); first: default


@dataclass(frozen=True, **SLOTS)
class Location:
    """Where an object was declared, for messages in the `FILE:LINE: message` form."""

    file: str = "<string>"
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class ScriptUser:
    """`USER [GROUP]` (or `USER:GROUP`) after script_user, `user`, or a notify script."""

    user: str
    group: Optional[str] = None  # None = the user's group
    location: Location = field(default_factory=Location)


@dataclass
class Script:
    """A notify or quorum script: its command line and, optionally, whom it runs as."""

    command: str
    user: Optional[ScriptUser] = None  # None = global_defs' script_user (or its default)
    location: Location = field(default_factory=Location)
    # whom it runs as on this host: set by the host checks, None without them
    run_as: Optional[Identity] = field(default=None, compare=False, repr=False)


@dataclass
class MetricsListen:
    """metrics_listen ADDRESS:PORT ([ADDRESS]:PORT for IPv6): where the agent serves /metrics.
    lvs-agent's own keyword (keepalived has none and would reject it)."""

    address: str
    port: int
    location: Location = field(default_factory=Location, compare=False)

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass
class SyncDaemon:
    """lvs_sync_daemon: the kernel's IPVS connection-sync daemon, so that a backup director
    holds the master's connection table when it takes over.

    With an instance it runs as master while that VRRP instance is MASTER and as backup
    otherwise; without one it runs as both, always (as keepalived's checker does)."""

    interface: str
    instance: Optional[str] = None
    sync_id: Optional[int] = None  # None = the instance's virtual_router_id (0 without one)
    max_len: Optional[int] = None  # UDP payload of a sync message; None = kernel default
    port: Optional[int] = None  # None = kernel default (8848)
    ttl: Optional[int] = None  # None = kernel default (1)
    group: Optional[str] = None  # multicast group; None = kernel default (224.0.0.81)
    location: Location = field(default_factory=Location, compare=False)  # a moved line: same


@dataclass
class LvsTimeouts:
    """lvs_timeouts in seconds; 0 leaves the kernel's value as it was."""

    tcp: int = 0
    tcpfin: int = 0
    udp: int = 0


@dataclass
class GlobalDefs:
    router_id: Optional[str] = None
    vrrp_version: int = 2
    vrrp_garp_master_delay: int = 5
    vrrp_garp_master_repeat: int = 5
    vrrp_garp_master_refresh: int = 0  # 0 = no periodic refresh
    vrrp_garp_master_refresh_repeat: int = 1
    vrrp_garp_interval: float = 0.0
    vrrp_gna_interval: float = 0.0
    vrrp_startup_delay: float = 0.0
    vrrp_mcast_group4: str = "224.0.0.18"
    vrrp_mcast_group6: str = "ff02::12"
    script_user: Optional[ScriptUser] = None  # None = keepalived_script if it exists, else root
    enable_script_security: bool = False
    set_supplementary_groups: bool = False
    vrrp_strict: bool = False
    # no_accept's firewall (vrrp/firewall.py): None = DEFAULT_NFTABLES_TABLE when needed
    nftables: Optional[str] = None
    nftables_priority: int = -1
    nftables_counters: bool = False
    nftables_ifindex: bool = False
    v3_checksum_as_v2: bool = False
    vrrp_check_unicast_src: bool = False  # check_unicast_src for every unicast instance
    # gratuitous ARPs of a master hearing a lower priority; None = vrrp_garp_master_delay / _repeat
    vrrp_garp_lower_prio_delay: Optional[int] = None
    vrrp_garp_lower_prio_repeat: Optional[int] = None
    default_interface: str = DEFAULT_INTERFACE  # of a static address with no dev
    vrrp_down_timer_adverts: int = DOWN_TIMER_ADVERTS
    vrrp_lower_prio_no_advert: bool = False  # lower_prio_no_advert of each instance not setting it
    vrrp_higher_prio_send_advert: bool = False  # likewise higher_prio_send_advert
    vmac_prefix: Optional[str] = None  # None = "vrrp": use_vmac's default name is PREFIX.VRID
    # notify FIFOs (paths): notify_fifo gets every line, vrrp_notify_fifo the VRRP ones and
    # lvs_notify_fifo the virtual and real server ones; each *_script is started to read its FIFO
    notify_fifo: Optional[str] = None
    notify_fifo_script: Optional[Script] = None
    vrrp_notify_fifo: Optional[str] = None
    vrrp_notify_fifo_script: Optional[Script] = None
    lvs_sync_daemon: Optional[SyncDaemon] = None
    lvs_timeouts: LvsTimeouts = field(default_factory=LvsTimeouts)
    lvs_flush: bool = False  # empty the whole IPVS table at start
    lvs_flush_on_stop: str = ""  # "" = delete each declared service; "full" = flush; "VS"
    lvs_notify_fifo: Optional[str] = None
    lvs_notify_fifo_script: Optional[Script] = None
    lvs_data_plane: str = DATA_PLANES[0]  # what programs the virtual servers: IPVS or nftables
    metrics_listen: Optional[MetricsListen] = None  # None = no /metrics
    # run by the agent before VRRP and the checkers start / after they stopped, waited for
    startup_script: Optional[Script] = None
    startup_script_timeout: int = 10
    shutdown_script: Optional[Script] = None
    shutdown_script_timeout: int = 10
    location: Location = field(default_factory=Location)


@dataclass
class VrrpScript:
    name: str
    script: str = ""
    interval: float = 1.0
    timeout: Optional[float] = None  # None = interval
    weight: int = 0
    weight_reverse: bool = False
    rise: int = 1
    fall: int = 1
    user: Optional[ScriptUser] = None  # None = global_defs' script_user
    init_fail: bool = False
    location: Location = field(default_factory=Location)
    run_as: Optional[Identity] = field(default=None, compare=False, repr=False)  # as Script


@dataclass
class TrackFile:
    """A track_file (vrrp_track_file) block: a number read from a file whenever it changes."""

    name: str
    file: str = ""
    weight: int = 1
    weight_reverse: bool = False
    init_value: Optional[int] = None  # init_file: write this value at start ...
    init_overwrite: bool = False  # ... even over an existing file
    location: Location = field(default_factory=Location)


@dataclass
class TrackProcess:
    """A vrrp_track_process block: how many processes match, against a quorum."""

    name: str
    process: str = ""  # the process name (comm), or argv[0] when the command line is matched
    params: list[str] = field(default_factory=list)
    param_match: Optional[str] = None  # None, "exact", "partial" or "initial"
    full_command: bool = False  # match the command line, not the process name
    weight: int = 0
    weight_reverse: bool = False
    quorum: int = 1
    quorum_max: Optional[int] = None  # None = no maximum
    fork_delay: float = 0.0
    terminate_delay: float = 0.0
    location: Location = field(default_factory=Location)


@dataclass
class TrackInterface:
    name: str
    weight: int = 0
    reverse: bool = False
    location: Location = field(default_factory=Location)


@dataclass
class TrackScript:
    """An entry of track_script, track_file or track_process: what is tracked, by name."""

    name: str
    weight: Optional[int] = None  # None = the tracked object's weight
    reverse: bool = False
    location: Location = field(default_factory=Location)


@dataclass
class SyncGroup:
    name: str
    group: list[str] = field(default_factory=list)
    notify_master: Optional[Script] = None
    notify_backup: Optional[Script] = None
    notify_fault: Optional[Script] = None
    notify_stop: Optional[Script] = None
    notify: Optional[Script] = None
    track_interfaces: list[TrackInterface] = field(default_factory=list)
    track_scripts: list[TrackScript] = field(default_factory=list)
    track_files: list[TrackScript] = field(default_factory=list)
    track_processes: list[TrackScript] = field(default_factory=list)
    # the tracking entries are given to every member by the checks (checks.take_group_tracking);
    # sync_group_tracking_weight (or the deprecated global_tracking): members keep their weights
    tracking_weight: bool = False
    location: Location = field(default_factory=Location)


@dataclass
class StaticTrackGroup:
    """A track_group block: the instances that go to FAULT when a static address, route or
    rule naming the group cannot be restored (its interface down or gone)."""

    name: str
    group: list[str] = field(default_factory=list)  # vrrp_instance names
    location: Location = field(default_factory=Location)


@dataclass
class GarpGroup:
    """A garp_group block: the spacing of gratuitous ARPs / unsolicited NAs on its interfaces,
    one budget shared by all of them (a switch that cannot take a flood of them)."""

    garp_interval: Optional[float] = None  # None = not set (no spacing of ARPs in the group)
    gna_interval: Optional[float] = None
    interfaces: dict[str, Location] = field(default_factory=dict)
    location: Location = field(default_factory=Location)


@dataclass
class VirtualAddress:
    address: IPInterface  # /32 or /128 when the configuration gives no prefix
    dev: Optional[str] = None  # None = the instance's interface
    label: Optional[str] = None
    scope: Optional[str] = None
    broadcast: Optional[str] = None
    peer: Optional[str] = None
    no_track: bool = False
    use_vmac: bool = False  # keepalived: a VMAC of its own unless on the instance's VMAC
    track_group: Optional[str] = field(default=None, compare=False)  # static addresses only
    location: Location = field(default_factory=Location)

    @property
    def family(self) -> int:
        return self.address.version


@dataclass(frozen=True)
class NextHop:
    via: Optional[str] = None
    dev: Optional[str] = None
    weight: int = 1
    onlink: bool = False


@dataclass(frozen=True)
class Route:
    """A static_routes or virtual_routes line (`ip route` words, keepalived's defaults).

    Frozen and compared without its location, so that the entries held in the kernel can be
    kept in a set and a reload compares what would be installed.
    """

    destination: str  # ADDRESS/LEN
    family: int = 4
    type: str = "unicast"  # or blackhole, unreachable, prohibit, throw
    source: Optional[str] = None  # `src`: the preferred source address
    via: Optional[str] = None
    dev: Optional[str] = None  # None = the kernel chooses from the gateway
    scope: int = 0  # universe, keepalived's default whatever the route
    table: int = 254  # main
    metric: Optional[int] = None
    protocol: int = RTPROT_KEEPALIVED
    tos: Optional[int] = None
    onlink: bool = False
    nexthops: tuple[NextHop, ...] = ()
    mode: str = "prepend"  # keepalived's default (NLM_F_CREATE); "add" (exclusive), "append"
    no_track: bool = False
    track_group: Optional[str] = field(default=None, compare=False)  # static routes only
    location: Location = field(default_factory=Location, compare=False)


@dataclass(frozen=True)
class Rule:
    """A static_rules or virtual_rules line (`ip rule` words, keepalived's defaults)."""

    priority: int  # keepalived gives one (16384 down) to a rule without, with a warning
    family: int = 4
    source: Optional[str] = None  # `from` ADDRESS/LEN, None = all
    destination: Optional[str] = None  # `to`
    action: str = "table"  # table, goto, nop, blackhole, unreachable, prohibit
    table: Optional[int] = None
    goto: Optional[int] = None
    invert: bool = False  # `not`
    tos: Optional[int] = None
    fwmark: Optional[int] = None
    fwmask: Optional[int] = None
    iif: Optional[str] = None
    oif: Optional[str] = None
    suppress_prefixlength: Optional[int] = None
    protocol: Optional[int] = RTPROT_KEEPALIVED  # None: no_track without protocol
    no_track: bool = False
    track_group: Optional[str] = field(default=None, compare=False)  # static rules only
    location: Location = field(default_factory=Location, compare=False)


@dataclass
class VrrpInstance:
    name: str
    state: str = "BACKUP"  # initial state: "BACKUP" or "MASTER"
    interface: Optional[str] = None
    virtual_router_id: int = 0
    priority: int = 100
    advert_int: float = 1.0
    version: int = 2
    nopreempt: bool = False
    preempt_delay: float = 0.0
    auth_type: Optional[str] = None  # None, "PASS" or "AH"
    auth_pass: Optional[str] = field(default=None, repr=False)  # secret: never shown
    unicast_src_ip: Optional[str] = None
    unicast_peers: list[str] = field(default_factory=list)
    unicast_ttl: Optional[int] = None  # TTL / hop limit of unicast adverts; None = 255 / kernel's
    check_unicast_src: bool = False  # accept unicast adverts from the unicast peers only
    mcast_src_ip: Optional[str] = None
    virtual_ipaddresses: list[VirtualAddress] = field(default_factory=list)
    virtual_ipaddresses_excluded: list[VirtualAddress] = field(default_factory=list)
    virtual_routes: list[Route] = field(default_factory=list)  # held while MASTER, as the VIPs
    virtual_rules: list[Rule] = field(default_factory=list)
    track_interfaces: list[TrackInterface] = field(default_factory=list)
    track_scripts: list[TrackScript] = field(default_factory=list)
    track_files: list[TrackScript] = field(default_factory=list)
    track_processes: list[TrackScript] = field(default_factory=list)
    dont_track_primary: bool = False
    # the interfaces of the static entries whose track_group lists this instance: down or gone,
    # FAULT (keepalived's TRACK_SADDR / TRACK_SROUTE / TRACK_SRULE); set by the checks
    static_track_interfaces: list[str] = field(default_factory=list)
    notify_master: Optional[Script] = None
    notify_backup: Optional[Script] = None
    notify_fault: Optional[Script] = None
    notify_stop: Optional[Script] = None
    notify: Optional[Script] = None
    garp_master_delay: Optional[int] = None  # None = global_defs value
    garp_master_repeat: Optional[int] = None
    garp_master_refresh: Optional[int] = None
    garp_master_refresh_repeat: Optional[int] = None
    garp_lower_prio_delay: Optional[int] = None  # None = global (vrrp_strict: 0)
    garp_lower_prio_repeat: Optional[int] = None
    checksum_with_pseudo_header: bool = True  # False with v3_checksum_as_v2
    accept: Optional[bool] = None  # None = keepalived's default (accept unless strict)
    # as master: no advert in answer to a lower priority one / an advert to a higher priority
    # one; None = the global_defs value (vrrp_strict: on / off)
    lower_prio_no_advert: Optional[bool] = None
    higher_prio_send_advert: Optional[bool] = None
    # use_vmac: a private macvlan with the VRRP MAC carries the VIPs and the adverts
    use_vmac: bool = False
    vmac_name: Optional[str] = None  # None = vmac_prefix.VRID, chosen by the checks
    vmac_xmit_base: bool = False  # adverts leave from the base interface, not the macvlan
    # adverts a backup misses before it takes over (the global value when the block starts)
    down_timer_adverts: int = DOWN_TIMER_ADVERTS
    promote_secondaries: bool = False  # set net.ipv4.conf.IFACE.promote_secondaries (promote.py)
    family: int = 4  # 4 or 6, from the VIPs
    sync_group: Optional[str] = None
    location: Location = field(default_factory=Location)


@dataclass
class CheckSettings:
    """The settings every health checker shares, already inherited from the real and virtual
    server (config/blocks/checkers.py resolves them).

    Each kind's own model (TcpCheck, HttpCheck, ...) lives with its probe in lvs/checkers.
    """

    connect_ip: Optional[str] = None  # None = the real server's address
    connect_port: Optional[int] = None  # None = the real server's port
    bindto: Optional[str] = None
    bind_port: Optional[int] = None
    connect_timeout: float = 5.0
    retry: int = 1
    delay_before_retry: float = 1.0
    warmup: Optional[float] = None  # None = a random delay up to delay_loop
    delay_loop: Optional[float] = None  # None = the virtual server's
    location: Location = field(default_factory=Location)


@dataclass
class SorryServer:
    address: str
    port: Optional[int] = None
    lvs_method: Optional[str] = None  # None = the virtual server's
    inhibit: bool = False
    location: Location = field(default_factory=Location)


@dataclass(**SLOTS)  # by the ten thousand in a large table
class RealServer:
    address: str
    port: Optional[int] = None
    weight: int = 1
    lvs_method: Optional[str] = None  # None = the virtual server's
    notify_up: Optional[Script] = None
    notify_down: Optional[Script] = None
    uthreshold: int = 0
    lthreshold: int = 0
    inhibit_on_failure: Optional[bool] = None  # None = the virtual server's
    virtualhost: Optional[str] = None
    delay_loop: Optional[float] = None  # None = the virtual server's
    alpha: Optional[bool] = None  # None = the virtual server's
    checkers: list[CheckSettings] = field(default_factory=list)
    location: Location = field(default_factory=Location)


@dataclass
class VirtualServerGroupEntry:
    """An address (or inclusive range) with an optional port, or a fwmark."""

    address: Optional[str] = None
    last_address: Optional[str] = None  # end of a range; None for a single address
    port: Optional[int] = None
    fwmark: Optional[int] = None
    location: Location = field(default_factory=Location)


@dataclass
class VirtualServerGroup:
    name: str
    entries: list[VirtualServerGroupEntry] = field(default_factory=list)
    location: Location = field(default_factory=Location)


@dataclass
class VirtualServer:
    kind: str = "ip"  # "ip", "fwmark" or "group"
    address: Optional[str] = None
    port: Optional[int] = None
    fwmark: Optional[int] = None
    group: Optional[str] = None
    protocol: str = "TCP"
    lvs_sched: str = DEFAULT_SCHEDULER
    lvs_method: str = "NAT"
    persistence_timeout: int = 0  # 0 = not persistent
    persistence_granularity: Optional[str] = None
    persistence_engine: Optional[str] = None  # IPVS persistence engine module, e.g. "sip"
    scheduler_flags: list[str] = field(default_factory=list)
    delay_loop: float = 60.0
    quorum: int = 1
    hysteresis: int = 0
    quorum_up: Optional[Script] = None
    quorum_down: Optional[Script] = None
    sorry_server: Optional[SorryServer] = None
    inhibit_on_failure: bool = False
    alpha: bool = False
    omega: bool = False
    ha_suspend: bool = False
    virtualhost: Optional[str] = None
    family: int = 4
    real_servers: list[RealServer] = field(default_factory=list)
    location: Location = field(default_factory=Location)

    @property
    def name(self) -> str:
        """keepalived's way of naming the service in messages."""
        if self.kind == "fwmark":
            return f"FWM {self.fwmark}"
        if self.kind == "group":
            return f"[{self.group}]"
        host = f"[{self.address}]"
        return f"{host}:{self.port}" if self.port is not None else host


@dataclass
class Config:
    global_defs: GlobalDefs = field(default_factory=GlobalDefs)
    vrrp_scripts: dict[str, VrrpScript] = field(default_factory=dict)
    track_files: dict[str, TrackFile] = field(default_factory=dict)
    track_processes: dict[str, TrackProcess] = field(default_factory=dict)
    sync_groups: list[SyncGroup] = field(default_factory=list)
    # installed while the agent runs, whatever the VRRP states
    static_addresses: list[VirtualAddress] = field(default_factory=list)
    static_routes: list[Route] = field(default_factory=list)
    static_rules: list[Rule] = field(default_factory=list)
    static_track_groups: dict[str, StaticTrackGroup] = field(default_factory=dict)
    garp_groups: list[GarpGroup] = field(default_factory=list)
    vrrp_instances: list[VrrpInstance] = field(default_factory=list)
    virtual_server_groups: dict[str, VirtualServerGroup] = field(default_factory=dict)
    virtual_servers: list[VirtualServer] = field(default_factory=list)
    warnings: list = field(default_factory=list)  # list[Problem]
    files: list[str] = field(default_factory=list)  # every file read, main file first
