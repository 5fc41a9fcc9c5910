"""The rollout's figure (molecule/default/tests/rollout_gap.py): the longest time the polling
client went without an answer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "molecule" / "default" / "tests"))

from rollout_gap import longest_gap, unanswered_time  # noqa: E402


def test_steady_answers_give_gaps_of_one_poll():
    rows = [(0.0, 0.1, True), (0.2, 0.3, True), (0.3, 0.4, True)]
    longest, began = longest_gap(rows)
    assert longest == pytest.approx(0.2)
    assert began == pytest.approx(0.1)


def test_failed_requests_widen_the_gap_from_the_last_answer_to_the_next():
    rows = [(0.0, 0.1, True), (0.2, 1.2, False), (1.3, 2.3, False), (2.4, 2.5, True)]
    longest, began = longest_gap(rows)
    assert longest == pytest.approx(2.4)
    assert began == pytest.approx(0.1)


def test_no_answer_at_first_counts_from_the_first_request():
    rows = [(5.0, 6.0, False), (6.1, 6.2, True)]
    longest, began = longest_gap(rows)
    assert longest == pytest.approx(1.2)
    assert began == 0.0


def test_steady_answers_leave_no_unanswered_time():
    assert unanswered_time([(0.0, 0.1, True), (0.2, 0.3, True)]) == 0.0


def test_unanswered_time_adds_every_stretch_of_failures():
    rows = [(0.0, 0.1, True), (0.2, 1.2, False), (1.3, 1.4, True), (1.5, 1.6, True)]
    rows += [(1.7, 2.7, False), (2.8, 3.8, False), (3.9, 4.0, True)]
    assert unanswered_time(rows) == pytest.approx((1.4 - 0.1) + (4.0 - 1.6))


def test_failures_at_the_end_count_until_the_last_request_ends():
    rows = [(0.0, 0.1, True), (0.2, 1.2, False)]
    assert unanswered_time(rows) == pytest.approx(1.1)
