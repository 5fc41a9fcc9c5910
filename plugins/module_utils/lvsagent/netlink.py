"""pyroute2, imported in this one place and guarded.

The configuration code, `check-config` and ansible-test's import test run without pyroute2;
the code that talks netlink checks HAS_PYROUTE2 and says why it cannot run.
"""

from __future__ import annotations

import traceback
from typing import Optional

__all__ = [
    "HAS_PYROUTE2",
    "PYROUTE2_IMPORT_ERROR",
    "PYROUTE2_IMPORT_TRACEBACK",
    "REQUIREMENT",
    "AsyncIPRoute",
    "IPRoute",
    "NetlinkError",
    "missing_pyroute2",
]

REQUIREMENT = "pyroute2 >= 0.9.6"

try:
    from pyroute2 import AsyncIPRoute, IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
except ImportError as exc:
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR: Optional[ImportError] = exc
    PYROUTE2_IMPORT_TRACEBACK: Optional[str] = traceback.format_exc()
    AsyncIPRoute = IPRoute = None

    class NetlinkError(Exception):  # placeholder so `except NetlinkError` stays valid
        code = 0

else:
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
    PYROUTE2_IMPORT_TRACEBACK = None


def missing_pyroute2() -> str:
    """The operator's message when HAS_PYROUTE2 is false."""
    return f"{REQUIREMENT} is required: {PYROUTE2_IMPORT_ERROR}"
