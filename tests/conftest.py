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

try:
    from hypothesis import settings
except ImportError:  # the guest runs only the ipvs tests, without hypothesis
    pass
else:
    # Property tests check behaviour, not speed: on a loaded 2-core machine an example may take
    # longer than hypothesis's default 200 ms deadline, which then fails a correct test.
    settings.register_profile("lvs-ha", deadline=None)
    settings.load_profile("lvs-ha")
