"""The client's view of a rolling change (not collected by `molecule verify`: tools/molecule-test
runs it after the rollout it polled with poll_vip.py): the VIP never went unanswered for longer
than one VRRP hand-over.

The figures (requests, failures, longest gap) are printed for the closing note."""

from __future__ import annotations

import os

POLL_LOG = os.environ.get("LVS_HA_POLL_LOG", "/run/lvs-ha-poll.log")


def longest_gap(rows: list[tuple[float, float, bool]]) -> tuple[float, float]:
    """The longest time without an answer, from the first request's start to the last answer,
    counted between the ends of answered requests; and when it began (seconds after the start)."""
    first = rows[0][0]
    last_answer, longest, began = first, 0.0, 0.0
    for _start, end, ok in rows:
        if ok:
            if end - last_answer > longest:
                longest, began = end - last_answer, last_answer - first
            last_answer = end
    return longest, began


def unanswered_time(rows: list[tuple[float, float, bool]]) -> float:
    """The time spent without an answer, all gaps together: from the last answer (or the first
    request) to the end of the next answered request, over every stretch of failed requests."""
    last_answer, total, failing = rows[0][0], 0.0, False
    for _start, end, ok in rows:
        if not ok:
            failing = True
        elif failing:
            total += end - last_answer
            failing = False
        if ok:
            last_answer = end
    if failing:
        total += rows[-1][1] - last_answer
    return total


def polled(client) -> list[tuple[float, float, bool]]:
    """The requests poll_vip.py logged on the client: (start, end, answered)."""
    log = client.file(POLL_LOG)
    assert log.exists, f"{POLL_LOG} missing on the client: poll_vip.py did not run"
    rows = []
    for line in log.content_string.splitlines():
        start, end, outcome = line.split()
        rows.append((float(start), float(end), outcome == "ok"))
    assert len(rows) >= 10, f"only {len(rows)} requests polled"
    return rows


def test_the_vip_answered_through_the_rolling_change(client, lab):
    rows = polled(client)
    failed = sum(1 for row in rows if not row[2])
    longest, began = longest_gap(rows)
    bound = lab["vrrp_bound"]
    print(
        f"rolling change polled for {rows[-1][1] - rows[0][0]:.1f} s: {len(rows)} requests, "
        f"{failed} failed; longest gap without an answer {longest:.2f} s "
        f"(from {began:.1f} s after the start); bound (one VRRP hand-over) {bound:.1f} s"
    )
    assert rows[-1][2], "the last request of the rollout got no answer"
    assert longest < bound, f"the VIP went unanswered for {longest:.2f} s (bound {bound:.1f} s)"
