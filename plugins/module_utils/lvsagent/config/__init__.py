"""keepalived.conf for lvs-agent: parse, check and model a configuration.

    load(path, *, host_checks=True, overrides=None) -> Config
    loads(text, filename="<string>", *, host_checks=False) -> Config

Both raise ConfigError (with every problem, each `FILE:LINE: message`) when the
configuration has an error; warnings are returned in `Config.warnings`.
"""

from __future__ import annotations

from .errors import ConfigError, Problem
from .model import (
    CheckSettings,
    Config,
    GlobalDefs,
    Location,
    RealServer,
    Script,
    ScriptUser,
    SorryServer,
    SyncGroup,
    TrackInterface,
    TrackScript,
    VirtualAddress,
    VirtualServer,
    VirtualServerGroup,
    VirtualServerGroupEntry,
    VrrpInstance,
    VrrpScript,
)
from .parser import load, loads

__all__ = [
    "CheckSettings",
    "Config",
    "ConfigError",
    "GlobalDefs",
    "Location",
    "Problem",
    "RealServer",
    "Script",
    "ScriptUser",
    "SorryServer",
    "SyncGroup",
    "TrackInterface",
    "TrackScript",
    "VirtualAddress",
    "VirtualServer",
    "VirtualServerGroup",
    "VirtualServerGroupEntry",
    "VrrpInstance",
    "VrrpScript",
    "load",
    "loads",
]
