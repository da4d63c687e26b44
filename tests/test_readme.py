"""The README is part of the product: its commands must be the ones CI runs, every flag it
shows must exist, and every error code the code can produce must be documented."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)
    install, test = blocks[0].strip(), blocks[1].strip()
    assert "pip install ." in install and "retailpulse submit examples/jobs/" in install
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci.splitlines()
    assert "pytest" in test and "'.[test]'" in test


@cache
def help_text(command: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "retailpulse_cli", command, "--help"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_every_flag_the_readme_shows_exists_on_its_command() -> None:
    from retailpulse_cli.cli.app import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    shown = 0
    for line in README.splitlines():
        for m in re.finditer(r"retailpulse (\w+)([^`|\n]*)", line):
            command, rest = m.group(1), m.group(2)
            if command not in commands:
                continue
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
                assert flag in help_text(command), f"README shows `{command} {flag}`"
                shown += 1
    assert shown >= 10


def test_submit_options_table_matches_submit_help() -> None:
    table = README.split("### submit", 1)[1].split("### status", 1)[0]
    flags = set(re.findall(r"`(--[a-z-]+)", table))
    assert len(flags) > 15
    for flag in flags:
        assert flag in help_text("submit"), flag


def test_every_error_code_the_code_produces_is_documented() -> None:
    source = "".join(
        (ROOT / "retailpulse_cli" / f).read_text()
        for f in (
            "processing/fetch.py",
            "processing/imaging.py",
            "processing/download.py",
            "processing/tally.py",
            "processing/dask_engine.py",
        )
    )
    codes = set(re.findall(r'(?:FetchFailure|ImageFailure)\(\s*"([a-z_0-9]+)"', source))
    codes |= {"store_not_found", "internal_error", "http_5xx"}
    codes |= set(re.findall(r'^[A-Z_]+ = "([a-z_]+_crashed)"', source, flags=re.M))
    codes.discard("interrupted")  # never recorded: an image cut by Ctrl-C is undone, not failed
    assert len(codes) > 15
    table = README.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    for code in codes:
        assert f"`{code}`" in table, f"error code {code} is not in the README table"
