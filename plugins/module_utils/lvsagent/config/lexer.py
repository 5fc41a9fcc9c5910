"""Turn keepalived.conf text (and the files it includes) into a tree of statements.

keepalived's syntax is line based: a statement is the words of one line, a word followed by
`{` opens a block that `}` closes, `!` and `#` start comments anywhere outside quotes, and
quotes only group words (`'a" b "c'` is the single word `a b c`). Each line first goes
through keepalived's parameters, conditional lines and sequences (params.py). `include` is
resolved here, relative to the directory of the file that contains it, so every statement
keeps the file and line it really comes from (for expanded text: the line that expanded it).
"""

from __future__ import annotations

import errno
import glob
import itertools
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Callable, Optional

from ..ipvs.model import SLOTS
from .errors import Problem
from .params import ExpansionError, Line, Parameters, default_config_id, shorten
from .redact import secret_values

INCLUDE_KEYWORDS = ("include", "includer", "includem", "includew", "includeb", "includea")
MAX_INCLUDE_DEPTH = 32
# Limits on what one load reads, so that no file makes a reload hang or exhaust memory.
# A 10 MB configuration (thousands of virtual servers) stays well within them.
MIB = 1024 * 1024
MAX_FILE_BYTES = 16 * MIB
MAX_TOTAL_BYTES = 64 * MIB
MAX_FILES = 1024
MAX_PATTERN_LENGTH = 4096  # PATH_MAX
MAX_GLOB_ALTERNATIVES = 1024  # `{a,b}{c,d}...` multiplies: stop before it explodes
MAX_GLOB_NESTING = 32
OCTAL_ESCAPE = re.compile(r"[0-7]{1,3}")
HEX_ESCAPE = re.compile(r"[0-9A-Fa-f]{1,2}")
SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
SIMPLE_ESCAPES["v"] = "\v"


@dataclass(**SLOTS)  # one per statement: a large file makes hundreds of thousands
class Node:
    """One statement: its words, and the statements of its block when it opens one."""

    words: list[str]
    file: str
    line: int
    children: Optional[list[Node]] = None
    # the statement uses syntax lvs-agent rejects; the problem is already reported
    unsupported: bool = False
    block_line: int = 0
    block_file: str = ""

    @property
    def keyword(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def args(self) -> list[str]:
        return self.words[1:]

    @property
    def is_block(self) -> bool:
        return self.children is not None


@dataclass(**SLOTS)  # one per word, all alive until the tree is built
class Token:
    text: str
    file: str
    line: int
    kind: str = "word"  # "word", "{", "}", "eol"


class ReadError(Exception):
    """A file the configuration names cannot be read; the message says why."""


class LimitError(ReadError):
    """Reading the file would exceed a limit of the whole load: reading stops there."""


class PatternError(Exception):
    """An include pattern that lvs-agent refuses to expand; the message says why."""


@dataclass
class Source:
    """Reads files for the lexer; `overrides` replaces (or hides) files by absolute path.

    Only regular files are opened (a FIFO or a device would block the reader forever), and
    the limits above hold per file and for everything one Source reads.
    """

    overrides: dict = field(default_factory=dict)
    files_read: int = 0
    bytes_read: int = 0

    def read(self, path: str) -> str:
        absolute = os.path.abspath(path)
        if absolute in self.overrides:
            text = self.overrides[absolute]
            if text is None:
                raise ReadError(os.strerror(errno.ENOENT))
            self.account(len(text))
            return text
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer before fstat() refuses it
            fd = os.open(absolute, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as error:
            raise ReadError(error.strerror) from error
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise ReadError(f"not a regular file ({file_kind(mode)})")
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # a bound even if the file grows meanwhile
        self.account(len(data))
        return data.decode("utf-8", errors="replace").lstrip("\ufeff")

    def account(self, size: int) -> None:
        """Count one more file of `size` bytes against the limits; raise when one is exceeded."""
        if size > MAX_FILE_BYTES:
            raise ReadError(f"larger than {MAX_FILE_BYTES // MIB} MiB")
        self.files_read += 1
        self.bytes_read += size
        if self.files_read > MAX_FILES:
            raise LimitError(f"more than {MAX_FILES} files in the configuration")
        if self.bytes_read > MAX_TOTAL_BYTES:
            raise LimitError(f"configuration files total more than {MAX_TOTAL_BYTES // MIB} MiB")

    def expand(self, pattern: str) -> list[str]:
        """Files matching a glob pattern (with csh braces), overrides included, sorted.

        A name without wildcards is kept even when it is not a regular file, so that read()
        reports it; directories that a wildcard matches are skipped.
        """
        found: set[str] = set()
        for alternative in expand_braces(pattern):
            if glob.has_magic(alternative):
                matches = itertools.islice(glob.iglob(alternative), MAX_FILES + 1)
                found.update(os.path.abspath(p) for p in matches if not os.path.isdir(p))
                found.update(p for p in self.overrides if path_matches(p, alternative))
            else:
                found.add(os.path.abspath(alternative))
            if len(found) > MAX_FILES:
                raise PatternError(f"matches more than {MAX_FILES} files")
        return sorted(path for path in found if self.overrides.get(path, "") is not None)


def file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"


def path_matches(path: str, pattern: str) -> bool:
    """Glob matching where wildcards never cross a `/`, as glob() does."""
    path_parts = os.path.abspath(path).split(os.sep)
    pattern_parts = os.path.abspath(pattern).split(os.sep)
    return len(path_parts) == len(pattern_parts) and all(
        fnmatchcase(part, wanted) for part, wanted in zip(path_parts, pattern_parts)
    )


def expand_braces(pattern: str) -> list[str]:
    """csh style `{a,b}` expansion, which keepalived's glob(GLOB_BRACE) performs.

    Works through a list rather than by recursion; raises PatternError when the pattern is
    too long, nests braces too deeply or expands to too many alternatives.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    pending, done = [pattern], []
    while pending:
        current = pending.pop()
        group = first_brace_group(current)
        if group is None:
            done.append(current)
        else:
            start, end, options = group
            head, tail = current[:start], current[end + 1 :]
            pending.extend(head + option + tail for option in reversed(options))
        if len(done) + len(pending) > MAX_GLOB_ALTERNATIVES:
            raise PatternError(f"expands to more than {MAX_GLOB_ALTERNATIVES} alternatives")
    return done


def first_brace_group(pattern: str) -> Optional[tuple[int, int, list[str]]]:
    """The first top-level `{...}` holding at least two comma-separated options, if any."""
    depth = 0
    start = -1
    for index, char in enumerate(pattern):
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
            if depth > MAX_GLOB_NESTING:
                raise PatternError(f"braces nested more than {MAX_GLOB_NESTING} deep")
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                options = split_top_level(pattern[start + 1 : index])
                if len(options) >= 2:
                    return start, index, options
    return None


def split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        current.append(char)
    parts.append("".join(current))
    return parts


class Lexer:
    """Tokenises a file and its includes; problems go to the `report` callback."""

    def __init__(
        self,
        source: Source,
        report: Callable[[Problem], None],
        config_id: Optional[str] = None,
    ):
        self.source = source
        self.report = report
        self.parameters = Parameters(default_config_id() if config_id is None else config_id)
        self.include_stack: list[str] = []
        self.files: list[str] = []
        self.secrets: set[str] = set()  # every secret value read, for `redact`

    def error(self, file: str, line: int, message: str) -> None:
        self.report(Problem(file, line, message, "error"))

    def warning(self, file: str, line: int, message: str) -> None:
        self.report(Problem(file, line, message, "warning"))

    def tokenize_file(self, path: str, text: str) -> Iterator[Token]:
        """The tokens of a file and its includes, a line at a time: the tree is built as they
        come, so a large file's tokens (a hundred bytes each) are never all alive at once."""
        absolute = os.path.abspath(path)
        self.files.append(path)
        self.include_stack.append(absolute)
        try:
            for number, line in enumerate(text.splitlines(), start=1):
                try:
                    for expanded in self.parameters.expand(line, path):
                        yield from self.tokenize_line(expanded, path, number)
                except ExpansionError as error:
                    self.error(path, number, str(error))
        finally:
            self.parameters.end_file()
            self.include_stack.pop()

    def tokenize_line(self, line: Line, file: str, number: int) -> Iterator[Token]:
        tokens = self.split_words(line.text.strip(), file, number)
        words = [token.text for token in tokens if token.kind == "word"]
        self.secrets.update(secret_values(words))
        if words and words[0] in INCLUDE_KEYWORDS and tokens[0].kind == "word":
            if line.include_allowed:
                yield from self.include(words, file, number)
                return
            self.error(
                file,
                number,
                f"{words[0]}: an include must be written on a line of its own, not come from"
                " a conditional line, a parameter or a sequence (keepalived reads it twice)",
            )
            return
        tokens.append(Token("", file, number, "eol"))
        yield from tokens

    def split_words(self, line: str, file: str, number: int) -> list[Token]:
        tokens: list[Token] = []
        word: list[str] = []
        in_word = False
        quote = ""
        index = 0
        while index < len(line):
            char = line[index]
            if quote:
                if char == quote:
                    quote = ""
                elif char == "\\" and index + 1 < len(line):
                    text, index = read_escape(line, index + 1)
                    word.append(text)
                    continue
                else:
                    word.append(char)
                index += 1
                continue
            if char in "\"'":
                quote = char
                in_word = True
            elif char in "#!":
                break
            elif char in "{}":
                if in_word:
                    tokens.append(Token("".join(word), file, number))
                    word, in_word = [], False
                tokens.append(Token(char, file, number, char))
            elif char.isspace():
                if in_word:
                    tokens.append(Token("".join(word), file, number))
                    word, in_word = [], False
            else:
                word.append(char)
                in_word = True
            index += 1
        if quote:
            self.error(file, number, f"unterminated quoted string (missing {quote})")
        if in_word:
            tokens.append(Token("".join(word), file, number))
        return tokens

    def include(self, words: list[str], file: str, number: int) -> Iterator[Token]:
        keyword = words[0]
        if len(words) < 2:
            self.error(file, number, f"{keyword}: missing file name")
            return
        if len(words) > 2:
            self.warning(
                file, number, f"{keyword}: ignoring extra arguments: {' '.join(words[2:])}"
            )
        if len(self.include_stack) >= MAX_INCLUDE_DEPTH:
            self.error(file, number, f"{keyword}: includes nested too deeply")
            return
        pattern = words[1]
        if "\0" in pattern:  # no file name holds one; os functions raise ValueError on it
            self.error(file, number, f"{keyword}: file name contains a NUL character")
            return
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.dirname(os.path.abspath(file)), pattern)
        try:
            paths = self.source.expand(pattern)
            wildcard = glob.has_magic(pattern) or len(expand_braces(pattern)) > 1
        except PatternError as error:
            self.error(file, number, f"{keyword} {shorten(words[1])}: {error}")
            return
        if not paths and wildcard and keyword != "includer":
            self.warning(file, number, f"{keyword} {words[1]}: no file matches")
        for path in paths:
            if path in self.include_stack:
                self.error(file, number, f"{keyword} {words[1]}: {path} includes itself")
                continue
            try:
                text = self.source.read(path)
            except LimitError as error:
                self.error(file, number, f"{keyword}: cannot read {path}: {error}")
                break
            except ReadError as error:
                if keyword != "includer" or os.path.lexists(path):
                    self.error(file, number, f"{keyword}: cannot read {path}: {error}")
                continue
            yield from self.tokenize_file(display_path(path, file), text)


def display_path(path: str, including_file: str) -> str:
    """Show included files the way the main file was named (relative stays relative)."""
    if os.path.isabs(including_file):
        return path
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def read_escape(line: str, index: int) -> tuple[str, int]:
    """Decode the escape sequence whose first character is at `index`; return text, next."""
    char = line[index]
    if char in SIMPLE_ESCAPES:
        return SIMPLE_ESCAPES[char], index + 1
    if char == "x":
        digits = HEX_ESCAPE.match(line, index + 1)  # match at a position: no copy of the line
        if digits:
            return chr(int(digits.group(), 16)), digits.end()
        return "x", index + 1
    if char in "01234567":
        digits = OCTAL_ESCAPE.match(line, index)
        return chr(int(digits.group(), 8) & 0xFF), digits.end()
    if char == "c" and index + 1 < len(line):
        return chr(ord(line[index + 1].upper()) ^ 0x40), index + 2
    return char, index + 1


def build_tree(tokens: Iterable[Token], report: Callable[[Problem], None]) -> list[Node]:
    """Group tokens into statements and blocks; unbalanced braces are reported."""
    root: list[Node] = []
    stack: list[tuple[Node, list[Node]]] = []
    current: list[str] = []
    current_start: Optional[Token] = None
    last_leaf: Optional[Node] = None
    siblings = root

    def finish() -> Optional[Node]:
        nonlocal current, current_start
        if not current or current_start is None:
            current, current_start = [], None
            return None
        node = Node(current, current_start.file, current_start.line)
        siblings.append(node)
        current, current_start = [], None
        return node

    for token in tokens:
        if token.kind == "word":
            if current_start is None:
                current_start = token
            current.append(token.text)
        elif token.kind == "eol":
            node = finish()
            if node is not None:
                last_leaf = node
        elif token.kind == "{":
            node = finish()
            if node is None and last_leaf is not None and last_leaf is siblings[-1]:
                node = last_leaf  # `{` on the line after the block's keyword
            if node is None or node.children is not None:
                report(Problem(token.file, token.line, "unexpected '{'"))
                node = Node(["{"], token.file, token.line, unsupported=True)
                siblings.append(node)
            node.children = []
            node.block_file, node.block_line = token.file, token.line
            stack.append((node, siblings))
            siblings = node.children
            last_leaf = None
        else:  # "}"
            finish()
            last_leaf = None
            if not stack:
                report(Problem(token.file, token.line, "unexpected '}'"))
                continue
            siblings = stack.pop()[1]
    finish()
    for node, _siblings in reversed(stack):
        report(Problem(node.file, node.line, f"{node.keyword}: missing '}}' to close this block"))
    return root
