"""Hiding credentials in anything derived from a URL: the one redaction every record,
error message and log line goes through.

It works on text, not on a parsed URL, so an unparsable URL, a path, a library's error
message or a URL nested in another URL's parameter is redacted the same way:

- userinfo after `//` (`http://u:PW@host`, `file://u:PW@localhost`, also spelled
  `%2F%2Fu%3APW%40` inside a parameter) becomes `***@`;
- `user:password@` anywhere else becomes `***@`;
- the value of a parameter whose whole name (any case) is a known secret name becomes
  `***`, in a query or a fragment (`#access_token=` of OAuth), raw or percent-encoded.

Names are matched whole: `key=` is hidden, `monkey=` and `keyword=` are not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote

SECRET_PARAMS = (
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "private_token",
    "jwt",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
    "key",
    "api_key",
    "apikey",
    "api-key",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "pass",
    "pwd",
    "auth",
    "authorization",
    "session",
    "sessionid",
    "session_id",
    "credential",
    "credentials",
)
# `code` (an OAuth authorization code) is left out on purpose: it is single-use and
# `code=` in a shelf-photo URL is far more often a product or store code worth seeing.

_SEP = r"(?:[?&;#]|%3[Ff]|%26|%23)"  # before a parameter name, raw or percent-encoded
_EQ = r"(?:=|%3[Dd])"
_NAMES = "|".join(re.escape(n) for n in sorted(SECRET_PARAMS, key=len, reverse=True))
_SECRET_PARAM = re.compile(rf"(?i)({_SEP}(?:{_NAMES}){_EQ})(?:(?!%26|%23)[^&;#\s\"'])*")
# userinfo: everything between `//` and the last `@` before the host's end (the rule;
# `_authority_spans` applies it in linear time)
_AUTHORITY = re.compile(r"(?i)(//|%2F%2F)[^/?#\s\"'<>]*(?:@|%40)")
_AUTHORITY_END = re.compile(r"[/?#\s\"'<>]")
_LOOSE_USERINFO = re.compile(r"[^\s/?#@:\"'<>=&;]+:[^\s/?#@\"'<>]*@")  # what `_hide_loose` does
_HARD_STOP = re.compile(r"([\s/?#\"'<>])")  # neither part of a loose `user:password@` crosses these
_NOT_USER = re.compile(r"[:=&;]")  # a loose user name holds none of these (nor the stops, nor @)
# A password with a space, `/` or `#` in it (`http://alice:My Secret@host/`, which requests
# still sends): `scheme://user:` up to the first `@` that a host follows. It may hide a
# little more than the userinfo of an odd URL (`http://h:8080/a@b.jpg`): better than less.
_WIDE_USERINFO = re.compile(
    r"(?i)\b([a-z][a-z0-9+.-]*://)[^@\s/]*:(?:(?!://)[^@\n])*?@"  # not into a nested URL
    r"(?=[a-z0-9.\-\[\]]+(?::\d+)?(?:[/?#\s\"']|$))"
)

_MIN_SCRUB = 4  # shorter secrets are not searched for in free text (see `scrub`)


def redact(url: str) -> str:
    """`url` (or any text holding URLs) with credentials and secret parameters hidden."""
    # Only with an `@` to find: its lazy scan keeps ~64 bytes of regex state per character
    # it passes (64 MB for a 1 MB URL, in every thread redacting one at the same time).
    text = _WIDE_USERINFO.sub(r"\1***@", url) if "@" in url else url
    text = _hide_authority(text)
    text = _hide_loose(text)
    return _SECRET_PARAM.sub(r"\1***", text)


def _hide_loose(text: str) -> str:
    """`_LOOSE_USERINFO.sub("***@", text)`, in linear time (see `_loose_spans`)."""
    out, at = [], 0
    for start, end in _loose_spans(text):
        out += [text[at:start], "***@"]
        at = end
    return "".join(out) + text[at:] if out else text


def _loose_spans(text: str) -> Iterator[tuple[int, int]]:
    """Where `_LOOSE_USERINFO` matches (start, end past the `@`), left to right.

    The regex retries from every character of a long run that holds no `user:...@` (a
    100 KB URL took minutes, a 1 MB one hours). Here each stretch between two stops and
    each `@` is looked at once: in the text before an `@`, a match starts where the first
    user name followed by `:` does, and ends at that `@`."""
    if "@" not in text or ":" not in text:
        return
    offset = 0
    for stretch in _HARD_STOP.split(text):  # the stops come back as 1-character items
        if "@" in stretch and ":" in stretch:
            at = 0
            for piece in stretch.split("@")[:-1]:  # each piece is followed by an `@`
                start = _loose_user_start(piece)
                if start is not None:
                    yield offset + at + start, offset + at + len(piece) + 1
                at += len(piece) + 1
        offset += len(stretch)


def _loose_user_start(piece: str) -> int | None:
    """Where `user:password` begins in `piece`, or None: the first `:` with a user-name
    character right before it, the user name running back to the last `:=&;` before."""
    colon = piece.find(":")
    while colon != -1:
        if colon > 0 and not _NOT_USER.match(piece, colon - 1):
            return max(piece.rfind(c, 0, colon) for c in ":=&;") + 1
        colon = piece.find(":", colon + 1)
    return None


def _hide_authority(text: str) -> str:
    """`_AUTHORITY.sub(...)` keeping the `//` and the `@` (or `%40`), in linear time."""
    out, at = [], 0
    for _, body, end in _authority_spans(text):
        out += [text[at:body], "***", "@" if text[end - 1] == "@" else "%40"]
        at = end
    return "".join(out) + text[at:] if out else text


def _authority_spans(text: str) -> Iterator[tuple[int, int, int]]:
    """Where `_AUTHORITY` matches: (start, where the userinfo begins, end), left to right.

    The regex tries every `//` and `%2F%2F` and reads to the end of the host each time:
    a URL of 40 KB of `%2F` took 15 s. The answer is the same for every start in one
    stretch between two stops (the last `@` or `%40` in it), so each stretch is read once."""
    lowered = text.lower()
    if "@" not in text and "%40" not in lowered:
        return
    pos, slashes, encoded = 0, text.find("//"), lowered.find("%2f%2f")
    while True:
        # the next of each kind of start, searched again only once passed (each search
        # may read to the end of the text)
        if 0 <= slashes < pos:
            slashes = text.find("//", pos)
        if 0 <= encoded < pos:
            encoded = lowered.find("%2f%2f", pos)
        if slashes < 0 and encoded < 0:
            return
        start = min(i for i in (slashes, encoded) if i >= 0)
        body = start + (2 if start == slashes else 6)
        stop = _AUTHORITY_END.search(text, body)
        stretch_end = stop.start() if stop else len(text)
        last = max(text.rfind("@", body, stretch_end), lowered.rfind("%40", body, stretch_end))
        if last < 0:  # none for a later start in this stretch either: skip it (but in
            # `///@` the empty stretch after the first `//` is followed by another `//`)
            pos = stretch_end if stretch_end > body else start + 1
            continue
        end = last + (1 if text[last] == "@" else 3)
        yield start, body, end
        pos = end


def secrets_of(url: str) -> list[str]:
    """The secret parts of `url` as they may appear in a message: userinfo, user and
    password, secret parameter values; raw and percent-decoded."""
    found: list[str] = []
    for _, body, end in _authority_spans(url):
        userinfo = url[body : end - (1 if url[end - 1] == "@" else 3)]
        found += [userinfo, *userinfo.split(":", 1)]
    for start, end in _loose_spans(url):
        found += url[start : end - 1].split(":", 1)
    for m in _WIDE_USERINFO.finditer(url) if "@" in url else ():
        userinfo = m.group(0)[len(m.group(1)) : -1]
        found += [userinfo, *userinfo.split(":", 1)]
    for m in _SECRET_PARAM.finditer(url):
        found.append(m.group(0)[len(m.group(1)) :])
    out = {s for f in found for s in (f, unquote(f)) if len(s) >= _MIN_SCRUB}
    return sorted(out, key=len, reverse=True)  # longest first: no half-replaced secret


def scrub(text: str, url: str) -> str:
    """`text` (a message built by a library about `url`) with any trace of `url`'s
    secrets removed. Secrets under 4 characters are not searched for in free text
    (every `1` of a message would go); URL-shaped spellings of them are still redacted."""
    for secret in secrets_of(url):
        text = text.replace(secret, "***")
    return redact(text)
