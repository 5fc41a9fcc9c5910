"""Side by side with real keepalived (Debian 2.2.7): the same configuration, written with
parameters, conditional lines and sequences, gives the VIPs keepalived itself adds.

keepalived runs alone in a namespace as MASTER of the instances the configuration expands
to; the addresses it adds to eth0 are compared with lvs-agent's `dump-config -i ID`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from vrrp_support import MODULE_UTILS, PYTHON

from testbed import keepalived

pytestmark = [pytest.mark.netns, pytest.mark.slow]

CONFIG = r"""global_defs {
  router_id lab
  @main $PREFIX=32
  @^main $PREFIX=24
}
$NET=10.${N}
$INSTANCE= \
vrrp_instance VI_${N} { \
  state MASTER \
  interface eth0 \
  virtual_router_id ${N} \
  @main priority 200 \
  @^main priority 100 \
  advert_int 1 \
  virtual_ipaddress { \
    ~SEQ(HOST, 1, 2, 5) ${NET}.0.${HOST}/$PREFIX \
    $EXTRA \
  } \
}
$EXTRA=${NET}.9.9/32
~SEQ(N, 20, 21) $INSTANCE
vrrp_instance VI_30 {
  state MASTER
  interface eth0
  virtual_router_id 30
  priority 200
  advert_int 1
  virtual_ipaddress { @^main 10.34.0.1/32
    ~LST({A, B}, {1, 2}, {3}) ~SEQ(C, 0) 10.30.${A}${B}.${C}/32
    @^main 10.31.0.1/32
    @main 10.31.0.2/32
    $UNUSED=x
    $BROKEN= \
    10.32.0.1/32 \

    10.32.0.2/32
  }
}
"""


def agent_vips(conf: str, config_id: str) -> set[str]:
    dump = subprocess.run(
        [PYTHON, "-m", "lvsagent", "dump-config", "-i", config_id, conf],
        env={**os.environ, "PYTHONPATH": str(MODULE_UTILS)},
        capture_output=True,
        text=True,
        check=True,
    )
    instances = json.loads(dump.stdout)["vrrp_instances"]
    return {vip["address"] for instance in instances for vip in instance["virtual_ipaddresses"]}


@pytest.mark.parametrize("config_id", ["main", "backup"])
def test_keepalived_adds_the_vips_lvs_agent_expands(lab, tmp_path, config_id):
    host = lab.host("d1", "192.168.77.11/24")
    conf = tmp_path / "params.conf"
    conf.write_text(CONFIG)
    expected = agent_vips(str(conf), config_id)
    prefix = "32" if config_id == "main" else "24"
    assert {
        f"10.20.0.1/{prefix}",
        "10.21.0.5/" + prefix,
        "10.20.9.9/32",
        "10.32.0.2/32",
    } <= expected
    assert {"10.30.12.1/32", "10.30.12.0/32", "10.30.3.1/32", "10.30.3.0/32"} <= expected
    assert len(expected) == 2 * 4 + 4 + 2 + (config_id != "main")  # 10.34.0.1: after a brace

    own = set(host.addresses())
    proc = keepalived.start(host, CONFIG, tmp_path, ["-i", config_id])
    try:
        host.wait_for(lambda: expected <= set(host.addresses()) - own, timeout=20)
        added = set(host.addresses()) - own
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    assert {address for address in added if not address.startswith("fe80:")} == expected


def test_an_include_from_a_conditional_line_is_read_twice_by_keepalived_and_refused(lab, tmp_path):
    host = lab.host("d1", "192.168.77.11/24")
    (tmp_path / "x.conf").write_text(
        "vrrp_instance VI_X {\n  state MASTER\n  interface eth0\n  virtual_router_id 9\n"
        "  priority 200\n  advert_int 1\n  virtual_ipaddress {\n    10.77.0.1/32\n  }\n}\n"
    )
    proc = keepalived.start(host, "@main include x.conf\n", tmp_path, ["-i", "main"])
    log = keepalived.log_path(host, tmp_path)
    try:
        host.wait_for(lambda: "Startup complete" in log.read_text(errors="replace"), timeout=20)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    text = log.read_text(errors="replace")
    assert text.count("Opening file 'x.conf'") == 2  # the parent, then the VRRP child again
    assert "vrrp instance VI_X already defined" in text

    conf = tmp_path / "main.conf"
    conf.write_text("@main include x.conf\n")
    check = subprocess.run(
        [PYTHON, "-m", "lvsagent", "check-config", "--no-host-checks", "-i", "main", conf],
        env={**os.environ, "PYTHONPATH": str(MODULE_UTILS)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 1
    assert check.stderr.startswith(f"{conf}:1: include: an include must be written on a line")
