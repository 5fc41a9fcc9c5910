"""A packet flood from a lab host: pre-built Ethernet frames, sent round robin on one core.

`start(host, frames, seconds, workdir)` runs this module inside the host (`python -m
testbed.flood IFNAME SECONDS FILE`, one hex frame a line); it writes every frame at once
through an AF_PACKET socket for `seconds`, as fast as one Python process can, and prints
`sent N` at the end. Frames go out of the host's own interface only: the lab's bridge.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def ipv4_frame(
    dst_mac: str, src_mac: str, source: str, destination: str, payload: bytes, ttl: int = 255
) -> bytes:
    """Ethernet + IPv4 (protocol 112, TOS 0xc0, header checksum right) around `payload`."""
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0xC0,
        20 + len(payload),
        0,
        0,
        ttl,
        112,
        0,
        socket.inet_aton(source),
        socket.inet_aton(destination),
    )
    total = sum(struct.unpack("!10H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
    ethernet = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
    return ethernet + b"\x08\x00" + header + payload


def multicast_mac(group: str) -> str:
    low = socket.inet_aton(group)[1:]
    return "01:00:5e:" + ":".join(
        f"{byte & (0x7F if i == 0 else 0xFF):02x}" for i, byte in enumerate(low)
    )


def start(host, frames: list[bytes], seconds: float, workdir: Path, python: str):
    """Start the flood in `host`; `proc.communicate()` gives `sent N`."""
    path = Path(workdir) / f"flood-{host.short_name}.hex"
    path.write_text("".join(frame.hex() + "\n" for frame in frames))
    argv = ["env", f"PYTHONPATH={TESTS}", python, "-m", "testbed.flood"]
    return host.popen(
        [*argv, host.ifname, str(seconds), str(path)], stdout=subprocess.PIPE, text=True
    )


def flood(ifname: str, seconds: float, frames: list[bytes]) -> int:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((ifname, 0))
    send = sock.send
    sent = 0
    deadline = time.monotonic() + seconds
    batch = frames * max(1, 256 // len(frames))
    while time.monotonic() < deadline:
        for frame in batch:
            try:
                send(frame)
            except OSError:  # a full queue: the flood goes on
                continue
        sent += len(batch)
    return sent


if __name__ == "__main__":
    ifname, seconds, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    lines = Path(path).read_text().split()
    print(f"sent {flood(ifname, seconds, [bytes.fromhex(line) for line in lines])}", flush=True)
