"""no_accept with nftables, against Debian's keepalived 2.2.7 in the same namespaces: with
vrrp_strict a master that is not the address owner holds its VIPs for routing only (a client's
ping and TCP connection to a VIP get no answer, to the node's own address they do), through the
same nftables table keepalived installs (compared rule by rule); `accept` answers and installs
nothing; the table goes at stop."""

from __future__ import annotations

import json
import signal

import pytest
from vrrp_support import VIP4, VIP6, Agent, Keepalived, config, holds, instance_block

pytestmark = pytest.mark.netns

PORT = 8080
ROUTER4, ROUTER6 = "192.168.77.11", "fd00:77::11"
LINK_LOCAL_VIP = "fe80::77:100"  # in keepalived's link-local set, with the interface's index
IPV6_INSTANCE = dict(name="VI_6", vrid=52, vip=f"{VIP6}/64\n    {LINK_LOCAL_VIP}/64", version=3)


@pytest.fixture
def hosts(lab):
    router = lab.host("r1", f"{ROUTER4}/24", f"{ROUTER6}/64")
    client = lab.host("c1", "192.168.77.50/24", "fd00:77::50/64")
    return router, client


def strict_config(extra: str = "", global_extra: str = "  vrrp_strict\n") -> str:
    return config(
        instance_block(100, extra=extra),
        instance_block(100, extra=extra, **IPV6_INSTANCE),
        global_extra=global_extra,
    )


def answers_ping(client, address: str) -> bool:
    return client.run(["ping", "-c", "1", "-W", "1", address], check=False).returncode == 0


def answers_tcp(client, address: str) -> bool:
    family = "AF_INET6" if ":" in address else "AF_INET"
    probe = (
        "import socket, sys\n"
        f"s = socket.socket(socket.{family}); s.settimeout(1)\n"
        f"sys.exit(s.connect_ex(({address!r}, {PORT})))\n"
    )
    return client.run(["python3", "-c", probe], check=False).returncode == 0


def ruleset(host) -> list:
    """`nft -j list ruleset` without handles, sorted: equal when the tables do the same."""
    listed = json.loads(host.run(["nft", "-j", "list", "ruleset"]).stdout)["nftables"]
    found = []
    for item in listed:
        for kind, body in item.items():
            if kind != "metainfo":
                body = {key: value for key, value in body.items() if key != "handle"}
                found.append(json.dumps({kind: body}, sort_keys=True))
    return sorted(found)


def listener(router):
    server = (
        "import socket, time\n"
        f"s = socket.create_server(('::', {PORT}), family=socket.AF_INET6, dualstack_ipv6=True)\n"
        "time.sleep(3600)\n"
    )
    return router.popen(["python3", "-c", server])


def both_masters(router) -> bool:
    return holds(router, VIP4) and holds(router, VIP6)


def run_strict(daemon, router, client):
    """Start `daemon`, wait until it is master of both, check what answers; its ruleset."""
    daemon.start()
    router.wait_for(lambda: both_masters(router) and len(ruleset(router)) > 0, timeout=15)
    for vip in (VIP4, VIP6):
        assert not answers_ping(client, vip), vip
        assert not answers_tcp(client, vip), vip
    for own in (ROUTER4, ROUTER6):
        assert answers_ping(client, own) and answers_tcp(client, own), own
    rules = ruleset(router)
    assert daemon.stop() == 0
    assert ruleset(router) == []  # the table is gone with the daemon
    return rules


def test_strict_drops_traffic_to_the_vips_with_keepalived_table(hosts, tmp_path):
    router, client = hosts
    server = listener(router)
    try:
        conf = strict_config()
        theirs = run_strict(Keepalived(router, tmp_path, conf), router, client)
        ours = run_strict(Agent(router, tmp_path, conf), router, client)
    finally:
        server.kill()
        server.wait()
    assert ours == theirs
    assert any('"drop"' in rule and '"@vips"' in rule for rule in ours)
    assert any("vips_link_local" in item and LINK_LOCAL_VIP in item for item in ours)


@pytest.mark.parametrize("daemon", [Keepalived, Agent])
def test_accept_answers_on_the_vips_and_installs_nothing(hosts, tmp_path, daemon):
    router, client = hosts
    server = listener(router)
    try:
        running = daemon(router, tmp_path, strict_config(" accept\n", global_extra="")).start()
        router.wait_for(lambda: both_masters(router), timeout=15)
        for vip in (VIP4, VIP6):
            assert answers_ping(client, vip) and answers_tcp(client, vip), vip
        assert ruleset(router) == []
        assert running.stop() == 0
    finally:
        server.kill()
        server.wait()


def test_a_reload_from_no_accept_to_accept_opens_the_vips(hosts, tmp_path):
    router, client = hosts
    server = listener(router)
    try:
        agent = Agent(router, tmp_path, strict_config(" no_accept\n", global_extra="")).start()
        router.wait_for(lambda: both_masters(router) and len(ruleset(router)) > 0, timeout=15)
        assert not answers_ping(client, VIP4) and not answers_tcp(client, VIP6)
        agent.conf.write_text(strict_config(" accept\n", global_extra=""))
        agent.signal(signal.SIGHUP)
        client.wait_for(lambda: answers_ping(client, VIP4), timeout=10)
        assert answers_tcp(client, VIP6) and both_masters(router)
        assert agent.stop() == 0
        assert ruleset(router) == []
    finally:
        server.kill()
        server.wait()
