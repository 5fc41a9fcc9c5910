"""The corpus side by side with real keepalived 2.2.7: in a namespace that has the interfaces
the files name, `keepalived -t` and our `check-config` (host checks on) read each file, and
both outputs are held to the same table (tests/unit/config/corpus/expected.json).

`keepalived -t` exits non-zero for nearly any warning, so its exit code is not compared: its
messages are. A message the table does not explain (a real error included) fails the test.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from config_corpus import (
    CORPUS,
    FILES,
    OUR_SCRIPT_HOST_WARNINGS,
    SCRIPT_SECURITY,
    keepalived_messages,
    unmatched_keepalived,
    unmatched_ours,
)

pytestmark = pytest.mark.netns

MODULE_UTILS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
    "plugins",
    "module_utils",
)
EXTRA_INTERFACES = ("eth1", "eth2")  # eth0 comes with the lab host


@pytest.fixture(scope="module")
def director():
    from testbed.fixtures import netns_unavailable_reason
    from testbed.netns import Lab

    reason = netns_unavailable_reason() or (
        None if shutil.which("keepalived") else "keepalived is not installed"
    )
    if reason:
        pytest.skip(reason)
    with Lab() as lab:
        host = lab.host("corpus", "192.0.2.2/24")
        for name in EXTRA_INTERFACES:
            host.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"])
            host.run(["ip", "link", "set", name, "up"])
        yield host


def keepalived_output(director, path: str, tmp_path) -> str:
    pids = [str(tmp_path / f"{kind}.pid") for kind in ("main", "vrrp", "checkers", "bfd")]
    argv = ["keepalived", "-t", "-f", path, "--log-console", "--log-detail"]
    for flag, pid_file in zip(("-p", "-r", "-c", "-b"), pids):
        argv += [flag, pid_file]
    proc = director.run(argv, check=False, cwd=str(tmp_path))
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("name", FILES)
def test_keepalived_and_check_config_agree_on_the_corpus_file(director, name, tmp_path):
    path = os.path.join(CORPUS, name)
    output = keepalived_output(director, path, tmp_path)
    messages = keepalived_messages(output)
    unexplained, unsaid = unmatched_keepalived(name, messages)
    assert (unexplained, unsaid) == ([], []), "keepalived said something else than the table"

    env = dict(os.environ, PYTHONPATH=MODULE_UTILS)
    ours = director.run(
        [sys.executable, "-m", "lvsagent", "check-config", path], check=False, env=env
    )
    assert ours.returncode == 0, ours.stderr
    prefix = f"{path}:"
    warnings = []
    for line in ours.stdout.splitlines():
        if line.startswith(prefix) and ": warning: " in line:
            number, _sep, message = line[len(prefix) :].partition(": warning: ")
            warnings.append((int(number), message))
    ours_security = [w for w in warnings if w[1].startswith(OUR_SCRIPT_HOST_WARNINGS)]
    assert bool(ours_security) == (SCRIPT_SECURITY in output), "script security warnings differ"
    warnings = [w for w in warnings if w not in ours_security]
    assert unmatched_ours(name, warnings) == ([], [])
