"""Values keepalived reports and then ignores or corrects: the same warning, in its words, at
the line, and the value keepalived runs with (the corpus covers the common cases)."""

from __future__ import annotations

import pytest
from config_helpers import parse, warnings_of

SERVER = (
    "virtual_server 10.0.0.1 80 {{\n lvs_sched rr\n lvs_method DR\n protocol TCP\n{body}\n"
    " real_server 10.0.0.9 80 {{\n }}\n}}\n"
)
REAL = " real_server 10.0.0.2 80 {{\n{body}\n }}"
CHECK = "  TCP_CHECK {{\n{body}\n  }}"


def server(*lines: str) -> str:
    return SERVER.format(body="\n".join(lines))


def real(*lines: str) -> str:
    return REAL.format(body="\n".join(lines))


def check(*lines: str) -> str:
    return CHECK.format(body="\n".join(lines))


@pytest.mark.parametrize(
    ("text", "warning", "value"),
    [
        (server(" hysteresis -1"), "5: Hysteresis -1 must be in [0, 4294967295] - ignoring",
         lambda c: c.virtual_servers[0].hysteresis == 0),
        (server(" delay_loop 0"), "5: virtual server delay loop '0' invalid - ignoring",
         lambda c: c.virtual_servers[0].delay_loop == 60.0),
        (server(" retry 0", real(check())), "5: retry value invalid - 0",
         lambda c: c.virtual_servers[0].real_servers[0].checkers[0].retry == 1),
        (server(real("  connect_timeout none", check())),
         "6: real server connect_timeout none invalid - ignoring",
         lambda c: c.virtual_servers[0].real_servers[0].checkers[0].connect_timeout == 5.0),
        (server(real(check("   delay_before_retry -2"))),
         "7: Invalid delay_before_retry connection value '-2'",
         lambda c: c.virtual_servers[0].real_servers[0].checkers[0].delay_before_retry == 1.0),
        (server(real("  delay_loop x", check())),
         "6: real server delay_loop 'x' invalid - ignoring",
         lambda c: c.virtual_servers[0].real_servers[0].checkers[0].delay_loop == 60.0),
        (server(" hashed"), "5: hashed only applies to sh scheduler - ignoring",
         lambda c: c.virtual_servers[0].scheduler_flags == []),
        (server(" sorry_server_lvs_method DR"),
         "5: sorry_server forwarding used without sorry_server",
         lambda c: c.virtual_servers[0].sorry_server is None),
        (server(real("  lvs_method Dr")),
         "6: PARSER : unknown [Dr] routing method for real server.",
         lambda c: c.virtual_servers[0].real_servers[0].lvs_method is None),
        ("vrrp_instance V {\n interface eth0\n virtual_router_id 1\n garp_master_delay -1\n"
         " virtual_ipaddress {\n  10.0.0.1\n }\n}\n",
         "4: (V): garp_master_delay '-1' invalid - ignoring",
         lambda c: c.vrrp_instances[0].garp_master_delay is None),
        (server(real("  alpha maybe")), "6: Invalid alpha parameter maybe",
         lambda c: c.virtual_servers[0].real_servers[0].alpha is None),
        (server(" omega off"),
         "5: omega off: keepalived ignores the value on a virtual_server and turns omega on",
         lambda c: c.virtual_servers[0].omega is True),
        ("global_defs {\n vrrp_version 4\n vrrp_garp_interval 0\n}\n" + server(),
         "2: VRRP Error: Version must be either 2 or 3",
         lambda c: (c.global_defs.vrrp_version, c.global_defs.vrrp_garp_interval) == (2, 0.0)),
        ("global_defs {\n vrrp_garp_interval 0\n}\n" + server(),
         "2: vrrp_garp_interval '0' is invalid", lambda c: c.global_defs.vrrp_garp_interval == 0.0),
        ("vrrp_instance V {\n interface eth0\n virtual_router_id 1\n version 4\n"
         " virtual_ipaddress {\n  10.0.0.1\n }\n}\n",
         "4: (V): Version must be either 2 or 3", lambda c: c.vrrp_instances[0].version == 2),
        (server(real("  HTTP_GET {\n  }")),
         "6: HTTP/SSL_GET checker has no urls specified - ignoring",
         lambda c: c.virtual_servers[0].real_servers[0].checkers == ()),
        (server(real("  HTTP_GET {\n   url {\n    path /\n    status_code 200 99 300-250\n   }\n"
                     "   http_protocol 2\n   connect_port 0\n   bindto 10.0.0.999\n  }")),
         "9: Invalid HTTP_GET status code '99'",
         lambda c: c.virtual_servers[0].real_servers[0].checkers[0].urls[0].status_codes
         == [(200, 200)]),
        ("vrrp_script chk {\n script /bin/true\n weight 10 reversed\n}\n",
         "3: vrrp_script chk unknown weight option reversed",
         lambda c: (c.vrrp_scripts["chk"].weight, c.vrrp_scripts["chk"].weight_reverse)
         == (10, False)),
    ],
)  # fmt: skip
def test_keepalived_ignores_the_value_with_its_warning(text, warning, value):
    config = parse(text)
    assert warning in warnings_of(config)
    assert value(config)


def test_a_granularity_makes_the_service_persistent_as_in_keepalived():
    config = parse(server(" persistence_granularity 255.255.255.0"))
    assert config.virtual_servers[0].persistence_timeout == 360


def test_a_group_of_addresses_without_protocol_is_udp_and_a_fwmark_group_is_left_alone():
    groups = (
        "virtual_server_group ADDR {\n 10.0.0.1 80\n}\n"
        "virtual_server_group MARK {\n fwmark 3\n}\n"
        "virtual_server group ADDR {\n lvs_sched rr\n lvs_method DR\n"
        " real_server 10.0.0.9 80 {\n }\n}\n"
        "virtual_server group MARK {\n lvs_sched rr\n lvs_method DR\n"
        " real_server 10.0.0.9 80 {\n }\n}\n"
    )
    config = parse(groups)
    assert [s.protocol for s in config.virtual_servers] == ["UDP", "TCP"]
    assert "7: virtual server [ADDR]: no protocol set - defaulting to UDP" in warnings_of(config)


def test_global_tracking_is_deprecated_sync_group_tracking_weight():
    text = (
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n  10.0.0.1\n }\n}\n"
        "vrrp_sync_group G {\n group {\n  A\n }\n global_tracking\n}\n"
    )
    config = parse(text)
    assert config.sync_groups[0].tracking_weight
    assert (
        "12: (G) global_tracking is deprecated. Use track_interface/script/file on the sync group"
        in warnings_of(config)
    )
