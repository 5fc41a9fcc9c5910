"""Deterministic mutation fuzzing of the parser: every mutated configuration either loads or
raises ConfigError whose problems are all `FILE:LINE: message` of the fuzzed file.

Seeded: a failure prints the case number and its text; `LVS_FUZZ_CASES=100000` runs more.
Mutations work on characters, words and lines of the seed configurations
(../shared/seed/*.conf, the keepalived samples, this suite's fixtures).
"""

from __future__ import annotations

import glob
import os
import random

from test_property import CORPUS

from lvsagent.config import ConfigError, loads

CASES = int(os.environ.get("LVS_FUZZ_CASES", "10000"))
SEED = 20261201
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

FRAGMENTS = [
    "{", "}", "{}", "}{", "\n", '"', "'", "\\", "\\x", "\\0", "\\777", "\\c", "!", "#", "@", "@^",
    "$X=", "$X", "${X}", "$X=$X$X", "$X=\\\n", "\\\n", "~SEQ(x,1,3)", "~SEQx(x,0x10)", "~SEQ(",
    "~LST({a,b},{1,2},{3})", "~LST(", "${_RANDOM 1 2}", "${_PWD}", "@^main ", "include",
    "includer x", 'include "{a,{b,c}}"', "include /dev/null",
    "include *", "\x00", "\ufeff", "é", "\r", "\t", " ", "-", "0", "-1", "255", "256", "65536",
    "4294967296", "1e309", "nan", "inf", "0x10", "1.2.3.4", "1.2.3.4/33", "::1", "fe80::1%eth0",
    "10.0.0.1-300", "[10.0.0.1]:80", "eth0", "lo", "fwmark", "group", "real_server", "weight",
    "virtual_server", "vrrp_instance", "vrrp_script", "track_script", "virtual_ipaddress",
    "HTTP_GET", "url", "digest", "TCP_CHECK", "MISC_CHECK", "authentication", "auth_pass",
    "sorry_server", "virtual_server_group", "vrrp_sync_group", "global_defs", "state", "MASTER",
]  # fmt: skip


def corpus() -> list[str]:
    texts = list(CORPUS)
    for path in sorted(glob.glob(os.path.join(FIXTURES, "**", "*.conf"), recursive=True)):
        with open(path, encoding="utf-8") as handle:
            texts.append(handle.read())
    return texts


def mutate(text: str, rng: random.Random) -> str:
    """Between one and eight edits of one of the kinds below, at random places."""
    for _edit in range(rng.randint(1, 8)):
        kind = rng.randrange(9)
        where = rng.randint(0, len(text))
        lines = text.split("\n")
        line = rng.randrange(len(lines))
        if kind == 0:
            text = text[:where] + rng.choice(FRAGMENTS) + text[where:]
        elif kind == 1:
            text = text[:where] + text[where + rng.randint(1, 60) :]
        elif kind == 2:
            char = chr(rng.randrange(0x110000 if rng.random() < 0.1 else 128))
            text = text[:where] + char + text[where + 1 :]
        elif kind == 3:
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
            text = "\n".join(lines)
        elif kind == 4:
            other = rng.randrange(len(lines))
            lines[line], lines[other] = lines[other], lines[line]
            text = "\n".join(lines)
        elif kind == 5:
            words = lines[line].split()
            if words:
                words[rng.randrange(len(words))] = rng.choice(FRAGMENTS + rng.choice(lines).split())
                lines[line] = " ".join(words)
            text = "\n".join(lines)
        elif kind == 6:
            del lines[line]
            text = "\n".join(lines)
        elif kind == 7:
            text = text[:where]
        else:
            start = rng.randint(0, len(text))
            text = text[:where] + text[start : start + rng.randint(1, 400)] + text[where:]
    return text


def test_ten_thousand_mutated_configurations_only_ever_raise_config_error(tmp_path):
    """Includes resolve next to the fuzzed file, in an empty directory of this test."""
    filename = str(tmp_path / "fuzz.conf")
    texts = corpus()
    rng = random.Random(SEED)
    failures = []
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(CASES):
        text = mutate(rng.choice(texts), rng)
        try:
            loads(text, filename)
        except ConfigError as error:
            outcomes["refused"] += 1
            strays = [p for p in error.problems if not str(p).startswith(filename + ":")]
            if not error.errors or strays:
                failures.append((case, f"problems not in {filename}: {strays}", text))
        except Exception as error:  # noqa: BLE001 - the point of the test
            failures.append((case, f"{type(error).__name__}: {error}", text))
        else:
            outcomes["loaded"] += 1
    report = "\n\n".join(f"case {case}: {what}\n{text!r}" for case, what, text in failures[:3])
    assert not failures, f"{len(failures)} of {CASES} cases failed (seed {SEED}):\n{report}"
    print(f"fuzz: {CASES} cases, {outcomes}")
    assert outcomes["loaded"] > CASES // 50, outcomes  # the fuzzer still reaches valid configs
