"""The IPVS modules' integration targets, run with ansible-playbook against the real kernel
(in the guest: tools/guest/run-tests). The targets assert every step themselves; this test
runs them and checks from outside that each left the table as it found it (empty)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ipvs

REPO = Path(__file__).resolve().parents[3]
TARGETS = REPO / "tests" / "integration" / "targets"


def ansible_env() -> dict:
    collections = subprocess.run(
        [str(REPO / "tools" / "collection-path")], check=True, capture_output=True, text=True
    ).stdout.strip()
    return {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": collections,
        "ANSIBLE_ROLES_PATH": str(TARGETS),
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
    }


def ansible_playbook() -> str:
    beside_python = Path(sys.executable).with_name("ansible-playbook")
    return str(beside_python) if beside_python.exists() else shutil.which("ansible-playbook")


@pytest.mark.parametrize("target", ["ipvs_service", "ipvs_realserver", "ipvs_info"])
def test_target(target, tmp_path):
    subprocess.run(["ipvsadm", "-C"], check=True)  # also loads ip_vs
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"- hosts: localhost\n  gather_facts: false\n  roles: [{target}]\n")
    result = subprocess.run(
        [ansible_playbook(), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
        capture_output=True, text=True, timeout=900, env=ansible_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "failed=0" in result.stdout
    saved = subprocess.run(["ipvsadm", "-S", "-n"], check=True, capture_output=True, text=True)
    assert saved.stdout == ""
