"""Poison job files (issue 9, finding 4) and small overruns (finding 7): no file, job id
or store master makes any command crash (exit 70); text from a job file is escaped
wherever it is shown; an inbox handles each file on its own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Cli, dropped_earlier, jobs_in, run_cli, unstamped, visit, write_job
from .imageserver import ImageServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "jobs"
BASES = sorted(p.read_bytes() for p in EXAMPLES.glob("*.json"))
DEEP = "[" * 40 + "]" * 40
# An unknown key that is a lone surrogate, holding a value nested past the limit: the
# problem message then carries the surrogate, which no UTF-8 stream can encode.
POISON = (
    '{"count": 1, "visits": [{"store_id": "S00339218", "visit_time": "x", '
    '"image_url": ["a.png"], "\\ud800": ' + DEEP + "}]}"
)


def _visible(text: str) -> bool:
    """Shown text: every line printable (no control, escape, surrogate or format char)."""
    return all(line.isprintable() for line in text.splitlines())


def test_a_surrogate_key_with_a_deep_value_is_reported_not_crashed_on(
    cli: Cli, tmp_path: Path
) -> None:
    bad = tmp_path / "poison.json"
    bad.write_text(POISON)
    plain = cli("validate", str(bad))
    assert plain.exit_code == 3, plain.stdout + plain.stderr
    assert "visits[0].\\ud800: nested too deeply (over 32 levels)" in plain.stdout
    assert _visible(plain.stdout) and _visible(plain.stderr)
    as_json = cli("validate", "--json", str(bad))
    assert as_json.exit_code == 3, as_json.stderr
    [problem] = json.loads(as_json.stdout)[0]["problems"]
    assert problem["path"] == r'$.visits[0]["\ud800"]'  # JSON escapes: printable
    assert problem["message"] == "nested too deeply (over 32 levels)"


def test_inbox_rejects_the_poison_file_and_runs_the_others(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    box = tmp_path / "inbox"
    box.mkdir()
    write_job(box / "a-good.json", [visit("S00339218", server.url("/img/701x20.png"))])
    (box / "b-poison.json").write_text(POISON)
    write_job(box / "c-good.json", [visit("S00339218", server.url("/img/702x20.png"))])
    dropped_earlier(box)
    r = run_cli("inbox", str(box), "--json", "--gpu-delay", "0", env=env, timeout=60)
    # Exit 3: some file was rejected (as `submit` with several files, one invalid).
    assert r.returncode == 3, r.stderr
    rows = {row["file"]: row for row in json.loads(r.stdout)}
    assert rows["a-good.json"]["status"] == rows["c-good.json"]["status"] == "completed"
    assert rows["b-poison.json"]["status"] == "rejected"
    reason = (box / "rejected" / "b-poison.json.reason").read_text("utf-8")
    assert reason == "visits[0].\\ud800: nested too deeply (over 32 levels)\n"
    assert (box / "rejected" / "b-poison.json").read_text() == POISON
    assert sorted(p.name for p in (box / "done").glob("*.json")) == ["a-good.json", "c-good.json"]
    assert list((box / ".processing").iterdir()) == []
    assert len(jobs_in(env)) == 2 and "internal error" not in r.stderr
    again = run_cli("inbox", str(box), env=env, timeout=60)  # and tomorrow's run is clean
    assert again.returncode == 0, again.stderr


def test_inbox_rejects_a_poison_file_stranded_by_an_older_crashed_run(
    env: dict[str, str], tmp_path: Path
) -> None:
    box = tmp_path / "inbox"
    (box / ".processing").mkdir(parents=True)
    (box / ".processing" / "poison.json.0badc0de").write_text(POISON)
    r = run_cli("inbox", str(box), env=env, timeout=60)
    assert r.returncode == 3, r.stderr
    assert "\\ud800" in (box / "rejected" / "poison.json.reason").read_text("utf-8")
    assert list((box / ".processing").iterdir()) == []


# -- fuzzing -------------------------------------------------------------------------------

NASTY = [
    b'"\\ud800"',
    b'"\\udfff": 1, ',
    b'"\\ud800": ' + DEEP.encode() + b", ",
    b"\xed\xa0\x80",  # a surrogate encoded as UTF-8 bytes: not valid UTF-8
    b"\x00",
    b"\x1b[31m",
    b'"\\u001b[2J"',
    b"\xe2\x80\xae",  # RIGHT-TO-LEFT OVERRIDE
    b"\n\r\t",
    DEEP.encode(),
    b"[" * 2000,
    b"{" * 50,
    b"\xef\xbb\xbf",
    b'"',
    b",",
    b"1" * 5000,
]


@st.composite
def mutated_job_file(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "key", "truncate", "delete"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            i = min(at, len(data) - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(NASTY))
        elif op == "key":  # an unknown key right after an opening brace: the file stays JSON
            braces = [i for i, b in enumerate(data) if b == ord("{")]
            if braces:
                i = draw(st.sampled_from(braces)) + 1
                data[i:i] = draw(st.sampled_from(NASTY[:3]))
        elif op == "truncate":
            del data[at:]
        else:
            del data[at : at + draw(st.integers(1, 20))]
    return bytes(data)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=mutated_job_file())
def test_fuzzed_job_files_never_crash_validate(cli: Cli, tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "fuzzed.json"
    path.write_bytes(raw)
    plain = cli("validate", str(path))
    assert plain.exit_code in (0, 1, 3), (raw, plain.stdout, plain.stderr)
    assert _visible(plain.stdout) and _visible(plain.stderr), (raw, plain.stdout)
    as_json = cli("validate", "--json", str(path))
    assert as_json.exit_code == plain.exit_code, (raw, as_json.stderr)
    rows = json.loads(as_json.stdout)
    assert rows[0]["valid"] is (plain.exit_code != 3)


@pytest.mark.parametrize(
    "raw",
    [
        POISON.encode(),
        b'{"\\ud800": ' + DEEP.encode() + b', "count": 1, "visits": []}',
        b'{"count": 1, "visits": [{"store_id": "\x1b[31mS1\\u202e", "visit_time": "\x00"}]}',
        b'{"count": 1, "visits": [{"store_id": "S1", "image_url": ["\xed\xa0\x80"]}]}',
        BASES[0][: len(BASES[0]) // 2],
    ],
    ids=["surrogate-key-deep", "top-level-surrogate", "controls", "bad-utf8", "truncated"],
)
def test_poison_files_through_the_real_cli(env: dict[str, str], tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "poison.json"
    path.write_bytes(raw)
    for extra in ([], ["--json"]):
        r = run_cli("validate", *extra, str(path), env=env, timeout=60)
        assert r.returncode == 3, r.stderr
        assert "internal error" not in r.stderr and _visible(r.stderr)
        if extra:
            assert json.loads(r.stdout)[0]["valid"] is False
        else:
            assert _visible(r.stdout)


# -- finding 7: job ids and store masters that are not what they seem -----------------------


@pytest.mark.parametrize("command", ["status", "results", "resume", "retry"])
def test_a_job_id_too_long_for_a_file_name_is_not_found(
    cli: Cli, env: dict[str, str], command: str
) -> None:
    Path(env["RETAILPULSE_JOBS_DIR"]).mkdir()  # the name, not a missing folder, is the point
    for job_id in ("a" * 300, "é" * 200, "x\0y"):
        r = cli(command, job_id)
        assert r.exit_code == 5, (command, r.stderr)
        assert "no job" in r.stderr


def test_status_wait_with_a_long_job_id_is_not_found(cli: Cli, env: dict[str, str]) -> None:
    Path(env["RETAILPULSE_JOBS_DIR"]).mkdir()
    assert cli("status", "--wait", "a" * 300).exit_code == 5


def test_store_master_that_never_ends_fails_fast_with_exit_4(
    env: dict[str, str], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "j.json", [visit("S00339218", "a.png")])
    t0 = time.monotonic()
    r = run_cli("validate", "--store-master", "/dev/zero", str(job), env=env, timeout=60)
    assert r.returncode == 4, r.stderr
    assert time.monotonic() - t0 < 5  # a second on an idle machine; CI is shared
    assert unstamped(r.stderr).splitlines()[0] == (
        "retailpulse: error: store master /dev/zero: line 1 is over 65,536 characters; "
        "not a store master CSV"
    )


def test_store_master_over_the_size_cap_is_refused(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    from retailpulse_cli.storage import store_master

    monkeypatch.setattr(store_master, "MAX_SIZE", 1000)  # the real cap is 64 MB: same code path
    master = tmp_path / "stores.csv"
    master.write_text("StoreID\n" + "".join(f"S{i:08d}\n" for i in range(200)))
    job = write_job(tmp_path / "j.json", [visit("S00000001", "a.png")])
    r = cli("validate", "--store-master", str(master), str(job))
    assert r.exit_code == 4
    assert f"store master {master}: over 1,000 characters; not a store master CSV" in r.stderr
