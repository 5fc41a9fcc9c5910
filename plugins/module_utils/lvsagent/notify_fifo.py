"""notify_fifo / vrrp_notify_fifo / lvs_notify_fifo: state lines written to FIFOs, in order,
as keepalived does: VRRP lines go to notify_fifo and vrrp_notify_fifo, virtual and real server
lines to notify_fifo and lvs_notify_fifo. One `NotifyFifos` serves the VRRP and LVS engines.

As keepalived: the FIFO is created (mode 0644) when missing and removed at close if it was
created here; its `*_script` is started with the FIFO's path as last argument; the FIFO is
opened read-write and non-blocking, so that writing never waits for a reader and a reader
that comes and goes loses nothing the pipe's buffer (64 KiB) can hold. When the buffer is
full a line is dropped (counted, logged once per run of drops): the loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from typing import Optional

from .config.model import FIFO_PREFIXES, Script
from .scripts import run_script, split_command
from .vrrp.tracked import cancelled

log = logging.getLogger("lvsagent")

FIFO_MODE = 0o644


def is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def fifo_setting(path: Optional[str], script: Optional[Script]) -> tuple:
    """What a FIFO's configuration means, without where it was written (a reload that only
    moved lines keeps the FIFO open and its reader running)."""
    if script is None:
        return (path, None)
    user = script.user and (script.user.user, script.user.group)
    return (path, script.command, user, script.run_as)


class NotifyFifo:
    def __init__(self, path: str, script: Optional[Script]) -> None:
        self.path = path
        self.script = script
        self.dropped = 0
        self._fd: Optional[int] = None
        self._created = False
        self._dropping = False
        self._reader: Optional[asyncio.Task] = None

    def open(self) -> None:
        try:
            os.mkfifo(self.path, FIFO_MODE)
            self._created = True
        except FileExistsError:
            if not is_fifo(self.path):
                log.error("Notify FIFO %s exists and is not a FIFO", self.path)
                return
        except OSError as error:
            log.error("Unable to create notify FIFO %s: %s", self.path, error.strerror)
            return
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            log.error("Unable to open notify FIFO %s: %s", self.path, error.strerror)
            self._remove()
            return
        if self.script is not None:
            argv = [*split_command(self.script.command), self.path]
            self._reader = asyncio.ensure_future(self._run_reader(argv))

    async def _run_reader(self, argv: list[str]) -> None:
        outcome = await run_script(argv, self.script.run_as, None)
        log.warning("Notify FIFO script for %s ended: %s", self.path, outcome.error or "exit 0")

    def write(self, line: str) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, line.encode(errors="replace"))
        except OSError as error:  # EAGAIN: the buffer is full, nobody reads
            self.dropped += 1
            if not self._dropping:
                log.warning("Notify FIFO %s: line dropped (%s)", self.path, error.strerror)
            self._dropping = True
            return
        self._dropping = False

    async def close(self) -> None:
        await cancelled(self._reader)
        self._reader = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._remove()

    def _remove(self) -> None:
        if self._created:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self._created = False


class NotifyFifos:
    """The FIFOs of global_defs, and which lines each gets."""

    CARRIES = {"": ("vrrp", "lvs"), "vrrp_": ("vrrp",), "lvs_": ("lvs",)}

    def __init__(self) -> None:
        self.settings: tuple = ()
        self._fifos: list[tuple[NotifyFifo, tuple]] = []

    async def configure(self, global_defs) -> None:
        """Open the FIFOs configured; a reload that changes them closes the old ones first."""
        fifos = [
            (
                getattr(global_defs, f"{prefix}notify_fifo"),
                getattr(global_defs, f"{prefix}notify_fifo_script"),
                self.CARRIES[prefix],
            )
            for prefix in FIFO_PREFIXES
        ]
        settings = tuple(fifo_setting(path, script) for path, script, _kinds in fifos)
        if settings == self.settings:
            return
        await self.close()
        self.settings = settings
        for path, script, kinds in fifos:
            if path is not None:
                fifo = NotifyFifo(path, script)
                fifo.open()
                self._fifos.append((fifo, kinds))

    def vrrp_line(self, line: str) -> None:
        self._write("vrrp", line)

    def lvs_line(self, line: str) -> None:
        self._write("lvs", line)

    def _write(self, kind: str, line: str) -> None:
        for fifo, kinds in self._fifos:
            if kind in kinds:
                fifo.write(line)

    async def close(self) -> None:
        for fifo, _kinds in self._fifos:
            await fifo.close()
        self._fifos.clear()
        self.settings = ()
