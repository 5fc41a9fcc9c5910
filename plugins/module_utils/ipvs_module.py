# Copyright: lvs.ha contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the IPVS modules share on the Ansible side: opening the client and failing clearly."""

from __future__ import annotations

from contextlib import contextmanager

from ansible_collections.lvs.ha.plugins.module_utils.lvsagent.ipvs import IpvsClient, IpvsError

FAMILIES = {"ipv4": 4, "ipv6": 6}
# One real server: ipvs_realserver's options, and each entry of ipvs_service's realservers.
REALSERVER_SPEC = {
    "address": {"type": "str", "required": True},
    "port": {"type": "int"},
    "forwarding": {"type": "str", "choices": ["dr", "nat", "tun"]},
    "weight": {"type": "int"},
    "upper_threshold": {"type": "int"},
    "lower_threshold": {"type": "int"},
}


@contextmanager
def ipvs_client(module):
    """An IpvsClient (stdlib only); a kernel without IPVS or a bad value fails the task."""
    try:
        with IpvsClient() as client:
            yield client
    except (IpvsError, ValueError) as exc:
        module.fail_json(msg=str(exc))


def run_manager(module, manager_class):
    """Runs manager.present() or .absent() as `state` asks and exits with its results."""
    with ipvs_client(module) as client:
        manager = manager_class(module, client)
        if module.params["state"] == "present":
            manager.present()
        else:
            manager.absent()
    module.exit_json(**manager.results())
