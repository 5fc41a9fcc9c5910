"""The checker registry, and the pieces of PING_CHECK and UDP_CHECK that need no network."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from lvsagent.config import ConfigError, loads
from lvsagent.config.keywords import KEEPALIVED_KEYWORDS
from lvsagent.lvs.checkers import KINDS
from lvsagent.lvs.checkers.dns import DnsCheck, DnsOptions, answer_problem, build_query, encode_name
from lvsagent.lvs.checkers.ping import PingCheck, checksum, echo_request, is_reply
from lvsagent.lvs.checkers.smtp import SmtpCheck, SmtpOptions, SmtpTarget, read_reply
from lvsagent.lvs.checkers.udp import UdpCheck, UdpOptions, read_hex, reply_problem
from lvsagent.lvs.engine import check_spec


def virtual_server(checker_block: str) -> str:
    return f"""
virtual_server 10.0.0.1 53 {{
    protocol UDP
    lvs_sched rr
    delay_loop 6
    real_server 10.0.1.1 53 {{
        {checker_block}
    }}
}}
track_file T {{
    file /run/lvs-agent-test-T
}}
"""


def only_checker(checker_block: str):
    config = loads(virtual_server(checker_block))
    vs = config.virtual_servers[0]
    rs = vs.real_servers[0]
    return rs.checkers[0], check_spec(rs.checkers[0], rs, rs.port, vs)


def errors_of(checker_block: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loads(virtual_server(checker_block))
    return [str(problem) for problem in caught.value.errors]


REQUIRED = {
    "HTTP_GET": "url { path / }",
    "SSL_GET": "url { path / }",
    "MISC_CHECK": "misc_path /bin/true",
    "FILE_CHECK": "track_file T",
}


def test_every_kind_has_a_parser_block_and_builds_its_own_model():
    for name, kind in KINDS.items():
        checker, spec = only_checker(f"{name} {{ {REQUIRED.get(name, '')} }}")
        assert isinstance(checker, kind.model) and checker.kind == name == spec.kind
        assert kind.failed(spec, "why") and kind.succeeded(spec)


def test_ping_check_takes_the_common_options_and_nothing_else():
    checker, spec = only_checker("PING_CHECK { retry 4\n connect_ip 10.0.2.2\n connect_timeout 2 }")
    assert isinstance(checker, PingCheck)
    assert (spec.kind, spec.address, spec.retry, spec.connect_timeout) == (
        "PING_CHECK",
        "10.0.2.2",
        4,
        2,
    )
    assert errors_of("PING_CHECK { payload 00 }") == [
        "<string>:7: payload is not valid in PING_CHECK"
    ]


def test_udp_check_keywords_become_its_spec_options():
    checker, spec = only_checker(
        "UDP_CHECK { payload 01 02 ff\n require_reply 01 0X\n min_reply_length 2\n"
        " max_reply_length 9 }"
    )
    assert isinstance(checker, UdpCheck)
    assert spec.options == UdpOptions(
        payload=b"\x01\x02\xff",
        require_reply=True,
        reply_data=b"\x01\x00",
        reply_mask=b"\x00\x0f",
        min_reply_length=2,
        max_reply_length=9,
    )
    _checker, plain = only_checker("UDP_CHECK { }")
    assert plain.options == UdpOptions()  # random payload, no reply needed, 0-255


def test_udp_check_rejects_bad_hex_and_impossible_lengths_at_their_line():
    assert errors_of("UDP_CHECK {\n payload 0g }") == [
        "<string>:8: payload: invalid hex string: 'g' is not a hex digit"
    ]
    assert errors_of("UDP_CHECK {\n payload }") == ["<string>:8: payload: missing value"]
    assert errors_of("UDP_CHECK {\n payload 0X }") == [
        "<string>:8: payload: invalid hex string: 'X' is not a hex digit"
    ]
    assert errors_of("UDP_CHECK {\n min_reply_length 10\n max_reply_length 4 }") == [
        "<string>:7: UDP_CHECK min_reply_length 10 > max_reply_length 4 - will always fail"
    ]
    assert errors_of("UDP_CHECK { max_reply_length 65536 }") == [
        "<string>:7: max_reply_length: 65536 is out of range 0-65535"
    ]


def test_hex_strings_read_as_keepalived_documents_them():
    data, mask = read_hex(["Ab12f", "3", "456", "546443123"])
    assert data == bytes.fromhex("AB 12 0F 03 45 06 54 64 43 12 03") and mask == bytes(11)
    assert read_hex(["4x", "X1"], wildcards=True) == (b"\x40\x01", b"\x0f\xf0")
    with pytest.raises(ValueError):
        read_hex(["4x"])


def test_reply_checks_length_then_the_compared_prefix_under_the_mask():
    options = UdpOptions(
        require_reply=True, reply_data=b"\x40\x01", reply_mask=b"\x0f\x00", max_reply_length=4
    )
    assert reply_problem(b"\x4a\x01\x99", options) is None  # low nibble ignored, 3rd not compared
    assert reply_problem(b"\x4a", options) is None  # only the shorter length is compared
    assert reply_problem(b"\x50\x01", options) == "reply data mismatch"
    assert reply_problem(b"\x40\x01\x00\x00\x00", options) == "reply length 5 not in 0-4"
    assert reply_problem(b"", UdpOptions(min_reply_length=1)) == "reply length 0 not in 1-255"


def test_echo_requests_carry_a_valid_checksum_and_replies_are_matched_exactly():
    request = echo_request(socket.AF_INET, 0x1234, 7)
    assert request[0] == 8 and checksum(request) == 0 and len(request) == 64
    assert echo_request(socket.AF_INET6, 1, 2)[:2] == b"\x80\x00"
    reply = struct.pack("!BBHHH", 0, 0, 0, 0x1234, 7) + b"data"
    ip_header = bytes([0x45]) + bytes(19)
    assert is_reply(ip_header + reply, socket.AF_INET, True, 0x1234, 7)
    assert not is_reply(ip_header + reply, socket.AF_INET, True, 0x1235, 7)  # someone else's
    assert not is_reply(ip_header + reply, socket.AF_INET, True, 0x1234, 8)
    assert is_reply(reply, socket.AF_INET, False, 0x9999, 7)  # a ping socket rewrote the id
    assert not is_reply(request, socket.AF_INET, False, 0x1234, 7)  # a request, not a reply
    reply6 = struct.pack("!BBHHH", 129, 0, 0, 5, 6)
    assert is_reply(reply6, socket.AF_INET6, True, 5, 6)
    assert not is_reply(reply6[:7], socket.AF_INET6, True, 5, 6)
    assert not is_reply(b"", socket.AF_INET, True, 5, 6)


def test_dns_check_defaults_are_keepalived_s_and_its_keywords_its_options():
    checker, spec = only_checker("DNS_CHECK { }")
    assert isinstance(checker, DnsCheck)
    assert (spec.options, spec.retry, spec.delay_before_retry) == (DnsOptions("SOA", "."), 3, 6)
    _checker, spec = only_checker("DNS_CHECK { type aaaa\n name www.example.test\n retry 1 }")
    assert (spec.options, spec.retry) == (DnsOptions("AAAA", "www.example.test"), 1)
    _checker, spec = only_checker("DNS_CHECK { delay_before_retry 2 }")
    assert spec.delay_before_retry == 2


def test_dns_check_rejects_unknown_types_and_impossible_names_at_their_line():
    assert errors_of("DNS_CHECK {\n type SRV }") == [
        "<string>:8: type: 'SRV' is not one of A|NS|CNAME|SOA|MX|TXT|AAAA"
    ]
    assert errors_of("DNS_CHECK {\n name a..b }") == [
        "<string>:8: name: 'a..b' is not a domain name: label '' must have 1 to 63 characters"
    ]
    assert errors_of(f"DNS_CHECK {{\n name {'x' * 64}.test }}")[0].startswith("<string>:8: name: ")


def test_dns_query_is_a_recursive_question_in_class_in():
    query = build_query(0xBEEF, DnsOptions("A", "example.test"))
    assert query == (
        bytes.fromhex("beef 0100 0001 0000 0000 0000")
        + b"\x07example\x04test\x00"
        + bytes.fromhex("0001 0001")
    )
    assert build_query(1, DnsOptions())[12:] == b"\x00" + bytes.fromhex("0006 0001")  # SOA .
    assert encode_name("example.test.") == encode_name("example.test")


def test_only_our_answer_decides_and_its_rcode_is_the_verdict():
    answer = bytes.fromhex("beef 8180 0001 0001 0000 0000")
    assert answer_problem(answer, 0xBEEF) == ""
    assert answer_problem(answer, 0xBEEE) is None  # another query's answer
    assert answer_problem(bytes.fromhex("beef 0100 0001 0000 0000 0000"), 0xBEEF) is None
    assert answer_problem(answer[:11], 0xBEEF) is None
    refused = bytes.fromhex("beef 8185 0001 0000 0000 0000")
    assert answer_problem(refused, 0xBEEF) == "error answer (rcode = 5)"


def test_smtp_check_helo_name_and_host_blocks_inherit_the_checker_s_connection():
    checker, spec = only_checker("SMTP_CHECK { }")
    assert isinstance(checker, SmtpCheck)
    assert spec.options == SmtpOptions("smtpchecker.keepalived.org", ())
    config = loads(
        virtual_server(
            'SMTP_CHECK { helo_name "lb.example.test"\n connect_port 25\n bindto 10.0.9.9\n'
            " host { connect_ip 10.0.2.2 }\n host { connect_ip 10.0.3.3\n connect_port 2525 } }"
        )
    )
    rs = config.virtual_servers[0].real_servers[0]
    spec = check_spec(rs.checkers[0], rs, rs.port, config.virtual_servers[0])
    assert spec.options == SmtpOptions(
        "lb.example.test",
        (SmtpTarget("10.0.2.2", 25, "10.0.9.9"), SmtpTarget("10.0.3.3", 2525, "10.0.9.9")),
    )
    assert [w.message for w in config.warnings if "host block" in w.message] == [
        "SMTP_CHECK host block is deprecated, define more checkers instead"
    ] * 2
    assert errors_of("SMTP_CHECK { host { helo_name x } }") == [
        "<string>:7: helo_name is not valid in host"
    ]


def test_smtp_replies_may_span_lines_and_must_carry_a_code():
    async def code_of(data: bytes):
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_reply(reader)

    assert asyncio.run(code_of(b"220-first\r\n220-second\r\n220 last\r\n")) == 220
    assert asyncio.run(code_of(b"250 ok\r\n")) == 250
    assert asyncio.run(code_of(b"hello\r\n")) is None
    assert asyncio.run(code_of(b"220 no end of line")) is None


def test_the_parser_leaves_every_checker_complete_for_the_engine():
    """Inheritance happens once, in the config layer: the model holds the final values."""
    dns, _spec = only_checker("DNS_CHECK { }")
    assert (dns.delay_loop, dns.delay_before_retry, dns.retry) == (6, 6, 3)
    config = loads(
        virtual_server("HTTP_GET { url { path / } }").replace(
            "delay_loop 6", "delay_loop 6\n    virtualhost vs.example.test"
        )
    )
    http = config.virtual_servers[0].real_servers[0].checkers[0]
    assert (http.virtualhost, http.delay_loop, http.delay_before_retry) == (
        "vs.example.test",
        6,
        3,
    )


def test_the_new_kinds_and_their_keywords_left_the_not_supported_tier():
    implemented = {"PING_CHECK", "UDP_CHECK", "DNS_CHECK", "SMTP_CHECK", "payload", "helo_name"}
    implemented |= {"require_reply", "min_reply_length", "max_reply_length"}
    assert implemented <= set(KINDS) | {k for kind in KINDS.values() for k in kind.keywords(Stub())}
    assert not implemented & KEEPALIVED_KEYWORDS


class Stub:
    """Stands in for the parser's value readers, to list a kind's keywords."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None
