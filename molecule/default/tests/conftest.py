"""Fixtures for the lab's verification: testinfra hosts reached with `podman exec` (podman://),
and the lab's settings read from the inventory that the converge used (inventory/lab, or
inventory/lab-nftables). The lab's identity (names, addresses) is tools/lab/env's."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import testinfra
import yaml

REPO = Path(__file__).resolve().parents[3]
LAB_VARS = REPO / os.environ["LVS_HA_LAB_INVENTORY"] / "group_vars"
PREFIX, NET = os.environ["LVS_HA_LAB_PREFIX"], os.environ["LVS_HA_LAB_NET"]
DIRECTORS = (f"{PREFIX}director1", f"{PREFIX}director2")  # the first one is the configured MASTER
REALSERVERS = {f"{PREFIX}rs1": f"{NET}.99", f"{PREFIX}rs2": f"{NET}.104"}
CLIENT = f"{PREFIX}client"


def podman_host(name: str):
    return testinfra.get_host(f"podman://{name}")


def lab_vars(name: str) -> dict:
    """A group_vars file of the lab's inventory, its addresses in the run's network (the
    nftables lab writes them as hosts of `{{ lvs_lab_net }}`: tools/lab/env's LVS_HA_LAB_NET)."""
    return yaml.safe_load((LAB_VARS / name).read_text().replace("{{ lvs_lab_net }}", NET))


@pytest.fixture(scope="session")
def lab():
    """The settings the lab was converged with: VIP, VRRP and health-check timings."""
    all_vars = lab_vars("all.yml")
    director_vars = lab_vars("lvs_directors.yml")
    service = director_vars["lvs_director_virtual_servers"][0]
    check = service["check"]
    advert = float(director_vars["lvs_director_advert_int"])
    return {
        "vip": all_vars["lvs_vip"],
        "vip2": all_vars.get("lvs_vip2"),
        "vip_tun": all_vars.get("lvs_vip_tun"),
        "vip6": all_vars.get("lvs_vip6"),
        "nat_port": all_vars["lvs_nat_port"],
        "port": service["port"],
        "nopreempt": os.environ.get("LVS_HA_NOPREEMPT", "false").lower() in ("1", "true", "yes"),
        "advert_int": advert,
        # keepalived's TCP_CHECK: a failing server is removed after its check fails `retry` more
        # times, delay_before_retry apart, each attempt bounded by connect_timeout, the first one
        # within delay_loop; the margin covers the agent's scheduling and `ipvsadm` polling.
        "removal_bound": service["delay_loop"]
        + (check["retry"] + 1) * check["connect_timeout"]
        + check["retry"] * check["delay_before_retry"]
        + 3.0,
        "addition_bound": service["delay_loop"] + check["connect_timeout"] + 3.0,
        # RFC 3768: master down after 3 adverts + skew; a stopping master sends priority 0, so
        # the backup takes over after the skew time. The bound is the no-priority-0 case + margin.
        "vrrp_bound": 3 * advert + advert + 2.0,
    }


@pytest.fixture(scope="session")
def directors():
    return {name: podman_host(name) for name in DIRECTORS}


@pytest.fixture(scope="session")
def realservers():
    return {name: podman_host(name) for name in REALSERVERS}


@pytest.fixture(scope="session")
def client():
    return podman_host(CLIENT)


@pytest.fixture(scope="session")
def realserver_addresses6(realservers) -> dict[str, str]:
    """Each real server's global IPv6 address on eth0: Podman hands them out from the network's
    IPv6 subnet, and the directors take them from facts (their default IPv6 address)."""
    found = {}
    for name, host in realservers.items():
        out = host.check_output("ip -6 -o addr show dev eth0 scope global")
        found[name] = out.split()[3].split("/")[0]
    return found


def endpoint(address: str, port) -> str:
    """ADDRESS:PORT as `ipvsadm -Ln` and URLs write it, an IPv6 address in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def vip_holders(directors, vip) -> list[str]:
    holders = []
    for name, host in directors.items():
        out = host.check_output("ip -o addr show")
        if f" {vip}/" in out:
            holders.append(name)
    return holders


def ipvs_entries(host, vip, port, listing="ipvsadm -Ln") -> dict[str, str]:
    """Real servers (address:port) of the virtual service VIP:PORT in this host's IPVS table
    (`ipvsadm -Ln`, or the listing in its layout that `lvs-agent status` gives of the table of
    either data plane), each with its forwarding (Route, Masq, Tunnel)."""
    out = host.check_output(listing)
    found, inside = {}, False
    for line in out.splitlines():
        fields = line.split()
        if fields[:1] in (["TCP"], ["UDP"], ["FWM"], ["SCTP"]):
            inside = fields[1] == endpoint(vip, port)
        elif inside and fields[:1] == ["->"] and fields[1] != "RemoteAddress:Port":
            found[fields[1]] = fields[2]
    return found


def ipvs_realservers(host, vip, port) -> set[str]:
    """Addresses of the real servers of the virtual service VIP:PORT in this host's IPVS table."""
    return {entry.rsplit(":", 1)[0].strip("[]") for entry in ipvs_entries(host, vip, port)}


def ask(client, vip, count=12, port=80) -> list[str]:
    """`count` requests from the client to VIP:PORT, one connection each; the pages' texts
    (each real server's page names it), or "" for a request that got no answer."""
    script = (
        f"for i in $(seq {count}); do "
        f"printf '%s\\n' \"$(curl -gs --max-time 2 http://{endpoint(vip, port)}/)\"; done"
    )
    out = client.run(script).stdout
    return [line.strip() for line in out.splitlines()][:count]


def wait_for(predicate, timeout, interval=0.25):
    """Polls predicate() until true; returns the seconds it took, or None on timeout."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)
