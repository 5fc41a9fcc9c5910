"""Small helpers shared by the config tests."""

from __future__ import annotations

import textwrap

import pytest

from lvsagent.config import Config, ConfigError, loads

MINIMAL_INSTANCE = """
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.0.0.100
    }
}
"""


def parse(text: str) -> Config:
    return loads(textwrap.dedent(text), "test.conf")


def errors_of(text: str) -> list[str]:
    """Every problem of a configuration that must fail, as `LINE: message` strings."""
    with pytest.raises(ConfigError) as raised:
        parse(text)
    return [f"{p.line}: {p.message}" for p in raised.value.problems if p.severity == "error"]


def warnings_of(config: Config) -> list[str]:
    return [f"{p.line}: {p.message}" for p in config.warnings]
