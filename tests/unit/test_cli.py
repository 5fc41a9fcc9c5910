"""The command line dispatches to sub-command modules without importing them up front."""

import subprocess
import sys
from pathlib import Path

import pytest

from lvsagent import cli

MODULE_UTILS = Path(__file__).resolve().parents[2] / "plugins" / "module_utils"


def test_every_command_has_a_parser_and_a_handler_module():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(subparsers.choices) == set(cli.COMMANDS)


def test_missing_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_python_dash_m_prints_help_without_optional_dependencies():
    result = subprocess.run(
        [sys.executable, "-S", "-m", "lvsagent", "--help"],
        cwd=MODULE_UTILS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "check-config" in result.stdout
    assert "run" in result.stdout
