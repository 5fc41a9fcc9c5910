"""The IPVS modules' integration targets, run with ansible-playbook against the real kernel
(in the guest: tools/guest/run-tests). The targets assert every step themselves; this test
runs them and checks from outside that each left the table as it found it (empty)."""

from __future__ import annotations

import subprocess

import pytest

from testbed.ansible import run_target

pytestmark = pytest.mark.ipvs


@pytest.mark.parametrize("target", ["ipvs_service", "ipvs_realserver", "ipvs_info"])
def test_target(target, tmp_path):
    subprocess.run(["ipvsadm", "-C"], check=True)  # also loads ip_vs
    result = run_target(target, tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "failed=0" in result.stdout
    saved = subprocess.run(["ipvsadm", "-S", "-n"], check=True, capture_output=True, text=True)
    assert saved.stdout == ""
