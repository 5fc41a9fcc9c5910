"""Shared pytest set-up: the agent package and the test bed library are importable."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (os.path.join(REPO, "plugins", "module_utils"), HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

pytest_plugins = ["testbed.fixtures"]
