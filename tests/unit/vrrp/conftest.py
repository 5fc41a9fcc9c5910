"""The VRRP unit tests run on a fake clock."""

from __future__ import annotations

import pytest
from fakeclock import FakeClock


@pytest.fixture
def clock():
    return FakeClock()
