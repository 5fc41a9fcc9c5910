"""The operator's seed configs pass; every keepalived sample passes or fails only with
"not supported by lvs-agent" errors, each at the line that uses the feature."""

from __future__ import annotations

import glob
import os

import pytest

from lvsagent.config import ConfigError, load, loads

SHARED = os.environ.get("LVS_HA_SHARED", "/work/shared")
SAMPLES = os.path.join(SHARED, "reference", "keepalived-samples")
SEEDS = sorted(glob.glob(os.path.join(SHARED, "seed", "*.conf")))

NOT_SUPPORTED = ": not supported by lvs-agent"
# sample -> the exact unsupported errors, as (line, message)
EXPECTED_UNSUPPORTED = {
    "keepalived.conf.HTTP_GET.port": [],
    "keepalived.conf.IPv6": [],
    "keepalived.conf.PING_CHECK": [],
    "keepalived.conf.SMTP_CHECK": [],
    "keepalived.conf.SSL_GET": [(20, "auth_type AH")],
    "keepalived.conf.UDP_CHECK": [],
    "keepalived.conf.conditional_conf": [(3, "net_namespace")],
    "keepalived.conf.fwmark": [],
    "keepalived.conf.inhibit": [],
    "keepalived.conf.misc_check": [],
    "keepalived.conf.misc_check_arg": [],
    "keepalived.conf.quorum": [],
    "keepalived.conf.sample": [],
    "keepalived.conf.status_code": [],
    "keepalived.conf.track_interface": [],
    "keepalived.conf.virtual_server_group": [],
    "keepalived.conf.virtualhost": [],
    "keepalived.conf.vrrp": [],
    "keepalived.conf.vrrp.localcheck": [],
    "keepalived.conf.vrrp.lvs_syncd": [],
    "keepalived.conf.vrrp.routes": [],
    "keepalived.conf.vrrp.rules": [],
    "keepalived.conf.vrrp.scripts": [],
    "keepalived.conf.vrrp.static_ipaddress": [],
    "keepalived.conf.vrrp.sync": [],
}

# samples written for a config id (keepalived's -i): loaded with it
CONFIG_IDS = {"keepalived.conf.conditional_conf": "high"}

pytestmark = pytest.mark.skipif(not os.path.isdir(SAMPLES), reason="shared reference absent")


def test_every_sample_is_listed():
    assert sorted(os.listdir(SAMPLES)) == sorted(EXPECTED_UNSUPPORTED)


@pytest.mark.parametrize("name", sorted(EXPECTED_UNSUPPORTED))
def test_sample_passes_or_fails_only_with_not_supported_lines(name):
    path = os.path.join(SAMPLES, name)
    expected = [(path, line, what + NOT_SUPPORTED) for line, what in EXPECTED_UNSUPPORTED[name]]
    try:
        config = load(path, host_checks=False, config_id=CONFIG_IDS.get(name))
    except ConfigError as error:
        errors = [(p.file, p.line, p.message) for p in error.problems if p.severity == "error"]
        assert errors == expected
    else:
        assert expected == []
        assert config.vrrp_instances or config.virtual_servers


@pytest.mark.parametrize("path", SEEDS, ids=os.path.basename)
def test_seed_configs_pass_without_host_checks(path):
    config = load(path, host_checks=False)
    (server,) = config.virtual_servers
    assert (server.address, server.port, server.protocol) == ("192.168.179.199", 80, "TCP")
    assert (server.lvs_sched, server.lvs_method, server.persistence_timeout) == ("rr", "DR", 60)
    assert server.delay_loop == 6.0
    for real in server.real_servers:
        assert real.weight == 100
        (checker,) = real.checkers
        # keepalived 2.2 reads the seeds' `nb_get_retry 3` in HTTP_GET only: TCP_CHECK keeps 1
        retry = 3 if checker.kind == "HTTP_GET" else 1
        assert (checker.retry, checker.delay_before_retry) == (retry, 3.0)
    (instance,) = config.vrrp_instances
    assert (instance.virtual_router_id, instance.advert_int) == (51, 5.0)
    assert instance.auth_type == "PASS"
    assert [str(v.address) for v in instance.virtual_ipaddresses] == ["192.168.179.199/32"]


@pytest.mark.parametrize(("config_id", "priority"), [("high", 170), ("low", 85)])
def test_conditional_sample_takes_the_lines_of_its_config_id(config_id, priority):
    path = os.path.join(SAMPLES, "keepalived.conf.conditional_conf")
    with pytest.raises(ConfigError) as raised:
        load(path, host_checks=False, config_id=config_id)
    line = 3 if config_id == "high" else 4
    assert [(p.line, p.message) for p in raised.value.errors] == [
        (line, "net_namespace: not supported by lvs-agent"),
    ]
    with open(path) as sample:
        text = sample.read().replace(f"@{config_id} net_namespace", "!")
    config = loads(text, path, config_id=config_id)
    (instance,) = config.vrrp_instances
    assert instance.priority == priority
    assert (instance.use_vmac, instance.vmac_name, instance.vmac_xmit_base) == (
        True,
        "vrrp.1",
        False,
    )
    (script,) = config.vrrp_scripts.values()
    assert script.script == f"/etc/keepalived/scripts/check_{config_id}_VI_0.sh"
    assert [t.name for t in instance.track_scripts] == ["check_VI_0"]


def test_conditional_sample_without_a_config_id_loads_as_keepalived_takes_it():
    """No @line applies: keepalived -t removes the empty vrrp_script and the track of it."""
    path = os.path.join(SAMPLES, "keepalived.conf.conditional_conf")
    config = load(path, host_checks=False, config_id="neither")
    assert [(p.line, p.severity, p.message) for p in config.warnings] == [
        (6, "warning", "No script set for vrrp_script check_VI_0 - removing"),
        (25, "warning", "(VI_0) track script check_VI_0 not found, ignoring..."),
    ]
    (instance,) = config.vrrp_instances
    assert (instance.priority, instance.track_scripts, config.vrrp_scripts) == (100, [], {})
    assert (instance.use_vmac, instance.vmac_name) == (True, "vrrp.1")


def test_master_seed_in_detail():
    config = load(os.path.join(SHARED, "seed", "master.keepalived.conf"), host_checks=False)
    (instance,) = config.vrrp_instances
    assert (instance.state, instance.interface, instance.priority) == ("MASTER", "ens32", 100)
    reals = config.virtual_servers[0].real_servers
    assert [(r.address, r.port) for r in reals] == [("192.168.179.104", 80), ("192.168.179.99", 80)]
    checker = reals[0].checkers[0]
    assert (checker.kind, checker.connect_timeout, checker.connect_port) == ("TCP_CHECK", 10.0, 80)
