"""Smoke test of the IPVS test bed: the kernel has IPVS, pyroute2 drives it, ipvsadm agrees."""

import re
import subprocess
from socket import IPPROTO_TCP

import pytest
from pyroute2 import IPVS, IPVSDest, IPVSService

pytestmark = pytest.mark.ipvs

VIP, VPORT = "192.0.2.10", 80
REAL, RPORT = "198.51.100.7", 8080
MASQUERADE = 0  # IP_VS_CONN_F_MASQ: ipvsadm's "Masq"


def ipvsadm_listing():
    return subprocess.run(["ipvsadm", "-Ln"], check=True, capture_output=True, text=True).stdout


def dumped_services(ipvs):
    # from_message() fills defaults for absent fields: read the raw attributes instead.
    return [msg.get("IPVS_CMD_ATTR_SERVICE") for msg in ipvs.service("dump")]


def test_service_and_destination_round_trip():
    service = IPVSService(addr=VIP, port=VPORT, protocol=IPPROTO_TCP, sched_name="rr")
    destination = IPVSDest(addr=REAL, port=RPORT, weight=3, fwd_method=MASQUERADE)
    with IPVS() as ipvs:
        ipvs.service("add", service=service)
        try:
            ipvs.dest("add", service=service, dest=destination)

            (dumped,) = [s for s in dumped_services(ipvs) if s.get("IPVS_SVC_ATTR_ADDR") == VIP]
            assert dumped.get("IPVS_SVC_ATTR_PORT") == VPORT
            assert dumped.get("IPVS_SVC_ATTR_SCHED_NAME") == "rr"

            listing = ipvsadm_listing()
            assert re.search(rf"^TCP  {re.escape(VIP)}:{VPORT} rr\s*$", listing, re.M), listing
            assert re.search(
                rf"^  -> {re.escape(REAL)}:{RPORT}\s+Masq\s+3\s+0\s+0\s*$", listing, re.M
            ), listing
        finally:
            ipvs.service("del", service=service)

        assert dumped_services(ipvs) == []
    assert f"{VIP}:{VPORT}" not in ipvsadm_listing()
