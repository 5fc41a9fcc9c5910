"""MISC_CHECK: run misc_path; exit 0 passes, 1 fails, 2-255 set a weight (misc_dynamic).

The script runs through `scripts.run_script`, the runner every script of the agent uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ...config.model import CheckSettings, ScriptUser
from ...scripts import Identity, run_script, split_command
from .base import CheckerKind, CheckResult, CheckSpec


@dataclass
class MiscCheck(CheckSettings):
    kind: str = "MISC_CHECK"
    misc_path: str = ""
    misc_timeout: Optional[float] = None  # None = delay_loop
    misc_dynamic: bool = False
    user: Optional[ScriptUser] = None  # None = global_defs' script_user
    retry: int = 0
    run_as: Optional[Identity] = field(default=None, compare=False, repr=False)  # as Script


@dataclass(frozen=True)
class MiscOptions:
    path: str
    timeout: Optional[float] = None
    dynamic: bool = False
    run_as: Optional[Identity] = None  # None: as the agent (a config loaded without host checks)


def keywords(read) -> dict:
    return {
        "misc_path": read.scalar("misc_path", lambda node: read.command(node, read.value(node))),
        "misc_timeout": read.timer("misc_timeout", 0.001, 86400),
        "misc_dynamic": read.scalar("misc_dynamic", read.bare_flag),
        "user": read.scalar("user", read.script_user),
    }


def misc_options(checker: MiscCheck) -> MiscOptions:
    return MiscOptions(
        checker.misc_path, checker.misc_timeout, checker.misc_dynamic, checker.run_as
    )


def dynamic_weight(exit_code: int) -> Optional[int]:
    """misc_dynamic: exit status 2-255 sets the weight to status - 2."""
    return exit_code - 2 if 2 <= exit_code <= 255 else None


async def misc_probe(spec: CheckSpec) -> CheckResult:
    options: MiscOptions = spec.options
    timeout = options.timeout if options.timeout else spec.delay_loop
    try:
        argv = split_command(options.path)
    except ValueError as exc:
        return CheckResult.failed("other", f"misc_path: {exc}")
    outcome = await run_script(argv, options.run_as, timeout)
    if outcome.ok:
        return CheckResult(True)
    if options.dynamic and outcome.code is not None and dynamic_weight(outcome.code) is not None:
        return CheckResult(True, weight=dynamic_weight(outcome.code))
    if outcome.timed_out:
        return CheckResult.failed("timeout", outcome.error)
    return CheckResult.failed("exit_status" if outcome.code is not None else "other", outcome.error)


KIND = CheckerKind(
    name="MISC_CHECK",
    model=MiscCheck,
    probe=misc_probe,
    keywords=keywords,
    connection=False,
    problems=lambda checker: (
        [] if checker.misc_path else [("error", "MISC_CHECK: misc_path is required")]
    ),
    options=misc_options,
    succeeded=lambda spec: f"Misc check to {spec.target} for [{spec.options.path}] success.",
    failed=lambda spec, error: (
        f"Misc check to {spec.target} for [{spec.options.path}] failed: {error}."
    ),
)
