"""The record of the IPVS services this agent owns, so a killed run's leftovers can be removed.

keepalived removes its services on exit; an agent killed with SIGKILL cannot. So the agent
keeps in its state folder the list of services it created or adopted (and those it retired
but failed to delete). At start, the recorded services the new configuration no longer
declares are orphans and are deleted; a service never recorded is never touched, and an
unreadable record only costs that clean-up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Optional

from .. import files
from ..ipvs import ServiceKey, service_key_dict

log = logging.getLogger("lvsagent.lvs")

OWNED_FILE = "ipvs-services.json"  # in the agent's state folder (--state-dir)


def _sort_key(key: ServiceKey) -> tuple:
    return key.family, key.fwmark or 0, key.protocol or "", key.address or "", key.port or 0


class OwnedServices:
    """Reads and replaces (atomically) the JSON list of owned service keys in `path`."""

    def __init__(self, path: str):
        self.path = path
        self._saved: Optional[frozenset] = None  # what the file holds, once known

    def load(self) -> set:
        """The recorded keys; none (with a warning) when the file is unreadable or corrupt."""
        try:
            text = files.read(self.path)
        except (OSError, UnicodeDecodeError) as error:
            self._warn(error)
            return set()
        if text is None:
            self._saved = frozenset()
            return set()
        try:
            keys = {ServiceKey(**entry) for entry in json.loads(text)["services"]}
        except (ValueError, TypeError, KeyError) as error:
            self._warn(error)
            return set()
        self._saved = frozenset(keys)
        return keys

    def save(self, keys: Iterable[ServiceKey]) -> None:
        """Records `keys` unless the file already holds them; a failure is only logged."""
        keys = frozenset(keys)
        if keys == self._saved:
            return
        services = [service_key_dict(key) for key in sorted(keys, key=_sort_key)]
        try:
            files.write_atomic(self.path, json.dumps({"services": services}, indent=1) + "\n")
        except OSError as error:
            log.warning("Cannot record the IPVS services lvs-agent owns: %s", error)
            return
        self._saved = keys

    def _warn(self, error: Exception) -> None:
        log.warning(
            "Cannot read %s (%s): services a previous run left behind are not removed",
            self.path,
            error,
        )
