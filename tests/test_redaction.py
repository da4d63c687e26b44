"""Redaction (issue 9, finding 6): one redaction for every string derived from a URL,
parsable or not; secret parameter names matched whole, not as substrings."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import time
from pathlib import Path

import pytest

from retailpulse_cli.jobs.results_export import CSV_COLUMNS
from retailpulse_cli.processing.fetch import redact, scrub  # the names the runner uses
from retailpulse_cli.text import redaction

from .conftest import run_cli, visit, write_job
from .imageserver import ImageServer


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file://u:PW@localhost/x.png", "file://***@localhost/x.png"),
        ("http://u:PW@[::1/x.png", "http://***@[::1/x.png"),  # urlsplit: Invalid IPv6 URL
        ("http://h/x?next=http://u:PW@host/", "http://h/x?next=http://***@host/"),
        (
            "http://h/x?next=http%3A%2F%2Fu%3APW%40host%2F%3Ftoken%3Dabcd%26w%3D1",
            "http://h/x?next=http%3A%2F%2F***%40host%2F%3Ftoken%3D***%26w%3D1",
        ),
        ("http://TOKEN123@github.com/a.png", "http://***@github.com/a.png"),
        ("http://u:p@ss@host/a", "http://***@host/a"),
        # passwords with a space, `/` or `#` (requests still sends the first one)
        ("http://alice:My Secret@127.0.0.1:8765/a.jpg", "http://***@127.0.0.1:8765/a.jpg"),
        ("http://alice:pa/ss#word@127.0.0.1:8765/x.jpg", "http://***@127.0.0.1:8765/x.jpg"),
        ("u:PW@host/x.png", "***@host/x.png"),
        ("http://h/a?monkey=banana&keyword=shelf", "http://h/a?monkey=banana&keyword=shelf"),
        ("http://h/a?key=K&passenger=3&pass=P", "http://h/a?key=***&passenger=3&pass=***"),
        ("http://h/a?Token=1;SIG=2&sign=3", "http://h/a?Token=***;SIG=***&sign=3"),
        (
            "https://b.s3.amazonaws.com/a.jpg?X-Amz-Credential=AK%2F1&X-Amz-Signature=ab&w=1",
            "https://b.s3.amazonaws.com/a.jpg?X-Amz-Credential=***&X-Amz-Signature=***&w=1",
        ),
        ("http://h/#access_token=zzz&x=1", "http://h/#access_token=***&x=1"),
        (
            "http://h/a?api_key=1&apikey=2&client_secret=3",
            "http://h/a?api_key=***&apikey=***&client_secret=***",
        ),
        ("http://h/a?session=1&sessionid=2&pwd=3", "http://h/a?session=***&sessionid=***&pwd=***"),
        ("http://h/a.png?w=100&code=S1", "http://h/a.png?w=100&code=S1"),
        ("shelf photos/aisle 3.png", "shelf photos/aisle 3.png"),
    ],
)
def test_redact(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_scrub_removes_secrets_a_library_repeats_without_the_url_shape() -> None:
    url = "http://alice:Sekr3tPW@host/x?token=abcdef&w=1"
    msg = "Failed for 'alice' with Sekr3tPW at /x?w=1&token=abcdef (abcdef)"
    out = scrub(msg, url)
    assert "Sekr3tPW" not in out and "abcdef" not in out
    assert "alice" not in out  # a user name can be a token (https://TOKEN@host/)
    assert "w=1" in out  # the query as a whole is not what is hidden
    assert scrub("HTTP 404 Not Found", "http://h/a?w=1") == "HTTP 404 Not Found"
    assert scrub("broken: http://u:Sekr3tPW@[::1/x", "http://u:Sekr3tPW@[::1/x") == (
        "broken: http://***@[::1/x"
    )


SECRETS = ("Sekr3tPW", "Sekr3tKEY")


def test_secrets_appear_nowhere_the_tool_writes_or_prints(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    urls = [
        "file://u:Sekr3tPW@localhost/x.png",
        "http://u:Sekr3tPW@[::1/x.png",
        server.url("/img/61x48.png?next=http://u:Sekr3tPW@host/"),
        server.url("/status/404?next=http%3A%2F%2Fu%3ASekr3tPW%40h%2F"),
        server.url("/img/62x48.png?monkey=banana&keyword=shelf&key=Sekr3tKEY"),
        "u:Sekr3tPW@nowhere/x.png",
    ]
    job = write_job(tmp_path / "j.json", [visit("S00339218", *urls)])
    sub = run_cli("submit", str(job), "-v", "--gpu-delay", "0", "--retries", "0", env=env)
    assert sub.returncode == 1, sub.stderr  # some images fail: the job ends `failed`
    job_id = sub.stdout.strip()
    jsonl = run_cli("results", job_id, env=env)
    as_csv = run_cli("results", job_id, "--format", "csv", env=env)
    status = run_cli("status", job_id, "--json", env=env)
    outputs = {"submit -v stderr": sub.stderr, "status --json": status.stdout}
    outputs.update({"results": jsonl.stdout, "results --format csv": as_csv.stdout})
    job_dir = Path(env["RETAILPULSE_JOBS_DIR"]) / job_id
    for name in ("results.jsonl", "status.json", "errors.json", "meta.json"):
        outputs[name] = (job_dir / name).read_text()
    for where, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} leaked in {where}: {text}"
    rows = {int(r["index"]): r for r in csv.DictReader(io.StringIO(as_csv.stdout))}
    assert rows == {int(r["index"]): r for r in map(_as_csv, jsonl.stdout.splitlines())}
    assert rows[0]["image_url"] == "file://***@localhost/x.png"
    assert "***@localhost" in rows[0]["error"]
    assert rows[1]["image_url"] == "http://***@[::1/x.png"
    assert rows[2]["status"] == "ok" and "next=http://***@host/" in rows[2]["image_url"]
    assert "monkey=banana&keyword=shelf&key=***" in rows[4]["image_url"]
    assert rows[5]["error_code"] == "file_not_found" and "***@nowhere" in rows[5]["error"]
    assert "monkey=banana&keyword=shelf" in sub.stderr  # -v shows what is not secret
    assert json.loads(status.stdout)["images_ok"] == 2


def _as_csv(line: str) -> dict[str, str]:
    rec = json.loads(line)
    return {k: "" if rec.get(k) is None else str(rec.get(k)) for k in CSV_COLUMNS}


# -- long URLs (found while measuring issue 17, finding 16) -----------------------------------

RULES = (redaction._AUTHORITY, redaction._LOOSE_USERINFO)  # the rules, as regular expressions


def by_the_rules(text: str) -> tuple[str, list[str]]:
    """What redact() and secrets_of() gave when they ran the regexes themselves."""

    def hide(m: re.Match[str]) -> str:
        return f"{m.group(1)}***{'%40' if m.group(0).lower().endswith('%40') else '@'}"

    return RULES[1].sub("***@", RULES[0].sub(hide, text)), [
        m.group(0) for rule in RULES for m in rule.finditer(text)
    ]


def test_the_linear_scans_agree_with_the_rules_they_replace() -> None:
    rng = random.Random(17)
    pieces = ["a", "u", ":", "@", "/", "//", "%2F", "%2f", "%40", "%4", "0", "?", "#", " "]
    pieces += ['"', "<", "=", "&", ";", "\t", "\u2003", "x:y@"]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 16)))
        hidden = redaction._hide_loose(redaction._hide_authority(text))
        spans = [text[s:e] for s, _, e in redaction._authority_spans(text)]
        spans += [text[s:e] for s, e in redaction._loose_spans(text)]
        assert (hidden, spans) == by_the_rules(text), repr(text)


@pytest.mark.parametrize("unit", ["a", "a:", "%2F", "%2F%2Fa%40/", "//a@/", "u:p@"])
def test_a_long_url_is_redacted_in_linear_time(unit: str) -> None:
    """A 100 KB URL of `a` took about 80 s (the regex retried from every character), one of
    `%2F` minutes; a 1 MB URL hours, holding its image's worker all that time."""
    url = "http://h/" + unit * (100_000 // len(unit)) + ".png?token=abcd"
    started = time.monotonic()
    shown = scrub(f"connection failed: {url}", url)
    assert time.monotonic() - started < 10
    assert shown.endswith("token=***") and "abcd" not in shown
