"""The one way text from outside (job files, file names, URLs) is shown or written.

A job file can hold anything JSON can spell: lone surrogates (which no UTF-8 stream can
encode: printing one crashed `validate`), NULs, newlines that forge log lines, ANSI
escapes a terminal would obey, bidi overrides that reorder what is read. All of them are
shown as Python's `ascii()` would spell them; printable text (accents, CJK, emoji) stays.
"""

from __future__ import annotations


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe(text: str) -> str:
    """`text` with every unprintable character (controls, newlines, surrogates, format
    characters, unassigned code points) escaped: one line, encodable, obeyed by nothing."""
    if text.isprintable():  # the common case, in C: no per-character loop
        return text
    return "".join(ch if ch.isprintable() else _escape_char(ch) for ch in text)


def _surrogate(ch: str) -> bool:
    return "\ud800" <= ch <= "\udfff"


def without_surrogates(value: object) -> object:
    """JSON data with every lone surrogate in its strings (keys too) spelled as `safe`
    spells it (`\\udcff`), and nothing else changed. A file name that is not UTF-8 holds
    one per undecodable byte; written as a JSON escape it is not valid Unicode, and jq
    turns it into U+FFFD, so a script could not tell the name from another."""
    if isinstance(value, str):
        if value.isascii() or not any(_surrogate(ch) for ch in value):
            return value
        return "".join(_escape_char(ch) if _surrogate(ch) else ch for ch in value)
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_surrogates(v) for v in value]
    return value
