"""Prints what the lab's Prometheus answers (PromQL through its HTTP API, with the rules the role
ships): which director is MASTER of each VRRP instance, and how many real servers of each virtual
server are up as each director sees them. Runs on lvs-client (tools/lab/show passes it to
`python3 -c`); waits up to ARGV[1] seconds for a first answer, as a lab just converged may not
have been scraped yet. Exits 1 when Prometheus does not answer."""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
import urllib.request

API = "http://127.0.0.1:9090/api/v1/query"
MASTERS = "lvs:vrrp_instance_master"
REAL_SERVERS_UP = "lvs:virtual_server_real_servers_up"


def query(promql: str) -> list[dict]:
    url = f"{API}?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["data"]["result"]


def main(wait: float) -> int:
    deadline = time.monotonic() + wait
    while True:
        try:
            masters, servers = query(MASTERS), query(REAL_SERVERS_UP)
        except OSError as error:
            masters, servers = [], []
            failure = f"Prometheus on lvs-client does not answer: {error}"
        else:
            failure = f"no answer yet to {MASTERS} and {REAL_SERVERS_UP}"
        if masters and servers:
            break
        if time.monotonic() > deadline:
            print(failure)
            return 1
        time.sleep(1)
    print(f"{MASTERS} == 1 (which director is MASTER of each VRRP instance):")
    by_instance: dict[str, list[str]] = {}
    for series in masters:
        holders = by_instance.setdefault(series["metric"]["vrrp_instance"], [])
        if float(series["value"][1]) == 1:
            holders.append(series["metric"]["instance"])
    for name, holders in sorted(by_instance.items()):
        print(f"  {name}: {', '.join(sorted(holders)) or 'no director is MASTER'}")
    print(f"{REAL_SERVERS_UP} (real servers up, as each director sees them):")
    by_service: dict[str, list[str]] = {}
    for series in servers:
        labels = series["metric"]
        service = f"{labels['protocol'].upper()} {labels['virtual_server']}"
        seen = f"{int(float(series['value'][1]))} on {labels['instance']}"
        by_service.setdefault(service, []).append(seen)
    for service, seen in sorted(by_service.items()):
        print(f"  {service}: {', '.join(sorted(seen))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]) if len(sys.argv) > 1 else 0))
