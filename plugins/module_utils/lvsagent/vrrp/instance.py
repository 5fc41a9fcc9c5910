"""One vrrp_instance at work: the state machine wired to its socket, VIPs, tracking and scripts."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..config.model import GlobalDefs, VrrpInstance
from . import packet
from .addresses import AddressManager, Announcer
from .firewall import Firewall, drops_vip_traffic
from .machine import LoopClock, MachineSettings, State, VrrpMachine
from .notify import Notifier
from .packet import Advertisement, InvalidPacket
from .promote import PromoteSecondaries
from .receive import Drops, ReceiveRules
from .routes import RoutingManager, describe
from .sockets import Received, SocketPool, VrrpSocket
from .track_file import FAULT, FileTracker, file_status
from .track_process import ProcessTracker
from .tracking import Link, LinkMonitor, ScriptTracker
from .vmac import Vmac, VmacLinks

log = logging.getLogger("lvsagent.vrrp")

SOURCE_LOOKS = 25  # an interface back again: look this many times for its address ...
SOURCE_WAIT = 0.2  # ... this many seconds apart (its IPv6 link-local comes once it is up)


@dataclass
class Services:
    """What every instance shares: the loop, sockets, netlink, announcer, trackers, counters."""

    loop: asyncio.AbstractEventLoop
    sockets: SocketPool
    addresses: AddressManager
    routing: RoutingManager
    announcer: Announcer
    notifier: Notifier
    links: LinkMonitor
    scripts: dict[str, ScriptTracker]
    drops: Drops
    vmacs: VmacLinks
    firewall: Firewall = field(default_factory=Firewall)
    files: dict[str, FileTracker] = field(default_factory=dict)
    processes: dict[str, ProcessTracker] = field(default_factory=dict)
    promotion: PromoteSecondaries = field(default_factory=PromoteSecondaries)


@dataclass
class Counters:
    """What keepalived's stats count per instance; kept across reloads that keep the instance.

    Adverts and announcements are counted per packet that went out (an advert to three
    unicast peers counts three); received adverts are those that passed the receive rules
    (the others are drops, counted per reason by `Drops`)."""

    adverts_sent: int = 0
    adverts_received: int = 0
    priority_zero_sent: int = 0
    priority_zero_received: int = 0
    became_master: int = 0
    released_master: int = 0
    gratuitous_announcements_sent: int = 0
    address_list_mismatches: int = 0  # adverts whose VIPs differ from ours (still accepted)


class Instance:
    def __init__(
        self,
        config: VrrpInstance,
        global_defs: GlobalDefs,
        services: Services,
        on_state: Callable[[Instance, State, State], None],
        on_lower_priority: Optional[Callable[[Instance], None]] = None,
    ) -> None:
        self.config = config
        self.global_defs = global_defs
        self.services = services
        self.on_state = on_state
        self.on_lower_priority = on_lower_priority  # the sync group's other members GARP too
        self.ifname = config.interface
        self.family = config.family
        self.vmac_name = config.vmac_name if config.use_vmac else None
        # the adverts go out and come in on the VMAC, unless vmac_xmit_base
        self.socket_ifname = self.ifname if config.vmac_xmit_base else self.vmac_name or self.ifname
        self._base_index: Optional[int] = None  # our interface's, as last seen
        self._vmac_task: Optional[asyncio.Task] = None
        self._promoting: Optional[str] = None  # the interface promote_secondaries was asked on
        self._lower_prio_garp_at = float("-inf")  # when it last answered a lower priority
        self.machine: Optional[VrrpMachine] = None
        self.source: Optional[packet.IPAddress] = None
        self.socket: Optional[VrrpSocket] = None
        self._vip_lock = asyncio.Lock()
        self._vip_tasks: set[asyncio.Task] = set()
        self._source_stale = False  # our interface was re-created: its addresses are new
        self._source_task: Optional[asyncio.Task] = None
        self._vips_held: dict[tuple, tuple] = {}  # (address, dev) -> (VirtualAddress, dev)
        self._routing_held: tuple = ()  # virtual_routes then virtual_rules, as added
        self._garp_timers: list[asyncio.TimerHandle] = []
        self._priority_parts: dict[str, int] = {}
        self._faults: set[str] = set()  # the fault reasons this instance's tracking set
        self._address_mismatch_logged = False
        self.counters = Counters()
        self.last_transition: Optional[float] = None  # time.time() of the last state change
        self._take_settings(config, global_defs, None)

    @property
    def name(self) -> str:
        return self.config.name

    def _take_settings(
        self, config: VrrpInstance, global_defs: GlobalDefs, source: Optional[packet.IPAddress]
    ) -> None:
        self.config = config
        self.global_defs = global_defs
        self.source = source
        self._rules = ReceiveRules(config, global_defs, source)
        self._expected_auth = packet.auth_data_for(config.auth_pass)
        self._advertised = tuple(
            vip.address.ip for vip in config.virtual_ipaddresses if vip.family == self.family
        )

    def _machine_settings(self) -> MachineSettings:
        config, global_defs = self.config, self.global_defs
        lower_prio_no_advert = config.lower_prio_no_advert
        if lower_prio_no_advert is None:
            lower_prio_no_advert = global_defs.vrrp_strict or global_defs.vrrp_lower_prio_no_advert
        higher_prio_send_advert = config.higher_prio_send_advert
        if higher_prio_send_advert is None:
            higher_prio_send_advert = (
                not global_defs.vrrp_strict and global_defs.vrrp_higher_prio_send_advert
            )
        return MachineSettings(
            name=config.name,
            version=config.version,
            priority=config.priority,
            advert_interval=config.advert_int,
            preempt=not config.nopreempt,
            preempt_delay=config.preempt_delay,
            start_as_master=config.state == "MASTER",
            primary_address=self.source,
            down_timer_adverts=config.down_timer_adverts,
            lower_prio_no_advert=lower_prio_no_advert,
            higher_prio_send_advert=higher_prio_send_advert,
        )

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        services = self.services
        self._take_settings(self.config, self.global_defs, await self._choose_source())
        if self.vmac_name:
            await services.vmacs.create(self._vmac())
        await self._promote_secondaries()
        self.machine = VrrpMachine(
            self._machine_settings(),
            LoopClock(services.loop),
            self._transmit,
            self._on_transition,
            self._lower_priority_heard,
        )
        self._register()
        self._join_group()
        self._watch_tracking()
        await self._remove_leftover_vips()
        leftovers = reversed(self._routing_wanted(True))  # a killed run's, not for a backup
        await self.services.routing.apply_all(leftovers, False, "", quiet=True)
        self.machine.startup()

    async def update(self, config: VrrpInstance, global_defs: GlobalDefs) -> None:
        """Reload with the same interface, VRID and family: keep the state, take the settings.

        Priority, advert_int, preempt, auth, peers, VIPs, tracking and scripts change in place;
        `state` is only the initial state. A master adds and announces the new VIPs and removes
        the dropped ones.
        """
        source = await self._choose_source(config)
        self._unwatch_tracking()
        self._take_settings(config, global_defs, source)
        self._address_mismatch_logged = False
        self.machine.reconfigure(self._machine_settings())
        self._register()
        self._join_group()
        previous_faults, self._faults = self._faults, set()
        self._priority_parts.clear()
        self._watch_tracking()
        for reason in previous_faults - self._faults:
            self.machine.clear_fault(reason)
        self._request_vip_sync()
        await self._settle_vips()
        await self._promote_secondaries()

    async def _promote_secondaries(self) -> None:
        """Asked for once (keepalived only sets it, at start and reload; it goes back at stop)."""
        if self.config.promote_secondaries and self.ifname and self._promoting is None:
            self._promoting = self.ifname
            await self.services.promotion.acquire(self.ifname)

    def resign(self) -> None:
        """Shutdown event: a master sends priority 0 so that a backup takes over at once."""
        if self.machine is not None:
            self.machine.shutdown()

    async def stop(self) -> None:
        """Resign (priority 0 when master), remove the VIPs, run notify_stop."""
        if self.machine is None:
            return
        self.resign()
        if self._source_task is not None:
            self._source_task.cancel()
        await self._settle_vips()
        self.services.sockets.unregister(
            self.socket_ifname, self.family, self.config.virtual_router_id
        )
        self._unwatch_tracking()
        if self._vmac_task is not None:
            self._vmac_task.cancel()
        if self.vmac_name:
            await self.services.vmacs.remove(self._vmac())
        if self._promoting is not None:
            await self.services.promotion.release(self._promoting)
            self._promoting = None
        self.services.notifier.state_changed(
            "INSTANCE",
            self.name,
            "STOP",
            self.machine.effective_priority,
            self.config.notify_stop,
            self.config.notify,
        )

    async def _choose_source(self, config: Optional[VrrpInstance] = None) -> packet.IPAddress:
        """unicast_src_ip, mcast_src_ip, else the primary IPv4 or the link-local IPv6 address."""
        config = config or self.config
        chosen = config.unicast_src_ip or config.mcast_src_ip
        if chosen:
            return ipaddress.ip_address(chosen)
        found = await self.services.addresses.source_address(self.ifname, self.family)
        if found is None:
            kind = "IPv4" if self.family == 4 else "IPv6 link-local"
            raise RuntimeError(f"({self.name}) no {kind} address on {self.ifname}")
        return found

    def _vmac(self) -> Vmac:
        """Our use_vmac macvlan; with IPv6 it carries the adverts' link-local source."""
        xmit_base = self.config.vmac_xmit_base or self.family == 4
        return Vmac(
            name=self.vmac_name,
            base=self.ifname,
            vrid=self.config.virtual_router_id,
            family=self.family,
            owner=self.name,
            link_local=None if xmit_base else self.source,
        )

    def _register(self) -> None:
        """On the shared socket: our VRID's handler, and our rules for the kernel filter."""
        self.socket = self.services.sockets.register(
            self.socket_ifname,
            self.family,
            self.config.virtual_router_id,
            self._receive,
            self._rules,
        )

    def _join_group(self) -> None:
        if not self.config.unicast_peers:
            self.socket.join(self._multicast_group())

    def _multicast_group(self) -> packet.IPAddress:
        if self.family == 4:
            return ipaddress.ip_address(self.global_defs.vrrp_mcast_group4)
        return ipaddress.ip_address(self.global_defs.vrrp_mcast_group6)

    # -- sending --------------------------------------------------------------------------------
    def _transmit(self, priority: int) -> None:
        config = self.config
        advert = Advertisement(
            version=config.version,
            vrid=config.virtual_router_id,
            priority=priority,
            addresses=self._advertised,
            interval=config.advert_int,
            auth_type=packet.AUTH_TYPES.get(config.auth_type, packet.AUTH_NONE),
            auth_data=self._expected_auth,
            pseudo_header_checksum=config.checksum_with_pseudo_header,
        )
        if config.unicast_peers:
            destinations = [ipaddress.ip_address(peer) for peer in config.unicast_peers]
            ttl = config.unicast_ttl
        else:
            destinations, ttl = [self._multicast_group()], None
        sent = sum(self.socket.send(advert, self.source, dest, ttl) for dest in destinations)
        self.counters.adverts_sent += sent
        if priority == 0:
            self.counters.priority_zero_sent += sent
            log.info("(%s) sent 0 priority", self.name)

    # -- receiving (RFC 3768/9568 section 7.1: receive.ReceiveRules) ---------------------------
    def _receive(self, received: Received) -> None:
        if received.source == self.source or self.machine is None:
            return
        try:
            parsed = self._rules.check(
                received.message, received.source, received.destination, received.ttl
            )
        except InvalidPacket as bad:
            self.services.drops.drop(self.name, bad.reason, f"({self.name}) {bad.detail}")
            return
        self._check_addresses(parsed)
        advertisement = parsed.advertisement()
        self.counters.adverts_received += 1
        if advertisement.priority == 0:
            self.counters.priority_zero_received += 1
        self.machine.receive(advertisement, received.source)

    def _check_addresses(self, parsed: packet.Message) -> None:
        """keepalived logs a differing address list once and still accepts the advert."""
        mismatch = not self._rules.same_addresses(parsed)
        self.counters.address_list_mismatches += mismatch
        if mismatch and not self._address_mismatch_logged:
            log.info(
                "(%s) ip address list in advert from VRID %d differs from ours",
                self.name,
                parsed.vrid,
            )
        self._address_mismatch_logged = mismatch

    # -- transitions ----------------------------------------------------------------------------
    def _on_transition(self, old: State, new: State) -> None:
        self.last_transition = time.time()
        self.counters.became_master += new == State.MASTER
        self.counters.released_master += old == State.MASTER
        if old == State.MASTER:  # no announcement of a VIP this router is giving up
            self._stop_announcing()
        self._request_vip_sync()
        if new in (State.MASTER, State.BACKUP, State.FAULT):
            scripts = {
                State.MASTER: self.config.notify_master,
                State.BACKUP: self.config.notify_backup,
                State.FAULT: self.config.notify_fault,
            }
            self.services.notifier.state_changed(
                "INSTANCE",
                self.name,
                new.value,
                self.machine.effective_priority,
                scripts[new],
                self.config.notify,
            )
        self.on_state(self, old, new)

    def _request_vip_sync(self) -> None:
        task = self.services.loop.create_task(self._sync_vips())
        self._vip_tasks.add(task)
        task.add_done_callback(self._vip_tasks.discard)

    async def _settle_vips(self) -> None:
        if self._vip_tasks:
            await asyncio.gather(*list(self._vip_tasks), return_exceptions=True)

    async def _sync_vips(self) -> None:
        """Bring the VIPs, virtual_routes and virtual_rules in line with the state and the
        configuration now (requests run one at a time, in order): a master holds every one
        configured, the other states none. As keepalived: addresses, routes, rules are added
        in that order and removed in the reverse one."""
        async with self._vip_lock:
            master = self.machine is not None and self.machine.state == State.MASTER
            wanted = {}
            if master:
                wanted = {(vip.address, dev): (vip, dev) for vip, dev in self._all_vips()}
            held, self._vips_held = self._vips_held, wanted
            added = [entry for key, entry in wanted.items() if key not in held]
            dropped = [entry for key, entry in held.items() if key not in wanted]
            routing = self._routing_wanted(master)
            held_routing, self._routing_held = self._routing_held, routing
            gone = [entry for entry in reversed(held_routing) if entry not in routing]
            await self.services.routing.apply_all(gone, False, f"({self.name}) ")
            blocked = drops_vip_traffic(self.config, self.global_defs)
            if master:  # as keepalived: no_accept's drop rules before the VIPs, gone after
                await self.services.firewall.block(self.name, wanted.values() if blocked else ())
            if dropped:
                if not wanted:
                    self._stop_announcing()
                    log.info("(%s) removing VIPs.", self.name)
                await self._each_vip(dropped, self.services.addresses.remove, "removing")
            if not master:
                await self.services.firewall.block(self.name, ())
            if added:
                await self._each_vip(added, self.services.addresses.add, "adding")
                self._start_announcing()
            new = [entry for entry in routing if entry not in held_routing]
            await self.services.routing.apply_all(
                new, True, f"({self.name}) ", on_deleted=self._routing_deleted
            )

    def _routing_deleted(self, entry) -> None:
        """keepalived: a tracked virtual route or rule deleted behind a master's back makes it
        a backup (it takes over again, and adds them again, when no one else does)."""
        if self.machine is not None and self.machine.state == State.MASTER:
            log.info("(%s) %s deleted - going to BACKUP", self.name, describe(entry))
            self.machine.force_backup()

    def _routing_wanted(self, master: bool) -> tuple:
        if not master:
            return ()
        return tuple(dict.fromkeys((*self.config.virtual_routes, *self.config.virtual_rules)))

    def _all_vips(self):
        """Each VIP with its device: with use_vmac, those of our interface and family are on
        the VMAC (keepalived's vrrp_complete_instance)."""
        for vip in (*self.config.virtual_ipaddresses, *self.config.virtual_ipaddresses_excluded):
            dev = vip.dev or self.ifname
            if self.vmac_name and dev == self.ifname and vip.family == self.family:
                dev = self.vmac_name
            yield vip, dev

    async def _each_vip(self, vips, action, verb: str) -> None:
        for vip, dev in vips:
            try:
                await action(vip, dev)
            except Exception as error:  # one bad VIP must not keep the others away
                log.error("(%s) %s %s on %s failed: %s", self.name, verb, vip.address, dev, error)

    async def _remove_leftover_vips(self) -> None:
        """A run that crashed may have left our VIPs behind: a backup must not hold them."""
        for vip, dev in self._all_vips():
            try:
                if await self.services.addresses.present(vip, dev):
                    log.info("(%s) removing leftover VIP %s from %s", self.name, vip.address, dev)
                    await self.services.addresses.remove(vip, dev)
            except Exception as error:
                log.warning("(%s) cannot check VIP %s: %s", self.name, vip.address, error)

    # -- gratuitous ARP / unsolicited NA --------------------------------------------------------
    def _garp_setting(self, name: str):
        value = getattr(self.config, name)
        return getattr(self.global_defs, f"vrrp_{name}") if value is None else value

    def _start_announcing(self) -> None:
        """A burst now, another after garp_master_delay, then every garp_master_refresh."""
        self._stop_announcing()
        loop = self.services.loop
        self._announce_burst(self._garp_setting("garp_master_repeat"))
        delay = self._garp_setting("garp_master_delay")
        if delay:
            repeat = self._garp_setting("garp_master_repeat")
            self._keep_timer(loop.call_later(delay, self._announce_burst, repeat))
        refresh = self._garp_setting("garp_master_refresh")
        if refresh:
            self._schedule_refresh(loop.time() + refresh, refresh)

    def _schedule_refresh(self, when: float, every: float) -> None:
        def refresh() -> None:
            self._announce_burst(self._garp_setting("garp_master_refresh_repeat"))
            self._schedule_refresh(when + every, every)

        self._keep_timer(self.services.loop.call_at(when, refresh))

    def _lower_priority_heard(self) -> None:
        """keepalived: a master hearing a lower priority announces its VIPs again (and the other
        members of its sync group theirs), in case that router took them."""
        self.announce_to_lower_priority()
        if self.on_lower_priority is not None:
            self.on_lower_priority(self)

    def announce_to_lower_priority(self) -> None:
        """garp_lower_prio_repeat gratuitous ARPs now and again after garp_lower_prio_delay.

        At most once per advert interval (a lower router sends one advert per interval): a flood
        of lower priority adverts cannot turn into a flood of gratuitous ARPs."""
        repeat = self._lower_prio_garp_setting("repeat")
        now = self.services.loop.time()
        if not repeat or now < self._lower_prio_garp_at + self.config.advert_int:
            return
        self._lower_prio_garp_at = now
        self._announce_burst(repeat)
        delay = self._lower_prio_garp_setting("delay")
        if delay:
            self._keep_timer(self.services.loop.call_later(delay, self._announce_burst, repeat))

    def _lower_prio_garp_setting(self, name: str) -> int:
        """The instance's, else 0 under vrrp_strict, else the global one, else the master one's."""
        value = getattr(self.config, f"garp_lower_prio_{name}")
        if value is None and self.global_defs.vrrp_strict:
            return 0
        if value is None:
            value = getattr(self.global_defs, f"vrrp_garp_lower_prio_{name}")
        if value is None:
            value = getattr(self.global_defs, f"vrrp_garp_master_{name}")
        return value

    def _keep_timer(self, timer: asyncio.TimerHandle) -> None:
        """Remember a pending announcement so leaving MASTER can cancel it; forget fired ones."""
        now = self.services.loop.time()
        self._garp_timers = [t for t in self._garp_timers if t.when() >= now]
        self._garp_timers.append(timer)

    def _announce_burst(self, count: int) -> None:
        for _round in range(count):  # 0 only from vrrp_min_garp's refresh_repeat: none
            self._announce_all()

    def _announce_all(self) -> None:
        if self.machine is None or self.machine.state != State.MASTER:
            return
        for vip, dev in self._all_vips():
            self.services.announcer.queue(self, dev, vip.address.ip, self._announced)

    def _announced(self) -> None:
        self.counters.gratuitous_announcements_sent += 1

    def _stop_announcing(self) -> None:
        self.services.announcer.forget(self)
        for timer in self._garp_timers:
            timer.cancel()
        self._garp_timers.clear()

    # -- tracking -------------------------------------------------------------------------------
    def _unwatch_tracking(self) -> None:
        self.services.links.unwatch(self._link_changed)
        for _tracks, trackers, listener, _apply in self._tracked_kinds():
            for tracker in trackers.values():
                tracker.unsubscribe(listener)

    def _tracked_kinds(self) -> tuple:
        """For scripts, files, processes: our entries, the trackers by name, our listener to
        them, and what applies a tracker's state to us."""
        services, config = self.services, self.config
        return (
            (config.track_scripts, services.scripts, self._script_changed, self._apply_script),
            (config.track_files, services.files, self._file_changed, self._apply_file),
            (
                config.track_processes,
                services.processes,
                self._process_changed,
                self._apply_process,
            ),
        )

    def _watch_tracking(self) -> None:
        links, config = self.services.links, self.config
        watched = [
            self.ifname,
            self.socket_ifname,
            *self._vip_devices(),
            *(t.name for t in config.track_interfaces),
            *config.static_track_interfaces,
        ]
        for ifname in dict.fromkeys(watched):
            self._apply_link(ifname, links.watch(ifname, self._link_changed))
        for tracks, trackers, listener, apply in self._tracked_kinds():
            for track in tracks:
                tracker = trackers.get(track.name)
                if tracker is not None:
                    tracker.subscribe(listener)
                    apply(track.name, tracker.state)
        self._update_priority()

    def _vip_devices(self) -> set[str]:
        return {dev for _vip, dev in self._all_vips()} - {self.ifname}

    def _link_changed(self, ifname: str, link: Link) -> None:
        self._apply_link(ifname, link)
        self._update_priority()

    def _script_changed(self, name: str, ok: bool) -> None:
        self._apply_script(name, ok)
        self._update_priority()

    def _file_changed(self, name: str, value: int) -> None:
        self._apply_file(name, value)
        self._update_priority()

    def _process_changed(self, name: str, ok: bool) -> None:
        self._apply_process(name, ok)
        self._update_priority()

    def _apply_link(self, ifname: str, link: Link) -> None:
        """Our interface or a VIP's gone is FAULT whatever the tracking, as is the interface of
        a static entry of one of our track_groups down or gone; our interface back
        (a new index) gets a new socket before the state can move, so that the first advert
        goes out on it."""
        if ifname == self.socket_ifname:
            self.socket.follow(link.index)
        if ifname == self.ifname:
            self._follow_interface(link)
        if ifname in (self.ifname, self.socket_ifname) or ifname in self._vip_devices():
            self._set_fault(f"{ifname} deleted", link.index is None)
        if ifname == self.ifname and not self.config.dont_track_primary:
            self._set_fault(f"{ifname} down", not link.up)
        for track in self.config.track_interfaces:
            if track.name == ifname:
                self._apply_weight(f"interface {ifname}", track.weight, link.up != track.reverse)
        if ifname in self.config.static_track_interfaces:
            # keepalived: a track_group's static entry on it cannot be restored while it is down
            self._set_fault(f"static entries on {ifname} down", not link.up)

    def _follow_interface(self, link: Link) -> None:
        """A new index: once up, the source address found again (a re-created interface has
        new addresses: an IPv6 link-local comes from its new MAC); the kernel deleted our VMAC
        with the old one, so it is made again on the new."""
        known = self._base_index
        moved = None not in (link.index, known) and link.index != known
        self._base_index = known if link.index is None else link.index
        if moved and self.vmac_name and self._vmac_task is None:
            self._vmac_task = self.services.loop.create_task(self._recreate_vmac())
        configured = self.config.unicast_src_ip or self.config.mcast_src_ip
        self._source_stale = (self._source_stale or moved) and not configured
        if link.up and self._source_stale and self._source_task is None:
            self._source_task = self.services.loop.create_task(self._refresh_source())

    async def _recreate_vmac(self) -> None:
        try:
            await self._make_vmac()
        finally:
            self._vmac_task = None

    async def _make_vmac(self) -> None:
        try:
            await self.services.vmacs.create(self._vmac())
        except (OSError, RuntimeError) as error:
            log.error("(%s) VMAC %s cannot be created: %s", self.name, self.vmac_name, error)

    async def _refresh_source(self) -> None:
        try:
            for look in range(SOURCE_LOOKS):
                try:
                    source = await self._choose_source()
                except OSError:
                    return  # gone again: looked for once it is back
                except RuntimeError as missing:
                    if look == SOURCE_LOOKS - 1:
                        log.warning("%s", missing)
                    await asyncio.sleep(SOURCE_WAIT)
                    continue
                self._source_stale = False
                if source != self.source:
                    log.info("(%s) source address on %s is now %s", self.name, self.ifname, source)
                    self.source = source
                    self.machine.settings.primary_address = source
                    if self._vmac().link_local is not None:  # the VMAC sends from it too
                        await self._make_vmac()
                return
        finally:
            self._source_task = None

    @staticmethod
    def _weights(tracks: list, tracked) -> Iterator[tuple[int, bool]]:
        """(weight, reverse) of each of our entries naming `tracked`: the entry's own weight,
        else the tracked block's; reverse when either says so."""
        for track in tracks:
            if track.name == tracked.name:
                weight = tracked.weight if track.weight is None else track.weight
                yield weight, track.reverse or tracked.weight_reverse

    def _apply_script(self, name: str, ok: bool) -> None:
        for weight, reverse in self._weights(
            self.config.track_scripts, self.services.scripts[name].script
        ):
            self._apply_weight(f"script {name}", weight, ok != reverse)

    def _apply_file(self, name: str, value: int) -> None:
        """The file's value times the weight is added to the priority; below -253, FAULT."""
        tracked = self.services.files[name].track
        for weight, reverse in self._weights(self.config.track_files, tracked):
            status = file_status(value, weight, reverse)
            self._set_fault(f"file {name} failed", status == FAULT)
            self._priority_parts[f"file {name}"] = 0 if status == FAULT else status

    def _apply_process(self, name: str, ok: bool) -> None:
        tracked = self.services.processes[name].track
        for weight, reverse in self._weights(self.config.track_processes, tracked):
            self._apply_weight(f"process {name}", weight, ok != reverse)

    def _apply_weight(self, what: str, weight: int, good: bool) -> None:
        """keepalived's rule: weight 0 faults; positive weight adds when good, negative when bad."""
        if weight == 0:
            self._set_fault(f"{what} failed", not good)
            return
        self._priority_parts[what] = weight if (good == (weight > 0)) else 0

    def _set_fault(self, reason: str, faulty: bool) -> None:
        if faulty:
            self._faults.add(reason)
            self.machine.add_fault(reason)
        else:
            self._faults.discard(reason)
            self.machine.clear_fault(reason)

    def _update_priority(self) -> None:
        before = self.machine.effective_priority
        self.machine.set_effective_priority(
            self.config.priority + sum(self._priority_parts.values())
        )
        if self.machine.effective_priority != before:
            log.info(
                "(%s) Changing effective priority from %d to %d",
                self.name,
                before,
                self.machine.effective_priority,
            )

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> dict:
        machine = self.machine
        return {
            "name": self.name,
            "state": machine.state.value if machine else State.INITIALIZE.value,
            "priority": self.config.priority,
            "effective_priority": machine.effective_priority if machine else self.config.priority,
            "interface": self.ifname,
            "virtual_router_id": self.config.virtual_router_id,
            "family": self.family,
            "vips": [str(vip.address) for vip in self.config.virtual_ipaddresses],
            "last_transition": self.last_transition,
            "counters": dataclasses.asdict(self.counters),
        }
