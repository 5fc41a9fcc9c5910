"""What of a configuration may be shown: secrets masked, text from foreign files cut short.

The one home of the secret keywords. Every word after a secret keyword on its line is secret
(a password typed with spaces is still the password), wherever the keyword sits: after `{`,
after another statement on the same line, in a comment. `mask_secrets` hides them in
configuration text (diffs); `redact` hides them in messages (problems, logs, replies).
`excerpt` shows a word that may come from a file that is not keepalived syntax at all (an
`include` of /etc/shadow, a key, JSON, a binary) as a short prefix only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Optional

SECRET_KEYWORDS = frozenset({"auth_pass"})
MASK = "********"
EXCERPT_LENGTH = 16
# characters of keywords, names, numbers and addresses; an excerpt stops at anything else
PLAIN = re.compile(r"[A-Za-z0-9_.:/-]*")
# a mistyped address is worth showing whole: it reveals nothing a file would hide
ADDRESS_LIKE = re.compile(r"[0-9A-Fa-f./-]*[.:][0-9A-Fa-f.:/-]*")
ADDRESS_MAX = 64
WORD_CHAR = r"[A-Za-z0-9_]"
QUOTES = "\"'"
COMMENT_STARTS = "#!"


def secret_values(words: Iterable[str]) -> list[str]:
    """The words of one line that follow its first secret keyword."""
    words = list(words)
    for index, word in enumerate(words):
        if word in SECRET_KEYWORDS:
            return words[index + 1 :]
    return []


def redact(message: str, secrets: Iterable[str]) -> str:
    """The message with each secret, where it stands as a word of its own, replaced by MASK."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        pattern = rf"(?<!{WORD_CHAR}){re.escape(secret)}(?!{WORD_CHAR})"
        message = re.sub(pattern, MASK, message)
    return message


def excerpt(word: str) -> str:
    """A word as messages may show it: whole when short and plain, else a short prefix."""
    if len(word) <= ADDRESS_MAX and ADDRESS_LIKE.fullmatch(word):
        return word
    prefix = PLAIN.match(word).group()[:EXCERPT_LENGTH]
    return prefix if prefix == word else prefix + "..."


def mask_secrets(text: Optional[str]) -> Optional[str]:
    """The text with every secret value replaced by ********, for diffs and logs."""
    if text is None:
        return None
    masked = []
    continued = False
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        # a line continuing a secret statement is secret from its first word on
        masked_body, continued = mask_line(body, -1 if continued else None)
        masked.append(masked_body + line[len(body) :])
    return "".join(masked)


def mask_line(line: str, secret_from: Optional[int] = None) -> tuple[str, bool]:
    """One line with its secret values masked; True when the last one continues (`\\`).

    `secret_from=-1`: the line starts inside a secret statement.
    """
    spans: list[tuple[int, int]] = []  # [start, end) of the masked runs
    secret_start = secret_from  # None: no secret keyword yet; -1: next word starts the run
    secret_end = secret_from
    index = 0
    word_start, word = -1, []
    quote = ""

    def end_word(position: int) -> None:
        nonlocal word_start, word, secret_start, secret_end
        if word_start < 0:
            return
        if secret_start is not None:
            secret_start = word_start if secret_start < 0 else secret_start
            secret_end = position
        elif "".join(word) in SECRET_KEYWORDS:
            secret_start = secret_end = -1
        word_start, word = -1, []

    def end_run() -> None:
        nonlocal secret_start, secret_end
        if secret_start is not None and secret_start >= 0 and secret_end > secret_start:
            spans.append((secret_start, secret_end))
        secret_start = secret_end = None

    while index < len(line):
        char = line[index]
        if quote:
            if char == quote:
                quote = ""
            elif char == "\\":
                index += 1
            else:
                word.append(char)
        elif char in QUOTES:
            quote = char
            word_start = index if word_start < 0 else word_start
        elif char in COMMENT_STARTS:
            # `auth_pass pa#ss`: keepalived reads `pa`, the writer meant all of it
            glued = word_start >= 0 and secret_start is not None
            end_word(len(line) if glued else index)
            end_run()
            if not glued:
                mask_comment(line, index, spans)
            break
        elif char in "{}":
            end_word(index)
            end_run()
        elif char.isspace():
            end_word(index)
        else:
            word_start = index if word_start < 0 else word_start
            word.append(char)
        index += 1
    end_word(min(index, len(line)))  # an escape may step past the end
    continued = secret_start is not None and line.rstrip().endswith("\\") and not quote
    end_run()
    for start, end in reversed(spans):
        line = line[:start] + MASK + line[end:]
    return line, continued


def mask_comment(line: str, start: int, spans: list[tuple[int, int]]) -> None:
    """A commented-out password is still a password: mask what follows a secret keyword."""
    for keyword in SECRET_KEYWORDS:
        pattern = rf"(?<!{WORD_CHAR}){re.escape(keyword)}(?!{WORD_CHAR})[ \t]+(\S.*?)[ \t]*$"
        found = re.search(pattern, line[start:])
        if found:
            spans.append((start + found.start(1), start + found.end(1)))
