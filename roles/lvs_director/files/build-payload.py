"""Packs Python packages for a host's virtualenv: pure-Python wheels and package directories.

Runs on the controller (the lvs_director role calls it with ansible_playbook_python):

    build-payload.py OUTPUT_TAR SOURCE...

SOURCE is a wheel file (its content is taken as is, e.g. pyroute2) or a package directory
(e.g. this collection's plugins/module_utils/lvsagent). The tar is extracted into site-packages.

The tar depends on the files' contents only: members sorted, files only (no directories, no
__pycache__/*.pyc), owner root, fixed modes, and a modification time derived from each file's
content (a hash), not from the checkout. So the same agent gives a byte-identical tar on any
controller, and a changed file gets another time, which makes Python's timestamp-based .pyc
caches on the host stale as they should be. OUTPUT_TAR is only rewritten when its content
changes; prints "changed" or "unchanged" for the role's changed_when.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import zipfile


def content_mtime(data: bytes) -> int:
    """A modification time that changes with the content: 2001-09-09 plus up to ~3 years."""
    return 1_000_000_000 + int.from_bytes(hashlib.sha256(data).digest()[:4], "big") % 100_000_000


def source_files(package_dir: str) -> list[tuple[str, bytes]]:
    base = os.path.dirname(os.path.abspath(package_dir))
    found = []
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in files:
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                data = handle.read()
            found.append((os.path.relpath(path, base), data))
    return found


def wheel_files(wheel: str) -> list[tuple[str, bytes]]:
    found = []
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir() or "__pycache__" in info.filename:
                continue
            found.append((info.filename, archive.read(info)))
    return found


def build(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = content_mtime(data)
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    output, sources = argv[1], argv[2:]
    members = []
    for source in sources:
        members += wheel_files(source) if source.endswith(".whl") else source_files(source)
    payload = build(members)
    try:
        with open(output, "rb") as handle:
            if handle.read() == payload:
                print("unchanged")
                return 0
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output + ".tmp", "wb") as handle:
        handle.write(payload)
    os.replace(output + ".tmp", output)
    print("changed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
