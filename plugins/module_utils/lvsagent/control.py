"""The agent's unix control socket: one JSON object per line each way.

Requests: `{"command": "status"}` and `{"command": "reload"}`. The server runs in the agent's
event loop; `request()` is the blocking client used by `lvs-agent status|reload` and by the
vrrp_instance Ansible module.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import Awaitable
from typing import Callable

MAX_LINE = 65536
CLIENT_TIMEOUT = 10.0


class ControlError(Exception):
    """The agent cannot be reached or answered with an error."""


def request(socket_path: str, command: str, timeout: float = CLIENT_TIMEOUT) -> dict:
    """Send one command, return the agent's reply object."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(json.dumps({"command": command}).encode() + b"\n")
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
        try:
            line = await asyncio.wait_for(reader.readline(), CLIENT_TIMEOUT)
            reply = await self._answer(line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, asyncio.TimeoutError, ValueError):
            pass
        finally:
            writer.close()

    async def _answer(self, line: bytes) -> dict:
        try:
            command = json.loads(line).get("command")
        except (ValueError, AttributeError):
            return {"error": "expected one JSON object with a command"}
        handler = self.handlers.get(command)
        if handler is None:
            return {"error": f"unknown command {command!r}"}
        return await handler()


def _call(args, command: str) -> dict | None:
    try:
        return request(args.control_socket, command)
    except ControlError as error:
        print(f"lvs-agent: {error}", file=sys.stderr)
        return None


def status_command(args) -> int:
    """`lvs-agent status [--json]`."""
    answer = _call(args, "status")
    if answer is None:
        return 1
    if args.json:
        print(json.dumps(answer, indent=2, sort_keys=True))
        return 0
    for instance in answer.get("vrrp", []):
        print(
            f"VRRP {instance['name']}: {instance['state']} on {instance['interface']} "
            f"priority {instance['effective_priority']}/{instance['priority']} "
            f"VIPs {' '.join(instance['vips'])}"
        )
    for service in answer.get("ipvs", []):
        print(f"IPVS {service['service']} {service['scheduler']}")
        for real in service.get("realservers", []):
            print(
                f"  -> [{real['address']}]:{real['port']} {real['forwarding']} "
                f"weight {real['weight']} {real['health']}"
            )
    return 0


def reload_command(args) -> int:
    """`lvs-agent reload`: exit 0 when the new configuration was taken."""
    answer = _call(args, "reload")
    if answer is None:
        return 1
    if answer.get("error"):
        print(f"lvs-agent: {answer['error']}", file=sys.stderr)
        return 1
    print("configuration reloaded")
    return 0
