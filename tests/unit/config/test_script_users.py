"""Whom scripts run as (script_user, user, notify ... USER GROUP) and enable_script_security,
as the configuration reads them: names in the model, identities from the host checks."""

from __future__ import annotations

import grp
import os
import pwd
import textwrap
from pathlib import Path

import pytest
from config_helpers import errors_of, parse

from lvsagent.config import ConfigError, ScriptUser, loads

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid
DAEMON = grp.getgrnam("daemon").gr_gid


def conf(global_defs: str = "", script: str = "/bin/true", user: str = "", notify: str = "") -> str:
    return textwrap.dedent(
        f"""\
        global_defs {{
        {global_defs}
        }}
        vrrp_script chk {{
            script "{script}"
            {user}
        }}
        vrrp_instance VI_1 {{
            interface lo
            virtual_router_id 51
            virtual_ipaddress {{
                10.0.0.100
            }}
            track_script {{
                chk
            }}
            {notify}
        }}
        """
    )


def host_load(text: str):
    """With host checks, as the agent and check-config load a file."""
    return loads(text, "test.conf", host_checks=True)


def host_errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        host_load(text)
    return [str(problem) for problem in raised.value.errors]


@pytest.mark.parametrize(
    "words", ["nobody nogroup", "nobody:nogroup", "nobody : nogroup", "nobody: nogroup"]
)
def test_user_and_group_are_two_names(words):
    config = host_load(conf(user=f"user {words}", global_defs="script_user root"))
    script = config.vrrp_scripts["chk"]
    assert (script.user.user, script.user.group) == ("nobody", "nogroup")
    assert (script.run_as.uid, script.run_as.gid, script.run_as.groups) == (
        NOBODY,
        NOGROUP,
        (NOGROUP,),
    )


def test_script_user_is_the_default_and_its_group_defaults_to_the_users():
    config = host_load(conf(global_defs="script_user nobody"))
    assert config.global_defs.script_user == ScriptUser(
        "nobody", None, config.global_defs.script_user.location
    )
    run_as = config.vrrp_scripts["chk"].run_as
    assert (run_as.user, run_as.uid, run_as.gid) == (
        "nobody",
        NOBODY,
        pwd.getpwnam("nobody").pw_gid,
    )


def test_notify_scripts_take_user_and_group_after_the_command():
    notify = 'notify_master "/bin/true a b" nobody daemon\n    notify /bin/true'
    config = host_load(conf(global_defs="script_user root", notify=notify))
    instance = config.vrrp_instances[0]
    master = instance.notify_master
    assert (master.command, master.user.user, master.user.group) == (
        "/bin/true a b",
        "nobody",
        "daemon",
    )
    assert (master.run_as.uid, master.run_as.gid) == (NOBODY, DAEMON)
    assert instance.notify.user is None and instance.notify.run_as.uid == 0  # script_user root


def test_lvs_scripts_take_users_too():
    text = textwrap.dedent(
        """\
        global_defs {
            script_user root
        }
        virtual_server 10.0.0.1 80 {
            quorum_up "/bin/true up" nobody
            real_server 10.0.0.2 80 {
                notify_down /bin/true daemon:daemon
                MISC_CHECK {
                    misc_path "/bin/true x"
                    user nobody nogroup
                }
            }
        }
        """
    )
    server = host_load(text).virtual_servers[0]
    real = server.real_servers[0]
    assert server.quorum_up.run_as.uid == NOBODY
    assert (real.notify_down.user.user, real.notify_down.run_as.gid) == ("daemon", DAEMON)
    assert (real.checkers[0].run_as.uid, real.checkers[0].run_as.gid) == (NOBODY, NOGROUP)


def test_names_are_only_resolved_by_the_host_checks():
    config = parse(conf(user="user no-such-user"))
    assert config.vrrp_scripts["chk"].user.user == "no-such-user"
    assert config.vrrp_scripts["chk"].run_as is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("user a b c", "6: user: expected USER [GROUP] or USER:GROUP, got 'a b c'"),
        ("user a:", "6: user: expected USER [GROUP] or USER:GROUP, got 'a:'"),
        ("user", "6: user: expected USER [GROUP] or USER:GROUP, got ''"),
    ],
)
def test_malformed_user_lines_are_errors(line, expected):
    assert expected in errors_of(conf(user=line))


def test_unbalanced_quotes_in_a_script_are_errors():
    errors = errors_of(conf(script="/bin/echo 'oops"))
    assert "5: script: cannot split '/bin/echo 'oops' into words: No closing quotation" in errors


def test_a_script_the_parser_refused_is_not_checked_again():
    errors = host_errors(conf(global_defs="script_user root", script="/bin/echo 'oops"))
    assert errors == [
        "test.conf:5: script: cannot split '/bin/echo 'oops' into words: No closing quotation",
    ]


def test_unknown_users_and_groups_are_errors_at_their_line():
    text = conf(
        global_defs="script_user no-such-default",
        user="user no-such-user",
        notify="notify_master /bin/true nobody no-such-group",
    )
    assert host_errors(text) == [
        "test.conf:2: script_user: Script user 'no-such-default' does not exist",
        "test.conf:6: vrrp_script chk: Script user 'no-such-user' does not exist",
        "test.conf:17: (VI_1) notify_master: Script group 'no-such-group' does not exist",
    ]


@pytest.fixture
def unsafe_script(tmp_path) -> Path:
    tmp_path.chmod(0o755)
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o777)
    return script


def test_enable_script_security_refuses_an_unsafe_script_run_as_root(unsafe_script):
    text = conf(global_defs="script_user root\nenable_script_security", script=str(unsafe_script))
    assert host_errors(text) == [
        f"test.conf:5: vrrp_script chk: Unsafe permissions found for script '{unsafe_script}' "
        f"({unsafe_script} can be changed by a user other than root) - SECURITY VIOLATION, "
        "enable_script_security refuses to run it as root"
    ]


def test_an_unsafe_script_run_as_another_user_is_allowed(unsafe_script):
    text = conf(
        global_defs="script_user root\nenable_script_security",
        script=str(unsafe_script),
        user="user nobody",
    )
    assert host_load(text).warnings == []


def test_without_script_security_keepalived_warns(unsafe_script):
    config = host_load(conf(global_defs="script_user root", script=str(unsafe_script)))
    assert [str(w) for w in config.warnings] == [
        f"test.conf:4: warning: vrrp_script chk: Unsafe permissions found for script "
        f"'{unsafe_script}' ({unsafe_script} can be changed by a user other than root).",
        "test.conf:4: warning: SECURITY VIOLATION - scripts are being executed but "
        "script_security not enabled. There are insecure scripts.",
    ]


def test_the_default_user_is_keepalived_script_else_root_with_a_warning():
    try:
        pwd.getpwnam("keepalived_script")
    except KeyError:
        pass
    else:
        pytest.skip("this host has a keepalived_script user")
    config = host_load(conf())
    assert config.vrrp_scripts["chk"].run_as.uid == 0
    assert [w.message for w in config.warnings] == [
        "WARNING - default user 'keepalived_script' for script execution does not exist "
        "- please create.",
        "SECURITY VIOLATION - scripts are being executed but script_security not enabled.",
    ]
    assert host_errors(conf(global_defs="enable_script_security")) == [
        "test.conf:4: vrrp_script chk: Unable to set default user keepalived_script for script "
        "(enable_script_security: set script_user, or create the user)"
    ]
