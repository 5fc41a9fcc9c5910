#!/usr/bin/python
# Copyright: lvs.ha contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible wants the documentation blocks before the imports.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ipvs_info
short_description: Read the whole IPVS table with its counters
version_added: 0.1.0
description:
  - Returns every virtual service and real server of the kernel's IPVS table, with connection
    counters and traffic statistics, as C(ipvsadm -Ln --stats) shows them, as data.
  - Changes nothing.
requirements:
  - a kernel with IPVS (the C(ip_vs) module loaded)
author:
  - lvs.ha developers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
options: {}
seealso:
  - module: lvs.ha.ipvs_service
  - module: lvs.ha.ipvs_realserver
"""

EXAMPLES = r"""
- name: Read the IPVS table
  lvs.ha.ipvs_info:
  register: ipvs

- name: Show the real servers of the web service
  ansible.builtin.debug:
    msg: "{{ (ipvs.services | selectattr('address', '==', '192.168.179.199')
              | selectattr('port', '==', 80) | first).realservers }}"
"""

RETURN = r"""
services:
  description: Every virtual service, sorted as C(ipvsadm -Ln) lists them.
  returned: always
  type: list
  elements: dict
  contains:
    family:
      description: Address family, V(4) or V(6).
      type: int
    protocol:
      description: V(tcp), V(udp) or V(sctp); null for a fwmark service.
      type: str
    address:
      description: Virtual address; null for a fwmark service.
      type: str
    port:
      description: Virtual port; null for a fwmark service.
      type: int
    fwmark:
      description: Firewall mark; null for an address service.
      type: int
    scheduler:
      description: Scheduler name.
      type: str
    persistence_timeout:
      description: Persistence in seconds, V(0) when off.
      type: int
    persistence_netmask:
      description: Persistence granularity (IPv4 netmask, IPv6 prefix length).
      type: raw
    flags:
      description: Scheduler flags and V(ops), named as C(ipvsadm) names them.
      type: list
      elements: str
    stats:
      description: >-
        Counters (V(connections), V(packets_in), V(packets_out), V(bytes_in), V(bytes_out))
        and rates per second (V(cps), V(packets_in_rate), V(packets_out_rate),
        V(bytes_in_rate), V(bytes_out_rate)).
      type: dict
    realservers:
      description: The real servers of the service.
      type: list
      elements: dict
      contains:
        address:
          description: Address of the real server.
          type: str
        port:
          description: Port of the real server.
          type: int
        forwarding:
          description: V(dr), V(nat), V(tun) (or V(local), V(bypass) as the kernel reports).
          type: str
        weight:
          description: Weight.
          type: int
        upper_threshold:
          description: Connection upper threshold (V(0) for none).
          type: int
        lower_threshold:
          description: Connection lower threshold.
          type: int
        active_connections:
          description: Active connections (C(ActiveConn)).
          type: int
        inactive_connections:
          description: Inactive connections (C(InActConn)).
          type: int
        persistent_connections:
          description: Persistence templates pointing at it.
          type: int
        stats:
          description: Counters and rates, as for the service.
          type: dict
  sample:
    - family: 4
      protocol: tcp
      address: 192.168.179.199
      port: 80
      fwmark: null
      scheduler: wlc
      persistence_timeout: 0
      persistence_netmask: 255.255.255.255
      flags: []
      stats: {connections: 12, packets_in: 80, packets_out: 0, bytes_in: 5200, bytes_out: 0,
              cps: 0, packets_in_rate: 0, packets_out_rate: 0, bytes_in_rate: 0,
              bytes_out_rate: 0}
      realservers:
        - address: 192.168.179.10
          port: 80
          forwarding: dr
          weight: 1
          upper_threshold: 0
          lower_threshold: 0
          active_connections: 1
          inactive_connections: 11
          persistent_connections: 0
          stats: {connections: 12, packets_in: 80, packets_out: 0, bytes_in: 5200,
                  bytes_out: 0, cps: 0, packets_in_rate: 0, packets_out_rate: 0,
                  bytes_in_rate: 0, bytes_out_rate: 0}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lvs.ha.plugins.module_utils.ipvs_module import ipvs_client
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.ipvs import table_as_data


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    with ipvs_client(module) as client:
        services = table_as_data(client.table())
    module.exit_json(changed=False, services=services)


if __name__ == "__main__":
    main()
