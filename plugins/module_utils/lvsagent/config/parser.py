"""Build the typed model from the statement tree, with keepalived's meaning of each keyword.

Each block has a table `keyword -> handler` (config/blocks/, one module per block family,
all reading with the one `values.Reader`). A keyword missing from the table is a deprecated
alias (accepted, with a warning), a keyword lvs-agent deliberately ignores (warning), a
keyword valid only in another block, a keepalived keyword lvs-agent does not implement
(error "not supported by lvs-agent"), or an unknown keyword (error). Values are checked as
they are read; checks across objects live in `checks`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional

from . import checks
from .blocks import ParseState
from .blocks.checkers import CheckerBlocks
from .blocks.global_defs import GlobalDefsBlock
from .blocks.lvs import LvsBlocks
from .blocks.trackers import TrackerBlocks
from .blocks.vrrp import VrrpBlocks
from .errors import ConfigError, Problem
from .lexer import Lexer, Node, ReadError, Source, build_tree
from .model import Config, VrrpInstance
from .redact import redact
from .values import Handler, Reader


class Builder:
    """Walks the statement tree once and fills a Config: each block family reads its blocks
    with the one reader, and what one leaves for another is in the one `ParseState`."""

    def __init__(self, report: Callable[[Problem], None]):
        self.read = Reader(report)
        self.state = ParseState()
        checker_blocks = CheckerBlocks(self.read)
        blocks = (
            GlobalDefsBlock(self.read, self.state),
            TrackerBlocks(self.read),
            VrrpBlocks(self.read, self.state),
            LvsBlocks(self.read, checker_blocks),
            checker_blocks,
        )
        top: dict[str, Handler] = {}
        tables: dict[str, dict[str, Handler]] = {"top": top}
        for block in blocks:
            top.update(block.top_level())
            tables.update(block.tables())
        self.read.add_tables(tables)

    def release(self) -> None:
        """Break the cycle reader -> tables -> bound methods -> blocks -> reader, so that
        reference counting frees the builder (the cyclic GC would walk its state in one long
        pause)."""
        self.read.tables.clear()
        release(self.read.state)
        release(self.state.instance_keywords)

    def build(self, nodes: list[Node]) -> Config:
        """Empties `nodes` as it goes: each top-level statement is dropped once read, so the
        tree of a large file shrinks while the model grows (the peak is not their sum)."""
        top = Node(["<top>"], "", 0)
        nodes.reverse()
        while nodes:
            top.children = [nodes.pop()]
            self.read.walk(top, "top", self.state.config)
        return self.state.config


def run(
    path: str,
    text: Optional[str],
    host_checks: bool,
    overrides: Optional[dict],
    config_id: Optional[str] = None,
) -> Config:
    problems: list[Problem] = []
    source = Source({os.path.abspath(k): v for k, v in (overrides or {}).items()})
    lexer = Lexer(source, problems.append, config_id)
    if text is None:
        try:
            text = source.read(path)
        except ReadError as error:
            raise ConfigError(
                [Problem(path, 0, f"cannot read the configuration file: {error}")]
            ) from error
    tree = build_tree(lexer.tokenize_file(path, text), problems.append)
    builder = Builder(problems.append)
    try:
        config = builder.build(tree)
        config.files = lexer.files
        checks.check(
            config, problems.append, builder.state.instance_keywords, host_checks=host_checks
        )
    finally:
        builder.release()
    problems = [hide_secrets(problem, lexer.secrets) for problem in problems]
    errors = [problem for problem in problems if problem.severity == "error"]
    if errors:
        raise ConfigError(sorted_problems(problems, lexer.files))
    config.warnings = sorted_problems(problems, lexer.files)
    return config


def hide_secrets(problem: Problem, secrets: set[str]) -> Problem:
    """The one gate every problem passes: no message shows a password, whoever wrote it."""
    return dataclasses.replace(problem, message=redact(problem.message, secrets))


def release(items: list | dict) -> None:
    """Free a large list or dict a slice at a time: freeing millions of objects at once is one
    long C call that holds the GIL, which would stall the agent's loop while a reload parses."""
    if isinstance(items, dict):
        for key in list(items):
            del items[key]
    while items:
        del items[-4096:]


def sorted_problems(problems: list[Problem], files: list[str]) -> list[Problem]:
    """File order as read, then line order, so output follows the configuration."""
    order = {name: index for index, name in enumerate(files)}
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (order.get(p.file, len(order)), p.line))


def load(
    path: str,
    *,
    host_checks: bool = True,
    overrides: Optional[dict] = None,
    config_id: Optional[str] = None,
) -> Config:
    """Read, parse and check the configuration at `path` (and the files it includes).
    `config_id` selects `@ID` lines, as keepalived's `-i` (None: the host name's first part)."""
    return run(path, None, host_checks, overrides, config_id)


def loads(
    text: str,
    filename: str = "<string>",
    *,
    host_checks: bool = False,
    config_id: Optional[str] = None,
) -> Config:
    """Parse and check configuration text; includes are resolved relative to `filename`."""
    return run(filename, text, host_checks, None, config_id)


# block of a vrrp_instance -> the VrrpInstance list its entries go to
ENTRY_BLOCKS = {
    "virtual_ipaddress": "virtual_ipaddresses",
    "virtual_ipaddress_excluded": "virtual_ipaddresses_excluded",
    "unicast_peer": "unicast_peers",
    "track_interface": "track_interfaces",
    "track_script": "track_scripts",
    "track_file": "track_files",
    "track_process": "track_processes",
}


def parse_entry(block: str, text: str, filename: str = "<string>") -> Any:
    """One entry of a vrrp_instance block, read exactly as in a file: e.g.
    `parse_entry("virtual_ipaddress", "10.0.0.1/24 dev eth0")` -> VirtualAddress.

    Returns a VirtualAddress, a peer address (str), a TrackInterface or a TrackScript;
    raises ConfigError when the entry is invalid.
    """
    problems: list[Problem] = []
    tokens = Lexer(Source(), problems.append).split_words(text, filename, 1)
    words = [token.text for token in tokens if token.kind == "word"]
    instance = VrrpInstance("entry")
    if not words or len(words) != len(tokens):
        problems.append(Problem(filename, 1, f"{block}: expected one entry, got '{text}'"))
    else:
        node = Node([block], filename, 1, children=[Node(words, filename, 1)])
        Builder(problems.append).read.tables["vrrp_instance"][block](node, instance)
    entries = getattr(instance, ENTRY_BLOCKS[block])
    if problems or not entries:  # what keepalived would correct is no entry to write either
        raise ConfigError(problems)
    return entries[0]
