"""Names of the test bed: unique per run, recognisable by the sweeper, within IFNAMSIZ."""

from __future__ import annotations

import os

import pytest

from testbed.netns import port_name, run_id, stale_pattern


def test_run_id_holds_the_pid_and_differs_between_labs():
    ids = {run_id() for _attempt in range(50)}
    assert len(ids) == 50
    assert all(i.startswith(f"{os.getpid()}-") for i in ids)


def test_sweeper_pattern_finds_bridge_and_host_namespaces_with_their_pid():
    rid = run_id(pid=4194304)
    pattern = stale_pattern("lvsha")
    for name in (f"lvsha-{rid}", f"lvsha-{rid}-d1", f"lvsha-{rid}-real_server-1"):
        match = pattern.match(name)
        assert match and match.group("pid") == "4194304", name


@pytest.mark.parametrize(
    "name", ["lvsha", "lvsha-12-abcd-", "lvshax-12-abcd-d1", "other-12-abcd-d1", "lvsha-12-ab-d1"]
)
def test_sweeper_pattern_leaves_other_namespaces_alone(name):
    assert stale_pattern("lvsha").match(name) is None


def test_port_name_fits_ifnamsiz():
    assert port_name("d1") == "vd1"
    assert len(port_name("a" * 14)) == 15


@pytest.mark.parametrize("name", ["a" * 15, "", "D1", "d.1", "d 1"])
def test_port_name_rejects_names_that_do_not_fit(name):
    with pytest.raises(ValueError):
        port_name(name)
