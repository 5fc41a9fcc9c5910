# GNU General Public License v3.0+ (see LICENSE)
"""The containers.podman `podman` connection, with Ansible pipelining.

Why this exists: containers.podman's plugin declares has_pipelining = False and runs `podman exec`
without `-i`, so the module source that Ansible pipes to the remote Python never reaches it. Then
every task costs about five podman calls (mkdir a temp dir, `podman cp` the module, chmod, exec,
rm) instead of one. `podman exec -i` attaches stdin, and pipelining works: measured on these
machines, it matters most when Podman is reached over its remote API in the QEMU guest
(shared/docs/environment.md section 3b).

This subclass (1) declares pipelining support, (2) runs commands and copies files through one
long-lived `podman exec -i` per container that the tasks share (../podman_session.py: over the
guest's API an exec costs seconds before its command starts, and every task runs in a new Ansible
worker), and (3) skips `podman mount` (one more call per task, unsupported by a remote Podman).
With a remote_user it runs `podman exec -i --user` per command instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shlex
import subprocess
import sys
import time

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible.utils.display import Display
from ansible_collections.containers.podman.plugins.connection.podman import (
    Connection as PodmanConnection,
)

DOCUMENTATION = """
    name: podman_pipelined
    short_description: containers.podman.podman with pipelining (podman exec -i)
    description:
        - Runs commands in and copies files to an existing Podman container, like
          containers.podman.podman, and supports Ansible pipelining.
    author: lvs.ha developers
    extends_documentation_fragment:
        - connection_pipelining
    options:
      remote_addr:
        description: The name or ID of the container.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description: User to run commands as inside the container.
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description: Extra arguments to pass to the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description: Executable for podman command.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
"""


display = Display()
SESSION_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "podman_session.py")
SESSION_START_SECONDS = 120


def _load_session_module():
    spec = importlib.util.spec_from_file_location("lvs_ha_podman_session", SESSION_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


podman_session = _load_session_module()


class Connection(PodmanConnection):
    transport = "podman_pipelined"
    has_pipelining = True

    def _connect(self):
        ConnectionBase._connect(self)
        self._mount_point = None
        self._connected = True

    def _podman_command(self):
        command = [self.get_option("podman_executable")]
        command += shlex.split(self.get_option("podman_extra_args") or "")
        return command

    def _session_socket(self):
        """The broker's socket: one per Podman service, container and user of this controller."""
        podman = os.environ.get("CONTAINER_HOST", ""), *self._podman_command()
        key = "\0".join((*podman, self._container_id))
        directory = os.path.expanduser("~/.ansible/cp")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return os.path.join(directory, "podman-" + hashlib.sha256(key.encode()).hexdigest()[:20])

    def _start_session(self, path):
        """Starts the container's broker unless another worker just did (a lock orders them)."""
        with open(path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.path.exists(path):
                if podman_session.answers(path):
                    return
                os.unlink(path)  # a broker that was killed
            broker = subprocess.Popen(
                [sys.executable, SESSION_SCRIPT, path, *self._podman_command(), self._container_id],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + SESSION_START_SECONDS
            while not os.path.exists(path):
                if broker.poll() is not None or time.monotonic() > deadline:
                    broker.kill()
                    raise AnsibleConnectionFailure(
                        f"no podman session to {self._container_id} (its broker stopped)"
                    )
                time.sleep(0.05)

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        command = to_native(cmd, errors="surrogate_or_strict")
        if self.user:
            exec_args = ["exec", "-i", "--user", self.user]
            return self._podman(exec_args, shlex.split(command), in_data)
        path = self._session_socket()
        unanswered = None
        for _attempt in range(3):
            try:
                return podman_session.request(path, command, in_data or b"")
            except podman_session.NotSent:
                self._start_session(path)
            except ConnectionError as error:
                # The broker ended without a reply: its exec stalled (REPLY_SECONDS) or ended.
                # Sent once more through a new one: a lab task's command can run twice (the
                # modules are idempotent); a stopped container fails the second time too.
                if unanswered is not None:
                    raise AnsibleConnectionFailure(str(error)) from error
                unanswered = error
                display.warning(f"{self._container_id}: {error}; sending the command once more")
                self._start_session(path)
        raise AnsibleConnectionFailure(f"no podman session to {self._container_id}")

    def put_file(self, in_path, out_path):
        if self.user:
            return super().put_file(in_path, out_path)
        ConnectionBase.put_file(self, in_path, out_path)
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as source:
            content = source.read()
        command = "/bin/sh -c " + shlex.quote("cat > " + shlex.quote(out_path))
        status, _out, err = self.exec_command(command, in_data=content)
        if status != 0:
            raise AnsibleConnectionFailure(
                f"copying {in_path} to {self._container_id}:{out_path} failed: {to_native(err)}"
            )
        return None
