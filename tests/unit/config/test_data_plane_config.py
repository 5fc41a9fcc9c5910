"""global_defs { lvs_data_plane ipvs|nftables }: lvs-agent's own keyword, default ipvs; with
nftables, what that data plane does not do yet is refused at file:line, never run otherwise."""

from __future__ import annotations

from config_helpers import errors_of, parse

from lvsagent.config.keywords import AGENT_KEYWORDS, KEEPALIVED_KEYWORDS
from lvsagent.config.model import DATA_PLANES


def conf(plane: str = "", *, globals_extra: str = "", vs: str = "", rs: str = "") -> str:
    plane_line = f" lvs_data_plane {plane}\n" if plane else ""
    return (
        f"global_defs {{\n{plane_line}{globals_extra}}}\n"
        "virtual_server 10.0.0.100 80 {\n"
        f" lvs_sched wrr\n lvs_method NAT\n protocol TCP\n{vs}"
        f" real_server 10.0.1.2 8080 {{\n  weight 2\n{rs}  TCP_CHECK {{\n  }}\n }}\n}}\n"
    )


def test_ipvs_is_the_default_and_nftables_is_read():
    assert DATA_PLANES[0] == "ipvs"
    assert parse(conf()).global_defs.lvs_data_plane == "ipvs"
    assert parse(conf("ipvs")).global_defs.lvs_data_plane == "ipvs"
    assert parse(conf("nftables")).global_defs.lvs_data_plane == "nftables"


def test_an_unknown_data_plane_is_refused_naming_the_choices():
    assert errors_of(conf("ebpf")) == ["2: lvs_data_plane: 'ebpf' is not one of ipvs|nftables"]


def test_what_nftables_does_not_do_yet_is_refused_where_the_server_is():
    errors = errors_of(
        conf(
            "nftables",
            vs=" persistence_granularity 255.255.255.0\n lvs_method TUN\n",
            rs="  uthreshold 9\n",
        )
    )
    prefix = "4: virtual server [10.0.0.100]:80: "
    suffix = " is not available with lvs_data_plane nftables"
    assert errors == [
        f"{prefix}persistence_granularity{suffix}",
        f"{prefix}lvs_method TUN (use NAT|DR){suffix}",
        f"{prefix}uthreshold/lthreshold{suffix}",
    ]


def test_persistence_is_taken_with_nat_and_refused_with_dr():
    nat = parse(conf("nftables", vs=" persistence_timeout 60\n"))
    assert nat.virtual_servers[0].persistence_timeout == 60
    dr = conf("nftables", vs=" persistence_timeout 60\n").replace("NAT", "DR")
    dr = dr.replace("wrr", "sh").replace(" 8080 ", " 80 ")
    assert errors_of(dr) == [
        "4: virtual server [10.0.0.100]:80: persistence_timeout with lvs_method DR "
        "is not available with lvs_data_plane nftables"
    ]


def test_the_default_scheduler_is_named_when_refused():
    text = conf("nftables").replace(" lvs_sched wrr\n", "")
    assert errors_of(text) == [
        "4: virtual server [10.0.0.100]:80: lvs_sched wlc (use rr|wrr|sh|mh) is not available "
        "with lvs_data_plane nftables"
    ]


def test_hashing_schedulers_and_dr_are_taken():
    assert parse(conf("nftables").replace("wrr", "sh")).virtual_servers[0].lvs_sched == "sh"
    dr = conf("nftables").replace("wrr", "mh").replace("NAT", "DR").replace(" 8080 ", " 80 ")
    assert parse(dr).virtual_servers[0].lvs_method == "DR"


def test_dr_needs_a_hashing_scheduler_the_same_port_and_no_nat_beside_it():
    dr = conf("nftables", vs=" sorry_server 10.0.1.9 80\n", rs="  lvs_method NAT\n")
    dr = dr.replace("NAT\n protocol", "DR\n protocol")  # the sorry server's
    assert errors_of(dr) == [
        "4: virtual server [10.0.0.100]:80: lvs_method DR and NAT in one virtual server "
        "is not available with lvs_data_plane nftables",
        "4: virtual server [10.0.0.100]:80: lvs_method DR with lvs_sched wrr (use sh|mh: "
        "nothing tracks its connections) is not available with lvs_data_plane nftables",
    ]
    ported = conf("nftables", vs=" sorry_server 10.0.1.9 81\n").replace("wrr", "sh")
    assert errors_of(ported.replace("NAT", "DR")) == [
        "8: virtual server [10.0.0.100]:80: real server 10.0.1.9 port 81: lvs_method DR "
        "keeps the virtual server's port 80 with lvs_data_plane nftables",  # the sorry server
        "9: virtual server [10.0.0.100]:80: real server 10.0.1.2 port 8080: lvs_method DR "
        "keeps the virtual server's port 80 with lvs_data_plane nftables",
    ]


def test_ipvs_only_globals_are_refused_with_nftables():
    errors = errors_of(
        conf("nftables", globals_extra=" lvs_sync_daemon eth0\n lvs_timeouts tcp 60\n lvs_flush\n")
    )
    assert errors == [  # lvs_timeouts and lvs_flush at global_defs' line
        "1: lvs_timeouts is IPVS's: not with lvs_data_plane nftables",
        "1: lvs_flush is IPVS's: not with lvs_data_plane nftables",
        "3: lvs_sync_daemon is IPVS's: not with lvs_data_plane nftables",
    ]


def test_the_same_settings_stay_accepted_with_ipvs():
    config = parse(conf("ipvs", vs=" persistence_timeout 60\n lvs_method DR\n"))
    assert config.virtual_servers[0].persistence_timeout == 60


def test_lvs_data_plane_is_an_agent_keyword_read_only_in_global_defs():
    assert AGENT_KEYWORDS["lvs_data_plane"] == "global_defs"
    assert not set(AGENT_KEYWORDS) & KEEPALIVED_KEYWORDS
    text = conf(vs=" lvs_data_plane nftables\n")
    assert errors_of(text) == [
        "7: lvs_data_plane is not valid in virtual_server: lvs-agent reads it in global_defs"
    ]
