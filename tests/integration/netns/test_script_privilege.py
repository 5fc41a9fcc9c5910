"""Scripts run by a real lvs-agent as keepalived runs them: as their configured user, group and
groups; refused under enable_script_security when a non-root user could change one that runs
as root (at load, and after start); killed with all their children on timeout and at stop."""

from __future__ import annotations

import grp
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from vrrp_support import MODULE_UTILS, PYTHON, Agent, holds, instance_block

from testbed.netns import process_running as running

pytestmark = pytest.mark.netns

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrnam("nogroup").gr_gid
DAEMON_USER = pwd.getpwnam("daemon")
DAEMON_GROUP = grp.getgrnam("daemon").gr_gid

ID_SCRIPT = """#!/bin/sh
{{ id -u; id -g; id -G; }} > {out}/$1.tmp && mv {out}/$1.tmp {out}/$1
"""


@pytest.fixture
def script_dir():
    """Root's directory of scripts every user can reach, with `out/` every user can write."""
    path = Path(tempfile.mkdtemp(prefix="lvsagent-scripts-", dir="/tmp"))
    path.chmod(0o755)
    (path / "out").mkdir(mode=0o777)
    (path / "out").chmod(0o777)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def d1(lab):
    return lab.host("d1", "192.168.77.11/24")


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def conf(global_defs: str, *blocks: str) -> str:
    return f"global_defs {{\n  router_id lab\n{global_defs}}}\n" + "".join(blocks)


def vrrp_script(name: str, script: str, extra: str = "") -> str:
    return f'vrrp_script {name} {{\n  script "{script}"\n{extra}}}\n'


def track(*names: str) -> str:
    return "  track_script {\n" + "".join(f"    {name}\n" for name in names) + "  }\n"


def lvsagent(host, *args: str) -> subprocess.CompletedProcess:
    argv = ["env", f"PYTHONPATH={MODULE_UTILS}", PYTHON, "-m", "lvsagent", *args]
    return host.run(argv, check=False, timeout=30)


def test_scripts_run_as_their_users_groups_and_only_those_groups(d1, tmp_path, script_dir):
    out = script_dir / "out"
    script = write_script(script_dir / "id.sh", ID_SCRIPT.format(out=out))
    text = conf(
        "  script_user nobody daemon\n  enable_script_security\n",
        vrrp_script("chk", f"{script} chk", "  interval 1\n  user nobody:nogroup\n"),
        instance_block(
            150,
            extra=track("chk")
            + f'  notify_master "{script} master"\n'  # script_user
            + f'  notify "{script} notify" daemon\n',  # the user's own group
        ),
    )
    agent = Agent(d1, tmp_path, text)
    check = lvsagent(d1, "check-config", "--strict", str(agent.conf))
    assert check.returncode == 0, check.stdout + check.stderr
    agent.start()
    try:
        d1.wait_for(lambda: all((out / name).exists() for name in ("chk", "master", "notify")), 15)
    finally:
        assert agent.stop() == 0
    assert holds(d1) is False
    seen = {name: (out / name).read_text().split("\n") for name in ("chk", "master", "notify")}
    assert seen["chk"][:3] == [str(NOBODY.pw_uid), str(NOGROUP), str(NOGROUP)]
    assert seen["master"][:3] == [str(NOBODY.pw_uid), str(DAEMON_GROUP), str(DAEMON_GROUP)]
    daemon = DAEMON_USER.pw_gid
    assert seen["notify"][:3] == [str(DAEMON_USER.pw_uid), str(daemon), str(daemon)]


def test_a_world_writable_root_script_is_refused_at_load(d1, tmp_path, script_dir):
    script = write_script(script_dir / "chk.sh", "#!/bin/sh\nexit 0\n")
    script.chmod(0o777)
    text = conf(
        "  script_user root\n  enable_script_security\n",
        vrrp_script("chk", str(script)),
        instance_block(150, extra=track("chk")),
    )
    agent = Agent(d1, tmp_path, text)
    expected = (
        f"vrrp_script chk: Unsafe permissions found for script '{script}' ({script} can be "
        "changed by a user other than root) - SECURITY VIOLATION, enable_script_security "
        "refuses to run it as root"
    )
    check = lvsagent(d1, "check-config", str(agent.conf))
    assert check.returncode == 1 and f"{agent.conf}:6: {expected}" in check.stderr
    agent.start()
    assert agent.proc.wait(20) == 1
    assert expected in agent.log_text()


def test_a_root_script_made_unsafe_after_start_is_no_longer_run(d1, tmp_path, script_dir):
    runs = tmp_path / "runs"
    script = write_script(script_dir / "chk.sh", f"#!/bin/sh\necho run >> {runs}\n")
    text = conf(
        "  script_user root\n  enable_script_security\n",
        vrrp_script("chk", str(script), "  interval 0.5\n  init_fail\n"),
        instance_block(150, extra=track("chk")),
    )
    agent = Agent(d1, tmp_path, text).start()
    try:
        d1.wait_for(lambda: "VRRP_Script(chk) succeeded" in agent.log_text(), 15)
        script_dir.chmod(0o777)  # any user could now swap the script for another
        d1.wait_for(lambda: "VRRP_Script(chk) failed" in agent.log_text(), 10)
        count = len(runs.read_text().splitlines())
        time.sleep(2)  # four more intervals: still refused
        assert len(runs.read_text().splitlines()) == count
    finally:
        script_dir.chmod(0o755)
        assert agent.stop() == 0
    assert (
        f"Unsafe permissions found for script '{script}' ({script_dir} can be changed by a "
        "user other than root) - SECURITY VIOLATION" in agent.log_text()
    )


def test_hanging_scripts_and_their_children_do_not_survive(d1, tmp_path, script_dir):
    out = script_dir / "out"
    hang = write_script(
        script_dir / "hang.sh", f"#!/bin/sh\nsleep 300 &\necho $$ $! >> {out}/$1\nsleep 300\n"
    )
    linger = write_script(script_dir / "linger.sh", f"#!/bin/sh\nsleep 300 &\necho $! > {out}/$1\n")
    text = conf(
        "  script_user nobody\n",
        vrrp_script("chk", f"{hang} chk", "  interval 3\n  timeout 1\n  weight -10\n"),
        instance_block(150, extra=track("chk") + f'  notify_master "{linger} master"\n'),
    )
    agent = Agent(d1, tmp_path, text).start()
    try:
        d1.wait_for((out / "chk").exists, 10)
        first = [int(pid) for pid in (out / "chk").read_text().split()[:2]]
        assert all(running(pid) for pid in first)
        d1.wait_for(lambda: not any(running(pid) for pid in first), 5)  # timeout 1 s
        # the agent logs the timeout once the killed group is reaped, just after the pids go
        d1.wait_for(lambda: "VRRP_Script(chk) timed out after 1s" in agent.log_text(), 5)
        d1.wait_for(lambda: (out / "master").exists() and (out / "master").read_text(), 15)
        lingering = int((out / "master").read_text())
        assert running(lingering)  # a notify script may leave work behind while the agent runs
    finally:
        assert agent.stop() == 0
    assert not running(lingering)  # but not past the agent
    every = [int(pid) for pid in (out / "chk").read_text().split()]
    assert not any(running(pid) for pid in every)
