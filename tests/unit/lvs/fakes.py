"""Fakes for the LVS unit tests: an in-memory IPVS table and a prober whose answers the test
sets per real server."""

from __future__ import annotations

from lvsagent.ipvs import IpvsError
from lvsagent.ipvs.codec import expected_fingerprint
from lvsagent.lvs.checkers import CheckResult


class FakeIpvs:
    """IpvsClient's interface over a dict; counts every change it is asked for."""

    def __init__(self):
        self.kernel: dict = {}  # key -> (Service, {(address, port): Destination})
        self.calls: list = []

    async def run(self, job, *args):
        return job(self, *args)

    def services(self, *, stats=True):
        return [service for service, _destinations in self.kernel.values()]

    def service(self, key, *, stats=True):
        entry = self.kernel.get(key)
        return entry[0] if entry else None

    def destinations(self, key, *, stats=True):
        if key not in self.kernel:
            raise IpvsError(f"cannot list the real servers of {key}", 3)
        return list(self.kernel[key][1].values())

    def changed_destinations(self, key, expected):
        dests = self.kernel[key][1].values()
        if frozenset(expected_fingerprint(d) for d in dests) == expected:
            return None
        return list(dests)

    def table(self, *, stats=True):
        return {key: (svc, list(dests.values())) for key, (svc, dests) in self.kernel.items()}

    def add_service(self, service):
        self.calls.append(("add_service", service.key))
        if service.key in self.kernel:
            raise IpvsError("exists", 17)
        self.kernel[service.key] = (service, {})

    def edit_service(self, service):
        self.calls.append(("edit_service", service.key))
        self.kernel[service.key] = (service, self.kernel[service.key][1])

    def delete_service(self, key):
        self.calls.append(("delete_service", key))
        del self.kernel[key]

    def add_destination(self, key, dest):
        self.calls.append(("add_destination", key, dest.address, dest.port))
        self.kernel[key][1][(dest.address, dest.port)] = dest

    def edit_destination(self, key, dest):
        self.calls.append(("edit_destination", key, dest.address, dest.port))
        self.kernel[key][1][(dest.address, dest.port)] = dest

    def delete_destination(self, key, address, port):
        self.calls.append(("delete_destination", key, address, port))
        del self.kernel[key][1][(address, port)]

    def apply(self, changes):
        failed = []
        for change in changes:
            try:
                self._run(change)
            except IpvsError as exc:
                failed.append((change, exc))
        return failed

    def _run(self, change):
        if change.action == "add_service":
            self.add_service(change.service)
        elif change.action == "edit_service":
            self.edit_service(change.service)
        elif change.action == "delete_service":
            self.delete_service(change.key)
        elif change.action == "add_destination":
            self.add_destination(change.key, change.destination)
        elif change.action == "edit_destination":
            self.edit_destination(change.key, change.destination)
        else:
            self.delete_destination(change.key, change.destination.address, change.destination.port)

    def weights(self, key) -> dict:
        """{"10.0.0.2:80": weight} of one service, for short assertions."""
        return {f"{a}:{p}": d.weight for (a, p), d in self.kernel[key][1].items()}


class FakeProber:
    """Answers probes from `results[(address, port)]` (default: success), counting them."""

    def __init__(self):
        self.results: dict = {}
        self.probes: list = []

    def fail(self, address, port, error="connection refused", reason="refused"):
        self.results[(address, port)] = CheckResult.failed(reason, error)

    def succeed(self, address, port, weight=None):
        self.results[(address, port)] = CheckResult(True, weight=weight)

    async def __call__(self, spec):
        self.probes.append((spec.address, spec.port))
        return self.results.get((spec.address, spec.port), CheckResult(True))
