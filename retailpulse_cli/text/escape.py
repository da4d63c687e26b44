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
