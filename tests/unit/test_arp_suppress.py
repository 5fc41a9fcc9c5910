"""lvs.ha.arp_suppress in-process against fake /proc/sys and fake addresses: arguments,
idempotency, check mode, diff, restore, read-only /proc/sys. The real kernel is exercised in
tests/integration/netns/test_arp_suppress_module.py."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = subprocess.check_output([os.path.join(REPO, "tools", "collection-path")], text=True)
if COLLECTIONS.strip() not in sys.path:
    sys.path.insert(0, COLLECTIONS.strip())

PREFIX = "ansible_collections.lvs.ha.plugins"
arpsuppress = importlib.import_module(f"{PREFIX}.module_utils.lvsagent.arpsuppress")
module = importlib.import_module(f"{PREFIX}.modules.arp_suppress")

KEYS = [f"net.ipv4.conf.{i}.{p}" for i in ("all", "lo") for p in ("arp_ignore", "arp_announce")]


class FakeProcSys:
    def __init__(self, values, writable=True):
        self.values = dict(values)
        self.is_writable = writable
        self.writes = []

    def read(self, key):
        if key not in self.values:
            raise arpsuppress.ArpSuppressError(f"{key} does not exist (no such interface?)")
        return self.values[key]

    def writable(self, key):
        return self.is_writable

    def write(self, key, value):
        assert self.is_writable, f"wrote {key} on a read-only /proc/sys"
        self.writes.append((key, value))
        self.values[key] = value


class FakeAddresses:
    def __init__(self, addresses=("127.0.0.1/8", "::1/128")):
        self.addresses = list(addresses)
        self.labels = {}

    def list(self):
        return list(self.addresses)

    def add(self, cidr, label):
        self.addresses.append(cidr)
        self.labels[cidr] = label

    def delete(self, cidr):
        self.addresses.remove(cidr)


@pytest.fixture
def kernel(monkeypatch):
    proc = FakeProcSys(dict.fromkeys(KEYS, "0"))
    addresses = FakeAddresses()
    monkeypatch.setattr(arpsuppress, "ProcSys", lambda: proc)
    monkeypatch.setattr(arpsuppress, "LinkAddresses", lambda interface: addresses)
    return proc, addresses


@pytest.fixture
def run(kernel, tmp_path, capsys):
    """run(args, check=False) -> the module's JSON result; files under tmp_path."""

    def run_module(args, check=False):
        paths = {
            "sysctl_file": str(tmp_path / "sysctl.d" / "90-arp.conf"),
            "unit_dir": str(tmp_path / "units"),
            "state_file": str(tmp_path / "state" / "arp.json"),
        }
        args = dict(paths, **args, _ansible_check_mode=check, _ansible_diff=True)
        with patch_module_args(args), pytest.raises(SystemExit):
            module.main()
        return json.loads(capsys.readouterr().out)

    return run_module


def files_under(root):
    found = {}
    for folder, _subfolders, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                found[path] = os.readlink(path)
            else:
                with open(path) as handle:
                    found[path] = handle.read()
    return found


VIPS = {"vips": ["192.0.2.10", "2001:db8::10/128"]}


def test_present_applies_persists_and_is_idempotent(run, kernel, tmp_path):
    proc, addresses = kernel
    result = run(VIPS)
    assert result["changed"] is True
    assert result["sysctls"] == {k: ("1" if k.endswith("ignore") else "2") for k in KEYS}
    assert result["vips"] == ["192.0.2.10/32", "2001:db8::10/128"]
    assert result["previous"] == dict.fromkeys(KEYS, "0")
    assert proc.values == result["sysctls"]
    assert addresses.labels == {"192.0.2.10/32": "lo:lvs", "2001:db8::10/128": "lo:lvs"}
    unit = (tmp_path / "units" / "lvs-ha-vips.service").read_text()
    assert "ExecStart=/sbin/ip addr replace 192.0.2.10/32 dev lo label lo:lvs\n" in unit
    assert "ExecStart=/sbin/ip addr replace 2001:db8::10/128 dev lo\n" in unit
    assert "WantedBy=multi-user.target" in unit
    link = tmp_path / "units" / "multi-user.target.wants" / "lvs-ha-vips.service"
    assert os.readlink(link) == result["unit_file"]
    sysctl = (tmp_path / "sysctl.d" / "90-arp.conf").read_text()
    assert "net.ipv4.conf.lo.arp_announce = 2\n" in sysctl
    assert result["diff"]["before"]["files"][result["unit_file"]] == ""
    assert result["diff"]["after"]["files"][result["unit_file"]] == unit

    files, writes = files_under(tmp_path), len(proc.writes)
    again = run(VIPS)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert files_under(tmp_path) == files and len(proc.writes) == writes


def test_check_mode_predicts_and_changes_nothing(run, kernel, tmp_path):
    proc, addresses = kernel
    result = run(VIPS, check=True)
    assert result["changed"] is True
    assert result["diff"]["after"]["sysctls"]["net.ipv4.conf.all.arp_ignore"] == "1"
    assert result["diff"]["after"]["vips"] == ["192.0.2.10/32", "2001:db8::10/128"]
    assert proc.writes == [] and addresses.labels == {}
    assert files_under(tmp_path) == {}

    run(VIPS)
    files = files_under(tmp_path)
    absent = run({"state": "absent"}, check=True)
    assert absent["changed"] is True
    assert absent["diff"]["after"]["sysctls"]["net.ipv4.conf.all.arp_ignore"] == "0"
    assert files_under(tmp_path) == files
    assert "192.0.2.10/32" in addresses.addresses


def test_absent_restores_the_values_found_before_the_first_change(run, kernel, tmp_path):
    proc, addresses = kernel
    proc.values["net.ipv4.conf.lo.arp_announce"] = "1"
    run(VIPS)
    proc.values["net.ipv4.conf.all.arp_ignore"] = "3"  # someone else, in between
    second = run(VIPS)
    assert second["previous"]["net.ipv4.conf.all.arp_ignore"] == "0", "first values win"

    result = run({"state": "absent"})
    assert result["changed"] is True
    assert proc.values == {**dict.fromkeys(KEYS, "0"), "net.ipv4.conf.lo.arp_announce": "1"}
    assert addresses.addresses == ["127.0.0.1/8", "::1/128"]
    assert files_under(tmp_path) == {}
    assert result["vips"] == [] and result["previous"] == {}
    assert run({"state": "absent"})["changed"] is False


def test_absent_removes_vips_added_earlier_even_if_not_listed(run, kernel):
    _proc, addresses = kernel
    run(VIPS)
    run({"state": "absent"})
    assert addresses.addresses == ["127.0.0.1/8", "::1/128"]


def test_vips_dropped_from_the_list_leave_lo_only_if_this_module_added_them(run, kernel):
    _proc, addresses = kernel
    addresses.addresses.append("192.0.2.99/32")  # there before, put by someone else
    run({"vips": ["192.0.2.10", "192.0.2.11", "192.0.2.99"]})
    check = run({"vips": ["192.0.2.11"]}, check=True)
    assert check["changed"] is True
    assert check["diff"]["before"]["vips"] == ["192.0.2.10/32", "192.0.2.11/32"]
    assert check["diff"]["after"]["vips"] == ["192.0.2.11/32"]
    assert "192.0.2.10/32" in addresses.addresses

    assert run({"vips": ["192.0.2.11"]})["changed"] is True
    assert addresses.addresses == ["127.0.0.1/8", "::1/128", "192.0.2.99/32", "192.0.2.11/32"]
    assert run({"vips": ["192.0.2.11"]})["changed"] is False
    run({"state": "absent"})
    assert addresses.addresses == ["127.0.0.1/8", "::1/128", "192.0.2.99/32"]


def test_persist_false_removes_what_persist_true_wrote(run, kernel, tmp_path):
    proc, addresses = kernel
    persisted = run(VIPS)
    unwritten = run({**VIPS, "persist": False})
    assert unwritten["changed"] is True
    assert unwritten["diff"]["after"]["files"] == {
        persisted["sysctl_file"]: "",
        persisted["unit_file"]: "",
    }
    assert set(files_under(tmp_path)) == {str(tmp_path / "state" / "arp.json")}
    assert "192.0.2.10/32" in addresses.addresses  # applied now, only not persisted
    assert proc.values["net.ipv4.conf.all.arp_ignore"] == "1"
    assert run({**VIPS, "persist": False})["changed"] is False


def test_persist_false_leaves_a_file_it_did_not_write(run, kernel, tmp_path):
    foreign = tmp_path / "sysctl.d" / "90-arp.conf"
    foreign.parent.mkdir()
    foreign.write_text("net.ipv4.conf.all.arp_ignore = 1\n")
    assert run({**VIPS, "persist": False})["sysctl_file"] is None
    assert foreign.read_text() == "net.ipv4.conf.all.arp_ignore = 1\n"


def test_values_already_right_are_not_remembered_or_written(run, kernel):
    proc, _addresses = kernel
    proc.values.update({k: ("1" if k.endswith("ignore") else "2") for k in KEYS})
    result = run({"persist": False})
    assert result["previous"] == {} and proc.writes == []
    assert result["sysctl_file"] is None and result["unit_file"] is None


def test_read_only_proc_sys(run, kernel, tmp_path):
    proc, addresses = kernel
    proc.is_writable = False
    failed = run(VIPS)
    assert failed["failed"] is True
    assert failed["msg"].startswith("net.ipv4.conf.all.arp_ignore is 0 and must be 1")
    assert "--sysctl net.ipv4.conf.all.arp_ignore=1" in failed["msg"]
    assert addresses.labels == {} and files_under(tmp_path) == {}

    proc.values.update({k: ("1" if k.endswith("ignore") else "2") for k in KEYS})
    result = run(VIPS)
    assert result["changed"] is True and proc.writes == []
    assert "192.0.2.10/32" in addresses.addresses


def test_other_interfaces_values_and_label(run, kernel, tmp_path):
    proc, addresses = kernel
    proc.values.update({"net.ipv4.conf.eth0/10.arp_ignore": "0"})
    proc.values.update({"net.ipv4.conf.eth0/10.arp_announce": "0"})
    args = {"arp_interfaces": ["eth0.10"], "arp_ignore": 2, "arp_announce": 1}
    result = run({**args, "vips": ["192.0.2.5"], "label": "lo:web"})
    assert result["sysctls"] == {
        "net.ipv4.conf.eth0/10.arp_ignore": "2",
        "net.ipv4.conf.eth0/10.arp_announce": "1",
    }
    assert addresses.labels == {"192.0.2.5/32": "lo:web"}


@pytest.mark.parametrize(
    "args, message",
    [
        ({"vips": ["192.0.2.0/24"]}, "must be a single address"),
        ({"vips": ["not-an-ip"]}, "is not an IP address"),
        ({"label": "eth0:x"}, "must be 'lo' or start with 'lo:'"),
        ({"label": "lo:a-very-long-label"}, "longer than 15"),
        ({"arp_ignore": 4}, "value of arp_ignore must be one of"),
        ({"arp_interfaces": ["nosuch0"]}, "net.ipv4.conf.nosuch0.arp_ignore does not exist"),
    ],
)
def test_bad_arguments_fail_clearly(run, args, message):
    result = run(args)
    assert result["failed"] is True
    assert message in result["msg"]


UNSAFE_NAMES = [
    "lo\nExecStart=/bin/sh",
    "eth0 x",
    "eth0\t",
    "eth0;x",
    "%n",
    "$HOME",
    'lo"',
    "lo'",
    "lo\\x",
    "eth0=1",
    "eth*",
    "eth0:1",
    "a/b",
    ".",
    "..",
    "-lo",
    "",
    "a" * 16,
]


@pytest.mark.parametrize("name", UNSAFE_NAMES)
@pytest.mark.parametrize("option", ["interface", "arp_interfaces"])
def test_unsafe_interface_names_are_refused_before_anything_is_written(
    run, kernel, tmp_path, option, name
):
    proc, addresses = kernel
    value = [name] if option == "arp_interfaces" else name
    result = run({**VIPS, option: value, "label": "lo:x" if option == "arp_interfaces" else None})
    assert result["failed"] is True
    assert result["msg"].startswith(f"{option}: {name!r} ")
    assert files_under(tmp_path) == {} and proc.writes == [] and addresses.labels == {}


@pytest.mark.parametrize(
    "label, message",
    [
        ("lo:%i", "may only contain"),
        ("lo:a b", "may only contain"),
        ("lo:x;y", "may only contain"),
        ("lo:a'b", "may only contain"),
        ("lo:\\x", "may only contain"),
        ("lo:\nx", "may only contain"),
        ("lo:", "must be 'lo' or start with 'lo:'"),
        ("lox", "must be 'lo' or start with 'lo:'"),
        ("lo:" + "a" * 13, "longer than 15 characters"),
    ],
)
def test_labels_follow_ip_address_rules(run, kernel, tmp_path, label, message):
    result = run({**VIPS, "label": label})
    assert result["failed"] is True
    assert result["msg"].startswith(f"label: {label!r} ") and message in result["msg"]
    assert files_under(tmp_path) == {}


@pytest.mark.parametrize("label", ["lo", "lo:web", "lo:a:b", "lo:vip-1.2_x+"])
def test_valid_labels_reach_the_unit_file(run, kernel, tmp_path, label):
    assert run({**VIPS, "label": label})["changed"] is True
    unit = files_under(tmp_path)[str(tmp_path / "units" / "lvs-ha-vips.service")]
    assert f"dev lo label {label}\n" in unit


def test_a_vip_with_a_scope_is_refused(run, tmp_path):
    result = run({"vips": ["fe80::1%a;$X"]})
    assert result["failed"] is True and "a scope (%ZONE) is not allowed" in result["msg"]
    assert files_under(tmp_path) == {}


def test_missing_pyroute2_is_reported(run, monkeypatch):
    monkeypatch.setattr(module, "HAS_PYROUTE2", False)
    result = run(VIPS)
    assert result["failed"] is True
    assert "pyroute2 >= 0.9.6" in result["msg"]


def test_sysctl_path_keeps_dots_of_vlan_interfaces():
    key = arpsuppress.sysctl_key("eth0.10", "arp_ignore")
    assert key == "net.ipv4.conf.eth0/10.arp_ignore"
    path = arpsuppress.sysctl_path(key, "/proc/sys")
    assert path == "/proc/sys/net/ipv4/conf/eth0.10/arp_ignore"


def test_documentation_matches_the_argument_spec():
    options = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert set(options) == set(module.ARGUMENT_SPEC)
    for name, spec in module.ARGUMENT_SPEC.items():
        doc = options[name]
        for field in ("type", "default", "choices", "elements", "required"):
            assert doc.get(field) == spec.get(field), (name, field)
