"""keepalived keywords lvs-agent knows about but does not implement.

A keyword that no block of lvs-agent handles is looked up here: in OBSOLETE (keepalived 2.2
itself ignores it with "Unknown keyword") or IGNORED (it changes nothing about VRRP or IPVS:
mail, SNMP, D-Bus, process tuning) it only draws a warning; in KEEPALIVED_KEYWORDS it is an
error "not supported by lvs-agent"; anything else is an unknown keyword. Nothing is ever
skipped silently. AGENT_KEYWORDS are lvs-agent's own (keepalived knows none of them).
"""

from __future__ import annotations

# Old names keepalived still accepts, and the names to use instead.
DEPRECATED_ALIASES = {
    "lb_algo": "lvs_sched",
    "lb_kind": "lvs_method",
    "nb_get_retry": "retry",  # in HTTP_GET and SSL_GET only, see OBSOLETE
}

# keepalived 1.x keywords that keepalived 2.2 no longer knows: it warns "Unknown keyword"
# and carries on without them, and so does lvs-agent. Each maps to the blocks where
# keepalived 2.2 still reads the keyword (there it is handled like any other keyword).
OBSOLETE = {
    "nat_mask": (),
    "lvs_id": (),
    "nb_get_retry": ("HTTP_GET", "SSL_GET"),
    "lvs_sync_daemon_interface": ("vrrp_instance",),
    "vrrp_ipsets": (),  # Debian's keepalived 2.2.7 is built without iptables, hence ipsets
}

# lvs-agent's own keywords and the block that reads each: keepalived 2.2.7 does not know them
# (`keepalived -t` fails on them), so a configuration that uses one is for lvs-agent only.
AGENT_KEYWORDS = {"metrics_listen": "global_defs", "lvs_data_plane": "global_defs"}

IGNORED = frozenset(
    """
    notification_email notification_email_from smtp_server smtp_connect_timeout
    smtp_helo_name smtp_alert smtp_alert_vrrp smtp_alert_checker no_email_faults
    no_checker_emails enable_traps enable_snmp_vrrp enable_snmp_checker enable_snmp_rfc
    enable_snmp_rfcv2 enable_snmp_rfcv3 snmp_socket snmp_name snmp_rs_stats_update_interval
    snmp_vs_stats_update_interval enable_dbus dbus_service_name dbus_no_interface_name
    process_names process_name vrrp_process_name checker_process_name bfd_process_name
    vrrp_priority checker_priority bfd_priority vrrp_rt_priority checker_rt_priority
    bfd_rt_priority vrrp_no_swap checker_no_swap bfd_no_swap vrrp_cpu_affinity
    checker_cpu_affinity bfd_cpu_affinity vrrp_rlimit_rttime checker_rlimit_rttime
    bfd_rlimit_rttime max_auto_priority min_auto_priority_delay checker_log_all_failures
    log_all_failures log_unknown_vrids debug json_version json_file_location
    stats_file_location state_file_location config_save_dir tmp_config_directory use_pid_dir
    child_wait_time kernel_rx_buf_size vrrp_rx_bufs_policy vrrp_rx_bufs_multiplier
    vrrp_netlink_cmd_rcv_bufs vrrp_netlink_cmd_rcv_bufs_force vrrp_netlink_monitor_rcv_bufs
    vrrp_netlink_monitor_rcv_bufs_force lvs_netlink_cmd_rcv_bufs
    lvs_netlink_cmd_rcv_bufs_force lvs_netlink_monitor_rcv_bufs
    lvs_netlink_monitor_rcv_bufs_force process_monitor_rcv_bufs
    process_monitor_rcv_bufs_force vrrp_skip_check_adv_addr skip_check_adv_addr
    notify_priority_changes vrrp_notify_priority_changes
    """.split()  # noqa: SIM905
)

KEEPALIVED_KEYWORDS = frozenset(
    """
    BFD_CHECK FILE_CHECK HTTP_GET MISC_CHECK SSL SSL_GET
    TCP_CHECK accept active_key advert_int alpha anti_replay auth_hmac auth_pass
    auth_type authentication bfd_instance bind_if bind_port bindto ca certificate
    check_unicast_src connect_ip connect_port connect_timeout data_use_instance
    delay delay_before_retry delay_loop digest dont_track_primary
    dynamic dynamic_interfaces enable_script_security enable_sni fall
    fast_recovery fifo_write_vrrp_states_on_reload flag-1 flag-2 flag-3 fork_delay
    full_command fwmark garp_extra_if garp_group garp_interval
    garp_master_delay garp_master_refresh garp_master_refresh_repeat
    garp_master_repeat global_defs global_tracking gna_interval group ha_suspend
    hoplimit host http_protocol hysteresis idle_tx include_check
    inhibit_on_failure init_fail init_file interface interface_up_down_delays interfaces
    interval ip_family iproute_etc_dir iproute_usr_dir key linkbeat_interfaces
    linkbeat_use_polling lthreshold lvs_flush lvs_flush_on_stop
    lvs_method lvs_notify_fifo lvs_notify_fifo_script lvs_sched lvs_sync_daemon
    lvs_sync_daemon_interface lvs_timeouts max_hops mcast_dst_ip
    mcast_src_ip mh-fallback mh-port min_rx min_tx misc_dynamic misc_path
    misc_timeout mode multihop multiplier name namespace_with_ipsets native_ipv6 neighbor_ip
    net_namespace net_namespace_ipvs netlink_notify_msg nftables nftables_counters
    nftables_ifindex nftables_ipvs nftables_ipvs_priority nftables_ipvs_start_fwmark
    nftables_priority no_accept no_virtual_ipaddress nopreempt notify notify_backup
    notify_deleted notify_down notify_fault notify_fifo notify_fifo_script notify_master
    notify_master_rx_lower_pri notify_stop notify_up old_unicast_checksum omega ops passive
    password path persistence_engine persistence_granularity persistence_timeout
    preempt preempt_delay priority process protocol proxy_arp
    proxy_arp_pvlan quorum quorum_down quorum_max quorum_up random_seed real_server regex
    regex_max_offset regex_min_offset regex_no_match regex_options regex_stack
    reload_check_config reload_file reload_repeat reload_time_file retry rise
    router_id rs_init_notifies script script_user set_supplementary_groups sh-fallback
    sh-port sni_name sorry_server
    sorry_server_inhibit sorry_server_lvs_method source_ip
    state
    static_track_group status_code strict_mode sync_group_tracking_weight terminate_delay
    time_window timeout timer_expired_backup tls_compliant track_bfd track_file
    track_interface track_process track_script track_src_ip ttl type umask
    unicast_fault_no_peer unicast_peer unicast_src_ip url use_ipvlan
    use_symlink_paths use_vmac use_vmac_addr user uthreshold v3_checksum_as_v2 version
    virtual_ipaddress virtual_ipaddress_excluded virtual_router_id
    virtual_server virtual_server_group virtualhost vmac_addr_prefix
    vmac_garp_intvl vmac_prefix vmac_xmit_base vrf vrrp_check_unicast_src vrrp_delay_after_boot
    vrrp_garp_extra_if vrrp_garp_interval
    vrrp_garp_master_delay vrrp_garp_master_refresh
    vrrp_garp_master_refresh_repeat vrrp_garp_master_repeat vrrp_gna_interval
    vrrp_instance vrrp_ipsets vrrp_iptables
    vrrp_mcast_group4 vrrp_mcast_group6
    vrrp_notify_fifo vrrp_notify_fifo_script vrrp_script vrrp_startup_delay vrrp_strict
    vrrp_sync_group vrrp_track_file vrrp_track_process vrrp_version warmup weight
    """.split()  # noqa: SIM905
)
