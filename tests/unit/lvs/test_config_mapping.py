"""From the configuration model to kernel services and checker specs."""

from __future__ import annotations

from lvsagent.config import loads
from lvsagent.ipvs import ServiceKey
from lvsagent.lvs.checkers.http import DEFAULT_STATUS_RANGES
from lvsagent.lvs.engine import check_spec, service_keys

GROUP_CONFIG = """
virtual_server_group WEB {
  10.0.0.1-3 80
  10.0.1.8/30 443
  fwmark 7
}
virtual_server group WEB {
  delay_loop 3
  protocol TCP
  lvs_sched wrr
  lvs_method DR
  virtualhost www.vs.test
  real_server 10.0.2.1 80 {
    weight 2
    virtualhost www.rs.test
    HTTP_GET {
      url {
        path /a
        digest 9B3A0C85A887A256D6939DA88AABD8CD
      }
      url {
        path /b
        virtualhost www.url.test
        status_code 200-299 404
      }
    }
  }
}
"""


def test_a_group_expands_to_every_address_of_its_ranges_and_its_fwmarks():
    config = loads(GROUP_CONFIG)
    keys = service_keys(config.virtual_servers[0], config)
    assert keys == [
        *(ServiceKey.for_address(f"10.0.0.{i}", 80) for i in (1, 2, 3)),
        *(ServiceKey.for_address(f"10.0.1.{i}", 443) for i in (8, 9, 10, 11)),
        ServiceKey.for_fwmark(7),
    ]


def test_http_check_inherits_virtualhost_and_defaults_status_codes():
    config = loads(GROUP_CONFIG)
    vs = config.virtual_servers[0]
    rs = vs.real_servers[0]
    spec = check_spec(rs.checkers[0], rs, 80, vs)
    assert (spec.kind, spec.address, spec.port, spec.delay_loop) == ("HTTP_GET", "10.0.2.1", 80, 3)
    first, second = spec.options.urls
    assert first.virtualhost == "www.rs.test" and first.status_ranges == DEFAULT_STATUS_RANGES
    assert first.digest == "9b3a0c85a887a256d6939da88aabd8cd"
    assert second.virtualhost == "www.url.test"
    assert second.status_ranges == ((200, 299), (404, 404))


SEED_VIRTUAL_SERVER = """
virtual_server 192.168.179.199 80 {
    delay_loop 6
    lb_algo rr
    lb_kind DR
    persistence_timeout 60
    protocol TCP
    real_server 192.168.179.99 80 {
        weight 100
        TCP_CHECK {
            connect_timeout 10
            nb_get_retry 3
            delay_before_retry 3
            connect_port 80
        }
    }
}
"""


def test_seed_tcp_check_targets_connect_port_with_seed_timers():
    config = loads(SEED_VIRTUAL_SERVER)
    vs = config.virtual_servers[0]
    rs = vs.real_servers[0]
    spec = check_spec(rs.checkers[0], rs, rs.port, vs)
    assert spec.target == "[192.168.179.99]:80"
    timers = (spec.connect_timeout, spec.retry, spec.delay_before_retry, spec.delay_loop)
    # the seed's `nb_get_retry 3` is unknown to keepalived 2.2, which keeps 1 retry
    assert timers == (10, 1, 3, 6)
    assert service_keys(vs, config) == [ServiceKey.for_address("192.168.179.199", 80)]
