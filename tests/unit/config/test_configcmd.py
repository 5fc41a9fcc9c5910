"""check-config and dump-config as the roles and operators run them."""

from __future__ import annotations

import json

from lvsagent.cli import main

GOOD = """
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    authentication {
        auth_type PASS
        auth_pass hunter2
    }
    virtual_ipaddress {
        10.0.0.100
        10.0.0.101
    }
}
virtual_server 10.0.0.100 80 {
    lb_algo rr
    lvs_method NAT
    protocol TCP
    real_server 10.0.0.1 80 {
    }
    real_server 10.0.0.2 80 {
    }
}
"""


def write(tmp_path, text):
    path = tmp_path / "keepalived.conf"
    path.write_text(text)
    return str(path)


def test_check_config_success_prints_summary_and_warnings(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert main(["check-config", "--no-host-checks", path]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{path}:16: warning: lb_algo is deprecated, use lvs_sched",
        f"{path}: configuration OK: 1 VRRP instance(s), 2 VIP(s), 1 virtual server(s), "
        "2 real server(s)",
    ]


def test_check_config_strict_turns_warnings_into_failure(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert main(["check-config", "--strict", "--no-host-checks", path]) == 1
    err = capsys.readouterr().err
    assert f"{path}:16: warning: lb_algo is deprecated, use lvs_sched" in err


def test_check_config_errors_exit_1_with_every_problem(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("virtual_router_id 51", "virtual_router_id 0\n bogus 1"))
    assert main(["check-config", "--no-host-checks", path]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{path}:5: virtual_router_id: 0 is out of range 1-255",
        f"{path}:6: unknown keyword 'bogus' in vrrp_instance",
        f"{path}:17: warning: lb_algo is deprecated, use lvs_sched",
    ]


def test_dump_config_is_json_with_secrets_masked(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert main(["dump-config", "--json", path]) == 0
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err
    data = json.loads(captured.out)
    (instance,) = data["vrrp_instances"]
    assert instance["auth_pass"] == "********"
    assert [vip["address"] for vip in instance["virtual_ipaddresses"]] == [
        "10.0.0.100/32",
        "10.0.0.101/32",
    ]
    (server,) = data["virtual_servers"]
    assert (server["lvs_sched"], server["lvs_method"], len(server["real_servers"])) == (
        "rr",
        "NAT",
        2,
    )
    assert data["warnings"] == [f"{path}:16: warning: lb_algo is deprecated, use lvs_sched"]


def test_dump_config_of_a_bad_file_fails(tmp_path, capsys):
    path = write(tmp_path, "vrrp_instance {\n")
    assert main(["dump-config", path]) == 1
    assert capsys.readouterr().out == ""


def test_dump_config_shows_every_checker_kind_with_bytes_as_hex(tmp_path, capsys):
    path = write(
        tmp_path,
        """
virtual_server 10.0.0.1 53 {
    lvs_sched rr
    protocol UDP
    real_server 10.0.1.1 53 {
        UDP_CHECK { payload 01 ff\n require_reply 0X }
        DNS_CHECK { type A\n name example.test }
        PING_CHECK { }
        SMTP_CHECK { helo_name lb.example.test }
    }
}
""",
    )
    assert main(["dump-config", path]) == 0
    (real,) = json.loads(capsys.readouterr().out)["virtual_servers"][0]["real_servers"]
    udp, dns, ping, smtp = real["checkers"]
    assert (udp["kind"], udp["payload"], udp["reply_data"], udp["reply_mask"]) == (
        "UDP_CHECK",
        "01ff",
        "00",
        "0f",
    )
    assert (dns["type"], dns["name"], ping["kind"], smtp["helo_name"]) == (
        "A",
        "example.test",
        "PING_CHECK",
        "lb.example.test",
    )
