"""Issue 12: `retailpulse schema` agrees with the validator.

The examples and a set of bad files go through both the validator (`spec.parse`) and a
JSON Schema validator (Draft 2020-12, jsonschema) on the printed schema; their verdicts
must match, except for the rules JSON Schema cannot say, which the schema's description
names (and which are listed here, file by file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from retailpulse_cli.errors import InvalidJobFile
from retailpulse_cli.processing import spec

from .conftest import Cli

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).parent / "fixtures" / "bad"


def _visit(**over: Any) -> dict[str, Any]:
    return {"store_id": "S00339218", "image_url": ["a.jpg"], "visit_time": "x", **over}


def _doc(*visits: dict[str, Any], count: Any = None, **top: Any) -> str:
    return json.dumps(
        {"count": len(visits) if count is None else count, "visits": list(visits), **top}
    )


DEEP = "[" * 40 + "]" * 40
# name -> job file text, beyond the fixtures in tests/fixtures/bad and examples/jobs
EXTRA: dict[str, str] = {
    "count-2.0.json": _doc(_visit(), _visit(), count=2.0),
    "count-negative.json": _doc(_visit(), count=-1),
    "count-zero-no-visits.json": _doc(count=0),
    "blank-store-id.json": _doc(_visit(store_id="   ")),
    "tab-store-id.json": _doc(_visit(store_id="\t\n")),
    "blank-url.json": _doc(_visit(image_url=["  "])),
    "blank-visit-time.json": _doc(_visit(visit_time=" ")),
    "url-not-string.json": _doc(_visit(image_url=[7])),
    "visit-time-null.json": _doc(_visit(visit_time=None)),
    "image-url-string.json": _doc(_visit(image_url="a.jpg")),
    "duplicate-count.json": '{"count": 1, "count": 1, "visits": [' + json.dumps(_visit()) + "]}",
    "lone-surrogate.json": '{"count": 1, "visits": [{"store_id": "S\\ud800", '
    '"image_url": ["a.jpg"], "visit_time": "x"}]}',
    "deep-extra-field.json": '{"count": 1, "visits": ['
    + json.dumps(_visit())[:-1]
    + ', "notes": '
    + DEEP
    + "}]}",
    # valid for both: fields the format does not define are allowed
    "extra-fields.json": _doc(_visit(notes="hi"), source="app", count=1),
    "padded-store-id.json": _doc(_visit(store_id="  S00339218 ")),
}

# Where the two must disagree: the validator rejects, the schema cannot say why. Each
# rule is named in the schema's description.
EXPECTED_DISAGREEMENTS: dict[str, str] = {
    "count-mismatch.json": "count must equal the number of visits",
    "count-is-float.json": "2, not 2.0",  # its count is 1.0
    "count-2.0.json": "2, not 2.0",
    "duplicate-count.json": "no key may appear twice",
    "lone-surrogate.json": "no lone surrogate",
    "deep-extra-field.json": "nested at most 32 levels",
}


def _files() -> dict[str, bytes]:
    files = {f"examples/{p.name}": p.read_bytes() for p in (ROOT / "examples/jobs").glob("*.json")}
    files.update({p.name: p.read_bytes() for p in BAD.glob("*.json")})
    files.update({name: text.encode() for name, text in EXTRA.items()})
    return files


def _tool_accepts(raw: bytes) -> bool:
    try:
        spec.parse(raw, source="job.json", base_dir=ROOT)
    except InvalidJobFile:
        return False
    return True


def _schema_accepts(raw: bytes, schema: dict[str, Any]) -> bool:
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except ValueError:  # not UTF-8 or not JSON: no schema applies, a JSON reader rejects it
        return False
    return Draft202012Validator(schema).is_valid(doc)


@pytest.fixture(scope="module")
def printed_schema() -> dict[str, Any]:
    r = Cli()("schema")
    assert r.exit_code == 0
    schema: dict[str, Any] = json.loads(r.stdout)
    Draft202012Validator.check_schema(schema)
    return schema


def test_schema_and_validator_agree_except_where_the_description_says(
    printed_schema: dict[str, Any],
) -> None:
    files = _files()
    assert len(files) >= 35  # 4 examples, 20 fixtures, the extras
    verdicts = {
        n: (_tool_accepts(raw), _schema_accepts(raw, printed_schema)) for n, raw in files.items()
    }
    disagree = {n for n, (tool, schema) in verdicts.items() if tool != schema}
    assert disagree == set(EXPECTED_DISAGREEMENTS), {n: verdicts[n] for n in disagree}
    for name, rule in EXPECTED_DISAGREEMENTS.items():
        assert verdicts[name] == (False, True), name  # the schema is the looser one
        assert rule in printed_schema["description"], rule
    # and the cases the issue named are now caught by the schema itself
    for name in ("blank-store-id.json", "blank-url.json", "blank-visit-time.json"):
        assert verdicts[name] == (False, False), name
    accepted = {n for n, (tool, _) in verdicts.items() if tool}
    assert {"examples/offline.json", "extra-fields.json", "padded-store-id.json"} <= accepted
