"""Every script the agent runs (vrrp_script, MISC_CHECK, notify and quorum), run as keepalived
runs it and with the least privilege.

One runner for all: the words of the script are executed without a shell, in a new session
(so the script and whatever it starts share one process group), as the user it is configured
for, with stdio on /dev/null. Every kind has a timeout; when it expires, or the caller gives
up, the whole process group gets SIGKILL. asyncio's child watcher reaps every child, so none
is left a zombie. A check's leftovers die when it exits; a notify script's leftovers die when
its runner closes, after the grace period, so no script outlives the agent.

Privilege (keepalived's rules): a script runs as its `user USER [GROUP]`, else global_defs'
`script_user`, else the user `keepalived_script` when it exists, else root. The group defaults
to the user's; supplementary groups are cleared to that group unless
`set_supplementary_groups`. With `enable_script_security`, a script that would run as root is
refused when it, or a directory above it, can be changed by a user other than root: at load
(config check) and again just before every run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import grp
import logging
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

log = logging.getLogger("lvsagent.scripts")

KEEPALIVED_SCRIPT_USER = "keepalived_script"  # keepalived's default script user
# keepalived never kills a notify script; a hung one would hold its slot forever, so ours end
# after two minutes, ample for the usual "restart a service / send a mail" work.
NOTIFY_TIMEOUT = 120.0
# Notify scripts of one owner (instance, group or virtual server) running at once; more wait
# in order, and past NOTIFY_WAITING_LIMIT the oldest waiting one is dropped (logged): the
# newest state is the one that matters.
NOTIFY_RUNNING_LIMIT = 4
NOTIFY_WAITING_LIMIT = 32


@dataclass(frozen=True)
class Identity:
    """Whom a script runs as, resolved from names on this host."""

    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    script_security: bool = False  # enable_script_security: refuse unsafe scripts as root

    @property
    def privileged(self) -> bool:
        return self.uid == 0 or self.gid == 0

    def spawn_options(self) -> dict:
        """Popen's user/group/extra_groups, set in the child before exec; root stays as is."""
        if self.uid == 0 and self.gid == 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}


def resolve_identity(
    user: str, group: Optional[str], supplementary: bool, script_security: bool
) -> Identity:
    """The Identity of `user` [`group`]; LookupError (in keepalived's words) for unknown names."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise LookupError(f"Script user '{user}' does not exist") from None
    gid = entry.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise LookupError(f"Script group '{group}' does not exist") from None
    groups = tuple(os.getgrouplist(user, gid)) if supplementary else (gid,)
    return Identity(user, entry.pw_uid, gid, groups, script_security)


def root_identity(script_security: bool) -> Identity:
    return Identity("root", 0, 0, (), script_security)


def split_command(command: str) -> list[str]:
    """The words of a script line, quotes honoured as keepalived does; ValueError if unbalanced."""
    words = shlex.split(command)
    if not words:
        raise ValueError("empty script")
    return words


def program_path(program: str) -> Optional[str]:
    """The file that will run: a bare name is looked up in PATH, as keepalived does."""
    if "/" in program:
        return program
    return shutil.which(program)


def unsafe_part(path: str) -> Optional[str]:
    """The first of /, the directories down to `path` and `path` itself that a user other than
    root could change (keepalived's check_script_secure); None when all are safe."""
    parts = [part for part in path.split("/") if part]
    prefixes = ["/"] + ["/" + "/".join(parts[: index + 1]) for index in range(len(parts))]
    for prefix in prefixes:
        try:
            info = os.stat(prefix)
        except OSError:
            return prefix
        sticky_dir = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
        group_writable = info.st_gid != 0 and info.st_mode & stat.S_IWGRP
        if info.st_uid != 0 or (not sticky_dir and (group_writable or info.st_mode & stat.S_IWOTH)):
            return prefix
    return None


def needs_protection(identity: Identity, path: str) -> bool:
    """Runs as root, or is set-uid/set-gid root: only a root-controlled file may run so."""
    if identity.privileged:
        return True
    try:
        info = os.stat(path)
    except OSError:
        return False
    return bool(
        (info.st_uid == 0 and info.st_mode & stat.S_ISUID)
        or (info.st_gid == 0 and info.st_mode & stat.S_ISGID)
    )


def unsafe_script(identity: Identity, path: str) -> Optional[str]:
    """keepalived's complaint when `path` would run as root yet someone else could change it;
    None when it is safe."""
    part = unsafe_part(path) if needs_protection(identity, path) else None
    if part is None:
        return None
    return (
        f"Unsafe permissions found for script '{path}' ({part} can be changed by a user other "
        "than root)"
    )


def security_violation(identity: Identity, path: str) -> Optional[str]:
    """Why `path` must not run as `identity` under enable_script_security; None when it may."""
    unsafe = unsafe_script(identity, path) if identity.script_security else None
    if unsafe is None:
        return None
    return f"{unsafe} - SECURITY VIOLATION, enable_script_security does not run it as root"


@dataclass(frozen=True)
class Outcome:
    """How a run ended: `code` is the exit status (negative: killed by that signal), None when
    the script did not run or did not finish in time (`timed_out`); `error` says why for logs
    and status."""

    code: Optional[int]
    error: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.code == 0


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def run_script(
    argv: Sequence[str],
    identity: Optional[Identity],
    timeout: Optional[float],
    lingering: Optional[set[int]] = None,
) -> Outcome:
    """Run `argv` to its end or its timeout (None: no limit, for a notify FIFO's reader, which
    lives as long as its FIFO); never raises but CancelledError (which kills the
    process group too). `identity` None (a config loaded without host checks) runs the script
    as the agent itself.

    A check (vrrp_script, MISC_CHECK) is over when its script exits: whatever it left in its
    process group is killed then. A notify script may leave work behind: its group goes into
    `lingering`, for its runner to kill at close.
    """
    path = program_path(argv[0])
    if path is None:
        return Outcome(None, f"cannot find {argv[0]} in PATH")
    if identity is not None:
        refusal = security_violation(identity, path)
        if refusal:
            return Outcome(None, refusal)
    try:
        process = await asyncio.create_subprocess_exec(
            path,
            *argv[1:],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            **(identity.spawn_options() if identity is not None else {}),
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        reason = os.strerror(exc.errno).lower() if getattr(exc, "errno", None) else str(exc)
        return Outcome(None, f"cannot run {argv[0]}: {reason}")
    try:
        code = await asyncio.wait_for(process.wait(), timeout)
    except asyncio.TimeoutError:
        kill_group(process.pid)
        await process.wait()
        return Outcome(None, f"timed out after {timeout:g}s", timed_out=True)
    except asyncio.CancelledError:
        kill_group(process.pid)
        raise
    if lingering is None:
        kill_group(process.pid)
    elif group_alive(process.pid):
        lingering.add(process.pid)
    if code < 0:
        return Outcome(code, f"killed by signal {-code}")
    return Outcome(code, "" if code == 0 else f"exit status {code}")


class ScriptRunner:
    """Runs notify and quorum scripts in the background, a few at a time per owner, and
    remembers the process groups they leave behind until they are empty.

    A process group id is not reused while any member lives; a remembered group is checked
    for members just before it is killed, so a stranger could only be hit if its group had
    emptied and the kernel's pid counter had wrapped round to that very id in between.
    """

    def __init__(self) -> None:
        self._lingering: set[int] = set()
        self._background: set[asyncio.Task] = set()
        self._running: collections.Counter = collections.Counter()
        self._waiting: dict[str, collections.deque] = {}

    # -- notify and quorum scripts: in the background, a few at a time per owner -------------

    def spawn(self, argv: Sequence[str], identity: Optional[Identity], owner: str) -> None:
        """Queue a notify script of `owner`; it starts when fewer than the limit are running."""
        waiting = self._waiting.setdefault(owner, collections.deque())
        waiting.append((list(argv), identity))
        if len(waiting) > NOTIFY_WAITING_LIMIT:
            dropped, _identity = waiting.popleft()
            log.warning(
                "%s: %d notify scripts waiting, dropping [%s]",
                owner,
                NOTIFY_WAITING_LIMIT,
                shlex.join(dropped),
            )
        self._start_waiting(owner)

    def _start_waiting(self, owner: str) -> None:
        waiting = self._waiting.get(owner)
        while waiting and self._running[owner] < NOTIFY_RUNNING_LIMIT:
            argv, identity = waiting.popleft()
            self._running[owner] += 1
            task = asyncio.ensure_future(self._notify(argv, identity, owner))
            self._background.add(task)
            task.add_done_callback(lambda done, owner=owner: self._notify_done(done, owner))
        if not waiting:
            self._waiting.pop(owner, None)

    def _notify_done(self, task: asyncio.Task, owner: str) -> None:
        self._background.discard(task)
        self._running[owner] -= 1
        if self._running[owner] <= 0:
            del self._running[owner]
        self._start_waiting(owner)

    async def _notify(self, argv: list[str], identity: Optional[Identity], owner: str) -> None:
        command = shlex.join(argv)
        log.info("Executing [%s] for %s", command, owner)
        self._lingering.difference_update(
            [pgid for pgid in self._lingering if not group_alive(pgid)]
        )
        outcome = await run_script(argv, identity, NOTIFY_TIMEOUT, self._lingering)
        if not outcome.ok:
            log.warning("Script [%s] for %s: %s", command, owner, outcome.error)

    async def close(self, grace: float) -> None:
        """Give the notify scripts (running and waiting) up to `grace` seconds, then kill every
        process group still alive: nothing this runner started outlives it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._background and loop.time() < deadline:
            await asyncio.wait(set(self._background), timeout=deadline - loop.time())
        self._waiting.clear()
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(set(self._background))
        for pgid in self._lingering:
            if group_alive(pgid):
                kill_group(pgid)
        self._lingering.clear()
