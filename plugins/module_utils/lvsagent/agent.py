"""`lvs-agent run`: VRRP and (when the configuration has virtual servers) LVS in one event loop.

SIGTERM / SIGINT: masters resign with priority 0, the VIPs are removed, exit 0.
SIGHUP (or the control socket's reload): the configuration is read again; a bad one is logged
as `FILE:LINE: message` and the running one stays.
SIGKILL: the next run removes the IPVS services and VIPs it recorded (lvsagent.owned) and no
longer declares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from .config import ConfigError, load
from .config.model import Config
from .control import ControlServer
from .owned import declared_vips, owned_services, owned_vips, remove_orphan_vips
from .vrrp.engine import VrrpEngine
from .vrrp.machine import LoopClock

log = logging.getLogger("lvsagent.agent")


class StartupError(Exception):
    """Something the agent needs is missing (e.g. IPVS in the kernel): log it, exit 1."""


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s lvs-agent: %(message)s"))
    root = logging.getLogger("lvsagent")
    root.handlers[:] = [handler]
    root.setLevel(level)


def run(args) -> int:
    configure_logging(args.log_level)
    try:
        config = load(args.config)
    except ConfigError as error:
        for problem in error.problems:
            log.error("%s", problem)
        return 1
    except OSError as error:
        log.error("%s: %s", args.config, error.strerror)
        return 1
    for warning in config.warnings:
        log.warning("%s", warning)
    return asyncio.run(Agent(args, config).main())


class Agent:
    def __init__(self, args, config: Config) -> None:
        self.args = args
        self.config = config
        self.vrrp: VrrpEngine | None = None
        self.lvs = None
        self._stopping: asyncio.Event | None = None
        self._reload_lock: asyncio.Lock | None = None
        self._vips = owned_vips(self.state_dir())

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        log.info("Starting lvs-agent")
        self.vrrp = VrrpEngine(self.config, loop)
        control = ControlServer(
            self.args.control_socket, {"status": self.status, "reload": self.reload}
        )
        exit_code, vrrp_started = 0, False
        try:
            await control.start()
            await remove_orphan_vips(self._vips, self.config, self.vrrp.addresses)
            await self._start_lvs(loop)
            if not await self._stop_requested_within(self.config.global_defs.vrrp_startup_delay):
                vrrp_started = True
                await self.vrrp.start()
                await self._stopping.wait()
        except (StartupError, OSError) as error:
            log.error("%s", error)
            exit_code = 1
        finally:
            log.info("Stopping lvs-agent")
            await self.vrrp.stop()  # first: the priority-0 adverts are what the peers wait for
            if vrrp_started:  # else a killed run's VIPs may still be there: keep the record
                await self._record_vips()  # the VIPs are gone
            await control.close()
            if self.lvs is not None:
                await self.lvs.stop()
        log.info("Stopped lvs-agent")
        return exit_code

    async def _stop_requested_within(self, seconds: float) -> bool:
        """vrrp_startup_delay: wait before VRRP starts, unless asked to stop meanwhile."""
        if seconds:
            log.info("Delaying startup for %g seconds", seconds)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def _start_lvs(self, loop: asyncio.AbstractEventLoop) -> None:
        """The IPVS half plugs in here when the configuration declares virtual servers, or
        when a killed run left services to remove."""
        owned = owned_services(self.state_dir())
        declared = bool(self.config.virtual_servers)
        if not declared and not await asyncio.to_thread(owned.load):
            return
        from .ipvs import IpvsError
        from .lvs import LvsEngine
        from .lvs.netlink_thread import IpvsThread

        try:
            client = IpvsThread()  # pyroute2's sync socket cannot run inside this loop
        except IpvsError as error:
            if not declared:
                log.warning("%s: services a previous run left behind are not removed", error)
                return
            raise StartupError(str(error)) from error
        self.lvs = LvsEngine(self.config, client, LoopClock(loop), owned=owned)
        self.vrrp.add_state_listener(self.lvs.on_vrrp_state)
        await self.lvs.start()

    async def _record_vips(self, *configs: Config) -> None:
        vips = set().union(*(declared_vips(config) for config in configs))
        await asyncio.to_thread(self._vips.save, vips)

    def state_dir(self) -> str:
        """--state-dir, else the control socket's folder (agents sharing one need their own)."""
        return self.args.state_dir or os.path.dirname(os.path.abspath(self.args.control_socket))

    async def reload(self) -> dict:
        async with self._reload_lock:
            log.info("Reloading configuration from %s", self.args.config)
            try:
                config = load(self.args.config)
            except ConfigError as error:
                problems = [str(problem) for problem in error.problems]
                for problem in problems:
                    log.error("%s", problem)
                log.error("Reload failed: keeping the running configuration")
                return {"error": "configuration has errors", "problems": problems}
            except OSError as error:
                log.error("%s: %s - keeping the running configuration", self.args.config, error)
                return {"error": f"{self.args.config}: {error.strerror}"}
            # The record leads: new VIPs are owned before VRRP may add them.
            await self._record_vips(self.config, config)
            self.config = config
            await self.vrrp.apply_config(config)
            await self._record_vips(config)
            if self.lvs is not None:
                await self.lvs.apply_config(config)
            elif config.virtual_servers:
                await self._start_lvs(asyncio.get_running_loop())
            return {"reloaded": True, "warnings": [str(w) for w in config.warnings]}

    async def status(self) -> dict:
        return {
            "vrrp": self.vrrp.status(),
            "ipvs": self.lvs.status() if self.lvs is not None else [],
            "vrrp_drops": dict(self.vrrp.drops),
        }
