"""User SQL: one read-only statement, checked here and then run under ClickHouse's readonly=1.

``readonly=1`` refuses writes, settings and table functions (``file``, ``url``, ``remote``, ...),
but not everything (checked on chDB 26.9): chDB (clickhouse-local underneath) still runs several
``;``-separated statements in one call and writes ``INTO OUTFILE`` files, readonly lets ``SYSTEM
STOP MERGES`` and ``KILL QUERY`` through, and ``DESCRIBE file('/etc/passwd', 'TSVWithNames')``
infers a schema from the file's first line (``DESCRIBE url(...)`` fetches the URL) anyway.

So the statement is also read here, token by token, the way ClickHouse's lexer reads it where
that matters: a ``;`` or ``INTO OUTFILE`` inside a string or quoted name is text, in a comment
is nothing. Where the two could disagree this reader sees more code than the engine (comments
end at the first ``*/`` or line break, ``#`` and heredocs are code, non-ASCII outside quotes is
space), which can only refuse more.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from streams.errors import QueryRefusedError

READ_ONLY_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN")
"""The statements user SQL may start with."""

READONLY_SETTING = "readonly"
"""ClickHouse's setting under which user SQL runs (value 1: reads only, settings fixed)."""

READONLY_ERROR_CODE = 164
"""ClickHouse's error code READONLY: the engine refused a statement under readonly."""

_QUOTES = "'\"`"


@dataclass(frozen=True)
class _Token:
    text: str
    start: int


def _closing_quote(sql: str, start: int) -> int:
    """The index of the quote that closes the string or quoted name opened at `start`."""
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            if sql[i + 1 : i + 2] != quote:
                return i
            i += 2
        else:
            i += 1
    raise QueryRefusedError(
        f"refused: unterminated {quote}...{quote} in the statement; close it and try again"
    )


def _is_word(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


def _is_space(ch: str) -> bool:
    # ClickHouse skips some non-ASCII spaces (U+00A0, U+2000.., ...) and refuses other
    # non-ASCII outside quotes: reading all of it as space can only join more keywords.
    return ch.isspace() or not ch.isascii()


def _code_tokens(sql: str) -> list[_Token]:
    """The statement's tokens outside comments: words (upper case), quoted texts, other chars."""
    tokens: list[_Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if _is_space(ch):
            i += 1
        elif sql.startswith("--", i):
            ends = [j for j in (sql.find("\n", i), sql.find("\r", i)) if j >= 0]
            i = min(ends) if ends else n
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch in _QUOTES:
            end = _closing_quote(sql, i)
            tokens.append(_Token(sql[i : end + 1], i))
            i = end + 1
        elif ch.isascii() and ch.isdigit():
            # A number ends before any letter: "1INTO" reads as 1, INTO (more code, never less).
            j = i
            while j < n and sql[j].isascii() and (sql[j].isdigit() or sql[j] == "."):
                j += 1
            tokens.append(_Token(sql[i:j], i))
            i = j
        elif _is_word(ch):
            j = i
            while j < n and _is_word(sql[j]):
                j += 1
            tokens.append(_Token(sql[i:j].upper(), i))
            i = j
        else:
            tokens.append(_Token(ch, i))
            i += 1
    return tokens


def read_only_statement(sql: str) -> str:
    """The one read-only statement of `sql`, without a trailing ``;``, ready to run under
    readonly=1; QueryRefusedError (one line) says why not."""
    if "\x00" in sql:
        raise QueryRefusedError("refused: the statement holds a NUL character; remove it")
    tokens = _code_tokens(sql)
    if tokens and tokens[-1].text == ";":
        sql, tokens = sql[: tokens[-1].start], tokens[:-1]
    if not tokens:
        raise QueryRefusedError("refused: no SQL statement given")
    if any(t.text == ";" for t in tokens):
        raise QueryRefusedError(
            "refused: several statements; run one statement at a time (only a trailing ';')"
        )
    first = next((t.text for t in tokens if t.text != "("), "")
    if first not in READ_ONLY_KEYWORDS:
        raise QueryRefusedError(
            f"refused: {first[:40]} is not a read-only statement; user SQL runs one "
            f"{', '.join(READ_ONLY_KEYWORDS[:-1])} or {READ_ONLY_KEYWORDS[-1]} statement"
        )
    for before, after in itertools.pairwise(tokens):
        if before.text == "INTO" and after.text == "OUTFILE":
            raise QueryRefusedError(
                "refused: INTO OUTFILE would write a file on the warehouse's host; leave it out "
                "and redirect the command's output instead"
            )
    words = [t.text for t in tokens]
    if words[:3] == ["EXPLAIN", "TABLE", "OVERRIDE"] or _describes_table_function(words):
        raise QueryRefusedError(
            "refused: describing a table function (file, url, ...) reads outside the tables; "
            "describe a table, or a (SELECT ...)"
        )
    return sql.strip()


def _describes_table_function(words: list[str]) -> bool:
    """DESCRIBE [TABLE] name(...): ClickHouse infers its structure without readonly's check."""
    if not words or words[0] not in ("DESCRIBE", "DESC"):
        return False
    rest = words[2:] if words[1:2] == ["TABLE"] else words[1:]
    return len(rest) >= 2 and rest[1] == "("


_EXCEPTION = "DB::Exception: "
# After the last "DB::Exception: ": the user name chDB puts first, the version, the stack trace.
_ENGINE_NOISE = re.compile(r"^[a-z_]\w*: (?=[A-Z])| \(version [^)]*\)|\. Stack trace:.*", re.S)


def engine_reason(message: str) -> str:
    """The engine's own reason in an error message, on one line (no code, stack or query)."""
    _, found, reason = message.rpartition(_EXCEPTION)
    if not found:
        reason = message
    reason = _ENGINE_NOISE.sub("", reason.split("\n", 1)[0])
    # chDB repeats the error's name when it re-raises: "... mode. (READONLY). (READONLY)".
    reason = re.sub(r"(\(\w+\))(?:\. \1)+", r"\1", reason)
    return " ".join(reason.split())


def is_readonly_refusal(message: str) -> bool:
    """True when an engine error is ClickHouse's readonly mode refusing the statement."""
    return re.search(rf"\bCode: {READONLY_ERROR_CODE}\b", message) is not None


def refused_by_readonly(message: str) -> QueryRefusedError:
    """The one-line error for a statement the engine refused under readonly=1."""
    return QueryRefusedError(
        f"refused by ClickHouse's readonly mode: {engine_reason(message)}; user SQL cannot "
        "write, change settings or use table functions (file, url, remote, ...)"
    )
