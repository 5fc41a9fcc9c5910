"""The one value reader every block shares: keepalived's checks of each value, the problems
reported at `file:line`, and the walk of a block through its `keyword -> handler` table.

A reader raises `Invalid` after reporting (the keyword is skipped) or `Ignored` when
keepalived ignores the value with a warning (the keyword counts as never written).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..ipvs.model import canonical_address
from ..scripts import split_command
from .errors import Invalid, Problem
from .keywords import AGENT_KEYWORDS, DEPRECATED_ALIASES, IGNORED, KEEPALIVED_KEYWORDS, OBSOLETE
from .lexer import Node
from .model import Location, Script, ScriptUser
from .redact import excerpt

UINT32_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1
TIMER_MIN = 0.000001  # keepalived's timers count microseconds
TIMER_MAX = 1e9
UINT_TIMER_MAX = UINT32_MAX / 1_000_000  # a timer keepalived reads into UINT_MAX microseconds
GARP_DELAY_MAX = UINT32_MAX // 1_000_000  # keepalived keeps timers in microseconds
INTEGER = re.compile(r"[+-]?[0-9]+")
DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)")
BOOL_WORDS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
Handler = Callable[[Node, Any], None]
IGNORE = object()  # `lenient` fallback: keepalived keeps what it had before the bad value


def whole(low: int, high: int) -> Callable[[str], int]:
    """Parser for keepalived's read_unsigned/read_int: an integer within [low, high]."""

    def parse(raw: str) -> int:
        if not INTEGER.fullmatch(raw) or not low <= int(raw, 10) <= high:
            raise ValueError(raw)
        return int(raw, 10)

    return parse


def decimal(low: float, high: float) -> Callable[[str], float]:
    """Parser for keepalived's read_decimal/read_timer: a number within [low, high]."""

    def parse(raw: str) -> float:
        if not DECIMAL.fullmatch(raw) or not low <= float(raw) <= high:
            raise ValueError(raw)
        return float(raw)

    return parse


def ip_text(raw: str) -> str:
    """Parser for an IP address, in its canonical text."""
    return str(ipaddress.ip_address(raw))


def any_case(options: tuple) -> Callable[[str], str]:
    """Parser for a word keepalived compares with strcasecmp."""

    def parse(raw: str) -> str:
        for option in options:
            if raw.upper() == option.upper():
                return option
        raise ValueError(raw)

    return parse


def exact(options: tuple) -> Callable[[str], str]:
    """Parser for a word keepalived compares with strcmp: case matters."""

    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(raw)
        return raw

    return parse


class Ignored(Invalid):
    """A value keepalived ignores with a warning; the warning has already been reported."""


@dataclass
class BlockState:
    """What the builder remembers about a block while it reads it."""

    explicit: dict = field(default_factory=dict)  # keyword given in the block -> Location
    defaults: dict = field(default_factory=dict)  # checker options given at this level


def location(node: Node) -> Location:
    return Location(node.file, node.line)


class Reader:
    """Reads values and walks blocks for every block of the parser, reporting each problem
    once, at its `file:line`. `tables` maps a block name to its `keyword -> handler` table;
    `state_of(target)` is what was read in a target's block (keywords given, checker options).
    """

    def __init__(self, report: Callable[[Problem], None]):
        self.report = report
        self.tables: dict[str, dict[str, Handler]] = {}
        self.everywhere: set[str] = set()  # every keyword some block reads
        self.state: dict[int, BlockState] = {}

    def add_tables(self, tables: dict[str, dict[str, Handler]]) -> None:
        self.tables.update(tables)
        self.everywhere = {keyword for table in self.tables.values() for keyword in table}

    # ---- problems -------------------------------------------------------------------------

    def error(self, node: Node, message: str) -> None:
        self.report(Problem(node.file, node.line, message, "error"))

    def warning(self, node: Node, message: str) -> None:
        self.report(Problem(node.file, node.line, message, "warning"))

    # ---- walking blocks -------------------------------------------------------------------

    def walk(self, node: Node, table_name: str, target: Any) -> BlockState:
        state = self.state_of(target)
        table = self.tables[table_name]
        for child in node.children or []:
            if child.unsupported:
                continue
            keyword = child.keyword
            handler = table.get(keyword)
            if (
                handler is None
                and keyword in DEPRECATED_ALIASES
                and self.still_read(keyword, table_name)
            ):
                replacement = DEPRECATED_ALIASES[keyword]
                if replacement in table:
                    self.warning(child, f"{keyword} is deprecated, use {replacement}")
                    keyword, handler = replacement, table[replacement]
                    child = dataclasses.replace(child, words=[replacement, *child.args])
            if handler is None:
                self.unhandled(child, table_name)
                continue
            state.explicit[keyword] = location(child)
            try:
                handler(child, target)
            except Ignored:
                state.explicit.pop(keyword, None)  # as keepalived: as if never written
            except Invalid:
                continue
        return state

    def unhandled(self, node: Node, block: str) -> None:
        keyword = node.keyword
        where = "at top level" if block == "top" else f"in {block}"
        if keyword in IGNORED:
            self.warning(node, f"{keyword}: not supported by lvs-agent, ignored")
        elif not self.still_read(keyword, block):
            self.warning(node, f"Unknown keyword '{keyword}' - obsolete, ignored as by keepalived")
        elif keyword == "real_server":
            self.error(node, "real_server outside a virtual_server")
        elif keyword in AGENT_KEYWORDS:
            home = AGENT_KEYWORDS[keyword]
            self.error(node, f"{keyword} is not valid {where}: lvs-agent reads it in {home}")
        elif keyword in self.everywhere and keyword in self.tables:
            self.error(node, f"{keyword} block is not valid {where}")
        elif keyword in self.everywhere or keyword in DEPRECATED_ALIASES:
            self.error(node, f"{keyword} is not valid {where}")
        elif keyword in KEEPALIVED_KEYWORDS:
            self.error(node, f"{keyword}: not supported by lvs-agent")
        else:
            self.error(node, f"unknown keyword '{excerpt(keyword)}' {where}")

    @staticmethod
    def still_read(keyword: str, block: str) -> bool:
        """False for a keyword keepalived 2.2 no longer knows in this block."""
        return keyword not in OBSOLETE or block in OBSOLETE[keyword]

    # ---- value readers (raise Invalid after reporting) --------------------------------------

    def value(self, node: Node) -> str:
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if not node.args:
            self.error(node, f"{node.keyword}: missing value")
            raise Invalid
        if len(node.args) > 1:
            self.extra_arguments(node, node.args[1:])
        return node.args[0]

    def text(self, node: Node) -> str:
        return self.value(node)

    def integer(self, node: Node, low: int, high: int, text: Optional[str] = None) -> int:
        raw = self.value(node) if text is None else text
        if not INTEGER.fullmatch(raw):
            self.error(node, f"{node.keyword}: '{raw}' is not an integer")
            raise Invalid
        number = int(raw, 10)
        if not low <= number <= high:
            self.error(node, f"{node.keyword}: {number} is out of range {low}-{high}")
            raise Invalid
        return number

    def number(self, node: Node, low: float, high: float, text: Optional[str] = None) -> float:
        raw = self.value(node) if text is None else text
        if not DECIMAL.fullmatch(raw):
            self.error(node, f"{node.keyword}: '{raw}' is not a number")
            raise Invalid
        number = float(raw)
        if not low <= number <= high:
            self.error(node, f"{node.keyword}: {raw} is out of range {low:g}-{high:g}")
            raise Invalid
        return number

    def flag(self, node: Node) -> bool:
        """A keyword alone means on; an optional <BOOL> may follow."""
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if not node.args:
            return True
        if len(node.args) > 1:
            self.extra_arguments(node, node.args[1:])
        word = node.args[0].lower()
        if word not in BOOL_WORDS:
            self.warning(node, f"Invalid {node.keyword} parameter {node.args[0]}")
            raise Ignored
        return BOOL_WORDS[word]

    def always_on(self, node: Node) -> bool:
        """A virtual_server flag: keepalived 2.2 sets it whatever word follows, even `off`."""
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if node.args:
            self.warning(
                node,
                f"{' '.join(node.words)}: keepalived ignores the value on a virtual_server "
                f"and turns {node.keyword} on",
            )
        return True

    def bare_flag(self, node: Node) -> bool:
        """A keyword that takes no value at all."""
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if node.args:
            self.extra_arguments(node, node.args)
        return True

    def choice(self, node: Node, options: tuple, text: Optional[str] = None) -> str:
        raw = self.value(node) if text is None else text
        for option in options:
            if raw.upper() == option.upper():
                return option
        self.error(node, f"{node.keyword}: '{raw}' is not one of {'|'.join(options)}")
        raise Invalid

    def address(self, node: Node, text: Optional[str] = None) -> str:
        """The address's canonical text, the very object the running configuration and the
        engine hold for it (ipvs.model's cache): a reload does not copy 10,000 of them."""
        raw = self.value(node) if text is None else text
        try:
            return canonical_address(str(ipaddress.ip_address(raw)))
        except ValueError:
            self.error(node, f"{node.keyword}: invalid IP address '{excerpt(raw)}'")
            raise Invalid from None

    def port(self, node: Node, text: str) -> int:
        return self.integer(node, 0, 65535, text)

    def extra_arguments(self, node: Node, words: list[str]) -> None:
        self.warning(node, f"{node.keyword}: ignoring extra arguments: {' '.join(words)}")

    def script(self, node: Node) -> Script:
        """A notify/quorum script: the command, optionally followed by USER [GROUP]."""
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        if not node.args:
            self.error(node, f"{node.keyword}: missing script")
            raise Invalid
        command = self.command(node, node.args[0])
        user = self.script_user(node, node.args[1:]) if len(node.args) > 1 else None
        return Script(command, user, location(node))

    def command(self, node: Node, text: str) -> str:
        """A script line: its words must split (balanced quotes) into at least a program."""
        try:
            split_command(text)
        except ValueError as exc:
            self.error(node, f"{node.keyword}: cannot split '{text}' into words: {exc}")
            raise Invalid from None
        return text

    def script_user(self, node: Node, words: Optional[list[str]] = None) -> ScriptUser:
        """keepalived's `username [:][groupname]`: `nobody nogroup`, `nobody:nogroup`, ..."""
        words = node.args if words is None else words
        if node.is_block:
            self.error(node, f"{node.keyword} does not take a block")
            raise Invalid
        text = " ".join(words)
        if ":" in text:
            names = [name.strip() for name in text.split(":", 1)]
            malformed = any(not name or len(name.split()) != 1 for name in names)
        else:
            names = text.split()
            malformed = len(names) not in (1, 2)
        if malformed:
            self.error(
                node,
                f"{node.keyword}: expected USER [GROUP] or USER:GROUP, got '{' '.join(words)}'",
            )
            raise Invalid
        return ScriptUser(names[0], names[1] if len(names) == 2 else None, location(node))

    def require_block(self, node: Node) -> list[Node]:
        if not node.is_block:
            self.error(node, f"{node.keyword}: expected a block {{ ... }}")
            raise Invalid
        return [child for child in node.children or [] if not child.unsupported]

    def scalar(self, attribute: str, reader: Callable[[Node], Any]) -> Handler:
        """Handler that stores `reader(node)` in `target.attribute`."""

        def handle(node: Node, target: Any) -> None:
            setattr(target, attribute, reader(node))

        return handle

    def ranged(self, attribute: str, low: int, high: int) -> Handler:
        return self.scalar(attribute, lambda node: self.integer(node, low, high))

    def timer(self, attribute: str, low: float = 0.0, high: float = 1e9) -> Handler:
        return self.scalar(attribute, lambda node: self.number(node, low, high))

    def lenient(
        self, attribute: str, parse: Callable[[str], Any], message: str, fallback: Any = IGNORE
    ) -> Handler:
        """A value keepalived reports and then ignores (or replaces by `fallback`): the same
        warning, in its words, and the same outcome. `message` may use {name} and {value}."""

        def handle(node: Node, target: Any) -> None:
            setattr(target, attribute, self.tolerate(node, target, parse, message, fallback))

        return handle

    def tolerate(
        self, node: Node, target: Any, parse: Callable[[str], Any], message: str, fallback: Any
    ) -> Any:
        raw = self.value(node)
        try:
            return parse(raw)
        except ValueError:
            self.warning(node, message.format(name=getattr(target, "name", ""), value=raw))
            if fallback is IGNORE:
                raise Ignored from None
            return fallback

    def repeat_count(self, attribute: str, label: str) -> Handler:
        """A gratuitous ARP count: keepalived ignores a bad one and turns 0 into 1."""
        read = self.lenient(
            attribute, whole(0, UINT32_MAX), label + " '{value}' invalid - ignoring"
        )

        def handle(node: Node, target: Any) -> None:
            read(node, target)
            if getattr(target, attribute) == 0:
                name = getattr(target, "name", "")
                self.warning(
                    node, f"{label.format(name=name)} must be greater than 0, setting to 1"
                )
                setattr(target, attribute, 1)

        return handle

    def reverse_option(self, node: Node, words: list[str]) -> bool:
        if not words:
            return False
        if len(words) == 1 and words[0] in ("reverse", "noreverse"):
            return words[0] == "reverse"
        self.error(node, f"{node.keyword}: unexpected '{excerpt(words[0])}' (expected reverse)")
        raise Invalid

    def tracked_weight(self, low: int, high: int) -> Handler:
        """`weight N [reverse]` of a track_file or vrrp_track_process block."""

        def handle(node: Node, target: Any) -> None:
            if not node.args:
                self.error(node, "weight: missing value")
                raise Invalid
            target.weight = self.integer(node, low, high, node.args[0])
            target.weight_reverse = self.reverse_option(node, node.args[1:])

        return handle

    def define(self, node: Node, known: dict, item: Any, kind: str) -> None:
        """Record a named block; a second one of the same name is an error."""
        if item.name in known:
            self.error(node, f"{kind} {item.name} already defined at {known[item.name].location}")
            return
        known[item.name] = item

    def block_name(self, node: Node) -> str:
        self.require_block(node)
        if not node.args:
            self.error(node, f"{node.keyword}: missing name")
            raise Invalid
        if len(node.args) > 1:
            self.extra_arguments(node, node.args[1:])
        return node.args[0]

    @staticmethod
    def tainted(node: Node) -> bool:
        """True when part of the block was rejected, so missing settings are expected."""
        waiting = list(node.children or [])
        while waiting:
            child = waiting.pop()
            if child.unsupported:
                return True
            waiting.extend(child.children or [])
        return False

    def interface_name(self, node: Node) -> str:
        name = self.value(node)
        if len(name) > 15 or "/" in name or name in (".", ".."):
            self.error(node, f"{node.keyword}: '{name}' is not a valid interface name")
            raise Invalid
        return name

    def connection_table(self) -> dict[str, Handler]:
        """Where a checker connects to and from (also SMTP_CHECK's host blocks)."""
        return {
            "connect_ip": self.lenient(
                "connect_ip", ip_text, "Invalid connect_ip address {value} - ignoring"
            ),
            "connect_port": self.lenient(
                "connect_port", whole(1, 65535), "Invalid checker connect_port '{value}'"
            ),
            "bindto": self.lenient("bindto", ip_text, "Invalid bindto address {value} - ignoring"),
            "bind_port": self.lenient(
                "bind_port", whole(1, 65535), "Invalid checker bind_port '{value}'"
            ),
        }

    def state_of(self, target: Any) -> BlockState:
        return self.state.setdefault(id(target), BlockState())

    def forget(self, targets: Iterable[Any]) -> None:
        """Drops what was read in the blocks of `targets`, once nothing asks any more: a
        virtual server's ten thousand real servers' states are not kept to the end."""
        for target in targets:
            self.state.pop(id(target), None)
