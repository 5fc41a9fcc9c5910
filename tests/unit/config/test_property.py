"""Whatever the input, loading a configuration raises ConfigError or nothing else."""

from __future__ import annotations

import contextlib
import glob
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvsagent.config import ConfigError, loads

SHARED = os.environ.get("LVS_HA_SHARED", "/work/shared")


def read_corpus() -> list[str]:
    paths = sorted(glob.glob(os.path.join(SHARED, "seed", "*.conf")))
    paths += sorted(glob.glob(os.path.join(SHARED, "reference", "keepalived-samples", "*")))
    texts = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as handle:
            texts.append(handle.read())
    return texts or ["vrrp_instance V {\n interface eth0\n virtual_router_id 1\n}\n"]


CORPUS = read_corpus()

INTERESTING = st.sampled_from(
    ["{", "}", "\n", '"', "'", "!", "#", "@x ", "$A=1", "include x", " 0", " -1", " 256",
     " 1.2.3.4", " ::1", " fwmark", " group", " real_server", " weight", " 99999999999",
     " 1e309", " nan", " inf", "-", "/", "\\", "\x00", "é", " 10.0.0.1-300", " 1.2.3.4/40"]
)  # fmt: skip


@st.composite
def mutated_config(draw):
    text = draw(st.sampled_from(CORPUS))
    for _round in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace_line"]))
        if action == "insert":
            text = text[:where] + draw(INTERESTING | st.text(max_size=8)) + text[where:]
        elif action == "delete":
            text = text[:where] + text[where + draw(st.integers(1, 40)) :]
        else:
            lines = text.splitlines()
            if lines:
                index = draw(st.integers(0, len(lines) - 1))
                lines[index] = draw(st.sampled_from(lines)) + draw(INTERESTING)
                text = "\n".join(lines)
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_config())
def test_mutated_configs_only_ever_raise_config_error(text):
    try:
        config = loads(text, "fuzz.conf")
    except ConfigError as error:
        assert error.problems
        assert all(str(p).startswith("fuzz.conf:") for p in error.problems)
    else:
        assert all(p.severity == "warning" for p in config.warnings)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("{}\n \"'#!abc1.:-/@$~")), max_size=200))
def test_random_text_only_ever_raises_config_error(text):
    with contextlib.suppress(ConfigError):
        loads(text, "fuzz.conf")
