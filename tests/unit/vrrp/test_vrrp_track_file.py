"""track_file: the value read from the file, keepalived's weight rule, following the file."""

from __future__ import annotations

import asyncio

import pytest

from lvsagent.config.model import TrackFile
from lvsagent.vrrp.track_file import FAULT, FileTracker, file_status, file_value
from lvsagent.vrrp.tracked import repeat


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"5\n", 5),
        (b"  -12 trailing words", -12),
        (b"+7", 7),
        (b"0x1f", 31),
        (b"010", 8),  # strtol base 0: octal
        (b"0", 0),
        (b"", 0),
        (b"abc", 0),
        (b"0xg", 0),
        (b"2147483648", 2147483648),  # keepalived takes INT32_MAX + 1
        (b"2147483649", None),
        (b"-2147483649", None),
    ],
)
def test_file_value_reads_as_strtol(text, value):
    assert file_value(text) == value


@pytest.mark.parametrize(
    ("value", "weight", "reverse", "status"),
    [
        (0, 0, False, 0),
        (3, 0, False, FAULT),  # weight 0: any non-zero value is a failure
        (-1, 0, False, FAULT),
        (0, 0, True, FAULT),  # reversed: zero is the failure
        (3, 0, True, 0),
        (5, 2, False, 10),
        (5, 2, True, -10),
        (-5, 3, False, -15),
        (200, 2, False, 253),  # capped
        (-127, 2, False, FAULT),  # -254: FAULT
        (-100, 2, False, -200),
        (-1000, 1, False, FAULT),
    ],
)
def test_file_status_is_keepalived_weight_rule(value, weight, reverse, status):
    assert file_status(value, weight, reverse) == status


def test_tracker_reports_each_new_value_once(tmp_path):
    path = tmp_path / "value"
    seen = []

    async def scenario():
        tracker = FileTracker(TrackFile("tf", str(path)), asyncio.get_running_loop())
        tracker.subscribe(lambda name, value: seen.append((name, value)))
        await tracker.start()
        assert tracker.value == 0  # missing: 0
        path.write_text("7\n")
        await tracker.look()
        await tracker.look()  # unchanged: not read again, not reported again
        path.write_text("-3\n")
        await tracker.look()
        path.write_text("99999999999\n")  # out of range: ignored, the last value stays
        await tracker.look()
        path.unlink()
        await tracker.look()
        await tracker.stop()
        return tracker.value

    assert asyncio.run(scenario()) == 0
    assert seen == [("tf", 7), ("tf", -3), ("tf", 0)]


def test_same_size_rewrite_is_seen(tmp_path):
    """A new value of the same length, written in the same second: the inode or ctime differs."""
    path = tmp_path / "value"
    path.write_text("1\n")

    async def scenario():
        tracker = FileTracker(TrackFile("tf", str(path)), asyncio.get_running_loop())
        await tracker.start()
        replacement = tmp_path / "new"
        replacement.write_text("2\n")
        replacement.replace(path)
        await tracker.look()
        await tracker.stop()
        return tracker.value

    assert asyncio.run(scenario()) == 2


@pytest.mark.parametrize(
    ("existing", "overwrite", "expected"),
    [(None, False, "4\n"), ("9\n", False, "9\n"), ("9\n", True, "4\n")],
)
def test_init_file(tmp_path, existing, overwrite, expected):
    path = tmp_path / "value"
    if existing is not None:
        path.write_text(existing)
    track = TrackFile("tf", str(path), init_value=4, init_overwrite=overwrite)

    async def scenario():
        tracker = FileTracker(track, asyncio.get_running_loop())
        await tracker.start()
        await tracker.stop()
        return tracker.value

    assert asyncio.run(scenario()) == int(expected)
    assert path.read_text() == expected


def test_repeat_goes_on_after_a_failed_update(caplog):
    """An unexpected error in one update is logged; the next one runs: tracking never stops."""
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    async def scenario():
        task = asyncio.get_running_loop().create_task(repeat(0.001, flaky))
        while len(calls) < 3:
            await asyncio.sleep(0.001)
        task.cancel()

    asyncio.run(scenario())
    assert "tracking update failed" in caplog.text
