"""The reconciler plans the fewest changes and touches only the services it is given."""

from __future__ import annotations

from fakes import FakeIpvs

from lvsagent.ipvs import Destination, Service, ServiceKey
from lvsagent.lvs import reconciler

VIP = ServiceKey.for_address("192.168.179.199", 80)
OTHER = ServiceKey.for_address("192.168.179.200", 443)


def rs(address, weight=100, forwarding="dr"):
    return Destination(address, 80, forwarding, weight)


def desired(*destinations, scheduler="rr"):
    return {VIP: (Service(VIP, scheduler, persistence_timeout=60), list(destinations))}


def actions(changes):
    return [(c.action, c.destination.address if c.destination else None) for c in changes]


def test_an_empty_kernel_gets_the_service_then_its_destinations():
    changes = reconciler.plan(desired(rs("10.0.0.1"), rs("10.0.0.2")), {})
    assert actions(changes) == [
        ("add_service", None),
        ("add_destination", "10.0.0.1"),
        ("add_destination", "10.0.0.2"),
    ]


def test_an_identical_table_needs_nothing():
    want = desired(rs("10.0.0.1"), rs("10.0.0.2"))
    current = {VIP: (want[VIP][0], [rs("10.0.0.2"), rs("10.0.0.1")])}
    assert reconciler.plan(want, current) == []


def test_only_what_differs_changes_and_additions_come_before_deletions():
    want = desired(rs("10.0.0.1", weight=50), rs("10.0.0.3"), scheduler="wlc")
    current = {VIP: (Service(VIP, "rr", persistence_timeout=60), [rs("10.0.0.1"), rs("10.0.0.2")])}
    planned = actions(reconciler.plan(want, current))
    assert planned[0] == ("edit_service", None)
    assert set(planned[1:3]) == {("edit_destination", "10.0.0.1"), ("add_destination", "10.0.0.3")}
    assert planned[3:] == [("delete_destination", "10.0.0.2")]


def test_forwarding_and_thresholds_are_compared_but_counters_are_not():
    live = Destination("10.0.0.1", 80, "dr", 100, active_connections=7)
    assert reconciler.plan(desired(rs("10.0.0.1")), {VIP: (desired()[VIP][0], [live])}) == []
    nat = rs("10.0.0.1", forwarding="nat")
    changes = reconciler.plan(desired(nat), {VIP: (desired()[VIP][0], [live])})
    assert actions(changes) == [("edit_destination", "10.0.0.1")]


def test_retired_services_are_deleted_and_others_are_never_read():
    ipvs = FakeIpvs()
    ipvs.add_service(Service(OTHER, "wlc"))
    ipvs.add_destination(OTHER, rs("10.9.9.9"))
    ipvs.add_service(Service(VIP, "rr"))
    current = reconciler.read_current(ipvs, {VIP}, whole_table=True)
    assert set(current) == {VIP}
    failed = reconciler.apply(ipvs, reconciler.plan({}, current, retired={VIP}))
    assert failed == []
    assert set(ipvs.kernel) == {OTHER}
    assert ipvs.weights(OTHER) == {"10.9.9.9:80": 100}


def test_per_service_reads_match_the_whole_table_dump():
    ipvs = FakeIpvs()
    ipvs.add_service(Service(VIP, "rr"))
    ipvs.add_destination(VIP, rs("10.0.0.1"))
    by_dump = reconciler.read_current(ipvs, {VIP, OTHER}, whole_table=True)
    by_query = reconciler.read_current(ipvs, {VIP, OTHER}, whole_table=False)
    assert by_dump == by_query and set(by_dump) == {VIP}


def test_a_failed_change_is_reported_and_the_rest_still_applied():
    ipvs = FakeIpvs()
    ipvs.add_service(Service(VIP, "rr", persistence_timeout=60))
    changes = reconciler.plan(desired(rs("10.0.0.1")), {})  # stale view: service "missing"
    failed = reconciler.apply(ipvs, changes)
    assert [c.action for c in failed] == ["add_service"]
    assert ipvs.weights(VIP) == {"10.0.0.1:80": 100}
