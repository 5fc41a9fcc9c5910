"""Shared pytest set-up: the agent package, the test bed library and the unit tests' fakes
(tests/unit: fakeclock, ipvs_fake) are importable."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (os.path.join(REPO, "plugins", "module_utils"), HERE, os.path.join(HERE, "unit")):
    if path not in sys.path:
        sys.path.insert(0, path)

pytest_plugins = ["testbed.fixtures"]
