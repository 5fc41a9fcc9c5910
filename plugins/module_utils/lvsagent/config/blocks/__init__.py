"""The parser's blocks, one module per family: global_defs, the VRRP trackers (vrrp_script,
track_file, vrrp_track_process), vrrp (vrrp_instance, vrrp_sync_group, static addresses,
routes and rules), lvs (virtual_server_group, virtual_server, real_server) and checkers.

Every block reads its values with the one `values.Reader` and keeps what it remembers in the
`ParseState` it is given: no block reaches into another's attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..model import Config


@dataclass
class ParseState:
    """What one block's reading leaves for another: the configuration being built, and what
    keepalived fixes while it reads."""

    config: Config = field(default_factory=Config)
    instance_keywords: dict = field(default_factory=dict)  # id(instance) -> keyword -> Location
    rule_priorities: dict = field(default_factory=dict)  # family -> next preference by default
    default_interface: Optional[str] = None  # as keepalived: fixed by its first use
