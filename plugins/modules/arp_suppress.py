#!/usr/bin/python
# Copyright: lvs.ha contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible wants the documentation blocks before the imports.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: arp_suppress
short_description: Prepare an LVS-DR real server (VIPs on the loopback, no ARP for them)
version_added: 0.1.0
description:
  - With direct routing (LVS-DR) the director forwards packets for the VIP to a real server
    unchanged, so the real server must hold the VIP, yet must never answer ARP for it or the
    LAN would send the clients' traffic past the director.
  - This module puts the VIPs on the loopback as host addresses (/32 or /128, IPv4 ones with a
    label) and sets C(net.ipv4.conf.INTERFACE.arp_ignore) and C(arp_announce) on the listed
    interfaces (C(all) and C(lo) by default), at once and persistently.
  - "Persistence: the sysctls go to a C(sysctl.d) file (applied at boot by C(systemd-sysctl), and
    by udev for interfaces that appear later); the VIPs go to a small oneshot systemd unit,
    C(lvs-ha-vips.service), enabled for C(multi-user.target) and ordered before
    C(network-pre.target). A unit of its own rather than ifupdown, netplan or NetworkManager
    configuration: it is the same on every systemd distribution, owns one file, and does not
    depend on which network manager (if any) handles the loopback."
  - The values found before the first change are remembered in O(state_file); O(state=absent)
    restores them, removes the VIPs and the persisted files.
  - Where C(/proc/sys) is read-only (a container) and the values already match, the module
    succeeds without writing them; where they differ it fails and names the sysctl.
  - VIPs that are not listed are left alone unless the module added them; a listed VIP that
    already exists keeps its label.
requirements:
  - pyroute2 >= 0.9.6
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
  vips:
    description:
      - Virtual IP addresses to hold on O(interface), IPv4 or IPv6, without a prefix or with
        V(/32) or V(/128), and without a scope (V(%ZONE)).
      - A VIP the module added before (recorded in O(state_file)) and no longer listed is
        removed; a VIP it found already there is never removed.
      - With O(state=absent), these and the VIPs the module added before are removed.
    type: list
    elements: str
    default: []
  interface:
    description:
      - Interface that holds the VIPs.
      - A Linux interface name of 1 to 15 characters, not V(.) or V(..), made of letters,
        digits and C(_ . + -) (not first). Blanks, C(/), C(:), and characters a systemd unit
        or a C(sysctl.d) file would read as syntax (C(% $ ; = *), quotes, C(\)) are refused.
    type: str
    default: lo
  label:
    description:
      - Label of the IPv4 VIPs (IPv6 addresses have none), as C(ip address) wants it, either
        O(interface) itself or O(interface) followed by C(:) and a non-empty suffix of
        letters, digits and C(_ . + - :), at most 15 characters in all.
      - V(INTERFACE:lvs) when left out.
    type: str
  arp_ignore:
    description:
      - Value of C(arp_ignore) on O(arp_interfaces). V(1) answers ARP only for addresses of the
        interface the request came in on, so never for a VIP on the loopback.
    type: int
    choices: [0, 1, 2, 3, 8]
    default: 1
  arp_announce:
    description:
      - Value of C(arp_announce) on O(arp_interfaces). V(2) never uses a VIP as the source of
        an ARP request.
    type: int
    choices: [0, 1, 2]
    default: 2
  arp_interfaces:
    description:
      - Interfaces whose C(arp_ignore) and C(arp_announce) are set; V(all) is the kernel's
        C(net.ipv4.conf.all) entry.
      - Each name follows the rules of O(interface).
    type: list
    elements: str
    default: [all, lo]
  persist:
    description:
      - Write the C(sysctl.d) file and the systemd unit so that the settings survive a reboot.
      - V(false) removes the C(sysctl.d) file, the unit and its link written by an earlier
        O(persist=true) (a file is removed only if it carries this module's header); the
        settings are still applied now.
    type: bool
    default: true
  sysctl_file:
    description:
      - The C(sysctl.d) file written when O(persist=true).
    type: path
    default: /etc/sysctl.d/90-lvs-ha-arp-suppress.conf
  unit_dir:
    description:
      - Folder of the systemd unit C(lvs-ha-vips.service) and of its
        C(multi-user.target.wants) link, written when O(persist=true) and O(vips) is not empty.
      - C(systemctl daemon-reload) is run after a change when it is the default and systemd runs.
    type: path
    default: /etc/systemd/system
  state_file:
    description:
      - JSON file that remembers the values found before the first change and the VIPs added,
        for O(state=absent).
    type: path
    default: /var/lib/lvs-ha/arp_suppress.json
  state:
    description:
      - V(present) applies and persists the settings; V(absent) restores the remembered
        values, removes the VIPs and the persisted files.
    type: str
    choices: [present, absent]
    default: present
notes:
  - C(/proc/sys/net) belongs to a network namespace; the module acts on the one it runs in.
seealso:
  - module: lvs.ha.ipvs_realserver
  - name: LVS-DR ARP problem
    description: Why a direct-routing real server must not answer ARP for the VIP.
    link: https://docs.kernel.org/networking/ip-sysctl.html
"""

EXAMPLES = r"""
- name: Make this host a direct-routing real server of two VIPs
  lvs.ha.arp_suppress:
    vips:
      - 192.168.179.199
      - 2001:db8::199

- name: Set the ARP sysctls on eth0 as well, without persisting anything
  lvs.ha.arp_suppress:
    vips: [192.168.179.199]
    arp_interfaces: [all, lo, eth0]
    persist: false

- name: Undo it (previous sysctl values restored, VIPs and files removed)
  lvs.ha.arp_suppress:
    state: absent
"""

RETURN = r"""
sysctls:
  description: The managed sysctls and their values after the change (predicted in check mode).
  returned: always
  type: dict
  sample:
    net.ipv4.conf.all.arp_ignore: "1"
    net.ipv4.conf.all.arp_announce: "2"
    net.ipv4.conf.lo.arp_ignore: "1"
    net.ipv4.conf.lo.arp_announce: "2"
vips:
  description: The listed VIPs held on O(interface) after the change; empty after O(state=absent).
  returned: always
  type: list
  elements: str
  sample: [192.168.179.199/32, 2001:db8::199/128]
previous:
  description: The values remembered for O(state=absent) (empty after it).
  returned: always
  type: dict
  sample:
    net.ipv4.conf.all.arp_ignore: "0"
sysctl_file:
  description: The persisted C(sysctl.d) file, or null when O(persist=false).
  returned: always
  type: str
  sample: /etc/sysctl.d/90-lvs-ha-arp-suppress.conf
unit_file:
  description: The systemd unit that restores the VIPs at boot, or null when none is written.
  returned: always
  type: str
  sample: /etc/systemd/system/lvs-ha-vips.service
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.arpsuppress import (
    STATE_FILE,
    SYSCTL_FILE,
    UNIT_DIR,
    ArpSuppress,
    ArpSuppressError,
    Settings,
)
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.netlink import (
    HAS_PYROUTE2,
    PYROUTE2_IMPORT_TRACEBACK,
    REQUIREMENT,
)

ARGUMENT_SPEC = {
    "vips": {"type": "list", "elements": "str", "default": []},
    "interface": {"type": "str", "default": "lo"},
    "label": {"type": "str"},
    "arp_ignore": {"type": "int", "choices": [0, 1, 2, 3, 8], "default": 1},
    "arp_announce": {"type": "int", "choices": [0, 1, 2], "default": 2},
    "arp_interfaces": {"type": "list", "elements": "str", "default": ["all", "lo"]},
    "persist": {"type": "bool", "default": True},
    "sysctl_file": {"type": "path", "default": SYSCTL_FILE},
    "unit_dir": {"type": "path", "default": UNIT_DIR},
    "state_file": {"type": "path", "default": STATE_FILE},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
}


def settings_from(params: dict) -> Settings:
    names = [name for name in ARGUMENT_SPEC if name != "state"]
    return Settings(**{name: params[name] for name in names})


def reload_systemd(module, settings, result) -> None:
    """Tell a running systemd about a new or removed unit in its own folder."""
    diff = result["diff"]
    unit_changed = diff["before"]["files"].get(settings.unit_file) != diff["after"]["files"].get(
        settings.unit_file
    )
    systemd_runs = os.path.isdir("/run/systemd/system")
    if unit_changed and systemd_runs and settings.unit_dir == UNIT_DIR and not module.check_mode:
        module.run_command(["systemctl", "daemon-reload"], check_rc=True)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib(REQUIREMENT), exception=PYROUTE2_IMPORT_TRACEBACK)
    try:
        settings = settings_from(module.params)
        manager = ArpSuppress(settings, check_mode=module.check_mode)
        result = manager.present() if module.params["state"] == "present" else manager.absent()
    except (ArpSuppressError, OSError) as exc:
        module.fail_json(msg=str(exc))
    reload_systemd(module, settings, result)
    if not module._diff:
        del result["diff"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
