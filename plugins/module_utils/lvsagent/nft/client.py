"""libnftables' JSON API, loaded with ctypes and driven from one worker thread.

The same library the `nft` command is built on, without a process per call: a listing or a
transaction costs well under a millisecond instead of the 10-25 ms of running `nft -j`
(measured on this project's machines), which is what keeps a health change quick. Debian's
python3-nftables binding does exactly this, but is not importable from every Python the agent
runs on. The context is not thread-safe, so one thread owns it; the loop only awaits.
Commands go in as JSON documents (`{"nftables": [...]}`): one document, one transaction.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import socket
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from ..ipvs import IpvsError
from ..netlink import HAS_PYROUTE2, IPRoute, NetlinkError, missing_pyroute2

LIBRARY = "libnftables.so.1"  # by soname: ctypes.util.find_library would run ldconfig
OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON
ABSENT = "No such file or directory"  # how libnftables says a listed object does not exist

# nfnetlink's NFT_MSG_GETGEN: the ruleset generation, which every committed transaction in
# this network namespace (the agent's or anyone's) moves on by one.
NETLINK_NETFILTER = 12
GETGEN = (10 << 8) | 16  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN
NLMSG_ERROR = 2
NFTA_GEN_ID = 1
NETLINK_TIMEOUT = 2.0


class NftError(IpvsError):
    """nftables refused or failed; an IpvsError so the engine handles it as any data plane's."""


def load_library():
    """libnftables with the prototypes this client calls, or NftError naming the package."""
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError:
        raise NftError(
            "lvs_data_plane nftables needs libnftables (Debian: apt-get install nftables)"
        ) from None
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_char_p
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    return lib


def read_generation(sock: socket.socket) -> int:
    """The ruleset generation, asked over an open NETLINK_NETFILTER socket."""
    request = struct.pack("=IHHII", 20, GETGEN, 1, 0, 0) + struct.pack("=BBH", 0, 0, 0)
    sock.send(request)
    reply = sock.recv(4096)
    length, kind = struct.unpack_from("=IH", reply)
    if kind == NLMSG_ERROR:
        (code,) = struct.unpack_from("=i", reply, 16)
        raise NftError(f"nftables: cannot read the ruleset generation (errno {-code})", -code)
    offset = 20  # nlmsghdr and nfgenmsg
    while offset + 4 <= min(length, len(reply)):
        size, attribute = struct.unpack_from("=HH", reply, offset)
        if attribute & 0x7FFF == NFTA_GEN_ID and size >= 8:
            return struct.unpack_from(">I", reply, offset + 4)[0]
        offset += max(4, (size + 3) & ~3)
    raise NftError("nftables: no generation in the kernel's reply")


class NftClient:
    """`library`: what load_library() returns; `netlink`: a NETLINK_NETFILTER socket
    factory (tests pass stand-ins)."""

    def __init__(self, library=None, netlink=None):
        self._lib = library or load_library()
        self._netlink = netlink or _netfilter_socket
        self._sock: Optional[socket.socket] = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nftables")
        self._ctx = self._executor.submit(self._open).result()

    def _open(self):
        ctx = self._lib.nft_ctx_new(0)
        if not ctx:
            raise NftError("libnftables: cannot create a context")
        self._lib.nft_ctx_output_set_flags(ctx, OUTPUT_JSON)
        self._lib.nft_ctx_buffer_output(ctx)
        self._lib.nft_ctx_buffer_error(ctx)
        return ctx

    def _run(self, commands: list) -> Optional[dict]:
        """One JSON document, encoded, run and its output decoded on the worker thread (a
        large table's JSON stays off the loop)."""
        document = json.dumps({"nftables": commands}).encode()
        status = self._lib.nft_run_cmd_from_buffer(self._ctx, document)
        output = self._lib.nft_ctx_get_output_buffer(self._ctx) or b""
        if status != 0:
            error = self._lib.nft_ctx_get_error_buffer(self._ctx) or b""
            lines = error.decode(errors="replace").strip().splitlines()
            raise NftError(f"nftables: {lines[0] if lines else 'failed'}")
        return json.loads(output) if output.strip() else None

    async def _call(self, commands: list) -> Optional[dict]:
        return await asyncio.wrap_future(self._executor.submit(self._run, commands))

    def _generation(self) -> int:
        if self._sock is None:
            self._sock = self._netlink()
        try:
            return read_generation(self._sock)
        except OSError as error:
            self._sock.close()
            self._sock = None
            raise NftError(f"nftables: cannot read the ruleset generation: {error}") from None

    async def compute(self, function, *args):
        """function(*args) on the worker thread: CPU work (planning) kept off the loop."""
        return await asyncio.wrap_future(self._executor.submit(function, *args))

    async def generation(self) -> int:
        """The ruleset generation (a few microseconds: no listing)."""
        return await asyncio.wrap_future(self._executor.submit(self._generation))

    async def apply(self, commands: list) -> None:
        """The commands, as one transaction (all or nothing)."""
        if commands:
            await self._call(commands)

    def _devices(self, addresses: list) -> dict:
        if not HAS_PYROUTE2:
            raise NftError(missing_pyroute2())
        found, names = {}, {}  # names: ifindex -> device name
        with IPRoute() as ipr:
            for address in addresses:
                try:
                    (route,) = ipr.route("get", dst=address)[:1]
                    index = route.get("RTA_OIF")
                    if index not in names:
                        (link,) = ipr.link("get", index=index)[:1]
                        names[index] = link.get("IFLA_IFNAME")
                except (NetlinkError, ValueError):
                    found[address] = None
                else:
                    found[address] = names[index]
        return found

    async def devices(self, addresses: list) -> dict:
        """address -> the device the kernel routes it through (DR forwards there), or None
        without a route."""
        return await asyncio.wrap_future(self._executor.submit(self._devices, addresses))

    async def list_table(self, family: str, name: str) -> Optional[dict]:
        """The table as libnftables lists it in JSON, or None when it does not exist."""
        try:
            return await self._call([{"list": {"table": {"family": family, "name": name}}}])
        except NftError as error:
            if ABSENT in str(error):
                return None
            raise


def _netfilter_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.settimeout(NETLINK_TIMEOUT)
    sock.bind((0, 0))
    return sock
