#!/usr/bin/python
# Copyright: lvs.ha contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible wants the documentation blocks before the imports.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ipvs_service
short_description: Manage an IPVS virtual service
version_added: 0.1.0
description:
  - Creates, changes or removes one virtual service in the kernel's IPVS table over netlink,
    as C(ipvsadm -A/-E/-D) would.
  - A service is named either by O(address), O(port) and O(protocol), or by O(fwmark).
  - Options left out keep the value the kernel holds, so a service made by C(ipvsadm) is left
    alone unless it conflicts with what is asked. A persistence engine set by others
    (C(ipvsadm --pe sip)) is kept when the service is changed.
  - Uses the same IPVS layer as the lvs-agent reconciler, so both read the table alike.
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
  address:
    description:
      - Virtual IP address (IPv4 or IPv6) of the service.
      - Mutually exclusive with O(fwmark).
    type: str
  port:
    description:
      - Port of the service; V(0) for all ports of a persistent service.
    type: int
  protocol:
    description:
      - Transport protocol of an O(address) service. Ignored with O(fwmark).
    type: str
    choices: [tcp, udp, sctp]
    default: tcp
  fwmark:
    description:
      - Firewall mark (1..4294967295) of a fwmark service.
      - Mutually exclusive with O(address) and O(port).
    type: int
  family:
    description:
      - Address family of a O(fwmark) service. An O(address) service takes the family of its
        address.
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  scheduler:
    description:
      - Scheduling algorithm (the kernel module C(ip_vs_<scheduler>) must exist).
      - V(wlc) when the service is created; left as is otherwise.
    type: str
    choices: [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos]
  persistence_timeout:
    description:
      - Seconds a client sticks to the same real server; V(0) turns persistence off.
      - V(0) when the service is created; left as is otherwise.
    type: int
  persistence_netmask:
    description:
      - Granularity of persistence. IPv4 a netmask (V(255.255.255.0)) or a prefix length
        (V(24)); IPv6 a prefix length (V(64)).
      - A single address (V(255.255.255.255) or V(128)) when the service is created; left as
        is otherwise.
    type: str
  scheduler_flags:
    description:
      - Scheduler flags, as C(ipvsadm -b). V(sh-fallback) and V(sh-port) are the first two
        flags under V(sh), V(mh-fallback) and V(mh-port) under V(mh); V(flag-1), V(flag-2)
        and V(flag-3) name them for any scheduler.
      - The flags are the whole set the service should carry; V([]) clears them.
      - None when the service is created; left as is otherwise.
    type: list
    elements: str
    choices: [sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2, flag-3]
  one_packet_scheduling:
    description:
      - Schedule each UDP datagram on its own (C(ipvsadm -o), C(ops)).
      - Off when the service is created; left as is otherwise.
    type: bool
  realservers:
    description:
      - Real servers this service should have. Each is added or changed as
        M(lvs.ha.ipvs_realserver) would do; others are kept unless O(purge_realservers).
      - Two entries naming the same real server (address and port) are refused before
        anything is changed.
    type: list
    elements: dict
    suboptions:
      address:
        description: Address of the real server.
        type: str
        required: true
      port:
        description: Port of the real server; the service's port when left out.
        type: int
      forwarding:
        description: Forwarding method (direct routing, masquerading, tunneling).
        type: str
        choices: [dr, nat, tun]
      weight:
        description: Weight; V(0) stops new connections to it.
        type: int
      upper_threshold:
        description: Maximum connections (V(0) for no limit).
        type: int
      lower_threshold:
        description: Connections below which an overloaded server takes new ones again.
        type: int
  purge_realservers:
    description:
      - Remove the real servers not listed in O(realservers) (all of them when that option is
        left out).
    type: bool
    default: false
  state:
    description:
      - V(present) creates or changes the service, V(absent) removes it with its real servers.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The virtual address must be a local address of the director for traffic to be balanced,
    but the service can be declared before it is.
seealso:
  - module: lvs.ha.ipvs_realserver
  - module: lvs.ha.ipvs_info
"""

EXAMPLES = r"""
- name: A web service balanced by weighted least-connection
  lvs.ha.ipvs_service:
    address: 192.168.179.199
    port: 80
    scheduler: wlc

- name: Sticky HTTPS per /24 of clients for 10 minutes, with its two real servers
  lvs.ha.ipvs_service:
    address: 192.168.179.199
    port: 443
    scheduler: wrr
    persistence_timeout: 600
    persistence_netmask: 24
    realservers:
      - address: 192.168.179.10
        weight: 2
      - address: 192.168.179.11
    purge_realservers: true

- name: A fwmark service hashing on source address and port
  lvs.ha.ipvs_service:
    fwmark: 1
    scheduler: sh
    scheduler_flags: [sh-port]

- name: Remove a UDP service and its real servers
  lvs.ha.ipvs_service:
    address: 2001:db8::53
    port: 53
    protocol: udp
    state: absent
"""

RETURN = r"""
service:
  description:
    - The service as the kernel holds it after the change (predicted in check mode); empty
      when it is absent.
  returned: always
  type: dict
  sample:
    family: 4
    protocol: tcp
    address: 192.168.179.199
    port: 80
    fwmark: null
    scheduler: wlc
    persistence_timeout: 0
    persistence_netmask: 255.255.255.255
    flags: []
    realservers:
      - address: 192.168.179.10
        port: 80
        forwarding: dr
        weight: 1
        upper_threshold: 0
        lower_threshold: 0
done:
  description:
    - What was already changed when a kernel error stopped the task part-way (the task then
      fails with C(changed=true)), e.g. V(created service [192.168.179.199]:80).
  returned: on failure after a partial change
  type: list
  elements: str
  sample:
    - created service [192.168.179.199]:80
    - added real server [192.168.179.10]:80
"""

from contextlib import suppress

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lvs.ha.plugins.module_utils.ipvs_module import (
    FAMILIES,
    REALSERVER_SPEC,
    run_manager,
)
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.ipvs import (
    SCHEDULERS,
    SERVICE_FLAGS,
    IpvsError,
    Service,
    desired_destination,
    format_endpoint,
    service_key_from,
    with_changes,
)
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.ipvs.plan import (
    PartlyApplied,
    apply_or_raise,
    plan_service,
    result,
)

SCHEDULER_FLAGS = [name for name in SERVICE_FLAGS if name != "ops"]  # ops has its own option


def service_view(service, destinations):
    if service is None:
        return {}
    return {**service.to_dict(), "realservers": [d.to_dict() for d in destinations]}


class ServiceManager:
    """Brings one service (and optionally its real servers) to the requested state."""

    def __init__(self, module, client):
        self.module = module
        self.client = client
        params = module.params
        self.key = service_key_from(
            params["address"],
            params["port"],
            params["protocol"],
            params["fwmark"],
            FAMILIES[params["family"]],
        )
        self.current = client.service(self.key)
        self.current_destinations = client.destinations(self.key) if self.current else []
        self.changed = False
        self.after = service_view(self.current, self.current_destinations)

    def desired_flags(self):
        """scheduler_flags and one_packet_scheduling share the kernel's flags word."""
        params = self.module.params
        if params["scheduler_flags"] is None and params["one_packet_scheduling"] is None:
            return None
        current = self.current.flags if self.current else frozenset()
        sched = params["scheduler_flags"]
        if sched is None:
            sched = current - {"ops"}
        ops = params["one_packet_scheduling"]
        if ops is None:
            ops = "ops" in current
        return frozenset(sched) | ({"ops"} if ops else frozenset())

    def present(self):
        params = self.module.params
        desired = with_changes(
            self.current,
            Service(self.key),
            scheduler=params["scheduler"],
            persistence_timeout=params["persistence_timeout"],
            persistence_netmask=params["persistence_netmask"],
            flags=self.desired_flags(),
        )
        changes = plan_service(
            self.key,
            desired,
            self.declared_destinations(),
            self.current,
            self.current_destinations,
            purge=params["purge_realservers"],
        )
        self.changed = bool(changes)
        if self.module.check_mode:
            self.after = service_view(desired, result(self.current_destinations, changes))
            return
        try:
            apply_or_raise(self.client, changes)
        except PartlyApplied as exc:
            self.fail_part_way(exc)
        self.read_back()

    def declared_destinations(self):
        """The real servers of `realservers`; two entries naming the same address and port
        are refused before anything changes (which one should win?)."""
        declared = []
        seen = {}
        for index, entry in enumerate(self.module.params["realservers"] or []):
            dest = desired_destination(self.current_destinations, self.key, entry)
            endpoint = (dest.address, dest.port)
            if endpoint in seen:
                raise ValueError(
                    f"realservers[{index}]: {format_endpoint(*endpoint)} is already "
                    f"realservers[{seen[endpoint]}]"
                )
            seen[endpoint] = index
            declared.append(dest)
        return declared

    def fail_part_way(self, exc):
        """A kernel error after some changes: the task failed, but it did change the table."""
        with suppress(IpvsError):  # when the table cannot be read back, `done` says it all
            self.read_back()
        results = dict(self.results(), changed=True, done=exc.done)
        self.module.fail_json(msg=str(exc), **results)

    def absent(self):
        if self.current is None:
            return
        self.changed = True
        self.after = {}
        if not self.module.check_mode:
            self.client.delete_service(self.key)

    def read_back(self):
        service = self.client.service(self.key)
        destinations = self.client.destinations(self.key) if service else []
        self.after = service_view(service, destinations)

    def results(self):
        results = {"changed": self.changed, "service": self.after}
        if self.module._diff:
            before = service_view(self.current, self.current_destinations)
            results["diff"] = {"before": before, "after": self.after}
        return results


def main():
    module = AnsibleModule(
        argument_spec={
            "address": {"type": "str"},
            "port": {"type": "int"},
            "protocol": {"type": "str", "choices": ["tcp", "udp", "sctp"], "default": "tcp"},
            "fwmark": {"type": "int"},
            "family": {"type": "str", "choices": list(FAMILIES), "default": "ipv4"},
            "scheduler": {"type": "str", "choices": list(SCHEDULERS)},
            "persistence_timeout": {"type": "int"},
            "persistence_netmask": {"type": "str"},
            "scheduler_flags": {"type": "list", "elements": "str", "choices": SCHEDULER_FLAGS},
            "one_packet_scheduling": {"type": "bool"},
            "realservers": {"type": "list", "elements": "dict", "options": REALSERVER_SPEC},
            "purge_realservers": {"type": "bool", "default": False},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        mutually_exclusive=[("fwmark", "address"), ("fwmark", "port")],
        required_one_of=[("address", "fwmark")],
        required_together=[("address", "port")],
        supports_check_mode=True,
    )
    run_manager(module, ServiceManager)


if __name__ == "__main__":
    main()
