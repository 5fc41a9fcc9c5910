"""keepalived.conf parser (being written: see issue 3)."""

from __future__ import annotations

from typing import Optional

from .errors import ConfigError, Problem
from .model import Config


def load(path: str, *, host_checks: bool = True, overrides: Optional[dict] = None) -> Config:
    """Read, parse and check the configuration at `path` (and the files it includes)."""
    raise ConfigError([Problem(path, 0, "the configuration parser is not written yet")])


def loads(text: str, filename: str = "<string>", *, host_checks: bool = False) -> Config:
    """Parse and check configuration text; includes are resolved relative to `filename`."""
    raise ConfigError([Problem(filename, 0, "the configuration parser is not written yet")])
