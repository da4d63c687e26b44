"""Job file -> validated, immutable job spec. Every problem is reported with its JSON path."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from retailpulse_cli.errors import InvalidJobFile
from retailpulse_cli.model import ProblemObject

MAX_PROBLEMS = 50  # beyond this the message stops helping; the count still says how many

Path_ = tuple[str | int, ...]  # a place in the document: ("visits", 3, "image_url", 0)


class Problem(str):
    """One problem, as the text users read (`visits[1].store_id: must not be empty`),
    also knowing its place: the path, and the line and column once located. A str, so
    every message, log line and .reason file stays as it was."""

    parts: Path_ | None
    message: str
    line: int | None
    column: int | None

    def __new__(
        cls,
        text: str,
        parts: Path_ | None = None,
        message: str | None = None,
        pos: tuple[int, int] | None = None,
    ) -> Problem:
        self = super().__new__(cls, text)
        self.parts, self.message = parts, text if message is None else message
        self.line, self.column = pos if pos is not None else (None, None)
        return self

    def at(self, pos: tuple[int, int] | None) -> Problem:
        return Problem(str(self), self.parts, self.message, pos)


def path_text(parts: Path_) -> str:
    """The path as messages show it: `visits[0].image_url[1]`; `(top level)`."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


def json_path(parts: Path_) -> str:
    """The path as a JSONPath (RFC 9535): `$.visits[0].image_url[1]`, `$["odd key"]`."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _problem(parts: Path_, message: str) -> Problem:
    return Problem(f"{path_text(parts)}: {message}", parts, message)


def problem_objects(problems: list[str]) -> list[ProblemObject]:
    """Problems as `--json` prints them everywhere (validate, submit, inbox):
    {path, message, line, column}; null where not known (a file that is not there has
    no line; a required field that is missing points at the object that lacks it)."""
    out: list[ProblemObject] = []
    for p in problems:
        if isinstance(p, Problem):
            path = None if p.parts is None else json_path(p.parts)
            row = ProblemObject(path=path, message=p.message, line=p.line, column=p.column)
        else:
            row = ProblemObject(path=None, message=str(p), line=None, column=None)
        out.append(row)
    return out


class Visit(NamedTuple):
    """One store visit, as validated."""

    store_id: str
    visit_time: str
    image_urls: tuple[str, ...]


class ImageTask(NamedTuple):
    """One image to process: its position in the job and what it belongs to."""

    image_index: int  # position of the image in the job, counting every image of every visit
    visit: int
    store_id: str
    visit_time: str
    url: str


@dataclass(frozen=True)
class JobSpec:
    """A job file that passed validation.

    It keeps the file's text, not its visits as objects: the tasks are parsed out of the
    text again, one visit at a time, as the pool needs them. Text costs ~85 bytes an
    image; visits as Python objects cost twice that, and a 200,000-image job must run in
    flat, bounded memory (issue 6)."""

    source: str  # what the user named: a path or "<stdin>"
    base_dir: Path  # folder that relative image paths are resolved against
    text: str  # the file's text; with `bom`, it gives back the exact bytes (see `raw`)
    bom: bool
    visit_count: int
    image_count: int
    store_images: dict[str, int]  # images per store id, in first-seen order

    @property
    def raw(self) -> bytes:
        """The file exactly as given (valid UTF-8 round-trips byte for byte)."""
        return (_BOM if self.bom else b"") + self.text.encode("utf-8")

    def visits(self) -> Iterator[Visit]:
        """The visits, parsed again from the text one at a time."""
        events = _parse_document(self.text)
        while True:
            try:
                i, item, _ = next(events)
            except StopIteration:
                return
            visit = _check_visit(i, item, [])
            if visit is not None:
                yield visit

    def tasks(self) -> Iterator[ImageTask]:
        """Every image of the job in a stable order; its index is its identity across resumes."""
        index = 0
        for vi, visit in enumerate(self.visits()):
            for url in visit.image_urls:
                yield ImageTask(index, vi, visit.store_id, visit.visit_time, url)
                index += 1


def read_source(source: str, stdin: Any = None) -> tuple[bytes, Path]:
    """Read a job file's bytes from a path or from stdin ("-")."""
    if source == "-":
        import sys

        stream = stdin if stdin is not None else sys.stdin.buffer
        return stream.read(), Path.cwd()
    path = Path(source)
    try:
        return path.read_bytes(), path.resolve().parent
    except FileNotFoundError:
        raise InvalidJobFile(source, ["file not found"], hint=_PATH_HINT) from None
    except IsADirectoryError:
        raise InvalidJobFile(source, ["is a directory, not a job file"], hint=_PATH_HINT) from None
    except OSError as exc:
        raise InvalidJobFile(
            source, [f"cannot be read: {exc.strerror or exc}"], hint=_PATH_HINT
        ) from None


_PATH_HINT = "check the path (use - to read the job file from stdin)"


def load(source: str, stdin: Any = None) -> JobSpec:
    """Read and validate a job file; raise InvalidJobFile listing every problem."""
    name = "<stdin>" if source == "-" else source
    raw, base_dir = read_source(source, stdin)
    text, bom = _text(raw, name)
    del raw  # a 200,000-image job file is 16 MB: do not hold it twice while parsing
    return parse_text(text, bom=bom, source=name, base_dir=base_dir)


def parse(raw: bytes, *, source: str, base_dir: Path) -> JobSpec:
    """Validate job-file bytes; raise InvalidJobFile listing every problem."""
    text, bom = _text(raw, source)
    return parse_text(text, bom=bom, source=source, base_dir=base_dir)


def parse_text(text: str, *, bom: bool, source: str, base_dir: Path) -> JobSpec:
    problems: list[str] = []
    visit_problems: list[str] = []
    counts = {"visits": 0, "images": 0}
    store_images: dict[str, int] = {}

    places: dict[str | int, int] = {}  # top-level keys' and bad visits' offsets

    def on_visit(i: int, item: Any, pos: int) -> None:
        visit = _check_visit(i, item, visit_problems)
        if visit is None:
            places[i] = pos
        else:  # counted, not kept: tasks are parsed again when needed
            counts["visits"] += 1
            counts["images"] += len(visit.image_urls)
            store_images[visit.store_id] = store_images.get(visit.store_id, 0) + len(
                visit.image_urls
            )

    top = _decode(text, source, on_visit, places)
    _check_top(top, problems)
    problems += visit_problems
    if problems:
        shown = [_located(p, text, places) for p in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_PROBLEMS} more")
        raise InvalidJobFile(source, shown)
    return JobSpec(
        source=source,
        base_dir=base_dir,
        text=text,
        bom=bom,
        visit_count=counts["visits"],
        image_count=counts["images"],
        store_images=store_images,
    )


_BOM = b"\xef\xbb\xbf"


def _text(raw: bytes, source: str) -> tuple[str, bool]:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(raw) > 1 and b"\x00" in raw[:4]):
        raise InvalidJobFile(source, ["is UTF-16 text; save it as UTF-8"]) from None
    bom = raw.startswith(_BOM)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidJobFile(
            source, [f"not UTF-8 text (invalid byte 0x{raw[exc.start]:02x} at offset {exc.start})"]
        ) from None
    if not text.strip():
        raise InvalidJobFile(source, ["empty file, expected a JSON object"]) from None
    return text, bom


def _decode(
    text: str,
    source: str,
    on_visit: Callable[[int, Any, int], None],
    places: dict[str | int, int] | None = None,
) -> Any:
    events = _parse_document(text, places)
    try:
        while True:
            try:
                i, item, pos = next(events)
            except StopIteration as done:
                return done.value
            on_visit(i, item, pos)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        hint = _json_hint(text, exc.pos)
        problem = Problem(
            f"not valid JSON at {where}: {exc.msg}{hint}", pos=(exc.lineno, exc.colno)
        )
        raise InvalidJobFile(source, [problem]) from None
    except _DuplicateKey as exc:
        raise InvalidJobFile(source, [f"key {exc.args[0]!r} appears twice in one object"]) from None
    except RecursionError:
        raise InvalidJobFile(source, ["nested too deeply to be a job file"]) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise InvalidJobFile(source, [f"not a usable JSON value: {exc}"]) from None


class _VisitsArray:
    """Stands for the `visits` array once its elements went to `on_visit` one by one."""

    def __init__(self, length: int) -> None:
        self.length = length


_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()  # type: ignore[union-attr]  # [ \t\n\r]* always matches


def _next_item(text: str, pos: int, closer: str) -> tuple[bool, int]:
    """After a value: (True, start of the next item) on a comma, (False, past the closer)
    on `closer`; anything else is json's own 'Expecting ',' delimiter'."""
    pos = _skip_ws(text, pos)
    if text[pos : pos + 1] == ",":
        return True, _skip_ws(text, pos + 1)
    if text[pos : pos + 1] != closer:
        raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
    return False, pos + 1


def _parse_document(
    text: str, places: dict[str | int, int] | None = None
) -> Generator[tuple[int, Any, int], None, Any]:
    """Parse the top-level object, yielding each element of `visits` (with its offset) as
    soon as it is parsed, so the whole document never exists as Python objects at once (a
    200,000-image job would hold ~75 MB of dicts). Returns the other keys; `places` gets
    each top-level key's value offset. Errors are json's own."""
    dec = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)
    pos = _skip_ws(text, 0)
    if text[pos : pos + 1] != "{":
        return dec.decode(text)  # not an object: json says what it is, or what is wrong
    top: dict[str, Any] = {}
    pos = _skip_ws(text, pos + 1)
    more = text[pos : pos + 1] != "}"
    if not more:
        pos += 1
    while more:
        if text[pos : pos + 1] != '"':
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, pos
            )
        key, pos = dec.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if text[pos : pos + 1] != ":":
            raise json.JSONDecodeError("Expecting ':' delimiter", text, pos)
        pos = _skip_ws(text, pos + 1)
        if key in top:
            raise _DuplicateKey(key)
        if places is not None:
            places[key] = pos
        if key == "visits" and text[pos : pos + 1] == "[":
            top[key], pos = yield from _stream_array(text, pos, dec)
        else:
            top[key], pos = dec.raw_decode(text, pos)
        more, pos = _next_item(text, pos, "}")
    end = _skip_ws(text, pos)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return top


def _stream_array(
    text: str, pos: int, dec: json.JSONDecoder
) -> Generator[tuple[int, Any, int], None, tuple[_VisitsArray, int]]:
    pos = _skip_ws(text, pos + 1)
    if text[pos : pos + 1] == "]":
        return _VisitsArray(0), pos + 1
    i, more = 0, True
    while more:
        start = pos
        item, pos = dec.raw_decode(text, pos)
        yield i, item, start
        i += 1
        more, pos = _next_item(text, pos, "]")
    return _VisitsArray(i), pos


def _located(problem: str, text: str, places: dict[str | int, int]) -> str:
    """The problem with the line and column of its place: found by walking the text
    again from the nearest offset the parse kept (only for the problems shown, so a valid
    file costs nothing). A missing key points at the object that lacks it."""
    if not isinstance(problem, Problem) or problem.parts is None:
        return problem
    parts = problem.parts
    pos = _skip_ws(text, 0)
    if parts and parts[0] in places:
        pos, parts = places[parts[0]], parts[1:]
        if problem.parts[0] == "visits" and parts and parts[0] in places:
            pos, parts = places[parts[0]], parts[1:]
    try:
        for part in parts:
            found = _children(text, pos).get(part)
            if found is None:
                break
            pos = found
    except (ValueError, RecursionError):  # cannot happen on text that parsed; stay put
        pass
    line = text.count("\n", 0, pos) + 1
    return problem.at((line, pos - text.rfind("\n", 0, pos)))


def _children(text: str, pos: int) -> dict[str | int, int]:
    """Offsets of the members of the object (or elements of the array) at `pos`."""
    dec = json.JSONDecoder()
    closer = {"{": "}", "[": "]"}.get(text[pos : pos + 1])
    out: dict[str | int, int] = {}
    if closer is None:
        return out
    pos = _skip_ws(text, pos + 1)
    more = text[pos : pos + 1] != closer
    while more:
        key: str | int = len(out)
        if closer == "}":
            key, pos = dec.raw_decode(text, pos)
            pos = _skip_ws(text, _skip_ws(text, pos) + 1)  # past the colon
        out.setdefault(key, pos)
        _, pos = dec.raw_decode(text, pos)
        more, pos = _next_item(text, pos, closer)
    return out


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Reject {"count": 1, "count": 2}: JSON would silently keep the last one."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def _json_hint(text: str, pos: int) -> str:
    before = text[:pos].rstrip()
    if before.endswith(",") and text[pos : pos + 1] in ("]", "}"):
        return " (a trailing comma before the closing bracket?)"
    if text[pos : pos + 1] == "'":
        return " (JSON needs double quotes)"
    return ""


def _type_name(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    names.update({list: "array", dict: "object", type(None): "null"})
    return names.get(type(value), type(value).__name__)


def _check_top(doc: Any, problems: list[str]) -> None:
    """count and visits; the visits themselves were checked as they were parsed."""
    if not isinstance(doc, dict):
        problems.append(_problem((), f"expected an object, got {_type_name(doc)}"))
        return
    for key, value in doc.items():
        if key not in ("count", "visits") and isinstance(value, dict | list) and _too_deep(value):
            problems.append(_problem((key,), f"nested too deeply (over {MAX_DEPTH} levels)"))
    count = doc.get("count")
    if "count" not in doc:
        problems.append(_problem(("count",), "required field is missing"))
    elif type(count) is not int:  # strict: bool, float and "2" are all wrong types
        problems.append(_problem(("count",), f"expected an integer, got {_type_name(count)}"))
    elif count < 0:
        problems.append(_problem(("count",), f"must not be negative, got {count}"))
    visits = doc.get("visits")
    if "visits" not in doc:
        problems.append(_problem(("visits",), "required field is missing"))
    elif not isinstance(visits, _VisitsArray):
        problems.append(_problem(("visits",), f"expected an array, got {_type_name(visits)}"))
    elif visits.length == 0:
        problems.append(_problem(("visits",), "must hold at least one visit"))
    elif type(count) is int and count >= 0 and count != visits.length:
        problems.append(_problem(("count",), f"says {count} but visits holds {visits.length}"))


MAX_DEPTH = 32  # far deeper than any job file needs; json itself gives up near 1,000
_VISIT_KEYS = frozenset({"store_id", "visit_time", "image_url"})


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Nesting checked without recursion. Without a fixed limit, whether json's scanner
    accepts a file would depend on how deep the Python stack already is when it parses:
    a file valid at submit could fail when its tasks are parsed again during the run."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _check_visit(i: int, item: Any, problems: list[str]) -> Visit | None:
    at: Path_ = ("visits", i)
    if not isinstance(item, dict):
        problems.append(_problem(at, f"expected an object, got {_type_name(item)}"))
        return None
    before = len(problems)
    for key, value in item.items():  # fields we do not know: allowed, but not abysses
        if key not in _VISIT_KEYS and isinstance(value, dict | list) and _too_deep(value):
            problems.append(_problem((*at, key), f"nested too deeply (over {MAX_DEPTH} levels)"))
    store_id = _nonempty_string(item, "store_id", at, problems)
    visit_time = _nonempty_string(item, "visit_time", at, problems)
    urls = item.get("image_url")
    if "image_url" not in item:
        problems.append(
            _problem((*at, "image_url"), f"required field is missing{_misspelt(item, 'image_url')}")
        )
    elif not isinstance(urls, list):
        hint = " (put the URL in [ ])" if isinstance(urls, str) else ""
        problems.append(
            _problem((*at, "image_url"), f"expected an array of URLs, got {_type_name(urls)}{hint}")
        )
    elif not urls:
        problems.append(_problem((*at, "image_url"), "must hold at least one image URL"))
    else:
        for j, url in enumerate(urls):
            if not isinstance(url, str):
                problems.append(
                    _problem((*at, "image_url", j), f"expected a string, got {_type_name(url)}")
                )
            elif not url.strip():
                problems.append(_problem((*at, "image_url", j), "must not be empty"))
            elif not _encodable(url):
                problems.append(_problem((*at, "image_url", j), "contains an invalid character"))
    if len(problems) > before:
        return None
    assert store_id is not None and visit_time is not None and isinstance(urls, list)
    # Ids typed by hand often carry stray spaces; the store master is trimmed the same way.
    # interned: thousands of visits share a few store ids
    return Visit(sys.intern(store_id.strip()), visit_time, tuple(u.strip() for u in urls))


def _nonempty_string(item: dict[str, Any], key: str, at: Path_, problems: list[str]) -> str | None:
    if key not in item:
        problems.append(_problem((*at, key), f"required field is missing{_misspelt(item, key)}"))
        return None
    value = item[key]
    if not isinstance(value, str):
        problems.append(_problem((*at, key), f"expected a string, got {_type_name(value)}"))
        return None
    if not value.strip():
        problems.append(_problem((*at, key), "must not be empty"))
        return None
    if not _encodable(value):
        problems.append(_problem((*at, key), "contains an invalid character (a lone surrogate)"))
        return None
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _misspelt(item: dict[str, Any], key: str) -> str:
    """' (found "image_urls")' when a field that is there looks like the missing one."""
    import difflib

    close = difflib.get_close_matches(key, [str(k) for k in item], n=1, cutoff=0.7)
    return f" (found {close[0]!r}: a typo?)" if close else ""


NOT_BLANK = "\\S"  # a string with something besides spaces (the validator strips them)
NOT_IN_SCHEMA = (
    "Rules JSON Schema cannot say, which `retailpulse validate` also checks: "
    "count must equal the number of visits; "
    "count must be written as an integer (2, not 2.0: JSON Schema counts 2.0 as an integer); "
    "no key may appear twice in one object; "
    "strings must be valid Unicode (no lone surrogate escapes such as \\ud800); "
    f"values of fields the format does not define may be nested at most {MAX_DEPTH} levels."
)

JOB_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://retailpulse.example/schemas/job.schema.json",
    "title": "retailpulse job file",
    "description": NOT_IN_SCHEMA,
    "type": "object",
    "required": ["count", "visits"],
    "properties": {
        "count": {
            "type": "integer",
            "minimum": 1,
            "description": "number of visits: must equal the length of visits",
        },
        "visits": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["store_id", "image_url", "visit_time"],
                "properties": {
                    "store_id": {
                        "type": "string",
                        "pattern": NOT_BLANK,
                        "description": "spaces around it are ignored",
                    },
                    "image_url": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "string",
                            "pattern": NOT_BLANK,
                            "description": "http(s):// URL, file:// URL or a local path "
                            "(relative to the job file's folder)",
                        },
                    },
                    "visit_time": {
                        "type": "string",
                        "pattern": NOT_BLANK,
                        "description": "kept verbatim; ISO 8601 recommended",
                    },
                },
            },
        },
    },
}
