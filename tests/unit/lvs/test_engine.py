"""LvsEngine on a fake clock, a fake IPVS table and probes whose answers the test sets."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import itertools
import logging
import random

import pytest
from fakeclock import FakeClock
from fakes import FakeIpvs, FakeProber
from loopticks import LoopTicks

from lvsagent import pacing
from lvsagent.config import loads
from lvsagent.config.model import (
    Config,
    RealServer,
    Script,
    SorryServer,
    VirtualAddress,
    VirtualServer,
    VrrpInstance,
)
from lvsagent.ipvs import Destination, IpvsError, Service, ServiceKey, Stats
from lvsagent.lvs import engine as engine_module
from lvsagent.lvs.checkers.misc import MiscCheck
from lvsagent.lvs.checkers.tcp import TcpCheck
from lvsagent.lvs.engine import LvsEngine, RealServerEntry
from lvsagent.lvs.health import sleep
from lvsagent.owned import owned_services

VIP = "192.168.179.199"
KEY = ServiceKey.for_address(VIP, 80)
RS1, RS2 = "192.168.179.104", "192.168.179.99"


def tcp_check():
    """As the parser completes the seed's TCP_CHECK (delay_loop from the virtual server)."""
    return TcpCheck(
        connect_timeout=10, retry=3, delay_before_retry=3, connect_port=80, warmup=0, delay_loop=6
    )


def seed_vs(**overrides) -> VirtualServer:
    """The seed's virtual server: DR, rr, persistence 60, two real servers with TCP_CHECK."""
    fields = dict(
        address=VIP,
        port=80,
        lvs_sched="rr",
        lvs_method="DR",
        persistence_timeout=60,
        delay_loop=6,
        real_servers=[
            RealServer(RS1, 80, weight=100, checkers=[tcp_check()]),
            RealServer(RS2, 80, weight=100, checkers=[tcp_check()]),
        ],
    )
    fields.update(overrides)
    return VirtualServer(**fields)


class Bed:
    """An engine with its fakes; `run(test)` drives an async test on a fresh loop."""

    def __init__(self, *servers, instances=(), ipvs=None, state_dir=None, prober=None):
        self.config = Config(virtual_servers=list(servers), vrrp_instances=list(instances))
        self.clock = FakeClock()
        self.ipvs = ipvs or FakeIpvs()
        self.prober = prober or FakeProber()
        self.engine = LvsEngine(
            self.config,
            self.ipvs,
            self.clock,
            rng=random.Random(1),
            prober=self.prober,
            owned=owned_services(str(state_dir)) if state_dir else None,
        )


def run(test):
    asyncio.run(test())


def test_start_programs_the_seed_table():
    async def test():
        bed = Bed(seed_vs())
        await bed.engine.start()
        service, _destinations = bed.ipvs.kernel[KEY]
        assert service == Service(KEY, "rr", persistence_timeout=60)
        assert bed.ipvs.weights(KEY) == {f"{RS1}:80": 100, f"{RS2}:80": 100}
        assert {d.forwarding for d in bed.ipvs.destinations(KEY)} == {"dr"}
        await bed.engine.stop()

    run(test)


def test_the_persistence_engine_goes_to_the_kernel():
    async def test():
        bed = Bed(seed_vs(persistence_engine="sip"))
        await bed.engine.start()
        assert bed.ipvs.kernel[KEY][0].persistence_engine == "sip"
        await bed.engine.stop()

    run(test)


def test_dead_server_removed_within_the_bound_and_readded(caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")

    async def test():
        bed = Bed(seed_vs())
        await bed.engine.start()
        await bed.clock.advance_with_tasks(0)  # warmup 0: the first checks ran at once
        bed.prober.fail(RS2, 80)
        # Worst case: the failure starts right after a check, then 3 retries 3 s apart.
        await bed.clock.advance_with_tasks(6 + 3 * 3 - 0.5)
        assert f"{RS2}:80" in bed.ipvs.weights(KEY)
        await bed.clock.advance_with_tasks(1)
        assert bed.ipvs.weights(KEY) == {f"{RS1}:80": 100}
        bed.prober.succeed(RS2, 80)
        await bed.clock.advance_with_tasks(6)
        assert bed.ipvs.weights(KEY) == {f"{RS1}:80": 100, f"{RS2}:80": 100}
        await bed.engine.stop()

    run(test)
    messages = [r.getMessage() for r in caplog.records]
    assert f"TCP connection to [{RS2}]:80 failed." in messages
    assert f"Check on service [{RS2}]:80 failed after 3 retries." in messages
    assert f"Removing service [{RS2}]:80 from VS [{VIP}]:80" in messages
    assert f"TCP connection to [{RS2}]:80 success." in messages
    assert f"Adding service [{RS2}]:80 to VS [{VIP}]:80" in messages


def test_inhibit_on_failure_sets_weight_zero_instead_of_removing():
    async def test():
        bed = Bed(seed_vs(inhibit_on_failure=True))
        bed.prober.fail(RS1, 80)
        await bed.engine.start()
        await bed.clock.advance_with_tasks(30)
        assert bed.ipvs.weights(KEY) == {f"{RS1}:80": 0, f"{RS2}:80": 100}
        await bed.engine.stop()

    run(test)


def test_alpha_keeps_servers_out_until_their_first_success():
    async def test():
        bed = Bed(seed_vs(alpha=True))
        bed.prober.fail(RS1, 80)
        await bed.engine.start()
        assert bed.ipvs.weights(KEY) == {}
        await bed.clock.advance_with_tasks(1)
        assert bed.ipvs.weights(KEY) == {f"{RS2}:80": 100}
        await bed.engine.stop()

    run(test)


def test_sorry_server_replaces_the_pool_without_quorum(caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")

    async def test():
        vs = seed_vs(alpha=True, sorry_server=SorryServer("192.168.179.50", 8080))
        bed = Bed(vs)
        await bed.engine.start()
        assert bed.ipvs.weights(KEY) == {"192.168.179.50:8080": 1}
        await bed.clock.advance_with_tasks(1)
        assert bed.ipvs.weights(KEY) == {f"{RS1}:80": 100, f"{RS2}:80": 100}
        bed.prober.fail(RS1, 80)
        bed.prober.fail(RS2, 80)
        await bed.clock.advance_with_tasks(20)
        assert bed.ipvs.weights(KEY) == {"192.168.179.50:8080": 1}
        await bed.engine.stop()

    run(test)
    messages = [r.getMessage() for r in caplog.records]
    assert f"Gained quorum 1+0=1 <= 100 for VS [{VIP}]:80" in messages
    assert f"Lost quorum 1-0=1 > 0 for VS [{VIP}]:80" in messages


def test_shared_real_server_is_checked_once_for_all_its_virtual_servers():
    async def test():
        vs443 = seed_vs(port=443, real_servers=[RealServer(RS1, 80, 5, checkers=[tcp_check()])])
        bed = Bed(seed_vs(), vs443)
        await bed.engine.start()
        await bed.clock.advance_with_tasks(6 * 10)
        assert bed.prober.probes.count((RS1, 80)) == bed.prober.probes.count((RS2, 80))
        bed.prober.fail(RS1, 80)
        await bed.clock.advance_with_tasks(20)
        key443 = ServiceKey.for_address(VIP, 443)
        assert bed.ipvs.weights(key443) == {} and f"{RS1}:80" not in bed.ipvs.weights(KEY)
        await bed.engine.stop()

    run(test)


def test_misc_dynamic_exit_status_sets_the_weight():
    async def test():
        misc = MiscCheck(misc_path="/bin/weight", misc_dynamic=True, warmup=0, delay_loop=6)
        vs = seed_vs(real_servers=[RealServer(RS1, 80, weight=100, checkers=[misc])])
        bed = Bed(vs)
        bed.prober.succeed(RS1, 80, weight=10)
        await bed.engine.start()
        await bed.clock.advance_with_tasks(1)
        assert bed.ipvs.weights(KEY) == {f"{RS1}:80": 10}
        await bed.engine.stop()

    run(test)


def test_start_adopts_an_existing_table_without_touching_it():
    async def test():
        bed = Bed(seed_vs())
        bed.ipvs.add_service(Service(KEY, "rr", persistence_timeout=60))
        for address in (RS1, RS2):
            bed.ipvs.add_destination(KEY, Destination(address, 80, "dr", 100))
        bed.ipvs.calls.clear()
        await bed.engine.start()
        assert bed.ipvs.calls == []
        await bed.engine.stop()

    run(test)


def test_hand_edits_are_reverted_and_foreign_services_left_alone(caplog):
    caplog.set_level(logging.WARNING, logger="lvsagent")

    async def test():
        bed = Bed(seed_vs())
        foreign = ServiceKey.for_address("10.1.1.1", 25)
        bed.ipvs.add_service(Service(foreign, "wlc"))
        await bed.engine.start()
        bed.ipvs.delete_destination(KEY, RS1, 80)
        bed.ipvs.edit_destination(KEY, Destination(RS2, 80, "dr", 3))
        bed.ipvs.add_destination(KEY, Destination("10.9.9.9", 80, "dr", 1))
        await bed.clock.advance_with_tasks(5)
        assert bed.ipvs.weights(KEY) == {f"{RS1}:80": 100, f"{RS2}:80": 100}
        await bed.engine.stop()
        assert set(bed.ipvs.kernel) == {foreign}

    run(test)
    assert any("reverting" in r.getMessage() for r in caplog.records)


def test_a_reload_applies_what_changed_and_leaves_the_rest_to_the_audit():
    async def test():
        other = seed_vs(port=8080)
        bed = Bed(seed_vs(), other)
        await bed.engine.start()
        await bed.clock.advance_with_tasks(1)
        bed.ipvs.edit_destination(KEY, Destination(RS2, 80, "dr", 3))  # by hand
        bed.ipvs.calls.clear()
        moved = seed_vs(port=8080)
        moved.real_servers[0].weight = 50
        await bed.engine.apply_config(Config(virtual_servers=[seed_vs(), moved]))
        key8080 = ServiceKey.for_address(VIP, 8080)
        assert bed.ipvs.calls == [("edit_destination", key8080, RS1, 80)]  # what changed
        assert bed.ipvs.weights(KEY)[f"{RS2}:80"] == 3
        await bed.clock.advance_with_tasks(5)  # the next audit puts the hand edit back
        assert bed.ipvs.weights(KEY)[f"{RS2}:80"] == 100
        await bed.engine.stop()

    run(test)


def test_audits_build_nothing_and_a_reload_builds_only_the_virtual_server_that_changed(
    monkeypatch,
):
    built = []
    destination = RealServerEntry.destination

    def counted(entry, weight):
        built.append(entry.port)
        return destination(entry, weight)

    monkeypatch.setattr(RealServerEntry, "destination", counted)

    async def test():
        bed = Bed(seed_vs(), seed_vs(port=8080, real_servers=[RealServer(RS1, 8080)]))
        await bed.engine.start()
        await bed.clock.advance_with_tasks(1)
        built.clear()
        await bed.clock.advance_with_tasks(5 * 3)  # three audits of an unchanged table
        assert built == []
        changed = seed_vs(port=8080, real_servers=[RealServer(RS1, 8080, weight=50)])
        await bed.engine.apply_config(Config(virtual_servers=[seed_vs(), changed]))
        assert built == [8080]
        assert bed.ipvs.weights(ServiceKey.for_address(VIP, 8080)) == {f"{RS1}:8080": 50}
        bed.prober.fail(RS2, 80)  # a health change rebuilds its virtual server only
        await bed.clock.advance_with_tasks(20)
        assert built == [8080, 80] and f"{RS2}:80" not in bed.ipvs.weights(KEY)
        await bed.engine.stop()

    run(test)


def test_a_large_table_is_built_and_reconciled_in_slices_with_the_loop_running_between(
    monkeypatch,
):
    monkeypatch.setattr(pacing, "LOOP_SLICE", 0.0)  # a slice per virtual server

    async def test():
        bed = Bed(*(seed_vs(port=1000 + n) for n in range(20)))
        async with LoopTicks() as ticks:
            await bed.engine.start()
        assert ticks.count >= 2 * 20  # the loop ran while each was installed, then reconciled
        assert len(bed.ipvs.kernel) == 20
        await bed.engine.stop()

    run(test)


def test_one_virtual_server_of_many_real_servers_is_built_with_the_loop_running_between(
    monkeypatch,
):
    monkeypatch.setattr(pacing, "LOOP_SLICE", 0.0)  # a slice per real server
    members = [RealServer(f"10.9.{n // 250}.{n % 250 + 1}", 80) for n in range(60)]

    async def test():
        bed = Bed(seed_vs(real_servers=members))
        build = bed.engine._install(bed.config)
        async with LoopTicks() as ticks:
            await build
        assert ticks.count >= len(members)
        assert len(bed.engine._servers[0].real_servers) == len(members)

    run(test)


def test_the_built_table_is_kept_out_of_full_collections():
    """A full collection walks every tracked object: with 10,000 real servers it stopped the
    loop for seconds in the guest. What an install builds is frozen (gc.freeze)."""

    async def test():
        gc.unfreeze()
        bed = Bed(seed_vs())
        await bed.engine.start()
        assert gc.get_freeze_count() > 0
        await bed.engine.stop()

    try:
        run(test)
    finally:
        gc.unfreeze()


def test_reload_keeps_running_checks_and_retires_removed_services():
    async def test():
        bed = Bed(seed_vs())
        bed.prober.fail(RS1, 80)
        await bed.engine.start()
        await bed.clock.advance_with_tasks(20)
        assert f"{RS1}:80" not in bed.ipvs.weights(KEY)
        new_vs = seed_vs(port=8080, lvs_sched="wlc")
        new_vs.real_servers = seed_vs().real_servers
        await bed.engine.apply_config(Config(virtual_servers=[new_vs]))
        key8080 = ServiceKey.for_address(VIP, 8080)
        assert set(bed.ipvs.kernel) == {key8080}
        assert bed.ipvs.weights(key8080) == {f"{RS2}:80": 100}  # RS1's down state survived
        await bed.engine.stop()

    run(test)


def test_ha_suspend_pauses_checks_while_backup():
    async def test():
        vip = VirtualAddress(ipaddress.ip_interface(f"{VIP}/32"))
        instance = VrrpInstance("VI_1", virtual_ipaddresses=[vip])
        bed = Bed(seed_vs(ha_suspend=True), instances=[instance])
        await bed.engine.start()
        await bed.clock.advance_with_tasks(30)
        assert bed.prober.probes == []
        bed.engine.on_vrrp_state("VI_1", "MASTER")
        await bed.clock.advance_with_tasks(1)
        assert len(bed.prober.probes) == 2
        bed.engine.on_vrrp_state("VI_1", "BACKUP")
        await bed.clock.advance_with_tasks(30)
        assert len(bed.prober.probes) <= 4
        await bed.engine.stop()

    run(test)


def test_status_reports_kernel_entries_with_health():
    async def test():
        bed = Bed(seed_vs())
        bed.prober.fail(RS2, 80, "connection refused")
        await bed.engine.start()
        await bed.clock.advance_with_tasks(20)
        (service,) = await bed.engine.status()
        assert service["service"] == f"[{VIP}]:80"
        assert service["scheduler"] == "rr" and service["persistence_timeout"] == 60
        assert Service.from_dict(service) == Service(KEY, "rr", persistence_timeout=60)
        up, down = service["realservers"]
        assert (up["address"], up["weight"], up["health"]) == (RS1, 100, "up")
        assert (down["address"], down["weight"], down["health"]) == (RS2, None, "down")
        assert down["last_error"] == "connection refused"
        assert up["check_failures"] == 0
        assert down["check_failures"] >= 4  # down after retry 3: four failed tries at least
        assert up["since"].endswith("Z")
        await bed.engine.stop()

    run(test)


class CountedIpvs(FakeIpvs):
    """Records whether each read of the table asked for the kernel's counters, and answers
    with counters on every real server."""

    def __init__(self):
        super().__init__()
        self.counters_asked: list = []

    def services(self, *, stats=True):
        self.counters_asked.append(stats)
        return super().services(stats=stats)

    def table(self, *, stats=True):
        self.counters_asked.append(stats)
        table = super().table(stats=stats)
        for service, destinations in table.values():
            service.stats = Stats(connections=7, bytes_out=2**33) if stats else None
            for dest in destinations:
                dest.stats = Stats(3, 30, 20, 3000, 2000) if stats else None
        return table


class SlowProber(FakeProber):
    """Each probe takes 0.3 s on the fake clock."""

    clock = None

    async def __call__(self, spec):
        await sleep(self.clock, 0.3)
        return await super().__call__(spec)


def test_status_has_kernel_counters_quorum_failure_reasons_and_check_durations():
    async def test():
        prober = SlowProber()
        bed = Bed(seed_vs(quorum=150), ipvs=CountedIpvs(), prober=prober)
        prober.clock = bed.clock
        bed.prober.fail(RS2, 80, "timeout after 10s", "timeout")
        await bed.engine.start()
        for _second in range(40):  # several audits (RESYNC_INTERVAL) and probes
            await bed.clock.advance_with_tasks(1)
        audits = set(bed.ipvs.counters_asked)
        assert audits == {False}  # installs and audits read the table, without counters
        (service,) = await bed.engine.status()
        assert bed.ipvs.counters_asked[-1] is True  # the status did
        assert service["virtual_server"] == f"[{VIP}]:80"
        assert service["quorum"] == {"up": False, "quorum": 150, "alive_weight": 100}
        assert service["counters"]["connections"] == 7
        assert service["counters"]["bytes_out"] == 2**33
        up, down = service["realservers"]
        assert up["counters"] == {
            "connections": 3,
            "packets_in": 30,
            "packets_out": 20,
            "bytes_in": 3000,
            "bytes_out": 2000,
        }
        assert down["counters"] is None  # not in the kernel
        assert up["check_failure_reasons"] == {}
        assert down["check_failure_reasons"] == {"timeout": down["check_failures"]}
        durations = up["check_durations"]
        buckets = dict(map(tuple, durations["buckets"]))
        assert durations["count"] >= 5 and buckets[0.25] == 0 and buckets[0.5] == durations["count"]
        assert durations["sum"] == pytest.approx(0.3 * durations["count"])
        await bed.engine.stop()

    run(test)


class OffLoopIpvs(FakeIpvs):
    """Runs jobs on a thread, as IpvsThread does, and refuses any read made on the loop."""

    async def run(self, job, *args):
        return await asyncio.to_thread(job, self, *args)

    def services(self, *, stats=True):
        self._off_the_loop()
        return super().services(stats=stats)

    def table(self, *, stats=True):
        self._off_the_loop()
        return super().table(stats=stats)

    @staticmethod
    def _off_the_loop():
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise AssertionError("the kernel was read on the event loop")


def test_status_reads_the_kernel_off_the_event_loop():
    async def test():
        bed = Bed(seed_vs(), ipvs=OffLoopIpvs())
        await bed.engine.start()
        (service,) = await bed.engine.status()
        assert [rs["address"] for rs in service["realservers"]] == [RS1, RS2]
        await bed.engine.stop()

    run(test)


async def wait_for_lines(path, count: int) -> list:
    for _attempt in range(200):
        if path.exists() and len(path.read_text().splitlines()) >= count:
            break
        await asyncio.sleep(0.02)
    return path.read_text().splitlines() if path.exists() else []


def test_notify_and_quorum_scripts_and_omega_at_shutdown(tmp_path):
    events = tmp_path / "events"  # scripts of one event run concurrently: compare sorted

    def script(word):
        return Script(f"/bin/sh -c 'echo {word} >> {events}'")

    async def test():
        rs = RealServer(RS1, 80, 100, checkers=[tcp_check()])
        rs.notify_up, rs.notify_down = script("rs-up"), script("rs-down")
        vs = seed_vs(real_servers=[rs], quorum_up=script("quorum-up"), omega=True)
        vs.quorum_down = script("quorum-down")
        bed = Bed(vs)
        await bed.engine.start()
        bed.prober.fail(RS1, 80)
        await bed.clock.advance_with_tasks(20)
        assert sorted(await wait_for_lines(events, 2)) == ["quorum-down", "rs-down"]
        bed.prober.succeed(RS1, 80)
        await bed.clock.advance_with_tasks(6)
        assert sorted((await wait_for_lines(events, 4))[2:]) == ["quorum-up", "rs-up"]
        await bed.engine.stop()  # omega: what was up is notified down
        assert sorted((await wait_for_lines(events, 6))[4:]) == ["quorum-down", "rs-down"]

    run(test)


async def repairs_per_audit(first_audits: int, rounds: int) -> list:
    """Six services of nine real servers; after `first_audits` audits one real server is
    deleted by hand from each: how many services have it back after each of `rounds`."""
    members = [RealServer(f"10.0.0.{i}", 80) for i in range(1, 10)]
    bed = Bed(*(seed_vs(port=port, real_servers=members) for port in range(8001, 8007)))
    await bed.engine.start()
    await bed.clock.advance_with_tasks(5 * first_audits)
    keys = [ServiceKey.for_address(VIP, port) for port in range(8001, 8007)]
    for key in keys:
        bed.ipvs.delete_destination(key, "10.0.0.1", 80)
    repaired = []
    for _round in range(rounds):
        await bed.clock.advance_with_tasks(5)
        repaired.append(sum("10.0.0.1:80" in bed.ipvs.weights(key) for key in keys))
    await bed.engine.stop()
    return repaired


def test_large_tables_are_audited_in_slices_that_cover_every_service(monkeypatch):
    monkeypatch.setattr("lvsagent.lvs.engine.AUDIT_BUDGET", 20)  # two services of 9 per pass
    assert asyncio.run(repairs_per_audit(0, 3)) == [2, 4, 6]


def test_a_flushed_table_is_put_back_with_a_bounded_number_of_log_lines(caplog):
    caplog.set_level(logging.WARNING, logger="lvsagent.lvs")

    async def test():
        members = [RealServer(f"10.0.{i // 250}.{i % 250 + 1}", 80) for i in range(30)]
        bed = Bed(seed_vs(real_servers=members))
        await bed.engine.start()
        for member in members:
            bed.ipvs.delete_destination(KEY, member.address, 80)  # ipvsadm -d, 30 times
        await bed.clock.advance_with_tasks(5)
        assert len(bed.ipvs.weights(KEY)) == 30
        await bed.engine.stop()

    run(test)
    reverted = [r.getMessage() for r in caplog.records if "changed outside" in r.getMessage()]
    assert len(reverted) == engine_module.REVERT_LOG_LIMIT + 1
    assert reverted[0].startswith("IPVS table changed outside lvs-agent, reverting: add_dest")
    assert reverted[-1] == "IPVS table changed outside lvs-agent, reverting 10 more changes"


def test_audits_are_paced_to_their_share_of_a_core(monkeypatch):
    """Each sync job here costs 0.1 s of the netlink thread (a slow machine), however large:
    after a first pass over the whole table (60 destinations' worth) the audit may take 1%
    of 5 s, so half of that (3 services), then 15 (2 services), then 10 (1 service)."""
    readings = itertools.count()
    monkeypatch.setattr("lvsagent.lvs.dataplane.thread_time", lambda: next(readings) * 0.1)
    assert asyncio.run(repairs_per_audit(1, 3)) == [3, 5, 6]


# -- services left by a killed run ---------------------------------------------------------

KEY443 = ServiceKey.for_address(VIP, 443)
HAND_MADE = ServiceKey.for_address("10.1.1.1", 25)


def moved_to_443() -> Config:
    return Config(virtual_servers=[seed_vs(port=443)])


def recorded(state_dir) -> set:
    return owned_services(str(state_dir)).load()


async def killed_run(state_dir) -> FakeIpvs:
    """A run with two virtual servers and a hand-made service beside them, never stopped."""
    first = Bed(seed_vs(), seed_vs(port=443), state_dir=state_dir)
    first.ipvs.add_service(Service(HAND_MADE, "wlc"))
    await first.engine.start()
    assert recorded(state_dir) == {KEY, KEY443}
    for task in first.engine._tasks:  # SIGKILL: nothing is cleaned up
        task.cancel()
    return first.ipvs


def test_orphans_of_a_killed_run_are_removed_and_nothing_else(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lvsagent")

    async def test():
        ipvs = await killed_run(tmp_path)
        kept = ipvs.table()[KEY]
        ipvs.calls.clear()
        bed = Bed(seed_vs(), ipvs=ipvs, state_dir=tmp_path)
        await bed.engine.start()
        assert ipvs.calls == [("delete_service", KEY443)]
        assert ipvs.table() == {KEY: kept, HAND_MADE: (Service(HAND_MADE, "wlc"), [])}
        assert recorded(tmp_path) == {KEY}
        await bed.engine.stop()
        assert set(ipvs.kernel) == {HAND_MADE} and recorded(tmp_path) == set()

    run(test)
    messages = [r.getMessage() for r in caplog.records]
    assert f"Removing Virtual Server [{VIP}]:443 left by a previous run" in messages


def test_a_recorded_service_missing_from_the_kernel_needs_no_call(tmp_path):
    async def test():
        ipvs = await killed_run(tmp_path)
        ipvs.delete_service(KEY443)
        ipvs.calls.clear()
        bed = Bed(seed_vs(), ipvs=ipvs, state_dir=tmp_path)
        await bed.engine.start()
        assert ipvs.calls == [] and recorded(tmp_path) == {KEY}
        await bed.engine.stop()

    run(test)


def test_a_corrupt_record_is_reported_and_only_declared_services_touched(tmp_path, caplog):
    async def test():
        ipvs = await killed_run(tmp_path)
        (tmp_path / "ipvs-services.json").write_text('{"services": [{"family": 4, "address": "10')
        ipvs.calls.clear()
        bed = Bed(seed_vs(), ipvs=ipvs, state_dir=tmp_path)
        await bed.engine.start()
        assert ipvs.calls == []
        assert set(ipvs.kernel) == {KEY, KEY443, HAND_MADE}
        assert recorded(tmp_path) == {KEY}  # from now on, a sound record again
        await bed.engine.stop()

    run(test)
    assert any("Cannot read" in r.getMessage() for r in caplog.records)


class WatchedIpvs(FakeIpvs):
    """Notes what the record held when each service was created; refuses to delete `stuck`."""

    def __init__(self, state_dir, stuck=None):
        super().__init__()
        self.state_dir = state_dir
        self.stuck = stuck
        self.recorded_at_creation = {}

    def add_service(self, service):
        self.recorded_at_creation[service.key] = recorded(self.state_dir)
        super().add_service(service)

    def delete_service(self, key):
        if key == self.stuck:
            raise IpvsError(f"cannot delete {key}", 16)
        super().delete_service(key)


def test_the_record_follows_a_reload_and_leads_every_creation(tmp_path):
    async def test():
        ipvs = WatchedIpvs(tmp_path)
        bed = Bed(seed_vs(), ipvs=ipvs, state_dir=tmp_path)
        await bed.engine.start()
        assert ipvs.recorded_at_creation[KEY] == {KEY}
        await bed.engine.apply_config(moved_to_443())
        assert ipvs.recorded_at_creation[KEY443] == {KEY, KEY443}
        assert set(ipvs.kernel) == {KEY443} and recorded(tmp_path) == {KEY443}
        await bed.engine.stop()

    run(test)


def test_a_service_that_failed_to_go_stays_recorded_until_it_is_gone(tmp_path):
    async def test():
        ipvs = WatchedIpvs(tmp_path, stuck=KEY)
        bed = Bed(seed_vs(), ipvs=ipvs, state_dir=tmp_path)
        await bed.engine.start()
        await bed.engine.apply_config(moved_to_443())
        assert recorded(tmp_path) == {KEY, KEY443}
        ipvs.stuck = None
        await bed.engine.apply_config(moved_to_443())
        assert set(ipvs.kernel) == {KEY443} and recorded(tmp_path) == {KEY443}
        await bed.engine.stop()

    run(test)


def test_parsed_datagram_checkers_drive_the_table_with_their_own_retry_rules(caplog):
    """DNS_CHECK retries 3 times, delay_loop apart (keepalived's defaults for it)."""
    caplog.set_level(logging.INFO, logger="lvsagent")
    config = loads(
        """
virtual_server 10.9.0.1 53 {
    lvs_sched rr
    protocol UDP
    delay_loop 2
    real_server 10.9.0.11 53 {
        UDP_CHECK { warmup 0
            require_reply }
    }
    real_server 10.9.0.12 53 {
        DNS_CHECK { warmup 0
            name example.test }
    }
}
"""
    )

    async def test():
        bed = Bed(*config.virtual_servers)
        await bed.engine.start()
        await bed.clock.advance_with_tasks(0)
        (key,) = bed.ipvs.kernel
        bed.prober.fail("10.9.0.12", 53, "error answer (rcode = 5)")
        await bed.clock.advance_with_tasks(2 + 3 * 2 - 0.5)
        assert "10.9.0.12:53" in bed.ipvs.weights(key)
        await bed.clock.advance_with_tasks(1)
        assert bed.ipvs.weights(key) == {"10.9.0.11:53": 1}
        await bed.engine.stop()

    run(test)
    messages = [r.getMessage() for r in caplog.records]
    assert "DNS_CHECK ([10.9.0.12]:53) error answer (rcode = 5)." in messages
    assert "Check on service [10.9.0.12]:53 failed after 3 retries." in messages
    assert "Removing service [10.9.0.12]:53 from VS [10.9.0.1]:53" in messages
