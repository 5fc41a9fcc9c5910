"""track_file, vrrp_track_process and the notify FIFOs as the parser reads and checks them."""

from __future__ import annotations

from config_helpers import errors_of, parse, warnings_of

from lvsagent.config.model import TrackScript


def instance_with(tracking: str) -> str:
    return f"""
vrrp_instance VI_1 {{
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {{
        10.0.0.100
    }}
{tracking}
}}
"""


TRACKED = """
track_file tf {
    file "/run/tf value"
    weight -10 reverse
    init_file 5 overwrite
}
vrrp_track_file old {
    file /run/old
}
vrrp_track_process haproxy {
    process /usr/sbin/haproxy -f "/etc/a b.cfg"
    param_match initial
    weight 20
    quorum 2
    quorum_max 4
    delay 0.5
    terminate_delay 1.5
}
vrrp_track_process sshd {
    process sshd
    full_command
}
""" + instance_with(
    """
    track_file {
        tf weight 3 noreverse
        old
    }
    track_process {
        haproxy
        sshd weight -254 reverse
    }
"""
)


def test_track_blocks_and_their_references():
    config = parse(TRACKED)
    tf = config.track_files["tf"]
    assert (tf.file, tf.weight, tf.weight_reverse) == ("/run/tf value", -10, True)
    assert (tf.init_value, tf.init_overwrite) == (5, True)
    old = config.track_files["old"]
    assert (old.weight, old.init_value) == (1, None)  # keepalived's default weight is 1
    haproxy = config.track_processes["haproxy"]
    assert (haproxy.process, haproxy.params) == ("/usr/sbin/haproxy", ["-f", "/etc/a b.cfg"])
    assert (haproxy.param_match, haproxy.weight, haproxy.quorum, haproxy.quorum_max) == (
        "initial",
        20,
        2,
        4,
    )
    assert (haproxy.fork_delay, haproxy.terminate_delay) == (0.5, 1.5)
    sshd = config.track_processes["sshd"]
    assert (sshd.full_command, sshd.weight, sshd.quorum, sshd.quorum_max) == (True, 0, 1, None)
    (instance,) = config.vrrp_instances
    assert [(t.name, t.weight, t.reverse) for t in instance.track_files] == [
        ("tf", 3, False),
        ("old", None, False),
    ]
    assert [(t.name, t.weight, t.reverse) for t in instance.track_processes] == [
        ("haproxy", None, False),
        ("sshd", -254, True),
    ]
    assert any("vrrp_track_file is deprecated" in w for w in warnings_of(config))


def test_quorum_max_zero_means_none_may_run():
    config = parse(
        "vrrp_track_process p {\n process x\n quorum_max 0\n}\n"
        + instance_with("track_process {\n p\n}")
    )
    assert (config.track_processes["p"].quorum, config.track_processes["p"].quorum_max) == (0, 0)


def test_tracking_errors_name_the_line():
    errors = errors_of(
        """
track_file nofile {
    weight 2
}
track_file tf {
    file /run/x
    weight 255
    init_file nonsense
}
vrrp_track_process p {
    process x
    param_match fuzzy
    quorum 3
    quorum_max 2
}
vrrp_track_process p {
    process y
}
"""
        + instance_with(
            """
    track_file {
        missing
        tf weight 300
        tf
        tf
    }
    track_process {
        nothere
    }
"""
        )
    )
    assert errors == [
        "2: track_file nofile: no file given",
        "7: weight: 255 is out of range -254-254",
        "8: init_file: 'nonsense' is not an integer",
        "10: vrrp_track_process p: quorum_max is below quorum",
        "12: param_match: 'fuzzy' is not one of initial|partial",
        "16: vrrp_track_process p already defined at test.conf:10",
        "28: (VI_1) track_file missing: no track_file of that name",
        "34: (VI_1) track_process nothere: no vrrp_track_process of that name",
    ]


def test_a_bad_track_file_entry_is_corrected_with_keepalived_warnings():
    text = """
track_file tf {
    file /run/x
}
""" + instance_with(
        """
    track_file {
        tf weight 300
        tf
    }
"""
    )
    config = parse(text)
    assert [(t.name, t.weight) for t in config.vrrp_instances[0].track_files] == [("tf", None)]
    warnings = " | ".join(warnings_of(config))
    assert "weight 300 for tf must be between [-254..254] inclusive. Ignoring..." in warnings
    assert "(VI_1) duplicate track_file tf - ignoring" in warnings


def test_notify_fifos():
    config = parse(
        """
global_defs {
    notify_fifo /run/all.fifo
    vrrp_notify_fifo /run/vrrp.fifo
    vrrp_notify_fifo_script "/usr/local/bin/reader --quiet" nobody
    lvs_notify_fifo /run/lvs.fifo
    lvs_notify_fifo_script /usr/local/bin/lvs-reader
}
"""
    )
    defs = config.global_defs
    assert (defs.notify_fifo, defs.vrrp_notify_fifo) == ("/run/all.fifo", "/run/vrrp.fifo")
    assert defs.vrrp_notify_fifo_script.command == "/usr/local/bin/reader --quiet"
    assert defs.vrrp_notify_fifo_script.user.user == "nobody"
    assert defs.notify_fifo_script is None
    assert defs.lvs_notify_fifo == "/run/lvs.fifo"
    assert defs.lvs_notify_fifo_script.command == "/usr/local/bin/lvs-reader"


def test_notify_fifo_errors():
    errors = errors_of(
        """
global_defs {
    notify_fifo /run/same.fifo
    vrrp_notify_fifo /run/same.fifo
    notify_fifo_script /bin/reader
    vrrp_notify_fifo_script /bin/reader
    lvs_notify_fifo /run/same.fifo
    lvs_notify_fifo_script /bin/reader
}
"""
    )
    assert errors == [
        "2: vrrp_notify_fifo /run/same.fifo is already notify_fifo: the FIFOs must differ",
        "2: lvs_notify_fifo /run/same.fifo is already notify_fifo: the FIFOs must differ",
    ]


def test_a_fifo_owner_is_refused_and_notify_fifo_beside_virtual_servers_is_not():
    errors = errors_of(
        """
global_defs {
    notify_fifo /run/all.fifo
    vrrp_notify_fifo /run/vrrp.fifo nobody
}
virtual_server 10.0.0.1 80 {
    real_server 10.0.0.2 80 {
    }
}
"""
    )
    assert errors == [
        "4: vrrp_notify_fifo: an owner for the FIFO is not supported by lvs-agent",
    ]


def test_sync_group_tracking_applies_to_every_member_as_keepalived():
    """keepalived 2.2.7: a member's own weighted track_file is ignored ("ignoring tracked file
    tf with weight 5 due to SYNC group"), its unweighted ones stay, and the group's entries
    apply to each member with the group's weights."""
    second = instance_with("").replace("VI_1", "VI_2").replace("router_id 51", "router_id 52")
    config = parse(
        "track_file tf {\n file /x\n}\n"
        "track_file own {\n file /y\n weight 0\n}\n"
        "vrrp_track_process tp {\n process sleep\n weight -10\n}\n"
        + instance_with("track_file {\n tf weight 5\n own\n}")
        + second
        + "vrrp_sync_group G {\n group {\n VI_1\n VI_2\n }\n"
        " track_file {\n tf weight -30\n }\n track_process {\n tp\n }\n}\n"
    )
    first, other = config.vrrp_instances
    assert [(t.name, t.weight) for t in first.track_files] == [("own", None), ("tf", -30)]
    assert [(t.name, t.weight) for t in other.track_files] == [("tf", -30)]
    assert (
        [t.name for t in first.track_processes] == ["tp"] == [t.name for t in other.track_processes]
    )
    assert "20: (VI_1) ignoring tracked file tf with weight 5 due to SYNC group" in warnings_of(
        config
    )


def test_sync_group_tracking_names_are_checked():
    errors = errors_of(
        instance_with("")
        + "vrrp_sync_group G {\n group {\n VI_1\n }\n track_process {\n nothere\n }\n}\n"
    )
    assert errors == [
        "15: vrrp_sync_group G track_process nothere: no vrrp_track_process of that name"
    ]


def test_track_entry_is_a_track_script_shape():
    config = parse(TRACKED)
    assert isinstance(config.vrrp_instances[0].track_files[0], TrackScript)


def test_a_process_name_longer_than_the_kernel_keeps_is_warned_about():
    config = parse(
        "vrrp_track_process p {\n process a-very-long-daemon-name\n}\n"
        + instance_with("track_process {\n p\n}")
    )
    assert warnings_of(config) == [
        "1: vrrp_track_process p: the kernel keeps 15 bytes of a process name, so "
        "'a-very-long-daem...' never matches; use full_command"
    ]


def two_members(member_tracking: str, group_tracking: str, blocks: str = "") -> str:
    second = instance_with("").replace("VI_1", "VI_2").replace("router_id 51", "router_id 52")
    return (
        blocks
        + instance_with(member_tracking)
        + second
        + f"vrrp_sync_group G {{\n group {{\n VI_1\n VI_2\n }}\n{group_tracking}}}\n"
    )


def test_sync_group_scripts_and_interfaces_apply_to_every_member_as_keepalived():
    """keepalived 2.2.7 (vrrp_complete_instance, sync_group_tracking_init): the group's
    track_script / track_interface entries apply to each member, unweighted as written (a
    failure is FAULT); a member's own weighted script is dropped, its weighted interface kept
    unweighted."""
    config = parse(
        two_members(
            "track_script {\n own\n}\ntrack_interface {\n eth2 weight -10\n}",
            " track_script {\n chk\n }\n track_interface {\n eth1\n }\n",
            "vrrp_script chk {\n script /bin/true\n}\n"
            "vrrp_script own {\n script /bin/true\n weight -20\n}\n",
        )
    )
    first, other = config.vrrp_instances
    assert [t.name for t in first.track_scripts] == ["chk"] == [t.name for t in other.track_scripts]
    assert [(t.name, t.weight) for t in first.track_interfaces] == [("eth2", 0), ("eth1", 0)]
    assert [(t.name, t.weight) for t in other.track_interfaces] == [("eth1", 0)]
    warnings = warnings_of(config)
    assert "16: (VI_1) ignoring tracked script own with weights due to SYNC group" in warnings
    assert "19: (VI_1) ignoring eth2 tracked interface weight due to SYNC group" in warnings


def test_sync_group_entry_also_on_a_member_keeps_the_unweighted_one():
    """keepalived's add_vrrp_to_track_script / add_vrrp_to_interface: the member's entry when
    unweighted, else the group's weight; a track_file at the default weight 1 becomes
    unweighted; a member's weighted track_process stays (keepalived 2.2.7 leaves it)."""
    config = parse(
        two_members(
            "track_script {\n chk weight 0\n}\ntrack_file {\n tf\n}\n"
            "track_process {\n tp weight -5\n}",
            " track_script {\n chk weight -30\n }\n",
            "vrrp_script chk {\n script /bin/true\n}\n"
            "track_file tf {\n file /x\n}\n"
            "vrrp_track_process tp {\n process sleep\n}\n",
        )
    )
    first, other = config.vrrp_instances
    assert [(t.name, t.weight) for t in first.track_scripts] == [("chk", 0)]
    assert [(t.name, t.weight) for t in other.track_scripts] == [("chk", -30)]
    assert [(t.name, t.weight) for t in first.track_files] == [("tf", 0)]
    assert [(t.name, t.weight) for t in first.track_processes] == [("tp", -5)]
    warnings = warnings_of(config)
    assert (
        "18: (VI_1) track_script chk is configured on VRRP instance and sync group. "
        "Remove vrrp instance config" in warnings
    )
    assert (
        "21: (VI_1) ignoring weight from tracked file tf due to SYNC group. specify weight 0"
        in warnings
    )


def test_sync_group_tracking_weight_keeps_the_members_weights():
    """sync_group_tracking_weight: a member's weighted entries stay; an entry in both takes the
    group's weight."""
    config = parse(
        two_members(
            "track_script {\n own\n chk weight -5\n}\ntrack_interface {\n eth2 weight -10\n}",
            " sync_group_tracking_weight\n track_script {\n chk weight -30\n }\n",
            "vrrp_script chk {\n script /bin/true\n}\n"
            "vrrp_script own {\n script /bin/true\n weight -20\n}\n",
        )
    )
    first, other = config.vrrp_instances
    assert [(t.name, t.weight) for t in first.track_scripts] == [("own", None), ("chk", -30)]
    assert [(t.name, t.weight) for t in other.track_scripts] == [("chk", -30)]
    assert [(t.name, t.weight) for t in first.track_interfaces] == [("eth2", -10)]
    assert not [w for w in warnings_of(config) if "ignoring" in w]


def test_sync_group_with_an_address_owner_tracks_unweighted():
    """keepalived's sync_group_tracking_init: a member at priority 255 clears the weights of
    the group's tracking, for every member."""
    config = parse(
        two_members(
            "priority 255",
            " track_script {\n chk weight -30\n }\n track_interface {\n eth1 weight -10\n }\n",
            "vrrp_script chk {\n script /bin/true\n}\n",
        )
    )
    for instance in config.vrrp_instances:
        assert [(t.name, t.weight) for t in instance.track_scripts] == [("chk", 0)]
        assert [(t.name, t.weight) for t in instance.track_interfaces] == [("eth1", 0)]
    warnings = warnings_of(config)
    assert (
        "28: (G) Cannot have weighted track script 'chk' with member having priority 255 - "
        "clearing weight" in warnings
    )
    assert (
        "31: (G) Cannot have weighted track interface 'eth1' with member having priority 255 - "
        "clearing weight" in warnings
    )
