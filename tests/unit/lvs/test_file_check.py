"""FILE_CHECK: its block, the track_file it takes its weight from, and keepalived's rule for
the value read from the file (probed on real files)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from lvsagent.config import ConfigError, loads
from lvsagent.lvs.checkers import KINDS, CheckResult, probe
from lvsagent.lvs.checkers.file import FileCheck, FileOptions
from lvsagent.lvs.engine import check_spec
from lvsagent.lvs.health import CheckState


def config_with(checker_block: str, track_file: str = "weight 0") -> str:
    return f"""
track_file tf {{
    file /run/lvs-agent-test/tf
    {track_file}
}}
virtual_server 10.0.0.1 80 {{
    protocol TCP
    lvs_sched rr
    delay_loop 6
    retry 4
    real_server 10.0.1.1 80 {{
        {checker_block}
    }}
}}
"""


def only_spec(checker_block: str, track_file: str = "weight 0"):
    config = loads(config_with(checker_block, track_file))
    vs = config.virtual_servers[0]
    rs = vs.real_servers[0]
    return config, rs.checkers, [check_spec(c, rs, rs.port, vs) for c in rs.checkers]


def test_the_weight_is_the_file_checks_else_the_track_files():
    _config, (checker,), (spec,) = only_spec("FILE_CHECK { track_file tf }", "weight 3 reverse")
    assert isinstance(checker, FileCheck)
    assert spec.options == FileOptions("tf", "/run/lvs-agent-test/tf", 3, True)
    _config, _checkers, (spec,) = only_spec("FILE_CHECK { track_file tf\n weight -7 }", "weight 3")
    assert (spec.options.weight, spec.options.reverse) == (-7, False)


def test_a_file_check_has_no_timers_of_its_own_and_no_retry():
    """The virtual server's delay_loop and retry do not apply: a value is final at once."""
    _config, _checkers, (spec,) = only_spec("FILE_CHECK { track_file tf }")
    assert (spec.delay_loop, spec.retry, spec.warmup) == (1.0, 0, 0.0)
    with pytest.raises(ConfigError) as caught:
        loads(config_with("FILE_CHECK { track_file tf\n delay_loop 3 }"))
    assert "delay_loop" in str(caught.value.errors[0])


def test_init_file_of_the_track_file_reaches_the_spec():
    _config, _checkers, (spec,) = only_spec(
        "FILE_CHECK { track_file tf }", "weight 0\n init_file 5 overwrite"
    )
    assert (spec.options.init_value, spec.options.init_overwrite) == (5, True)


@pytest.mark.parametrize(
    ("block", "warning"),
    [
        ("FILE_CHECK { }", "FILE_CHECK has no track_file specified - ignoring"),
        ("FILE_CHECK { track_file nope }", "track_file nope not found - ignoring the FILE_CHECK"),
    ],
)
def test_a_file_check_without_its_track_file_is_dropped_as_keepalived_does(block, warning):
    config, checkers, _specs = only_spec(block)
    assert checkers == []
    assert any(warning in str(problem) for problem in config.warnings)


def probe_value(tmp_path, text: bytes, weight: int, reverse: bool = False) -> CheckResult:
    path = tmp_path / "value"
    path.write_bytes(text)
    _config, _checkers, (spec,) = only_spec("FILE_CHECK { track_file tf }")
    options = FileOptions("tf", str(path), weight, reverse)
    return asyncio.run(probe(dataclasses.replace(spec, options=options)))


@pytest.mark.parametrize(
    ("text", "weight", "reverse", "expected"),
    [
        (b"0\n", 0, False, CheckResult(True)),
        (b"1\n", 0, False, CheckResult.failed("file_value", "value 1")),
        (b"-3", 0, False, CheckResult.failed("file_value", "value -3")),
        (b"0", 0, True, CheckResult.failed("file_value", "value 0")),
        (b"7", 0, True, CheckResult(True)),
        (b"", 0, False, CheckResult(True)),  # nothing to read is 0
        (b"2", 5, False, CheckResult(True, offset=10)),
        (b"0x10", 1, False, CheckResult(True, offset=16)),  # strtol base 0
        (b"2", 5, True, CheckResult(True, offset=-10)),
        (b"-1", 2147483647, False, CheckResult(True, offset=-2147483647)),
        (
            b"-2",
            2147483647,
            False,
            CheckResult.failed("file_value", "value -2"),
        ),  # at INT32_MIN: FAULT
        (b"1", -2147483647, True, CheckResult(True, offset=2147483647)),
    ],
)
def test_keepalived_rule_for_the_value_read(tmp_path, text, weight, reverse, expected):
    assert probe_value(tmp_path, text, weight, reverse) == expected


def test_a_missing_file_reads_as_zero(tmp_path):
    options = FileOptions("tf", str(tmp_path / "absent"), 0, False)
    _config, _checkers, (spec,) = only_spec("FILE_CHECK { track_file tf }")
    result = asyncio.run(probe(dataclasses.replace(spec, options=options)))
    assert result == CheckResult(True)


def test_an_out_of_range_number_keeps_the_last_value(tmp_path):
    assert probe_value(tmp_path, b"3", 0) == CheckResult.failed("file_value", "value 3")
    assert probe_value(tmp_path, b"99999999999", 0) == CheckResult.failed("file_value", "value 3")
    assert probe_value(tmp_path, b"0", 0) == CheckResult(True)
    assert probe_value(tmp_path, b"99999999999", 0) == CheckResult(True)


def test_an_offset_change_is_a_change_for_the_engine():
    _config, _checkers, (spec,) = only_spec("FILE_CHECK { track_file tf }")
    state = CheckState(spec)
    assert not state.record(CheckResult(True)).changed
    assert state.record(CheckResult(True, offset=4)).changed and state.offset == 4
    assert not state.record(CheckResult(True, offset=4)).changed
    down = state.record(CheckResult.failed("file_value", "value -9"))
    assert down.changed and not state.up  # no retry: down at the first FAULT


def test_init_file_writes_the_value_before_the_first_probe(tmp_path):
    path = tmp_path / "tf"
    _config, _checkers, (spec,) = only_spec("FILE_CHECK { track_file tf }")
    spec = dataclasses.replace(spec, options=FileOptions("tf", str(path), 0, False, 5))
    asyncio.run(KINDS["FILE_CHECK"].prepare(spec))
    assert path.read_text() == "5\n"
    assert asyncio.run(probe(spec)) == CheckResult.failed("file_value", "value 5")
    path.write_text("0\n")
    asyncio.run(KINDS["FILE_CHECK"].prepare(spec))  # no overwrite: left alone
    assert path.read_text() == "0\n"
