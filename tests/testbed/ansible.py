"""Running this checkout's modules and integration targets with ansible-playbook, on the
machine or inside a lab host (`ip netns exec`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

from .netns import Host

REPO = Path(__file__).resolve().parents[2]
TARGETS = REPO / "tests" / "integration" / "targets"


def ansible_env() -> dict[str, str]:
    """The environment where `lvs.ha` is this checkout and the targets are roles."""
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


def ansible_command(name: str) -> str:
    """`ansible`, `ansible-playbook`...: the one beside this Python (the venv) first."""
    beside_python = Path(sys.executable).with_name(name)
    return str(beside_python) if beside_python.exists() else (shutil.which(name) or name)


def local_argv(command: str) -> list[str]:
    """The start of a command line acting on localhost with this Python as interpreter."""
    return [ansible_command(command), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}"]  # fmt: skip


def run_target(
    target: str,
    tmp_path: Path,
    host: Optional[Host] = None,
    extra_vars: Optional[dict[str, str]] = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess:
    """Run tests/integration/targets/TARGET as a role on localhost (inside `host` if given)."""
    playbook = Path(tmp_path) / f"{target}.yml"
    playbook.write_text(f"- hosts: localhost\n  gather_facts: false\n  roles: [{target}]\n")
    argv = local_argv("ansible-playbook")
    for name, value in (extra_vars or {}).items():
        argv += ["-e", f"{name}={value}"]
    argv.append(str(playbook))
    if host is not None:
        return host.run(argv, check=False, timeout=timeout, env=ansible_env())
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=ansible_env(), check=False
    )


def run_adhoc(host: Host, argv: list[str], timeout: float = 300) -> tuple[str, dict]:
    """Run an `ansible localhost -m MODULE` command line in `host` with one-line output (-o);
    returns the status (SUCCESS, CHANGED, FAILED!...) and the module's result."""
    result = host.run([*argv, "-o"], check=False, timeout=timeout, env=ansible_env())
    lines = result.stdout.strip().splitlines()
    line = lines[-1] if lines else ""
    assert " => " in line, result.stdout + result.stderr
    status, data = line.split(" => ", 1)
    return status.split(" | ")[-1], json.loads(data)
