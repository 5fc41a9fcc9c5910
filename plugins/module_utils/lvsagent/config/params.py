"""keepalived's conditional lines, parameters and sequences, expanded before blocks are read.

This follows `read_line()` of keepalived 2.2.7's lib/parser.c, line by line:

- `@ID text` keeps `text` only when ID is the config id (`-i`, default the host name up to
  its first dot); `@^ID text` keeps it only when ID is not.
- `$NAME=value` defines a parameter (a value ending in `\\` continues on the next lines: a
  multi-line definition); `$NAME` followed by a space, tab, `,`, `)` or the end of the line, or
  `${NAME}` anywhere, is replaced by the value, again and again until nothing changes. A
  multi-line value only replaces a reference that ends its line, and its further lines follow.
  Undefined names stay as they are. `${_PWD}`, `${_INSTANCE}`, `${_RANDOM [MIN [MAX]]}`,
  `${_HASH}` and `${_BANG}` are predefined.
- `~SEQ(var, start, step, end) text` (and `~SEQx`, hexadecimal) repeats `text` with `$var`
  set to each number; `~LST(var, v1, v2...)` / `~LST({a, b}, {1, 2}, ...)` to each value.
- The text after a brace is read as a line of its own: `global_defs { @main router_id A }`.

Every line produced keeps the file and line that produced it, so an error inside expanded
text names that line. Expansion is bounded (see the limits below): a parameter that refers
to itself, definitions that double at each level or a huge sequence are an error at the line
that uses them, never a hang.

An `include` is honoured only when the line itself starts with an include keyword (its file
name may use parameters): keepalived's child processes re-read an include that appears
through a conditional or a parameter a second time (keepalived.conf(5): "include handling
will not work if the include line uses conditional configuration or parameter substitution").
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

# Limits of expansion for one load.
# keepalived.conf(5)'s largest example (65024 instances) counts 2 million lines, 32 MB and
# 1.3 million substitutions: it fits twice.
MAX_EXPANDED_LINES = 4_000_000
MAX_EXPANDED_BYTES = 64 * 1024 * 1024  # characters of the lines expansion produces
MAX_SUBSTITUTION_WORK = 1024 * 1024 * 1024  # characters substitution copies, in a load
MAX_SUBSTITUTIONS = 8_000_000  # about 1 s CPU a million
MAX_EXPANDED_LINE_LENGTH = 65536  # keepalived's own line buffer is 1024 bytes
MAX_SUBSTITUTIONS_PER_LINE = 4096
MAX_BLOCK_SPLITS_PER_LINE = 64  # `{ @ID ...`, `} ~SEQ(...)`: see split_block()
MAX_SEQUENCE_ARGUMENTS = 63  # keepalived: 3 longs with their separators
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

INCLUDE_LINE = re.compile(r"include[rmwba]?[ \t]")
NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)")
# `${NAME}`, `${NAME 1 2}` (arguments), or `$NAME` before a blank, `,`, `)` or the end
REFERENCE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<arguments>[ 0-9]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)(?=[ \t,)]|$))"
)
BLANKS = " \t"
SPECIAL = re.compile(r"[$@~]")
DECOMMENT = re.compile(r'["\\!#]')
READ_AS_A_LINE = re.compile(r"[{} \t]*[$@~]")


class ExpansionError(Exception):
    """The line cannot be expanded; the message says why (keepalived's words where it has some)."""


class ExpansionLimit(ExpansionError):
    """A limit of the whole load is reached: no later line is expanded (the load fails)."""


@dataclass
class Definition:
    value: str = ""
    multiline: bool = False
    compute: Optional[Callable[[Parameters, Optional[list[int]]], str]] = None  # predefined
    max_params: int = 0


@dataclass
class Line:
    """One line for the lexer. `include_allowed`: the line is an include as written."""

    text: str
    include_allowed: bool


@dataclass
class Lines:
    """Further lines of a multi-line value."""

    lines: list[str]
    index: int = 0

    def next_line(self, params: Parameters) -> str:
        self.index += 1
        return self.lines[self.index - 1]

    @property
    def done(self) -> bool:
        return self.index >= len(self.lines)


@dataclass
class Sequence:
    """`~SEQ`: `text` once for each number, `var` set to it."""

    var: str
    next: int
    step: int
    last: int
    hexadecimal: bool
    text: str

    def next_line(self, params: Parameters) -> str:
        params.define(self.var, format(self.next, "x") if self.hexadecimal else str(self.next))
        self.next += self.step
        return self.text

    @property
    def done(self) -> bool:
        return self.next > self.last if self.step > 0 else self.next < self.last


@dataclass
class ValueList:
    """`~LST`: `text` once for each set of values, the variables set to them."""

    names: list[str]
    value_sets: list[list[str]]
    text: str
    index: int = 0

    def next_line(self, params: Parameters) -> str:
        for name, value in zip(self.names, self.value_sets[self.index]):
            params.define(name, value)
        self.index += 1
        return self.text

    @property
    def done(self) -> bool:
        return self.index >= len(self.value_sets)


Frame = Union[Lines, Sequence, ValueList]


@dataclass
class Parameters:
    """The parameters of one load, shared by every file it reads."""

    config_id: str
    definitions: dict = field(default_factory=dict)
    pending: Optional[Definition] = None  # a multi-line definition being read
    pending_lines: list = field(default_factory=list)
    lines_produced: int = 0
    bytes_produced: int = 0
    substitution_work: int = 0
    substitutions: int = 0
    exhausted: bool = False

    def __post_init__(self) -> None:
        self.current_file = ""
        self.definitions.update(
            {
                "_PWD": Definition(compute=current_directory),
                "_INSTANCE": Definition(compute=config_id),
                "_RANDOM": Definition(compute=random_number, max_params=2),
                "_HASH": Definition("#"),
                "_BANG": Definition("!"),
            }
        )

    def define(self, name: str, value: str) -> None:
        self.definitions[name] = Definition(value)

    def end_file(self) -> None:
        """A multi-line definition ends with its file."""
        self.finish_definition()

    def expand(self, raw: str, file: str) -> Iterator[Line]:
        """The lines `raw` (one line of `file`) stands for; raises ExpansionError."""
        if self.pending is None and not SPECIAL.search(raw):
            yield Line(raw, True)  # the common case, without decomment()'s walk of the line
            return
        if self.exhausted:
            return
        self.current_file = os.path.abspath(file)
        clean = decomment(raw)
        if self.pending is not None:
            if not raw.strip("\r\n"):
                self.finish_definition()
            elif clean:
                self.continue_definition(clean)
            return
        if not SPECIAL.search(clean):
            yield Line(raw, True)
            return
        include_allowed = INCLUDE_LINE.match(clean) is not None
        stack: list[Frame] = []
        text: Optional[str] = clean
        while True:
            splits = 0
            while text is not None:
                processed = self.process(text, stack) or ""
                head, text = split_block(processed)
                if text is None:
                    if processed == clean and not stack:
                        yield Line(raw, include_allowed)
                    elif processed:
                        self.count_line(processed)
                        yield Line(processed, include_allowed)
                    continue
                splits += 1
                if splits > MAX_BLOCK_SPLITS_PER_LINE:
                    raise ExpansionError(
                        f"more than {MAX_BLOCK_SPLITS_PER_LINE} blocks on one line before"
                        " conditional lines, parameters or sequences"
                    )
                self.count_line(head)
                yield Line(head, include_allowed)
                include_allowed = False
            if not stack:
                return
            include_allowed = False
            frame = stack[-1]
            text = frame.next_line(self)
            if frame.done:
                stack.pop()
            self.count_line(text)

    def count_line(self, text: str) -> None:
        self.lines_produced += 1
        self.bytes_produced += len(text)
        if self.lines_produced > MAX_EXPANDED_LINES:
            self.exhaust(f"expansion produces more than {MAX_EXPANDED_LINES} lines")
        if self.bytes_produced > MAX_EXPANDED_BYTES:
            self.exhaust(f"expansion produces more than {MAX_EXPANDED_BYTES} characters")

    def exhaust(self, message: str) -> None:
        self.exhausted = True
        raise ExpansionLimit(message)

    def process(self, text: str, stack: list[Frame]) -> Optional[str]:
        """One line through conditionals, definitions, sequences and substitution: the text
        left for the lexer (None or "" for nothing); new frames go on `stack`."""
        if self.pending is not None:
            if text:
                self.continue_definition(text)
            else:
                self.finish_definition()
            return None
        while True:
            if text.startswith("@"):
                text = self.conditional(text)
                if text is None:
                    return None
            if text.startswith("$") and self.definition(text):
                return None
            if text.startswith(("~SEQ", "~LST")):
                stack.append(sequence(text, self) if text[1] == "S" else value_list(text))
                return None
            if text.startswith("~"):
                return text
            replaced, frames = self.replace(text)
            if replaced is None:
                return text
            stack.extend(frames)
            text = decomment(replaced)
            if not (text.startswith("@") or "$" in text):
                return text

    def conditional(self, text: str) -> Optional[str]:
        negated = text.startswith("@^")
        start = 2 if negated else 1
        end = first_blank(text, start)
        if end < 0:
            return None
        if (text[start:end] == self.config_id) == negated:
            return None
        return text[end:].lstrip(BLANKS)

    def definition(self, text: str) -> bool:
        """`$NAME=value`: store it and return True; False when `text` is not a definition."""
        match = NAME.match(text, 1)
        if not match or not text.startswith("=", match.end()):
            return False
        value = text[match.end() + 1 :].lstrip(BLANKS)
        multiline = value.endswith("\\")
        if multiline:
            value = value[:-1].rstrip(BLANKS)
            value = value + "\n" if value else ""
        self.definitions[match.group()] = Definition(value, multiline)
        if multiline:
            self.pending = self.definitions[match.group()]
            self.pending_lines = [value]
        return True

    def continue_definition(self, text: str) -> None:
        """One more line of the multi-line definition being read."""
        if not text.endswith("\\"):
            self.finish_definition(text)
            return
        text = text[:-1].rstrip(BLANKS)
        if text:
            self.pending_lines.append(text + "\n")

    def finish_definition(self, last_line: str = "") -> None:
        """keepalived: a multi-line definition with nothing before its last line is a plain one."""
        if self.pending is None:
            return
        value = "".join(self.pending_lines)
        self.pending.multiline = bool(value)
        self.pending.value = value + last_line
        self.pending, self.pending_lines = None, []

    def replace(self, text: str) -> tuple[Optional[str], list[Frame]]:
        """Substitute defined parameters, rescanning what each substitution inserts; None when
        no parameter is defined. Further lines of multi-line values come back as frames."""
        frames: list[Frame] = []
        substitutions = 0
        match = REFERENCE.search(text)
        while match:
            reference = self.reference(match, len(text))
            if reference is None:
                match = REFERENCE.search(text, match.start() + 1)
                continue
            definition, end, arguments = reference
            substitutions += 1
            self.substitutions += 1
            if substitutions > MAX_SUBSTITUTIONS_PER_LINE:
                self.exhaust(
                    f"more than {MAX_SUBSTITUTIONS_PER_LINE} parameter substitutions on one line"
                    " (does a parameter refer to itself?)"
                )
            if self.substitutions > MAX_SUBSTITUTIONS:
                self.exhaust(f"more than {MAX_SUBSTITUTIONS} parameter substitutions")
            value = definition.compute(self, arguments) if definition.compute else definition.value
            if definition.multiline:
                value, _newline, rest = value.partition("\n")
                frames.append(Lines(rest.split("\n")))
            text = text[: match.start()] + value + text[end:]
            self.substitution_work += len(text) + len(definition.value)
            if self.substitution_work > MAX_SUBSTITUTION_WORK:
                self.exhaust(
                    f"parameter substitution copies more than {MAX_SUBSTITUTION_WORK} characters"
                )
            if len(text) > MAX_EXPANDED_LINE_LENGTH:
                raise ExpansionError(
                    f"parameter substitution makes the line longer than {MAX_EXPANDED_LINE_LENGTH}"
                )
            if definition.value.lstrip(BLANKS).startswith("~"):
                break
            match = REFERENCE.search(text, match.start())
        return (text, frames) if substitutions else (None, frames)

    def reference(
        self, match: re.Match, length: int
    ) -> Optional[tuple[Definition, int, Optional[list[int]]]]:
        """The definition a REFERENCE match names, where the reference ends and its numeric
        arguments; None if the name is not defined or takes no arguments."""
        arguments = None
        name = match.group("bare")
        end = match.end()
        if name is None:
            name = match.group("braced")
            if match.group("arguments").strip(" "):
                if match.group("arguments").endswith(" "):
                    return None
                arguments = [c_unsigned_long(number) for number in match.group("arguments").split()]
            else:
                end = match.end("braced") + 1  # keepalived replaces `${NAME` and one character
        definition = self.definitions.get(name)
        if definition is None or (definition.multiline and end != length):
            return None
        if arguments is not None and not definition.max_params:
            return None
        return definition, end, arguments


def c_unsigned_long(digits: str) -> int:
    """strtoul() of decimal digits: saturates rather than converting thousands of digits."""
    digits = digits.lstrip("0") or "0"
    return 2**64 - 1 if len(digits) > 20 else min(int(digits), 2**64 - 1)


def current_directory(params: Parameters, _arguments: Optional[list[int]]) -> str:
    return os.path.dirname(params.current_file)


def config_id(params: Parameters, _arguments: Optional[list[int]]) -> str:
    return params.config_id


def split_block(text: str) -> tuple[str, Optional[str]]:
    """keepalived reads the text after a line's first brace (outside double quotes) as a line
    of its own, so `{ @ID x`, `} $X=1` or `{ ~SEQ(...) y }` work there too. The text before
    the brace (or the braces a line starts with) and that rest; (text, None) when nothing in
    the rest is read differently that way (the lexer takes the line whole, as any line)."""
    if len(text) > MAX_EXPANDED_LINE_LENGTH:
        return text, None
    leading = len(text) - len(text.lstrip("{} \t"))
    if leading:
        head, rest = text[:leading].rstrip(BLANKS), text[leading:]
    else:
        position = first_brace(text)
        if position < 0:
            return text, None
        head, rest = text[:position].rstrip(BLANKS), text[position:]
    if not head or not READ_AS_A_LINE.match(rest):
        return text, None
    return head, rest


def first_brace(text: str) -> int:
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char in "{}" and not quoted:
            return index
    return -1


def random_number(_params: Parameters, arguments: Optional[list[int]]) -> str:
    low, high = (arguments or [0])[0], 32767
    if arguments and len(arguments) > 1:
        high = arguments[1]
    if low > high:
        raise ExpansionError(f"${{_RANDOM {low} {high}}}: MIN is greater than MAX")
    return str(random.randint(low, high))


def first_blank(text: str, start: int) -> int:
    indexes = [i for i in (text.find(" ", start), text.find("\t", start)) if i >= 0]
    return min(indexes) if indexes else -1


def decomment(text: str) -> str:
    """keepalived's decomment(): leading blanks, a comment (`!` or `#` outside double quotes)
    and trailing blanks go; a final unescaped `\\` (even after a comment) stays, without the
    blanks before it."""
    text = text.strip("\r\n").lstrip(BLANKS)
    quoted = False
    escaped = -1  # the index of a character a backslash escapes
    cut = len(text)
    continued = False
    for match in DECOMMENT.finditer(text):
        index = match.start()
        if index == escaped:
            continue
        char = match.group()
        if char == "\\":
            if index + 1 == len(text):
                continued = True
                cut = min(cut, index)
            escaped = index + 1
        elif cut == len(text):  # not in a comment yet
            if char == '"':
                quoted = not quoted
            elif not quoted:
                cut = index
    text = text[:cut].rstrip(BLANKS)
    return text + "\\" if continued else text


def strtol(text: str, index: int) -> tuple[int, int]:
    """C's strtol(text + index, &end, 0): the number and where it ends (`index` if none)."""
    start = index
    while index < len(text) and text[index] in " \t\n\v\f\r":
        index += 1
    sign = 1
    if index < len(text) and text[index] in "+-":
        sign = -1 if text[index] == "-" else 1
        index += 1
    base, digits = 10, "0123456789"
    if text[index : index + 2].lower() == "0x" and text[index + 2 : index + 3].lower() in set(
        "0123456789abcdef"
    ):
        base, digits, index = 16, "0123456789abcdef", index + 2
    elif text.startswith("0", index):
        base, digits = 8, "01234567"
    end = index
    while end < len(text) and text[end].lower() in digits:
        end += 1
    if end == index:
        return 0, start
    value = sign * int(text[index:end], base)
    return max(LONG_MIN, min(LONG_MAX, value)), end


def sequence(text: str, params: Parameters) -> Sequence:
    """Parse `~SEQ(var, [start,] [step,] end) text` as keepalived's add_seq() does."""
    invalid = ExpansionError(f"Invalid ~SEQ definition '{shorten(text)}'")
    hexadecimal = text.startswith("~SEQx")
    index = skip_blanks(text, 5 if hexadecimal else 4)
    if not text.startswith("(", index):
        raise ExpansionError(f"Invalid ~SEQ specification '{shorten(text)}'")
    index = skip_blanks(text, index + 1)
    var_end = index
    while var_end < len(text) and text[var_end] not in " \t,)":
        var_end += 1
    var = text[index:var_end]
    index = skip_blanks(text, var_end)
    if not var or not text.startswith(",", index):
        raise invalid
    index = skip_blanks(text, index + 1)
    close = text.find(")", index)
    if close < 0:
        raise invalid
    if close + 1 - index > MAX_SEQUENCE_ARGUMENTS:
        raise ExpansionError(f"~SEQ parameter strings too long '{shorten(text)}'")
    arguments, frames = params.replace(text[index : close + 1])
    if frames:
        raise ExpansionError(f"~SEQ parameter is multiline definition '{shorten(text)}'")
    start, step, end = sequence_numbers(arguments or text[index : close + 1], invalid, text)
    if hexadecimal and (start < 0 or end < 0):
        raise ExpansionError(f"~SEQx is only valid for positive numbers '{shorten(text)}'")
    if (end - start) // step + 1 > MAX_EXPANDED_LINES:
        raise ExpansionError(f"~SEQ of more than {MAX_EXPANDED_LINES} values '{shorten(text)}'")
    return Sequence(var, start, step, end, hexadecimal, text[close + 1 :].lstrip(BLANKS))


def sequence_numbers(arguments: str, invalid: ExpansionError, text: str) -> tuple[int, int, int]:
    """start, step and end from `one)`, `one, two)` or `one, two, three)`."""
    numbers = []
    index = 0
    while True:
        number, index = strtol(arguments, index)
        numbers.append(number)
        index = skip_blanks(arguments, index)
        if arguments.startswith(")", index):
            break
        if len(numbers) == 3 or not arguments.startswith(",", index):
            raise invalid
        index += 1
    if len(numbers) == 1:
        end = numbers[0]
        return (-1 if end < 0 else 1), (-1 if end < 1 else 1), end
    if len(numbers) == 2:
        start, end = numbers
        return start, (1 if start <= end else -1), end
    start, step, end = numbers
    if not step or (start < end and step < 0) or (start > end and step > 0):
        raise ExpansionError(f"Invalid ~SEQ values '{shorten(text)}'")
    return start, step, end


def value_list(text: str) -> ValueList:
    """Parse `~LST(var, v1, v2) text` or `~LST({a, b}, {1, 2}, {3, 4}) text` (add_lst())."""
    invalid = ExpansionError(f"Invalid ~LST specification '{shorten(text)}'")
    index = skip_blanks(text, 4)
    if not text.startswith("(", index):
        raise invalid
    names, index = list_items(text, skip_blanks(text, index + 1), " \t,}", invalid)
    if not text.startswith(",", index):
        raise invalid
    index = skip_blanks(text, index + 1)
    value_sets = []
    while True:
        values, index = list_items(text, index, " \t,})", invalid)
        if len(values) > len(names):
            raise ExpansionError(f"~LST specification has too many values '{shorten(text)}'")
        value_sets.append(values + [""] * (len(names) - len(values)))
        if len(value_sets) > MAX_EXPANDED_LINES:
            raise ExpansionError(f"~LST of more than {MAX_EXPANDED_LINES} values")
        if text.startswith(")", index):
            break
        if not text.startswith(",", index):
            raise invalid
        index = skip_blanks(text, index + 1)
    return ValueList(names, value_sets, text[index + 1 :].lstrip(BLANKS))


def list_items(text: str, index: int, stops: str, invalid: ExpansionError) -> tuple[list, int]:
    """One item `x` or a braced group `{x, y}`: its words and the index after it (blanks
    skipped)."""
    braced = text.startswith("{", index)
    if not braced:
        end = index
        while end < len(text) and text[end] not in stops:
            end += 1
        return [text[index:end]], skip_blanks(text, end)
    close = text.find("}", index)
    if close < 0:
        raise invalid
    items = [item.strip(BLANKS) for item in text[index + 1 : close].split(",")]
    if any(char in item for item in items for char in " \t)"):
        raise invalid
    return items, skip_blanks(text, close + 1)


def skip_blanks(text: str, index: int) -> int:
    while index < len(text) and text[index] in BLANKS:
        index += 1
    return index


def shorten(text: str, limit: int = 80) -> str:
    """A word as quoted in a message: a pathological one is cut."""
    return text if len(text) <= limit else text[:limit] + "..."


def default_config_id() -> str:
    """keepalived's default config id: the node name up to its first dot."""
    return os.uname().nodename.split(".", 1)[0]
