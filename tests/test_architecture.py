"""The layers hold (README "How it is built"): every command is registered from one list,
the commands that read import neither Rich nor the download machinery, the use cases in
retailpulse_cli/jobs never print and work without the CLI."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from retailpulse_cli.cli import app as app_module
from retailpulse_cli.config.options import RunFlags
from retailpulse_cli.config.settings import Settings
from retailpulse_cli.jobs.inbox_run import InboxRun
from retailpulse_cli.jobs.outcome import combined_code, outcome_code
from retailpulse_cli.jobs.validate import validate_files
from retailpulse_cli.model import JobState, JobStatus
from retailpulse_cli.storage import store_master
from retailpulse_cli.storage.job_dir import JobStore

from .conftest import Cli, dropped_earlier, one_image_job, visit, write_job
from .imageserver import ImageServer

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("rich", "requests", "urllib3", "PIL", "dask", "distributed", "fsspec")


def test_every_command_is_listed_once_with_the_module_that_declares_it() -> None:
    declared: dict[str, str] = {}
    for module_name in dict.fromkeys(app_module.COMMANDS.values()):
        module = importlib.import_module(f"retailpulse_cli.cli.{module_name}")
        # a module declares commands, or (`token`) one group of subcommands
        names = [c[0] for c in getattr(module.group, "commands", [])] or [module_name.split("_")[0]]
        for name in names:
            assert name not in declared, f"{name} declared twice"
            declared[name] = module_name
    assert declared == app_module.COMMANDS
    app = app_module.build_app()
    registered = [c.name or getattr(c.callback, "__name__", "") for c in app.registered_commands]
    groups = [g.name or g.typer_instance.info.name for g in app.registered_groups]
    commands = [n for n in app_module.COMMANDS if n not in groups]
    assert registered == commands  # --help lists them in this order
    assert groups == [n for n in app_module.COMMANDS if n not in registered]


def imported_packages(args: list[str], env: dict[str, str]) -> set[str]:
    cmd = [sys.executable, "-X", "importtime", "-m", "retailpulse_cli", *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in lines}


def test_commands_that_read_import_neither_rich_nor_the_download_machinery(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    job = one_image_job(tmp_path, server)
    submit = [sys.executable, "-m", "retailpulse_cli", "submit", str(job), "--gpu-delay", "0"]
    done = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=60)
    job_id = done.stdout.strip()
    assert done.returncode == 0 and job_id, done.stderr
    for args in (["status", job_id, "--json"], ["list", "--json"], ["results", job_id]):
        heavy = imported_packages(args, env) & set(HEAVY)
        assert heavy == set(), (args, heavy)
    assert "rich" in imported_packages(["status", job_id], env)  # the table: Rich, as before


def test_the_use_cases_never_print_nor_know_the_front_ends() -> None:
    for path in sorted((ROOT / "retailpulse_cli" / "jobs").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "print", f"{path.name}:{node.lineno} prints"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                stream = f"{node.value.id}.{node.attr}"
                assert stream not in ("sys.stdout", "sys.stderr"), f"{path.name}:{node.lineno}"
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                for name in names:
                    top = name.split(".")
                    assert top[0] not in ("typer", "rich"), f"{path.name} imports {name}"
                    assert top[:2] not in (["retailpulse_cli", "cli"], ["retailpulse_cli", "ui"])


def status(state: JobState, interrupted_by: str | None = None) -> JobStatus:
    doc: JobStatus = {"job_id": "x", "status": state.value}
    if interrupted_by:
        doc["interrupted_by"] = interrupted_by
    return doc


@pytest.mark.parametrize(
    ("states", "invalid", "code"),
    [
        ([JobState.COMPLETED], 0, 0),
        ([JobState.COMPLETED, JobState.FAILED], 0, 1),
        ([JobState.COMPLETED], 1, 3),  # a rejected job file outweighs a failed job
        ([JobState.FAILED, JobState.INTERRUPTED], 1, 130),  # an interruption outweighs all
        ([], 0, 0),
    ],
)
def test_one_exit_code_for_a_run_of_several_jobs(
    states: list[JobState], invalid: int, code: int
) -> None:
    assert combined_code([status(s) for s in states], invalid) == code


def test_sigterm_is_143_and_sigint_130() -> None:
    assert outcome_code(status(JobState.INTERRUPTED, "SIGTERM")) == 143
    assert outcome_code(status(JobState.INTERRUPTED, "SIGINT")) == 130
    assert outcome_code(status(JobState.INTERRUPTED, "worker died")) == 130
    assert (
        combined_code(
            [status(JobState.INTERRUPTED, "SIGINT"), status(JobState.INTERRUPTED, "SIGTERM")]
        )
        == 143
    )


class Collected:
    """Notes a use case gives, kept for the test to read."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))


def test_validate_rows_without_the_cli(tmp_path: Path) -> None:
    good = write_job(tmp_path / "good.json", [visit("S00339218", "a.png"), visit("S99", "b.png")])
    bad = tmp_path / "bad.json"
    bad.write_text('{"count": 1}')
    master = store_master.load(store_master.default_path())
    rows = validate_files([str(good), str(bad)], master)
    assert rows[0] == {
        "file": str(good),
        "valid": True,
        "visits": 2,
        "images": 2,
        "problems": [],
        "unknown_stores": ["S99"],
    }
    assert rows[1]["valid"] is False and rows[1]["problems"]


def test_an_inbox_run_without_the_cli(
    server: ImageServer, env: dict[str, str], tmp_path: Path
) -> None:
    box = tmp_path / "box"
    box.mkdir()
    one_image_job(box, server)  # box/j.json
    (box / "broken.json").write_text("{")
    dropped_earlier(box)
    notes = Collected()
    store = JobStore(Path(env["RETAILPULSE_JOBS_DIR"]))
    master = store_master.load(store_master.default_path())
    batch = InboxRun(box, store, Settings(gpu_delay=(0, 0)), RunFlags({}, None), master, notes)
    planned, claims = batch.claim_and_plan()
    assert [c.name for c in claims] == ["j.json"] and len(planned) == 1
    for p in planned:
        p.lock.release()  # not run here: the job reads `interrupted`
    assert batch.rejected == 1
    assert batch.rows[0]["file"] == "broken.json" and batch.rows[0]["status"] == "rejected"
    assert (box / "rejected" / "broken.json").exists()
    assert any(kind == "error" and "broken.json: rejected" in text for kind, text in notes.lines)
    assert json.loads(json.dumps(batch.rows))  # rows are what `inbox --json` prints


def test_list_status_is_a_choice_of_job_states_in_any_case(cli: Cli) -> None:
    assert cli("list", "--status", "FAILED", "--json").exit_code == 0
    r = cli("list", "--status", "finished")
    assert r.exit_code == 2 and "--status" in r.stderr
