"""render_instance writes keepalived syntax that the parser reads back as the same instance."""

from __future__ import annotations

import dataclasses
import glob
import ipaddress
import os
from typing import Optional

import pytest
from config_helpers import parse
from hypothesis import given
from hypothesis import strategies as st

from lvsagent.config import (
    ConfigError,
    GlobalDefs,
    TrackInterface,
    TrackScript,
    VirtualAddress,
    VrrpInstance,
    load,
    loads,
)
from lvsagent.config.lexer import Lexer, Source
from lvsagent.config.parser import parse_entry
from lvsagent.config.redact import mask_secrets
from lvsagent.config.render import LINE_BREAKS, quote, render_instance

SHARED = os.environ.get("LVS_HA_SHARED", "/work/shared")
CORPUS = sorted(
    glob.glob(os.path.join(SHARED, "reference", "keepalived-samples", "*"))
    + glob.glob(os.path.join(SHARED, "seed", "*.conf"))
)


def plain(value):
    """A model object as nested data without locations (they differ by construction)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            item.name: plain(getattr(value, item.name))
            for item in dataclasses.fields(value)
            if item.name != "location"
        }
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def global_defs_text(defs: GlobalDefs) -> str:
    """The global settings that change how an instance is completed."""
    lines = [f"    vrrp_version {defs.vrrp_version}"]
    if defs.vrrp_strict:
        lines.append("    vrrp_strict")
    if defs.v3_checksum_as_v2:
        lines.append("    v3_checksum_as_v2")
    return "global_defs {\n" + "\n".join(lines) + "\n}\n"


def round_trip(instance: VrrpInstance, defs: Optional[GlobalDefs] = None) -> VrrpInstance:
    scripts = "".join(
        f"vrrp_script {quote(track.name)} {{\n    script true\n}}\n"
        for track in instance.track_scripts
    )
    scripts += "".join(
        f"track_file {quote(track.name)} {{\n    file /tmp/x\n}}\n"
        for track in instance.track_files
    )
    scripts += "".join(
        f"vrrp_track_process {quote(track.name)} {{\n    process x\n}}\n"
        for track in instance.track_processes
    )
    text = global_defs_text(defs or GlobalDefs()) + scripts + render_instance(instance)
    (again,) = loads(text, "rendered.conf").vrrp_instances
    return again


def assert_round_trip(instance: VrrpInstance, defs: Optional[GlobalDefs] = None) -> None:
    expected = plain(instance)
    expected["sync_group"] = None  # the sync group lives in another block
    assert plain(round_trip(instance, defs)) == expected


def corpus_instances():
    for path in CORPUS:
        try:
            config = load(path, host_checks=False)
        except ConfigError:
            continue  # samples using features lvs-agent refuses
        for instance in config.vrrp_instances:
            name = f"{os.path.basename(path)}:{instance.name}"
            yield pytest.param(instance, config.global_defs, id=name)


@pytest.mark.skipif(not CORPUS, reason="shared reference absent")
@pytest.mark.parametrize(("instance", "defs"), list(corpus_instances()))
def test_every_instance_of_the_samples_round_trips(instance, defs):
    assert_round_trip(instance, defs)


FULL = """
vrrp_script chk { script true }
vrrp_instance "VI 1" {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 120
    advert_int 3
    authentication {
        auth_type PASS
        auth_pass 'p#ss w!d'
    }
    unicast_src_ip 10.0.0.1
    unicast_peer {
        10.0.0.2
        10.0.0.3
    }
    check_unicast_src
    unicast_ttl 9
    virtual_ipaddress {
        10.0.0.100/24 brd 10.0.0.255 dev eth0 scope global label eth0:vip
        10.0.0.101 dev eth1 no_track
        10.0.0.102 peer 10.0.0.200
    }
    virtual_ipaddress_excluded {
        fd00::100/64
    }
    track_interface {
        eth1 weight -20 reverse
        eth2
    }
    track_script {
        chk weight 10
    }
    dont_track_primary
    notify_master "/usr/local/bin/notify master"
    notify_backup /bin/true nobody
    notify_fault /bin/true nobody nogroup
    notify_stop /bin/true
    notify "/bin/echo 'a b'" daemon:daemon
    garp_master_delay 2
    garp_master_repeat 3
    garp_master_refresh 60
    garp_master_refresh_repeat 2
    v3_checksum_as_v2
    accept
    lower_prio_no_advert false
    higher_prio_send_advert
    promote_secondaries
    down_timer_adverts 4
}
"""


def test_every_keyword_round_trips():
    (instance,) = parse(FULL).vrrp_instances
    assert instance.auth_pass == "p#ss w!d" and instance.name == "VI 1"
    assert (instance.notify.user.user, instance.notify.user.group) == ("daemon", "daemon")
    assert_round_trip(instance)


def test_v3_ipv6_with_fractional_interval_and_preempt_delay():
    (instance,) = parse(
        """
        vrrp_instance V6 {
            interface eth0
            virtual_router_id 7
            advert_int 0.25
            preempt_delay 2.5
            virtual_ipaddress {
                fe80::1/64
                2001:db8::1
            }
            no_accept
        }
        """
    ).vrrp_instances
    assert (instance.version, instance.family, instance.advert_int) == (3, 6, 0.25)
    text = render_instance(instance)
    assert "version 3" in text and "advert_int 0.25" in text and "preempt_delay 2.5" in text
    assert_round_trip(instance)


def test_defaults_are_left_out_but_state_and_priority_always_written():
    instance = VrrpInstance("VI_1", interface="eth0", virtual_router_id=1)
    instance.virtual_ipaddresses = [VirtualAddress(ipaddress.ip_interface("10.0.0.1"))]
    assert render_instance(instance) == (
        "vrrp_instance VI_1 {\n"
        "    state BACKUP\n"
        "    interface eth0\n"
        "    virtual_router_id 1\n"
        "    priority 100\n"
        "    virtual_ipaddress {\n"
        "        10.0.0.1\n"
        "    }\n"
        "}\n"
    )
    # an initial MASTER keeps the priority it was given (keepalived would make it 255)
    instance.state = "MASTER"
    assert round_trip(instance).priority == 100
    assert_round_trip(instance)


def test_track_weights():
    instance = VrrpInstance("VI_1", interface="eth0", virtual_router_id=1)
    instance.virtual_ipaddresses = [VirtualAddress(ipaddress.ip_interface("10.0.0.1"))]
    instance.track_interfaces = [TrackInterface("eth1", 0, True), TrackInterface("eth2", 5)]
    instance.track_scripts = [TrackScript("a"), TrackScript("b", 0), TrackScript("c", -3, True)]
    text = render_instance(instance)
    assert "eth1 weight 0 reverse" in text and "eth2 weight 5" in text
    assert "        a\n" in text and "b weight 0" in text and "c weight -3 reverse" in text
    assert_round_trip(instance)
    instance.track_files = [TrackScript("f"), TrackScript("g", -254, True)]
    instance.track_processes = [TrackScript("p", 254), TrackScript("q", 0)]
    text = render_instance(instance)
    assert "    track_file {\n        f\n        g weight -254 reverse\n    }" in text
    assert "    track_process {\n        p weight 254\n        q weight 0\n    }" in text
    assert_round_trip(instance)
    instance.track_scripts = [TrackScript("d", None, True)]
    with pytest.raises(ValueError, match="reverse needs a weight"):
        render_instance(instance)


def test_mask_secrets_hides_every_password_and_nothing_else():
    (instance,) = parse(FULL).vrrp_instances
    masked = mask_secrets(render_instance(instance))
    assert "p#ss" not in masked
    assert "        auth_pass ********\n" in masked
    assert "auth_type PASS" in masked


def words(line: str) -> list[str]:
    problems = []
    tokens = Lexer(Source(), problems.append).split_words(line, "t", 1)
    assert not problems
    return [token.text for token in tokens]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("eth0", "eth0"),
        ("a b", '"a b"'),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
        ("x#y", '"x#y"'),
        ("{", '"{"'),
        ("@high", '"@high"'),
        ("back\\slash", '"back\\\\slash"'),
    ],
)
def test_quote(word, expected):
    assert quote(word) == expected
    assert words(quote(word)) == [word]


@given(st.text(max_size=40).filter(lambda text: not set(text) & set(LINE_BREAKS)))
def test_any_word_reads_back_as_itself(word):
    assert words(f"keyword {quote(word)} next") == ["keyword", word, "next"]


def test_a_unicode_line_separator_cannot_be_written():
    with pytest.raises(ValueError, match="line break"):
        quote("a\u2028b")


def test_parse_entry_reads_one_line_of_a_block():
    vip = parse_entry("virtual_ipaddress", "10.0.0.1/24 dev eth0 label eth0:1")
    assert (str(vip.address), vip.dev, vip.label) == ("10.0.0.1/24", "eth0", "eth0:1")
    assert parse_entry("unicast_peer", "10.0.0.2") == "10.0.0.2"
    track = parse_entry("track_script", "chk weight -5 reverse")
    assert (track.name, track.weight, track.reverse) == ("chk", -5, True)
    with pytest.raises(ConfigError) as raised:
        parse_entry("virtual_ipaddress", "10.0.0.1 bogus x", "vips[0]")
    assert [str(p) for p in raised.value.problems] == [
        "vips[0]:1: warning: Unknown configuration entry 'bogus' for ip address - ignoring",
        "vips[0]:1: warning: Unknown configuration entry 'x' for ip address - ignoring",
    ]
    with pytest.raises(ConfigError, match="expected one entry"):
        parse_entry("track_interface", "eth0 {")
    with pytest.raises(ConfigError, match=r"must be between \[-253\.\.253\]"):
        parse_entry("track_interface", "eth0 weight 300")
