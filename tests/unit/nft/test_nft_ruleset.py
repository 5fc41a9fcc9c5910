"""The nftables data plane's table as JSON: what a desired table plans into, what a listing
of nft 1.0.6 (captured from libnftables) parses back to, and that a health change or a hand
edit touches only what differs."""

from __future__ import annotations

import copy

import pytest

from lvsagent.ipvs import Destination, Service, ServiceKey
from lvsagent.nft import ruleset

WEB = ServiceKey.for_address("10.0.0.100", 80)
DNS = ServiceKey.for_address("10.0.0.100", 53, "udp")


def dispatch(chain: str, protocol: str, services: str) -> dict:
    """A dispatch rule as listed: (daddr, l4proto, dport) looked up in a services map."""
    fields = [
        {"payload": {"protocol": protocol, "field": "daddr"}},
        {"meta": {"key": "l4proto"}},
        {"payload": {"protocol": "th", "field": "dport"}},
    ]
    vmap = {"key": {"concat": fields}, "data": f"@{services}"}
    return {
        "rule": {
            "family": "inet",
            "table": "lvs_ha",
            "chain": chain,
            "expr": [{"vmap": vmap}],
        }
    }


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
    ]
}


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
    base = ["table", "map", "map", "chain", "rule", "rule", "chain", "rule", "rule"]
    assert added[:9] == base  # the table, its maps, the prerouting and output dispatch
    # chains before the rules and elements that jump to them
    assert added[9:] == ["chain", "chain", "rule", "element", "rule", "element"]
    assert commands[6]["add"]["chain"]["hook"] == "output"
    rule = commands[11]["add"]["rule"]
    assert rule["chain"] == "vs-tcp-10.0.0.100-80" and rule["comment"] == "wrr"
    assert rule["expr"][1]["dnat"]["addr"]["map"] == {
        "key": {"numgen": {"mode": "inc", "mod": 3}},
        "data": {"set": [[{"range": [0, 2]}, {"concat": ["10.0.1.2", 80]}]]},
    }
    assert commands[12]["add"]["element"]["name"] == "services4"
    assert commands[12]["add"]["element"]["elem"] == [
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
    assert dnat["addr"]["map"]["data"]["set"][1] == [
        {"range": [1, 1]},
        {"concat": ["fd00:1::3", 8080]},
    ]
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
