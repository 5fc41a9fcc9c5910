"""lvs.ha.vrrp_instance in-process: options -> file, validation before writing, check mode,
diff with the password masked, absent, and the conversation with a (stand-in) running agent
over a real unix socket. The real agent is exercised in tests/integration/netns."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading

import pytest
from ansible.module_utils.testing import patch_module_args

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = subprocess.check_output([os.path.join(REPO, "tools", "collection-path")], text=True)
if COLLECTIONS.strip() not in sys.path:
    sys.path.insert(0, COLLECTIONS.strip())

PREFIX = "ansible_collections.lvs.ha.plugins"
module = importlib.import_module(f"{PREFIX}.modules.vrrp_instance")
config = importlib.import_module(f"{PREFIX}.module_utils.lvsagent.config")
render = importlib.import_module(f"{PREFIX}.module_utils.lvsagent.config.render")
dropin = importlib.import_module(f"{PREFIX}.module_utils.lvsagent.config.dropin")
files = importlib.import_module(f"{PREFIX}.module_utils.lvsagent.files")
control = importlib.import_module(f"{PREFIX}.module_utils.lvsagent.control")

MAIN = """global_defs {
    router_id unit
}
include conf.d/*.conf
"""


@pytest.fixture
def paths(tmp_path):
    main = tmp_path / "lvs-agent.conf"
    main.write_text(MAIN)
    (tmp_path / "conf.d").mkdir()
    return {
        "main_config": str(main),
        "config_dir": str(tmp_path / "conf.d"),
        "control_socket": str(tmp_path / "control.sock"),
    }


@pytest.fixture
def file_of(paths):
    return os.path.join(paths["config_dir"], "vrrp_instance_VI_1.conf")


@pytest.fixture
def run(paths, capsys):
    """run(args, check=False) -> (failed, result) of one module run."""

    def run_module(args, check=False):
        args = {
            "name": "VI_1",
            "interface": "lo",
            "virtual_router_id": 51,
            "virtual_ipaddresses": ["10.0.0.100/24"],
            **paths,
            **args,
            "_ansible_check_mode": check,
            "_ansible_diff": True,
        }
        with patch_module_args(args), pytest.raises(SystemExit) as exited:
            module.main()
        result = json.loads(capsys.readouterr().out)
        assert bool(exited.value.code) == bool(result.get("failed"))
        return result

    return run_module


# -- options -> the file --------------------------------------------------------------------


def test_present_writes_a_0600_file_the_agent_reads_back_as_the_options(run, file_of):
    result = run({"priority": 150, "advert_int": 2, "auth_pass": "s3cret", "nopreempt": True})
    assert result["changed"] is True and result["file"] == file_of
    assert stat.S_IMODE(os.stat(file_of).st_mode) == 0o600
    text = files.read(file_of)
    assert text.startswith(dropin.HEADER)
    (loaded,) = config.loads(text, file_of).vrrp_instances
    assert (loaded.name, loaded.interface, loaded.virtual_router_id) == ("VI_1", "lo", 51)
    assert (loaded.priority, loaded.advert_int, loaded.nopreempt) == (150, 2.0, True)
    assert (loaded.auth_type, loaded.auth_pass) == ("PASS", "s3cret")
    assert result["instance"]["priority"] == 150 and "location" not in result["instance"]
    assert result["instance"]["auth_pass"] == "********"
    assert result["instance"]["virtual_ipaddresses"][0]["address"] == "10.0.0.100/24"
    assert result["reloaded"] is False and result["live"] is None


def test_second_run_is_unchanged(run, file_of):
    args = {"virtual_ipaddresses": ["10.0.0.100/24", {"address": "10.0.0.101", "dev": "lo"}]}
    assert run(args)["changed"] is True
    again = run(args)
    assert again["changed"] is False
    assert again["diff"][0]["before"] == again["diff"][0]["after"]


def test_a_wrong_file_mode_is_repaired_and_shown_in_the_diff(run, file_of):
    first = run({})
    assert first["diff"][1] == {
        "before": {"path": file_of, "state": "absent"},
        "after": {"path": file_of, "state": "file", "mode": "0600"},
    }
    os.chmod(file_of, 0o644)
    repaired = run({})
    assert repaired["changed"] is True
    assert stat.S_IMODE(os.stat(file_of).st_mode) == 0o600
    assert repaired["diff"][0]["before"] == repaired["diff"][0]["after"]
    assert repaired["diff"][1]["before"]["mode"] == "0644"
    assert repaired["diff"][1]["after"]["mode"] == "0600"
    assert run({})["diff"][1]["before"] == run({})["diff"][1]["after"]


def test_a_rewritten_file_keeps_its_owner_and_group(run, file_of):
    """Runs as root, as the module does (giving a file away needs it)."""
    run({})
    os.chown(file_of, 65534, 65534)
    assert run({"priority": 120})["changed"] is True
    written = os.stat(file_of)
    assert (written.st_uid, written.st_gid) == (65534, 65534)


def test_a_rewritten_file_keeps_its_selinux_context(run, file_of, monkeypatch):
    basic = importlib.import_module("ansible.module_utils.basic")
    contexts = {}
    monkeypatch.setattr(
        basic.AnsibleModule, "selinux_default_context", lambda self, path: ["default"]
    )
    monkeypatch.setattr(basic.AnsibleModule, "selinux_context", lambda self, path: ["kept"])
    monkeypatch.setattr(
        basic.AnsibleModule,
        "set_context_if_different",
        lambda self, path, context, changed: contexts.setdefault(path, []).append(context),
    )
    run({})
    run({"priority": 120})
    assert contexts == {file_of: [["default"], ["kept"]]}


def test_dict_and_keepalived_string_forms_are_the_same(run, file_of):
    strings = {
        "virtual_ipaddresses": ["10.0.0.100/24 brd + dev lo scope global label lo:vip no_track"],
        "virtual_ipaddresses_excluded": ["fd00::1/64 dev lo"],
        "track_interfaces": ["lo weight -10 reverse", "lo2"],
        "track_scripts": ["chk weight 5"],
        "host_checks": False,
    }
    dicts = {
        "virtual_ipaddresses": [
            {
                "address": "10.0.0.100/24",
                "broadcast": "+",
                "dev": "lo",
                "scope": "global",
                "label": "lo:vip",
                "no_track": True,
            }
        ],
        "virtual_ipaddresses_excluded": [{"address": "fd00::1/64", "dev": "lo"}],
        "track_interfaces": [{"name": "lo", "weight": -10, "reverse": True}, {"name": "lo2"}],
        "track_scripts": [{"name": "chk", "weight": 5}],
        "host_checks": False,
    }
    with open(os.path.join(os.path.dirname(file_of), "scripts.conf"), "w") as handle:
        handle.write("vrrp_script chk {\n    script /bin/true\n}\n")
    assert run(strings)["changed"] is True
    text = files.read(file_of)
    assert run(dicts)["changed"] is False
    assert "10.0.0.100/24 brd + dev lo scope global label lo:vip no_track" in text
    assert "lo weight -10 reverse" in text and "chk weight 5" in text


def test_instance_from_round_trips_through_render(paths):
    params = {name: spec.get("default") for name, spec in module.ARGUMENT_SPEC.items()}
    params.update(
        name="VI 2",
        interface="eth0",
        virtual_router_id=9,
        priority=200,
        initial_state="MASTER",
        advert_int=0.5,
        version=3,
        unicast_src_ip="fd00::1",
        unicast_peers=["fd00::2"],
        virtual_ipaddresses=["fe80::9/64", {"address": "fd00::9", "label": None}],
        track_interfaces=[{"name": "eth1", "weight": 0, "reverse": True}],
        notify_master="/usr/bin/logger became master",
    )
    instance = module.instance_from(params)
    text = render.render_instance(instance)
    (loaded,) = config.loads(text).vrrp_instances
    loaded.location = instance.location = config.Location()
    for vip in loaded.virtual_ipaddresses + loaded.track_interfaces:
        vip.location = config.Location()
    for vip in instance.virtual_ipaddresses + instance.track_interfaces:
        vip.location = config.Location()
    instance.family = 6  # completed from the VIPs by the checks
    loaded.notify_master.location = instance.notify_master.location
    assert loaded == instance
    assert loaded.notify_master.command == "/usr/bin/logger became master"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"virtual_ipaddresses": ["10.0.0.300"]},
            "virtual_ipaddresses[0]: VRRP parsed invalid IP 10.0.0.300",
        ),
        (
            {"virtual_ipaddresses": [{"address": "10.0.0.1", "device": "lo"}]},
            "virtual_ipaddresses[0]: unknown key(s) device",
        ),
        (
            {"virtual_ipaddresses": ["10.0.0.1", {"dev": "lo"}]},
            "virtual_ipaddresses[1]: 'address' is required",
        ),
        (
            {"track_interfaces": ["lo", {"name": "lo", "weight": 5, "reversed": True}]},
            "track_interfaces[1]: unknown key(s) reversed",
        ),
        (  # found by the checks of the whole configuration, at the entry's line
            {"virtual_ipaddresses": ["10.0.0.1", "10.0.0.2", "fe80::1"]},
            "vrrp_instance_VI_1.conf:10: virtual_ipaddresses[2]: (VI_1) fe80::1/128: all "
            "virtual_ipaddress entries must be IPv4",
        ),
        (  # found at the block's line: the element is the one the message quotes
            {"unicast_peers": ["10.0.0.7", "fe80::1", "10.0.0.8"], "unicast_src_ip": "10.0.0.1"},
            "unicast_peers[1]: (VI_1) unicast_peer fe80::1 is not IPv4 like the instance",
        ),
        (
            {"track_interfaces": ["lo", "nosuch0"]},
            "warning: track_interfaces[1]: (VI_1) track_interface nosuch0 does not exist",
        ),
        ({"virtual_ipaddresses": [["10.0.0.1"]]}, "expected a string or a dict"),
        (
            {"track_interfaces": ["eth0 weight 999"]},
            "track_interfaces[0]: (entry) weight 999 for eth0 must be between [-253..253]",
        ),
        (
            {"track_scripts": [{"name": "x", "reverse": True}]},
            "unknown track_script x option reverse - ignoring",
        ),
        ({"unicast_peers": ["peer.example"]}, "unicast_peers[0]: unicast_peer: invalid IP"),
        ({"name": "../etc"}, "no '/', blanks or leading '.'"),
    ],
)
def test_bad_options_fail_naming_the_option(run, paths, args, message):
    result = run(args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert os.listdir(paths["config_dir"]) == []


def test_virtual_router_id_is_required_when_present(run):
    result = run({"virtual_router_id": None})
    assert result["failed"] is True and "virtual_router_id" in result["msg"]


# -- validation of the whole configuration --------------------------------------------------


def test_an_invalid_value_fails_with_file_and_line_and_writes_nothing(run, paths, file_of):
    result = run({"priority": 300})
    assert result["failed"] is True
    assert f"{file_of}:" in result["msg"]
    assert "(VI_1) Priority not valid! must be between 1 & 255" in result["msg"]
    assert any("Priority not valid" in problem for problem in result["problems"])
    assert not os.path.exists(file_of)
    run({"priority": 120})
    before = files.read(file_of)
    assert run({"priority": 0})["failed"] is True
    assert files.read(file_of) == before, "a bad change must leave the old file alone"


def test_conflicts_with_the_rest_of_the_configuration_are_found(run, paths):
    with open(os.path.join(paths["config_dir"], "other.conf"), "w") as handle:
        handle.write(render.render_instance(module.instance_from({
            **{name: spec.get("default") for name, spec in module.ARGUMENT_SPEC.items()},
            "name": "OTHER", "interface": "lo", "virtual_router_id": 51,
            "virtual_ipaddresses": ["10.0.0.200"],
        })))  # fmt: skip
    result = run({})
    assert result["failed"] is True
    assert "virtual_router_id 51 is already used on lo by OTHER" in result["msg"]


def test_host_checks_find_a_missing_interface_unless_turned_off(run, file_of):
    result = run({"interface": "nonexistent0"})
    assert result["failed"] is True and "interface nonexistent0 does not exist" in result["msg"]
    assert run({"interface": "nonexistent0", "host_checks": False})["changed"] is True


def test_main_config_without_the_include_fails_clearly(run, paths, file_of):
    with open(paths["main_config"], "w") as handle:
        handle.write("global_defs {\n    router_id unit\n}\n")
    result = run({})
    assert result["failed"] is True
    assert f"include {paths['config_dir']}/*.conf" in result["msg"]
    assert not os.path.exists(file_of)


def test_missing_main_config_fails(run, paths, file_of):
    os.unlink(paths["main_config"])
    result = run({})
    assert result["failed"] is True and "cannot read the configuration file" in result["msg"]
    assert not os.path.exists(file_of)


# -- check mode and diff --------------------------------------------------------------------


def test_check_mode_writes_nothing(run, paths, file_of):
    result = run({"auth_pass": "s3cret"}, check=True)
    assert result["changed"] is True
    assert os.listdir(paths["config_dir"]) == []
    assert "auth_pass ********" in result["diff"][0]["after"]
    run({})
    before = files.read(file_of)
    assert run({"priority": 90}, check=True)["changed"] is True
    assert run({"state": "absent"}, check=True)["changed"] is True
    assert files.read(file_of) == before


def test_diff_masks_the_password_before_and_after(run, file_of):
    run({"auth_pass": "oldpass1"})
    result = run({"auth_pass": "newpass2"})
    assert result["changed"] is True
    diff = result["diff"][0]
    assert "oldpass1" not in json.dumps(result) and "newpass2" not in json.dumps(result)
    assert "        auth_pass ********\n" in diff["before"]
    assert "        auth_pass ********\n" in diff["after"]
    assert diff["before_header"] == diff["after_header"] == file_of
    assert "newpass2" in files.read(file_of)


def test_a_hand_edited_file_is_masked_in_the_diff_wherever_the_password_sits(run, file_of):
    with open(file_of, "w") as handle:
        handle.write(
            "vrrp_instance VI_1 {\n interface lo\n virtual_router_id 51\n"
            "  authentication { auth_type PASS auth_pass Hx4dEdited }\n"
            "  virtual_ipaddress {\n 10.0.0.100/24\n }\n} # auth_pass Hx4dOld\n"
        )
    result = run({})
    assert result["changed"] is True
    assert "Hx4d" not in json.dumps(result)
    assert "auth_pass ********" in result["diff"][0]["before"]


def test_a_password_that_cannot_be_written_is_not_shown(run, file_of):
    result = run({"auth_pass": "Zq9kSecret\u2028"})
    assert result["failed"] is True and "auth_pass: a line break" in result["msg"]
    assert "Zq9k" not in json.dumps(result)


def test_another_files_passwords_stay_hidden_when_it_fails_validation(run, paths):
    with open(os.path.join(paths["config_dir"], "other.conf"), "w") as handle:
        handle.write(
            "vrrp_instance OTHER {\n interface lo\n virtual_router_id 52\n"
            "  authentication { auth_type PASS auth_pass Ot7hSecret Ot7hMore }\n"
            "  garp_master_delay\n  virtual_ipaddress {\n 10.0.0.200\n }\n}\n"
        )
    result = run({})
    assert result["failed"] is True and "garp_master_delay: missing value" in result["msg"]
    assert "Ot7h" not in json.dumps(result)


# -- absent ---------------------------------------------------------------------------------


def test_absent_removes_the_file_once(run, file_of):
    run({})
    result = run({"state": "absent"})
    assert result["changed"] is True and result["diff"][0]["after"] == ""
    assert not os.path.exists(file_of)
    assert run({"state": "absent"})["changed"] is False


def test_absent_refused_while_a_sync_group_needs_the_instance(run, paths, file_of):
    run({})
    with open(os.path.join(paths["config_dir"], "sync.conf"), "w") as handle:
        handle.write("vrrp_sync_group G {\n    group {\n        VI_1\n    }\n}\n")
    result = run({"state": "absent"})
    assert result["failed"] is True
    assert "vrrp_sync_group G still lists VI_1" in result["msg"]
    assert os.path.exists(file_of)


# -- the running agent ----------------------------------------------------------------------


class StandInAgent:
    """The agent's real ControlServer in a thread, with scripted reload/status answers."""

    def __init__(self, path, reload_answer=None):
        self.path = path
        self.reloads = 0
        self.reload_answer = reload_answer or {"reloaded": True, "warnings": []}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def reload(self, allow_empty=False):
        self.reloads += 1
        self.allowed_empty = allow_empty
        return self.reload_answer

    async def status(self):
        vrrp = [{"name": "VI_1", "state": "MASTER", "priority": 100, "effective_priority": 90,
                 "interface": "lo", "vips": ["10.0.0.100/24"]}]  # fmt: skip
        return {"vrrp": vrrp if self.reloads else [], "ipvs": []}

    def __enter__(self):
        self.server = control.ControlServer(
            self.path, {"reload": self.reload, "status": self.status}
        )
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def test_a_change_reloads_the_agent_and_returns_the_live_state(run, paths):
    with StandInAgent(paths["control_socket"]) as agent:
        assert run({}, check=True)["live"] is None and agent.reloads == 0
        result = run({})
        assert agent.reloads == 1 and result["reloaded"] is True
        assert agent.allowed_empty is False, "a change keeps the guard against an emptied file"
        assert result["live"]["state"] == "MASTER"
        assert result["live"]["effective_priority"] == 90
        again = run({})
        assert agent.reloads == 1 and again["reloaded"] is False
        assert again["live"]["state"] == "MASTER", "the live state is returned without a change"
        run({"reload": False, "priority": 99})
        assert agent.reloads == 1
        assert run({"state": "absent"})["reloaded"] is True and agent.reloads == 2
        assert agent.allowed_empty is True, "removing the last instance is explicit"


def test_a_refused_reload_fails_the_task(run, paths):
    refusal = {"error": "configuration has errors", "problems": ["x.conf:3: bad"]}
    with StandInAgent(paths["control_socket"], refusal):
        result = run({})
    assert result["failed"] is True
    assert "lvs-agent refused the reload: configuration has errors; x.conf:3: bad" in result["msg"]


def test_a_socket_nobody_listens_on_is_only_a_warning(run, paths, file_of):
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(paths["control_socket"])  # bound, never listening: connection refused
        result = run({})
    assert result["changed"] is True and result["live"] is None
    assert any("cannot reach lvs-agent" in str(w) for w in result["warnings"]), result["warnings"]
    assert os.path.exists(file_of)
