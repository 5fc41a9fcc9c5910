"""Records of what this agent owns in the kernel, so that a killed run's leftovers are removed.

keepalived removes its IPVS services and VIPs on exit; an agent killed with SIGKILL cannot.
So the agent keeps in its state folder (`run --state-dir`) the IPVS services it created or
adopted and the VIPs its configuration names. At start, what is recorded but no longer
declared is an orphan and is removed; what was never recorded is never touched, and an
unreadable record only costs that clean-up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from collections.abc import Iterable
from typing import Callable, Optional

from . import files
from .config.model import Config, VirtualAddress
from .ipvs import ServiceKey, service_key_dict

log = logging.getLogger("lvsagent.owned")

SERVICES_FILE = "ipvs-services.json"
VIPS_FILE = "vrrp-vips.json"

Vip = tuple  # (ipaddress.IPv4Interface | IPv6Interface, interface name)


class OwnedRecord:
    """A JSON file `{kind: [entry, ...]}`, read leniently and replaced atomically."""

    def __init__(
        self, path: str, kind: str, encode: Callable[..., dict], decode: Callable[[dict], object]
    ):
        self.path = path
        self.kind = kind
        self._encode = encode
        self._decode = decode
        self._saved: Optional[frozenset] = None  # what the file holds, once known

    def load(self) -> set:
        """The recorded items; none (with a warning) when the file is unreadable or corrupt."""
        try:
            text = files.read(self.path)
        except (OSError, UnicodeDecodeError) as error:
            self._warn(error)
            return set()
        if text is None:
            self._saved = frozenset()
            return set()
        try:
            items = {self._decode(entry) for entry in json.loads(text)[self.kind]}
        except (ValueError, TypeError, KeyError) as error:
            self._warn(error)
            return set()
        self._saved = frozenset(items)
        return items

    def save(self, items: Iterable) -> None:
        """Records `items` unless the file already holds them; a failure is only logged."""
        items = frozenset(items)
        if items == self._saved:
            return
        entries = sorted((self._encode(item) for item in items), key=json.dumps)
        try:
            files.write_atomic(self.path, json.dumps({self.kind: entries}, indent=1) + "\n")
        except OSError as error:
            log.warning("Cannot record the %s lvs-agent owns: %s", self.kind, error)
            return
        self._saved = items

    def _warn(self, error: Exception) -> None:
        log.warning(
            "Cannot read %s (%s): %s a previous run left behind are not removed",
            self.path,
            error,
            self.kind,
        )


def owned_services(state_dir: str) -> OwnedRecord:
    """The IPVS services (ServiceKey) the agent created or adopted."""
    return OwnedRecord(
        os.path.join(state_dir, SERVICES_FILE),
        "services",
        service_key_dict,
        lambda entry: ServiceKey(**entry),
    )


def _vip_entry(vip: Vip) -> dict:
    address, dev = vip
    return {"address": str(address), "dev": dev}


def _vip_from(entry: dict) -> Vip:
    dev = entry["dev"]
    if not isinstance(dev, str) or not dev:
        raise ValueError(f"{dev!r} is not an interface name")
    return ipaddress.ip_interface(entry["address"]), dev


def owned_vips(state_dir: str) -> OwnedRecord:
    """The VIPs (address with prefix, interface) the configuration names."""
    return OwnedRecord(os.path.join(state_dir, VIPS_FILE), "vips", _vip_entry, _vip_from)


def declared_vips(config: Config) -> set:
    """(address, interface) of every VIP; one without an interface has nowhere to be."""
    vips = {
        (vip.address, vip.dev or instance.interface)
        for instance in config.vrrp_instances
        for vip in (*instance.virtual_ipaddresses, *instance.virtual_ipaddresses_excluded)
    }
    return {(address, dev) for address, dev in vips if dev}


async def remove_orphan_vips(record: OwnedRecord, config: Config, addresses) -> None:
    """Before VRRP starts: recorded VIPs the configuration no longer names leave their interface.

    `addresses` offers AddressManager's `present` and `remove`. The record then holds the
    declared VIPs, and the orphans that could not be removed.
    """
    declared = declared_vips(config)
    stuck = set()
    for address, dev in sorted(await asyncio.to_thread(record.load) - declared, key=str):
        vip = VirtualAddress(address, dev)
        try:
            if await addresses.present(vip, dev):
                log.info("Removing VIP %s from %s left by a previous run", address, dev)
                await addresses.remove(vip, dev)
        except Exception as error:  # a vanished interface, a netlink error: keep it recorded
            log.warning("Cannot remove VIP %s from %s: %s", address, dev, error)
            stuck.add((address, dev))
    await asyncio.to_thread(record.save, declared | stuck)
