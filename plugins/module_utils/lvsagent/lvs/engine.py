"""LvsEngine: the IPVS (or nftables) table follows the configuration, filtered by live health.

Each virtual server's real servers are checked (one running check per distinct checker,
however many virtual servers share it); a health change recomputes that virtual server's
destinations and the reconciler applies the difference at once. A periodic full pass
puts back whatever someone changed by hand.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import gc
import ipaddress
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Optional

from ..config.model import (
    CheckSettings,
    Config,
    LvsTimeouts,
    RealServer,
    Script,
    VirtualServer,
)
from ..durations import Durations
from ..ipvs import (
    KERNEL_COUNTERS,
    Destination,
    IpvsError,
    Service,
    ServiceKey,
    Stats,
    format_endpoint,
)
from ..ipvs.model import SLOTS, canonical_address
from ..notify_fifo import NotifyFifos
from ..owned import OwnedRecord
from ..pacing import Pacer
from ..scripts import ScriptRunner, split_command
from . import syncd
from .checkers import KINDS, CheckResult, CheckSpec, probe
from .dataplane import DataPlane, IpvsPlane
from .health import HealthCheck, Quorum, sleep

log = logging.getLogger("lvsagent.lvs")

FORWARDING = {"NAT": "nat", "DR": "dr", "TUN": "tun"}
RESYNC_INTERVAL = 5.0  # seconds between audits of the table (they undo hand edits)
AUDIT_BUDGET = 500  # destinations read from the kernel per audit, at most
AUDIT_SHARE = 0.01  # of a core: what audits may cost the netlink thread while nothing changes
IPVS_WEIGHT_MAX = 2**31 - 1  # the kernel's destination weight is an int
REVERT_LOG_LIMIT = 20  # hand edits logged one by one per pass; beyond, one line counts them
SCRIPT_GRACE = 10.0  # seconds stop() waits for omega's notify scripts
NO_PROBES = Durations()  # a real server without checks: nothing observed, ever


def _first(*values):
    """The first value that is set (called twice per real server built: no generator)."""
    for value in values:
        if value is not None:
            return value
    return None


@dataclass(eq=False, **SLOTS)
class RealServerEntry:
    """One real server of one virtual server, and what its checks say about it."""

    address: str
    port: int
    weight: int  # configured
    forwarding: str
    upper_threshold: int
    lower_threshold: int
    inhibit: bool
    notify_up: Optional[Script]
    notify_down: Optional[Script]
    checks: tuple[HealthCheck, ...]  # most have none: the one empty tuple, no list each
    alive: bool = True
    current_weight: int = 0
    since: float = 0.0  # clock.monotonic() of the last up/down change

    @property
    def target(self) -> str:
        return format_endpoint(self.address, self.port)

    def healthy(self) -> bool:
        return all(check.up for check in self.checks)

    def effective_weight(self) -> int:
        """The configured weight, moved by every misc_dynamic check's exit status and every
        FILE_CHECK's value."""
        weight = self.weight
        for check in self.checks:
            if check.state.weight is not None:
                weight += check.state.weight - self.weight
            weight += check.state.offset
        return min(max(weight, 0), IPVS_WEIGHT_MAX)

    def last_error(self) -> str:
        return next((c.state.last_error for c in self.checks if c.state.last_error), "")

    def check_failures(self) -> int:
        return sum(check.state.failures for check in self.checks)

    def health_status(self, wall_offset: float) -> dict:
        """The status row's health part: state, since, last error, failures (in all and by
        reason) and the probes' durations, over all of the real server's checks."""
        checks = self.checks
        if len(checks) > 1:
            reasons: dict = Counter()
            durations = Durations()
            for check in checks:
                reasons.update(check.state.failure_reasons)
                durations.merge(check.durations)
        elif checks:  # the check's own figures: nothing merged, its durations' status kept
            reasons, durations = checks[0].state.failure_reasons, checks[0].durations
        else:
            reasons, durations = {}, NO_PROBES
        return {
            "health": "up" if self.alive else "down",
            "since": _iso(self.since + wall_offset),
            "last_error": self.last_error(),
            "check_failures": self.check_failures(),
            "check_failure_reasons": dict(sorted(reasons.items())),
            "check_durations": durations.status(),
        }

    def destination(self, weight: int) -> Destination:
        return Destination(
            self.address,
            self.port,
            self.forwarding,
            weight,
            self.upper_threshold,
            self.lower_threshold,
        )


@dataclass(eq=False)
class VirtualServerEntry:
    config: VirtualServer
    services: list[Service]  # one per kernel service (a group declares several)
    real_servers: list[RealServerEntry]
    sorry: Optional[Destination]
    sorry_inhibit: bool
    quorum: Quorum
    vrrp_instance: Optional[str]  # whose VIP this virtual server listens on (ha_suspend)
    keys: list[ServiceKey] = field(init=False)
    checks: tuple = field(init=False, repr=False)  # its real servers' HealthChecks
    _wanted: Optional[list] = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.keys = [service.key for service in self.services]
        self.checks = tuple(check for rs in self.real_servers for check in rs.checks)

    @property
    def name(self) -> str:
        return self.config.name

    def alive_weight(self) -> int:
        return sum(rs.current_weight for rs in self.real_servers if rs.alive)

    def destinations(self) -> list[Destination]:
        """What the kernel should hold: live servers, or the sorry server without quorum.

        Built once and kept until a health change (`health_changed`): an audit or a reload
        that finds the virtual server as it was builds nothing."""
        if self._wanted is None:
            self._wanted = self._build_destinations()
        return self._wanted

    def health_changed(self) -> None:
        self._wanted = None

    def _build_destinations(self) -> list[Destination]:
        use_sorry = self.sorry is not None and not self.quorum.up
        wanted = []
        for rs in self.real_servers:
            if rs.alive and not use_sorry:
                wanted.append(rs.destination(rs.current_weight))
            elif rs.inhibit:
                wanted.append(rs.destination(0))
        if use_sorry:
            wanted.append(self.sorry)
        elif self.sorry is not None and self.sorry_inhibit:
            wanted.append(dataclasses.replace(self.sorry, weight=0))
        return wanted

    def desired(self) -> dict:
        destinations = self.destinations()
        return {service.key: (service, destinations) for service in self.services}

    def suspended(self, vrrp_states: dict) -> bool:
        """ha_suspend: checks pause while the VRRP instance holding our address is not master."""
        if not self.config.ha_suspend or self.vrrp_instance is None:
            return False
        return vrrp_states.get(self.vrrp_instance) != "MASTER"


def service_keys(vs: VirtualServer, config: Config) -> list[ServiceKey]:
    protocol = vs.protocol.lower()
    if vs.kind == "fwmark":
        return [ServiceKey.for_fwmark(vs.fwmark, vs.family)]
    if vs.kind == "ip":
        return [ServiceKey.for_address(vs.address, vs.port or 0, protocol)]
    keys = []
    for entry in config.virtual_server_groups[vs.group].entries:
        if entry.fwmark is not None:
            keys.append(ServiceKey.for_fwmark(entry.fwmark, vs.family))
            continue
        first = ipaddress.ip_address(entry.address)
        last = ipaddress.ip_address(entry.last_address or entry.address)
        port = _first(entry.port, vs.port, 0)
        keys.extend(
            ServiceKey.for_address(str(first + offset), port, protocol)
            for offset in range(int(last) - int(first) + 1)
        )
    return keys


def check_spec(
    checker: CheckSettings, rs: RealServer, rs_port: int, vs: VirtualServer
) -> CheckSpec:
    """The spec of a checker the parser completed (its options are final), towards one
    real server port (a group's entries give one real server several)."""
    return CheckSpec(
        kind=checker.kind,
        address=canonical_address(checker.connect_ip or rs.address),
        port=_first(checker.connect_port, rs_port),
        connect_timeout=checker.connect_timeout,
        retry=checker.retry,
        delay_before_retry=checker.delay_before_retry,
        delay_loop=checker.delay_loop,
        warmup=checker.warmup,
        alpha=_first(rs.alpha, vs.alpha),
        bindto=checker.bindto,
        bind_port=checker.bind_port,
        options=KINDS[checker.kind].options(checker),
    )


def fifo_vs(vs: VirtualServer) -> str:
    """keepalived's name of a virtual server in notify FIFO lines: [ADDR]:PROTO:PORT, FWM N
    or [GROUP]:PORT."""
    if vs.kind == "fwmark":
        return f"FWM {vs.fwmark}"
    if vs.kind == "group":
        return f"[{vs.group}]:{vs.port or 0}"
    return f"[{canonical_address(vs.address)}]:{vs.protocol.lower()}:{vs.port or 0}"


def fifo_rs(rs: RealServerEntry, vs: VirtualServer) -> str:
    """A real server in notify FIFO lines: [ADDR]:PROTO:PORT, its virtual server's protocol."""
    protocol = "none" if vs.kind == "fwmark" else vs.protocol.lower()
    return f"[{rs.address}]:{protocol}:{rs.port}"


def _vrrp_instance_of(keys: list[ServiceKey], config: Config) -> Optional[str]:
    addresses = {key.address for key in keys if key.address is not None}
    for instance in config.vrrp_instances:
        if any(str(vip.address.ip) in addresses for vip in instance.virtual_ipaddresses):
            return instance.name
    return None


def _iso(wall_time: float) -> str:
    return _iso_second(int(wall_time // 1))


@lru_cache(maxsize=1024)  # a status names each real server's `since`: most share a second
def _iso_second(second: int) -> str:
    moment = datetime.datetime.fromtimestamp(second, datetime.timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _counters(stats: Optional[Stats]) -> Optional[dict]:
    """The kernel's counters of a service or real server (`ipvsadm --stats` columns)."""
    if stats is None:
        return None
    return {name: getattr(stats, name) for name in KERNEL_COUNTERS}


def _keep_out_of_full_collections() -> None:
    """The configuration and the entries built from it live until the next reload: they leave
    the cyclic collector's sight (gc.freeze), whose full collections walk every object it
    tracks and would stop the loop (and the netlink thread) for a table of 10,000 real
    servers' worth. The young generations are collected first, so that little garbage is
    frozen with them; what a reload drops is freed by reference counting (the model and the
    entries hold no cycles)."""
    gc.collect(1)
    gc.freeze()


def _log_reverted(plane: str, changes: list) -> None:
    """Hand edits being undone: each one up to REVERT_LOG_LIMIT a pass, then a count (a
    flushed table of 10,000 entries is not 10,000 lines)."""
    for change in changes[:REVERT_LOG_LIMIT]:
        log.warning("%s table changed outside lvs-agent, reverting: %s", plane, change)
    if len(changes) > REVERT_LOG_LIMIT:
        more = len(changes) - REVERT_LOG_LIMIT
        log.warning("%s table changed outside lvs-agent, reverting %d more changes", plane, more)


class LvsEngine:
    """Owns the checks and the services the configuration declares, in its data plane.

    `data_plane` is a DataPlane (`lvs.dataplane`: IPVS or nftables), or what IpvsPlane wraps:
    IpvsClient's operations plus `async run(job, *args)`, which runs `job(client, *args)`
    where netlink may block (`IpvsThread` in the agent). `owned` (optional) records the
    services this engine owns, for the next run (`owned_services`). `fifos` (optional) are
    the agent's notify FIFOs, shared with the VRRP engine.
    """

    def __init__(
        self,
        config: Config,
        data_plane,
        clock,
        *,
        resync_interval: float = RESYNC_INTERVAL,
        audit_share: float = AUDIT_SHARE,
        rng: Optional[random.Random] = None,
        prober: Callable[[CheckSpec], Awaitable[CheckResult]] = probe,
        owned: Optional[OwnedRecord] = None,
        fifos: Optional[NotifyFifos] = None,
    ):
        self._config = config
        self._owned = owned
        self._undeleted: set[ServiceKey] = set()  # retired, but deleting them failed
        self._plane = data_plane if isinstance(data_plane, DataPlane) else IpvsPlane(data_plane)
        self._clock = clock
        self._resync_interval = resync_interval
        self._audit_share = audit_share
        self._audit_budget = float(AUDIT_BUDGET)  # this pass's, paced by _pace_audit
        self._audit_cost = 0  # of the audit slices waiting for the next pass
        self._audit_entries: list = []  # (key, cost) of every declared service, in turn
        self._rng = rng or random.Random()
        self._prober = prober
        self._checks: dict[CheckSpec, HealthCheck] = {}
        self._servers: list[VirtualServerEntry] = []
        self._by_key: dict[ServiceKey, tuple[VirtualServerEntry, Service]] = {}
        self._users: dict[CheckSpec, list] = {}  # check -> [(virtual server, real server)]
        self._vrrp_states: dict[str, str] = {}
        self._dirty: set[ServiceKey] = set()
        self._audit: set[ServiceKey] = set()  # services to compare with the kernel
        self._applied: dict = {}  # key -> the desired (Service, [Destination]) last applied
        self._audit_cursor = 0
        self._wakeup: Optional[asyncio.Event] = None
        self._tasks: list[asyncio.Task] = []
        self._scripts = ScriptRunner()
        self._syncd: Optional[syncd.SyncDaemonControl] = None
        self._kernel_timeouts: Optional[LvsTimeouts] = None  # as before lvs_timeouts changed them
        self._fifos = fifos or NotifyFifos()

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Adopts what the kernel already holds, removes a killed run's orphans, starts checking."""
        self._wakeup = asyncio.Event()
        if self._config.virtual_servers and self._config.global_defs.lvs_flush:
            await self._ipvs_job(syncd.flush)
        await self._set_timeouts(self._config)
        await self._follow_sync_daemon(self._config)
        await self._fifos.configure(self._config.global_defs)
        await self._install(self._config)
        orphans = set()
        if self._owned is not None:
            orphans = await asyncio.to_thread(self._owned.load) - self._all_keys()
        changes = await self._converge(orphans)
        for change in changes:
            if change.action == "delete_service":
                log.info("Removing Virtual Server %s left by a previous run", change.key)
        declared = len(self._all_keys())
        name = self._plane.name
        log.info("%s: %d services declared, %d changes applied", name, declared, len(changes))
        self._tasks = [
            asyncio.ensure_future(self._apply_loop()),
            asyncio.ensure_future(self._resync_loop()),
        ]

    async def stop(self) -> None:
        """Stops the sync daemon and the checks and removes the declared services (or
        flushes the table: lvs_flush_on_stop), as keepalived does on exit."""
        await self._follow_sync_daemon(None)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for check in self._checks.values():
            await check.stop()
        for vse in self._servers:
            if vse.config.omega:
                self._omega(vse)
        keys = self._all_keys()
        self._checks, self._servers, self._by_key = {}, [], {}
        if keys and self._config.global_defs.lvs_flush_on_stop == "full":
            await self._ipvs_job(syncd.flush)  # what stays is deleted service by service
        await self._converge(keys)
        await self._plane.close()
        await self._set_timeouts(None)
        await self._scripts.close(SCRIPT_GRACE)
        await self._fifos.close()

    async def apply_config(self, config: Config) -> None:
        """Reload: checks that did not change keep running (and their state)."""
        old_keys = self._all_keys()
        self._config = config
        await self._set_timeouts(config)
        await self._follow_sync_daemon(config)
        await self._fifos.configure(config.global_defs)
        await self._install(config)
        changes = await self._converge(old_keys - self._all_keys())
        log.info("%s: configuration applied, %d changes", self._plane.name, len(changes))

    def on_vrrp_state(self, instance_name: str, state: str) -> None:
        self._vrrp_states[instance_name] = state
        self._update_suspension()
        if self._syncd is not None:
            self._syncd.on_vrrp_state(instance_name, state)

    # -- lvs_sync_daemon, lvs_timeouts, lvs_flush -------------------------------------------

    async def _follow_sync_daemon(self, config: Optional[Config]) -> None:
        """(Re)starts the sync daemon when its settings changed; None stops it.

        Without an instance keepalived's checker runs it, so only with virtual servers."""
        daemon = config.global_defs.lvs_sync_daemon if config is not None else None
        if daemon is not None and daemon.instance is None and not config.virtual_servers:
            daemon = None
        running = self._syncd
        if running is not None and daemon is not None and running.daemon == daemon:
            return
        self._syncd = None
        if running is not None:
            await running.stop()
        if daemon is not None:
            state = self._vrrp_states.get(daemon.instance or "")
            self._syncd = syncd.SyncDaemonControl(self._plane, daemon, state)
            await self._syncd.start()

    async def _set_timeouts(self, config: Optional[Config]) -> None:
        """lvs_timeouts (with virtual servers, as keepalived's checker); the kernel's own
        values come back when they are gone from the configuration and at stop."""
        wanted = LvsTimeouts()
        if config is not None and config.virtual_servers:
            wanted = config.global_defs.lvs_timeouts
        if wanted != LvsTimeouts():
            if self._kernel_timeouts is None:
                self._kernel_timeouts = await self._ipvs_job(syncd.read_timeouts)
            await self._ipvs_job(syncd.set_timeouts, wanted)
        elif self._kernel_timeouts is not None and await self._ipvs_job(
            syncd.set_timeouts, self._kernel_timeouts
        ):
            self._kernel_timeouts = None

    async def _ipvs_job(self, job, *args):
        """`job` on the netlink thread; True (or its result), or None after logging a failure."""
        try:
            result = await self._plane.run(job, *args)
        except IpvsError as exc:
            log.error("%s", exc)
            return None
        return True if result is None else result

    # -- building from the configuration ----------------------------------------------------

    async def _install(self, config: Config) -> None:
        """Builds the entries of `config` in slices (the running entries serve meanwhile),
        then swaps them in at once."""
        _keep_out_of_full_collections()  # the configuration, before building from it
        previous = {tuple(vse.keys): vse for vse in self._servers}
        old_checks, checks = self._checks, {}
        servers, pacer = [], Pacer()
        for vs in config.virtual_servers:
            servers.append(await self._build(vs, config, checks, old_checks, previous, pacer))
            await pacer.pace()
        self._checks = checks
        for spec, check in old_checks.items():
            if spec not in checks:
                await check.stop()
        for spec, check in checks.items():
            if spec not in old_checks:
                check.start()
        self._servers = servers
        self._by_key = {service.key: (vse, service) for vse in servers for service in vse.services}
        self._audit_entries = [
            (key, len(vse.real_servers) + 1) for vse in servers for key in vse.keys
        ]
        self._users = {}
        for vse in servers:
            for rs in vse.real_servers:
                for check in rs.checks:
                    self._users.setdefault(check.spec, []).append((vse, rs))
        self._update_suspension()
        _keep_out_of_full_collections()

    def _check_for(self, spec: CheckSpec, checks: dict, old_checks: dict) -> HealthCheck:
        check = checks.get(spec) or old_checks.get(spec)
        if check is None:
            check = HealthCheck(
                spec, self._clock, self._check_changed, rng=self._rng, prober=self._prober
            )
        checks[spec] = check
        return check

    async def _build(
        self, vs, config, checks, old_checks, previous, pacer: Pacer
    ) -> VirtualServerEntry:
        """The entry of `vs`: the one it had when its configuration is as it was, else built
        a real server at a time (with the loop let run between: one virtual server may have
        thousands)."""
        keys = service_keys(vs, config)
        old = previous.get(tuple(keys))
        if old is not None and old.config == vs:  # as it was: its entries, checks and health
            checks.update((check.spec, check) for check in old.checks)
            old.config = vs
            old.vrrp_instance = _vrrp_instance_of(keys, config)
            return old
        old_members = {(rs.address, rs.port): rs for rs in old.real_servers} if old else {}
        members, now = [], self._clock.monotonic()  # one moment (one float) for all of them
        for rs in vs.real_servers:
            port = _first(rs.port, vs.port, 0)
            specs = (check_spec(c, rs, port, vs) for c in rs.checkers)
            checks_of_rs = tuple(self._check_for(spec, checks, old_checks) for spec in specs)
            entry = RealServerEntry(
                address=canonical_address(rs.address),
                port=port,
                weight=rs.weight,
                forwarding=FORWARDING[rs.lvs_method or vs.lvs_method],
                upper_threshold=rs.uthreshold,
                lower_threshold=rs.lthreshold,
                inhibit=_first(rs.inhibit_on_failure, vs.inhibit_on_failure),
                notify_up=rs.notify_up,
                notify_down=rs.notify_down,
                checks=checks_of_rs,
            )
            entry.alive = entry.healthy()
            entry.current_weight = entry.effective_weight()
            before = old_members.get((entry.address, entry.port))
            keep_since = before is not None and before.alive == entry.alive
            entry.since = before.since if keep_since else now
            members.append(entry)
            await pacer.pace()
        sorry = None
        if vs.sorry_server is not None:
            sorry = Destination(
                canonical_address(vs.sorry_server.address),
                _first(vs.sorry_server.port, vs.port, 0),
                FORWARDING[vs.sorry_server.lvs_method or vs.lvs_method],
                1,
            )
        services = [
            Service(
                key,
                scheduler=vs.lvs_sched,
                persistence_timeout=vs.persistence_timeout,
                persistence_netmask=vs.persistence_granularity,
                flags=frozenset(vs.scheduler_flags),
                persistence_engine=vs.persistence_engine,
            )
            for key in keys
        ]
        alive_weight = sum(m.current_weight for m in members if m.alive)
        quorum = Quorum(vs.quorum, vs.hysteresis, alive_weight)
        entry = VirtualServerEntry(
            config=vs,
            services=services,
            real_servers=members,
            sorry=sorry,
            sorry_inhibit=vs.sorry_server is not None and vs.sorry_server.inhibit,
            quorum=quorum,
            vrrp_instance=_vrrp_instance_of(keys, config),
        )
        if old is not None:
            quorum.up = old.quorum.up
            self._refresh_quorum(entry)
        return entry

    def _all_keys(self) -> set:
        return set(self._by_key)

    def _update_suspension(self) -> None:
        wanted = {
            check.spec
            for vse in self._servers
            if not vse.suspended(self._vrrp_states)
            for check in vse.checks
        }
        for spec, check in self._checks.items():
            check.set_suspended(spec not in wanted)

    # -- health changes ---------------------------------------------------------------------

    def _check_changed(self, check: HealthCheck) -> None:
        touched = []
        for vse, rs in self._users.get(check.spec, ()):
            self._refresh_real_server(vse, rs)
            if vse not in touched:
                touched.append(vse)
        for vse in touched:
            vse.health_changed()
            self._refresh_quorum(vse)
            self._dirty.update(vse.keys)
            self._wakeup.set()

    def _refresh_real_server(self, vse: VirtualServerEntry, rs: RealServerEntry) -> None:
        alive, weight = rs.healthy(), rs.effective_weight()
        if weight != rs.current_weight and alive and rs.alive:
            log.info(
                "Changing weight from %d to %d for service %s of VS %s",
                rs.current_weight,
                weight,
                rs.target,
                vse.name,
            )
        rs.current_weight = weight
        if alive == rs.alive:
            return
        rs.alive = alive
        rs.since = self._clock.monotonic()
        if rs.inhibit:
            verb, preposition = ("Enabling", "to") if alive else ("Disabling", "from")
        else:
            verb, preposition = ("Adding", "to") if alive else ("Removing", "from")
        log.info("%s service %s %s VS %s", verb, rs.target, preposition, vse.name)
        self._notify(rs.notify_up if alive else rs.notify_down, vse)
        state = "UP" if alive else "DOWN"
        self._fifos.lvs_line(f"RS {fifo_rs(rs, vse.config)} {fifo_vs(vse.config)} {state}\n")

    def _refresh_quorum(self, vse: VirtualServerEntry) -> None:
        message = vse.quorum.update(vse.alive_weight())
        if message is None:
            return
        log.info("%s for VS %s", message, vse.name)
        self._notify(vse.config.quorum_up if vse.quorum.up else vse.config.quorum_down, vse)
        self._fifos.lvs_line(f"VS {fifo_vs(vse.config)} {'UP' if vse.quorum.up else 'DOWN'}\n")
        if vse.sorry is not None:
            sorry = format_endpoint(vse.sorry.address, vse.sorry.port)
            if vse.quorum.up:
                log.info("Removing sorry server %s from VS %s", sorry, vse.name)
            else:
                log.info("Adding sorry server %s to VS %s", sorry, vse.name)

    def _omega(self, vse: VirtualServerEntry) -> None:
        """omega: on shutdown, run the down notifiers of what was up."""
        for rs in vse.real_servers:
            if rs.alive:
                self._notify(rs.notify_down, vse)
        if vse.quorum.up:
            self._notify(vse.config.quorum_down, vse)

    def _notify(self, script: Optional[Script], vse: VirtualServerEntry) -> None:
        """A notify or quorum script, in the background (at most a few at once per VS)."""
        if script is not None:
            self._scripts.spawn(split_command(script.command), script.run_as, f"VS {vse.name}")

    # -- reconciliation ---------------------------------------------------------------------

    async def _apply_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            dirty, self._dirty = self._dirty, set()
            audit, self._audit = self._audit, set()
            cost, self._audit_cost = self._audit_cost, 0
            try:
                await self._reconcile(dirty | audit, expected=dirty)
            except Exception:
                log.exception(
                    "%s reconciliation failed; retrying on the next pass", self._plane.name
                )
            else:
                self._pace_audit(cost, self._plane.last_sync_cpu)

    async def _resync_loop(self) -> None:
        while True:
            await sleep(self._clock, self._resync_interval)
            self._audit |= self._next_audit_slice()
            self._wakeup.set()

    def _next_audit_slice(self) -> set:
        """The next declared services to compare with the kernel, in turn.

        About the audit budget's worth of destinations per pass: a small table is audited
        whole every pass, a large one in slices, so that reading it never hogs the netlink
        thread.
        """
        entries = self._audit_entries
        chosen, cost = set(), 0
        while entries and cost < self._audit_budget and len(chosen) < len(entries):
            key, size = entries[self._audit_cursor % len(entries)]
            self._audit_cursor += 1
            chosen.add(key)
            cost += size
        self._audit_cost += cost
        return chosen

    def _pace_audit(self, cost: int, cpu: float) -> None:
        """Sizes the next slices from what this one cost the netlink thread, so that an
        idle agent's audits take about `audit_share` of a core (AUDIT_SHARE) on any machine:
        between one service and AUDIT_BUDGET destinations a pass. A slow machine sweeps a
        large table more slowly; a health change is applied at once whatever the pace."""
        if cost and cpu > 0:
            affordable = self._audit_share * self._resync_interval * cost / cpu
            self._audit_budget = min(float(AUDIT_BUDGET), max(1.0, affordable))

    async def _converge(self, retired: set) -> list:
        """A full pass: the declared services in, `retired` ones out; returns the changes.

        The record of owned services runs ahead of the kernel: a service is recorded before
        it may be created and forgotten only once deleted, so a kill at any point leaves
        nothing the next run would not know about.
        """
        declared = self._all_keys()
        retired = (set(retired) | self._undeleted) - declared
        await self._record(declared | retired)
        changes = await self._reconcile(declared, retired=retired, only_changed=True)
        await self._record(declared | self._undeleted)
        return changes

    async def _record(self, keys: set) -> None:
        if self._owned is not None:
            await asyncio.to_thread(self._owned.save, keys)

    async def _reconcile(self, keys, *, retired=(), expected=None, only_changed=False) -> list:
        """One pass over `keys`; returns the changes that were needed.

        The desired state is taken here, on the loop; reading and changing the kernel runs
        as one job on the client's netlink thread. With `expected` (the keys a health change
        just touched), a change needed anywhere else means someone edited the table by hand:
        it is logged and undone. With `only_changed` (a reload), services whose desired state
        is the one last applied are left to the audit's rotation, so a reload costs what it
        changes.
        """
        desired, pacer = {}, Pacer()
        for key, (vse, service) in self._by_key.items():  # in the configuration's order
            if key in keys:
                desired[key] = (service, vse.destinations())
                await pacer.pace()
        if only_changed:
            unchanged = {key for key, entry in desired.items() if self._applied.get(key) == entry}
            desired = {key: entry for key, entry in desired.items() if key not in unchanged}
            keys = set(desired)
        whole_table = set(keys) >= self._all_keys()
        try:
            changes, failed = await self._plane.sync(desired, retired, whole_table)
        except IpvsError as exc:
            log.error("%s", exc)
            self._audit |= set(keys)
            self._undeleted |= set(retired)
            return []
        deleting = {change.key for change in failed if change.action == "delete_service"}
        self._undeleted = (self._undeleted - set(retired)) | deleting
        if expected is not None:
            reverted = [change for change in changes if change.key not in expected]
            _log_reverted(self._plane.name, reverted)
        failing = {change.key for change in failed}
        self._audit |= failing
        self._applied.update({k: v for k, v in desired.items() if k not in failing})
        for key in set(retired) - deleting:
            self._applied.pop(key, None)
        return changes

    # -- status -----------------------------------------------------------------------------

    async def status(self) -> list:
        """The "ipvs" part of the status reply: the kernel's view with each server's health,
        read on the netlink thread (the loop keeps running meanwhile)."""
        try:
            table = await self._plane.table(self._all_keys())
        except IpvsError as exc:
            log.error("%s", exc)
            table = {}
        wall_offset = time.time() - self._clock.monotonic()
        reply, pacer = [], Pacer()
        for vse in self._servers:
            for service in vse.services:
                members = {(rs.address, rs.port): rs for rs in vse.real_servers}
                live_service, live_destinations = table.get(service.key, (None, []))
                rows = []
                for dest in live_destinations:
                    rs = members.pop((dest.address, dest.port), None)
                    rows.append(self._row(dest, rs, vse, wall_offset))
                    await pacer.pace()
                for rs in members.values():
                    rows.append(self._absent_row(rs, wall_offset))
                    await pacer.pace()
                shown = live_service or service
                reply.append(
                    {
                        "service": str(service.key),
                        **shown.to_dict(),
                        "virtual_server": vse.name,
                        "quorum": {
                            "up": vse.quorum.up,
                            "quorum": vse.quorum.quorum,
                            "alive_weight": vse.quorum.weight_sum,
                        },
                        "counters": _counters(live_service and live_service.stats),
                        "realservers": rows,
                    }
                )
        return reply

    @staticmethod
    def _row(dest: Destination, rs, vse: VirtualServerEntry, wall_offset: float) -> dict:
        row = {
            "address": dest.address,
            "port": dest.port,
            "forwarding": dest.forwarding,
            "weight": dest.weight,
            "active": dest.active_connections,
            "inactive": dest.inactive_connections,
            "counters": _counters(dest.stats),
        }
        if rs is not None:
            row.update(rs.health_status(wall_offset))
        elif vse.sorry is not None and (dest.address, dest.port) == (
            vse.sorry.address,
            vse.sorry.port,
        ):
            row.update(health="sorry", since=None, last_error="")
        else:
            row.update(health="unknown", since=None, last_error="")
        return row

    @staticmethod
    def _absent_row(rs: RealServerEntry, wall_offset: float) -> dict:
        """A declared real server the kernel does not hold (down): weight null."""
        return {
            "address": rs.address,
            "port": rs.port,
            "forwarding": rs.forwarding,
            "weight": None,
            "active": None,
            "inactive": None,
            "counters": None,
            **rs.health_status(wall_offset),
        }
