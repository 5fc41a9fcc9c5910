"""Every vrrp_instance of a configuration in the agent's loop: start, stop, reload, status.

Sync groups are kept together here: when one member becomes master, backup or faulty, the
others follow (keepalived's vrrp_sync_group).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from typing import Callable, Optional

from ..config.model import Config, SyncGroup
from .addresses import AddressManager, Announcer
from .firewall import Firewall
from .instance import Instance, Services
from .machine import LoopClock, State
from .notify import Notifier
from .promote import PromoteSecondaries
from .receive import Drops
from .routes import RoutingManager, StaticEntries
from .sockets import SocketPool
from .track_file import FileTracker
from .track_process import ProcessWatch
from .tracking import LinkMonitor, ScriptTracker
from .vmac import VmacLinks

log = logging.getLogger("lvsagent.vrrp")

SYNC_FAULT = "sync group"
GROUP_SCRIPTS = {
    State.MASTER: "notify_master",
    State.BACKUP: "notify_backup",
    State.FAULT: "notify_fault",
}


def without_locations(value):
    """A comparable form of a model object: reloading must not restart what only moved lines."""
    if dataclasses.is_dataclass(value):
        return tuple(
            (f.name, without_locations(getattr(value, f.name)))
            for f in dataclasses.fields(value)
            if f.name != "location"
        )
    if isinstance(value, (list, tuple)):
        return tuple(without_locations(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((key, without_locations(item)) for key, item in value.items()))
    return value


class VrrpEngine:
    """Runs the instances; `add_state_listener` tells others (LVS ha_suspend) of transitions."""

    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.loop = loop
        self.drops: collections.Counter = collections.Counter()  # per reason, for the status
        self.drop_log = Drops(LoopClock(loop), self.drops)
        self.addresses = AddressManager()
        self.routing = RoutingManager(self.addresses)
        self.announcer = Announcer(loop)
        self.notifier = Notifier()
        self.links = LinkMonitor(self.loop)
        self.static = StaticEntries(self.routing, self.links)
        self.sockets = SocketPool(self.loop, self.drop_log)
        self.vmacs = VmacLinks(self.addresses)
        self.promotion = PromoteSecondaries()
        self.firewall = Firewall()
        self.scripts: dict[str, ScriptTracker] = {}
        self.files: dict[str, FileTracker] = {}
        self.processes = ProcessWatch(loop)
        self.instances: dict[str, Instance] = {}
        self._listeners: list[Callable[[str, str], None]] = []
        self._propagating = False
        self._group_states: dict[str, State] = {}  # the state last notified for each group

    def add_state_listener(self, listener: Callable[[str, str], None]) -> None:
        """`listener(instance_name, state)` on every transition (state: MASTER, BACKUP, ...)."""
        self._listeners.append(listener)

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.announcer.pace(self.config)
        await self.notifier.configure(self.config.global_defs)
        await self.static.start(self.config)
        await self.firewall.configure(self.config.global_defs, self.config.vrrp_instances)
        await self._start_trackers(self.config)
        for instance_config in self.config.vrrp_instances:
            await self._start_instance(self.config, instance_config)

    async def stop(self) -> None:
        """Every master resigns at once (priority 0), then the VIPs go and the rest closes."""
        for instance in self.instances.values():
            instance.resign()
        for name in list(self.instances):
            await self._stop_instance(name)
        for group in self.config.sync_groups:
            if self._group_states.pop(group.name, None) is not None:
                self.notifier.state_changed(
                    "GROUP", group.name, "STOP", 0, group.notify_stop, group.notify
                )
        for tracker in self.scripts.values():
            await tracker.stop()
        self.scripts.clear()
        for tracker in self.files.values():
            await tracker.stop()
        self.files.clear()
        for name in list(self.processes.trackers):
            await self.processes.remove(name)
        await self.static.stop()
        await self.firewall.stop()
        await self.notifier.drain()
        self.sockets.close()
        self.links.close()
        self.announcer.close()
        self.addresses.close()

    async def apply_config(self, config: Config) -> None:
        """Reload as keepalived: an instance that keeps its name, interface, VRID and family keeps
        its state and takes the new settings; the others stop (a master resigns) or start."""
        old, self.config = self.config, config
        old_keys = {i.name: self._signature(old, i) for i in old.vrrp_instances}
        new_configs = {i.name: i for i in config.vrrp_instances}
        for name, instance in list(self.instances.items()):
            new = new_configs.get(name)
            if new is None or self._identity(new) != self._identity(instance.config):
                await self._stop_instance(name)
        changed_scripts = [
            name
            for name, tracker in self.scripts.items()
            if without_locations(config.vrrp_scripts.get(name)) != without_locations(tracker.script)
        ]
        for name in changed_scripts:
            await self.scripts.pop(name).stop()
        for name, file_tracker in list(self.files.items()):
            if without_locations(config.track_files.get(name)) != without_locations(
                file_tracker.track
            ):
                await self.files.pop(name).stop()
        for name, process_tracker in list(self.processes.trackers.items()):
            if without_locations(config.track_processes.get(name)) != without_locations(
                process_tracker.track
            ):
                await self.processes.remove(name)
        self.announcer.pace(config)
        await self.notifier.configure(config.global_defs)
        await self.static.update(config)
        await self.firewall.configure(config.global_defs, config.vrrp_instances)
        await self._start_trackers(config)
        for instance_config in config.vrrp_instances:
            name = instance_config.name
            if name not in self.instances:
                await self._start_instance(config, instance_config)
            elif old_keys.get(name) != self._signature(config, instance_config):
                await self._update_instance(config, instance_config)
        log.info("Reload finished: %d VRRP instance(s)", len(self.instances))

    @staticmethod
    def _identity(instance_config) -> tuple:
        return (
            instance_config.interface,
            instance_config.virtual_router_id,
            instance_config.family,
            instance_config.use_vmac,
            instance_config.vmac_name,
            instance_config.vmac_xmit_base,
        )

    def _signature(self, config: Config, instance_config) -> tuple:
        scripts = [config.vrrp_scripts.get(track.name) for track in instance_config.track_scripts]
        files = [config.track_files.get(track.name) for track in instance_config.track_files]
        processes = [
            config.track_processes.get(track.name) for track in instance_config.track_processes
        ]
        return without_locations(
            (
                instance_config,
                scripts,
                files,
                processes,
                self._group_of(config, instance_config.name),
                config.global_defs,
            )
        )

    async def _start_trackers(self, config: Config) -> None:
        """A tracker for each vrrp_script, track_file and vrrp_track_process an instance uses
        and that is not running yet; files and processes are read once before this returns."""
        used = {t.name for i in config.vrrp_instances for t in i.track_scripts}
        for name in sorted(used):
            if name in config.vrrp_scripts and name not in self.scripts:
                tracker = ScriptTracker(config.vrrp_scripts[name], self.loop)
                self.scripts[name] = tracker
                tracker.start()
        for name in sorted({t.name for i in config.vrrp_instances for t in i.track_files}):
            if name in config.track_files and name not in self.files:
                self.files[name] = FileTracker(config.track_files[name], self.loop)
                await self.files[name].start()
        for name in sorted({t.name for i in config.vrrp_instances for t in i.track_processes}):
            if name in config.track_processes and name not in self.processes.trackers:
                await self.processes.add(config.track_processes[name])

    def _services(self) -> Services:
        return Services(
            loop=self.loop,
            sockets=self.sockets,
            addresses=self.addresses,
            routing=self.routing,
            announcer=self.announcer,
            notifier=self.notifier,
            links=self.links,
            scripts=self.scripts,
            files=self.files,
            processes=self.processes.trackers,
            drops=self.drop_log,
            vmacs=self.vmacs,
            promotion=self.promotion,
            firewall=self.firewall,
        )

    async def _start_instance(self, config: Config, instance_config) -> None:
        instance = Instance(
            instance_config,
            config.global_defs,
            self._services(),
            self._state_changed,
            self._lower_priority_heard,
        )
        self.instances[instance.name] = instance
        try:
            await instance.start()
        except (OSError, RuntimeError) as error:
            log.error("(%s) cannot start: %s", instance.name, error)
            self.instances.pop(instance.name, None)

    async def _update_instance(self, config: Config, instance_config) -> None:
        instance = self.instances[instance_config.name]
        try:
            await instance.update(instance_config, config.global_defs)
        except (OSError, RuntimeError) as error:
            log.error("(%s) cannot reload: %s", instance.name, error)
            await self._stop_instance(instance.name)

    async def _stop_instance(self, name: str) -> None:
        instance = self.instances.pop(name)
        await instance.stop()

    # -- sync groups ----------------------------------------------------------------------------
    @staticmethod
    def _group_of(config: Config, name: str) -> Optional[SyncGroup]:
        return next((group for group in config.sync_groups if name in group.group), None)

    def _lower_priority_heard(self, instance: Instance) -> None:
        group = self._group_of(self.config, instance.name)
        for name in group.group if group else ():
            member = self.instances.get(name)
            if member is not None and member is not instance:
                member.announce_to_lower_priority()

    def _state_changed(self, instance: Instance, old: State, new: State) -> None:
        for listener in list(self._listeners):
            try:
                listener(instance.name, new.value)
            except Exception:
                log.exception("state listener failed for %s", instance.name)
        group = self._group_of(self.config, instance.name)
        if group is None or self._propagating:
            return
        members = [
            self.instances[name]
            for name in group.group
            if name in self.instances and name != instance.name
        ]
        self._propagating = True
        try:
            if old == State.FAULT:
                self._hold_for_faulty_members([instance, *members])
                if instance.machine.state == State.FAULT:
                    return  # a member is still faulty: the group too
            for member in members:
                self._follow(member, old, new)
        finally:
            self._propagating = False
        if (
            new in GROUP_SCRIPTS
            and self._group_settled(group, new)
            and self._group_states.get(group.name) != new
        ):
            self._group_states[group.name] = new
            log.info("VRRP_Group(%s) Syncing instances to %s state", group.name, new.value)
            self.notifier.state_changed(
                "GROUP",
                group.name,
                new.value,
                0,  # keepalived gives a group priority 0
                getattr(group, GROUP_SCRIPTS[new]),
                group.notify,
            )

    @staticmethod
    def _hold_for_faulty_members(members: list[Instance]) -> None:
        """A member is held in FAULT (SYNC_FAULT) exactly while another has a fault of its own:
        members that fail together (a group's tracked script) recover together, whichever
        hears of the recovery first."""
        running = [m.machine for m in members if m.machine is not None]
        for machine in running:
            if any(other.fault_reasons - {SYNC_FAULT} for other in running if other is not machine):
                machine.add_fault(SYNC_FAULT)
            else:
                machine.clear_fault(SYNC_FAULT)

    def _group_settled(self, group: SyncGroup, state: State) -> bool:
        return all(
            self.instances[name].machine.state == state
            for name in group.group
            if name in self.instances and self.instances[name].machine is not None
        )

    @staticmethod
    def _follow(member: Instance, old: State, new: State) -> None:
        machine = member.machine
        if machine is None:
            return
        if new == State.FAULT:
            machine.add_fault(SYNC_FAULT)
        elif old == State.FAULT:
            machine.clear_fault(SYNC_FAULT)
        if new == State.MASTER:
            machine.force_master()
        elif new == State.BACKUP and old == State.MASTER:
            machine.force_backup()

    # -- status ---------------------------------------------------------------------------------
    def status(self) -> list[dict]:
        return [instance.status() for instance in self.instances.values()]
