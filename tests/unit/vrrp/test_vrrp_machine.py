"""RFC 3768 / 9568 section 6.4 state machine under a fake clock."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from lvsagent.vrrp.machine import MachineSettings, State, VrrpMachine
from lvsagent.vrrp.packet import Advertisement

OURS = ipaddress.ip_address("192.168.77.11")
PEER_LOW = ipaddress.ip_address("192.168.77.5")
PEER_HIGH = ipaddress.ip_address("192.168.77.12")
VIP = ipaddress.ip_address("192.168.77.100")


class Recorder:
    """Stands in for the network: remembers what the machine sent and when it moved."""

    def __init__(self, clock):
        self.clock = clock
        self.sent: list[tuple[float, int]] = []
        self.transitions: list[tuple[float, State, State]] = []

    def transmit(self, priority):
        self.sent.append((self.clock.monotonic(), priority))

    def on_transition(self, old, new):
        self.transitions.append((self.clock.monotonic(), old, new))


def make(clock, **overrides):
    settings = MachineSettings(name="VI_1", primary_address=OURS, **overrides)
    recorder = Recorder(clock)
    machine = VrrpMachine(settings, clock, recorder.transmit, recorder.on_transition)
    return machine, recorder


def advert(priority, version=2, interval=1.0):
    return Advertisement(
        version=version, vrid=51, priority=priority, addresses=(VIP,), interval=interval
    )


def test_backup_takes_over_after_master_down_interval(clock):
    machine, net = make(clock, priority=100)
    start = clock.now
    machine.startup()
    assert machine.state == State.BACKUP
    assert machine.master_down_interval == pytest.approx(3 + 156 / 256)
    clock.advance(3.6)
    assert machine.state == State.BACKUP
    clock.advance(0.01)
    assert machine.state == State.MASTER
    assert net.sent == [(pytest.approx(start + 3 + 156 / 256), 100)]


def test_adverts_keep_the_master_backup(clock):
    machine, _net = make(clock, priority=100)
    machine.startup()
    for _advert in range(10):
        clock.advance(1.0)
        machine.receive(advert(150), PEER_HIGH)
    assert machine.state == State.BACKUP
    assert machine.master_address == PEER_HIGH


def test_master_sends_on_the_ideal_schedule_without_drift(clock):
    machine, net = make(clock, priority=150, start_as_master=True)
    start = clock.now
    machine.startup()
    clock.advance(100.0)
    times = [when - start for when, _priority in net.sent]
    assert times == pytest.approx([float(n) for n in range(101)])


def test_a_late_loop_skips_missed_adverts_and_keeps_the_phase(clock):
    machine, net = make(clock, priority=150, start_as_master=True)
    start = clock.now
    machine.startup()
    clock.advance(0.5)
    clock.stall(3.0)  # the adverts due at 1, 2 and 3 s are late; one goes out at 3.5 s
    clock.advance(2.0)
    assert [round(when - start, 6) for when, _priority in net.sent] == [0.0, 3.5, 4.0, 5.0]


def test_priority_zero_triggers_skew_only_takeover(clock):
    machine, _net = make(clock, priority=100)
    machine.startup()
    clock.advance(1.0)
    machine.receive(advert(150), PEER_HIGH)
    clock.advance(0.5)
    machine.receive(advert(0), PEER_HIGH)
    clock.advance(156 / 256 - 0.001)
    assert machine.state == State.BACKUP
    clock.advance(0.002)
    assert machine.state == State.MASTER


def test_preempt_discards_lower_priority_and_takes_over(clock, caplog):
    machine, _net = make(clock, priority=150)
    machine.startup()
    caplog.set_level(logging.INFO, logger="lvsagent.vrrp")
    for _advert in range(4):
        machine.receive(advert(100), PEER_HIGH)
        clock.advance(1.0)
    assert machine.state == State.MASTER
    assert "(VI_1) received lower priority (100) advert from 192.168.77.12 - discarding" in (
        caplog.text
    )
    assert "(VI_1) Entering MASTER STATE" in caplog.text


def test_nopreempt_keeps_a_lower_master(clock):
    machine, _net = make(clock, priority=150, preempt=False)
    machine.startup()
    for _advert in range(20):
        machine.receive(advert(100), PEER_HIGH)
        clock.advance(1.0)
    assert machine.state == State.BACKUP


def test_preempt_delay_holds_then_preempts(clock):
    machine, _net = make(clock, priority=150, preempt_delay=10.0)
    machine.startup()
    start = clock.now
    while machine.state == State.BACKUP and clock.now - start < 30:
        machine.receive(advert(100), PEER_HIGH)
        clock.advance(1.0)
    assert machine.state == State.MASTER
    took = clock.now - start
    assert 10.0 < took <= 10.0 + machine.master_down_interval + 1.0


def test_master_steps_down_for_higher_priority(clock):
    machine, net = make(clock, priority=100, start_as_master=True)
    machine.startup()
    machine.receive(advert(150), PEER_HIGH)
    assert machine.state == State.BACKUP
    sent = len(net.sent)
    clock.advance(2.0)
    assert len(net.sent) == sent  # a backup is silent


def test_equal_priority_larger_primary_address_wins(clock):
    machine, _net = make(clock, priority=100, start_as_master=True)
    machine.startup()
    machine.receive(advert(100), PEER_LOW)
    assert machine.state == State.MASTER
    machine.receive(advert(100), PEER_HIGH)
    assert machine.state == State.BACKUP


def test_master_answers_lower_priority_with_an_advert(clock):
    machine, net = make(clock, priority=150, start_as_master=True)
    machine.startup()
    before = len(net.sent)
    machine.receive(advert(100), PEER_HIGH)
    assert machine.state == State.MASTER
    assert len(net.sent) == before + 1


def test_master_answers_priority_zero_and_resets_adver_timer(clock):
    machine, net = make(clock, priority=150, start_as_master=True)
    machine.startup()
    clock.advance(0.4)
    machine.receive(advert(0), PEER_HIGH)
    assert net.sent[-1] == (clock.now, 150)
    assert clock.pending() == [pytest.approx(clock.now + 1.0)]


def test_shutdown_sends_priority_zero(clock):
    machine, net = make(clock, priority=150, start_as_master=True)
    machine.startup()
    machine.shutdown()
    assert net.sent[-1][1] == 0
    assert machine.state == State.INITIALIZE
    assert clock.pending() == []


def test_backup_shutdown_is_silent(clock):
    machine, net = make(clock, priority=100)
    machine.startup()
    machine.shutdown()
    assert net.sent == []


def test_address_owner_is_master_at_once(clock):
    machine, net = make(clock, priority=255)
    machine.startup()
    assert machine.state == State.MASTER
    assert net.sent[0][1] == 255
    machine.set_effective_priority(100)
    assert machine.effective_priority == 255


def test_v3_skew_uses_the_masters_interval_and_backup_adopts_it(clock):
    machine, _net = make(clock, version=3, priority=100, advert_interval=1.0)
    machine.startup()
    machine.receive(advert(200, version=3, interval=0.1), PEER_HIGH)
    assert machine.master_adver_interval == pytest.approx(0.1)
    assert machine.skew_time == pytest.approx(156 * 0.1 / 256)
    clock.advance(0.3 + 156 * 0.1 / 256 + 0.001)
    assert machine.state == State.MASTER


def test_v2_skew(clock):
    machine, _net = make(clock, priority=200)
    assert machine.skew_time == pytest.approx(56 / 256)


def test_fault_from_master_resigns_and_recovers_to_backup(clock):
    machine, net = make(clock, priority=150, start_as_master=True)
    machine.startup()
    machine.add_fault("eth1 down")
    assert machine.state == State.FAULT
    assert net.sent[-1][1] == 0
    machine.receive(advert(100), PEER_HIGH)
    clock.advance(10)
    assert machine.state == State.FAULT
    machine.clear_fault("eth1 down")
    assert machine.state == State.BACKUP
    clock.advance(machine.master_down_interval + 0.01)
    assert machine.state == State.MASTER


def test_fault_before_startup_starts_in_fault(clock):
    machine, net = make(clock, priority=150)
    machine.add_fault("eth0 down")
    machine.startup()
    assert machine.state == State.FAULT
    assert net.transitions[-1][2] == State.FAULT


def test_effective_priority_is_clamped(clock):
    machine, _net = make(clock, priority=100)
    machine.set_effective_priority(300)
    assert machine.effective_priority == 254
    machine.set_effective_priority(-5)
    assert machine.effective_priority == 1


def test_force_master_and_backup_for_sync_groups(clock):
    machine, _net = make(clock, priority=100)
    machine.startup()
    machine.force_master()
    assert machine.state == State.MASTER
    machine.force_backup()
    assert machine.state == State.BACKUP


def settings(**overrides):
    return MachineSettings(name="VI_1", primary_address=OURS, **overrides)


def test_reconfigured_master_stays_master_and_adverts_at_the_new_priority_and_interval(clock):
    machine, net = make(clock, priority=150, start_as_master=True)
    start = clock.now
    machine.startup()
    clock.advance(1.5)  # adverts at 0 and 1 s
    machine.reconfigure(settings(priority=90, advert_interval=2.0, preempt=False))
    clock.advance(4.0)
    assert machine.state == State.MASTER
    assert [t for t in net.transitions if t[2] != State.MASTER] == []
    assert [(round(when - start, 6), prio) for when, prio in net.sent] == [
        (0.0, 150),
        (1.0, 150),
        (3.0, 90),  # one new interval after the last advert, no priority 0
        (5.0, 90),
    ]
    # RFC: a master still gives way to a higher advert with its new priority
    machine.receive(advert(100), PEER_HIGH)
    assert machine.state == State.BACKUP


def test_reconfigured_master_whose_next_advert_is_overdue_sends_at_once(clock):
    machine, net = make(clock, priority=150, advert_interval=3.0, start_as_master=True)
    start = clock.now
    machine.startup()
    clock.advance(2.0)
    machine.reconfigure(settings(priority=150, advert_interval=1.0))
    clock.advance(0.0)
    assert [round(when - start, 6) for when, _prio in net.sent] == [0.0, 2.0]


def test_reconfigured_backup_keeps_its_master_down_timer_start(clock):
    machine, net = make(clock, priority=100)
    machine.startup()
    machine.receive(advert(150), PEER_HIGH)
    armed = clock.now
    clock.advance(1.0)
    machine.reconfigure(settings(priority=200, advert_interval=2.0, preempt=False))
    assert machine.state == State.BACKUP
    assert machine.master_address == PEER_HIGH
    clock.advance(6.0 + 56 / 256 - 1.0 - 0.001)
    assert machine.state == State.BACKUP
    clock.advance(0.002)
    assert machine.state == State.MASTER
    assert net.sent == [(pytest.approx(armed + 6.0 + 56 / 256), 200)]


def test_reconfigured_backup_with_preempt_now_outranks_the_master(clock):
    machine, _net = make(clock, priority=100, preempt=False)
    machine.startup()
    machine.receive(advert(150), PEER_HIGH)
    machine.reconfigure(settings(priority=200))
    for _advert in range(4):
        clock.advance(1.0)
        machine.receive(advert(150), PEER_HIGH)  # lower now: discarded
    assert machine.state == State.MASTER


def test_v3_learned_interval_never_goes_below_one_centisecond(clock):
    machine, _net = make(clock, version=3, priority=100, advert_interval=1.0)
    machine.startup()
    machine.receive(advert(200, version=3, interval=0.0), PEER_HIGH)
    assert machine.master_adver_interval == pytest.approx(0.01)
    clock.advance(0.02)
    assert machine.state == State.BACKUP  # not Master_Down_Interval 0: no instant takeover


def flips(net):
    return [
        when for when, old, new in net.transitions if {old, new} == {State.MASTER, State.BACKUP}
    ]


def test_a_burst_of_adverts_flips_master_backup_at_most_once_per_advert_interval(clock):
    """A rogue alternating priority 255 and priority 0 a hundred times a second."""
    machine, net = make(clock, version=3, priority=150, start_as_master=True)
    machine.startup()
    for _burst in range(1000):  # 10 s
        machine.receive(advert(255, version=3, interval=0.01), PEER_HIGH)
        clock.advance(0.005)
        machine.receive(advert(0, version=3, interval=0.01), PEER_HIGH)
        clock.advance(0.005)
    times = flips(net)
    assert 5 <= len(times) <= 11
    assert all(later - earlier >= 1.0 for earlier, later in zip(times, times[1:]))


def test_a_held_flip_still_happens_at_the_end_of_the_hold(clock):
    machine, net = make(clock, priority=100)
    machine.startup()
    clock.advance(4.0)
    assert machine.state == State.MASTER  # flip 1 (BACKUP -> MASTER)
    clock.advance(0.5)
    machine.receive(advert(150), PEER_HIGH)
    assert machine.state == State.MASTER  # held: 0.5 s after the last flip
    clock.advance(0.5)
    machine.receive(advert(150), PEER_HIGH)  # the next advert, after the hold
    assert machine.state == State.BACKUP
    machine.receive(advert(0), PEER_HIGH)  # the master resigns at once
    clock.advance(156 / 256 + 0.01)
    assert machine.state == State.BACKUP  # skew is over, but the hold is not
    clock.advance(1.0 - 156 / 256)
    assert machine.state == State.MASTER
    assert flips(net)[-1] - flips(net)[-2] == pytest.approx(1.0)


def test_lower_prio_no_advert_master_stays_silent_to_a_lower_priority(clock, caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")
    machine, net = make(clock, priority=150, start_as_master=True, lower_prio_no_advert=True)
    machine.startup()
    before = len(net.sent)
    machine.receive(advert(100), PEER_HIGH)
    assert machine.state == State.MASTER
    assert len(net.sent) == before
    logged = "Received advert from 192.168.77.12 with lower priority 100, ours 150\n"
    assert logged in caplog.text  # no ", forcing new election"
    clock.advance(1.0)
    assert len(net.sent) == before + 1  # the adverts keep their schedule


def test_higher_prio_send_advert_master_answers_then_becomes_backup(clock):
    machine, net = make(clock, priority=100, start_as_master=True, higher_prio_send_advert=True)
    machine.startup()
    clock.advance(2.5)
    before = len(net.sent)
    machine.receive(advert(150), PEER_LOW)
    assert machine.state == State.BACKUP
    assert net.sent[before:] == [(clock.now, 100)]


def test_without_higher_prio_send_advert_master_yields_silently(clock):
    machine, net = make(clock, priority=100, start_as_master=True)
    machine.startup()
    clock.advance(2.5)
    before = len(net.sent)
    machine.receive(advert(150), PEER_LOW)
    assert machine.state == State.BACKUP
    assert net.sent[before:] == []


def test_down_timer_adverts_is_the_number_of_adverts_a_backup_waits_for(clock):
    machine, _net = make(clock, priority=100, down_timer_adverts=5)
    machine.startup()
    assert machine.master_down_interval == pytest.approx(5 + 156 / 256)
    clock.advance(5.5)
    assert machine.state == State.BACKUP
    clock.advance(0.2)
    assert machine.state == State.MASTER
