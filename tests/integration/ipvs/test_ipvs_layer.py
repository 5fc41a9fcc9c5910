"""lvsagent.ipvs against the real kernel (run in the guest: tools/guest/run-tests), every
operation cross-checked with ipvsadm, which talks to the same kernel through libipvs."""

from __future__ import annotations

import errno
import subprocess

import pytest

from lvsagent.ipvs import (
    Destination,
    IpvsClient,
    IpvsError,
    Service,
    ServiceKey,
    render_table,
)
from lvsagent.ipvs.plan import Change

pytestmark = pytest.mark.ipvs

WEB = ServiceKey.for_address("10.0.0.100", 80)
DNS6 = ServiceKey.for_address("2001:db8::53", 53, "udp")
SCTP = ServiceKey.for_address("10.0.0.100", 99, "sctp")
MARK = ServiceKey.for_fwmark(5)
MARK6 = ServiceKey.for_fwmark(6, family=6)


def ipvsadm(*args: str) -> str:
    return subprocess.run(["ipvsadm", *args], check=True, capture_output=True, text=True).stdout


def saved() -> list:
    """`ipvsadm -S -n`: the table as the rules that would rebuild it (thresholds left out)."""
    return ipvsadm("-S", "-n").splitlines()


def thresholds() -> list:
    """(real server, upper, lower) from `ipvsadm -Ln --thresholds`."""
    rows = [line.split() for line in ipvsadm("-Ln", "--thresholds").splitlines()]
    return [(row[1], int(row[2]), int(row[3])) for row in rows if row[0] == "->" and len(row) > 2]


@pytest.fixture
def client():
    ipvsadm("-C")  # also loads ip_vs
    with IpvsClient() as ipvs_client:
        yield ipvs_client
    ipvsadm("-C")


def test_services_of_every_kind_as_ipvsadm_sees_them(client):
    services = [
        Service(WEB, "sh", 300, "255.255.255.0", {"sh-port", "flag-3"}),
        Service(DNS6, "rr", 60, 64, {"ops"}),
        Service(SCTP, "lc"),
        Service(MARK, "mh", flags={"mh-fallback"}),
        Service(MARK6, "wrr"),
    ]
    for service in services:
        client.add_service(service)
    assert saved() == [  # ipvsadm names no third flag under sh: read back below
        "-A -t 10.0.0.100:80 -s sh -p 300 -M 255.255.255.0 -b sh-port",
        "-A --sctp-service 10.0.0.100:99 -s lc",
        "-A -u [2001:db8::53]:53 -s rr -p 60 -M 64 -o",
        "-A -f 5 -s mh -b mh-fallback",
        "-A -f 6 -6 -s wrr",
    ]
    read = {service.key: service for service in client.services()}
    assert read == {service.key: service for service in services}
    assert client.service(DNS6) == services[1]
    assert client.service(ServiceKey.for_address("10.0.0.101", 80)) is None


def test_entries_made_by_ipvsadm_are_read_exactly(client):
    for rule in (
        "-A -t 10.0.0.100:80 -s wrr -p 120 -M 255.255.0.0",
        "-A -f 6 -6 -s sh -b sh-fallback -p 30 -M 48",
        "-a -t 10.0.0.100:80 -r 10.0.0.2:80 -g -w 4 -x 9",
        "-a -t 10.0.0.100:80 -r 10.0.0.3:8080 -m -w 0 -x 5 -y 2",
        "-a -f 6 -6 -r [2001:db8::7]:0 -i",
    ):
        ipvsadm(*rule.split())
    assert client.service(WEB) == Service(WEB, "wrr", 120, "255.255.0.0")
    assert client.service(MARK6) == Service(MARK6, "sh", 30, 48, {"sh-fallback"})
    assert sorted(client.destinations(WEB), key=lambda d: d.address) == [
        Destination("10.0.0.2", 80, "dr", 4, upper_threshold=9),
        Destination("10.0.0.3", 8080, "nat", 0, 5, 2),
    ]
    assert client.destinations(MARK6) == [Destination("2001:db8::7", 0, "tun", 1)]


def test_edit_changes_in_place_and_keeps_real_servers(client):
    client.add_service(Service(WEB, "wlc"))
    client.add_destination(WEB, Destination("10.0.0.2", 80, "dr", 1))
    client.edit_service(Service(WEB, "sh", 600, 24, {"sh-port"}))
    assert saved() == [
        "-A -t 10.0.0.100:80 -s sh -p 600 -M 255.255.255.0 -b sh-port",
        "-a -t 10.0.0.100:80 -r 10.0.0.2:80 -g -w 1",
    ]
    client.edit_service(Service(WEB, "rr"))  # persistence and flags off again
    assert saved()[0] == "-A -t 10.0.0.100:80 -s rr"


def test_destinations_add_edit_delete(client):
    client.add_service(Service(WEB, "wrr"))
    client.add_service(Service(DNS6, "rr"))
    client.add_destination(WEB, Destination("10.0.0.2", 80, "dr", 3))
    client.add_destination(WEB, Destination("10.0.0.3", 8080, "nat", 2, 100, 10))
    client.add_destination(WEB, Destination("10.0.0.4", 80, "tun", 0))
    client.add_destination(DNS6, Destination("2001:db8::9", 53, "dr"))
    assert saved() == [
        "-A -t 10.0.0.100:80 -s wrr",
        "-a -t 10.0.0.100:80 -r 10.0.0.2:80 -g -w 3",
        "-a -t 10.0.0.100:80 -r 10.0.0.3:8080 -m -w 2",
        "-a -t 10.0.0.100:80 -r 10.0.0.4:80 -i -w 0 --tun-type ipip",
        "-A -u [2001:db8::53]:53 -s rr",
        "-a -u [2001:db8::53]:53 -r [2001:db8::9]:53 -g -w 1",
    ]
    client.edit_destination(WEB, Destination("10.0.0.2", 80, "nat", 7, 5, 1))
    client.delete_destination(WEB, "10.0.0.4", 80)
    assert saved()[1:3] == [
        "-a -t 10.0.0.100:80 -r 10.0.0.2:80 -m -w 7",
        "-a -t 10.0.0.100:80 -r 10.0.0.3:8080 -m -w 2",
    ]
    assert thresholds()[:2] == [("10.0.0.2:80", 5, 1), ("10.0.0.3:8080", 100, 10)]
    assert len(saved()) == 5
    client.delete_service(WEB)
    assert saved() == [
        "-A -u [2001:db8::53]:53 -s rr",
        "-a -u [2001:db8::53]:53 -r [2001:db8::9]:53 -g -w 1",
    ]


def test_table_and_renderer_match_ipvsadm_listing(client):
    client.add_service(Service(WEB, "wrr", 300, "255.255.255.0"))
    client.add_service(Service(DNS6, "sh", flags={"sh-port"}))
    client.add_service(Service(SCTP, "lc"))
    client.add_service(Service(MARK, "rr"))
    client.add_service(Service(MARK6, "rr"))
    client.add_destination(WEB, Destination("10.0.0.3", 80, "nat", 2))
    client.add_destination(WEB, Destination("10.0.0.2", 80, "dr", 1))
    client.add_destination(DNS6, Destination("2001:db8::2", 53, "tun", 5))
    table = client.table()
    assert set(table) == {WEB, DNS6, SCTP, MARK, MARK6}
    # the first line (IPVS version and hash table size) is not the table's
    assert render_table(table) == ipvsadm("-Ln").split("\n", 1)[1]
    assert render_table(table, stats=True) == ipvsadm("-Ln", "--stats").split("\n", 1)[1]


def test_errors_are_translated(client):
    client.add_service(Service(WEB))
    with pytest.raises(IpvsError, match="it already exists") as exists:
        client.add_service(Service(WEB))
    assert exists.value.errno == errno.EEXIST
    missing = ServiceKey.for_address("10.0.0.101", 80)
    with pytest.raises(IpvsError, match="the virtual service does not exist") as absent:
        client.edit_service(Service(missing))
    assert absent.value.errno == errno.ESRCH
    with pytest.raises(IpvsError, match="the virtual service does not exist"):
        client.add_destination(missing, Destination("10.0.0.2", 80))
    assert client.destinations(missing) == []  # a dump of nothing, not an error
    with pytest.raises(IpvsError, match="the real server does not exist") as no_dest:
        client.edit_destination(WEB, Destination("10.0.0.9", 80))
    assert no_dest.value.errno == errno.ENOENT
    client.add_destination(WEB, Destination("10.0.0.2", 80))
    with pytest.raises(IpvsError, match=r"real server \[10.0.0.2\]:80 to .*already exists"):
        client.add_destination(WEB, Destination("10.0.0.2", 80))
    client.add_service(Service(ServiceKey.for_address("10.0.0.100", 81)))
    with pytest.raises(IpvsError, match="lower threshold is above the upper") as out_of_range:
        client.add_destination(ServiceKey.for_address("10.0.0.100", 81), UnvalidatedDestination())
    assert out_of_range.value.errno == errno.ERANGE
    client.delete_service(ServiceKey.for_address("10.0.0.100", 81))
    # Debian 6.1 has no ip_vs_twos: the kernel answers ENOENT for the scheduler
    with pytest.raises(IpvsError, match=r"scheduler 'twos' is not available \(no ip_vs_twos"):
        client.add_service(Service(missing, "twos"))
    assert saved() == ["-A -t 10.0.0.100:80 -s wlc", "-a -t 10.0.0.100:80 -r 10.0.0.2:80 -g -w 1"]


def test_a_batch_maps_each_refusal_to_its_entry_and_applies_the_others(client):
    """Only a batch's last request asks for an acknowledgement: a refusal in the middle is
    still answered and names its entry, the requests after it are applied, and a refused
    last request is reported too."""
    client.add_service(Service(WEB))
    client.add_destination(WEB, Destination("10.0.0.3", 80))
    missing = ServiceKey.for_address("10.0.0.101", 80)
    changes = [
        Change("add_destination", WEB, destination=Destination("10.0.0.2", 80)),
        Change("add_destination", WEB, destination=Destination("10.0.0.3", 80)),  # exists
        Change("add_destination", WEB, destination=Destination("10.0.0.4", 80, weight=5)),
        Change("add_destination", missing, destination=Destination("10.0.0.5", 80)),
    ]
    failed = client.apply(changes)
    assert [(change, exc.errno) for change, exc in failed] == [
        (changes[1], errno.EEXIST),
        (changes[3], errno.ESRCH),
    ]
    assert sorted(saved()) == [
        "-A -t 10.0.0.100:80 -s wlc",
        "-a -t 10.0.0.100:80 -r 10.0.0.2:80 -g -w 1",
        "-a -t 10.0.0.100:80 -r 10.0.0.3:80 -g -w 1",
        "-a -t 10.0.0.100:80 -r 10.0.0.4:80 -g -w 5",
    ]
    again = [changes[0], changes[2]]  # both exist now: every request of the batch refused
    assert [(change, exc.errno) for change, exc in client.apply(again)] == [
        (again[0], errno.EEXIST),
        (again[1], errno.EEXIST),
    ]


class UnvalidatedDestination(Destination):
    """Skips the layer's own check to see how the kernel's refusal is translated."""

    def __init__(self):
        self.address, self.port, self.forwarding, self.weight = "10.0.0.8", 81, "dr", 1
        self.upper_threshold, self.lower_threshold = 1, 5


def test_kernel_without_ipvs_says_so():
    """ip_vs unloaded and the kernel's module autoloading (which would bring it back for the
    genetlink lookup) pointed at /bin/false for the time of the test."""
    ipvsadm("-C")
    with open("/proc/sys/kernel/modprobe") as helper:
        modprobe = helper.read().strip()
    with open("/proc/modules") as loaded:
        schedulers = [line.split()[0] for line in loaded if line.startswith("ip_vs_")]
    unloaded = subprocess.run(
        ["modprobe", "-r", "-a", *schedulers, "ip_vs"], capture_output=True, text=True, check=False
    )
    if unloaded.returncode != 0:
        pytest.skip(f"cannot unload ip_vs here: {unloaded.stderr.strip()}")
    try:
        with open("/proc/sys/kernel/modprobe", "w") as helper:
            helper.write("/bin/false\n")
        with pytest.raises(IpvsError) as exc:
            IpvsClient()
        assert str(exc.value) == "IPVS is not available in this kernel: load the ip_vs module"
    finally:
        with open("/proc/sys/kernel/modprobe", "w") as helper:
            helper.write(modprobe + "\n")
        subprocess.run(["modprobe", "ip_vs"], check=True)
