"""Where a checker's common options come from: the checker, else its real server, else its
virtual server, else the kind's default (all resolved in config/blocks/checkers.py)."""

from __future__ import annotations

import itertools

import pytest
from config_helpers import parse

# option -> (the value each level gives, the kind's default for TCP_CHECK)
OPTIONS = {
    "connect_timeout": ({"virtual": 7.0, "real": 8.0, "checker": 9.0}, 5.0),
    "retry": ({"virtual": 2, "real": 3, "checker": 4}, 1),
    "delay_before_retry": ({"virtual": 1.5, "real": 2.5, "checker": 3.5}, 1.0),
    "warmup": ({"virtual": 10.0, "real": 11.0, "checker": 12.0}, None),
    "delay_loop": ({"virtual": 20.0, "real": 21.0, "checker": 22.0}, 60.0),
}
LEVELS = ("virtual", "real", "checker")


# what each kind needs in its block to be kept
KIND_BODIES = {
    "TCP_CHECK": "",
    "HTTP_GET": "url { path / }",
    "MISC_CHECK": "misc_path /bin/true",
    "DNS_CHECK": "name example.test",
}


def configuration(option: str, levels: tuple, kind: str = "TCP_CHECK", virtual: str = "") -> str:
    """A virtual server whose levels in `levels` each give `option`; the real server gives it
    after its checker block, which must not matter."""
    given, _default = OPTIONS[option]

    def line(level: str) -> str:
        return f"{option} {given[level]:g}" if level in levels else ""

    body = KIND_BODIES[kind]
    return f"""
        virtual_server 10.0.0.1 80 {{
            lvs_sched rr
            protocol TCP
            {line("virtual")}
            {virtual}
            real_server 10.0.0.2 80 {{
                {kind} {{
                    {line("checker")}
                    {body}
                }}
                {line("real")}
            }}
        }}
        """


def checker_of(text: str):
    return parse(text).virtual_servers[0].real_servers[0].checkers[0]


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize(
    "levels", [c for n in range(len(LEVELS) + 1) for c in itertools.combinations(LEVELS, n)]
)
def test_the_checker_then_the_real_server_then_the_virtual_server_then_the_default(option, levels):
    given, default = OPTIONS[option]
    nearest = next((given[level] for level in reversed(LEVELS) if level in levels), default)
    assert getattr(checker_of(configuration(option, levels)), option) == nearest


@pytest.mark.parametrize(
    ("kind", "option", "default"),
    [("HTTP_GET", "delay_before_retry", 3.0), ("MISC_CHECK", "retry", 0)],
)
def test_a_kind_s_own_default_comes_last(kind, option, default):
    given, _default = OPTIONS[option]
    assert getattr(checker_of(configuration(option, (), kind)), option) == default
    assert (
        getattr(checker_of(configuration(option, ("virtual",), kind)), option) == given["virtual"]
    )


def test_dns_check_retries_after_the_resolved_delay_loop_unless_a_level_says_otherwise():
    dns = checker_of(configuration("delay_loop", ("real",), "DNS_CHECK"))
    assert dns.delay_before_retry == 21.0
    told = configuration("delay_loop", ("real",), "DNS_CHECK", virtual="delay_before_retry 4")
    assert checker_of(told).delay_before_retry == 4.0
