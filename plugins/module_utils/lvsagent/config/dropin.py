"""Files of the agent's include directory (`conf.d`), judged with the whole configuration.

The vrrp_instance module writes one file per instance there. Before a file is written or
removed, the main configuration is loaded as it would be afterwards (`load(..., overrides=)`),
so a change the agent would refuse is never made.
"""

from __future__ import annotations

import os
from typing import Optional

from .errors import ConfigError, Problem
from .model import Config
from .parser import load

DEFAULT_CONFIG_DIR = "/etc/lvs-agent/conf.d"
HEADER = "# Managed by lvs.ha.vrrp_instance: local changes are overwritten.\n"


def instance_path(config_dir: str, name: str) -> str:
    """The file of one vrrp_instance: CONFIG_DIR/vrrp_instance_NAME.conf."""
    if not name or "/" in name or name.startswith(".") or any(c.isspace() for c in name):
        raise ValueError(f"vrrp_instance name {name!r}: no '/', blanks or leading '.' allowed")
    return os.path.join(os.path.abspath(config_dir), f"vrrp_instance_{name}.conf")


def validate(main_config: str, path: str, text: Optional[str], *, host_checks: bool) -> Config:
    """The configuration `main_config` would be with `path` holding `text` (None: removed).

    Raises ConfigError with every problem; also when `text` is given and `main_config` does
    not include `path` (the agent would never read it).
    """
    path = os.path.abspath(path)
    config = load(main_config, host_checks=host_checks, overrides={path: text})
    if text is not None and path not in {os.path.abspath(name) for name in config.files}:
        folder = os.path.dirname(path)
        raise ConfigError(
            [
                Problem(
                    main_config,
                    0,
                    f"{path} would not be read: {main_config} has no include for it "
                    f"(add the line: include {folder}/*.conf)",
                )
            ]
        )
    return config
