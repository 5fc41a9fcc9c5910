"""The consistent slot table of sh and mh: adding or removing one real server moves only that
server's slots, weights share the slots out, and the table depends only on the real servers
(two directors compute the same one)."""

from __future__ import annotations

from collections import Counter

from lvsagent.nft import slots

SERVERS = [(f"10.0.1.{n}", 80, 1) for n in range(2, 8)]


def table(servers) -> list:
    """The endpoint owning each slot."""
    return [servers[owner][:2] for owner in slots.owners(servers)]


def test_removing_one_real_server_moves_only_its_slots():
    before = table(SERVERS)
    for gone in SERVERS:
        after = table([server for server in SERVERS if server != gone])
        moved = [slot for slot in range(slots.SLOTS) if before[slot] != after[slot]]
        assert moved == [slot for slot in range(slots.SLOTS) if before[slot] == gone[:2]]
        assert moved  # it owned some


def test_adding_one_real_server_takes_slots_only_for_itself():
    before = table(SERVERS)
    after = table([*SERVERS, ("10.0.1.99", 80, 1)])
    moved = {slot for slot in range(slots.SLOTS) if before[slot] != after[slot]}
    assert moved and all(after[slot] == ("10.0.1.99", 80) for slot in moved)


def test_a_weight_change_moves_slots_only_to_or_from_that_server():
    before = table(SERVERS)
    heavier = [(*SERVERS[0][:2], 3), *SERVERS[1:]]
    after = table(heavier)
    moved = [slot for slot in range(slots.SLOTS) if before[slot] != after[slot]]
    assert moved and all(after[slot] == SERVERS[0][:2] for slot in moved)


def test_weights_share_the_slots_out():
    owned = Counter(slots.owners([("10.0.1.2", 80, 3), ("10.0.1.3", 80, 1)]))
    assert owned[0] + owned[1] == slots.SLOTS
    assert 2.2 < owned[0] / owned[1] < 4.2  # 3:1, give or take the hash


def test_the_table_depends_only_on_the_real_servers_not_their_order():
    assert table(SERVERS) == table(list(reversed(SERVERS)))
    assert slots.owners([]) == ()


def test_runs_cover_every_slot_once():
    owned = slots.owners(SERVERS[:2])
    runs = slots.runs(owned)
    assert runs[0][1] == 0 and runs[-1][2] == slots.SLOTS - 1
    assert all(a[2] + 1 == b[1] and a[0] != b[0] for a, b in zip(runs, runs[1:]))


def test_a_table_derived_from_a_recent_one_is_the_one_computed_afresh():
    servers = [(f"10.0.{n // 250}.{n % 250 + 1}", 80, 1 + n % 3) for n in range(300)]
    slots.owners(servers)  # remembered
    steps = [
        servers[1:],  # one leaves
        servers[1:] + [("10.9.0.1", 80, 2)],  # one comes
        [(*servers[5][:2], 7), *servers[6:]],  # a weight changes, several leave
    ]
    for step in steps:
        derived = [step[i] for i in slots.owners(step)]
        slots._recent.clear()
        assert derived == [step[i] for i in slots.owners(step)]  # computed afresh
        slots.owners(servers)
