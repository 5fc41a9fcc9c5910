"""The lab's keepalived pair after a hand-over (not collected by `molecule verify`:
tools/molecule-migrate runs it after the migration and again after the rollback).

Environment: LVS_HA_MIGRATED_TO (lvs-agent: after the migration; keepalived: after the rollback),
LVS_HA_IPVS_BEFORE (the folder where DIRECTOR.ipvs holds its sorted `ipvsadm -Sn` from before
the migration), LVS_HA_POLL_LOG (the client's poll_vip.py log of the hand-over).
The figures (requests, failures, longest gap) are printed for the closing note."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from conftest import DIRECTORS, REALSERVERS, REPO, ask, vip_holders, wait_for
from rollout_gap import longest_gap, polled, unanswered_time

sys.path.insert(0, str(REPO / "plugins" / "module_utils"))
from lvsagent.switch import parse_keepalived_data  # noqa: E402

SEED = Path(__file__).resolve().parents[1] / "seed"
# The seed's roles: director1 runs master.keepalived.conf, director2 backup.keepalived.conf.
ROLES = dict(zip(DIRECTORS, ("master", "backup")))
DAEMONS = ("lvs-agent", "keepalived")
RUNNING = os.environ.get("LVS_HA_MIGRATED_TO", "lvs-agent")
STOPPED = DAEMONS[1 - DAEMONS.index(RUNNING)]
STEP = "migration" if RUNNING == "lvs-agent" else "rollback"
POLL_INTERVAL = 0.1  # poll_vip.py's, as tools/molecule-migrate starts it


def seed_setting(role: str, keyword: str) -> str:
    text = (SEED / f"{role}.keepalived.conf").read_text()
    return re.search(rf"^\s*{keyword}\s+(\S+)", text, re.MULTILINE).group(1)


def seed_vip() -> str:
    text = (SEED / "master.keepalived.conf").read_text()
    return re.search(r"virtual_ipaddress\s*{\s*(\S+)", text).group(1)


@pytest.fixture(scope="module")
def seed():
    """The seed pair's VIP and the bound of one VRRP hand-over: the backup takes over after
    Master_Down_Interval (RFC 3768: 3 adverts + its skew time), plus the time to notice."""
    advert = float(seed_setting("backup", "advert_int"))
    backup_priority = int(seed_setting("backup", "priority"))
    master_down = 3 * advert + (256 - backup_priority) / 256 * advert
    return {"vip": seed_vip(), "port": 80, "handover": master_down + 3.0}


def test_the_vip_answered_through_the_handover(client, seed):
    rows = polled(client)
    failed = sum(1 for row in rows if not row[2])
    longest, began = longest_gap(rows)
    unanswered = unanswered_time(rows)
    bound = seed["handover"]
    print(
        f"{STEP} polled for {rows[-1][1] - rows[0][0]:.1f} s: {len(rows)} requests, "
        f"{failed} failed; longest gap without an answer {longest:.2f} s (from {began:.1f} s "
        f"after the start), {unanswered:.2f} s unanswered in all; bound (one VRRP hand-over) "
        f"{bound:.1f} s"
    )
    assert rows[-1][2], f"the last request of the {STEP} got no answer"
    assert unanswered < bound, (
        f"the VIP went unanswered for {unanswered:.2f} s in all (longest gap {longest:.2f} s), "
        f"more than one VRRP hand-over ({bound:.1f} s)"
    )
    assert failed <= bound / POLL_INTERVAL, f"{failed} failed requests"


@pytest.mark.parametrize("name", DIRECTORS)
def test_the_ipvs_table_is_the_one_keepalived_built(directors, name):
    before = (Path(os.environ["LVS_HA_IPVS_BEFORE"]) / f"{name}.ipvs").read_text().splitlines()
    now = sorted(directors[name].check_output("ipvsadm -Sn").splitlines())
    gone = sorted(set(before) - set(now))
    new = sorted(set(now) - set(before))
    assert now == before, f"{name}: IPVS lines gone {gone}, new {new}"


@pytest.mark.parametrize("name", DIRECTORS)
def test_the_director_runs_one_daemon_at_boot(directors, name):
    # One command for all (over the guest's Podman API each command costs seconds).
    command = (
        f"systemctl is-active {RUNNING} {STOPPED}; systemctl is-enabled {RUNNING} {STOPPED}; "
        "test -e /etc/keepalived/keepalived.conf && echo kept"
    )
    out = directors[name].run(command).stdout.split()
    running_active, stopped_active, running_enabled, stopped_enabled = out[:4]
    assert running_active == "active", f"{RUNNING} is not running on {name}"
    assert running_enabled == "enabled", f"{RUNNING} is not enabled on {name}"
    assert stopped_active != "active", f"{STOPPED} still runs on {name}"
    assert stopped_enabled != "enabled", f"{STOPPED} is still enabled on {name}"
    assert out[4:] == ["kept"], f"{name}: keepalived's configuration is gone"


def last_value(probe):
    """A predicate for wait_for that keeps what probe() returned last, for the assertion after."""
    seen = {}

    def matches(expected) -> bool:
        seen["value"] = probe()
        return seen["value"] == expected

    return matches, seen


def vrrp_states(host) -> dict[str, str]:
    """{instance: state} from the running daemon: lvs-agent's status, or keepalived's data dump
    (SIGUSR1), read as `lvs-agent switch` reads it."""
    if RUNNING == "lvs-agent":
        status = json.loads(host.check_output("lvs-agent status --json"))
        return {instance["name"]: instance["state"] for instance in status["vrrp"]}
    dump = host.run(
        "rm -f /tmp/keepalived.data && kill -USR1 $(cat /run/keepalived.pid) && "
        "for i in $(seq 50); do [ -s /tmp/keepalived.data ] && break; sleep 0.1; done && "
        "sleep 0.5 && cat /tmp/keepalived.data"
    )
    return parse_keepalived_data(dump.stdout)


@pytest.mark.parametrize("name", DIRECTORS)
def test_the_daemon_holds_the_seed_role(directors, seed, name):
    expected = {"VI_1": ROLES[name].upper()}
    # After a rollback keepalived's master takes over once Master_Down_Interval is over.
    matches, seen = last_value(lambda: vrrp_states(directors[name]))
    wait_for(lambda: matches(expected), seed["handover"], interval=0.5)
    assert seen["value"] == expected, f"{name}: {RUNNING} says {seen['value']}"


def test_the_seed_master_holds_the_vip(directors, seed):
    master = DIRECTORS[0]
    matches, seen = last_value(lambda: vip_holders(directors, seed["vip"]))
    wait_for(lambda: matches([master]), seed["handover"], interval=0.5)
    assert seen["value"] == [master], f"the VIP is on {seen['value']}"


def test_requests_through_the_vip_are_answered(client, seed):
    answers = ask(client, seed["vip"])
    assert "" not in answers, answers
    assert set(answers) <= set(REALSERVERS), answers
