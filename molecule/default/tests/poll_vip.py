"""Runs inside the lab's client (python3 -c, stdlib only), started by tools/molecule-test before
a rolling change: one request to http://VIP:PORT/ every INTERVAL seconds, a new connection each,
until STOP_FILE exists. One line per request in LOG: start end ok|fail (CLOCK_MONOTONIC seconds).
LOG must not exist: a second poller (its start retried after a stalled `podman exec`) leaves.

Usage: python3 -c "$(cat poll_vip.py)" VIP PORT INTERVAL LOG STOP_FILE
"""

import http.client
import os
import sys
import time


def answered(vip: str, port: int) -> bool:
    connection = http.client.HTTPConnection(vip, port, timeout=1.0)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except OSError:
        return False
    finally:
        connection.close()


def main(vip: str, port: str, interval: str, log: str, stop_file: str) -> None:
    with open(log, "x", buffering=1) as out:
        while not os.path.exists(stop_file):
            start = time.monotonic()
            ok = answered(vip, int(port))
            out.write(f"{start:.3f} {time.monotonic():.3f} {'ok' if ok else 'fail'}\n")
            time.sleep(max(0.0, float(interval) - (time.monotonic() - start)))


if __name__ == "__main__":
    main(*sys.argv[1:])
