"""Real keepalived inside a lab host, with its own configuration, pid files and log."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .netns import Host

PID_FLAGS = {"-p": "main", "-r": "vrrp", "-c": "checkers", "-b": "bfd"}


def log_path(host: Host, tmp_path: Path) -> Path:
    return Path(tmp_path) / f"keepalived-{host.short_name}.log"


def config_path(host: Host, tmp_path: Path) -> Path:
    return Path(tmp_path) / f"keepalived-{host.short_name}.conf"


def pid_file(host: Host, tmp_path: Path, kind: str = "main") -> Path:
    return Path(tmp_path) / f"keepalived-{host.short_name}-{kind}.pid"


def command(
    host: Host, conf_text: str, tmp_path: Path, extra_args: Sequence[str] = ()
) -> list[str]:
    """Writes the configuration; returns the argv of a foreground keepalived logging to stdout.

    Own pid files (-p/-r/-c/-b) let several instances run on one machine; `extra_args`
    are further options (e.g. `-i ID`).
    """
    if shutil.which("keepalived") is None:
        raise RuntimeError("keepalived is not installed (apt-get install keepalived)")
    conf = config_path(host, tmp_path)
    conf.write_text(conf_text)
    argv = ["keepalived", "-n", "-l", "-D", "-f", str(conf), *extra_args]
    for flag, kind in PID_FLAGS.items():
        argv += [flag, str(pid_file(host, tmp_path, kind))]
    return argv


def start(
    host: Host, conf_text: str, tmp_path: Path, extra_args: Sequence[str] = ()
) -> subprocess.Popen:
    """Start `keepalived` (see `command()`) in `host`; its output goes to `log_path()`."""
    argv = command(host, conf_text, tmp_path, extra_args)
    with open(log_path(host, tmp_path), "ab") as log:
        return host.popen(argv, stdout=log, stderr=subprocess.STDOUT)
