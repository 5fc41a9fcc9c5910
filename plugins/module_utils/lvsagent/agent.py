"""`lvs-agent run`: VRRP and (when the configuration has virtual servers) LVS in one event loop.

SIGTERM / SIGINT: masters resign with priority 0, the VIPs are removed, exit 0.
SIGHUP (or the control socket's reload): the configuration is read again in a worker thread,
so that VRRP keeps its timers while a large file is parsed; a bad one is logged as
`FILE:LINE: message` and the running one stays. One agent per control socket: a lock file next
to it (control.AgentLock) makes a second `run` refuse to start.
SIGKILL: the next run removes the IPVS services and VIPs it recorded (lvsagent.owned) and no
longer declares.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time

from . import __version__
from .config import ConfigError, load
from .config.model import Config
from .control import AgentLock, AlreadyRunning, ControlServer, lock_path
from .metrics import process_status
from .metrics_server import MetricsServer
from .owned import declared_vips, owned_services, owned_vips, remove_orphan_vips
from .scripts import run_script, split_command
from .vrrp.engine import VrrpEngine
from .vrrp.machine import LoopClock

log = logging.getLogger("lvsagent.agent")

# A reload whose parsing takes longer is abandoned (the running configuration stays). The
# reading limits of config.lexer bound a parse; this is the backstop.
RELOAD_PARSE_TIMEOUT = 60.0


class StartupError(Exception):
    """Something the agent needs is missing (e.g. IPVS in the kernel): log it, exit 1."""


class ParseStillRunning(Exception):
    """A reload's parse timed out, or an abandoned one has not finished yet."""


@contextlib.contextmanager
def collection_deferred():
    """No cyclic garbage collection while a parse builds millions of objects, and none of
    them walked afterwards: a collection walks every object it tracks in one call that holds
    the GIL (hundreds of ms for a 10 MB file: a stalled loop) and would halve the parse's speed.

    The parser leaves no reference cycles, so reference counting frees all it drops; what is
    alive at the end (the new configuration) is frozen out of later collections and freed,
    by reference counting too, when a reload replaces it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def removes_everything(running: Config, new: Config) -> str:
    """Why `new` is refused when it would drop every VRRP instance and virtual server
    (an emptied or truncated file, most likely), or "" when it is acceptable."""
    if new.vrrp_instances or new.virtual_servers:
        return ""
    if not (running.vrrp_instances or running.virtual_servers):
        return ""
    return "the new configuration has no vrrp_instance and no virtual_server (empty or truncated?)"


def uses_ipvs(config: Config) -> bool:
    daemon = config.global_defs.lvs_sync_daemon
    return bool(config.virtual_servers) or (daemon is not None and daemon.instance is not None)


def data_plane(name: str):
    """The data plane lvs_data_plane names; IpvsError when it cannot run here."""
    if name == "nftables":
        from .nft.client import NftClient
        from .nft.plane import NftPlane

        return NftPlane(NftClient())
    from .ipvs import IpvsError
    from .lvs.netlink_thread import IpvsThread

    try:
        return IpvsThread()  # pyroute2's sync socket cannot run inside this loop
    except IpvsError as error:
        raise IpvsError(
            f"{error} (or have nftables do it: global_defs {{ lvs_data_plane nftables }})",
            error.errno,
        ) from error


def changes_data_plane(running: Config, new: Config, engine_running: bool) -> str:
    """Why `new` is refused when it moves the running virtual servers to another data
    plane (a restart does that), or ""."""
    before, after = running.global_defs.lvs_data_plane, new.global_defs.lvs_data_plane
    if not engine_running or before == after:
        return ""
    return f"lvs_data_plane cannot change from {before} to {after} on reload: restart the agent"


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s lvs-agent: %(message)s"))
    root = logging.getLogger("lvsagent")
    root.handlers[:] = [handler]
    root.setLevel(level)


def run(args) -> int:
    configure_logging(args.log_level)
    lock = AgentLock(lock_path(args.control_socket))
    try:
        lock.acquire()
    except AlreadyRunning as error:
        log.error("%s", error)
        return 1
    except OSError as error:
        log.error("%s: %s", lock.path, error.strerror)
        return 1
    try:
        return run_locked(args)
    finally:
        lock.release()


def run_locked(args) -> int:
    try:
        with collection_deferred():
            config = load(args.config, config_id=args.config_id)
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
        self._abandoned_parse: threading.Thread | None = None  # timed out, may still run
        self.metrics = MetricsServer(self.status)
        self._started = time.time()
        self._reloads = {"ok": 0, "refused": 0}
        self._last_reload: float | None = None  # time.time() of the last reload taken

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
            await self.metrics.listen(self.config.global_defs.metrics_listen)
            await remove_orphan_vips(self._vips, self.config, self.vrrp.addresses)
            await self._run_start_stop_script("startup")
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
            await self.metrics.close()
            if self.lvs is not None:
                await self.lvs.stop()
            await self._run_start_stop_script("shutdown")
        log.info("Stopped lvs-agent")
        return exit_code

    async def _run_start_stop_script(self, kind: str) -> None:
        """keepalived's startup_script (before VRRP and the checkers start) / shutdown_script
        (after they stopped), each waited for up to its timeout."""
        settings = self.config.global_defs
        script = getattr(settings, f"{kind}_script")
        if script is None:
            return
        timeout = getattr(settings, f"{kind}_script_timeout")
        outcome = await run_script(split_command(script.command), script.run_as, timeout)
        if outcome.code is None:
            log.warning("%s script: %s", kind, outcome.error)
        elif outcome.code > 0:  # keepalived's words
            log.info("%s script script failed, status %d", kind, outcome.code)

    async def _stop_requested_within(self, seconds: float) -> bool:
        """vrrp_startup_delay: wait before VRRP starts, unless asked to stop meanwhile."""
        if seconds:
            log.info("Delaying startup for %g seconds", seconds)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def _start_lvs(self, loop: asyncio.AbstractEventLoop) -> None:
        """The IPVS half plugs in here when the configuration declares virtual servers or a
        sync daemon following an instance, or when a killed run left services to remove."""
        owned = owned_services(self.state_dir())
        declared = uses_ipvs(self.config)
        if not declared and not await asyncio.to_thread(owned.load):
            return
        from .ipvs import IpvsError
        from .lvs.engine import LvsEngine

        try:
            plane = data_plane(self.config.global_defs.lvs_data_plane)
        except IpvsError as error:
            if not declared:
                log.warning("%s: services a previous run left behind are not removed", error)
                return
            raise StartupError(str(error)) from error
        self.lvs = LvsEngine(
            self.config, plane, LoopClock(loop), owned=owned, fifos=self.vrrp.notifier.fifos
        )
        self.vrrp.add_state_listener(self.lvs.on_vrrp_state)
        await self.lvs.start()

    async def _record_vips(self, *configs: Config) -> None:
        vips = set().union(*(declared_vips(config) for config in configs))
        await asyncio.to_thread(self._vips.save, vips)

    def state_dir(self) -> str:
        """--state-dir, else the control socket's folder (agents sharing one need their own)."""
        return self.args.state_dir or os.path.dirname(os.path.abspath(self.args.control_socket))

    async def reload(self, allow_empty: bool = False) -> dict:
        """`allow_empty`: an explicit request (`lvs-agent reload --allow-empty`, the
        vrrp_instance module removing the last instance) may leave nothing declared."""
        reply = await self._reload(allow_empty)
        if "error" in reply:
            self._reloads["refused"] += 1
        else:
            self._reloads["ok"] += 1
            self._last_reload = time.time()
        return reply

    async def _reload(self, allow_empty: bool) -> dict:
        async with self._reload_lock:
            log.info("Reloading configuration from %s", self.args.config)
            started = time.monotonic()
            try:
                config = await self._parse()
            except ParseStillRunning as error:
                log.error("Reload failed: %s - keeping the running configuration", error)
                return {"error": str(error)}
            except ConfigError as error:
                problems = [str(problem) for problem in error.problems]
                for problem in problems:
                    log.error("%s", problem)
                log.error("Reload failed: keeping the running configuration")
                return {"error": "configuration has errors", "problems": problems}
            except OSError as error:
                log.error("%s: %s - keeping the running configuration", self.args.config, error)
                return {"error": f"{self.args.config}: {error.strerror}"}
            emptied = "" if allow_empty else removes_everything(self.config, config)
            refused = emptied or changes_data_plane(self.config, config, self.lvs is not None)
            if refused:
                log.error("Reload refused: %s - keeping the running configuration", refused)
                return {"error": refused}
            # The record leads: new VIPs are owned before VRRP may add them.
            await self._record_vips(self.config, config)
            self.config = config
            await self.vrrp.apply_config(config)
            await self._record_vips(config)
            if self.lvs is not None:
                await self.lvs.apply_config(config)
            elif uses_ipvs(config):
                await self._start_lvs(asyncio.get_running_loop())
            await self._follow_metrics_listen(config)
            log.info("Reload finished in %d usec", (time.monotonic() - started) * 1e6)
            return {"reloaded": True, "warnings": [str(w) for w in config.warnings]}

    async def _follow_metrics_listen(self, config: Config) -> None:
        listen = config.global_defs.metrics_listen
        try:
            await self.metrics.listen(listen)
        except OSError as error:
            log.error("metrics_listen %s: %s - metrics served as before", listen, error.strerror)

    async def _parse(self) -> Config:
        """config.load() in a worker thread, abandoned after RELOAD_PARSE_TIMEOUT.

        A daemon thread rather than an executor's: an abandoned parse must not delay exit.
        While one still runs, a new reload is refused rather than piling threads up.
        """
        if self._abandoned_parse is not None and self._abandoned_parse.is_alive():
            raise ParseStillRunning(
                f"the parsing of {self.args.config} by an earlier reload has not finished"
            )
        loop = asyncio.get_running_loop()
        result: asyncio.Future = loop.create_future()

        def deliver(config: Config | None, error: BaseException | None) -> None:
            if result.done():  # abandoned
                return
            if error is not None:
                result.set_exception(error)
            else:
                result.set_result(config)

        def parse() -> None:
            config, error = None, None
            try:
                with collection_deferred():
                    config = load(self.args.config, config_id=self.args.config_id)
            except Exception as raised:  # handed to the loop, which reports it
                error = raised.with_traceback(None)  # its frames hold the whole parse
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(deliver, config, error)

        parser = threading.Thread(target=parse, name="config-parse", daemon=True)
        parser.start()
        try:
            return await asyncio.wait_for(result, RELOAD_PARSE_TIMEOUT)
        except asyncio.TimeoutError:
            # Only an abandoned parse holds the next reload back: one that delivered may
            # still be leaving its thread when the next reload comes.
            self._abandoned_parse = parser
            raise ParseStillRunning(
                f"parsing {self.args.config} took more than {RELOAD_PARSE_TIMEOUT:g} seconds"
            ) from None

    async def status(self) -> dict:
        return {
            "vrrp": self.vrrp.status(),
            "ipvs": await self.lvs.status() if self.lvs is not None else [],
            "vrrp_drops": dict(self.vrrp.drops),
            "vrrp_scripts": {name: t.status() for name, t in self.vrrp.scripts.items()},
            "agent": {
                "router_id": self.config.global_defs.router_id or socket.gethostname(),
                "version": __version__,
                "started": self._started,
                "reloads": dict(self._reloads),
                "last_reload": self._last_reload,
                "process": process_status(),
            },
        }
