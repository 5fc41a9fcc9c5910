"""Classic BPF programs that sort received IPv4 adverts in the kernel: the possibly real ones
to the socket the agent reads first, the certainly bad ones to a bulk socket.

One Python core can send a LAN more than half a million forged adverts a second; the agent
reads a few tens of thousands. Unfiltered, such a flood keeps the socket's queue full and the
master's real adverts are lost with the rest, so the backup takes over. With these filters the
kernel keeps off the first socket the packets the rules of `receive.ReceiveRules` certainly drop:
unknown VRID, wrong TTL, version, destination kind, source (check_unicast_src), auth type or
password, interval (0, or another one in v2) and bad checksum (computed here for packets that
carry as many addresses as the instance, the only ones keepalived 2.2.7 accepts). What it
cannot judge (IP options, another address count) goes to the bulk socket too: a flood cannot
use it to reach the first one. Both sockets feed the same receive path, which applies every
rule again: the filters only sort, they never accept or drop on their own, and what the bulk
socket holds is still counted and logged per reason (or accepted, for the odd advert with
another address count). Only what overflows the bulk queue in a flood goes uncounted, as
any queue overflow does.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from collections.abc import Iterable

from . import packet

SO_ATTACH_FILTER = 26
PASS = 0x40000  # bytes of the packet to keep: all of it
DROP = 0

# classic BPF opcodes (linux/filter.h)
LD_W, LD_H, LD_B = 0x20, 0x28, 0x30  # A = packet[k] (absolute offset)
LD_LEN = 0x80  # A = the packet's length
LD_MEM, LDX_MEM, ST = 0x60, 0x61, 0x02  # A = M[k], X = M[k], M[k] = A
LDX_IMM = 0x01
ADD_X, ADD_K, AND_K, RSH_K = 0x0C, 0x04, 0x54, 0x74
TAX, TXA = 0x07, 0x87
JEQ_K, JGE_K, JA = 0x15, 0x35, 0x05
RET_K = 0x06

IP_HEADER = 20  # keepalived sends no IP options; a header with options goes to the bulk socket
TTL, DESTINATION, SOURCE = 8, 16, 12


class Program:
    """Instructions, with the two forms the checks take: `require` and `compare`."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int, int, int]] = []

    def op(self, code: int, k: int = 0, jt: int = 0, jf: int = 0) -> None:
        self.code.append((code, jt, jf, k & 0xFFFFFFFF))

    def require(self, load: int, offset: int, value: int, otherwise: int = DROP) -> None:
        """Go on when packet[offset] == value, else return `otherwise`."""
        self.op(load, offset)
        self.op(JEQ_K, value, jt=1)
        self.op(RET_K, otherwise)

    def require_any(self, load: int, offset: int, values: list[int]) -> None:
        self.op(load, offset)
        for index, value in enumerate(values):
            self.op(JEQ_K, value, jt=len(values) - index)
        self.op(RET_K, DROP)

    def fold(self) -> None:
        """A = one's complement 16-bit fold of A (twice: enough for any sum here)."""
        for _round in range(2):
            self.op(ST, 1)
            self.op(AND_K, 0xFFFF)
            self.op(ST, 2)
            self.op(LD_MEM, 1)
            self.op(RSH_K, 16)
            self.op(LDX_MEM, 2)
            self.op(ADD_X)

    def sum_halfwords(self, offsets: Iterable[int]) -> None:
        """A = X = the sum of the 16-bit words at `offsets`."""
        self.op(LDX_IMM, 0)
        for offset in offsets:
            self.op(LD_H, offset)
            self.op(ADD_X)
            self.op(TAX)
        self.op(TXA)

    def pack(self) -> bytes:
        return b"".join(struct.pack("HBBI", *instruction) for instruction in self.code)


def instance_block(rules) -> Program:
    """The checks of one instance (its VRID matched); ends with PASS or DROP."""
    block = Program()
    count = len(rules.vips)
    length = packet.HEADER_LEN + 4 * count + (packet.AUTH_DATA_LEN if rules.version == 2 else 0)
    vrrp = IP_HEADER
    block.require(LD_B, vrrp + 3, count)
    block.op(LD_LEN)
    block.op(JGE_K, IP_HEADER + length, jt=1)  # long enough (padding is allowed)
    block.op(RET_K, DROP)
    if not rules.unicast:
        block.require(LD_B, TTL, packet.VRRP_TTL)
    block.require(LD_B, vrrp, rules.version << 4 | packet.ADVERTISEMENT)
    block.op(LD_B, DESTINATION)
    block.op(AND_K, 0xF0)
    block.op(JEQ_K, 0xE0, jt=0 if rules.unicast else 1, jf=1 if rules.unicast else 0)
    block.op(RET_K, DROP)
    if rules.peers is not None:
        peers = [struct.unpack("!I", peer.packed)[0] for peer in rules.peers if peer.version == 4]
        block.require_any(LD_W, SOURCE, peers)
    if rules.version == 2:
        block.require(LD_B, vrrp + 4, rules.auth_type)
        if rules.auth_type == packet.AUTH_PASS:
            password = vrrp + packet.HEADER_LEN + 4 * count
            for word in range(2):
                expected = struct.unpack_from("!I", rules.auth_data, 4 * word)[0]
                block.require(LD_W, password + 4 * word, expected)
        block.require(LD_B, vrrp + 5, int(rules.interval))
    else:
        block.op(LD_H, vrrp + 4)
        block.op(AND_K, 0x0FFF)
        block.op(JEQ_K, 0, jf=1)
        block.op(RET_K, DROP)
    block.sum_halfwords(range(vrrp, vrrp + length, 2))
    if rules.version == 3:
        block.op(ST, 0)
    block.fold()
    block.op(JEQ_K, 0xFFFF, jf=1)
    block.op(RET_K, PASS)
    if rules.version == 3:  # else with the IPv4 pseudo-header, keepalived's default
        block.op(LD_MEM, 0)
        block.op(ADD_K, packet.IPPROTO_VRRP + length)
        for offset in (SOURCE, SOURCE + 2, DESTINATION, DESTINATION + 2):
            block.op(TAX)
            block.op(LD_H, offset)
            block.op(ADD_X)
        block.fold()
        block.op(JEQ_K, 0xFFFF, jf=1)
        block.op(RET_K, PASS)
    block.op(RET_K, DROP)
    return block


def ipv4_programs(rules_by_vrid: dict) -> tuple[bytes, bytes]:
    """The filter of the socket the agent reads first (what looks in every way like a real
    advert of one of the instances) and its inverse, for the bulk socket (everything else:
    read when there is time, to count and log it, and to judge the odd rest)."""
    program = Program()
    program.op(LD_LEN)
    program.op(JGE_K, IP_HEADER + 4, jt=1)  # every load below stays inside the packet
    program.op(RET_K, DROP)
    program.require(LD_B, 0, 0x45)
    for vrid, rules in rules_by_vrid.items():
        block = instance_block(rules)
        program.op(LD_B, IP_HEADER + 1)
        program.op(JEQ_K, vrid, jt=1)
        program.op(JA, len(block.code))  # a block may be longer than a conditional jump
        program.code += block.code
    program.op(RET_K, DROP)
    inverse = Program()
    swap = {PASS: DROP, DROP: PASS}
    inverse.code = [(c, jt, jf, swap[k] if c == RET_K else k) for c, jt, jf, k in program.code]
    return program.pack(), inverse.pack()


def attach(sock: socket.socket, program: bytes) -> None:
    """SO_ATTACH_FILTER: the kernel copies the program, so the buffer may go afterwards."""
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("HP", len(program) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
