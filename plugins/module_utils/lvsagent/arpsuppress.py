"""ARP suppression on an LVS-DR real server: the VIPs on `lo`, arp_ignore/arp_announce.

A DR real server holds the VIP so that it accepts the packets the director forwards, but must
never answer ARP for it (the director owns the VIP on the LAN). This module applies that now
(/proc/sys and netlink) and persists it: a sysctl.d file for the sysctls and a small systemd
unit for the addresses (both replayed at boot), plus a JSON state file that remembers the
values found before the first change so that `absent()` can restore them.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from typing import Optional

from . import files
from .netlink import HAS_PYROUTE2, IPRoute, NetlinkError, missing_pyroute2

PROC_SYS = "/proc/sys"
SYSCTL_FILE = "/etc/sysctl.d/90-lvs-ha-arp-suppress.conf"
UNIT_DIR = "/etc/systemd/system"
UNIT_NAME = "lvs-ha-vips.service"
STATE_FILE = "/var/lib/lvs-ha/arp_suppress.json"
HEADER = "# Managed by lvs.ha.arp_suppress (LVS-DR real server): do not edit.\n"
ARP_PARAMS = ("arp_ignore", "arp_announce")
IFNAMSIZ = 16  # the kernel's buffer for a device name or an address label, NUL included
# The kernel takes any name without '/', ':' or blanks; these names are also written into a
# systemd unit and a sysctl.d file, where % $ ; = * \ and quotes are syntax: only plain
# characters are accepted, which every real interface name uses.
NAME = re.compile(r"[A-Za-z0-9_.+][A-Za-z0-9_.+-]*")
NAME_RULE = "letters, digits and _ . + - (not first)"


class ArpSuppressError(Exception):
    """A problem the operator must fix; the message says which setting and why."""


def normalize_vip(text: str) -> str:
    """`10.0.0.1` -> `10.0.0.1/32`; only host routes make sense on lo (a /24 would answer
    for the whole subnet)."""
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ArpSuppressError(f"{text!r} is not an IP address") from exc
    if getattr(iface, "scope_id", None) is not None:
        raise ArpSuppressError(f"VIP {text!r}: a scope (%ZONE) is not allowed")
    if iface.network.prefixlen != iface.max_prefixlen:
        raise ArpSuppressError(f"VIP {text} must be a single address (/32 or /128)")
    return str(iface)


def check_interface_name(option: str, name: str) -> str:
    """A Linux device name (1-15 characters, not `.` or `..`) of plain characters."""
    if not 0 < len(name) < IFNAMSIZ:
        raise ArpSuppressError(f"{option}: {name!r} must be 1 to {IFNAMSIZ - 1} characters")
    if name in (".", "..") or not NAME.fullmatch(name):
        raise ArpSuppressError(f"{option}: {name!r} is not an interface name ({NAME_RULE})")
    return name


def check_label(label: str, interface: str) -> str:
    """ip-address(8): the device name, or `DEVICE:` and more; at most 15 characters."""
    suffix = label[len(interface) + 1 :]
    if label != interface and not (label.startswith(f"{interface}:") and suffix):
        raise ArpSuppressError(
            f"label: {label!r} must be '{interface}' or start with '{interface}:'"
        )
    if len(label) >= IFNAMSIZ:
        raise ArpSuppressError(f"label: {label!r} is longer than {IFNAMSIZ - 1} characters")
    if suffix and not NAME.fullmatch(suffix.replace(":", "_")):
        raise ArpSuppressError(
            f"label: {label!r} may only contain {NAME_RULE} and ':' after '{interface}:'"
        )
    return label


def sysctl_key(interface: str, param: str) -> str:
    """sysctl's dotted name; a dot inside an interface name (VLAN eth0.10) is written `/`."""
    return f"net.ipv4.conf.{interface.replace('.', '/')}.{param}"


def sysctl_path(key: str, proc_sys: str = PROC_SYS) -> str:
    parts = key.split(".")
    return os.path.join(proc_sys, *[p.replace("/", ".") for p in parts])


@dataclass
class Settings:
    vips: list[str] = field(default_factory=list)
    interface: str = "lo"
    label: Optional[str] = None
    arp_ignore: int = 1
    arp_announce: int = 2
    arp_interfaces: list[str] = field(default_factory=lambda: ["all", "lo"])
    persist: bool = True
    sysctl_file: str = SYSCTL_FILE
    unit_dir: str = UNIT_DIR
    state_file: str = STATE_FILE

    def __post_init__(self) -> None:
        """Every name checked before it reaches /proc/sys, the unit or the sysctl.d file."""
        self.vips = sorted({normalize_vip(v) for v in self.vips}, key=_address_order)
        check_interface_name("interface", self.interface)
        for name in self.arp_interfaces:
            check_interface_name("arp_interfaces", name)
        if self.label is None:
            self.label = f"{self.interface}:lvs"
        check_label(self.label, self.interface)

    def wanted_sysctls(self) -> dict[str, str]:
        values = {"arp_ignore": self.arp_ignore, "arp_announce": self.arp_announce}
        return {
            sysctl_key(iface, param): str(values[param])
            for iface in self.arp_interfaces
            for param in ARP_PARAMS
        }

    @property
    def unit_file(self) -> str:
        return os.path.join(self.unit_dir, UNIT_NAME)

    @property
    def wants_link(self) -> str:
        return os.path.join(self.unit_dir, "multi-user.target.wants", UNIT_NAME)


def _address_order(cidr: str) -> tuple[int, int]:
    iface = ipaddress.ip_interface(cidr)
    return iface.version, int(iface.ip)


def sysctl_file_text(sysctls: dict[str, str]) -> str:
    return HEADER + "".join(f"{key} = {value}\n" for key, value in sysctls.items())


def unit_file_text(settings: Settings) -> str:
    """A oneshot unit that puts the VIPs back on every boot, before the network comes up.

    A unit rather than ifupdown/netplan/NetworkManager configuration: it is the same on every
    systemd distribution, it owns one file of its own, and it does not depend on which network
    manager (if any) handles `lo`.
    """
    starts, stops = [], []
    for vip in settings.vips:
        label = ["label", settings.label] if ipaddress.ip_interface(vip).version == 4 else []
        dev = ["dev", settings.interface]
        starts.append(" ".join(["ExecStart=/sbin/ip", "addr", "replace", vip, *dev, *label]))
        stops.append(" ".join(["ExecStop=-/sbin/ip", "addr", "del", vip, *dev]))
    return (
        HEADER
        + "[Unit]\n"
        + "Description=LVS-DR virtual IPs on the loopback (lvs.ha.arp_suppress)\n"
        + "DefaultDependencies=no\n"
        + "After=local-fs.target systemd-sysctl.service\n"
        + "Before=network-pre.target\n"
        + "Wants=network-pre.target\n\n"
        + "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        + "".join(f"{line}\n" for line in starts + stops)
        + "\n[Install]\nWantedBy=multi-user.target\n"
    )


class ProcSys:
    """Reads and writes sysctls under /proc/sys (of the caller's network namespace)."""

    def __init__(self, root: str = PROC_SYS):
        self.root = root

    def read(self, key: str) -> str:
        path = sysctl_path(key, self.root)
        try:
            with open(path) as handle:
                return handle.read().strip()
        except FileNotFoundError as exc:
            raise ArpSuppressError(f"{key} does not exist (no such interface?)") from exc

    def writable(self, key: str) -> bool:
        return os.access(sysctl_path(key, self.root), os.W_OK)

    def write(self, key: str, value: str) -> None:
        with open(sysctl_path(key, self.root), "w") as handle:
            handle.write(f"{value}\n")


class LinkAddresses:
    """Addresses of one interface over rtnetlink (pyroute2)."""

    def __init__(self, interface: str):
        if not HAS_PYROUTE2:
            raise ArpSuppressError(missing_pyroute2())
        self.interface = interface

    def _index(self, ipr) -> int:
        found = ipr.link_lookup(ifname=self.interface)
        if not found:
            raise ArpSuppressError(f"interface {self.interface} does not exist")
        return found[0]

    def list(self) -> list[str]:
        with IPRoute() as ipr:
            messages = ipr.get_addr(index=self._index(ipr))
            return [f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}" for m in messages]

    def add(self, cidr: str, label: str) -> None:
        label_attr = {"label": label} if ipaddress.ip_interface(cidr).version == 4 else {}
        self._request("add", cidr, errno.EEXIST, **label_attr)

    def delete(self, cidr: str) -> None:
        self._request("del", cidr, errno.EADDRNOTAVAIL)

    def _request(self, command: str, cidr: str, done_code: int, **attrs) -> None:
        """`done_code` is the error that means the address is already as asked."""
        iface = ipaddress.ip_interface(cidr)
        with IPRoute() as ipr:
            index = self._index(ipr)
            try:
                ipr.addr(
                    command,
                    index=index,
                    address=str(iface.ip),
                    prefixlen=iface.network.prefixlen,
                    **attrs,
                )
            except NetlinkError as exc:
                if exc.code != done_code:
                    raise ArpSuppressError(
                        f"cannot {command} {cidr} on {self.interface}: {exc}"
                    ) from exc


class ArpSuppress:
    """present()/absent() for one host. Each returns a result dict with `changed` and
    `diff` (before/after); with check_mode nothing is written."""

    def __init__(
        self,
        settings: Settings,
        check_mode: bool = False,
        proc_sys: Optional[ProcSys] = None,
        addresses: Optional[LinkAddresses] = None,
    ):
        self.settings = settings
        self.check_mode = check_mode
        self.proc_sys = proc_sys or ProcSys()
        self.addresses = addresses or LinkAddresses(settings.interface)

    # --- what is there now -------------------------------------------------------------
    def _state(self) -> dict:
        text = files.read(self.settings.state_file)
        if not text:
            return {"sysctls": {}, "vips": []}
        try:
            state = json.loads(text)
        except ValueError as exc:
            raise ArpSuppressError(f"{self.settings.state_file} is not valid JSON: {exc}") from exc
        state.setdefault("sysctls", {})
        state.setdefault("vips", [])
        return state

    def _files(self) -> dict[str, Optional[str]]:
        s = self.settings
        return {path: files.read(path) for path in (s.sysctl_file, s.unit_file)}

    def _snapshot(self, sysctl_keys, vips, present_vips) -> dict:
        return {
            "sysctls": {key: self.proc_sys.read(key) for key in sysctl_keys},
            "vips": [vip for vip in vips if vip in present_vips],
            "files": {path: text or "" for path, text in self._files().items()},
        }

    # --- the two states ----------------------------------------------------------------
    def present(self) -> dict:
        s = self.settings
        wanted = s.wanted_sysctls()
        current = {key: self.proc_sys.read(key) for key in wanted}
        on_link = set(self.addresses.list())
        state = self._state()
        # VIPs this module added earlier (the state file says so) and no longer listed
        dropped = [vip for vip in state["vips"] if vip not in s.vips]
        before = self._snapshot(wanted, sorted([*s.vips, *dropped], key=_address_order), on_link)

        to_set = {key: value for key, value in wanted.items() if current[key] != value}
        self._refuse_read_only(to_set, current)
        to_add = [vip for vip in s.vips if vip not in on_link]
        to_remove = [vip for vip in dropped if vip in on_link]

        new_state = {
            "sysctls": {**{k: current[k] for k in to_set}, **state["sysctls"]},
            "vips": sorted((set(state["vips"]) - set(dropped)) | set(to_add), key=_address_order),
        }
        if s.persist:
            to_write = {
                s.sysctl_file: sysctl_file_text(wanted),
                s.unit_file: unit_file_text(s) if s.vips else None,
            }
        else:  # what an earlier persist=true wrote goes (a file of our own: our header)
            to_write = {path: None for path in (s.sysctl_file, s.unit_file) if _ours(path)}
        if new_state != state:
            to_write[s.state_file] = json.dumps(new_state, indent=2, sort_keys=True) + "\n"
        to_write = {p: t for p, t in to_write.items() if files.read(p) != t}
        link_target = s.unit_file if s.persist and s.vips else None
        fix_link = _link_target(s.wants_link) != link_target

        changed = bool(to_set or to_add or to_remove or to_write or fix_link)
        if changed and not self.check_mode:
            # the state file first: if anything below fails, the old values are remembered
            for path in sorted(to_write, key=lambda p: p != s.state_file):
                _write_or_remove(path, to_write[path])
            for key, value in to_set.items():
                self.proc_sys.write(key, value)
            for vip in to_add:
                self.addresses.add(vip, s.label)
            for vip in to_remove:
                self.addresses.delete(vip)
            if fix_link:
                _set_link(s.wants_link, link_target)

        after = {
            "sysctls": {**current, **to_set},
            "vips": list(s.vips),
            "files": {**before["files"], **{p: t or "" for p, t in to_write.items()
                                            if p != s.state_file}},
        }  # fmt: skip
        return self._result(changed, before, after, new_state)

    def absent(self) -> dict:
        s = self.settings
        state = self._state()
        previous = state["sysctls"]
        keys = list(dict.fromkeys([*s.wanted_sysctls(), *previous]))
        current = {key: self.proc_sys.read(key) for key in keys}
        on_link = set(self.addresses.list())
        managed_vips = sorted(set(s.vips) | set(state["vips"]), key=_address_order)
        before = self._snapshot(keys, managed_vips, on_link)

        to_set = {k: v for k, v in previous.items() if current.get(k) != v}
        self._refuse_read_only(to_set, current)
        to_remove = [vip for vip in managed_vips if vip in on_link]
        paths = [s.sysctl_file, s.unit_file, s.wants_link, s.state_file]
        to_delete = [path for path in paths if os.path.lexists(path)]

        changed = bool(to_set or to_remove or to_delete)
        if changed and not self.check_mode:
            for key, value in to_set.items():
                self.proc_sys.write(key, value)
            for vip in to_remove:
                self.addresses.delete(vip)
            # the state file last: it is what remembers the values to restore
            for path in to_delete:
                files.remove(path)

        after = {
            "sysctls": {**current, **to_set},
            "vips": [],
            "files": {path: "" for path in before["files"]},
        }
        return self._result(changed, before, after, {"sysctls": {}, "vips": []})

    def _refuse_read_only(self, to_set: dict[str, str], current: dict[str, str]) -> None:
        """Fail before changing anything when a value must change but cannot (a container)."""
        for key, value in to_set.items():
            if not self.proc_sys.writable(key):
                raise ArpSuppressError(
                    f"{key} is {current[key]} and must be {value}, but /proc/sys is read-only "
                    f"here (a container?): set it when the container is created, e.g. "
                    f"`podman run --sysctl {key}={value}`"
                )

    def _result(self, changed: bool, before: dict, after: dict, state: dict) -> dict:
        s = self.settings
        return {
            "changed": changed,
            "diff": {"before": before, "after": after},
            "sysctls": after["sysctls"],
            "vips": after["vips"],
            "previous": state["sysctls"],
            "sysctl_file": s.sysctl_file if s.persist else None,
            "unit_file": s.unit_file if s.persist and s.vips else None,
        }


def _link_target(path: str) -> Optional[str]:
    return os.readlink(path) if os.path.islink(path) else None


def _set_link(path: str, target: Optional[str]) -> None:
    """The `systemctl enable` symlink, made by hand: works in a chroot or a temporary root."""
    files.remove(path)
    if target:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)


def _ours(path: str) -> bool:
    """A file this module wrote (it starts with HEADER): persist=false may remove it."""
    return (files.read(path) or "").startswith(HEADER)


def _write_or_remove(path: str, text: Optional[str]) -> None:
    if text is None:
        files.remove(path)
    else:
        files.write_atomic(path, text, 0o644)
