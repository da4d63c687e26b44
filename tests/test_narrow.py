"""What people see in a narrow window: `list` on an 80-column terminal (issue 17 #18)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .conftest import Cli, visit, write_job
from .terminal import run_on_terminal

IMAGES = Path(__file__).resolve().parent.parent / "examples" / "images"
LONG_NAME = "a very long job file name for the north region visits.json"


def _three_jobs(cli: Cli, tmp_path: Path) -> list[dict[str, object]]:
    ok = str(IMAGES / "shelf-640x480.jpg")
    bad = str(IMAGES / "broken-truncated.jpg")
    files = [
        write_job(tmp_path / LONG_NAME, [visit("S00339218", ok, ok)]),
        write_job(tmp_path / "with-failures.json", [visit("S00339218", ok, bad)]),
        write_job(tmp_path / "offline.json", [visit("S01408764", ok)]),
    ]
    r = cli("submit", *map(str, files), "--gpu-delay", "0")
    assert r.exit_code == 1, r.stderr  # one job failed
    rows: list[dict[str, object]] = json.loads(cli("list", "--json").stdout)
    return rows


def test_list_fits_an_80_column_terminal(cli: Cli, env: dict[str, str], tmp_path: Path) -> None:
    rows = _three_jobs(cli, tmp_path)
    code, shown, err = run_on_terminal("list", env=env, columns=80)
    assert code == 0, err
    lines = shown.rstrip("\n").split("\n")
    assert max(len(line.rstrip()) for line in lines) <= 80, shown
    assert len(lines) == 1 + len(rows), shown  # a header and one line per job: nothing wraps
    header = lines[0].split()
    assert header[:4] == ["job_id", "status", "images", "failed"], shown
    for row, line in zip(rows, lines[1:], strict=True):
        assert line.startswith(f"{row['job_id']}  "), shown  # ids always whole
        assert f" {row['status']} " in line
        # the source is cut with an ellipsis, never mid-word onto a second line
        name = Path(str(row["source"])).name
        shown_name = line.split(f" {row['images_failed']}  ", 1)[1].rstrip()
        assert shown_name == name or (
            shown_name.endswith("…") and name.startswith(shown_name[:-1])
        ), line
    assert "…" in shown and "a very long job file" in shown  # its start can be read


def test_list_on_a_wide_terminal_shows_every_column_whole(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    rows = _three_jobs(cli, tmp_path)
    code, shown, err = run_on_terminal("list", env=env, columns=160)
    assert code == 0, err
    lines = shown.rstrip("\n").split("\n")
    assert lines[0].split() == ["job_id", "created", "status", "images", "failed", "source"]
    for row, line in zip(rows, lines[1:], strict=True):
        assert re.match(rf"{row['job_id']}  +{re.escape(str(row['created_at']))}  ", line), line
        assert line.rstrip().endswith(Path(str(row["source"])).name), line
    assert "…" not in shown
