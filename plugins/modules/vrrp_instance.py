#!/usr/bin/python
# Copyright: lvs.ha contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# Ansible wants the documentation blocks before the imports.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vrrp_instance
short_description: Declare a VRRP instance for lvs-agent (keepalived syntax, validated, reloaded)
version_added: 0.1.0
description:
  - Writes one C(vrrp_instance) block in keepalived syntax to
    O(config_dir)C(/vrrp_instance_NAME.conf), the include directory of lvs-agent.
  - "Before anything is written or removed, the whole configuration O(main_config) is loaded as
    it would be afterwards, with the agent's own parser and checks. On any error nothing is
    written and the task fails with every problem as C(FILE:LINE: message)."
  - O(main_config) must include the file (for example C(include /etc/lvs-agent/conf.d/*.conf));
    otherwise the task fails and says which line to add.
  - The file is replaced atomically, with mode C(0600) since it may hold O(auth_pass); it keeps
    the owner, group and SELinux context of the file it replaces. A wrong mode is repaired.
  - When the file changed and the agent's control socket exists, the running agent is asked to
    reload; the instance's live state (MASTER/BACKUP/FAULT, effective priority) is returned
    whenever the agent answers.
requirements:
  - lvs-agent (this collection's agent) on the managed host to run the instance
author:
  - lvs.ha developers (!UNKNOWN)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying
      target.
    support: full
    details: Nothing is written and the agent is not reloaded; the live state is read.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in
      check_mode), when in diff mode.
    support: full
    details:
      - Two entries; the file's text before and after, with the password shown as
        C(********); then its path, state and mode before and after (a mode-only repair
        shows there).
options:
  name:
    description:
      - Name of the VRRP instance (keepalived's C(vrrp_instance NAME)); also names the file.
      - No C(/), blanks or leading C(.).
    type: str
    required: true
  state:
    description:
      - V(present) writes the instance's file; V(absent) removes it.
      - The initial VRRP state is O(initial_state).
    type: str
    choices: [present, absent]
    default: present
  interface:
    description:
      - Interface the instance runs on. Required unless O(unicast_peers) is given.
    type: str
  virtual_router_id:
    description:
      - Virtual router ID, 1 to 255, the same on every router of the instance.
      - Required with O(state=present).
    type: int
  priority:
    description:
      - Priority, 1 to 255 (255 is the address owner).
      - Always written, so an O(initial_state=MASTER) without it has priority 100, not 255.
    type: int
    default: 100
  advert_int:
    description:
      - Advertisement interval in seconds (whole seconds with VRRPv2, hundredths with v3).
      - The agent's default (1 second) when left out.
    type: float
  version:
    description:
      - VRRP version. Left out, it is the global C(vrrp_version) (or 3 for IPv6).
    type: int
    choices: [2, 3]
  initial_state:
    description:
      - The state the instance starts in; the election decides after that.
    type: str
    choices: [MASTER, BACKUP]
    default: BACKUP
  nopreempt:
    description:
      - Do not take over from a master of lower priority.
    type: bool
    default: false
  preempt_delay:
    description:
      - Seconds to wait before preempting a master of lower priority after start-up.
    type: float
  auth_pass:
    description:
      - Password of VRRPv2 simple authentication (C(auth_type PASS)); only the first 8
        characters are sent. Never logged, masked in the diff.
    type: str
  unicast_src_ip:
    description:
      - Source address of unicast advertisements.
    type: str
  unicast_peers:
    description:
      - Addresses of the other routers; advertisements go to them instead of multicast.
    type: list
    elements: str
    default: []
  virtual_ipaddresses:
    description:
      - The VIPs. Each one either a string in keepalived's form
        (C(ADDRESS[/LEN] [brd B] [dev D] [scope S] [label L] [peer P] [no_track]), e.g.
        C(10.0.0.100/24 dev eth0 label eth0:vip)) or a dict with the keys C(address)
        (required), C(dev), C(label), C(scope), C(broadcast), C(peer) and C(no_track).
      - All of one family (IPv4 or IPv6).
    type: list
    elements: raw
    default: []
  virtual_ipaddresses_excluded:
    description:
      - VIPs held but not advertised (keepalived's C(virtual_ipaddress_excluded)), in the
        forms of O(virtual_ipaddresses); they may be of the other family.
    type: list
    elements: raw
    default: []
  track_interfaces:
    description:
      - Interfaces whose state changes the instance's priority or puts it in FAULT. Each one
        either a string in keepalived's form (C(NAME [weight N [reverse]])) or a dict with
        the keys C(name) (required), C(weight) (-253 to 253) and C(reverse).
    type: list
    elements: raw
    default: []
  track_scripts:
    description:
      - C(vrrp_script) blocks (defined elsewhere in the configuration) that the instance
        tracks, in the forms of O(track_interfaces). Without a weight, the script's own.
    type: list
    elements: raw
    default: []
  notify_master:
    description:
      - Script run on becoming MASTER. Arguments make it one string, for example
        C(/usr/local/bin/notify.sh master).
    type: str
  notify_backup:
    description:
      - Script run on becoming BACKUP.
    type: str
  notify_fault:
    description:
      - Script run on entering FAULT.
    type: str
  notify_stop:
    description:
      - Script run when the instance stops.
    type: str
  notify:
    description:
      - Script run on every transition, with the arguments C(INSTANCE NAME STATE PRIORITY).
    type: str
  config_dir:
    description:
      - The agent's include directory, where the instance's file is written.
    type: path
    default: /etc/lvs-agent/conf.d
  main_config:
    description:
      - The agent's main configuration, which must include the files of O(config_dir).
    type: path
    default: /etc/lvs-agent/lvs-agent.conf
  host_checks:
    description:
      - Also check the configuration against this host (the interfaces exist), as the agent
        does when it starts. Turn off to prepare files for interfaces that come later.
    type: bool
    default: true
  control_socket:
    description:
      - The running agent's control socket. When it exists, the agent is reloaded after a
        change and asked for the instance's live state.
    type: path
    default: /run/lvs-agent/control.sock
  reload:
    description:
      - Ask a running agent to reload after a change.
      - The agent refuses a reload that leaves no C(vrrp_instance) and no C(virtual_server)
        (an emptied file is the likelier cause), except when this module removes an instance
        with O(state=absent), which asks for exactly that.
    type: bool
    default: true
notes:
  - The agent's reload checks the configuration again; if it refuses it (for example because
    another file changed meanwhile), the task fails and the agent keeps running the old one.
seealso:
  - name: keepalived.conf(5)
    description: The syntax of the C(vrrp_instance) block.
    link: https://www.keepalived.org/manpage.html
"""

EXAMPLES = r"""
- name: A VIP in front of two directors (the other one has priority 100)
  lvs.ha.vrrp_instance:
    name: VI_WEB
    interface: eth0
    virtual_router_id: 51
    priority: 150
    advert_int: 1
    auth_pass: "{{ vault_vrrp_password }}"
    virtual_ipaddresses:
      - 192.168.179.199/24
      - address: 192.168.180.199/24
        dev: eth1
        label: eth1:vip
    track_interfaces:
      - eth1
    notify_master: /usr/local/bin/lvs-notify master
  register: vrrp

- name: Show who holds the VIP now
  ansible.builtin.debug:
    msg: "{{ vrrp.live.state }} with priority {{ vrrp.live.effective_priority }}"
  when: vrrp.live

- name: Unicast VRRPv3 on a network without multicast
  lvs.ha.vrrp_instance:
    name: VI_DB
    interface: ens3
    virtual_router_id: 52
    version: 3
    advert_int: 0.5
    nopreempt: true
    unicast_src_ip: 10.1.0.11
    unicast_peers: [10.1.0.12]
    virtual_ipaddresses: ["10.1.0.100/24"]
    track_scripts:
      - name: check_db
        weight: -50

- name: Remove an instance
  lvs.ha.vrrp_instance:
    name: VI_OLD
    state: absent
"""

RETURN = r"""
file:
  description: The instance's file.
  returned: always
  type: str
  sample: /etc/lvs-agent/conf.d/vrrp_instance_VI_WEB.conf
instance:
  description:
    - The instance as the agent reads it from the configuration (keepalived's defaults and
      completion rules applied), the password masked; empty after O(state=absent).
  returned: always
  type: dict
  sample:
    name: VI_WEB
    state: BACKUP
    interface: eth0
    virtual_router_id: 51
    priority: 150
    advert_int: 1.0
    version: 2
    auth_type: PASS
    auth_pass: "********"
    virtual_ipaddresses:
      - address: 192.168.179.199/24
        dev: null
        label: null
reloaded:
  description: Whether the running agent was asked to reload and took the new configuration.
  returned: always
  type: bool
  sample: true
live:
  description:
    - The instance in the running agent, or null when no agent answers or it does not run
      the instance (for example in check mode before the first write).
  returned: always
  type: dict
  sample:
    name: VI_WEB
    state: MASTER
    priority: 150
    effective_priority: 150
    interface: eth0
    vips: [192.168.179.199/24]
"""

import os
import re
from dataclasses import replace

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent import files
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.config import (
    ConfigError,
    Problem,
    Script,
    VrrpInstance,
    dropin,
)
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.config.parser import parse_entry
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.config.redact import mask_secrets
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.config.render import (
    NOTIFY_KEYWORDS,
    render_instance,
    statement,
)
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.configcmd import to_plain
from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.control import (
    ControlError,
    request,
)

FILE_MODE = 0o600
VIP_KEYS = {"address": None, "broadcast": "brd", "dev": "dev", "scope": "scope"}
VIP_KEYS.update({"label": "label", "peer": "peer", "no_track": "no_track"})
TRACK_KEYS = {"name": None, "weight": "weight", "reverse": "reverse"}
# keepalived's block of each list option
BLOCK_OF_OPTION = {
    "unicast_peers": "unicast_peer",
    "virtual_ipaddresses": "virtual_ipaddress",
    "virtual_ipaddresses_excluded": "virtual_ipaddress_excluded",
    "track_interfaces": "track_interface",
    "track_scripts": "track_script",
}
OPTION_OF_BLOCK = {block: option for option, block in BLOCK_OF_OPTION.items()}
ENTRY_KEYS = {
    "unicast_peers": {"address": None},
    "virtual_ipaddresses": VIP_KEYS,
    "virtual_ipaddresses_excluded": VIP_KEYS,
    "track_interfaces": TRACK_KEYS,
    "track_scripts": TRACK_KEYS,
}

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "interface": {"type": "str"},
    "virtual_router_id": {"type": "int"},
    "priority": {"type": "int", "default": 100},
    "advert_int": {"type": "float"},
    "version": {"type": "int", "choices": [2, 3]},
    "initial_state": {"type": "str", "choices": ["MASTER", "BACKUP"], "default": "BACKUP"},
    "nopreempt": {"type": "bool", "default": False},
    "preempt_delay": {"type": "float"},
    "auth_pass": {"type": "str", "no_log": True},
    "unicast_src_ip": {"type": "str"},
    "unicast_peers": {"type": "list", "elements": "str", "default": []},
    "virtual_ipaddresses": {"type": "list", "elements": "raw", "default": []},
    "virtual_ipaddresses_excluded": {"type": "list", "elements": "raw", "default": []},
    "track_interfaces": {"type": "list", "elements": "raw", "default": []},
    "track_scripts": {"type": "list", "elements": "raw", "default": []},
    **{option: {"type": "str"} for option in NOTIFY_KEYWORDS},
    "config_dir": {"type": "path", "default": dropin.DEFAULT_CONFIG_DIR},
    "main_config": {"type": "path", "default": "/etc/lvs-agent/lvs-agent.conf"},
    "host_checks": {"type": "bool", "default": True},
    "control_socket": {"type": "path", "default": "/run/lvs-agent/control.sock"},
    "reload": {"type": "bool", "default": True},
}


class OptionError(Exception):
    """A module option that does not make a valid instance."""


class AgentRefused(Exception):
    """The running agent answered the reload with an error."""


# ---- options -> model ------------------------------------------------------------------------


def entry_words(element: str, value, keys: dict) -> list:
    """A dict entry (address/dev/label..., name/weight/reverse) as keepalived's words;
    `element` names it in errors (virtual_ipaddresses[2])."""
    unknown = sorted(set(value) - set(keys))
    if unknown:
        known = ", ".join(keys)
        raise OptionError(f"{element}: unknown key(s) {', '.join(unknown)}; known: {known}")
    first = next(iter(keys))
    if value.get(first) in (None, ""):
        raise OptionError(f"{element}: '{first}' is required")
    words = [str(value[first])]
    for key, keyword in list(keys.items())[1:]:
        content = value.get(key)
        if content is None or content is False:
            continue
        words += [keyword] if content is True else [keyword, str(content)]
    return words


def entry(option: str, index: int, block: str, value, keys: dict):
    """One list element of an option, read by the agent's parser as a line of `block`."""
    element = f"{option}[{index}]"
    if isinstance(value, dict):
        text = statement(*entry_words(element, value, keys))
    elif isinstance(value, str):
        text = value
    else:
        raise OptionError(f"{element}: expected a string or a dict")
    try:
        return parse_entry(block, text, element)
    except ConfigError as error:
        messages = [f"{element}: {problem.message}" for problem in error.problems]
        raise OptionError("; ".join(messages)) from None


def element_lines(text: str) -> dict:
    """{line number: [(element, its first word)]} of a rendered instance: an entry's line holds
    one element (virtual_ipaddresses[2]), a list block's opening line all of the block's (the
    checks put a problem of a plain address there)."""
    lines = {}
    block = None
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if block is None:
            if len(words) == 2 and words[1] == "{" and words[0] in OPTION_OF_BLOCK:
                option, block = OPTION_OF_BLOCK[words[0]], []
                lines[number] = block
        elif words == ["}"]:
            block = None
        else:
            element = (f"{option}[{len(block)}]", words[0])
            block.append(element)
            lines[number] = [element]
    return lines


def element_named(problem: Problem, lines: dict) -> Problem:
    """The problem with the list element it is about in front (the one whose first word the
    message quotes when the problem sits on a block's opening line)."""
    elements = lines.get(problem.line, [])
    if len(elements) > 1:
        elements = [e for e in elements if re.search(rf"\b{re.escape(e[1])}\b", problem.message)]
    if len(elements) != 1:
        return problem
    return replace(problem, message=f"{elements[0][0]}: {problem.message}")


def instance_from(params: dict) -> VrrpInstance:
    """The model of the instance the options describe (values are judged by the parser)."""
    instance = VrrpInstance(
        params["name"],
        state=params["initial_state"],
        interface=params["interface"],
        virtual_router_id=params["virtual_router_id"],
        priority=params["priority"],
        nopreempt=params["nopreempt"],
        unicast_src_ip=params["unicast_src_ip"],
    )
    if params["advert_int"] is not None:
        instance.advert_int = params["advert_int"]
    if params["version"] is not None:
        instance.version = params["version"]
    if params["preempt_delay"] is not None:
        instance.preempt_delay = params["preempt_delay"]
    if params["auth_pass"] is not None:
        instance.auth_type, instance.auth_pass = "PASS", params["auth_pass"]
    for option in NOTIFY_KEYWORDS:
        if params[option] is not None:
            setattr(instance, option, Script(params[option]))
    for option, block in BLOCK_OF_OPTION.items():
        keys = ENTRY_KEYS[option]
        setattr(
            instance,
            option,
            [entry(option, i, block, value, keys) for i, value in enumerate(params[option])],
        )
    return instance


# ---- the running agent -----------------------------------------------------------------------


class AgentControl:
    """The agent's control socket: reload, and the live state of one instance."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path

    def available(self) -> bool:
        return os.path.exists(self.socket_path)

    def call(self, command: str, **options) -> dict:
        """The one place that talks to the agent (protocol in docs/DESIGN.md)."""
        return request(self.socket_path, command, **options)

    def reload(self, allow_empty: bool) -> None:
        answer = self.call("reload", allow_empty=allow_empty)
        if answer.get("error"):
            problems = answer.get("problems") or []
            message = f"lvs-agent refused the reload: {answer['error']}"
            raise AgentRefused("; ".join([message, *problems]))

    def instance(self, name: str):
        for live in self.call("status").get("vrrp", []):
            if live.get("name") == name:
                return live
        return None


# ---- the manager -----------------------------------------------------------------------------


class VrrpInstanceManager:
    """present()/absent() of one instance's file; results() is what the module returns."""

    def __init__(self, module, agent: AgentControl):
        self.module = module
        self.params = module.params
        self.agent = agent
        self.path = dropin.instance_path(self.params["config_dir"], self.params["name"])
        self.before = files.read(self.path)
        self.after = self.before
        self.mode_before = files.mode_of(self.path)
        self.mode_after = self.mode_before
        self.changed = False
        self.instance = {}
        self.reloaded = False
        self.live = None

    def validate(self, text):
        """The whole configuration as it would be; every problem fails the task."""
        try:
            config = dropin.validate(
                self.params["main_config"], self.path, text, host_checks=self.params["host_checks"]
            )
        except ConfigError as error:
            self.refuse("the configuration would be invalid", error.problems, text)
        # keepalived corrects or ignores what it warns about; in the file this module writes,
        # that means an option with a value keepalived would not run: fail instead
        own = [w for w in config.warnings if os.path.abspath(w.file) == self.path]
        if own:
            self.refuse("keepalived would not use these values", own, text)
        return config

    def refuse(self, reason: str, problems: list, text) -> None:
        """Fails with every problem; one in a line of a list option names its element."""
        lines = element_lines(text or "")
        named = [
            element_named(problem, lines) if os.path.abspath(problem.file) == self.path else problem
            for problem in problems
        ]
        self.module.fail_json(
            msg=f"{reason}, nothing written:\n" + "\n".join(str(problem) for problem in named),
            problems=[str(problem) for problem in named],
            file=self.path,
        )

    def refuse_while_grouped(self) -> None:
        """keepalived would drop a missing member from its sync group: refuse instead."""
        try:
            current = dropin.validate(
                self.params["main_config"], self.path, self.before, host_checks=False
            )
        except ConfigError:
            return  # validate(None) reports what is wrong with the result
        name = self.params["name"]
        groups = [group.name for group in current.sync_groups if name in group.group]
        if groups:
            self.module.fail_json(
                msg=f"vrrp_sync_group {', '.join(groups)} still lists {name}: remove it from "
                "the group first, nothing removed",
                file=self.path,
            )

    def present(self) -> None:
        try:
            model = instance_from(self.params)
            text = dropin.HEADER + render_instance(model)
        except (OptionError, ValueError) as error:
            self.module.fail_json(msg=str(error))
        config = self.validate(text)
        for loaded in config.vrrp_instances:
            if os.path.abspath(loaded.location.file) == self.path:
                self.instance = to_plain(loaded, locations=False)
        self.after = text
        self.mode_after = FILE_MODE
        self.changed = text != self.before or self.mode_before != FILE_MODE
        if self.changed and not self.module.check_mode:
            self.write(text)

    def write(self, text: str) -> None:
        """Replaced atomically with the owner (write_atomic) and SELinux context the file had,
        or the policy's default context for a new one, as Ansible's atomic_move does."""
        if self.before is None:
            context = self.module.selinux_default_context(self.path)
        else:
            context = self.module.selinux_context(self.path)
        files.write_atomic(self.path, text, FILE_MODE)
        self.module.set_context_if_different(self.path, context, False)

    def absent(self) -> None:
        if self.before is None:
            return
        self.refuse_while_grouped()
        self.validate(None)
        self.after = None
        self.mode_after = None
        self.changed = True
        if not self.module.check_mode:
            files.remove(self.path)

    def talk_to_agent(self) -> None:
        """Reload after a change, then read the live state; a silent agent is only a warning."""
        if not self.agent.available():
            return
        try:
            if self.changed and self.params["reload"] and not self.module.check_mode:
                # removing an instance is explicit: the agent may be left with none
                self.agent.reload(allow_empty=self.params["state"] == "absent")
                self.reloaded = True
            self.live = self.agent.instance(self.params["name"])
        except ControlError as error:
            self.module.warn(f"{error}: the change takes effect when the agent (re)starts")
        except AgentRefused as error:
            self.module.fail_json(msg=str(error), file=self.path, changed=self.changed)

    def results(self) -> dict:
        result = {
            "changed": self.changed,
            "file": self.path,
            "instance": self.instance,
            "reloaded": self.reloaded,
            "live": self.live,
        }
        if self.module._diff:
            result["diff"] = [
                {
                    "before": mask_secrets(self.before) or "",
                    "after": mask_secrets(self.after) or "",
                    "before_header": self.path,
                    "after_header": self.path,
                },
                {  # a mode-only change shows too, as the file module shows it
                    "before": file_attributes(self.path, self.mode_before),
                    "after": file_attributes(self.path, self.mode_after),
                },
            ]
        return result


def file_attributes(path: str, mode) -> dict:
    """The file's attributes as the diff shows them (the file module's words)."""
    if mode is None:
        return {"path": path, "state": "absent"}
    return {"path": path, "state": "file", "mode": f"{mode:04o}"}


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", "present", ("virtual_router_id",))],
        supports_check_mode=True,
    )
    try:
        manager = VrrpInstanceManager(module, AgentControl(module.params["control_socket"]))
        if module.params["state"] == "present":
            manager.present()
        else:
            manager.absent()
    except (ValueError, OSError) as error:
        module.fail_json(msg=str(error))
    manager.talk_to_agent()
    module.exit_json(**manager.results())


if __name__ == "__main__":
    main()
