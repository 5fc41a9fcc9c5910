"""The lab's shared `podman exec` (molecule/default/plugins/podman_session.py), run against a
stand-in podman that starts the session's server with this Python on this host."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SESSION = (
    Path(__file__).resolve().parents[2] / "molecule" / "default" / "plugins" / "podman_session.py"
)
sys.path.insert(0, str(SESSION.parent))

import podman_session  # noqa: E402

# Answers `podman exec -i CONTAINER python3 -c CODE` by running CODE here; counts its starts.
STAND_IN = """#!{python}
import os, sys
with open({starts!r}, "a") as starts:
    starts.write(" ".join(sys.argv[1:4]) + "\\n")
os.execv(sys.executable, [sys.executable, "-c", sys.argv[-1]])
"""


@pytest.fixture
def podman(tmp_path):
    starts = tmp_path / "starts"
    script = tmp_path / "podman"
    script.write_text(STAND_IN.format(python=sys.executable, starts=str(starts)))
    script.chmod(0o755)
    return script, starts


def start_broker(tmp_path, podman, idle_seconds=30.0, reply_seconds=30.0):
    socket_path = str(tmp_path / "session")
    broker = threading.Thread(
        target=podman_session.serve,
        args=(socket_path, [str(podman)], "lvs-director1", idle_seconds, reply_seconds),
        daemon=True,
    )
    broker.start()
    deadline = time.monotonic() + 10
    while not os.path.exists(socket_path):
        assert time.monotonic() < deadline, "the broker did not listen"
        time.sleep(0.01)
    return socket_path, broker


def test_a_command_returns_its_status_stdout_and_stderr_apart(tmp_path, podman):
    socket_path, _broker = start_broker(tmp_path, podman[0])
    status, out, err = podman_session.request(
        socket_path, "/bin/sh -c 'echo out; echo err >&2; exit 3'", b""
    )
    assert (status, out, err) == (3, b"out\n", b"err\n")


def test_stdin_reaches_the_command_whole(tmp_path, podman):
    socket_path, _broker = start_broker(tmp_path, podman[0])
    data = os.urandom(1_500_000)
    status, out, _err = podman_session.request(socket_path, "cat", data)
    assert status == 0
    assert out == data


def test_commands_share_one_exec(tmp_path, podman):
    script, starts = podman
    socket_path, _broker = start_broker(tmp_path, script)
    for word in ("one", "two", "three"):
        assert podman_session.request(socket_path, f"echo {word}", b"")[1] == f"{word}\n".encode()
    assert starts.read_text().splitlines() == ["exec -i lvs-director1"]


def test_a_missing_program_is_status_127(tmp_path, podman):
    socket_path, _broker = start_broker(tmp_path, podman[0])
    status, _out, err = podman_session.request(socket_path, "no-such-program-here", b"")
    assert status == 127
    assert b"no-such-program-here" in err


def test_an_idle_broker_removes_its_socket_and_exits(tmp_path, podman):
    socket_path, broker = start_broker(tmp_path, podman[0], idle_seconds=0.3)
    broker.join(timeout=10)
    assert not broker.is_alive()
    assert not os.path.exists(socket_path)
    assert not podman_session.answers(socket_path)


def test_an_ended_exec_fails_the_request_and_ends_the_broker(tmp_path, podman):
    socket_path, broker = start_broker(tmp_path, podman[0])
    with pytest.raises(ConnectionError):
        podman_session.request(socket_path, "/bin/sh -c 'kill -9 $PPID'", b"")
    broker.join(timeout=10)
    assert not broker.is_alive()
    assert not os.path.exists(socket_path)


def test_the_broker_runs_as_a_script_and_stops_on_sigterm(tmp_path, podman):
    socket_path = str(tmp_path / "session")
    broker = subprocess.Popen(
        [sys.executable, str(SESSION), socket_path, str(podman[0]), "lvs-rs1"]
    )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(socket_path):
            assert time.monotonic() < deadline, "the broker did not listen"
            time.sleep(0.01)
        assert podman_session.request(socket_path, "echo ok", b"") == (0, b"ok\n", b"")
    finally:
        broker.terminate()
        assert broker.wait(timeout=10) == 0
    assert not os.path.exists(socket_path)


def test_a_client_gone_before_its_reply_leaves_the_session_serving(tmp_path, podman):
    socket_path, broker = start_broker(tmp_path, podman[0])
    command = b"/bin/sh -c 'sleep 0.3; echo late'"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(socket_path)
        client.sendall(podman_session.REQUEST.pack(len(command), 0) + command)
    assert podman_session.request(socket_path, "echo next", b"") == (0, b"next\n", b"")
    assert broker.is_alive()


def test_no_broker_is_a_request_not_sent(tmp_path):
    with pytest.raises(podman_session.NotSent):
        podman_session.request(str(tmp_path / "nobody"), "echo lost", b"")


def test_a_stalled_exec_gets_no_reply_and_ends_the_broker(tmp_path, podman):
    socket_path, broker = start_broker(tmp_path, podman[0], reply_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        podman_session.request(socket_path, "sleep 3", b"")
    assert time.monotonic() - started < 2.5  # the reply limit, not the command, ended it
    broker.join(timeout=15)
    assert not broker.is_alive()
    assert not os.path.exists(socket_path)
