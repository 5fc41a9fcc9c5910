"""The nftables data plane's table as JSON: what a desired table plans into, what a listing
of nft 1.0.6 (captured from `nft -j list table ip lvs_ha`) parses back to, and that a health
change or a hand edit touches only what differs."""

from __future__ import annotations

import copy

from lvsagent.ipvs import Destination, Service, ServiceKey
from lvsagent.nft import ruleset

WEB = ServiceKey.for_address("10.0.0.100", 80)
DNS = ServiceKey.for_address("10.0.0.100", 53, "udp")

# `nft -j list table ip lvs_ha` (nft 1.0.6) after the agent programmed WEB (wrr: 10.0.1.2
# weight 3 only) and DNS (rr, no live real server).
LISTING = {
    "nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": "lvs_ha", "handle": 4}},
        {
            "map": {
                "family": "ip",
                "name": "services",
                "table": "lvs_ha",
                "type": ["ipv4_addr", "inet_proto", "inet_service"],
                "handle": 1,
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
            "chain": {
                "family": "ip",
                "table": "lvs_ha",
                "name": "prerouting",
                "handle": 2,
                "type": "nat",
                "hook": "prerouting",
                "prio": -100,
                "policy": "accept",
            }
        },
        {"chain": {"family": "ip", "table": "lvs_ha", "name": "vs-tcp-10.0.0.100-80"}},
        {"chain": {"family": "ip", "table": "lvs_ha", "name": "vs-udp-10.0.0.100-53"}},
        {
            "rule": {
                "family": "ip",
                "table": "lvs_ha",
                "chain": "prerouting",
                "handle": 3,
                "expr": [
                    {
                        "vmap": {
                            "key": {
                                "concat": [
                                    {"payload": {"protocol": "ip", "field": "daddr"}},
                                    {"meta": {"key": "l4proto"}},
                                    {"payload": {"protocol": "th", "field": "dport"}},
                                ]
                            },
                            "data": "@services",
                        }
                    }
                ],
            }
        },
        {
            "rule": {
                "family": "ip",
                "table": "lvs_ha",
                "chain": "vs-tcp-10.0.0.100-80",
                "handle": 10,
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
                "family": "ip",
                "table": "lvs_ha",
                "chain": "vs-udp-10.0.0.100-53",
                "handle": 8,
                "comment": "rr",
                "expr": [
                    {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "udp"}},
                    {"drop": None},
                ],
            }
        },
    ]
}


def web(*weights: int, scheduler: str = "wrr") -> tuple:
    servers = [Destination(f"10.0.1.{2 + i}", 80, "nat", w) for i, w in enumerate(weights)]
    return Service(WEB, scheduler), servers


def desired(*weights: int) -> dict:
    return {WEB: web(*weights), DNS: (Service(DNS, "rr"), [])}


def actions(changes) -> list:
    return [(change.action, change.key) for change in changes]


def live(listing=LISTING) -> ruleset.LiveTable:
    return ruleset.parse_listing(listing)


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
    assert added[:4] == ["table", "map", "chain", "rule"]  # base: table, map, dispatch
    # chains before the rules and elements that jump to them
    assert added[4:] == ["chain", "chain", "rule", "element", "rule", "element"]
    rule = commands[6]["add"]["rule"]
    assert rule["chain"] == "vs-tcp-10.0.0.100-80" and rule["comment"] == "wrr"
    assert rule["expr"][1]["dnat"]["addr"]["map"] == {
        "key": {"numgen": {"mode": "inc", "mod": 3}},
        "data": {"set": [[{"range": [0, 2]}, {"concat": ["10.0.1.2", 80]}]]},
    }
    assert commands[7]["add"]["element"]["elem"] == [
        [{"concat": ["10.0.0.100", "tcp", 80]}, {"goto": {"target": "vs-tcp-10.0.0.100-80"}}]
    ]


def test_the_listing_nft_prints_reads_back_as_what_was_planned():
    changes, commands, _ = ruleset.plan(desired(3), live(), (), whole_table=True)
    assert changes == [] and commands == []
    table = ruleset.read(live(), {WEB, DNS})
    service, destinations = table[WEB]
    assert service.scheduler == "wrr"
    assert destinations == [Destination("10.0.1.2", 80, "nat", 3)]
    assert table[DNS][1] == []


def test_a_health_change_rewrites_only_that_service_chain():
    changes, commands, _ = ruleset.plan({WEB: web(3, 2)}, live(), (), whole_table=False)
    assert actions(changes) == [("edit_service", WEB)]
    chain = {"family": "ip", "table": "lvs_ha", "name": "vs-tcp-10.0.0.100-80"}
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
    listing["nftables"][7]["rule"]["expr"][1]["dnat"]["addr"]["map"]["key"]["numgen"]["mod"] = 9
    changes, _, _ = ruleset.plan(desired(3), live(listing), (), whole_table=True)
    assert actions(changes) == [("edit_service", WEB)]


def test_a_deleted_dispatch_rule_is_restored_as_the_base():
    listing = copy.deepcopy(LISTING)
    del listing["nftables"][6]
    changes, commands, repaired = ruleset.plan(desired(3), live(listing), (), whole_table=True)
    assert changes == [] and repaired
    assert commands == [
        {"flush": {"chain": {"family": "ip", "table": "lvs_ha", "name": "prerouting"}}},
        {"add": ruleset._dispatch_rule()},
    ]


def test_a_retired_service_loses_its_element_before_its_chain():
    changes, commands, _ = ruleset.plan({WEB: web(3)}, live(), {DNS}, whole_table=False)
    assert actions(changes) == [("delete_service", DNS)]
    assert [next(iter(c["delete"])) for c in commands] == ["element", "chain"]
    assert commands[1]["delete"]["chain"]["name"] == "vs-udp-10.0.0.100-53"


def test_a_full_pass_removes_what_nobody_declared_and_a_slice_does_not():
    changes, commands, _ = ruleset.plan({WEB: web(3)}, live(), (), whole_table=True)
    assert actions(changes) == [("delete_service", DNS)]
    assert len(commands) == 2
    assert ruleset.plan({WEB: web(3)}, live(), (), whole_table=False)[:2] == ([], [])


def test_a_rule_nft_would_not_write_reads_as_foreign():
    assert ruleset.parse_rule({"expr": [{"accept": None}]}) is None
    assert ruleset.parse_rule({"expr": "junk"}) is None


def test_an_element_no_service_could_be_is_removed_by_a_full_pass():
    listing = copy.deepcopy(LISTING)
    stray = [{"concat": ["10.0.0.9", "icmp", 80]}, {"drop": None}]
    listing["nftables"][2]["map"]["elem"].append(stray)
    changes, commands, repaired = ruleset.plan(desired(3), live(listing), (), whole_table=True)
    assert changes == [] and repaired
    assert commands == [{"delete": ruleset._element(("10.0.0.9", "icmp", 80))}]
    assert ruleset.read(live(listing), {WEB})[WEB][1] == [Destination("10.0.1.2", 80, "nat", 3)]


def test_slots_of_a_foreign_shape_do_not_parse():
    rule = copy.deepcopy(LISTING["nftables"][7]["rule"])
    mapping = rule["expr"][1]["dnat"]["addr"]["map"]["data"]["set"]
    mapping.append([{"prefix": 1}, {"concat": ["10.0.1.9", 80]}])
    assert ruleset.parse_rule(rule) is None
