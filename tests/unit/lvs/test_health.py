"""keepalived's per-checker retry rule and per-virtual-server quorum, as pure logic."""

from __future__ import annotations

import asyncio
import errno
import random
import ssl

import pytest
from fakeclock import FakeClock
from hypothesis import given
from hypothesis import strategies as st

from lvsagent.lvs.checkers import CheckResult, CheckSpec
from lvsagent.lvs.checkers.base import FAILURE_REASONS, describe
from lvsagent.lvs.checkers.misc import MiscOptions
from lvsagent.lvs.health import CheckState, HealthCheck, Quorum, first_delay

OK = CheckResult(True)
REFUSED = CheckResult.raised(OSError(errno.ECONNREFUSED, "refused"), 5)


def spec(**overrides) -> CheckSpec:
    fields = dict(
        kind="TCP_CHECK",
        address="192.168.179.99",
        port=80,
        retry=3,
        delay_before_retry=3.0,
        delay_loop=6.0,
    )
    fields.update(overrides)
    return CheckSpec(**fields)


def test_up_checker_goes_down_only_after_its_retries():
    state = CheckState(spec())
    delays = []
    for _probe in range(3):
        outcome = state.record(REFUSED)
        assert state.up and not outcome.changed
        assert outcome.messages == ["TCP connection to [192.168.179.99]:80 failed."]
        delays.append(outcome.delay)
    assert delays == [3.0, 3.0, 3.0]  # delay_before_retry between attempts
    outcome = state.record(REFUSED)
    assert not state.up and outcome.changed and outcome.delay == 6.0
    assert outcome.messages[-1] == "Check on service [192.168.179.99]:80 failed after 3 retries."
    assert state.last_error == "connection refused"
    state.record(OK)
    state.record(REFUSED)
    assert state.failures == 5  # every failed probe, retries included
    state.record(CheckResult.raised(asyncio.TimeoutError(), 10))
    assert state.failure_reasons == {"refused": 5, "timeout": 1}


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (asyncio.TimeoutError(), "timeout"),
        (TimeoutError(), "timeout"),
        (OSError(errno.ETIMEDOUT, "x"), "timeout"),
        (OSError(errno.ECONNREFUSED, "x"), "refused"),
        (OSError(errno.ECONNRESET, "x"), "reset"),
        (OSError(errno.EHOSTUNREACH, "x"), "unreachable"),
        (OSError(errno.ENETUNREACH, "x"), "unreachable"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls"),
        (OSError(errno.EACCES, "x"), "other"),
        (RuntimeError("surprise"), "other"),
    ],
)
def test_a_probe_that_raised_names_its_reason_by_the_exception(exc, reason):
    result = CheckResult.raised(exc, 5, "url(1) /: ")
    assert (result.ok, result.reason) == (False, reason)
    assert result.error == "url(1) /: " + describe(exc, 5)
    assert reason in FAILURE_REASONS


def test_a_success_between_failures_resets_the_retries():
    state = CheckState(spec(retry=1))
    state.record(REFUSED)
    state.record(OK)
    assert state.record(REFUSED).delay == 3.0  # a retry again, not a verdict
    assert state.up


def test_retry_zero_fails_at_once_and_says_so_without_retries():
    state = CheckState(spec(retry=0))
    outcome = state.record(REFUSED)
    assert not state.up
    assert outcome.messages[-1] == "Check on service [192.168.179.99]:80 failed."


def test_down_checker_comes_back_on_one_success_and_then_waits_delay_loop():
    state = CheckState(spec(retry=0))
    state.record(REFUSED)
    assert state.record(REFUSED).delay == 6.0  # no retries while down
    outcome = state.record(OK)
    assert state.up and outcome.changed and outcome.delay == 6.0
    assert outcome.messages == ["TCP connection to [192.168.179.99]:80 success."]
    assert state.last_error == ""


def test_alpha_starts_down_and_logs_only_its_first_failure():
    state = CheckState(spec(alpha=True))
    assert not state.up
    assert state.record(REFUSED).messages == ["TCP connection to [192.168.179.99]:80 failed."]
    assert state.record(REFUSED).messages == []
    assert state.record(OK).changed and state.up


def test_misc_dynamic_weight_changes_are_changes_and_exit_zero_keeps_the_weight():
    state = CheckState(spec(kind="MISC_CHECK", options=MiscOptions("/bin/check", dynamic=True)))
    assert state.record(CheckResult(True, weight=10)).changed
    assert state.weight == 10
    assert not state.record(CheckResult(True)).changed
    assert state.weight == 10
    assert not state.record(CheckResult(True, weight=10)).changed


@given(st.lists(st.booleans(), max_size=60), st.integers(0, 5))
def test_a_checker_goes_down_only_after_retry_plus_one_failures_in_a_row(results, retry):
    state = CheckState(spec(retry=retry))
    streak = 0
    for ok in results:
        was_up = state.up
        state.record(OK if ok else REFUSED)
        streak = 0 if ok else streak + 1
        if ok:
            assert state.up
        elif was_up and not state.up:
            assert streak == retry + 1
        if was_up and not ok and streak <= retry:
            assert state.up


def test_warmup_spreads_the_first_check_up_to_delay_loop_by_default():
    rng = random.Random(7)
    delays = [first_delay(spec(), rng) for _sample in range(200)]
    assert all(0 <= d <= 6.0 for d in delays) and max(delays) > 5.0
    assert first_delay(spec(warmup=0.0), rng) == 0.0
    assert 0 <= first_delay(spec(warmup=1.5), rng) <= 1.5


def test_checks_between_probes_are_timers_not_tasks_and_stop_leaves_none():
    """A large table has a checker per real server: each one costs a timer while it waits."""

    async def test():
        clock, probes, changes = FakeClock(), [], []

        async def prober(check_spec):
            probes.append((clock.monotonic(), check_spec.port))
            return REFUSED if check_spec.port == 1 else OK

        checks = [
            HealthCheck(spec(port=port, retry=0, warmup=0.0), clock, changes.append,
                        rng=random.Random(1), prober=prober)
            for port in range(1, 101)
        ]  # fmt: skip
        for check in checks:
            check.start()
        await clock.advance_with_tasks(6 * 3)
        assert len(asyncio.all_tasks()) == 1  # this test's own: every check waits on a timer
        assert len(clock.pending()) == 100
        assert len(probes) == 100 * 4  # at 0, 6, 12 and 18 s
        assert changes == [checks[0]]  # port 1 went down at its first probe, once
        checks[1].set_suspended(True)
        await clock.advance_with_tasks(6 * 2)
        assert [port for _when, port in probes[400:]].count(2) == 0
        checks[1].set_suspended(False)  # a probe came due meanwhile: it runs at once
        await clock.advance_with_tasks(0)
        assert probes[-1] == (clock.monotonic(), 2)
        for check in checks:
            await check.stop()
        assert clock.pending() == [] and len(asyncio.all_tasks()) == 1

    asyncio.run(test())


def test_quorum_gain_and_loss_with_hysteresis():
    quorum = Quorum(quorum=100, hysteresis=20, weight_sum=0)
    assert not quorum.up
    assert quorum.update(100) is None  # needs quorum + hysteresis to come up
    assert quorum.update(120) == "Gained quorum 100+20=120 <= 120"
    assert quorum.update(85) is None  # tolerated down to quorum - hysteresis
    assert quorum.update(79) == "Lost quorum 100-20=80 > 79"


def test_quorum_of_one_matches_keepalived_wording():
    quorum = Quorum(quorum=1, hysteresis=0, weight_sum=0)
    assert quorum.update(100) == "Gained quorum 1+0=1 <= 100"
    assert quorum.update(0) == "Lost quorum 1-0=1 > 0"


def test_quorum_is_lost_when_no_weight_is_left_even_within_hysteresis():
    quorum = Quorum(quorum=1, hysteresis=5, weight_sum=10)
    assert quorum.update(0) == "Lost quorum 1-5=-4 > 0"
