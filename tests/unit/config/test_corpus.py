"""Every corpus configuration loads (warnings allowed) with exactly the warnings in its table;
tests/integration/netns/test_corpus_keepalived.py holds real keepalived to the same table."""

from __future__ import annotations

import os

import pytest
from config_corpus import CORPUS, FILES, unmatched_ours

from lvsagent.cli import main
from lvsagent.config import load


def test_the_corpus_has_at_least_thirty_configurations():
    assert len(FILES) >= 30


@pytest.mark.parametrize("name", FILES)
def test_corpus_file_loads_with_the_expected_warnings(name):
    config = load(os.path.join(CORPUS, name), host_checks=False)
    assert config.vrrp_instances or config.virtual_servers
    warnings = [(problem.line, problem.message) for problem in config.warnings]
    extra, missing = unmatched_ours(name, warnings)
    assert (extra, missing) == ([], [])


@pytest.mark.parametrize("name", FILES)
def test_check_config_accepts_the_corpus_file_and_strict_refuses_its_warnings(name, capsys):
    path = os.path.join(CORPUS, name)
    assert main(["check-config", "--no-host-checks", path]) == 0
    warned = "warning: " in capsys.readouterr().out
    assert main(["check-config", "--no-host-checks", "--strict", path]) == (1 if warned else 0)


def test_what_keepalived_corrects_is_what_the_model_holds():
    """The values after keepalived's corrections, not the ones written."""
    (slave, lower) = load(
        os.path.join(CORPUS, "10-state-names.conf"), host_checks=False
    ).vrrp_instances
    assert (slave.state, lower.state) == ("BACKUP", "BACKUP")
    (ranged,) = load(os.path.join(CORPUS, "11-out-of-range.conf"), host_checks=False).vrrp_instances
    assert (ranged.priority, ranged.advert_int, ranged.preempt_delay) == (100, 1.0, 0.0)
    servers = load(os.path.join(CORPUS, "12-persistence-zero.conf"), host_checks=False)
    assert [s.persistence_timeout for s in servers.virtual_servers] == [0, 0]
    reals = load(os.path.join(CORPUS, "13-weights.conf"), host_checks=False).virtual_servers[0]
    assert [r.weight for r in reals.real_servers] == [0, 100000, 1]
    (dns,) = load(os.path.join(CORPUS, "20-no-protocol.conf"), host_checks=False).virtual_servers
    assert (dns.protocol, dns.lvs_method) == ("UDP", "DR")
    (lower_case,) = load(
        os.path.join(CORPUS, "24-lowercase-methods.conf"), host_checks=False
    ).virtual_servers
    assert (lower_case.lvs_sched, lower_case.lvs_method, lower_case.protocol) == (
        "wlc",
        "NAT",
        "TCP",
    )
    (long_pass, lower_pass) = load(
        os.path.join(CORPUS, "25-auth-variants.conf"), host_checks=False
    ).vrrp_instances
    assert (long_pass.auth_type, lower_pass.auth_type, lower_pass.auth_pass) == ("PASS", None, None)
    script = load(os.path.join(CORPUS, "30-script-edge-values.conf"), host_checks=False)
    chk = script.vrrp_scripts["chk_nginx"]
    assert (chk.interval, chk.timeout, chk.fall, chk.rise) == (1, 1, 1, 1)
    sync = load(os.path.join(CORPUS, "32-old-sync-group.conf"), host_checks=False)
    assert sync.sync_groups == [] and all(i.sync_group is None for i in sync.vrrp_instances)
    (flags,) = load(
        os.path.join(CORPUS, "15-boolean-arguments.conf"), host_checks=False
    ).virtual_servers
    assert (flags.inhibit_on_failure, flags.alpha, flags.omega) == (True, True, True)
    assert (flags.real_servers[0].inhibit_on_failure, flags.real_servers[0].alpha) == (False, True)
    (edge,) = load(
        os.path.join(CORPUS, "35-track-edge-values.conf"), host_checks=False
    ).vrrp_instances
    assert [(t.name, t.weight) for t in edge.track_interfaces] == [("eth1", -253)]
    assert [(t.name, t.weight) for t in edge.track_scripts] == [("chk_api", 253)]
    vips = load(os.path.join(CORPUS, "36-vip-edge-values.conf"), host_checks=False).vrrp_instances
    assert [(str(v.address), v.scope) for v in vips[0].virtual_ipaddresses] == [
        ("198.51.100.37/24", None),
        ("198.51.100.38/24", None),
    ]
    assert [v.label for v in vips[1].virtual_ipaddresses] == [None, None]
    edges = load(os.path.join(CORPUS, "37-virtual-server-edges.conf"), host_checks=False)
    https, zero_port, fwmark = edges.virtual_servers
    assert [(r.address, r.weight) for r in https.real_servers] == [("192.0.2.138", 1)]
    assert (https.scheduler_flags, zero_port.persistence_timeout, fwmark.ha_suspend) == (
        [],
        360,
        False,
    )
    nat = load(os.path.join(CORPUS, "02-lvs-nat-http-get.conf"), host_checks=False)
    assert [r.checkers[0].retry for r in nat.virtual_servers[0].real_servers] == [2, 2]
    old = load(os.path.join(CORPUS, "09-old-keywords.conf"), host_checks=False)
    assert old.virtual_servers[0].real_servers[0].checkers[0].retry == 1  # TCP_CHECK: ignored
    http = load(os.path.join(CORPUS, "38-http-check-edges.conf"), host_checks=False)
    checked, unchecked = http.virtual_servers[0].real_servers
    (get,) = checked.checkers
    assert (get.urls[0].status_codes, get.http_protocol, get.connect_port) == (
        [(200, 200)],
        None,
        None,
    )
    assert unchecked.checkers == ()
    groups = load(os.path.join(CORPUS, "39-sync-group-leftovers.conf"), host_checks=False)
    assert [(g.name, g.group) for g in groups.sync_groups] == [
        ("VG_WEB", ["VI_WEB"]),
        ("VG_DB", ["VI_DB"]),
    ]
    fast = load(os.path.join(CORPUS, "19-advert-int-fractions.conf"), host_checks=False)
    assert [i.advert_int for i in fast.vrrp_instances] == [0.25, 2.0, 40.95]
