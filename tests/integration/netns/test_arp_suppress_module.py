"""lvs.ha.arp_suppress against the real kernel, in a fresh network namespace.

/proc/sys/net and the loopback belong to the namespace, so the machine's own values are never
touched; the persisted files go to a temporary root (module options).
"""

from __future__ import annotations

import pytest

from testbed.ansible import local_argv, run_adhoc, run_target

pytestmark = pytest.mark.netns


def test_integration_target_in_a_namespace(lab, tmp_path):
    host = lab.host("rs1", "192.168.79.11/24")
    root = tmp_path / "root"
    result = run_target("arp_suppress", tmp_path, host, {"arp_suppress_root": root})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failed=0" in result.stdout
    # and from outside the play: the namespace is as the role left it, the machine untouched
    lo = host.run(["ip", "-o", "addr", "show", "dev", "lo"]).stdout
    assert "192.0.2.10" not in lo
    assert not (root / "etc" / "sysctl.d" / "90-lvs-ha-arp-suppress.conf").exists()
    assert host.run(["cat", "/proc/sys/net/ipv4/conf/lo/arp_announce"]).stdout.strip() == "1"


def adhoc(host, tmp_path, args: str, read_only: bool):
    """One `ansible -m lvs.ha.arp_suppress` run; with `read_only`, /proc/sys is mounted
    read-only for it (as in a container) in a mount namespace of its own."""
    module_args = (
        f"{args} sysctl_file={tmp_path}/sysctl.conf unit_dir={tmp_path}/units "
        f"state_file={tmp_path}/state.json"
    )
    ansible = [*local_argv("ansible"), "localhost", "-m", "lvs.ha.arp_suppress", "-a", module_args]
    if read_only:
        script = (
            'mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "$@"'
        )
        ansible = ["unshare", "--mount", "sh", "-c", script, "sh", *ansible]
    return run_adhoc(host, ansible)


def test_read_only_proc_sys_matching_succeeds_and_differing_fails(lab, tmp_path):
    host = lab.host("rs1", "192.168.79.11/24")
    status, differing = adhoc(host, tmp_path, "vips=192.0.2.20", read_only=True)
    assert status == "FAILED!", differing
    assert "net.ipv4.conf.all.arp_ignore is 0 and must be 1" in differing["msg"]
    assert "read-only" in differing["msg"]
    assert not (tmp_path / "state.json").exists(), "wrote before failing"
    assert "192.0.2.20" not in host.run(["ip", "-o", "addr", "show", "dev", "lo"]).stdout

    for key in ("all", "lo"):
        host.run(["sh", "-c", f"echo 1 > /proc/sys/net/ipv4/conf/{key}/arp_ignore"])
        host.run(["sh", "-c", f"echo 2 > /proc/sys/net/ipv4/conf/{key}/arp_announce"])
    status, matching = adhoc(host, tmp_path, "vips=192.0.2.20", read_only=True)
    assert status == "CHANGED", matching
    assert matching["previous"] == {}, "nothing had to change, nothing to restore"
    assert "192.0.2.20/32" in host.run(["ip", "-o", "addr", "show", "dev", "lo"]).stdout
