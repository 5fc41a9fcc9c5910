"""Real keepalived inside a lab host, with its own configuration, pid files and log."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .netns import Host


def log_path(host: Host, tmp_path: Path) -> Path:
    return Path(tmp_path) / f"keepalived-{host.short_name}.log"


def start(
    host: Host, conf_text: str, tmp_path: Path, extra_args: Sequence[str] = ()
) -> subprocess.Popen:
    """Start `keepalived` in the foreground in `host`; its output goes to `log_path()`.

    Own pid files (-p/-r/-c/-b) let several instances run on one machine; `extra_args`
    are further options (e.g. `-i ID`).
    """
    if shutil.which("keepalived") is None:
        raise RuntimeError("keepalived is not installed (apt-get install keepalived)")
    base = Path(tmp_path) / f"keepalived-{host.short_name}"
    conf = base.with_suffix(".conf")
    conf.write_text(conf_text)
    pids = [f"{base}-{kind}.pid" for kind in ("main", "vrrp", "checkers", "bfd")]
    argv = ["keepalived", "-n", "-l", "-D", "-f", str(conf), *extra_args]
    for flag, pid_file in zip(("-p", "-r", "-c", "-b"), pids):
        argv += [flag, pid_file]
    with open(log_path(host, tmp_path), "ab") as log:
        return host.popen(argv, stdout=log, stderr=subprocess.STDOUT)
