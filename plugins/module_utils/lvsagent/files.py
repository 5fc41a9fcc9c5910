"""Files the collection manages: read, replaced atomically, removed.

Shared by the vrrp_instance drop-ins (secrets inside: 0600) and the arp_suppress files.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from typing import Optional


def read(path: str) -> Optional[str]:
    """The file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def mode_of(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None


def write_atomic(path: str, text: str, mode: int = 0o600) -> None:
    """Replace `path` in one step; the new file has `mode` from its creation (secrets inside)
    and the owner and group of the file it replaces (as Ansible's atomic_move keeps them);
    parent folders are created."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o755, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".lvs-ha-")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            _keep_owner(handle.fileno(), path)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def _keep_owner(fd: int, path: str) -> None:
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        return
    with suppress(PermissionError):  # not root: the file becomes ours, as atomic_move lets it
        os.fchown(fd, existing.st_uid, existing.st_gid)


def remove(path: str) -> None:
    """Remove the file (or a symbolic link) when it exists."""
    if os.path.lexists(path):
        os.unlink(path)
