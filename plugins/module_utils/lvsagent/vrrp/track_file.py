"""track_file: a number read from a file moves the priority of the instances that track it.

keepalived reads the file on inotify events; this tracker looks at the file's identity
(inode, size, modification time) every POLL_INTERVAL on the loop's timer and reads it, in a
worker thread, only when that changed: a new value is seen within POLL_INTERVAL (plus the read).
A missing or unreadable file, or text that is not a number, reads as 0, as in keepalived.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import TYPE_CHECKING, Optional

from .tracked import Listeners, cancelled, repeat

if TYPE_CHECKING:  # the config package imports the checkers, and FILE_CHECK imports this
    from ..config.model import TrackFile

log = logging.getLogger("lvsagent.vrrp")

POLL_INTERVAL = 1.0  # seconds between two looks at the file's identity
READ_LIMIT = 127  # keepalived reads at most this many bytes
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FAULT = -254  # a status this low puts the tracking instance in FAULT
MAX_STATUS = 253
NEVER_SEEN = ("never",)  # the identity before the first look: differs from any file's
# strtol(text, NULL, 0): leading space, a sign, then a hex, octal or decimal number
NUMBER = re.compile(rb"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def file_value(data: bytes) -> Optional[int]:
    """The number at the start of the file's text as strtol(..., 0) reads it; 0 when there is
    none; None when it is outside the 32-bit range (keepalived ignores such a value)."""
    match = NUMBER.match(data)
    if match is None:
        return 0
    sign, digits = match.groups()
    if digits[:2].lower() == b"0x":
        value = int(digits[2:], 16)
    else:
        value = int(digits, 8 if digits.startswith(b"0") else 10)
    value = -value if sign == b"-" else value
    return value if INT32_MIN <= value <= INT32_MAX + 1 else None


def file_status(
    value: int, weight: int, reverse: bool, fault: int = FAULT, ceiling: int = MAX_STATUS
) -> int:
    """keepalived's rule: with weight 0 a non-zero value (a zero one with reverse) is `fault`;
    otherwise value * weight (negated with reverse), within [fault, ceiling], is added to the
    priority (a real server's weight, for FILE_CHECK), and `fault` means FAULT."""
    if weight == 0:
        return fault if (value != 0) != reverse else 0
    status = value * weight * (-1 if reverse else 1)
    return max(fault, min(ceiling, status))


def read_value(path: str) -> Optional[int]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        return file_value(os.read(fd, READ_LIMIT))
    except OSError:
        return 0
    finally:
        os.close(fd)


def identity(path: str) -> Optional[tuple]:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def initialise(track: TrackFile) -> None:
    """init_file: write the value when the file is missing (or always, with overwrite)."""
    if track.init_value is None:
        return
    if os.path.exists(track.file) and not track.init_overwrite:
        return
    if os.path.exists(track.file) and not os.path.isfile(track.file):
        log.warning("Cannot initialise track file %s - it is not a regular file", track.name)
        return
    try:
        with open(track.file, "w") as out:
            out.write(f"{track.init_value}\n")
    except OSError as error:
        log.warning("Unable to initialise track file %s: %s", track.name, error.strerror)


class FileTracker(Listeners):
    """Follows one track_file; tells its listeners `(name, value)` when the value changes."""

    def __init__(self, track: TrackFile, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.track = track
        self.loop = loop
        self.value = 0
        self._seen: Optional[tuple] = NEVER_SEEN
        self._task: Optional[asyncio.Task] = None

    @property
    def state(self) -> int:
        return self.value

    async def start(self) -> None:
        """Initialise the file if asked, read it once, then follow it."""
        if self._task is None:
            await asyncio.to_thread(initialise, self.track)
            await self.look()
            self._task = self.loop.create_task(repeat(POLL_INTERVAL, self.look))

    async def stop(self) -> None:
        await cancelled(self._task)
        self._task = None

    async def look(self) -> None:
        """Read the file when it is not the one last read; report a new value."""
        path = self.track.file
        seen = identity(path)
        if seen == self._seen:
            return
        self._seen = seen
        value = await asyncio.to_thread(read_value, path)
        if value is None:
            log.info("Invalid number read from %s - ignoring", path)
            return
        if value != self.value:
            self.value = value
            self.tell(self.track.name, value)
