"""Command line of lvs-agent.

Each sub-command lives in its own module and is imported only when it runs, so that
`check-config` on a controller never needs pyroute2 and `--help` always works.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from . import __version__

DEFAULT_CONFIG = "/etc/lvs-agent/lvs-agent.conf"
DEFAULT_CONTROL_SOCKET = "/run/lvs-agent/control.sock"

# sub-command -> (module in this package, function taking the parsed arguments, returning exit code)
COMMANDS = {
    "check-config": ("configcmd", "check_config"),
    "dump-config": ("configcmd", "dump_config"),
    "run": ("agent", "run"),
    "status": ("control", "status_command"),
    "reload": ("control", "reload_command"),
    "switch": ("switch", "switch_command"),
    "genhash": ("genhash", "genhash"),
}


def say(line: object, stream: Any = None) -> None:
    """One line of command output (module_utils code may not print(): ansible-test's pylint)."""
    (stream or sys.stdout).write(f"{line}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lvs-agent",
        description="keepalived-compatible VRRP and IPVS health-checking agent",
    )
    parser.add_argument("--version", action="version", version=f"lvs-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    check = sub.add_parser("check-config", help="validate a keepalived-syntax configuration")
    check.add_argument("file", help="configuration file")
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")
    check.add_argument(
        "--no-host-checks",
        action="store_true",
        help="skip checks against this host (interfaces), e.g. on a controller",
    )

    dump = sub.add_parser("dump-config", help="print the normalised configuration model")
    dump.add_argument("file", help="configuration file")
    dump.add_argument("--json", action="store_true", help="JSON output (the default)")

    run = sub.add_parser("run", help="run VRRP and the IPVS health checks")
    run.add_argument("-f", "--config", default=DEFAULT_CONFIG, help="configuration file")
    for command in (check, dump, run):
        command.add_argument(
            "-i",
            "--config-id",
            help="the id `@ID` configuration lines are compared with, as keepalived's -i "
            "(default: this host's name up to its first dot)",
        )
    run.add_argument("--control-socket", default=DEFAULT_CONTROL_SOCKET)
    run.add_argument(
        "--state-dir",
        help="where the agent records what it created, to clean up after a crash "
        "(default: the control socket's folder)",
    )
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    status = sub.add_parser("status", help="state of the running agent")
    status.add_argument("--control-socket", default=DEFAULT_CONTROL_SOCKET)
    status.add_argument("--json", action="store_true", help="JSON output")

    reload = sub.add_parser("reload", help="ask the running agent to re-read its configuration")
    reload.add_argument("--control-socket", default=DEFAULT_CONTROL_SOCKET)
    reload.add_argument(
        "--allow-empty",
        action="store_true",
        help="take a configuration without any vrrp_instance or virtual_server "
        "(refused otherwise: an emptied or truncated file is the likelier cause)",
    )
    switch = sub.add_parser(
        "switch",
        help="hand this director from keepalived to lvs-agent or back, keeping the IPVS table",
    )
    switch.add_argument("--control-socket", default=DEFAULT_CONTROL_SOCKET)
    switch.add_argument("-i", "--config-id", help="as for run")
    switch.add_argument("--to", required=True, choices=["agent", "keepalived"], help="new daemon")
    switch.add_argument("-f", "--config", required=True, help="the configuration both read")
    switch.add_argument(
        "--keepalived-pid-file", default="/run/keepalived.pid", help="its main pid file"
    )
    switch.add_argument(
        "--keepalived-data",
        default="/tmp/keepalived.data",
        help="where keepalived writes its state on SIGUSR1 ($TMPDIR/keepalived.data)",
    )
    switch.add_argument(
        "--start",
        help="command starting the new daemon (default: systemctl start lvs-agent.service "
        "or keepalived.service)",
    )
    switch.add_argument(
        "--after-kill",
        help="command run once the old daemon is killed (default: systemctl stop of its unit, "
        "which also cancels a Restart=on-failure)",
    )
    switch.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")

    digest = sub.add_parser(
        "genhash", help="MD5 digest of a url's body for HTTP_GET, as keepalived's genhash"
    )
    digest.add_argument("-s", "--server", required=True, help="the real server's address")
    digest.add_argument("-p", "--port", type=int, help="its port (default 80, 443 with -S)")
    digest.add_argument("-u", "--url", required=True, help="the url's path, e.g. /index.html")
    digest.add_argument("-S", "--use-ssl", action="store_true", help="connect with TLS (SSL_GET)")
    digest.add_argument("-V", "--use-virtualhost", help="the Host header to send")
    digest.add_argument(
        "-P",
        "--protocol",
        choices=("1.0", "1.0c", "1.1"),
        help="as http_protocol: 1.0 (the default), 1.0c (1.0 with Connection: close), 1.1",
    )
    digest.add_argument("-t", "--timeout", type=float, default=5.0, help="seconds (default 5)")
    digest.add_argument("-v", "--verbose", action="store_true", help="print the headers too")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, function_name = COMMANDS[args.command]
    module = importlib.import_module(f".{module_name}", __package__)
    return getattr(module, function_name)(args)
