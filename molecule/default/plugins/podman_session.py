# GNU General Public License v3.0+ (see LICENSE)
"""One long-lived `podman exec` per container, shared by a play's tasks (like SSH's ControlPersist).

Why: over the QEMU guest's Podman API every `podman exec` costs seconds (the API call, conmon and
the runtime run under TCG) before the command even starts, and Ansible runs each task in a new
worker, so a connection object cannot keep an exec open. Started by the podman_pipelined connection
as `python3 podman_session.py SOCKET PODMAN CONTAINER`, this broker runs one `podman exec -i
CONTAINER python3 -c SERVER` and serves commands from a Unix socket, one at a time; each command
then only costs the fork of its process inside the container.

Frames, on the socket and on the exec's stdio alike:
  request: u32 length of the command, u32 length of its stdin, the command (shell words), the stdin
  reply:   i32 exit status, u32 length of stdout, u32 length of stderr, stdout, stderr
The broker exits after IDLE_SECONDS without a request (it removes its socket first, then answers
the requests already queued), when the exec ends (the container stopped), or when the exec takes
more than REPLY_SECONDS to take a request or answer it: over the guest's API an exec's stream has
stalled for minutes with the command long done (podman remote attach under TCG), and every later
task of that container would wait behind it. The client then gets no reply (ConnectionError) and
the next task starts a new broker.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

IDLE_SECONDS = 60
REPLY_SECONDS = 180  # a lab task's command takes seconds; a stalled exec stream, forever
REQUEST = struct.Struct("!II")
REPLY = struct.Struct("!iII")

# Runs inside the container (python3 -c): reads requests on stdin, answers on stdout.
SERVER = r"""
import os, shlex, struct, subprocess, sys
REQUEST = struct.Struct("!II")
REPLY = struct.Struct("!iII")
source, sink = sys.stdin.buffer, sys.stdout.buffer
def read(size):
    data = source.read(size)
    if len(data) != size:
        sys.exit(0)
    return data
while True:
    command_size, stdin_size = REQUEST.unpack(read(REQUEST.size))
    command = read(command_size).decode()
    data = read(stdin_size)
    try:
        done = subprocess.run(shlex.split(command), input=data, capture_output=True, cwd="/")
        status, out, err = done.returncode, done.stdout, done.stderr
    except OSError as error:
        status, out, err = 127, b"", str(error).encode()
    sink.write(REPLY.pack(status, len(out), len(err)) + out + err)
    sink.flush()
"""


def read_exactly(read, size: int) -> bytes:
    """Reads SIZE bytes with READ (a file's read or a socket's recv); short when the peer closed."""
    chunks = []
    while size > 0:
        chunk = read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class Stalled(OSError):
    """The exec took neither a request nor gave its reply within the time allowed."""


def waiting_until(deadline: float, fd: int, writing: bool = False) -> None:
    """Returns once FD can be read (or written), Stalled when DEADLINE passes first."""
    left = max(deadline - time.monotonic(), 0)
    wanted = ([], [fd]) if writing else ([fd], [])
    if not any(select.select(*wanted, [], left)):
        raise Stalled("the podman exec stalled")


def bounded_read(fd: int, deadline: float):
    """A read(size) of FD that raises Stalled past DEADLINE."""

    def read(size: int) -> bytes:
        waiting_until(deadline, fd)
        return os.read(fd, size)

    return read


def bounded_write(fd: int, data: bytes, deadline: float) -> None:
    """Writes DATA to FD (non-blocking), Stalled past DEADLINE."""
    view = memoryview(data)
    while view:
        waiting_until(deadline, fd, writing=True)
        view = view[os.write(fd, view) :]


def read_frame(read, header: struct.Struct) -> bytes | None:
    """One whole frame (header and the payloads it announces), or None at end of stream."""
    head = read_exactly(read, header.size)
    if len(head) != header.size:
        return None
    body_size = sum(header.unpack(head)[-2:])
    body = read_exactly(read, body_size)
    if len(body) != body_size:
        return None
    return head + body


def answers(socket_path: str) -> bool:
    """Whether a broker listens at SOCKET_PATH."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(socket_path)
        except OSError:
            return False
    return True


class NotSent(OSError):
    """The request did not reach a broker (none there, or it was leaving): safe to send again."""


def request(socket_path: str, command: str, data: bytes) -> tuple[int, bytes, bytes]:
    """Runs COMMAND with DATA on its stdin through the broker at SOCKET_PATH.

    NotSent when no broker took the request; ConnectionError when it took it and gave no reply.
    """
    encoded = command.encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(socket_path)
            client.sendall(REQUEST.pack(len(encoded), len(data)) + encoded + data)
        except OSError as error:
            raise NotSent(f"no podman session at {socket_path}: {error}") from error
        frame = read_frame(client.recv, REPLY)
    if frame is None:
        raise ConnectionError(f"the podman session at {socket_path} closed without a reply")
    status, out_size, _err_size = REPLY.unpack_from(frame)
    body = frame[REPLY.size :]
    return status, body[:out_size], body[out_size:]


def answer(
    client: socket.socket, exec_session: subprocess.Popen, reply_seconds: float = REPLY_SECONDS
) -> bool:
    """Runs one client's request in the container; False when the exec has ended or stalled
    (the client then gets no reply). A client that went away (its Ansible worker stopped) loses
    its reply, and the session goes on."""
    with client:
        client.setblocking(True)
        try:
            frame = read_frame(client.recv, REQUEST)
        except OSError:
            return True
        if frame is None:
            return True
        deadline = time.monotonic() + reply_seconds
        try:
            bounded_write(exec_session.stdin.fileno(), frame, deadline)
            reply = read_frame(bounded_read(exec_session.stdout.fileno(), deadline), REPLY)
        except Stalled:
            print(
                f"podman_session: no reply within {reply_seconds} s: ending this session",
                file=sys.stderr,
            )
            return False
        if reply is None:
            return False
        with contextlib.suppress(OSError):
            client.sendall(reply)
    return True


def serve(
    socket_path: str,
    podman: list[str],
    container: str,
    idle_seconds: float = IDLE_SECONDS,
    reply_seconds: float = REPLY_SECONDS,
) -> None:
    exec_session = subprocess.Popen(
        [*podman, "exec", "-i", container, "python3", "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    os.set_blocking(exec_session.stdin.fileno(), False)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    temporary = f"{socket_path}.{os.getpid()}"
    listener.bind(temporary)
    listener.listen(16)
    os.rename(temporary, socket_path)
    listener.settimeout(idle_seconds)
    listening = True
    try:
        while True:
            try:
                client, _address = listener.accept()
            except socket.timeout:
                break
            if not answer(client, exec_session, reply_seconds):
                return
        os.unlink(socket_path)
        listening = False
        listener.setblocking(False)
        while True:
            try:
                client, _address = listener.accept()
            except BlockingIOError:
                return
            if not answer(client, exec_session, reply_seconds):
                return
    finally:
        if listening:
            os.unlink(socket_path)
        listener.close()
        exec_session.stdin.close()
        try:
            exec_session.wait(timeout=10)
        except subprocess.TimeoutExpired:
            exec_session.kill()


def stop(_signal: int, _frame: object) -> None:
    sys.exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)
    serve(sys.argv[1], sys.argv[2:-1], sys.argv[-1])
