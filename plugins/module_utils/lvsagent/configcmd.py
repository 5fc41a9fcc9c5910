"""`check-config` and `dump-config`: validate a configuration, or show what the agent reads.

Both work without pyroute2 and without root, so a controller can validate a template
(`--no-host-checks`) before it is installed on a director.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import sys
from typing import Any

from .cli import say
from .config import Config, ConfigError, load
from .config.redact import MASK, SECRET_KEYWORDS


def summary(config: Config) -> str:
    vips = sum(len(instance.virtual_ipaddresses) for instance in config.vrrp_instances)
    real_servers = sum(len(server.real_servers) for server in config.virtual_servers)
    return (
        f"{len(config.vrrp_instances)} VRRP instance(s), {vips} VIP(s), "
        f"{len(config.virtual_servers)} virtual server(s), {real_servers} real server(s)"
    )


def check_config(args: Any) -> int:
    """Exit 0 when the file is valid (warnings allowed unless --strict), 1 otherwise."""
    try:
        config = load(args.file, host_checks=not args.no_host_checks, config_id=args.config_id)
    except ConfigError as error:
        for problem in error.problems:
            say(problem, sys.stderr)
        return 1
    if args.strict and config.warnings:
        for problem in config.warnings:
            say(problem, sys.stderr)
        say(f"{args.file}: warnings are errors with --strict", sys.stderr)
        return 1
    for problem in config.warnings:
        say(problem)
    say(f"{args.file}: configuration OK: {summary(config)}")
    return 0


def to_plain(value: Any, *, locations: bool = True) -> Any:
    """The model as JSON-ready data, with secrets masked (and without `location`s if asked)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        plain = {}
        for item in dataclasses.fields(value):
            content = getattr(value, item.name)
            if item.name == "location" and not locations:
                continue
            if item.name in SECRET_KEYWORDS and content is not None:
                plain[item.name] = MASK
            else:
                plain[item.name] = to_plain(content, locations=locations)
        return plain
    if isinstance(value, dict):
        return {str(key): to_plain(content, locations=locations) for key, content in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(content, locations=locations) for content in value]
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return value.with_prefixlen
    if isinstance(value, bytes):  # UDP_CHECK's payload and reply, as their HEX_STR
        return value.hex()
    return value


def dump_config(args: Any) -> int:
    """Print the normalised model as JSON; on errors print them and exit 1."""
    try:
        config = load(args.file, host_checks=False, config_id=args.config_id)
    except ConfigError as error:
        for problem in error.problems:
            say(problem, sys.stderr)
        return 1
    for problem in config.warnings:
        say(problem, sys.stderr)
    data = to_plain(config)
    data["warnings"] = [str(problem) for problem in config.warnings]
    say(json.dumps(data, indent=2, sort_keys=False))
    return 0
