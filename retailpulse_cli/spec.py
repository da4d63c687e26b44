"""Job file -> validated, immutable job spec. Every problem is reported with its JSON path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .errors import InvalidJobFile

MAX_PROBLEMS = 50  # beyond this the message stops helping; the count still says how many


class Visit(NamedTuple):
    """One store visit; a NamedTuple because a 200,000-image job holds many of them."""

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
    """A job file that passed validation."""

    source: str  # what the user named: a path or "-" (stdin)
    base_dir: Path  # folder that relative image paths are resolved against
    raw: bytes  # the file exactly as given, kept in the job directory
    visits: tuple[Visit, ...]

    @property
    def image_count(self) -> int:
        return sum(len(v.image_urls) for v in self.visits)

    def tasks(self) -> Iterator[ImageTask]:
        """Every image of the job in a stable order; its index is its identity across resumes."""
        index = 0
        for vi, visit in enumerate(self.visits):
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
    raw, base_dir = read_source(source, stdin)
    return parse(raw, source="<stdin>" if source == "-" else source, base_dir=base_dir)


def parse(raw: bytes, *, source: str, base_dir: Path) -> JobSpec:
    """Validate job-file bytes; raise InvalidJobFile listing every problem."""
    doc = _decode(raw, source)
    problems: list[str] = []
    visits = _check_document(doc, problems)
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"... and {len(problems) - MAX_PROBLEMS} more")
        raise InvalidJobFile(source, shown)
    return JobSpec(source=source, base_dir=base_dir, raw=raw, visits=tuple(visits))


def _decode(raw: bytes, source: str) -> Any:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(raw) > 1 and b"\x00" in raw[:4]):
        raise InvalidJobFile(source, ["is UTF-16 text; save it as UTF-8"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidJobFile(
            source, [f"not UTF-8 text (invalid byte 0x{raw[exc.start]:02x} at offset {exc.start})"]
        ) from None
    if not text.strip():
        raise InvalidJobFile(source, ["empty file, expected a JSON object"]) from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        hint = _json_hint(text, exc.pos)
        raise InvalidJobFile(source, [f"not valid JSON at {where}: {exc.msg}{hint}"]) from None
    except _DuplicateKey as exc:
        raise InvalidJobFile(source, [f"key {exc.args[0]!r} appears twice in one object"]) from None
    except RecursionError:
        raise InvalidJobFile(source, ["nested too deeply to be a job file"]) from None


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


def _check_document(doc: Any, problems: list[str]) -> list[Visit]:
    if not isinstance(doc, dict):
        problems.append(f"(top level): expected an object, got {_type_name(doc)}")
        return []
    count = doc.get("count")
    if "count" not in doc:
        problems.append("count: required field is missing")
    elif type(count) is not int:  # strict: bool, float and "2" are all wrong types
        problems.append(f"count: expected an integer, got {_type_name(count)}")
    elif count < 0:
        problems.append(f"count: must not be negative, got {count}")
    raw_visits = doc.get("visits")
    if "visits" not in doc:
        problems.append("visits: required field is missing")
        return []
    if not isinstance(raw_visits, list):
        problems.append(f"visits: expected an array, got {_type_name(raw_visits)}")
        return []
    if not raw_visits:
        problems.append("visits: must hold at least one visit")
    elif type(count) is int and count >= 0 and count != len(raw_visits):
        problems.append(f"count: says {count} but visits holds {len(raw_visits)}")
    return [v for i, item in enumerate(raw_visits) if (v := _check_visit(i, item, problems))]


def _check_visit(i: int, item: Any, problems: list[str]) -> Visit | None:
    path = f"visits[{i}]"
    if not isinstance(item, dict):
        problems.append(f"{path}: expected an object, got {_type_name(item)}")
        return None
    before = len(problems)
    store_id = _nonempty_string(item, "store_id", path, problems)
    visit_time = _nonempty_string(item, "visit_time", path, problems)
    urls = item.get("image_url")
    if "image_url" not in item:
        problems.append(
            f"{path}.image_url: required field is missing{_misspelt(item, 'image_url')}"
        )
    elif not isinstance(urls, list):
        hint = " (put the URL in [ ])" if isinstance(urls, str) else ""
        problems.append(
            f"{path}.image_url: expected an array of URLs, got {_type_name(urls)}{hint}"
        )
    elif not urls:
        problems.append(f"{path}.image_url: must hold at least one image URL")
    else:
        for j, url in enumerate(urls):
            if not isinstance(url, str):
                problems.append(f"{path}.image_url[{j}]: expected a string, got {_type_name(url)}")
            elif not url.strip():
                problems.append(f"{path}.image_url[{j}]: must not be empty")
            elif not _encodable(url):
                problems.append(f"{path}.image_url[{j}]: contains an invalid character")
    if len(problems) > before:
        return None
    assert store_id is not None and visit_time is not None and isinstance(urls, list)
    # Ids typed by hand often carry stray spaces; the store master is trimmed the same way.
    return Visit(store_id.strip(), visit_time, tuple(u.strip() for u in urls))


def _nonempty_string(item: dict[str, Any], key: str, path: str, problems: list[str]) -> str | None:
    if key not in item:
        problems.append(f"{path}.{key}: required field is missing{_misspelt(item, key)}")
        return None
    value = item[key]
    if not isinstance(value, str):
        problems.append(f"{path}.{key}: expected a string, got {_type_name(value)}")
        return None
    if not value.strip():
        problems.append(f"{path}.{key}: must not be empty")
        return None
    if not _encodable(value):
        problems.append(f"{path}.{key}: contains an invalid character (a lone surrogate)")
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


JOB_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://retailpulse.example/schemas/job.schema.json",
    "title": "retailpulse job file",
    "type": "object",
    "required": ["count", "visits"],
    "properties": {
        "count": {"type": "integer", "minimum": 1, "description": "number of visits"},
        "visits": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["store_id", "image_url", "visit_time"],
                "properties": {
                    "store_id": {"type": "string", "minLength": 1},
                    "image_url": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "string",
                            "minLength": 1,
                            "description": "http(s):// URL, file:// URL or a local path "
                            "(relative to the job file's folder)",
                        },
                    },
                    "visit_time": {
                        "type": "string",
                        "minLength": 1,
                        "description": "kept verbatim; ISO 8601 recommended",
                    },
                },
            },
        },
    },
}
