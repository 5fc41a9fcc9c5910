"""IpvsClient: reads and changes the kernel's IPVS table over generic netlink.

Changes go in batches: many requests in one `sendmsg`, their acknowledgements collected
afterwards (one round trip per batch); each answer carries its request's sequence number, so
an error is reported against the exact entry that failed. Dumps are decoded lazily: counters
only when asked for, and `fingerprints` reads real servers without building any object.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable
from typing import Optional

from . import codec
from .codec import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR
from .model import Destination, IpvsError, Service, ServiceKey, Table, format_endpoint

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acknowledgements without a copy of the request
BATCH_BYTES = 32 * 1024  # requests per sendmsg; well under the socket's send buffer
RECEIVE_BUFFER = 1 << 20


class NetlinkSocket:
    """A NETLINK_GENERIC socket and the IPVS family's id; `send`/`recv` move raw datagrams."""

    def __init__(self):
        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            self._socket.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            self._socket.bind((0, 0))
            self.family = self._resolve(codec.IPVS_GENL_NAME)
        except BaseException:
            self._socket.close()
            raise

    def _resolve(self, name: str) -> int:
        request = codec.attr(codec.CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0")
        self.send(
            codec.message(codec.GENL_ID_CTRL, NLM_F_REQUEST, 1, codec.CTRL_CMD_GETFAMILY, request)
        )
        data = self.recv()
        for kind, _flags, _seq, start, end in codec.messages(data):
            if kind == NLMSG_ERROR:
                raise OSError(codec.error_code(data, start), f"generic netlink family {name}")
            found = codec.attrs(data, start + codec.GENL_HEADER.size, end)
            span = found[codec.CTRL_ATTR_FAMILY_ID]
            return struct.unpack_from("=H", data, span[0])[0]
        raise OSError(errno.EIO, f"no answer for generic netlink family {name}")

    def send(self, data: bytes) -> None:
        self._socket.send(data)

    def recv(self) -> bytes:
        return self._socket.recv(RECEIVE_BUFFER)

    def close(self) -> None:
        self._socket.close()


class IpvsClient:
    """Reads and changes the kernel's IPVS table of the current network namespace.

    `netlink` is anything with NetlinkSocket's interface (`family`, `send`, `recv`,
    `close`); unit tests pass a fake kernel, everything else the real socket.
    """

    def __init__(self, netlink=None):
        if netlink is None:
            try:
                netlink = NetlinkSocket()
            except OSError as exc:
                raise self._connect_error(exc.errno or 0, exc) from None
        self._netlink = netlink
        self._seq = 1
        self._verified: dict = {}  # key -> (fingerprints, settings digest) seen matching

    def close(self) -> None:
        self._netlink.close()

    def __enter__(self) -> IpvsClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------------

    def services(self, *, stats: bool = True) -> list:
        """Every virtual service (with its counters unless `stats` is false)."""
        data = self._dump("list the virtual services", codec.CMD_GET_SERVICE, b"")
        return codec.decode_services(data, stats=stats)

    def service(self, key: ServiceKey, *, stats: bool = True) -> Optional[Service]:
        """The service as the kernel holds it (with its counters unless `stats` is false),
        or None."""
        action = f"read virtual service {key}"
        flags = NLM_F_REQUEST | NLM_F_ACK
        code, replies = self._request(action, codec.CMD_GET_SERVICE, codec.key_attr(key), flags)
        if code == errno.ESRCH:
            return None
        if code:
            raise _translate(action, code, None)
        return next(iter(codec.decode_services(replies, stats=stats)), None)

    def destinations(self, key: ServiceKey, *, stats: bool = True) -> list:
        """The real servers of the service; none when the service does not exist (the kernel
        answers a dump for a missing service with nothing)."""
        return codec.decode_destinations(self._destination_dump(key), key.family, stats=stats)

    def changed_destinations(self, key: ServiceKey, expected: frozenset) -> Optional[list]:
        """None when the real servers' fingerprints (codec.fingerprint) are `expected`, else
        the real servers (without counters).

        An audit reads each service once and builds objects only for one that moved; a dump
        whose settings digest (codec.settings_digest) is the one last seen matching the same
        `expected` is not even split into attributes.
        """
        replies = self._dump(
            f"list the real servers of {key}", codec.CMD_GET_DEST, codec.key_attr(key)
        )
        digest = codec.settings_digest(replies)
        if digest is not None and self._verified.get(key) == (expected, digest):
            return None
        if codec.fingerprints(replies) == expected:
            if digest is not None:
                self._verified[key] = (expected, digest)
            return None
        self._verified.pop(key, None)
        return codec.decode_destinations(replies, key.family, stats=False)

    def _destination_dump(self, key: ServiceKey) -> list:
        action = f"list the real servers of {key}"
        return self._dump(action, codec.CMD_GET_DEST, codec.key_attr(key))

    def table(self, *, stats: bool = True) -> Table:
        """The whole table: {key: (service, [destinations])}."""
        return {
            svc.key: (svc, self.destinations(svc.key, stats=stats))
            for svc in self.services(stats=stats)
        }

    # -- changing -------------------------------------------------------------------------

    def add_service(self, service: Service) -> None:
        self._change(_service_request("add", service.key, service))

    def edit_service(self, service: Service) -> None:
        self._change(_service_request("edit", service.key, service))

    def delete_service(self, key: ServiceKey) -> None:
        self._change(_service_request("delete", key))

    def add_destination(self, key: ServiceKey, dest: Destination) -> None:
        self._change(_destination_request("add", key, dest))

    def edit_destination(self, key: ServiceKey, dest: Destination) -> None:
        self._change(_destination_request("edit", key, dest))

    def delete_destination(self, key: ServiceKey, address: str, port: int) -> None:
        self._change(_destination_request("delete", key, Destination(address, port)))

    def apply(self, changes: Iterable) -> list:
        """Applies ipvs.plan Changes in order, in batches of one round trip each; goes on past
        a failure. Returns (change, IpvsError) of each one that failed."""
        changes = list(changes)
        requests = [_change_request(change) for change in changes]
        failed = []
        for index, error in self._batch(requests):
            failed.append((changes[index], error))
        return failed

    def _change(self, request) -> None:
        for _index, error in self._batch([request]):
            raise error

    def command(self, action: str, command: int, payload: bytes = b"", *, dump: bool = False):
        """Any other IPVS command (lvs.syncd's daemon and config ones): the attribute bytes of
        each reply. A refusal raises IpvsError carrying the kernel's errno."""
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else NLM_F_ACK)
        code, replies = self._request(action, command, payload, flags)
        if code:
            reason = f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"
            raise IpvsError(f"cannot {action}: {reason}", code)
        return [bytes(data[start + codec.GENL_HEADER.size : end]) for data, start, end in replies]

    # -- the wire -------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1
        return self._seq

    def _batch(self, requests: list) -> list:
        """Sends the requests (action, command, payload, scheduler), BATCH_BYTES at a time,
        and returns (index, IpvsError) of each the kernel refused. An action is put into
        words (_action_text) only for an error: a table of 10,000 entries is sent without
        formatting 10,000 sentences.

        Only the last request of a datagram asks for an acknowledgement: the kernel handles a
        datagram's requests in order within the send, and answers one without NLM_F_ACK only
        when it fails. So a datagram costs one receive, not one per request (a system call
        each: the most of a large table's build under the guest)."""
        failed = []
        start = 0
        family = self._netlink.family
        while start < len(requests):
            chunk, size, by_seq = [], 0, {}
            index = start
            while index < len(requests) and (not chunk or size < BATCH_BYTES):
                _action, command, payload, _scheduler = requests[index]
                seq = self._next_seq()
                by_seq[seq] = index
                chunk.append(codec.message(family, NLM_F_REQUEST, seq, command, payload))
                size += len(chunk[-1])
                index += 1
            last = seq
            chunk[-1] = codec.message(family, NLM_F_REQUEST | NLM_F_ACK, last, command, payload)
            first = _action_text(requests[start][0])
            self._send(b"".join(chunk), first)
            for refused, code in self._failures(by_seq, last, first):
                action, _command, _payload, scheduler = requests[by_seq[refused]]
                error = _translate(_action_text(action), code, scheduler)
                failed.append((by_seq[refused], error))
            start = index
        failed.sort(key=lambda item: item[0])
        return failed

    def _failures(self, sent: dict, last: int, action: str):
        """(seq, errno) of each of the `sent` requests that failed, up to the acknowledgement
        of the `last` one (which comes after every other answer to the datagram)."""
        while True:
            data = self._recv(action)
            for kind, _flags, seq, start, _end in codec.messages(data):
                if kind != NLMSG_ERROR or seq not in sent:
                    continue
                code = codec.error_code(data, start)
                if code:
                    yield seq, code
                if seq == last:
                    return

    def _request(self, action: str, command: int, payload: bytes, flags: int) -> tuple:
        """One request and its answer: (errno, [(data, start, end)] of its replies), the
        answer ending with an acknowledgement (NLM_F_ACK) or NLMSG_DONE (a dump)."""
        seq = self._next_seq()
        self._send(codec.message(self._netlink.family, flags, seq, command, payload), action)
        replies = []
        while True:
            data = self._recv(action)
            for kind, _flags, got, start, end in codec.messages(data):
                if got != seq:
                    continue
                if kind == NLMSG_DONE:
                    return 0, replies
                if kind == NLMSG_ERROR:
                    return codec.error_code(data, start), replies
                replies.append((data, start, end))

    def _dump(self, action: str, command: int, payload: bytes) -> list:
        """Every message of a dump: [(data, start, end)]."""
        code, replies = self._request(action, command, payload, NLM_F_REQUEST | NLM_F_DUMP)
        if code:
            raise _translate(action, code, None)
        return replies

    def _send(self, data: bytes, action: str) -> None:
        try:
            self._netlink.send(data)
        except OSError as exc:
            raise IpvsError(f"cannot {action}: {exc}", exc.errno or 0) from None

    def _recv(self, action: str) -> bytes:
        try:
            return self._netlink.recv()
        except OSError as exc:
            raise IpvsError(f"cannot {action}: {exc}", exc.errno or 0) from None

    @staticmethod
    def _connect_error(code: int, exc: OSError) -> IpvsError:
        if code == errno.ENOENT:
            return IpvsError(
                "IPVS is not available in this kernel: load the ip_vs module", errno.ENOENT
            )
        if code in (errno.EPERM, errno.EACCES):
            return IpvsError("IPVS needs root (CAP_NET_ADMIN): permission denied", code)
        return IpvsError(f"cannot reach IPVS over netlink: {exc}", code)


_SERVICE_COMMANDS = {
    "add": (codec.CMD_NEW_SERVICE, "add virtual service {key}"),
    "edit": (codec.CMD_SET_SERVICE, "change virtual service {key}"),
    "delete": (codec.CMD_DEL_SERVICE, "delete virtual service {key}"),
}
_DESTINATION_COMMANDS = {
    "add": (codec.CMD_NEW_DEST, "add real server {endpoint} to {key}"),
    "edit": (codec.CMD_SET_DEST, "change real server {endpoint} of {key}"),
    "delete": (codec.CMD_DEL_DEST, "delete real server {endpoint} from {key}"),
}


def _action_text(action: tuple) -> str:
    """A request's action (template, key, real server or None) in words."""
    template, key, dest = action
    if dest is None:
        return template.format(key=key)
    return template.format(key=key, endpoint=format_endpoint(dest.address, dest.port))


def _service_request(verb: str, key: ServiceKey, service: Optional[Service] = None) -> tuple:
    command, template = _SERVICE_COMMANDS[verb]
    action = (template, key, None)
    if service is None:
        return action, command, codec.key_attr(key), None
    return action, command, codec.service_attr(key, service), service.scheduler


def _destination_request(verb: str, key: ServiceKey, dest: Destination) -> tuple:
    command, template = _DESTINATION_COMMANDS[verb]
    payload = codec.key_attr(key) + codec.destination_attr(dest)
    return (template, key, dest), command, payload, None


def _change_request(change) -> tuple:
    verb, _sep, kind = change.action.partition("_")
    if kind == "service":
        return _service_request(verb, change.key, change.service)
    return _destination_request(verb, change.key, change.destination)


def _translate(action: str, code: int, scheduler: Optional[str]) -> IpvsError:
    if code == errno.EEXIST:
        reason = "it already exists"
    elif code == errno.ESRCH:
        reason = "the virtual service does not exist"
    elif code == errno.ENOENT and scheduler is not None:
        reason = f"scheduler {scheduler!r} is not available (no ip_vs_{scheduler} module)"
    elif code == errno.ENOENT:
        reason = "the real server does not exist"
    elif code in (errno.EPERM, errno.EACCES):
        reason = "permission denied: IPVS needs root (CAP_NET_ADMIN)"
    elif code == errno.ERANGE:
        reason = "the lower threshold is above the upper threshold (ERANGE)"
    elif code == errno.EINVAL:
        reason = "the kernel rejected the request as invalid (EINVAL)"
    else:
        reason = f"{errno.errorcode.get(code, code)}: {os.strerror(code)}"
    return IpvsError(f"cannot {action}: {reason}", code)
