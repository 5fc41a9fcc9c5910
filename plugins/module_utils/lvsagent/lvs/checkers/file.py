"""FILE_CHECK: a number read from a track_file takes the real server out or moves its weight.

keepalived's rule (check_file.c, track_file.c): with weight 0 a non-zero value (a zero one
with reverse) takes the real server out, and 0 puts it back; otherwise value * weight (negated
with reverse) is added to the real server's weight, and only a product at or below INT32_MIN
takes it out. The weight is the FILE_CHECK's, else the track_file's. The file is read as the
VRRP track_file reads it (`vrrp.track_file`), every POLL_INTERVAL, with no retry: a change is
applied at once, as keepalived applies an inotify event.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Optional

from ...config.model import CheckSettings, TrackFile
from ...vrrp.track_file import (
    INT32_MAX,
    INT32_MIN,
    POLL_INTERVAL,
    file_status,
    initialise,
    read_value,
)
from .base import DROPPED, CheckerKind, CheckResult, CheckSpec

log = logging.getLogger("lvsagent.lvs")

# the last valid value of each file: keepalived ignores a number out of the 32-bit range
_last_values: dict[str, int] = {}


@dataclass
class FileCheck(CheckSettings):
    kind: str = "FILE_CHECK"
    track_file: str = ""
    weight: Optional[int] = None  # None = the track_file's
    weight_reverse: bool = False
    tracked: Optional[TrackFile] = field(default=None, compare=False, repr=False)  # by checks


@dataclass(frozen=True)
class FileOptions:
    name: str
    path: str
    weight: int
    reverse: bool
    init_value: Optional[int] = None
    init_overwrite: bool = False


def keywords(read) -> dict:
    return {
        "track_file": read.scalar("track_file", read.text),
        "weight": read.tracked_weight(-INT32_MAX, INT32_MAX),
    }


def problems(checker: FileCheck) -> list[tuple[str, str]]:
    if checker.track_file:
        return []
    return [(DROPPED, "FILE_CHECK has no track_file specified - ignoring")]


def complete(checker: FileCheck, real, virtual) -> None:
    """No timers of its own: the file is looked at every POLL_INTERVAL and a value is final."""
    checker.delay_loop = POLL_INTERVAL
    checker.retry = 0
    checker.warmup = 0.0


def file_options(checker: FileCheck) -> FileOptions:
    track = checker.tracked
    weight, reverse = checker.weight, checker.weight_reverse
    if weight is None:
        weight, reverse = track.weight, track.weight_reverse
    return FileOptions(
        track.name, track.file, weight, reverse, track.init_value, track.init_overwrite
    )


async def prepare(spec: CheckSpec) -> None:
    options: FileOptions = spec.options
    track = TrackFile(
        options.name,
        file=options.path,
        init_value=options.init_value,
        init_overwrite=options.init_overwrite,
    )
    await asyncio.to_thread(initialise, track)


async def file_probe(spec: CheckSpec) -> CheckResult:
    options: FileOptions = spec.options
    value = await asyncio.to_thread(read_value, options.path)
    if value is None:
        log.debug("Invalid number read from %s - ignoring", options.path)
        value = _last_values.get(options.path, 0)
    _last_values[options.path] = value
    status = file_status(value, options.weight, options.reverse, INT32_MIN, INT32_MAX)
    if status == INT32_MIN:
        return CheckResult.failed("file_value", f"value {value}")
    return CheckResult(True, offset=status)


KIND = CheckerKind(
    name="FILE_CHECK",
    model=FileCheck,
    probe=file_probe,
    keywords=keywords,
    connection=False,
    common=False,
    problems=problems,
    complete=complete,
    options=file_options,
    prepare=prepare,
    succeeded=lambda spec: f"({spec.target}): tracked file {spec.options.name} leaving FAULT state",
    failed=lambda spec, error: (
        f"({spec.target}): tracked file {spec.options.name} now FAULT state ({error})"
    ),
)
