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
# userinfo: everything between `//` and the last `@` before the host's end
_AUTHORITY = re.compile(r"(?i)(//|%2F%2F)[^/?#\s\"'<>]*(?:@|%40)")
_LOOSE_USERINFO = re.compile(r"[^\s/?#@:\"'<>=&;]+:[^\s/?#@\"'<>]*@")
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
    text = _WIDE_USERINFO.sub(r"\1***@", url)
    text = _AUTHORITY.sub(_hide_userinfo, text)
    text = _LOOSE_USERINFO.sub("***@", text)
    return _SECRET_PARAM.sub(r"\1***", text)


def _hide_userinfo(m: re.Match[str]) -> str:
    at = "%40" if m.group(0).lower().endswith("%40") else "@"
    return f"{m.group(1)}***{at}"


def secrets_of(url: str) -> list[str]:
    """The secret parts of `url` as they may appear in a message: userinfo, user and
    password, secret parameter values; raw and percent-decoded."""
    found: list[str] = []
    for m in _AUTHORITY.finditer(url):
        userinfo = m.group(0)[len(m.group(1)) :].removesuffix("@")
        userinfo = re.sub(r"(?i)%40$", "", userinfo)
        found += [userinfo, *userinfo.split(":", 1)]
    for m in _LOOSE_USERINFO.finditer(url):
        found += m.group(0)[:-1].split(":", 1)
    for m in _WIDE_USERINFO.finditer(url):
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
