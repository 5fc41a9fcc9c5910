"""roles/lvs_director from inventory to keepalived syntax: the `render` entry point run by
ansible-playbook on the controller for several inventories, each result judged by the agent's
own `check-config`; bad variables stopped by the validation before anything is written; the
rollout order of site.yml; the platform check of both roles."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed.ansible import REPO, ansible_command, ansible_env

DIRECTORS = {
    "lvs-director1": {"lvs_director_address": "10.0.0.2", "lvs_director_address6": "fd00::2"},
    "lvs-director2": {"lvs_director_address": "10.0.0.3", "lvs_director_address6": "fd00::3"},
}
REALSERVERS = {
    "r1": {"lvs_realserver_address": "10.0.0.11", "lvs_realserver_address6": "fd00::11"},
    "r2": {"lvs_realserver_address": "10.0.0.12", "lvs_realserver_address6": "fd00::12"},
}

RENDER_PLAY = """
- name: Render
  hosts: lvs_directors
  gather_facts: false
  tasks:
    - name: Render
      ansible.builtin.import_role:
        name: lvs.ha.lvs_director
        tasks_from: render
"""

# A site using most of what the role can express (each key is checked by check-config).
RICH = yaml.safe_load((Path(__file__).parent / "director_role" / "rich.yml").read_text())


def inventory(tmp_path: Path, group_vars: dict) -> Path:
    path = tmp_path / "hosts.yml"
    data = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "children": {
                "lvs_directors": {
                    "hosts": DIRECTORS,
                    "vars": {"lvs_director_interface": "eth0", **group_vars},
                },
                "lvs_realservers": {"hosts": REALSERVERS},
            },
        }
    }
    path.write_text(yaml.safe_dump(data))
    return path


def playbook(tmp_path: Path, text: str, group_vars: dict, *extra: str, per_host=False):
    """ansible-playbook of the play `text` on the two directors of a local inventory (with
    `per_host`: no skipped host shown, results as one line of JSON each)."""
    play = tmp_path / "play.yml"
    play.write_text(text)
    hosts = inventory(tmp_path, group_vars)
    argv = [ansible_command("ansible-playbook"), "-i", str(hosts), *extra, str(play)]
    quiet = {
        "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "false",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "ANSIBLE_CALLBACK_FORMAT_PRETTY": "false",
    }
    env = {**ansible_env(), **(quiet if per_host else {})}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)


def render(tmp_path: Path, group_vars: dict) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out"
    out.mkdir()
    result = playbook(tmp_path, RENDER_PLAY, group_vars, "-e", f"lvs_director_render_dir={out}")
    return result, out


def check_config(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins" / "module_utils")}
    argv = [sys.executable, "-m", "lvsagent", "check-config", "--no-host-checks", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def rendered(tmp_path: Path, group_vars: dict) -> dict[str, str]:
    """Each director's configuration, after check-config has accepted it."""
    result, out = render(tmp_path, group_vars)
    assert result.returncode == 0, result.stdout + result.stderr
    texts = {}
    for host in DIRECTORS:
        checked = check_config(out / f"{host}.conf")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert " error" not in checked.stdout + checked.stderr
        texts[host] = (out / f"{host}.conf").read_text()
    return texts


def instance_block(text: str, name: str) -> str:
    """The body of `vrrp_instance NAME { ... }` in a rendered configuration."""
    return text.split(f"vrrp_instance {name} {{\n", 1)[1].split("\n}\n", 1)[0]


def test_the_variables_of_one_instance_still_make_the_seed_pair(tmp_path):
    """The single-instance variables of earlier versions, as the seed's pair used them."""
    legacy = {
        "lvs_director_vips": ["10.251.51.199"],
        "lvs_director_virtual_router_id": 51,
        "lvs_director_advert_int": 1,
        "lvs_director_auth_pass": "1111",
        "lvs_director_virtual_servers": [{"port": 80, "check": {"type": "TCP_CHECK"}}],
    }
    texts = rendered(tmp_path, legacy)
    assert "state MASTER" in texts["lvs-director1"] and "priority 100" in texts["lvs-director1"]
    assert "state BACKUP" in texts["lvs-director2"] and "priority 50" in texts["lvs-director2"]
    for text in texts.values():
        assert "auth_pass 1111" in text
        assert "virtual_server 10.251.51.199 80 {" in text
        assert "real_server 10.0.0.11 80 {" in text and "real_server 10.0.0.12 80 {" in text
        assert "include /etc/lvs-agent/conf.d/*.conf" in text
        assert "metrics_listen" not in text  # off unless asked for
        assert "lvs_data_plane" not in text  # IPVS, as keepalived


def test_metrics_listen_is_each_directors_own_address(tmp_path):
    texts = rendered(
        tmp_path, {**RICH, "lvs_director_metrics_listen": "{{ lvs_director_address }}:9650"}
    )
    for host, text in texts.items():
        address = DIRECTORS[host]["lvs_director_address"]
        assert f"global_defs {{\n    router_id {host}\n" in text
        assert f"    metrics_listen {address}:9650\n" in text.split("}", 1)[0]


def test_the_nftables_data_plane_reaches_global_defs(tmp_path):
    nat = [{"address": "10.251.51.199", "port": 80, "forwarding": "NAT"}]
    chosen = {
        "lvs_director_vips": ["10.251.51.199"],
        "lvs_director_virtual_servers": nat,
        "lvs_director_data_plane": "nftables",
    }
    for text in rendered(tmp_path, chosen).values():
        assert "    lvs_data_plane nftables\n" in text.split("}", 1)[0]


def test_the_lab_inventory_renders(tmp_path):
    lab = {}
    for name in ("all", "lvs_directors"):
        lab.update(yaml.safe_load((REPO / f"inventory/lab/group_vars/{name}.yml").read_text()))
    texts = rendered(tmp_path, lab)
    one, two = texts["lvs-director1"], texts["lvs-director2"]
    assert "vrrp_instance VI_1 {\n    state MASTER" in one
    assert "vrrp_instance VI_2 {\n    state MASTER" in two
    assert "unicast_src_ip 10.0.0.2\n    unicast_peer {\n        10.0.0.3\n" in one
    assert "track_script {\n        chk_lab_flag\n" in two
    assert "    metrics_listen 10.0.0.2:9650\n" in one  # scraped by the lab's Prometheus
    # the IPv6 instance: VRRP version 3, adverts from the link-local address to the other
    # director's IPv6 address; its DR service on the real servers' IPv6 addresses
    vi6 = instance_block(one, "VI_6")
    assert vi6.startswith("    state MASTER\n") and "    version 3\n" in vi6
    assert "unicast_src_ip" not in vi6 and "    unicast_peer {\n        fd00::3\n" in vi6
    service6 = one.split("virtual_server fd00:251:51::199 80 {\n", 1)[1].split("\n}\n", 1)[0]
    assert "real_server fd00::11 80 {" in service6 and "real_server fd00::12 80 {" in service6
    assert "lvs_method DR" in service6


def test_a_rich_site_renders_to_configurations_the_agent_accepts(tmp_path):
    texts = rendered(tmp_path, RICH)
    one, two = texts["lvs-director1"], texts["lvs-director2"]
    # unicast peers default to the other director, in the instance's address family
    assert "unicast_src_ip 10.0.0.2\n    unicast_peer {\n        10.0.0.3\n" in one
    # IPv6 adverts leave from the link-local address (no unicast_src_ip), as keepalived's do
    vi6 = instance_block(two, "VI_6")
    assert "unicast_src_ip" not in vi6 and "    unicast_peer {\n        fd00::2\n" in vi6
    # per-host priorities and masters; preempt_delay needs an initial BACKUP
    assert "virtual_router_id 52\n    priority 110" in two
    assert "virtual_router_id 52\n    priority 90" in one
    assert two.count("state MASTER") == 1 and "state MASTER" not in one
    assert "10.0.0.100/24 dev eth0 scope global label eth0:1" in one
    assert 'notify_master "/etc/lvs-agent/scripts/check-web master" nobody nogroup' in one
    for checker in ("HTTP_GET", "SSL_GET", "TCP_CHECK", "MISC_CHECK", "PING_CHECK", "UDP_CHECK",
                    "DNS_CHECK", "SMTP_CHECK"):  # fmt: skip
        assert f"        {checker} {{" in one, checker
    assert "status_code 200 301-302" in one
    assert "digest 9b3a0c85a887a256d6939da88aabd8cd" in one
    assert "virtual_server fwmark 5 {" in one and "virtual_server group web {" in one
    assert "real_server 10.0.0.33 443 {\n        weight 100\n    }" in one


def test_the_include_directory_takes_a_vrrp_instance_module_file(tmp_path):
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "vrrp_instance_VI_9.conf").write_text(
        "vrrp_instance VI_9 {\n    interface eth0\n    virtual_router_id 9\n    priority 100\n"
        "    virtual_ipaddress {\n        10.0.9.1\n    }\n}\n"
    )
    group_vars = {"lvs_director_vips": ["10.0.0.100"], "lvs_director_include_dir": str(conf_d)}
    texts = rendered(tmp_path, group_vars)
    checked = check_config(tmp_path / "out" / "lvs-director1.conf")
    assert "2 VRRP instance(s)" in checked.stdout, checked.stdout
    assert f"include {conf_d}/*.conf" in texts["lvs-director1"]


def refused(tmp_path: Path, group_vars: dict) -> str:
    """The output of a render that must fail in validation, with nothing written."""
    result, out = render(tmp_path, group_vars)
    assert result.returncode != 0, result.stdout
    assert list(out.iterdir()) == []
    return result.stdout + result.stderr


def with_first_service(**changes) -> dict:
    services = json.loads(json.dumps(RICH["lvs_director_virtual_servers"]))
    services[0].update(changes)
    return {**RICH, "lvs_director_virtual_servers": services}


def with_first_instance(**changes) -> dict:
    instances = json.loads(json.dumps(RICH["lvs_director_vrrp_instances"]))
    instances[0].update(changes)
    return {**RICH, "lvs_director_vrrp_instances": instances}


@pytest.mark.parametrize(
    ("group_vars", "expected"),
    [
        (with_first_service(sheduler="wrr"), "sheduler"),
        (with_first_service(check={"type": "HTTP_GETT"}), "HTTP_GETT"),
        (with_first_service(scheduler="rrr"), "rrr"),
        (with_first_instance(virtual_router_id=300),
         "lvs_director_vrrp_instances[0] (VI_4): virtual_router_id 300 is not within 1-255"),
        (with_first_instance(priorities={"lvs-director1": 0}),
         "lvs_director_vrrp_instances[0] (VI_4): priority 0 (lvs-director1) is not within 1-255"),
        (with_first_instance(track_script=[{"name": "chk_nope"}]),
         "track_script chk_nope is not defined in lvs_director_vrrp_scripts"),
        (with_first_instance(vips=[{"adress": "10.0.0.1"}]), "adress"),
        ({"lvs_director_vrrp_instances": [{"name": "VI_1", "virtual_router_id": 1}]}, "vips"),
        ({}, "lvs_director_vips is not set"),
        ({**RICH, "lvs_director_metrics_listen": "localhost:9650"},
         "lvs_director_metrics_listen: localhost:9650 is not ADDRESS:PORT or [IPV6]:PORT"),
        ({**RICH, "lvs_director_metrics_listen": "fd00::2:9650"}, "fd00::2:9650 is not ADDRESS"),
        ({**RICH, "lvs_director_data_plane": "nftable"}, "lvs_director_data_plane"),
    ],
)  # fmt: skip
def test_a_bad_variable_fails_validation_naming_it(tmp_path, group_vars, expected):
    output = refused(tmp_path, group_vars)
    assert expected in output, output


def test_a_long_password_is_refused_without_showing_it(tmp_path):
    output = refused(tmp_path, with_first_instance(auth_pass="secret-99"))
    assert "lvs_director_vrrp_instances[0] (VI_4): auth_pass is longer than 8 characters" in output
    assert "secret-99" not in output


def test_site_rolls_out_backups_before_the_master(tmp_path):
    """site.yml's order, played with a stand-in role: the director owning VI_1 comes last."""
    plays = yaml.safe_load((REPO / "site.yml").read_text())
    # The first play keeps only its ranking of the directors (the rest prepares the hosts).
    ranking = "Learn which instances this director must own"
    plays[0]["tasks"] = [task for task in plays[0]["tasks"] if task["name"] == ranking]
    assert plays[0]["tasks"], f"site.yml's first play has no task {ranking!r}"
    plays[0]["gather_facts"] = plays[0]["become"] = False
    plays[2]["become"] = False
    plays[2]["roles"] = []
    record = {"msg": "ROLLOUT {{ inventory_hostname }}"}
    plays[2]["tasks"] = [{"name": "Record", "ansible.builtin.debug": record}]
    one, two = "lvs-director1", "lvs-director2"
    for master, expected in ((one, [two, one]), (two, [one, two])):
        instance = {"name": "VI_1", "virtual_router_id": 1, "master": master}
        group_vars = {
            "lvs_director_vrrp_instances": [{**instance, "vips": [{"address": "10.0.0.1"}]}]
        }
        result = playbook(tmp_path, yaml.safe_dump(plays), group_vars)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        order = [line.split("ROLLOUT ")[1].strip('" ') for line in lines if "ROLLOUT " in line]
        assert order == expected, result.stdout


# A module that reports the facts it is given, as if gathered from a host of another platform
# (ansible-playbook finds modules in the `library` folder beside the playbook).
PLATFORM_FACTS_MODULE = """
from ansible.module_utils.basic import AnsibleModule

module = AnsibleModule(
    argument_spec={"facts": {"type": "dict", "required": True}}, supports_check_mode=True
)
module.exit_json(changed=False, ansible_facts=module.params["facts"])
"""


def platform_facts(distribution: str, version: str, python: str = "3.11.2") -> dict:
    major, minor = (int(part) for part in python.split(".")[:2])
    return {
        "distribution": distribution,
        "distribution_version": version,
        "distribution_major_version": version.split(".")[0],
        "os_family": "RedHat" if distribution in ("Rocky", "CentOS", "Fedora") else "Debian",
        "python": {"version": {"major": major, "minor": minor}},
        "python_version": python,
    }


def tasks_run(stdout: str) -> dict[str, list[tuple[str, str, dict]]]:
    """Per host, the tasks it ran: (task name, ok/changed/fatal, result), from the output of a
    `per_host` playbook run."""
    ran: dict[str, list[tuple[str, str, dict]]] = {}
    task = ""
    for line in stdout.splitlines():
        header = re.match(r"TASK \[(?:[^]]* : )?([^]]*)\]", line)
        outcome = re.match(r"(ok|changed|fatal): \[([^]]+)\](?:: FAILED!)?(?: => (.*))?$", line)
        if header:
            task = header.group(1)
        elif outcome:
            status, host, data = outcome.groups()
            ran.setdefault(host, []).append((task, status, json.loads(data) if data else {}))
    return ran


def with_platform(tmp_path: Path, plays: list, facts: dict) -> str:
    """`plays` as YAML, each starting with a task that sets the host's facts to `facts`."""
    (tmp_path / "library").mkdir(exist_ok=True)
    (tmp_path / "library" / "platform_facts.py").write_text(PLATFORM_FACTS_MODULE)
    fake = {"name": "Pretend to be another platform", "platform_facts": {"facts": facts}}
    for play in plays:
        play["gather_facts"] = play["become"] = False
        play["tasks"] = [fake, *play.get("tasks", [])]
    return yaml.safe_dump(plays)


@pytest.mark.parametrize(
    ("facts", "shown"),
    [
        (platform_facts("Rocky", "9.4"), "Rocky 9.4 with Python 3.11.2"),
        (platform_facts("Debian", "11.9"), "Debian 11.9 with Python 3.11.2"),
        (platform_facts("Ubuntu", "24.04"), "Ubuntu 24.04 with Python 3.11.2"),
        (platform_facts("Debian", "13.2", python="3.8.10"), "Debian 13.2 with Python 3.8.10"),
    ],
)
def test_site_stops_another_platform_before_any_change(tmp_path, facts, shown):
    """site.yml's first play (both roles), in check mode: every host fails at the platform
    check, the first task it runs after the argument validation, naming its OS and the
    supported ones."""
    plays = yaml.safe_load((REPO / "site.yml").read_text())[:1]
    text = with_platform(tmp_path, plays, facts)
    realserver_vars = json.dumps({"lvs_realserver_vips": ["10.0.0.1"]})
    result = playbook(tmp_path, text, RICH, "--check", "-e", realserver_vars, per_host=True)
    assert result.returncode != 0, result.stdout + result.stderr
    ran = tasks_run(result.stdout)
    supported = "supports Debian 12, Debian 13 with Python 3.9 or newer"
    for host, role in [*((name, "lvs_director") for name in DIRECTORS),
                       *((name, "lvs_realserver") for name in REALSERVERS)]:  # fmt: skip
        names = [name for name, _status, _result in ran[host]]
        assert names[0] == "Pretend to be another platform", names
        allowed = ("Validating arguments", "Check the platform")
        assert all(name.startswith(allowed) for name in names[1:]), names
        last_name, last_status, last = ran[host][-1]
        assert (last_name, last_status) == ("Check the platform", "fatal"), ran[host]
        assert last["msg"] == f"lvs.ha.{role} {supported}; this host runs {shown}.", last["msg"]
        assert all(status == "ok" for _name, status, _result in ran[host][:-1]), ran[host]


@pytest.mark.parametrize(
    "facts", [platform_facts("Debian", "12.8"), platform_facts("Debian", "13.2", "3.13.5")]
)
def test_the_platform_check_accepts_debian_12_and_13(tmp_path, facts):
    check = {
        "name": "Check",
        "ansible.builtin.import_role": {"name": "lvs.ha.lvs_director", "tasks_from": "platform"},
    }
    plays = [{"name": "Platform", "hosts": "lvs_directors", "tasks": [check]}]
    result = playbook(tmp_path, with_platform(tmp_path, plays, facts), {}, per_host=True)
    assert result.returncode == 0, result.stdout + result.stderr
    ran = tasks_run(result.stdout)
    for host in DIRECTORS:
        assert [(name, status) for name, status, _result in ran[host]] == [
            ("Pretend to be another platform", "ok"),
            ("Check the platform", "ok"),
        ]
