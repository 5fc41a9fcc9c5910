"""pytest fixtures of the test bed."""

from __future__ import annotations

import os
import shutil

import pytest

from .netns import Lab


def netns_unavailable_reason() -> str | None:
    """Why namespaces cannot be built here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`)"
    return None


@pytest.fixture
def lab(tmp_path):
    """A fresh Lab whose namespaces are always deleted; pcaps stay in tmp_path/lab."""
    reason = netns_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with Lab(workdir=tmp_path / "lab") as the_lab:
        yield the_lab
