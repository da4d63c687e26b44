"""Job-file validation through the real CLI (issue 2, "Input: the job file").

Every invalid job file must be rejected before a job exists: exit code 3, one stderr line
per problem naming the file and the JSON path (`visits[3].image_url`), no job directory,
nothing downloaded, no traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import KNOWN, Cli, jobs_in, results_of, unstamped, visit, write_job
from .imageserver import ImageServer

BAD = Path(__file__).parent / "fixtures" / "bad"
INVALID_INPUT = 3

# fixture file -> every problem it holds, as (JSON path, regex saying what is wrong).
# The path "" means the problem is about the file as a whole.
CASES: dict[str, list[tuple[str, str]]] = {
    "count-is-string.json": [("count", r"integer.*string")],
    "count-is-bool.json": [("count", r"integer.*bool")],
    "count-is-float.json": [("count", r"integer.*(number|float)")],
    "count-is-null.json": [("count", r"integer.*null")],
    "missing-count.json": [("count", r"missing")],
    "missing-visits.json": [("visits", r"missing")],
    "visits-not-array.json": [("visits", r"array.*object")],
    "empty-visits.json": [("visits", r"at least one|empty")],
    "count-mismatch.json": [("count", r"\b3\b.*\b2\b")],
    "empty-image-url.json": [("visits[3].image_url", r"at least one|empty")],
    "visit-not-object.json": [("visits[0]", r"object.*string")],
    "wrong-types.json": [
        ("visits[0].store_id", r"string.*integer"),
        ("visits[0].image_url", r"array.*string"),
        ("visits[0].visit_time", r"string.*null"),
    ],
    "missing-visit-fields.json": [
        ("visits[0].store_id", r"missing"),
        ("visits[0].image_url", r"missing"),
        ("visits[0].visit_time", r"missing"),
    ],
    "three-problems.json": [
        ("count", r"integer.*string"),
        ("visits[1].image_url", r"at least one|empty"),
        ("visits[2].store_id", r"missing"),
    ],
    "image-url-items.json": [
        ("visits[0].image_url[0]", r"string.*integer"),
        ("visits[0].image_url[1]", r"empty"),
    ],
    "empty-strings.json": [
        ("visits[0].store_id", r"empty"),
        ("visits[0].visit_time", r"empty"),
    ],
    "top-level-array.json": [("", r"object.*array")],
    "not-json.json": [("", r"JSON.*line 5.*column 6")],
    "empty.json": [("", r"empty")],
    "not-utf8.json": [("", r"UTF-8")],
}


def error_lines(stderr: str) -> list[str]:
    return [
        line for line in unstamped(stderr).splitlines() if line.startswith("retailpulse: error:")
    ]


def assert_rejected(
    result: Any, env: dict[str, str], source: str, problems: list[tuple[str, str]]
) -> None:
    """Exit 3, one error line per problem naming file + JSON path + what is wrong, no job."""
    output = result.stdout + result.stderr
    assert result.exit_code == INVALID_INPUT, output
    assert "Traceback" not in output
    assert result.stdout == ""  # nothing that a `JOB=$(retailpulse submit ...)` would capture
    lines = error_lines(result.stderr)
    assert lines, result.stderr
    unmatched = list(lines)
    for path, what in problems:
        hits = [
            line
            for line in unmatched
            if source in line
            and (not path or re.search(rf"(^|[\s:]){re.escape(path)}:", line))
            and re.search(what, line, re.IGNORECASE)
        ]
        assert hits, f"no line says {path!r} / {what!r} for {source}:\n{result.stderr}"
        unmatched.remove(hits[0])
    # every problem on its own line, and no invented ones
    assert len(lines) == len(problems), result.stderr
    assert jobs_in(env) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_invalid_job_file_is_rejected_with_every_problem(
    cli: Cli, env: dict[str, str], name: str
) -> None:
    path = BAD / name
    result = cli("submit", str(path), "--gpu-delay", "0")
    assert_rejected(result, env, str(path), CASES[name])


def test_every_bad_fixture_is_covered() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(CASES)


def test_three_problems_are_all_listed_in_file_order(cli: Cli, env: dict[str, str]) -> None:
    path = BAD / "three-problems.json"
    result = cli("submit", str(path), "--gpu-delay", "0")
    assert result.exit_code == INVALID_INPUT
    lines = error_lines(result.stderr)
    assert len(lines) == 3, result.stderr
    for line, where in zip(
        lines, ["count", "visits[1].image_url", "visits[2].store_id"], strict=True
    ):
        assert f"{path}: {where}:" in line


def test_string_count_is_a_wrong_type_even_when_it_matches(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"count": "1", "visits": [visit(KNOWN[0], "a.jpg")]}))
    result = cli("submit", str(job), "--gpu-delay", "0")
    assert_rejected(result, env, str(job), [("count", r"integer.*string")])


def test_missing_file(cli: Cli, env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "job.json"
    result = cli("submit", str(missing), "--gpu-delay", "0")
    assert_rejected(result, env, str(missing), [("", r"not found|no such")])


def test_directory_instead_of_file(cli: Cli, env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    result = cli("submit", str(folder), "--gpu-delay", "0")
    assert_rejected(result, env, str(folder), [("", r"directory")])


def test_unreadable_path(cli: Cli, env: dict[str, str], tmp_path: Path) -> None:
    # A path through a regular file cannot be opened, whoever runs the tests (even root).
    (tmp_path / "notes.txt").write_text("not a folder")
    job = tmp_path / "notes.txt" / "job.json"
    result = cli("submit", str(job), "--gpu-delay", "0")
    assert_rejected(result, env, str(job), [("", r"cannot be read|not a directory|not found")])


def test_invalid_file_downloads_nothing(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    url = server.url("/img/211x113.png")
    before = server.hits["/img/211x113.png"]
    job = write_job(tmp_path / "job.json", [visit(KNOWN[0], url), visit(KNOWN[1], url)], count=5)
    result = cli("submit", str(job), "--gpu-delay", "0")
    assert_rejected(result, env, str(job), [("count", r"\b5\b.*\b2\b")])
    assert server.hits["/img/211x113.png"] == before


def test_stdin_bad_json_is_rejected(cli: Cli, env: dict[str, str]) -> None:
    result = cli("submit", "-", "--gpu-delay", "0", input='{"count": 1,\n  "visits": [}\n')
    assert result.exit_code == INVALID_INPUT
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert re.search(r"(-|stdin>?): ", lines[0]), lines[0]
    assert re.search(r"line 2 column 14", lines[0]), lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert jobs_in(env) == []


def test_stdin_invalid_fields_are_all_listed(cli: Cli, env: dict[str, str]) -> None:
    doc = {"count": True, "visits": [{"store_id": "S00339218", "image_url": []}]}
    result = cli("submit", "-", "--gpu-delay", "0", input=json.dumps(doc))
    assert result.exit_code == INVALID_INPUT
    text = result.stderr
    assert len(error_lines(text)) == 3, text
    assert "count:" in text
    assert "visits[0].image_url:" in text
    assert "visits[0].visit_time:" in text
    assert jobs_in(env) == []


def test_stdin_valid_job_runs(cli: Cli, env: dict[str, str], server: ImageServer) -> None:
    doc = {"count": 1, "visits": [visit(KNOWN[0], server.url("/img/77x55.png"))]}
    result = cli("submit", "-", "--gpu-delay", "0", input=json.dumps(doc))
    assert result.exit_code == 0, result.stderr
    job_id = result.stdout.strip()
    assert jobs_in(env) == [job_id]
    [rec] = results_of(env, job_id)
    assert (rec["width"], rec["height"], rec["perimeter"]) == (77, 55, 264)


def test_valid_file_creates_one_job_and_keeps_the_file_verbatim(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    job = tmp_path / "job.json"
    raw = (
        '{ "count" : 1,\n  "visits": [ {"store_id": "S00339218",\n'
        f'   "image_url": ["{server.url("/img/64x32.jpg")}"],\n'
        '   "visit_time": "2026-11-28T10:15:00+05:30"} ] }\n'
    )
    job.write_text(raw)
    result = cli("submit", str(job), "--gpu-delay", "0")
    assert result.exit_code == 0, result.stderr
    job_id = result.stdout.strip()
    assert jobs_in(env) == [job_id]
    assert (Path(env["RETAILPULSE_JOBS_DIR"]) / job_id / "job.json").read_text() == raw


VISIT_TIMES = [
    "28 Nov, late afternoon",
    "2026-11-28T10:15:00+05:30",
    "  mardi 28/11 vers 17h30 (IST) ",
    "२८ नवंबर, शाम",
]


def test_visit_time_is_kept_verbatim(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    visits = [
        visit(KNOWN[i], server.url(f"/img/{40 + i}x{30 + i}.png"), when=when)
        for i, when in enumerate(VISIT_TIMES)
    ]
    job = write_job(tmp_path / "job.json", visits)
    result = cli("submit", str(job), "--gpu-delay", "0")
    assert result.exit_code == 0, result.stderr
    records = results_of(env, result.stdout.strip())
    assert len(records) == len(VISIT_TIMES)
    by_store = {r["store_id"]: r["visit_time"] for r in records}
    assert by_store == {KNOWN[i]: when for i, when in enumerate(VISIT_TIMES)}


def test_visit_time_verbatim_in_results_command(
    cli: Cli, env: dict[str, str], server: ImageServer, tmp_path: Path
) -> None:
    job = write_job(
        tmp_path / "job.json",
        [visit(KNOWN[0], server.url("/img/41x29.gif"), when="28 Nov, late afternoon")],
    )
    job_id = cli("submit", str(job), "--gpu-delay", "0").stdout.strip()
    result = cli("results", job_id)
    assert result.exit_code == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert json.loads(line)["visit_time"] == "28 Nov, late afternoon"
