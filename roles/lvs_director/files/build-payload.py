#!/usr/bin/env python3
"""Packs Python packages for a host's virtualenv: pure-Python wheels and package directories.

Runs on the controller (the lvs_director role calls it with ansible_playbook_python):

    build-payload.py OUTPUT_TAR SOURCE...

SOURCE is a wheel file (its content is taken as is, e.g. pyroute2) or a package directory
(e.g. this collection's plugins/module_utils/lvsagent). The tar is extracted into site-packages.

The tar is reproducible: members sorted, files only (no directories, no __pycache__/*.pyc),
owner root, fixed modes, each file keeping its own modification time (the source's, or the one
recorded in the wheel), so Python's timestamp-based .pyc files compiled on the director stay valid
and an unchanged agent gives a byte-identical tar. OUTPUT_TAR is only rewritten when its content
changes; prints "changed" or "unchanged" for the role's changed_when.
"""

from __future__ import annotations

import calendar
import io
import os
import sys
import tarfile
import zipfile


def source_files(package_dir: str) -> list[tuple[str, bytes, int]]:
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
            found.append((os.path.relpath(path, base), data, int(os.stat(path).st_mtime)))
    return found


def wheel_files(wheel: str) -> list[tuple[str, bytes, int]]:
    found = []
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir() or "__pycache__" in info.filename:
                continue
            mtime = calendar.timegm((*info.date_time, 0, 0, 0))
            found.append((info.filename, archive.read(info), mtime))
    return found


def build(members: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, mtime in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = mtime
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
