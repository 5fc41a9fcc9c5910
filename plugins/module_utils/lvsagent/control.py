"""The agent's unix control socket: one JSON object per line each way.

Requests: `{"command": "status"}` and `{"command": "reload"}`. The server runs in the agent's
event loop; `request()` is the blocking client used by `lvs-agent status|reload` and by the
vrrp_instance Ansible module.

One agent per control socket: `AgentLock` holds an flock on a pid file next to the socket for
the agent's lifetime, so a second agent refuses to start instead of taking the socket over.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
from collections.abc import Awaitable
from typing import Callable

from . import pacing
from .cli import say

MAX_LINE = 65536
CLIENT_TIMEOUT = 10.0
# the options a request may carry beside its command, and their types
REQUEST_OPTIONS = {"reload": {"allow_empty": bool}}

log = logging.getLogger("lvsagent.control")


class ControlError(Exception):
    """The agent cannot be reached or answered with an error."""


def request(socket_path: str, command: str, timeout: float = CLIENT_TIMEOUT, **options) -> dict:
    """Send one command (with the REQUEST_OPTIONS it takes), return the agent's reply object."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(json.dumps({"command": command, **options}).encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = sock.recv(MAX_LINE)
                if not chunk:
                    break
                reply += chunk
    except OSError as error:
        raise ControlError(f"cannot reach lvs-agent at {socket_path}: {error}") from error
    try:
        answer = json.loads(reply)
    except ValueError as error:
        raise ControlError(f"unreadable reply from lvs-agent at {socket_path}") from error
    if not isinstance(answer, dict):
        raise ControlError(f"unexpected reply from lvs-agent at {socket_path}")
    return answer


def lock_path(socket_path: str) -> str:
    """The agent's pid file: the control socket's name with `.pid` (control.sock -> control.pid),
    so that agents given different sockets (tests run several on one host) never collide."""
    return os.path.splitext(socket_path)[0] + ".pid"


class AlreadyRunning(Exception):
    """Another agent holds the lock."""


class AgentLock:
    """An flock()ed pid file; the kernel drops the lock when the process dies, so a stale file
    from a killed agent never blocks a restart."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"lvs-agent is already running (pid {holder}, lock {self.path}): not starting"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Empty the file, then unlock; the file stays (unlinking it would race a starter)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


class ControlServer:
    """Answers requests with the handlers given (command name -> coroutine returning a dict)."""

    def __init__(self, path: str, handlers: dict[str, Callable[[], Awaitable[dict]]]) -> None:
        self.path = path
        self.handlers = handlers
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        if os.path.exists(self.path):
            os.unlink(self.path)
        old_mask = os.umask(0o177)  # mode 0600 from the start: no window for others
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=self.path, limit=MAX_LINE
            )
        finally:
            os.umask(old_mask)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request, one reply; whatever the client sends, it gets an error reply at worst."""
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT)
            except ValueError:  # no newline within MAX_LINE bytes
                reply = {"error": f"request longer than {MAX_LINE} bytes"}
            else:
                reply = await self._answer(line)
            writer.write((await pacing.dumps(reply)).encode() + b"\n")
            await writer.drain()
        except (OSError, asyncio.TimeoutError):
            pass  # the client went away or never finished its line: nobody to answer
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> dict:
        try:
            request = json.loads(line)
        except ValueError:
            request = None
        command = request.get("command") if isinstance(request, dict) else None
        if not isinstance(command, str):
            return {"error": "expected one JSON object with a command"}
        handler = self.handlers.get(command)
        if handler is None:
            return {"error": f"unknown command {command[:64]!r}"}
        options = {key: value for key, value in request.items() if key != "command"}
        allowed = REQUEST_OPTIONS.get(command, {})
        for key, value in options.items():
            if key not in allowed or not isinstance(value, allowed[key]):
                return {"error": f"{command}: unexpected option {key[:64]!r}"}
        try:
            return await handler(**options)
        except Exception:  # a bug in a handler must not take the control socket down
            log.exception("control command %s failed", command)
            return {"error": f"{command} failed, see the agent's log"}


def _call(args, command: str, **options) -> dict | None:
    try:
        return request(args.control_socket, command, **options)
    except ControlError as error:
        say(f"lvs-agent: {error}", sys.stderr)
        return None


def status_command(args) -> int:
    """`lvs-agent status [--json]`."""
    answer = _call(args, "status")
    if answer is None:
        return 1
    say(json.dumps(answer, indent=2, sort_keys=True) if args.json else status_text(answer))
    return 0


def status_text(status: dict) -> str:
    """The VRRP instances, then the IPVS table in `ipvsadm -Ln` layout with a health column."""
    # Imported here: ipvs loads pyroute2, which the vrrp_instance module (a client) never needs.
    from .ipvs import Destination, Service, format_endpoint, render_table

    router_id = status.get("agent", {}).get("router_id")
    lines = [f"Router ID {router_id}"] if router_id else []
    lines += [
        f"VRRP {instance['name']}: {instance['state']} on {instance['interface']} "
        f"priority {instance['effective_priority']}/{instance['priority']} "
        f"VIPs {' '.join(instance['vips'])}"
        for instance in status.get("vrrp", [])
    ]
    table, health, not_in_kernel = {}, {}, []
    for entry in status.get("ipvs", []):
        service = Service.from_dict(entry)
        destinations = []
        for row in entry["realservers"]:
            if row["weight"] is None:  # declared, but the kernel does not hold it
                endpoint = format_endpoint(row["address"], row["port"])
                not_in_kernel.append(f"  {endpoint} of {entry['service']}: {_health(row)}")
                continue
            destination = Destination(
                row["address"],
                row["port"],
                row["forwarding"],
                row["weight"],
                active_connections=row["active"],
                inactive_connections=row["inactive"],
            )
            destinations.append(destination)
            health[service.key, destination.address, destination.port] = _health(row)
        table[service.key] = (service, destinations)
    if table:
        text = render_table(table, annotate=lambda key, dest: health[key, dest.address, dest.port])
        lines.append(text.rstrip("\n"))
    if not_in_kernel:
        lines.append("Real servers not in the kernel's table:")
        lines.extend(not_in_kernel)
    return "\n".join(lines)


def _health(row: dict) -> str:
    """`up since 2025-01-01T10:00:00Z`, `down since ..., last error: connection refused`."""
    text = row["health"]
    if row["since"]:
        text += f" since {row['since']}"
    if row["last_error"]:
        text += f", last error: {row['last_error']}"
    return text


def reload_command(args) -> int:
    """`lvs-agent reload`: exit 0 when the new configuration was taken."""
    answer = _call(args, "reload", allow_empty=args.allow_empty)
    if answer is None:
        return 1
    if answer.get("error"):
        say(f"lvs-agent: {answer['error']}", sys.stderr)
        return 1
    say("configuration reloaded")
    return 0
