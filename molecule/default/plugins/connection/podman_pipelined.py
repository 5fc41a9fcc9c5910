# GNU General Public License v3.0+ (see LICENSE)
"""The containers.podman `podman` connection, with Ansible pipelining.

Why this exists: containers.podman's plugin declares has_pipelining = False and runs `podman exec`
without `-i`, so the module source that Ansible pipes to the remote Python never reaches it. Then
every task costs about five podman calls (mkdir a temp dir, `podman cp` the module, chmod, exec,
rm) instead of one. `podman exec -i` attaches stdin, and pipelining works: measured on these
machines, it matters most when Podman is reached over its remote API in the QEMU guest
(shared/docs/environment.md section 3b).

This subclass only (1) declares pipelining support, (2) adds `-i` to `podman exec` when Ansible
sends data on stdin, and (3) skips `podman mount` (one more call per task, and unsupported by a
remote Podman): files are copied with `podman cp`, as the parent does whenever mount fails.
"""

from __future__ import annotations

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase, ensure_connect
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


class Connection(PodmanConnection):
    transport = "podman_pipelined"
    has_pipelining = True

    def _connect(self):
        ConnectionBase._connect(self)
        self._mount_point = None
        self._connected = True

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        exec_args = ["exec"]
        if in_data is not None:
            exec_args.append("-i")
        if self.user:
            exec_args.extend(("--user", self.user))
        command = shlex.split(to_native(cmd, errors="surrogate_or_strict"))
        return self._podman(exec_args, command, in_data)
