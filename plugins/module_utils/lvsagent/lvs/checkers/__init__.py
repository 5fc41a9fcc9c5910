"""The health checkers, one module per kind, behind one registry.

`KINDS` maps keepalived's block name (TCP_CHECK, HTTP_GET, ...) to its `CheckerKind`: the
parser reads a checker block with the kind's keywords, the engine builds the kind's spec,
and `probe` runs the kind's probe. A new kind is one module here plus its line below.

A probe does one attempt and reports what it saw; retries, delays and up/down decisions
belong to `health`. Probes run on the agent's event loop (no thread per check) and never
raise: whatever a real server sends back, the answer is a `CheckResult`.
"""

from __future__ import annotations

import asyncio

from . import dns, file, http, misc, ping, smtp, tcp, udp
from .base import CheckerKind, CheckResult, CheckSpec

KINDS: dict[str, CheckerKind] = {
    kind.name: kind
    for kind in (
        tcp.KIND,
        *http.KINDS,
        misc.KIND,
        ping.KIND,
        udp.KIND,
        dns.KIND,
        smtp.KIND,
        file.KIND,
    )
}


async def probe(spec: CheckSpec) -> CheckResult:
    """One attempt of the checker described by `spec`."""
    kind = KINDS.get(spec.kind)
    if kind is None:
        return CheckResult.failed("other", f"unknown checker {spec.kind}")
    try:
        return await kind.probe(spec)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a probe must never take the agent down
        return CheckResult.failed("other", f"{type(exc).__name__}: {exc}")


__all__ = ["KINDS", "CheckResult", "CheckSpec", "CheckerKind", "probe"]
