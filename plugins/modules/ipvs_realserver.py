#!/usr/bin/python
# Copyright: lvs.ha contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible wants the documentation blocks before the imports.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ipvs_realserver
short_description: Manage a real server of an IPVS virtual service
version_added: 0.1.0
description:
  - Adds, changes or removes one real server (destination) of an existing virtual service in
    the kernel's IPVS table over netlink, as C(ipvsadm -a/-e/-d) would.
  - Fails when the virtual service does not exist and O(state=present); create it with
    M(lvs.ha.ipvs_service). With O(state=absent) a missing service means the real server is
    already gone (also in check mode, where an earlier task only predicted the service).
  - Options left out keep the value the kernel holds, so a real server made by C(ipvsadm) is
    left alone unless it conflicts with what is asked. A change is made in place, so the
    connections of the real server survive it.
requirements:
  - a kernel with IPVS (the C(ip_vs) module loaded)
author:
  - lvs.ha developers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    support: full
    platforms: posix
options:
  virtual_address:
    description:
      - Virtual IP address of the service. Mutually exclusive with O(fwmark).
    type: str
  virtual_port:
    description:
      - Port of the service.
    type: int
  protocol:
    description:
      - Transport protocol of the service. Ignored with O(fwmark).
    type: str
    choices: [tcp, udp, sctp]
    default: tcp
  fwmark:
    description:
      - Firewall mark of a fwmark service.
    type: int
  family:
    description:
      - Address family of a O(fwmark) service.
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  address:
    description:
      - Address of the real server.
    type: str
    required: true
  port:
    description:
      - Port of the real server; the service's port (V(0) for a fwmark service) when left out.
    type: int
  forwarding:
    description:
      - Forwarding method, C(ipvsadm) C(-g) (V(dr), direct routing), C(-m) (V(nat),
        masquerading) or C(-i) (V(tun), IP-in-IP tunneling).
      - V(dr) when the real server is added; left as is otherwise.
    type: str
    choices: [dr, nat, tun]
  weight:
    description:
      - Weight; V(0) sends no new connection to it while keeping the current ones.
      - V(1) when the real server is added; left as is otherwise.
    type: int
  upper_threshold:
    description:
      - Maximum number of connections (V(0) for no limit).
      - V(0) when the real server is added; left as is otherwise.
    type: int
  lower_threshold:
    description:
      - Number of connections below which an overloaded real server takes new ones again.
      - V(0) when the real server is added; left as is otherwise.
    type: int
  state:
    description:
      - V(present) adds or changes the real server, V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - module: lvs.ha.ipvs_service
  - module: lvs.ha.ipvs_info
"""

EXAMPLES = r"""
- name: A direct-routing real server of the web service
  lvs.ha.ipvs_realserver:
    virtual_address: 192.168.179.199
    virtual_port: 80
    address: 192.168.179.10
    weight: 2

- name: Drain a real server (no new connections)
  lvs.ha.ipvs_realserver:
    virtual_address: 192.168.179.199
    virtual_port: 80
    address: 192.168.179.10
    weight: 0

- name: A NAT real server on another port of a fwmark service
  lvs.ha.ipvs_realserver:
    fwmark: 1
    address: 10.1.0.5
    port: 8080
    forwarding: nat
    upper_threshold: 1000
    lower_threshold: 800

- name: Remove it
  lvs.ha.ipvs_realserver:
    fwmark: 1
    address: 10.1.0.5
    port: 8080
    state: absent
"""

RETURN = r"""
realserver:
  description:
    - The real server as the kernel holds it after the change (predicted in check mode);
      empty when it is absent.
  returned: always
  type: dict
  sample:
    address: 192.168.179.10
    port: 80
    forwarding: dr
    weight: 2
    upper_threshold: 0
    lower_threshold: 0
    active_connections: 3
    inactive_connections: 12
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lvs.ha.plugins.module_utils.ipvs_module import (
    FAMILIES,
    REALSERVER_SPEC,
    run_manager,
)
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.ipvs import (
    IpvsError,
    desired_destination,
    service_key_from,
)
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.ipvs.plan import (
    Change,
    apply_or_raise,
    plan_service,
)


def realserver_view(dest):
    if dest is None:
        return {}
    return {
        **dest.to_dict(),
        "active_connections": dest.active_connections,
        "inactive_connections": dest.inactive_connections,
    }


class RealServerManager:
    """Brings one real server of an existing service to the requested state."""

    def __init__(self, module, client):
        self.module = module
        self.client = client
        params = module.params
        self.key = service_key_from(
            params["virtual_address"],
            params["virtual_port"],
            params["protocol"],
            params["fwmark"],
            FAMILIES[params["family"]],
        )
        if client.service(self.key) is not None:
            self.destinations = client.destinations(self.key)
        elif params["state"] == "absent":  # gone with its service, as asked
            self.destinations = []
        else:
            raise IpvsError(
                f"virtual service {self.key} does not exist: create it with lvs.ha.ipvs_service"
            )
        self.desired = desired_destination(self.destinations, self.key, params)
        self.current = self.find(self.destinations)
        self.after = realserver_view(self.current)
        self.changed = False

    def find(self, destinations):
        wanted = (self.desired.address, self.desired.port)
        return next((d for d in destinations if (d.address, d.port) == wanted), None)

    def present(self):
        changes = plan_service(self.key, None, [self.desired], None, self.destinations, purge=False)
        self.apply(changes, self.desired)

    def absent(self):
        deleting = [Change("delete_destination", self.key, destination=self.current)]
        self.apply(deleting if self.current else [], None)

    def apply(self, changes, predicted):
        self.changed = bool(changes)
        if not changes:
            return
        if self.module.check_mode:
            self.after = realserver_view(predicted)
            return
        apply_or_raise(self.client, changes)
        self.after = realserver_view(self.find(self.client.destinations(self.key)))

    def results(self):
        results = {"changed": self.changed, "realserver": self.after}
        if self.module._diff:
            results["diff"] = {"before": realserver_view(self.current), "after": self.after}
        return results


def main():
    module = AnsibleModule(
        argument_spec={
            "virtual_address": {"type": "str"},
            "virtual_port": {"type": "int"},
            "protocol": {"type": "str", "choices": ["tcp", "udp", "sctp"], "default": "tcp"},
            "fwmark": {"type": "int"},
            "family": {"type": "str", "choices": list(FAMILIES), "default": "ipv4"},
            **REALSERVER_SPEC,
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        mutually_exclusive=[("fwmark", "virtual_address"), ("fwmark", "virtual_port")],
        required_one_of=[("virtual_address", "fwmark")],
        required_together=[("virtual_address", "virtual_port")],
        supports_check_mode=True,
    )
    run_manager(module, RealServerManager)


if __name__ == "__main__":
    main()
