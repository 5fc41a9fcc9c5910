"""The nftables data plane's table as JSON: what a desired table plans into, what a listing
of nft 1.0.6 (captured from libnftables) parses back to, and that a health change or a hand
edit touches only what differs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lvsagent.ipvs import Destination, Service, ServiceKey
from lvsagent.nft import ruleset

WEB = ServiceKey.for_address("10.0.0.100", 80)
DNS = ServiceKey.for_address("10.0.0.100", 53, "udp")


def dispatch(chain: str, protocol: str, services: str, family: str = "inet") -> dict:
    """A dispatch rule as listed: (daddr, l4proto, dport) looked up in a services map."""
    fields = [
        {"payload": {"protocol": protocol, "field": "daddr"}},
        {"meta": {"key": "l4proto"}},
        {"payload": {"protocol": "th", "field": "dport"}},
    ]
    vmap = {"key": {"concat": fields}, "data": f"@{services}"}
    return {
        "rule": {
            "family": family,
            "table": "lvs_ha",
            "chain": chain,
            "expr": [{"vmap": vmap}],
        }
    }


# The counting sets and chain as libnftables 1.0.6 listed them (handles left out; in4 given
# an element counting 7 packets of a client to 10.0.1.2).
COUNTING = json.loads((Path(__file__).parent / "counting_listing.json").read_text())["nftables"]


# libnftables' listing of `inet lvs_ha` (nft 1.0.6, handles left out) after the agent programmed
# WEB (wrr: 10.0.1.2 weight 3 only) and DNS (rr, no live real server).
LISTING = {
    "nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "lvs_ha"}},
        {
            "map": {
                "family": "inet",
                "name": "services4",
                "table": "lvs_ha",
                "type": ["ipv4_addr", "inet_proto", "inet_service"],
                "map": "verdict",
                "elem": [
                    [
                        {"concat": ["10.0.0.100", "udp", 53]},
                        {"goto": {"target": "vs-udp-10.0.0.100-53"}},
                    ],
                    [
                        {"concat": ["10.0.0.100", "tcp", 80]},
                        {"goto": {"target": "vs-tcp-10.0.0.100-80"}},
                    ],
                ],
            }
        },
        {
            "map": {
                "family": "inet",
                "name": "services6",
                "table": "lvs_ha",
                "type": ["ipv6_addr", "inet_proto", "inet_service"],
                "map": "verdict",
            }
        },
        {
            "chain": {
                "family": "inet",
                "table": "lvs_ha",
                "name": "prerouting",
                "type": "nat",
                "hook": "prerouting",
                "prio": -100,
                "policy": "accept",
            }
        },
        {
            "chain": {
                "family": "inet",
                "table": "lvs_ha",
                "name": "output",
                "type": "nat",
                "hook": "output",
                "prio": -100,
                "policy": "accept",
            }
        },
        {"chain": {"family": "inet", "table": "lvs_ha", "name": "vs-tcp-10.0.0.100-80"}},
        {"chain": {"family": "inet", "table": "lvs_ha", "name": "vs-udp-10.0.0.100-53"}},
        dispatch("prerouting", "ip", "services4"),
        dispatch("prerouting", "ip6", "services6"),
        dispatch("output", "ip", "services4"),
        dispatch("output", "ip6", "services6"),
        {
            "rule": {
                "family": "inet",
                "table": "lvs_ha",
                "chain": "vs-tcp-10.0.0.100-80",
                "comment": "wrr",
                "expr": [
                    {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
                    {
                        "dnat": {
                            "family": "ip",
                            "addr": {
                                "map": {
                                    "key": {"numgen": {"mode": "inc", "mod": 3, "offset": 0}},
                                    "data": {
                                        "set": [[{"range": [0, 2]}, {"concat": ["10.0.1.2", 80]}]]
                                    },
                                }
                            },
                        }
                    },
                ],
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "lvs_ha",
                "chain": "vs-udp-10.0.0.100-53",
                "comment": "rr",
                "expr": [
                    {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}},
                    {"drop": None},
                ],
            }
        },
        *COUNTING,
    ]
}


COUNTING_SETS = {f"{name}{version}" for name in ("in", "out", "conns") for version in (4, 6)}


def web(*weights: int, scheduler: str = "wrr") -> tuple:
    servers = [Destination(f"10.0.1.{2 + i}", 80, "nat", w) for i, w in enumerate(weights)]
    return Service(WEB, scheduler), servers


def desired(*weights: int) -> dict:
    return {WEB: web(*weights), DNS: (Service(DNS, "rr"), [])}


def actions(changes) -> list:
    return [(change.action, change.key) for change in changes]


def live(listing="captured") -> ruleset.LiveTable:
    """The table from a listing: by default the one captured from nft; None when absent."""
    return ruleset.parse_listing(LISTING if listing == "captured" else listing)


def test_wrr_gives_each_live_server_its_weight_in_slots_and_rr_one():
    assert ruleset.slots(*web(3, 0, 2)) == (("10.0.1.2", 80, 0, 2), ("10.0.1.4", 80, 3, 4))
    assert ruleset.slots(*web(3, 0, 2, scheduler="rr")) == (
        ("10.0.1.2", 80, 0, 0),
        ("10.0.1.4", 80, 1, 1),
    )
    assert ruleset.slots(*web(0)) == ()


def test_huge_weights_are_scaled_inside_numgen_modulus():
    taken = ruleset.slots(*web(2**31 - 1, 2**31 - 1, 1))
    assert taken[-1][3] + 1 <= ruleset.SLOTS_MAX
    assert [last - first + 1 for _a, _p, first, last in taken][2] == 1


def test_an_empty_table_is_created_in_one_transaction():
    changes, commands, repaired = ruleset.plan(desired(3), live(None), (), whole_table=True)
    assert actions(changes) == [("add_service", WEB), ("add_service", DNS)]
    assert not repaired
    added = [next(iter(c["add"])) for c in commands]
    counting = ["set"] * 6  # in, out, conns for IPv4 and IPv6
    dispatch = ["chain", "rule", "rule", "chain", "rule", "rule", "chain", *["rule"] * 6]
    base = ["table", "map", "map", *counting, *dispatch]
    assert added[:22] == base  # the table, its maps and counting sets, the prerouting and
    # output dispatch and the counting chain before the rules and elements that jump to them
    assert added[22:] == ["chain", "chain", "rule", "element", "rule", "element"]
    assert commands[12]["add"]["chain"]["hook"] == "output"
    assert commands[15]["add"]["chain"]["hook"] == "forward"
    rule = commands[24]["add"]["rule"]
    assert rule["chain"] == "vs-tcp-10.0.0.100-80" and rule["comment"] == "wrr"
    assert rule["expr"][1]["dnat"]["addr"]["map"] == {
        "key": {"numgen": {"mode": "inc", "mod": 3}},
        "data": {"set": [[{"range": [0, 2]}, {"concat": ["10.0.1.2", 80]}]]},
    }
    assert commands[25]["add"]["element"]["name"] == "services4"
    assert commands[25]["add"]["element"]["elem"] == [
        [{"concat": ["10.0.0.100", "tcp", 80]}, {"goto": {"target": "vs-tcp-10.0.0.100-80"}}]
    ]


def test_the_listing_nft_prints_reads_back_as_what_was_planned():
    changes, commands, _repaired = ruleset.plan(desired(3), live(), (), whole_table=True)
    assert changes == [] and commands == []
    table = ruleset.read(live(), {WEB, DNS})
    service, destinations = table[WEB]
    assert service.scheduler == "wrr"
    assert destinations == [Destination("10.0.1.2", 80, "nat", 3)]
    assert table[DNS][1] == []


def test_protocols_listed_by_number_read_as_their_names():
    """Where /etc/protocols is missing (Debian 12 without netbase), nft 1.0.6 lists `tcp` as 6:
    the table still reads back as planned, with its counters, and nothing is rewritten."""
    numbered = json.loads(json.dumps(LISTING).replace('"tcp"', "6").replace('"udp"', "17"))
    assert numbered != LISTING
    assert ruleset.plan(desired(3), live(numbered), (), whole_table=True)[:2] == ([], [])
    listed = ruleset.parse_listing(numbered, counters=True)
    assert ruleset.read(listed, {WEB, DNS}) == ruleset.read(
        ruleset.parse_listing(LISTING, counters=True), {WEB, DNS}
    )
    assert ruleset.read(listed, {WEB})[WEB][1][0].stats.packets_in == 7


def test_a_health_change_rewrites_only_that_service_chain():
    changes, commands, _repaired = ruleset.plan({WEB: web(3, 2)}, live(), (), whole_table=False)
    assert actions(changes) == [("edit_service", WEB)]
    chain = {"family": "inet", "table": "lvs_ha", "name": "vs-tcp-10.0.0.100-80"}
    assert commands[0] == {"flush": {"chain": chain}}
    assert [next(iter(c)) for c in commands] == ["flush", "add"]
    mapping = commands[1]["add"]["rule"]["expr"][1]["dnat"]["addr"]["map"]
    assert mapping["key"]["numgen"]["mod"] == 5
    assert mapping["data"]["set"][1] == [{"range": [3, 4]}, {"concat": ["10.0.1.3", 80]}]


def test_a_hand_deleted_element_is_put_back():
    listing = copy.deepcopy(LISTING)
    listing["nftables"][2]["map"]["elem"].pop(1)  # WEB's
    changes, commands, repaired = ruleset.plan(desired(3), live(listing), (), whole_table=True)
    assert actions(changes) == [("edit_service", WEB)] and not repaired
    assert commands == [{"add": ruleset._element(ruleset._match(WEB), "vs-tcp-10.0.0.100-80")}]


def test_a_hand_edited_modulus_is_rewritten():
    listing = copy.deepcopy(LISTING)
    listing["nftables"][12]["rule"]["expr"][1]["dnat"]["addr"]["map"]["key"]["numgen"]["mod"] = 9
    changes, _commands, _repaired = ruleset.plan(desired(3), live(listing), (), whole_table=True)
    assert actions(changes) == [("edit_service", WEB)]


def test_a_deleted_dispatch_rule_is_restored_as_the_base():
    listing = copy.deepcopy(LISTING)
    del listing["nftables"][10]  # output's IPv4 one
    changes, commands, repaired = ruleset.plan(desired(3), live(listing), (), whole_table=True)
    assert changes == [] and repaired
    output = {"family": "inet", "table": "lvs_ha", "name": "output"}
    assert commands[0] == {"flush": {"chain": output}}
    assert [c["add"]["rule"]["expr"] for c in commands[1:]] == [
        LISTING["nftables"][10]["rule"]["expr"],
        LISTING["nftables"][11]["rule"]["expr"],
    ]


def test_a_retired_service_loses_its_element_before_its_chain():
    changes, commands, _repaired = ruleset.plan({WEB: web(3)}, live(), {DNS}, whole_table=False)
    assert actions(changes) == [("delete_service", DNS)]
    assert [next(iter(c["delete"])) for c in commands] == ["element", "chain"]
    assert commands[1]["delete"]["chain"]["name"] == "vs-udp-10.0.0.100-53"


def test_a_full_pass_removes_what_nobody_declared_and_a_slice_does_not():
    changes, commands, _repaired = ruleset.plan({WEB: web(3)}, live(), (), whole_table=True)
    assert actions(changes) == [("delete_service", DNS)]
    assert len(commands) == 2
    assert ruleset.plan({WEB: web(3)}, live(), (), whole_table=False)[:2] == ([], [])


def test_a_rule_nft_would_not_write_reads_as_foreign():
    assert ruleset.parse_rule({"expr": [{"accept": None}]}, "ip") is None
    assert ruleset.parse_rule({"expr": "junk"}, "ip") is None
    assert ruleset.parse_rule(LISTING["nftables"][12]["rule"], "ip6") is None  # an IPv4 dnat


def test_an_element_no_service_could_be_is_removed_by_a_full_pass():
    listing = copy.deepcopy(LISTING)
    stray = [{"concat": ["10.0.0.9", "icmp", 80]}, {"drop": None}]
    listing["nftables"][2]["map"]["elem"].append(stray)
    changes, commands, repaired = ruleset.plan(desired(3), live(listing), (), whole_table=True)
    assert changes == [] and repaired
    assert commands == [{"delete": ruleset._element(("10.0.0.9", "icmp", 80))}]
    assert ruleset.read(live(listing), {WEB})[WEB][1] == [Destination("10.0.1.2", 80, "nat", 3)]


def test_slots_of_a_foreign_shape_do_not_parse():
    rule = copy.deepcopy(LISTING["nftables"][12]["rule"])
    mapping = rule["expr"][1]["dnat"]["addr"]["map"]["data"]["set"]
    mapping.append([{"prefix": 1}, {"concat": ["10.0.1.9", 80]}])
    assert ruleset.parse_rule(rule, "ip") is None


def test_an_ipv6_service_goes_to_its_own_map_with_an_ip6_dnat():
    key = ServiceKey.for_address("fd00::100", 80)
    servers = [Destination("fd00:1::2", 8080, "nat", 1), Destination("fd00:1::3", 8080, "nat", 1)]
    wanted = {key: (Service(key, "rr"), servers)}
    changes, commands, _repaired = ruleset.plan(wanted, live(), (), whole_table=False)
    assert actions(changes) == [("add_service", key)]
    chain, rule, element = commands
    assert chain["add"]["chain"]["name"] == "vs-tcp-fd00__100-80"
    dnat = rule["add"]["rule"]["expr"][1]["dnat"]
    assert dnat["family"] == "ip6"
    assert dnat["addr"]["map"]["data"]["set"][1] == [1, {"concat": ["fd00:1::3", 8080]}]
    assert element["add"]["element"]["name"] == "services6"
    assert element["add"]["element"]["elem"][0][0] == {"concat": ["fd00::100", "tcp", 80]}


@pytest.mark.parametrize("whole_table", [True, False])
@pytest.mark.parametrize("weights", [(3, 2), (0,), (1,)])
@pytest.mark.parametrize("listing", [None, LISTING], ids=["absent", "listed"])
def test_the_table_after_a_transaction_plans_to_nothing(listing, weights, whole_table):
    before = live(listing)
    wanted = {WEB: web(*weights)}
    _changes, commands, _repaired = ruleset.plan(wanted, before, {DNS}, whole_table=whole_table)
    after = ruleset.applied(before, commands)
    assert ruleset.plan(wanted, after, (), whole_table=whole_table)[:2] == ([], [])
    assert before == live(listing)  # the listing it came from is left as it was


def dr_web(*weights: int, scheduler: str = "sh") -> dict:
    servers = [Destination(f"10.0.1.{2 + i}", 80, "dr", w) for i, w in enumerate(weights)]
    return {WEB: (Service(WEB, scheduler), servers)}


# libnftables' listing of `netdev lvs_ha` (nft 1.0.6, handles left out): WEB by DR (sh) to
# 10.0.1.2 and 10.0.1.3 through eth1, as NftPlane wrote it.
DR_LISTING = json.loads((Path(__file__).parent / "dr_listing.json").read_text())


def dr_live(listing=None) -> ruleset.LiveTable:
    return ruleset.parse_listing(listing, ruleset.DR_FAMILY)


def test_sh_hashes_the_client_address_over_the_consistent_slot_table():
    wanted = ruleset.desired_rule(*web(1, 1, scheduler="sh"))
    key = wanted.expr()[1]["dnat"]["addr"]["map"]["key"]
    assert key == {
        "jhash": {
            "mod": 256,
            "seed": ruleset.hashing.SEED,
            "expr": {"payload": {"protocol": "ip", "field": "saddr"}},
        }
    }
    shares = {d.address: d.weight for d in wanted.destinations()}
    assert set(shares) == {"10.0.1.2", "10.0.1.3"} and sum(shares.values()) == 256
    one_gone = ruleset.desired_rule(*web(1, 0, scheduler="mh"))
    assert [d.weight for d in one_gone.destinations()] == [256]


def test_dr_goes_to_the_netdev_table_with_an_ingress_chain_on_the_real_servers_device():
    changes, commands, repaired = ruleset.plan(
        dr_web(1, 1), dr_live(), (), whole_table=True, devices={WEB: "eth1"}
    )
    assert actions(changes) == [("add_service", WEB)] and not repaired
    assert all(next(iter(c["add"].values()))["family"] == "netdev" for c in commands)
    ingress = commands[3]["add"]["chain"]
    assert (ingress["name"], ingress["hook"], ingress["dev"]) == ("in-eth1", "ingress", "eth1")
    # each slot goes to its real server's chain, which counts and forwards
    vmap = commands[-2]["add"]["rule"]["expr"][1]["vmap"]
    assert vmap["key"]["jhash"]["mod"] == 256
    chains = {target["goto"]["target"] for _slot, target in vmap["data"]["set"]}
    assert chains == {"dr-tcp-10.0.0.100-80-10.0.1.2", "dr-tcp-10.0.0.100-80-10.0.1.3"}
    after = ruleset.applied(dr_live(), commands)
    syn, forward = [rule["expr"] for rule in after.chains["dr-tcp-10.0.0.100-80-10.0.1.2"]]
    assert forward == [
        {"counter": None},
        {"fwd": {"dev": "eth1", "family": "ip", "addr": "10.0.1.2"}},
    ]
    assert syn[0]["match"]["right"] == "syn" and syn[1] == {"counter": None}  # a connection
    done = kinds(commands)
    assert done.index(("add", "rule", "dr-tcp-10.0.0.100-80-10.0.1.2")) < done.index(
        ("add", "rule", "vs-tcp-10.0.0.100-80")
    )


def dr_built(*weights: int) -> ruleset.LiveTable:
    commands = ruleset.plan(
        dr_web(*weights), dr_live(), (), whole_table=True, devices={WEB: "eth1"}
    )
    return ruleset.applied(dr_live(), commands[1])


def test_a_dr_real_server_leaving_loses_its_chain_and_counters_after_the_rule_naming_it():
    before = dr_built(1, 1)
    gone = ("delete", "chain", "dr-tcp-10.0.0.100-80-10.0.1.3")
    for whole_table in (False, True):
        commands = ruleset.plan(
            dr_web(1, 0), before, (), whole_table=whole_table, devices={WEB: "eth1"}
        )[1]
        done = kinds(commands)
        assert gone in done
        assert done.index(("add", "rule", "vs-tcp-10.0.0.100-80")) < done.index(gone)
        after = ruleset.applied(before, commands)
        assert "dr-tcp-10.0.0.100-80-10.0.1.3" not in after.chains
        again = ruleset.plan(dr_web(1, 0), after, (), whole_table=True, devices={WEB: "eth1"})
        assert again[:2] == ([], [])
    back = ruleset.plan(dr_web(1, 1), after, (), whole_table=False, devices={WEB: "eth1"})[1]
    assert ("add", "chain", "dr-tcp-10.0.0.100-80-10.0.1.3") in kinds(back)  # from 0 again
    moved = ruleset.plan(dr_web(1, 1), before, (), whole_table=False, devices={WEB: "eth2"})[1]
    assert ("flush", "chain", "dr-tcp-10.0.0.100-80-10.0.1.2") in kinds(moved)  # another device
    retired = ruleset.applied(before, ruleset.plan({}, before, {WEB}, whole_table=False)[1])
    assert not retired.chains


def listed_counters(live: ruleset.LiveTable, chain: str, *counts: tuple) -> None:
    """The chain's rules as a listing shows them: each counter with its (packets, bytes)."""
    live.chains[chain] = [
        {
            **rule,
            "expr": [
                {"counter": {"packets": p, "bytes": b}} if "counter" in s else s
                for s in rule["expr"]
            ],
        }
        for rule, (p, b) in zip(live.chains[chain], counts)
    ]


def test_status_reads_each_dr_real_servers_counters_from_its_chain():
    live = dr_built(1, 1)
    listed_counters(live, "dr-tcp-10.0.0.100-80-10.0.1.3", (1, 60), (5, 300))
    service, destinations = ruleset.read(live, {WEB})[WEB]
    found = {
        d.address: (d.stats.connections, d.stats.packets_in, d.stats.bytes_in) for d in destinations
    }
    assert found == {"10.0.1.2": (0, 0, 0), "10.0.1.3": (1, 5, 300)}
    assert (service.stats.packets_in, service.stats.bytes_in) == (5, 300)
    assert {d.weight for d in destinations} <= set(range(1, 256)) and sum(
        d.weight for d in destinations
    ) == 256
    # the counters' values are no difference to the audit
    assert ruleset.plan(dr_web(1, 1), live, (), whole_table=True, devices={WEB: "eth1"})[:2] == (
        [],
        [],
    )


def test_without_dr_services_no_netdev_table_is_made():
    assert ruleset.plan({}, dr_live(), (), whole_table=True) == ([], [], False)


def test_the_dr_listing_nft_prints_reads_back():
    live = dr_live(DR_LISTING)
    (service, destinations) = ruleset.read(live, {WEB})[WEB]
    assert service.scheduler == "sh"
    assert [(d.address, d.port, d.forwarding) for d in destinations] == [
        ("10.0.1.3", 80, "dr"),
        ("10.0.1.2", 80, "dr"),
    ]
    assert sum(d.weight for d in destinations) == 256 and service.stats.packets_in == 0
    assert ruleset.plan(dr_web(1, 1), live, (), whole_table=True, devices={WEB: "eth1"})[:2] == (
        [],
        [],
    )


def test_a_hand_edited_seed_is_not_ours():
    listing = copy.deepcopy(DR_LISTING)
    (rule,) = [i["rule"] for i in listing["nftables"] if i.get("rule", {}).get("comment")]
    rule["expr"][1]["vmap"]["key"]["jhash"]["seed"] = 7
    assert ruleset.live_rule(dr_live(listing), WEB) is None


def test_a_device_dr_no_longer_uses_loses_its_ingress_chain_quietly():
    changes, commands, repaired = ruleset.plan(
        dr_web(1, 1), dr_live(DR_LISTING), (), whole_table=True, devices={WEB: "eth2"}
    )
    assert actions(changes) == [("edit_service", WEB)] and not repaired
    verbs = [
        (verb, body["chain"]["name"])
        for verb, body in (next(iter(c.items())) for c in commands)
        if "chain" in body
    ]
    assert verbs[-2:] == [("flush", "in-eth1"), ("delete", "in-eth1")]
    assert ("add", "in-eth2") in verbs


@pytest.mark.parametrize("weights", [(3, 2), (0,), (1, 1, 1)])
@pytest.mark.parametrize("listing", [None, DR_LISTING], ids=["absent", "listed"])
def test_the_dr_table_after_a_transaction_plans_to_nothing(listing, weights):
    before = dr_live(listing)
    wanted, devices = dr_web(*weights), {WEB: "eth1"}
    commands = ruleset.plan(wanted, before, (), whole_table=True, devices=devices)[1]
    after = ruleset.applied(before, commands)
    assert ruleset.plan(wanted, after, (), whole_table=True, devices=devices)[:2] == ([], [])


def pinned_web(*weights: int, timeout: int = 60) -> dict:
    service, servers = web(*weights, scheduler="rr")
    return {WEB: (Service(WEB, "rr", persistence_timeout=timeout), servers)}


def kinds(commands) -> list:
    """(verb, kind, name) of each command."""
    result = []
    for command in commands:
        ((verb, body),) = command.items()
        ((kind, fields),) = body.items()
        result.append((verb, kind, fields.get("name") or fields.get("chain")))
    return result


def test_persistence_records_each_client_in_its_real_servers_set():
    changes, commands, _repaired = ruleset.plan(pinned_web(1, 1), live(None), (), whole_table=True)
    assert actions(changes) == [("add_service", WEB)]
    pin = "pin-tcp-10.0.0.100-80-60-10.0.1.2-80"
    to = "to-tcp-10.0.0.100-80-60-10.0.1.2-80"
    done = kinds(commands)
    assert done.index(("add", "set", pin)) < done.index(("add", "rule", to))
    assert done.index(("add", "chain", to)) < done.index(("add", "rule", "vs-tcp-10.0.0.100-80"))
    (set_command,) = [c["add"]["set"] for c in commands if kinds([c])[0][1:] == ("set", pin)]
    assert (set_command["type"], set_command["timeout"]) == ("ipv4_addr", 60)
    added = [(kinds([c])[0][2], c["add"]["rule"]["expr"]) for c in commands if "rule" in c["add"]]
    service_rules = [expr for chain, expr in added if chain == "vs-tcp-10.0.0.100-80"]
    pinned_rules = [expr for chain, expr in added if chain == "pinned-tcp-10.0.0.100-80"]
    assert service_rules[0] == [{"jump": {"target": "pinned-tcp-10.0.0.100-80"}}]
    assert pinned_rules[0][0]["match"]["right"] == f"@{pin}"  # a pinned client goes back
    assert pinned_rules[0][1] == {"goto": {"target": to}}
    vmap = service_rules[-1][1]["vmap"]  # a new client: rr over the real servers' chains
    assert vmap["data"]["set"][0] == [0, {"goto": {"target": to}}]  # a single slot: no range
    recording = [c["add"]["rule"]["expr"] for c in commands if kinds([c])[0][1:] == ("rule", to)][0]
    assert recording[1] == {
        "set": {
            "op": "update",
            "elem": {"payload": {"protocol": "ip", "field": "saddr"}},
            "set": f"@{pin}",
        }
    }
    assert recording[2] == {"dnat": {"family": "ip", "addr": "10.0.1.2", "port": 80}}


def test_a_persistent_real_server_leaving_rewrites_two_rules_and_empties_its_set():
    before = ruleset.applied(
        live(None), ruleset.plan(pinned_web(1, 1), live(None), (), whole_table=True)[1]
    )
    changes, commands, repaired = ruleset.plan(pinned_web(1, 0), before, (), whole_table=False)
    assert actions(changes) == [("edit_service", WEB)] and not repaired
    gone = "10.0.1.3-80"
    assert kinds(commands) == [  # one transaction: its order does not matter
        ("flush", "set", f"pin-tcp-10.0.0.100-80-60-{gone}"),  # its clients scheduled again
        ("flush", "chain", "vs-tcp-10.0.0.100-80"),
        ("add", "rule", "vs-tcp-10.0.0.100-80"),  # jump to the pinned rules, left alone
        ("add", "rule", "vs-tcp-10.0.0.100-80"),  # the scheduling rule
    ]
    after = ruleset.applied(before, commands)
    assert ruleset.plan(pinned_web(1, 0), after, (), whole_table=False)[:2] == ([], [])
    back = ruleset.plan(pinned_web(1, 1), after, (), whole_table=False)[1]
    assert kinds(back)[:1] == [("flush", "chain", "vs-tcp-10.0.0.100-80")] and len(back) == 3

    # a full pass removes what the gone one left: after the pinned rules referring to it
    done = kinds(ruleset.plan(pinned_web(1, 0), after, (), whole_table=True)[1])
    assert done[0] == ("flush", "chain", "pinned-tcp-10.0.0.100-80")
    assert done[-2:] == [
        ("delete", "chain", f"to-tcp-10.0.0.100-80-60-{gone}"),
        ("delete", "set", f"pin-tcp-10.0.0.100-80-60-{gone}"),
    ]


def test_a_persistent_service_reads_back_with_its_timeout_and_real_servers():
    commands = ruleset.plan(pinned_web(2, 1), live(None), (), whole_table=True)[1]
    after = ruleset.applied(live(None), commands)
    service, destinations = ruleset.read(after, {WEB})[WEB]
    assert service.persistence_timeout == 60 and service.scheduler == "rr"
    assert destinations == [
        Destination("10.0.1.2", 80, "nat", 1),
        Destination("10.0.1.3", 80, "nat", 1),
    ]


@pytest.mark.parametrize("change", [(1, 0), (0, 1), (1, 1, 1), ()], ids=str)
def test_persistence_after_a_transaction_plans_to_nothing(change):
    start = ruleset.applied(
        live(None), ruleset.plan(pinned_web(1, 1), live(None), (), whole_table=True)[1]
    )
    wanted = pinned_web(*change, timeout=30 if len(change) == 3 else 60)
    for whole_table in (False, True):
        commands = ruleset.plan(wanted, start, (), whole_table=whole_table)[1]
        after = ruleset.applied(start, commands)
        assert ruleset.plan(wanted, after, (), whole_table=whole_table)[:2] == ([], [])
        cleaned = ruleset.plan(wanted, after, (), whole_table=True)[1]  # a slice's leftovers
        after = ruleset.applied(after, cleaned)
        assert ruleset.plan(wanted, after, (), whole_table=True)[:2] == ([], [])
        if whole_table:
            assert set(after.sets) == set(ruleset.pinning(*wanted[WEB]).sets) | COUNTING_SETS


def test_retiring_a_persistent_service_removes_its_sets_and_chains():
    start = ruleset.applied(
        live(None), ruleset.plan(pinned_web(1, 1), live(None), (), whole_table=True)[1]
    )
    commands = ruleset.plan({}, start, {WEB}, whole_table=False)[1]
    after = ruleset.applied(start, commands)
    assert set(after.sets) == COUNTING_SETS and not after.chains
    done = kinds(commands)
    assert done.index(("delete", "chain", "vs-tcp-10.0.0.100-80")) < done.index(
        ("delete", "chain", "to-tcp-10.0.0.100-80-60-10.0.1.2-80")
    )


def test_status_reads_each_nat_real_servers_counters_from_its_counting_set():
    assert live().counters == {}  # the audit's listing leaves them
    table = ruleset.read(ruleset.parse_listing(LISTING, counters=True), {WEB, DNS})
    service, (server,) = table[WEB]
    assert (server.address, server.stats.packets_in, server.stats.bytes_in) == ("10.0.1.2", 7, 420)
    assert (server.stats.packets_out, server.stats.connections) == (0, 0)
    assert service.stats.packets_in == 7 and service.stats.bytes_in == 420
    assert table[DNS][1] == [] and table[DNS][0].stats.packets_in == 0


def many(count: int, timeout: int = 0, scheduler: str = "rr") -> tuple:
    """A service of `count` real servers (weight 1, 2, 3, 1, ...), pinned with `timeout`."""
    servers = [
        Destination(f"10.{1 + i // 250}.1.{1 + i % 250}", 80, "nat", 1 + i % 3)
        for i in range(count)
    ]
    return Service(WEB, scheduler, persistence_timeout=timeout), servers


def built(service: Service, servers: list) -> ruleset.LiveTable:
    commands = ruleset.plan({WEB: (service, servers)}, live(None), (), whole_table=True)[1]
    return ruleset.applied(live(None), commands)


@pytest.mark.parametrize("timeout", [0, 60])
def test_a_large_rr_service_is_split_in_group_chains_each_server_in_one(timeout):
    service, servers = many(200, timeout)
    top, groups = ruleset.desired_rules(service, servers)
    assert top.grouped and 2 <= len(groups) <= 16
    assert top.modulus == sum(rule.modulus for rule in groups.values()) == 200
    leaves = [target for rule in groups.values() for target in rule.owned()]
    if timeout:  # each group goes on to the real servers' `to-` chains
        assert sorted(leaves) == sorted(
            (ruleset.to_chain(service, d.address, 80), None) for d in servers
        )
    else:
        assert sorted(leaves) == sorted((d.address, 80) for d in servers)
    wrr_top, wrr_groups = ruleset.desired_rules(Service(WEB, "wrr"), servers)
    assert wrr_top.modulus == sum(d.weight for d in servers)  # wrr: groups weigh their weights
    assert not ruleset.desired_rules(*many(ruleset.GROUPED_ABOVE))[1]  # small: one rule
    assert not ruleset.desired_rules(*many(200, scheduler="sh"))[1]  # hashed: 256 slots anyway


@pytest.mark.parametrize("timeout", [0, 60])
def test_a_grouped_health_change_rewrites_the_service_rule_and_one_group(timeout):
    service, servers = many(200, timeout)
    before = built(service, servers)
    gone = servers[7]
    staying = [d for d in servers if d != gone]
    changes, commands, repaired = ruleset.plan(
        {WEB: (service, staying)}, before, (), whole_table=False
    )
    assert actions(changes) == [("edit_service", WEB)] and not repaired
    (group,) = {
        chain
        for chain, rule in ruleset.desired_rules(service, servers)[1].items()
        if any(
            address in (gone.address, ruleset.to_chain(service, gone.address, 80))
            for address, _port in rule.owned()
        )
    }
    rewritten = [name for verb, kind, name in kinds(commands) if kind == "rule"]
    assert sorted(set(rewritten)) == sorted({group, "vs-tcp-10.0.0.100-80"})
    if timeout:  # its clients are scheduled again: a server back starts with none
        pin = ruleset.pin_set(service, gone.address, 80)
        assert ("flush", "set", pin) in kinds(commands)
    after = ruleset.applied(before, commands)
    wanted = {WEB: (service, staying)}
    assert ruleset.plan(wanted, after, (), whole_table=False)[:2] == ([], [])
    after = ruleset.applied(after, ruleset.plan(wanted, after, (), whole_table=True)[1])
    assert ruleset.plan(wanted, after, (), whole_table=True)[:2] == ([], [])
    read_service, read = ruleset.read(after, {WEB})[WEB]
    assert sorted((d.address, d.weight) for d in read) == sorted((d.address, 1) for d in staying)
    assert read_service.persistence_timeout == timeout


def test_a_service_shrinking_below_grouping_drops_its_groups_after_its_rule():
    service, servers = many(100)
    before = built(service, servers)
    small = servers[: ruleset.GROUPED_ABOVE]
    for whole_table in (False, True):
        commands = ruleset.plan({WEB: (service, small)}, before, (), whole_table=whole_table)[1]
        done = kinds(commands)
        deleted = [name for verb, kind, name in done if verb == "delete" and kind == "chain"]
        assert deleted and all(name.startswith("grp-tcp-10.0.0.100-80-") for name in deleted)
        assert done.index(("add", "rule", "vs-tcp-10.0.0.100-80")) < done.index(
            ("delete", "chain", deleted[0])
        )
        after = ruleset.applied(before, commands)
        assert not [name for name in after.chains if name.startswith("grp-")]
        assert ruleset.plan({WEB: (service, small)}, after, (), whole_table=True)[:2] == ([], [])
    retired = ruleset.applied(before, ruleset.plan({}, before, {WEB}, whole_table=False)[1])
    assert not retired.chains


@pytest.mark.parametrize("scheduler", ["rr", "wrr"])
def test_grouped_rr_and_wrr_give_each_real_server_its_share_of_a_cycle(scheduler):
    """numgen simulated: the service rule's counter picks a group, each group's own counter
    one of its members; over the total of slots each real server gets its weight (rr: 1)."""
    service, servers = many(150, scheduler=scheduler)
    top, groups = ruleset.desired_rules(service, servers)
    counters = dict.fromkeys(groups, 0)
    picked: dict = {}
    for count in range(top.modulus):
        (chain,) = [name for name, _port, first, last in top.slots if first <= count <= last]
        rule = groups[chain]
        slot = counters[chain] % rule.modulus
        counters[chain] += 1
        (address,) = [a for a, _port, first, last in rule.slots if first <= slot <= last]
        picked[address] = picked.get(address, 0) + 1
    share = {d.address: 1 if scheduler == "rr" else d.weight for d in servers}
    assert picked == share


def test_a_udp_dr_service_counts_packets_only():
    dns = ServiceKey.for_address("10.0.0.100", 53, "udp")
    servers = [Destination("10.0.1.2", 53, "dr", 1)]
    wanted = {dns: (Service(dns, "sh"), servers)}
    commands = ruleset.plan(wanted, dr_live(), (), whole_table=True, devices={dns: "eth1"})[1]
    after = ruleset.applied(dr_live(), commands)
    (forward,) = after.chains["dr-udp-10.0.0.100-53-10.0.1.2"]
    assert forward["expr"][0] == {"counter": None} and "fwd" in forward["expr"][1]


def test_a_hand_edited_dr_chain_is_rewritten_and_its_real_server_left_out_of_status():
    live = dr_built(1, 1)
    live.chains["dr-tcp-10.0.0.100-80-10.0.1.3"] = [{"expr": ["junk"]}]
    service, destinations = ruleset.read(live, {WEB})[WEB]
    assert [d.address for d in destinations] == ["10.0.1.2"]
    commands = ruleset.plan(dr_web(1, 1), live, (), whole_table=True, devices={WEB: "eth1"})[1]
    assert ("flush", "chain", "dr-tcp-10.0.0.100-80-10.0.1.3") in kinds(commands)
