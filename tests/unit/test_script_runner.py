"""The one script runner: sessions, timeouts that kill the whole group, reaping, privilege,
argument lists, the notify cap and enable_script_security. Real processes, no fakes."""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from lvsagent import scripts
from lvsagent.config.model import Script
from lvsagent.lvs.checkers import CheckSpec, probe
from lvsagent.lvs.checkers.misc import MiscOptions
from lvsagent.scripts import (
    Identity,
    ScriptRunner,
    resolve_identity,
    root_identity,
    run_script,
    security_violation,
    unsafe_part,
)
from lvsagent.vrrp.notify import notify_argv
from testbed.netns import process_running as running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing users needs root")


def exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@pytest.fixture
def shared_dir():
    """A directory every user can write, under a path every user can reach."""
    path = Path(tempfile.mkdtemp(prefix="lvsagent-scripts-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# -- timeouts, process groups, reaping ---------------------------------------------------------


def test_timeout_kills_the_whole_group_and_reaps_the_script(tmp_path):
    pids = tmp_path / "pids"
    argv = ["/bin/sh", "-c", f"sleep 300 & echo $$ $! > {pids}; sleep 300"]
    started = time.monotonic()
    outcome = asyncio.run(run_script(argv, None, 0.5))
    assert time.monotonic() - started < 5
    assert (outcome.code, outcome.error) == (None, "timed out after 0.5s")
    script_pid, grandchild_pid = map(int, pids.read_text().split())
    assert not exists(script_pid)  # reaped: not even a zombie
    assert wait_until(lambda: not running(grandchild_pid))


def test_leftovers_of_a_check_die_when_it_exits(tmp_path):
    pids = tmp_path / "pids"
    argv = ["/bin/sh", "-c", f"sleep 300 & echo $! > {pids}; exit 3"]
    outcome = asyncio.run(run_script(argv, None, 10))
    assert (outcome.code, outcome.error, outcome.ok) == (3, "exit status 3", False)
    assert wait_until(lambda: not running(int(pids.read_text())))


def test_cancelling_a_run_kills_its_group(tmp_path):
    pids = tmp_path / "pids"

    async def test():
        task = asyncio.ensure_future(
            run_script(["/bin/sh", "-c", f"sleep 300 & echo $! > {pids}; sleep 300"], None, 60)
        )
        while not pids.exists() or not pids.read_text():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(test())
    assert wait_until(lambda: not running(int(pids.read_text())))


def test_a_missing_program_is_an_outcome_not_an_exception():
    outcome = asyncio.run(run_script(["/nonexistent/script"], None, 1))
    assert outcome.code is None and "no such file" in outcome.error
    outcome = asyncio.run(run_script(["no-such-program-anywhere"], None, 1))
    assert outcome.error == "cannot find no-such-program-anywhere in PATH"


# -- notify scripts: argument lists, the cap per owner, close ------------------------------------


def test_generic_notify_arguments_stay_one_word_each(tmp_path):
    out = tmp_path / "args"
    script = Script(f"/bin/sh -c 'for a; do echo \"[$a]\"; done > {out}' notify 'two words'")
    argv = notify_argv(script, "INSTANCE", "VI 1 \"quoted\" 'x'", "MASTER", 150)

    async def test():
        runner = ScriptRunner()
        runner.spawn(argv, None, "(VI 1)")
        await runner.close(10)

    asyncio.run(test())
    assert out.read_text().splitlines() == [
        "[two words]",
        "[INSTANCE]",
        "[VI 1 \"quoted\" 'x']",
        "[MASTER]",
        "[150]",
    ]


def test_notify_scripts_of_one_owner_run_a_few_at_a_time(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(scripts, "NOTIFY_RUNNING_LIMIT", 2)
    monkeypatch.setattr(scripts, "NOTIFY_WAITING_LIMIT", 2)
    log, gate = tmp_path / "log", tmp_path / "gate"

    def job(word):  # runs until the test opens the gate, however slow the machine
        return [
            "/bin/sh",
            "-c",
            f"echo start {word} >> {log}; until [ -e {gate} ]; do sleep 0.05; done",
        ]

    def started_words():
        return log.read_text().split()[1::2] if log.exists() else []

    async def test():
        runner = ScriptRunner()
        for word in "abcde":  # a b run, c d wait; e pushes out the oldest waiting (c)
            runner.spawn(job(word), None, "(VI_1)")
        runner.spawn(job("other"), None, "(VI_2)")  # another owner is not held back
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(started_words()) < 3:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # time for a wrongly started fourth script to show
        early = sorted(log.read_text().split("\n"))
        gate.touch()
        await runner.close(10)
        return early

    with caplog.at_level(logging.WARNING, "lvsagent.scripts"):
        early = asyncio.run(test())
    assert early == ["", "start a", "start b", "start other"]
    assert sorted(log.read_text().split()[1::2]) == ["a", "b", "d", "e", "other"]
    assert "(VI_1): 2 notify scripts waiting, dropping [/bin/sh -c 'echo start c" in caplog.text


def test_close_kills_what_notify_scripts_left_and_what_still_runs(tmp_path):
    pids = tmp_path / "pids"

    async def test():
        runner = ScriptRunner()
        runner.spawn(["/bin/sh", "-c", f"sleep 300 & echo $! >> {pids}"], None, "(A)")
        runner.spawn(["/bin/sh", "-c", f"echo $$ >> {pids}; exec sleep 300"], None, "(B)")
        while not pids.exists() or len(pids.read_text().split()) < 2:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the first script has exited, its child lingers
        started = time.monotonic()
        await runner.close(0.5)
        return time.monotonic() - started

    assert asyncio.run(test()) < 5
    for pid in map(int, pids.read_text().split()):
        assert wait_until(lambda pid=pid: not running(pid))


# -- privilege ---------------------------------------------------------------------------------


def ids_seen(identity: Identity, shared_dir: Path) -> list[str]:
    out = shared_dir / "id"
    argv = ["/bin/sh", "-c", f"id -u > {out}; id -g >> {out}; id -G >> {out}"]
    assert asyncio.run(run_script(argv, identity, 10)).ok
    return out.read_text().splitlines()


def test_a_script_runs_as_its_user_and_group_with_only_that_group(shared_dir):
    nobody = pwd.getpwnam("nobody").pw_uid
    daemon = grp.getgrnam("daemon").gr_gid
    identity = resolve_identity("nobody", "daemon", False, False)
    assert ids_seen(identity, shared_dir) == [str(nobody), str(daemon), str(daemon)]


@pytest.fixture
def user_with_a_second_group():
    """A throwaway user who also belongs to a throwaway group (no host has to provide one)."""
    name = f"lvsha{os.getpid()}"
    extra = f"lvshx{os.getpid()}"
    subprocess.run(["groupadd", "--system", extra], check=True)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--user-group", "--groups", extra, name],
        check=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", extra], check=False)


def test_set_supplementary_groups_gives_the_users_groups(shared_dir, user_with_a_second_group):
    member = user_with_a_second_group
    entry = pwd.getpwnam(member)
    expected = sorted(os.getgrouplist(member, entry.pw_gid))
    assert len(expected) > 1
    seen = ids_seen(resolve_identity(member, None, True, False), shared_dir)
    assert seen[:2] == [str(entry.pw_uid), str(entry.pw_gid)]
    assert sorted(map(int, seen[2].split())) == expected


def test_unknown_names_are_lookup_errors():
    with pytest.raises(LookupError, match="Script user 'no-such-user' does not exist"):
        resolve_identity("no-such-user", None, False, False)
    with pytest.raises(LookupError, match="Script group 'no-such-group' does not exist"):
        resolve_identity("nobody", "no-such-group", False, False)


# -- enable_script_security ---------------------------------------------------------------------


def test_unsafe_part_follows_keepalived(tmp_path):
    tmp_path.chmod(0o755)
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    assert unsafe_part(str(script)) is None
    assert unsafe_part("/tmp") is None  # world-writable but sticky and root's
    os.chown(script, 0, grp.getgrnam("daemon").gr_gid)
    script.chmod(0o775)
    assert unsafe_part(str(script)) == str(script)  # group-writable, group not root
    os.chown(script, 0, 0)
    assert unsafe_part(str(script)) is None  # group-writable by root's group only
    script.chmod(0o757)
    assert unsafe_part(str(script)) == str(script)
    script.chmod(0o755)
    os.chown(script, pwd.getpwnam("nobody").pw_uid, 0)
    assert unsafe_part(str(script)) == str(script)  # owned by someone else
    os.chown(script, 0, 0)
    tmp_path.chmod(0o777)
    assert unsafe_part(str(script)) == str(tmp_path)  # a directory above it
    tmp_path.chmod(0o755)


def test_a_script_made_unsafe_after_load_is_refused_at_run_time(tmp_path):
    tmp_path.chmod(0o755)
    out = tmp_path / "ran"
    script = tmp_path / "notify.sh"
    script.write_text(f"#!/bin/sh\necho ran >> {out}\n")
    script.chmod(0o755)
    secure_root = root_identity(True)
    assert asyncio.run(run_script([str(script)], secure_root, 10)).ok
    script.chmod(0o777)
    assert security_violation(secure_root, str(script))
    outcome = asyncio.run(run_script([str(script)], secure_root, 10))
    assert outcome.code is None and "SECURITY VIOLATION" in outcome.error
    assert f"Unsafe permissions found for script '{script}'" in outcome.error
    assert out.read_text() == "ran\n"  # once, before it became unsafe
    assert asyncio.run(run_script([str(script)], root_identity(False), 10)).ok  # not enforced
    nobody = resolve_identity("nobody", None, False, True)
    assert security_violation(nobody, str(script)) is None  # not root: nothing to protect


def test_misc_check_runs_as_its_user_and_keeps_dynamic_weights(shared_dir):
    out = shared_dir / "misc"
    nobody = resolve_identity("nobody", "nogroup", False, True)
    spec = CheckSpec(
        "MISC_CHECK",
        "10.0.0.1",
        80,
        options=MiscOptions(f"/bin/sh -c 'id -u > {out}; exit 12'", dynamic=True, run_as=nobody),
    )
    result = asyncio.run(probe(spec))
    assert (result.ok, result.weight) == (True, 10)
    assert out.read_text() == f"{nobody.uid}\n"
